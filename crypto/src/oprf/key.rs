//! The node's OPRF keys: the secret key and its key file text, the public key
//! clients check proofs against, and the short key id a registry lists.

use std::fmt;
use std::str::FromStr;

use rand::rngs::OsRng;
use sha2::{Digest, Sha256};
use voprf::{Group, VoprfServer};
use zeroize::{Zeroize, Zeroizing};

use super::{OprfError, Point, Scalar, Suite, KEY_FILE_PREFIX};

/// Domain of [`OprfKeyId`].
const KEY_ID_DOMAIN: &[u8] = b"fedq oprf key id v1\0";

/// A node's secret OPRF key, drawn from the operating system's generator.
///
/// No `Clone` or `Serialize`; `Debug` shows the key id only; the secret is
/// wiped when dropped. The only way to text is [`NodeOprfKey::to_text`], for the
/// node's key file (written with mode 0600 by the node).
pub struct NodeOprfKey {
    /// The `voprf` server (wipes its scalar on drop).
    pub(super) server: VoprfServer<Suite>,
    /// The key halved modulo the group order, for [`super::node_fingerprints`]: the
    /// batched compression of `2·P` needs no inverse square root.
    pub(super) half: Scalar,
    public: NodeOprfPublicKey,
}

impl Drop for NodeOprfKey {
    fn drop(&mut self) {
        self.half.zeroize();
    }
}

impl fmt::Debug for NodeOprfKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeOprfKey({})", self.public.key_id())
    }
}

impl NodeOprfKey {
    /// Draws a fresh key (RFC 9497 `DeriveKeyPair` from a 32-byte OS seed).
    pub fn generate() -> Self {
        let server = VoprfServer::<Suite>::new(&mut OsRng)
            .expect("DeriveKeyPair only fails for over-long seeds or infos");
        Self::from_server(server)
    }

    /// Parses the text written by [`NodeOprfKey::to_text`].
    pub fn from_text(text: &str) -> Result<Self, OprfError> {
        let hex_part = text
            .trim()
            .strip_prefix(KEY_FILE_PREFIX)
            .ok_or(OprfError::KeyFormat)?;
        let mut secret = Zeroizing::new([0u8; 32]);
        hex::decode_to_slice(hex_part.trim(), secret.as_mut_slice())
            .map_err(|_| OprfError::KeyFormat)?;
        Self::from_secret(&secret)
    }

    /// Key file text: `fedq-oprf-key v1 ristretto255-sha512 voprf ` and the scalar
    /// in hex (little-endian); a secret, for a file of mode 0600.
    pub fn to_text(&self) -> Zeroizing<String> {
        let secret = secret_bytes(&self.server);
        let mut text = Zeroizing::new(String::with_capacity(KEY_FILE_PREFIX.len() + 64));
        text.push_str(KEY_FILE_PREFIX);
        text.push_str(&Zeroizing::new(hex::encode(*secret)));
        text
    }

    /// The public key, which the client checks the node's proofs against.
    pub fn public_key(&self) -> &NodeOprfPublicKey {
        &self.public
    }

    /// Short id of the public key, for rotation bookkeeping.
    pub fn key_id(&self) -> OprfKeyId {
        self.public.key_id()
    }

    /// Builds a key from its 32-byte scalar (little-endian, canonical, non-zero).
    fn from_secret(secret: &[u8; 32]) -> Result<Self, OprfError> {
        let server =
            VoprfServer::<Suite>::new_with_key(secret).map_err(|_| OprfError::KeyFormat)?;
        Ok(Self::from_server(server))
    }

    pub(super) fn from_server(server: VoprfServer<Suite>) -> Self {
        let mut secret = <Suite as Group>::deserialize_scalar(&*secret_bytes(&server))
            .expect("voprf serialises its own valid scalar");
        let half = secret * Scalar::from(2u64).invert();
        secret.zeroize();
        let public = NodeOprfPublicKey::from_point(server.get_public_key());
        Self {
            server,
            half,
            public,
        }
    }
}

/// The secret scalar of `server` (its serialisation is `skS || pkS`).
pub(super) fn secret_bytes(server: &VoprfServer<Suite>) -> Zeroizing<[u8; 32]> {
    let mut serialized = server.serialize();
    let mut secret = Zeroizing::new([0u8; 32]);
    secret.copy_from_slice(&serialized[..32]);
    serialized.as_mut_slice().zeroize();
    secret
}

/// A node's public OPRF key (`pkS`), published so that clients can check proofs.
#[derive(Clone, PartialEq, Eq)]
pub struct NodeOprfPublicKey {
    pub(super) point: Point,
    bytes: [u8; 32],
}

impl fmt::Debug for NodeOprfPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeOprfPublicKey({})", self.key_id())
    }
}

impl NodeOprfPublicKey {
    fn from_point(point: Point) -> Self {
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(&<Suite as Group>::serialize_elem(point));
        Self { point, bytes }
    }

    /// Parses the 32-byte encoding; refuses invalid points and the identity.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, OprfError> {
        if bytes.len() != 32 {
            return Err(OprfError::PublicKeyFormat);
        }
        let point =
            <Suite as Group>::deserialize_elem(bytes).map_err(|_| OprfError::PublicKeyFormat)?;
        Ok(Self::from_point(point))
    }

    /// The 32-byte encoding.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.bytes
    }

    /// Parses 64 hex characters.
    pub fn from_text(text: &str) -> Result<Self, OprfError> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(text.trim(), &mut bytes).map_err(|_| OprfError::PublicKeyFormat)?;
        Self::from_bytes(&bytes)
    }

    /// 64 hex characters.
    pub fn to_text(&self) -> String {
        hex::encode(self.bytes)
    }

    /// First 8 bytes of `SHA-256("fedq oprf key id v1\0" || pkS)`.
    pub fn key_id(&self) -> OprfKeyId {
        let digest = Sha256::new()
            .chain_update(KEY_ID_DOMAIN)
            .chain_update(self.bytes)
            .finalize();
        let mut id = [0u8; 8];
        id.copy_from_slice(&digest[..8]);
        OprfKeyId(id)
    }
}

/// Short hash of a node's OPRF public key, written as 16 hex characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OprfKeyId([u8; 8]);

impl fmt::Display for OprfKeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl FromStr for OprfKeyId {
    type Err = OprfError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut id = [0u8; 8];
        hex::decode_to_slice(s.trim(), &mut id).map_err(|_| OprfError::KeyIdFormat)?;
        Ok(Self(id))
    }
}
