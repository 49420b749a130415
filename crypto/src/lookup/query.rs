//! Client side of a lookup item: the tag's bits as seeded GGSW ciphertexts.
//!
//! One [`EncryptedTag`] holds `tag_bits` GGSW encryptions of the tag's bits
//! (bit i of the tag in ciphertext i) under the requester's GLWE key, in one
//! seeded list: only the bodies travel (~32 KB per bit), the masks are
//! regenerated from the list's seed by the node.

use rayon::prelude::*;
use tfhe::core_crypto::commons::math::random::Uniform;
use tfhe::core_crypto::prelude::*;

use super::honest::{Honest, TagBits, WireSeededGgswList};
use super::keys::FheSecretKey;
use super::params::PARAMETERS;
use super::{wire, LookupError};
use crate::fingerprint::Tag;

/// Bytes of one seeded GGSW body: (k+1) · levels · N coefficients of 8 bytes.
pub fn ggsw_bytes() -> usize {
    seeded_ggsw_ciphertext_size(
        PARAMETERS.glwe_size(),
        PARAMETERS.polynomial_size,
        PARAMETERS.level_count,
    ) * 8
}

/// A tag encrypted bit by bit, as the client sends it.
pub struct EncryptedTag {
    pub(crate) list: SeededGgswCiphertextListOwned<u64>,
}

impl EncryptedTag {
    /// Encrypts the low `tag_bits` bits of `tag` (one GGSW per bit, in parallel).
    pub fn encrypt(secret: &FheSecretKey, tag: Tag, tag_bits: u8) -> Self {
        let mut seeder = new_seeder();
        let seeder = seeder.as_mut();
        let mut list = SeededGgswCiphertextList::new(
            0u64,
            PARAMETERS.glwe_size(),
            PARAMETERS.polynomial_size,
            PARAMETERS.base_log,
            PARAMETERS.level_count,
            GgswCiphertextCount(usize::from(tag_bits)),
            seeder.seed().into(),
            PARAMETERS.ciphertext_modulus,
        );
        let mut generator = EncryptionRandomGenerator::<DefaultRandomGenerator>::new(
            list.compression_seed(),
            seeder,
        );
        let forks = generator
            .par_try_fork_from_config(list.encryption_fork_config(Uniform, PARAMETERS.noise))
            .expect("fork sizes come from the list's own parameters");
        list.par_iter_mut().zip(forks).enumerate().for_each(
            |(bit_index, (mut ggsw, mut generator))| {
                let bit = (tag.0 >> bit_index) & 1;
                encrypt_constant_seeded_ggsw_ciphertext_with_pre_seeded_generator(
                    &secret.glwe,
                    &mut ggsw,
                    Cleartext(bit),
                    PARAMETERS.noise,
                    &mut generator,
                );
            },
        );
        Self { list }
    }

    /// Number of encrypted bits.
    pub fn bit_count(&self) -> usize {
        self.list.ggsw_ciphertext_count().0
    }

    /// Encoding for the wire.
    pub fn to_bytes(&self) -> Vec<u8> {
        wire::encode(&self.list)
    }

    /// Most bytes the encoding of a `tag_bits`-bit tag takes (what
    /// [`Self::from_bytes`] accepts at most): what one node's share of one
    /// lookup item costs a request.
    pub fn max_encoded_len(tag_bits: u8) -> usize {
        1 + usize::try_from(<WireSeededGgswList as Honest>::limit(TagBits(tag_bits)))
            .unwrap_or(usize::MAX)
    }

    /// Decodes an untrusted encrypted tag, refusing anything but `tag_bits`
    /// GGSW ciphertexts of [`PARAMETERS`] seeded the way [`Self::encrypt`]
    /// seeds them ([`super::honest`] lists what tfhe would otherwise trust),
    /// and `tag_bits` outside what [`super::evaluate`] can use.
    pub fn from_bytes(bytes: &[u8], tag_bits: u8) -> Result<Self, LookupError> {
        let list = wire::decode::<WireSeededGgswList>(bytes, TagBits(tag_bits))?;
        Ok(Self { list })
    }
}
