//! Client side of a lookup item: the encrypted tag.
//!
//! # Format 2 (what clients send)
//! - The tag's 11 low bits as one seeded GLWE encryption of `Δ · X^-low`
//!   ([`LOW_TAG_BITS`] = log2 N): the node multiplies it by each leaf's
//!   monomials, so the leaf's coefficient `low` lands on coefficient 0 with
//!   no external product (the blind rotation of format 1 took 11 GGSWs and 11
//!   CMuxes). Δ is the smallest count scaling ([`CountEncoding::LARGEST`]);
//!   the node shifts it up to its federation's.
//! - The other bits (bit 11 + i in GGSW i) as seeded GGSWs for the CMux tree.
//! - Every body coefficient as its top [`KEPT_BITS`] bits, rounded: noise
//!   uniform on ±2^15 (standard deviation 2^14.2) on top of the ciphertexts'
//!   own TUniform(17) (2^16.2), so ~6% more noise in each GGSW. The masks
//!   come from the seeds and are exact.
//!
//! 28-bit tags: 430,113 bytes per item and node, was 917,613 (28 GGSWs with
//! full bodies). Dropping more bits costs noise fast: at 44 bits the GGSW
//! noise is 2^18.3, and the evaluation's goes over the budget's 2^47.
//!
//! What a requester can do with the GLWE it could already do with format 1's
//! GGSWs: encrypt any polynomial at any scale (a GGSW's gadget rows are its
//! own to choose), so the node's answer is a linear function of a leaf that
//! the requester picks either way (`lookup`'s residual-leak section).
//!
//! # Format 1 (still accepted)
//! All `tag_bits` bits as seeded GGSWs with full bodies, in tfhe's own
//! layout: watches stored before format 2 and older clients send it
//! ([`EncryptedTag::encrypt_bitwise`] makes one).

use rayon::prelude::*;
use tfhe::core_crypto::commons::math::random::{Seed, Uniform};
use tfhe::core_crypto::prelude::*;

use super::honest::{Honest, TagBits, WireSeededGgswList};
use super::keys::FheSecretKey;
use super::params::{CountEncoding, LOW_TAG_BITS, PARAMETERS};
use super::{wire, LookupError};
use crate::fingerprint::Tag;

/// Top bits of each body coefficient that travel in format 2.
pub const KEPT_BITS: u32 = 48;
pub(crate) const KEPT_BYTES: usize = (KEPT_BITS / 8) as usize;
/// Format byte and the two seeds (GGSW list, GLWE) before the bodies.
pub(crate) const ROUNDED_HEADER: usize = 1 + 16 + 16;
const WHAT: &str = "encrypted tag";

/// Coefficients of one seeded GGSW body: (k+1) · levels · N.
fn ggsw_coefficients() -> usize {
    seeded_ggsw_ciphertext_size(
        PARAMETERS.glwe_size(),
        PARAMETERS.polynomial_size,
        PARAMETERS.level_count,
    )
}

/// Bytes of one seeded GGSW body at full precision (format 1).
pub fn ggsw_bytes() -> usize {
    ggsw_coefficients() * 8
}

/// A tag encrypted for one node, as the client sends it.
pub struct EncryptedTag {
    /// GGSWs of the tree's bits (format 2) or of every bit (format 1).
    pub(crate) ggsws: SeededGgswCiphertextListOwned<u64>,
    /// The list's seed, which starts at the first byte of its stream: what
    /// format 2 carries, and all a node accepts in format 1.
    ggsw_seed: Seed,
    /// Format 2's encryption of `Δ · X^-low`, with its seed.
    pub(crate) low: Option<(SeededGlweCiphertextOwned<u64>, Seed)>,
}

/// Tag widths an encrypted tag of either format may have: the 11 leaf-index
/// bits plus at least one tree level, at most a `u64`.
pub(crate) fn check_tag_bits(tag_bits: u8) -> Result<(), LookupError> {
    if tag_bits <= LOW_TAG_BITS || tag_bits > 64 {
        Err(LookupError::WrongParameters(WHAT))
    } else {
        Ok(())
    }
}

fn seeded_list(count: usize, seed: Seed) -> SeededGgswCiphertextListOwned<u64> {
    SeededGgswCiphertextList::new(
        0u64,
        PARAMETERS.glwe_size(),
        PARAMETERS.polynomial_size,
        PARAMETERS.base_log,
        PARAMETERS.level_count,
        GgswCiphertextCount(count),
        seed.into(),
        PARAMETERS.ciphertext_modulus,
    )
}

/// A fresh seed and a list of GGSWs of `bits` (0 or 1 each), in parallel.
fn encrypt_bits(secret: &FheSecretKey, bits: &[u64]) -> (SeededGgswCiphertextListOwned<u64>, Seed) {
    let mut seeder = new_seeder();
    let seeder = seeder.as_mut();
    let seed = seeder.seed();
    let mut list = seeded_list(bits.len(), seed);
    let mut generator =
        EncryptionRandomGenerator::<DefaultRandomGenerator>::new(list.compression_seed(), seeder);
    let forks = generator
        .par_try_fork_from_config(list.encryption_fork_config(Uniform, PARAMETERS.noise))
        .expect("fork sizes come from the list's own parameters");
    list.par_iter_mut()
        .zip(forks)
        .zip(bits)
        .for_each(|((mut ggsw, mut generator), &bit)| {
            encrypt_constant_seeded_ggsw_ciphertext_with_pre_seeded_generator(
                &secret.glwe,
                &mut ggsw,
                Cleartext(bit),
                PARAMETERS.noise,
                &mut generator,
            );
        });
    (list, seed)
}

/// A fresh seed and a seeded GLWE encryption of `plaintext` under it.
pub(crate) fn seeded_glwe(
    secret: &FheSecretKey,
    plaintext: &PlaintextListOwned<u64>,
) -> (SeededGlweCiphertextOwned<u64>, Seed) {
    let mut seeder = new_seeder();
    let seed = seeder.seed();
    let mut glwe = SeededGlweCiphertext::new(
        0u64,
        PARAMETERS.glwe_size(),
        PARAMETERS.polynomial_size,
        seed.into(),
        PARAMETERS.ciphertext_modulus,
    );
    encrypt_seeded_glwe_ciphertext(
        &secret.glwe,
        &mut glwe,
        plaintext,
        PARAMETERS.noise,
        seeder.as_mut(),
    );
    (glwe, seed)
}

/// The tag's 11 low bits as formats 2 and 3 send them: a seeded GLWE of
/// `Δ · X^-low`.
pub(crate) fn encrypt_low_bits(
    secret: &FheSecretKey,
    tag: Tag,
) -> (SeededGlweCiphertextOwned<u64>, Seed) {
    let low = (tag.0 & ((1 << LOW_TAG_BITS) - 1)) as usize;
    seeded_glwe(secret, &low_plaintext(low))
}

/// `Δ · X^-low` in the negacyclic ring: `-Δ · X^(N - low)` unless low is 0.
fn low_plaintext(low: usize) -> PlaintextListOwned<u64> {
    let n = PARAMETERS.polynomial_size.0;
    let delta = CountEncoding::LARGEST.delta();
    let mut plaintext = PlaintextList::new(0u64, PlaintextCount(n));
    if low == 0 {
        plaintext.as_mut()[0] = delta;
    } else {
        plaintext.as_mut()[n - low] = delta.wrapping_neg();
    }
    plaintext
}

/// Appends each coefficient rounded to its top `kept_bytes` bytes.
pub(crate) fn push_rounded<'a>(
    out: &mut Vec<u8>,
    coefficients: impl IntoIterator<Item = &'a u64>,
    kept_bytes: usize,
) {
    let dropped = u64::BITS - 8 * kept_bytes as u32;
    for &coefficient in coefficients {
        let rounded = coefficient.wrapping_add(1 << (dropped - 1)) >> dropped;
        out.extend_from_slice(&rounded.to_le_bytes()[..kept_bytes]);
    }
}

/// The coefficients [`push_rounded`] wrote, back at full scale.
pub(crate) fn rounded_values(bytes: &[u8], kept_bytes: usize) -> impl Iterator<Item = u64> + '_ {
    let dropped = u64::BITS - 8 * kept_bytes as u32;
    bytes.chunks_exact(kept_bytes).map(move |kept| {
        let mut le = [0u8; 8];
        le[..kept_bytes].copy_from_slice(kept);
        u64::from_le_bytes(le) << dropped
    })
}

/// The layout formats 2 and 3 share: format byte, two seeds, then every body
/// coefficient rounded to its top [`KEPT_BITS`] bits.
pub(crate) fn encode_rounded(format: u8, seeds: [Seed; 2], bodies: [&[u64]; 2]) -> Vec<u8> {
    let coefficients = bodies[0].len() + bodies[1].len();
    let mut out = Vec::with_capacity(ROUNDED_HEADER + coefficients * KEPT_BYTES);
    out.push(format);
    for seed in seeds {
        out.extend_from_slice(&seed.0.to_le_bytes());
    }
    push_rounded(&mut out, bodies.into_iter().flatten(), KEPT_BYTES);
    out
}

/// The seeds and body coefficients of [`encode_rounded`]'s layout, whose
/// length the caller has checked.
pub(crate) fn decode_rounded(bytes: &[u8]) -> ([Seed; 2], impl Iterator<Item = u64> + '_) {
    let seeds = [wire::seed_at(bytes, 1), wire::seed_at(bytes, 17)];
    (seeds, rounded_values(&bytes[ROUNDED_HEADER..], KEPT_BYTES))
}

impl EncryptedTag {
    /// Encrypts the low `tag_bits` bits of `tag` in format 2. Panics on
    /// `tag_bits` outside 12..=64 (a federation file never has them).
    pub fn encrypt(secret: &FheSecretKey, tag: Tag, tag_bits: u8) -> Self {
        check_tag_bits(tag_bits).expect("tag bits of a valid federation");
        let high: Vec<u64> = (LOW_TAG_BITS..tag_bits)
            .map(|bit| (tag.0 >> bit) & 1)
            .collect();
        let (ggsws, ggsw_seed) = encrypt_bits(secret, &high);
        Self {
            ggsws,
            ggsw_seed,
            low: Some(encrypt_low_bits(secret, tag)),
        }
    }

    /// Encrypts the low `tag_bits` bits of `tag` in format 1, one GGSW per
    /// bit: what clients sent before format 2.
    pub fn encrypt_bitwise(secret: &FheSecretKey, tag: Tag, tag_bits: u8) -> Self {
        let bits: Vec<u64> = (0..tag_bits).map(|bit| (tag.0 >> bit) & 1).collect();
        let (ggsws, ggsw_seed) = encrypt_bits(secret, &bits);
        Self {
            ggsws,
            ggsw_seed,
            low: None,
        }
    }

    /// Number of encrypted tag bits.
    pub fn bit_count(&self) -> usize {
        let ggsws = self.ggsws.ggsw_ciphertext_count().0;
        match self.low {
            Some(_) => ggsws + usize::from(LOW_TAG_BITS),
            None => ggsws,
        }
    }

    /// Encoding for the wire, in the tag's own format.
    pub fn to_bytes(&self) -> Vec<u8> {
        let Some((glwe, glwe_seed)) = &self.low else {
            return wire::encode(&self.ggsws);
        };
        encode_rounded(
            wire::FORMAT_ROUNDED_TAG,
            [self.ggsw_seed, *glwe_seed],
            [self.ggsws.as_ref(), glwe.as_ref()],
        )
    }

    /// Bytes of a `tag_bits`-bit tag in format 2, what a client sends.
    pub fn encoded_len(tag_bits: u8) -> usize {
        let ggsws = usize::from(tag_bits.saturating_sub(LOW_TAG_BITS));
        ROUNDED_HEADER + (ggsws * ggsw_coefficients() + PARAMETERS.polynomial_size.0) * KEPT_BYTES
    }

    /// Most bytes the encoding of a `tag_bits`-bit tag takes (what
    /// [`Self::from_bytes`] accepts at most, format 1 being the larger).
    pub fn max_encoded_len(tag_bits: u8) -> usize {
        let full = 1 + usize::try_from(<WireSeededGgswList as Honest>::limit(TagBits(tag_bits)))
            .unwrap_or(usize::MAX);
        full.max(Self::encoded_len(tag_bits))
    }

    /// Decodes an untrusted encrypted tag, refusing anything but a tag of
    /// `tag_bits` bits in format 1 or 2 with [`PARAMETERS`], seeded the way
    /// [`Self::encrypt`] seeds it ([`super::honest`] lists what tfhe would
    /// otherwise trust), and `tag_bits` outside what [`super::evaluate`] can
    /// use.
    pub fn from_bytes(bytes: &[u8], tag_bits: u8) -> Result<Self, LookupError> {
        match bytes.first() {
            Some(&wire::FORMAT_ROUNDED_TAG) => Self::from_rounded(bytes, tag_bits),
            _ => {
                let (ggsws, ggsw_seed) =
                    wire::decode::<WireSeededGgswList>(bytes, TagBits(tag_bits))?;
                Ok(Self {
                    ggsws,
                    ggsw_seed,
                    low: None,
                })
            }
        }
    }

    /// Format 2: its length is fixed by `tag_bits`, and any 16 bytes are a
    /// seed that starts where an honest client's does, so the length is the
    /// one field to check.
    fn from_rounded(bytes: &[u8], tag_bits: u8) -> Result<Self, LookupError> {
        check_tag_bits(tag_bits)?;
        wire::check_fixed(
            bytes,
            wire::FORMAT_ROUNDED_TAG,
            Self::encoded_len(tag_bits),
            WHAT,
        )?;
        let ([ggsw_seed, glwe_seed], mut values) = decode_rounded(bytes);
        let count = usize::from(tag_bits - LOW_TAG_BITS);
        let p = &PARAMETERS;
        let ggsws = SeededGgswCiphertextList::from_container(
            values.by_ref().take(count * ggsw_coefficients()).collect(),
            p.glwe_size(),
            p.polynomial_size,
            p.base_log,
            p.level_count,
            ggsw_seed.into(),
            p.ciphertext_modulus,
        );
        let glwe = SeededGlweCiphertext::from_container(
            values.collect(),
            p.glwe_size(),
            glwe_seed.into(),
            p.ciphertext_modulus,
        );
        Ok(Self {
            ggsws,
            ggsw_seed,
            low: Some((glwe, glwe_seed)),
        })
    }
}
