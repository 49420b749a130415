//! The threshold keys and their texts: the public key `K` with its threshold
//! (federation file), each node's public share `K_i` (federation file) and
//! each node's secret share `k_i` (the node's share file).

use std::fmt;

use voprf::{Group, VoprfServer};
use zeroize::{Zeroize, Zeroizing};

use super::{ToprfError, MAX_NODES, SHARE_FILE_PREFIX};
use crate::oprf::{Point, Scalar, Suite};

/// Parses a share index or threshold: 1 to 3 ASCII digits (no sign, no
/// leading zero), 1 to [`MAX_NODES`].
fn parse_small(text: &str) -> Option<u16> {
    let valid = (1..=3).contains(&text.len())
        && text.bytes().all(|byte| byte.is_ascii_digit())
        && !text.starts_with('0');
    if !valid {
        return None;
    }
    let value: u16 = text.parse().ok()?;
    (value <= MAX_NODES).then_some(value)
}

/// Parses 64 hex characters of a valid, non-identity point.
fn parse_point(text: &str) -> Option<(Point, [u8; 32])> {
    let mut bytes = [0u8; 32];
    hex::decode_to_slice(text, &mut bytes).ok()?;
    let point = <Suite as Group>::deserialize_elem(&bytes).ok()?;
    Some((point, bytes))
}

/// The 32-byte encoding of `point`.
fn point_bytes(point: &Point) -> [u8; 32] {
    point.compress().to_bytes()
}

/// The threshold `t` and the public key `K = k·G` of the whole federation, as
/// the federation file lists them: `t:<64 hex of K>`.
#[derive(Clone, PartialEq, Eq)]
pub struct ThresholdPublicKey {
    threshold: u16,
    point: Point,
    bytes: [u8; 32],
}

impl fmt::Debug for ThresholdPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ThresholdPublicKey({})", self.to_text())
    }
}

impl ThresholdPublicKey {
    pub(super) fn from_point(threshold: u16, point: Point) -> Self {
        Self {
            threshold,
            point,
            bytes: point_bytes(&point),
        }
    }

    pub(super) fn point(&self) -> &Point {
        &self.point
    }

    /// How many nodes' partial evaluations make one output.
    pub fn threshold(&self) -> u16 {
        self.threshold
    }

    /// `t:<64 hex of K>`.
    pub fn to_text(&self) -> String {
        format!("{}:{}", self.threshold, hex::encode(self.bytes))
    }

    /// Parses [`ThresholdPublicKey::to_text`]; refuses a threshold outside 1 to
    /// [`MAX_NODES`], an invalid point and the identity.
    pub fn from_text(text: &str) -> Result<Self, ToprfError> {
        let (threshold, key) = text
            .trim()
            .split_once(':')
            .ok_or(ToprfError::PublicKeyFormat)?;
        let threshold = parse_small(threshold).ok_or(ToprfError::PublicKeyFormat)?;
        let (point, bytes) = parse_point(key).ok_or(ToprfError::PublicKeyFormat)?;
        Ok(Self {
            threshold,
            point,
            bytes,
        })
    }
}

/// Node `i`'s public share `K_i = k_i·G`, which its proofs are checked
/// against: `i:<64 hex of K_i>`.
#[derive(Clone, PartialEq, Eq)]
pub struct SharePublicKey {
    index: u16,
    point: Point,
    bytes: [u8; 32],
}

impl fmt::Debug for SharePublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SharePublicKey({})", self.to_text())
    }
}

impl SharePublicKey {
    fn from_point(index: u16, point: Point) -> Self {
        Self {
            index,
            point,
            bytes: point_bytes(&point),
        }
    }

    pub(super) fn point(&self) -> &Point {
        &self.point
    }

    /// The share's index `i` (1 to [`MAX_NODES`]).
    pub fn index(&self) -> u16 {
        self.index
    }

    /// `i:<64 hex of K_i>`.
    pub fn to_text(&self) -> String {
        format!("{}:{}", self.index, hex::encode(self.bytes))
    }

    /// Parses [`SharePublicKey::to_text`]; refuses an index outside 1 to
    /// [`MAX_NODES`], an invalid point and the identity.
    pub fn from_text(text: &str) -> Result<Self, ToprfError> {
        let (index, key) = text
            .trim()
            .split_once(':')
            .ok_or(ToprfError::PublicShareFormat)?;
        let index = parse_small(index).ok_or(ToprfError::PublicShareFormat)?;
        let (point, bytes) = parse_point(key).ok_or(ToprfError::PublicShareFormat)?;
        Ok(Self {
            index,
            point,
            bytes,
        })
    }

    /// The 32-byte encoding of `K_i`.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.bytes
    }
}

/// Node `i`'s secret share `k_i = f(i)`.
///
/// No `Clone` or `Serialize`; `Debug` shows the index only; the scalar is
/// wiped when dropped (by `voprf`'s server). The only way to text is
/// [`KeyShare::to_text`], for the node's share file (mode 0600).
pub struct KeyShare {
    index: u16,
    server: VoprfServer<Suite>,
    public: SharePublicKey,
}

impl fmt::Debug for KeyShare {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyShare({})", self.index)
    }
}

impl KeyShare {
    /// The share of `index` with secret `secret`; `None` for a zero scalar,
    /// which is no valid VOPRF key.
    pub(super) fn from_scalar(index: u16, secret: &Scalar) -> Option<Self> {
        let mut bytes = <Suite as Group>::serialize_scalar(*secret);
        let server = VoprfServer::<Suite>::new_with_key(&bytes);
        bytes.as_mut_slice().zeroize();
        let server = server.ok()?;
        let public = SharePublicKey::from_point(index, server.get_public_key());
        Some(Self {
            index,
            server,
            public,
        })
    }

    pub(super) fn server(&self) -> &VoprfServer<Suite> {
        &self.server
    }

    /// The secret scalar (the server's serialisation is `skS || pkS`).
    fn secret_bytes(&self) -> Zeroizing<[u8; 32]> {
        let mut serialized = self.server.serialize();
        let mut secret = Zeroizing::new([0u8; 32]);
        secret.copy_from_slice(&serialized[..32]);
        serialized.as_mut_slice().zeroize();
        secret
    }

    /// The secret scalar, for tests that rebuild the key from `t` shares.
    #[cfg(test)]
    pub(super) fn secret_scalar(&self) -> Scalar {
        <Suite as Group>::deserialize_scalar(&*self.secret_bytes())
            .expect("a share holds a valid scalar")
    }

    /// The share's index `i` (1 to [`MAX_NODES`]).
    pub fn index(&self) -> u16 {
        self.index
    }

    /// The public share `K_i`, which clients check this node's proofs against.
    pub fn public(&self) -> &SharePublicKey {
        &self.public
    }

    /// Share file text: [`SHARE_FILE_PREFIX`], the index, a space and the
    /// scalar in hex (little-endian); a secret, for a file of mode 0600.
    pub fn to_text(&self) -> Zeroizing<String> {
        let mut text = Zeroizing::new(String::with_capacity(SHARE_FILE_PREFIX.len() + 4 + 64));
        text.push_str(SHARE_FILE_PREFIX);
        text.push_str(&self.index.to_string());
        text.push(' ');
        text.push_str(&Zeroizing::new(hex::encode(*self.secret_bytes())));
        text
    }

    /// Parses [`KeyShare::to_text`]; refuses an index outside 1 to
    /// [`MAX_NODES`] and a scalar that is not canonical or is zero.
    pub fn from_text(text: &str) -> Result<Self, ToprfError> {
        let rest = text
            .trim()
            .strip_prefix(SHARE_FILE_PREFIX)
            .ok_or(ToprfError::ShareFormat)?;
        let (index, secret_hex) = rest.split_once(' ').ok_or(ToprfError::ShareFormat)?;
        let index = parse_small(index).ok_or(ToprfError::ShareFormat)?;
        let mut secret = Zeroizing::new([0u8; 32]);
        hex::decode_to_slice(secret_hex, secret.as_mut_slice())
            .map_err(|_| ToprfError::ShareFormat)?;
        let secret = <Suite as Group>::deserialize_scalar(secret.as_slice())
            .map_err(|_| ToprfError::ShareFormat)?;
        let secret = Zeroizing::new(secret);
        Self::from_scalar(index, &secret).ok_or(ToprfError::ShareFormat)
    }
}
