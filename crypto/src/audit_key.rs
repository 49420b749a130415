//! The Ed25519 key an audit log signs with (a node's, or the coordinator's,
//! which also countersigns the nodes' checkpoints), its file, and its public
//! half as `federation.toml` pins it.
//!
//! `fedq federation init` creates every party's key up front and pins the
//! public half, so that what a party signed can be checked against a key
//! that its operator did not choose alone. The message formats (what a
//! signature covers) belong to the audit log (`fedq-audit`): this module
//! only holds the key.
//!
//! Key file (format 1): `fedq-audit-key-v1 <64 hex digits of the seed>\n`,
//! mode 0600. Public key: 64 hex digits.

use ed25519_dalek::{Signature, Signer};
use zeroize::Zeroizing;

/// What a key file begins with.
const FILE_PREFIX: &str = "fedq-audit-key-v1 ";
/// Hex digits of a seed or a public key; longer text is refused before decoding.
const KEY_HEX_CHARS: usize = 64;

/// Errors reading an audit key.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuditKeyError {
    /// The text is not an audit key file.
    #[error("not a fedq audit key file")]
    BadFile,
    /// The text is not an Ed25519 public key (64 hex digits).
    #[error("not an Ed25519 public key (64 hex digits)")]
    BadPublicKey,
}

/// A party's audit signing key. No Debug, Clone or Serialize; the dalek key
/// zeroizes itself on drop.
pub struct AuditSigningKey(ed25519_dalek::SigningKey);

impl AuditSigningKey {
    /// A fresh key from the OS's CSPRNG.
    pub fn generate() -> Self {
        Self(ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng))
    }

    /// Reads a key from its file text.
    pub fn from_file_text(text: &str) -> Result<Self, AuditKeyError> {
        let digits = text
            .trim_end()
            .strip_prefix(FILE_PREFIX)
            .filter(|d| d.len() == KEY_HEX_CHARS)
            .ok_or(AuditKeyError::BadFile)?;
        let mut seed = Zeroizing::new([0u8; 32]);
        hex::decode_to_slice(digits, seed.as_mut_slice()).map_err(|_| AuditKeyError::BadFile)?;
        Ok(Self(ed25519_dalek::SigningKey::from_bytes(&seed)))
    }

    /// The key's file text; handle as a secret.
    pub fn to_file_text(&self) -> Zeroizing<String> {
        Zeroizing::new(format!("{FILE_PREFIX}{}\n", hex::encode(self.0.to_bytes())))
    }

    /// The public half, which `federation.toml` pins.
    pub fn public_key(&self) -> AuditPublicKey {
        AuditPublicKey(self.0.verifying_key())
    }

    /// Signs `message` (the caller's domain-separated encoding).
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.0.sign(message).to_bytes()
    }
}

impl std::fmt::Debug for AuditSigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditSigningKey(..)")
    }
}

/// The public half of an audit key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditPublicKey(ed25519_dalek::VerifyingKey);

impl AuditPublicKey {
    /// Parses 64 hex digits (a pin in `federation.toml`, a checkpoint's key).
    pub fn from_hex(text: &str) -> Result<Self, AuditKeyError> {
        if text.len() != KEY_HEX_CHARS {
            return Err(AuditKeyError::BadPublicKey);
        }
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(text, &mut bytes).map_err(|_| AuditKeyError::BadPublicKey)?;
        ed25519_dalek::VerifyingKey::from_bytes(&bytes)
            .map(Self)
            .map_err(|_| AuditKeyError::BadPublicKey)
    }

    /// 64 lowercase hex digits.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0.to_bytes())
    }

    /// Parses the key's 32 bytes (as the wire carries it).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, AuditKeyError> {
        let bytes: &[u8; 32] = bytes.try_into().map_err(|_| AuditKeyError::BadPublicKey)?;
        ed25519_dalek::VerifyingKey::from_bytes(bytes)
            .map(Self)
            .map_err(|_| AuditKeyError::BadPublicKey)
    }

    /// The key's 32 bytes.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// Whether `signature` is this key's (strict Ed25519: no malleable or
    /// small-order forms) over `message`.
    pub fn verifies(&self, message: &[u8], signature: &[u8; 64]) -> bool {
        self.0
            .verify_strict(message, &Signature::from_bytes(signature))
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_round_trips_through_its_file_and_signs_for_its_public_half() {
        let key = AuditSigningKey::generate();
        let read = AuditSigningKey::from_file_text(&key.to_file_text()).expect("reads back");
        assert_eq!(read.public_key(), key.public_key());
        let public = AuditPublicKey::from_hex(&key.public_key().to_hex()).expect("parses");
        assert_eq!(AuditPublicKey::from_bytes(&public.to_bytes()), Ok(public));
        assert!(AuditPublicKey::from_bytes(&[0u8; 31]).is_err());
        let signature = key.sign(b"message");
        assert!(public.verifies(b"message", &signature));
        assert!(!public.verifies(b"another", &signature));
        let other = AuditSigningKey::generate().public_key();
        assert!(!other.verifies(b"message", &signature));
    }

    #[test]
    fn malformed_files_and_public_keys_are_refused() {
        for text in [
            "",
            "fedq-audit-key-v1 ",
            "fedq-audit-key-v2 0707070707070707070707070707070707070707070707070707070707070707",
            "fedq-audit-key-v1 zz07070707070707070707070707070707070707070707070707070707070707",
            "fedq-audit-key-v1 070707070707070707070707070707070707070707070707070707070707070707",
        ] {
            assert_eq!(
                AuditSigningKey::from_file_text(text).err(),
                Some(AuditKeyError::BadFile),
                "{text}"
            );
        }
        for text in ["", "00", "zz".repeat(32).as_str(), "00".repeat(33).as_str()] {
            assert_eq!(
                AuditPublicKey::from_hex(text),
                Err(AuditKeyError::BadPublicKey)
            );
        }
    }
}
