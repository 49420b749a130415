//! The requester's TFHE keys.
//!
//! - [`FheSecretKey`]: a binary GLWE secret key. It never leaves the requester's
//!   machine: no `Debug`, `Clone` or `Serialize`, wiped on drop; the only way to
//!   bytes is [`danger::secret_key_to_file_bytes`], used to write a 0600 file.
//! - [`FhePublicKey`]: a compact LWE public key for the same secret (seen as an
//!   LWE key of dimension k·N). Nodes use it to re-randomise their answers.
//! - [`KeyId`]: SHA-256 of the public key's encoding, by which it is registered.

use std::fmt;

use sha2::{Digest, Sha256};
use tfhe::core_crypto::prelude::*;
use zeroize::Zeroize;

use super::honest::{WireCompactPublicKey, WireGlweSecretKey};
use super::params::PARAMETERS;
use super::{wire, LookupError};

/// The requester's GLWE secret key.
pub struct FheSecretKey {
    pub(crate) glwe: GlweSecretKeyOwned<u64>,
}

impl Drop for FheSecretKey {
    fn drop(&mut self) {
        self.glwe.as_mut().zeroize();
    }
}

/// The matching compact public key.
#[derive(Clone)]
pub struct FhePublicKey {
    pub(crate) key: LweCompactPublicKeyOwned<u64>,
    id: KeyId,
    encoded: Vec<u8>,
}

impl fmt::Debug for FhePublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FhePublicKey")
            .field("id", &self.id)
            .finish()
    }
}

/// Identifier of a registered public key: hex of the first 16 bytes of the
/// SHA-256 of its encoding.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(String);

impl KeyId {
    /// Parses and checks a key id received from a peer.
    pub fn parse(text: &str) -> Result<Self, LookupError> {
        if text.len() == 32
            && text
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        {
            Ok(Self(text.to_owned()))
        } else {
            Err(LookupError::Malformed("key id"))
        }
    }

    /// The hex text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub(crate) fn of(encoded: &[u8]) -> Self {
        Self(hex::encode(&Sha256::digest(encoded)[..16]))
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Makes a fresh secret key and its public key.
pub fn generate_keys() -> (FheSecretKey, FhePublicKey) {
    let mut seeder = new_seeder();
    let seeder = seeder.as_mut();
    let mut secret_generator = SecretRandomGenerator::<DefaultRandomGenerator>::new(seeder.seed());
    let mut encryption_generator =
        EncryptionRandomGenerator::<DefaultRandomGenerator>::new(seeder.seed(), seeder);
    let glwe = allocate_and_generate_new_binary_glwe_secret_key(
        PARAMETERS.glwe_dimension,
        PARAMETERS.polynomial_size,
        &mut secret_generator,
    );
    let secret = FheSecretKey { glwe };
    let key = allocate_and_generate_new_lwe_compact_public_key(
        &secret.lwe_view(),
        PARAMETERS.noise,
        PARAMETERS.ciphertext_modulus,
        &mut encryption_generator,
    );
    (secret, FhePublicKey::from_key(key))
}

impl FheSecretKey {
    pub(crate) fn lwe_view(&self) -> LweSecretKeyView<'_, u64> {
        LweSecretKey::from_container(self.glwe.as_ref())
    }

    /// Reads a key written by [`danger::secret_key_to_file_bytes`].
    pub fn from_file_bytes(bytes: &[u8]) -> Result<Self, LookupError> {
        let glwe = wire::decode::<WireGlweSecretKey>(bytes, ())?;
        Ok(Self { glwe })
    }
}

impl FhePublicKey {
    fn from_key(key: LweCompactPublicKeyOwned<u64>) -> Self {
        let encoded = wire::encode(&key);
        let id = KeyId::of(&encoded);
        Self { key, id, encoded }
    }

    /// The key id.
    pub fn id(&self) -> &KeyId {
        &self.id
    }

    /// The encoding sent to the coordinator and the nodes.
    pub fn to_bytes(&self) -> &[u8] {
        &self.encoded
    }

    /// Decodes an untrusted public key and checks its parameters.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, LookupError> {
        let key = wire::decode::<WireCompactPublicKey>(bytes, ())?;
        Ok(Self::from_key(key))
    }
}

/// Exports that can leak the secret key; only the key file writer uses them.
pub mod danger {
    use super::*;

    /// Encoding of the secret key for its 0600 file. Never put it in a message.
    pub fn secret_key_to_file_bytes(key: &FheSecretKey) -> zeroize::Zeroizing<Vec<u8>> {
        zeroize::Zeroizing::new(wire::encode(&key.glwe))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_are_checked() -> Result<(), LookupError> {
        let (secret, public) = generate_keys();
        let again = FhePublicKey::from_bytes(public.to_bytes())?;
        assert_eq!(again.id(), public.id());
        let file = danger::secret_key_to_file_bytes(&secret);
        let back = FheSecretKey::from_file_bytes(&file)?;
        assert_eq!(back.glwe.as_ref(), secret.glwe.as_ref());
        let mut truncated = public.to_bytes().to_vec();
        truncated.truncate(truncated.len() - 8);
        assert!(FhePublicKey::from_bytes(&truncated).is_err());
        assert!(KeyId::parse("not-a-key").is_err());
        Ok(())
    }
}
