//! What an identifier's threshold OPRF output gives its holder: a pseudonym
//! to match on and a key to seal contacts with.

use std::fmt;

use rand::rngs::OsRng;
use rand::RngCore;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305, NONCE_LEN};
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use super::{ToprfError, MAX_SEALED_BYTES};

/// Label of the pseudonym's derivation from an output.
const PSEUDONYM_LABEL: &str = "fedq toprf pseudonym v1";
/// Label of the seal key's derivation from an output.
const SEAL_KEY_LABEL: &str = "fedq toprf seal key v1";
/// Associated data of every sealed contact: a sealed contact of another
/// protocol (or version) under the same key does not open as ours.
const SEAL_AAD: &[u8] = b"fedq deconfliction contact v1";
/// Bytes of the Poly1305 tag.
const TAG_LEN: usize = 16;
/// Fewest bytes of a sealed contact: nonce and tag around an empty plaintext.
pub(super) const MIN_SEALED_BYTES: usize = NONCE_LEN + TAG_LEN;

/// `SHA-256(label || 0 || material)`; the zero byte ends the label, so no
/// label is a prefix of another's input.
fn labelled_hash(label: &str, material: &[u8]) -> [u8; 32] {
    Sha256::new()
        .chain_update(label.as_bytes())
        .chain_update([0u8])
        .chain_update(material)
        .finalize()
        .into()
}

/// What one identifier's output gives its holder. Two holders of the same
/// identifier (under the same federation key) derive the same secret; the
/// coordinator sees the pseudonym only.
pub struct DeconflictionSecret {
    /// What the coordinator matches on.
    pub pseudonym: Pseudonym,
    /// Seals contacts for the other holders of the same identifier.
    pub seal_key: SealKey,
}

impl fmt::Debug for DeconflictionSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeconflictionSecret")
            .field("pseudonym", &self.pseudonym)
            .finish_non_exhaustive()
    }
}

impl DeconflictionSecret {
    /// Both parts from the 64-byte OPRF output, under distinct labels: the
    /// pseudonym reveals nothing about the seal key.
    pub(super) fn from_output(output: &[u8]) -> Self {
        Self {
            pseudonym: Pseudonym(labelled_hash(PSEUDONYM_LABEL, output)),
            seal_key: SealKey::derive(SEAL_KEY_LABEL, output),
        }
    }
}

/// An identifier's pseudonym: 32 bytes, the same for every holder of the
/// identifier, and computable only with `t` nodes' help.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct Pseudonym([u8; 32]);

impl Pseudonym {
    /// The pseudonym of these 32 bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// Parses exactly 32 bytes.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, ToprfError> {
        bytes
            .try_into()
            .map(Self)
            .map_err(|_| ToprfError::PseudonymFormat)
    }

    /// The 32 bytes.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0
    }

    /// 64 lowercase hex characters.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses 64 hex characters.
    pub fn from_hex(text: &str) -> Result<Self, ToprfError> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(text.trim(), &mut bytes).map_err(|_| ToprfError::PseudonymFormat)?;
        Ok(Self(bytes))
    }
}

/// A 32-byte ChaCha20-Poly1305 key. `Debug` hides it; it is wiped on drop.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct SealKey([u8; 32]);

impl fmt::Debug for SealKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SealKey(..)")
    }
}

impl SealKey {
    /// The key of these 32 bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The 32 bytes (a secret).
    pub fn to_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.0)
    }

    /// A key derived from other secret material under `label`:
    /// `SHA-256(label || 0 || material)`, e.g. a requester's wrap key from
    /// its signing key file bytes. Distinct labels give unrelated keys.
    pub fn derive(label: &str, material: &[u8]) -> Self {
        Self(labelled_hash(label, material))
    }

    fn aead_key(&self) -> LessSafeKey {
        LessSafeKey::new(
            UnboundKey::new(&CHACHA20_POLY1305, &self.0)
                .expect("a ChaCha20-Poly1305 key is 32 bytes"),
        )
    }

    /// `nonce (12 bytes) || ciphertext || tag (16 bytes)`, with a fresh
    /// random nonce; the associated data is a fixed label and `context`,
    /// which [`SealKey::open`] must be given again: what the sealed bytes are
    /// about (a pseudonym, an agency, an end date), so that nobody relaying
    /// them can present them as being about something else.
    ///
    /// Random 96-bit nonces are safe for far more messages than one key ever
    /// seals (one contact per matched identifier). A plaintext over
    /// [`MAX_SEALED_BYTES`] minus 28 gives bytes that [`SealKey::open`] refuses.
    pub fn seal(&self, context: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        OsRng.fill_bytes(&mut nonce);
        let mut sealed = Vec::with_capacity(MIN_SEALED_BYTES + plaintext.len());
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(plaintext);
        let tag = self
            .aead_key()
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(associated_data(context)),
                &mut sealed[NONCE_LEN..],
            )
            .expect("ChaCha20-Poly1305 seals up to 256 GiB");
        sealed.extend_from_slice(tag.as_ref());
        sealed
    }

    /// Opens [`SealKey::seal`]'s bytes. Refuses fewer than 28 or more than
    /// [`MAX_SEALED_BYTES`] bytes before anything else
    /// ([`ToprfError::SealedLength`]); a wrong key or any change to the
    /// bytes, or another `context`, gives [`ToprfError::Open`].
    pub fn open(&self, context: &[u8], sealed: &[u8]) -> Result<Vec<u8>, ToprfError> {
        if !(MIN_SEALED_BYTES..=MAX_SEALED_BYTES).contains(&sealed.len()) {
            return Err(ToprfError::SealedLength(sealed.len()));
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| ToprfError::Open)?;
        let mut plaintext = body.to_vec();
        let len = self
            .aead_key()
            .open_in_place(nonce, Aad::from(associated_data(context)), &mut plaintext)
            .map_err(|_| ToprfError::Open)?
            .len();
        plaintext.truncate(len);
        Ok(plaintext)
    }
}

/// The label, a zero byte, then the caller's context.
fn associated_data(context: &[u8]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(SEAL_AAD.len() + 1 + context.len());
    aad.extend_from_slice(SEAL_AAD);
    aad.push(0);
    aad.extend_from_slice(context);
    aad
}
