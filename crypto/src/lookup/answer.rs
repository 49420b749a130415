//! Lookup answers: re-randomised, modulus-switched LWE encryptions of a count.
//!
//! A node's raw result has a mask that is a deterministic function of the
//! requester's GGSWs and the node's table. Before it leaves, the node adds a
//! fresh encryption of zero under the requester's compact public key (fresh
//! mask) whose body carries flooding noise (TUniform, its bound set by the
//! federation's size: [`CountEncoding`]), then switches the
//! ciphertext to modulus 2^32 (8 KB instead of 16 KB). The coordinator adds
//! answers of several nodes without any key; the requester decrypts the sum.

use tfhe::core_crypto::prelude::*;

use super::keys::{FhePublicKey, FheSecretKey};
use super::params::{CountEncoding, ANSWER_MODULUS_LOG, PARAMETERS};
use super::LookupError;

/// Version byte of an encoded answer. Version 2 scales the count by the
/// federation's [`CountEncoding`] and says which (its message bits); version
/// 1 used a fixed Δ = 2^59, which a version-2 peer would misread (a count of
/// one as zero), so each refuses the other's answers instead.
const ANSWER_FORMAT: u8 = 2;

/// An encrypted per-item count, modulo 2^32: LWE mask (k·N values) then body,
/// and the message bits of the encoding it was made under (0 for
/// [`EncryptedCount::zero`], which adds to anything).
#[derive(Clone, PartialEq, Eq)]
pub struct EncryptedCount {
    values: Vec<u32>,
    bits: u8,
}

impl std::fmt::Debug for EncryptedCount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EncryptedCount(..)")
    }
}

fn lwe_size() -> usize {
    PARAMETERS.lwe_dimension().to_lwe_size().0
}

/// Bytes of an encoded answer.
pub fn answer_bytes() -> usize {
    2 + 4 * lwe_size()
}

impl EncryptedCount {
    /// Re-randomises a raw evaluation result under the requester's public key,
    /// flooding it as much as `encoding`'s budget allows, and switches it to
    /// the answer modulus.
    pub fn rerandomise(
        mut raw: LweCiphertextOwned<u64>,
        public_key: &FhePublicKey,
        encoding: CountEncoding,
    ) -> Self {
        let mut seeder = new_seeder();
        let seeder = seeder.as_mut();
        let mut generator =
            EncryptionRandomGenerator::<DefaultRandomGenerator>::new(seeder.seed(), seeder);
        let mut zero = LweCiphertext::new(0u64, raw.lwe_size(), PARAMETERS.ciphertext_modulus);
        encrypt_lwe_ciphertext_with_compact_public_key(
            &public_key.key,
            &mut zero,
            Plaintext(0u64),
            PARAMETERS.noise,
            DynamicDistribution::new_t_uniform(encoding.flood_bound_log2()),
            generator.noise_generator_mut(),
        );
        lwe_ciphertext_add_assign(&mut raw, &zero);
        let switched = lwe_ciphertext_modulus_switch::<u64, u32, _>(
            raw,
            CiphertextModulusLog(ANSWER_MODULUS_LOG as usize),
        );
        let mut values: Vec<u32> = switched.mask().collect();
        values.push(switched.body());
        Self {
            values,
            bits: encoding_bits(encoding),
        }
    }

    /// An encryption of zero with no mask: the neutral element of [`Self::add_assign`].
    pub fn zero() -> Self {
        Self {
            values: vec![0; lwe_size()],
            bits: 0,
        }
    }

    /// Whether `other` was made under the same encoding as this (or either is
    /// [`Self::zero`]): answers of different encodings do not add up to a count.
    pub fn adds_to(&self, other: &EncryptedCount) -> bool {
        self.bits == 0 || other.bits == 0 || self.bits == other.bits
    }

    /// Refuses an answer made for a federation of another size than
    /// `encoding`'s: decrypted as this one, its count would be wrong.
    pub fn check_encoding(&self, encoding: CountEncoding) -> Result<(), LookupError> {
        if self.bits == 0 || self.bits == encoding_bits(encoding) {
            Ok(())
        } else {
            Err(LookupError::WrongParameters("answer's count encoding"))
        }
    }

    fn to_native(&self) -> LweCiphertextOwned<u64> {
        let lifted = self
            .values
            .iter()
            .map(|&v| u64::from(v) << (64 - ANSWER_MODULUS_LOG))
            .collect();
        LweCiphertext::from_container(lifted, PARAMETERS.ciphertext_modulus)
    }

    fn from_native(ct: &LweCiphertextOwned<u64>, bits: u8) -> Self {
        // Exact: both operands were multiples of 2^32, so is their sum.
        let values = ct
            .as_ref()
            .iter()
            .map(|&v| (v >> (64 - ANSWER_MODULUS_LOG)) as u32)
            .collect();
        Self { values, bits }
    }

    /// Adds another node's answer (no key needed). Check [`Self::adds_to`]
    /// first: the sum keeps this answer's encoding (or takes `other`'s when
    /// this is [`Self::zero`]).
    pub fn add_assign(&mut self, other: &EncryptedCount) {
        let mut sum = self.to_native();
        lwe_ciphertext_add_assign(&mut sum, &other.to_native());
        let bits = if self.bits == 0 {
            other.bits
        } else {
            self.bits
        };
        *self = Self::from_native(&sum, bits);
    }

    /// Decrypts the count with the requester's secret key.
    pub fn decrypt(&self, secret: &FheSecretKey, encoding: CountEncoding) -> u32 {
        let bits = encoding.message_bits();
        let (_, rounded) = self.phase(secret, encoding);
        ((rounded >> (64 - bits)) % (1 << bits)) as u32
    }

    /// Signed distance of the decrypted phase to its nearest encoded count, as a
    /// fraction of Δ. Used by noise tests and the residual-leak analysis.
    pub fn phase_error(&self, secret: &FheSecretKey, encoding: CountEncoding) -> f64 {
        let (phase, rounded) = self.phase(secret, encoding);
        (phase.wrapping_sub(rounded) as i64) as f64 / encoding.delta() as f64
    }

    /// The decrypted phase and the nearest encoded count to it.
    fn phase(&self, secret: &FheSecretKey, encoding: CountEncoding) -> (u64, u64) {
        let plaintext = decrypt_lwe_ciphertext(&secret.lwe_view(), &self.to_native());
        let decomposer = SignedDecomposer::new(
            DecompositionBaseLog(encoding.message_bits() as usize),
            DecompositionLevelCount(1),
        );
        (plaintext.0, decomposer.closest_representable(plaintext.0))
    }

    /// Wire encoding: version byte, message bits, then little-endian `u32`s.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(answer_bytes());
        out.push(ANSWER_FORMAT);
        out.push(self.bits);
        for v in &self.values {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out
    }

    /// Decodes an untrusted answer; only the exact size is accepted.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, LookupError> {
        let [version, bits, body @ ..] = bytes else {
            return Err(LookupError::Malformed("answer"));
        };
        if *version != ANSWER_FORMAT {
            return Err(LookupError::UnsupportedFormat("answer"));
        }
        if u32::from(*bits) > CountEncoding::LARGEST.message_bits() {
            return Err(LookupError::WrongParameters("answer"));
        }
        if body.len() != 4 * lwe_size() {
            return Err(LookupError::WrongParameters("answer"));
        }
        let values = body
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        Ok(Self {
            values,
            bits: *bits,
        })
    }
}

/// The message bits of `encoding` as the wire carries them (at most 7).
fn encoding_bits(encoding: CountEncoding) -> u8 {
    u8::try_from(encoding.message_bits()).unwrap_or(u8::MAX)
}
