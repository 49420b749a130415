//! Format 3: compressed queries, 24,609 bytes per item and node.
//!
//! The requester packs every tree bit, once per gadget level of the GGSW the
//! tree needs, into the coefficients of one seeded GLWE, and sends the 11 low
//! bits as format 2 does (one GLWE of `Δ · X^-low`). The node expands the
//! packed GLWE into one GLWE per coefficient with automorphisms `X -> X^t`
//! and key switching (SealPIR's expansion), and rebuilds each GGSW's
//! `s · bit` rows by an external product with a GGSW of the requester's own
//! key (Chen–Chillotti–Ren's conversion). The automorphism keys and that
//! GGSW are the requester's one-time [`ExpansionKey`]: 3,407,905 bytes,
//! registered once and cached by nodes under its [`KeyId`]. It holds eight
//! levels of automorphisms: format 3 expands six, format 4's packed groups
//! ([`super::packed`]) all eight. No bootstrapping
//! or server key exists: the key holds key switching material for the
//! requester's own key only, under circular security as in Spiral.
//!
//! With a power-of-two modulus nothing can be divided by the 2^L that L
//! expansion levels multiply each value by: the requester packs each value
//! pre-divided by 2^L (every value is a multiple of a large power of two).
//!
//! Key switching is an external product too: a "GGSW" whose mask rows
//! encrypt `-s' · q/B^j` under `s` and whose body rows are zero maps
//! `(a, 0)` to a GLWE under `s` of phase `-a · s'`; adding `(0, b)` gives
//! `(a, b)`'s phase under `s'`. So it runs on tfhe's FFT external product,
//! not its Karatsuba GLWE key switch.
//!
//! The noise this costs, and why the tree's GGSWs take three levels of base
//! 2^8 where fresh ones take one of 2^23, is in [`super::params`].

use rayon::prelude::*;
use tfhe::core_crypto::algorithms::polynomial_algorithms::{
    polynomial_wrapping_monic_monomial_div_assign, polynomial_wrapping_mul,
};
use tfhe::core_crypto::commons::math::random::Seed;
use tfhe::core_crypto::prelude::*;
use zeroize::{Zeroize, Zeroizing};

use super::evaluate::{with_scratch, FourierGgsw, PreparedTag};
use super::keys::{FheSecretKey, KeyId};
use super::params::{CompressionParams, COMPRESSION, LOW_TAG_BITS, PARAMETERS};
use super::query::{
    check_tag_bits, decode_rounded, encode_rounded, encrypt_low_bits, seeded_glwe, KEPT_BYTES,
    ROUNDED_HEADER,
};
use super::wire::{self, check_fixed, seed_at};
use super::LookupError;
use crate::fingerprint::Tag;

type Glwe = GlweCiphertextOwned<u64>;

const TAG: &str = "compressed tag";
const KEY: &str = "expansion key";
/// The expansion key's format byte and two seeds.
const HEADER: usize = 1 + 16 + 16;

pub(super) fn n() -> usize {
    PARAMETERS.polynomial_size.0
}

fn zero_glwe() -> Glwe {
    GlweCiphertext::new(
        0u64,
        PARAMETERS.glwe_size(),
        PARAMETERS.polynomial_size,
        PARAMETERS.ciphertext_modulus,
    )
}

/// The key's bodies, at full precision: 8 bytes each.
fn full_values(bytes: &[u8]) -> Vec<u64> {
    bytes
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().expect("chunks of 8")))
        .collect()
}

/// The exponent t of expansion level `level`'s automorphism `X -> X^t`.
fn automorphism_exponent(level: usize) -> usize {
    n() / (1 << level) + 1
}

/// `X -> X^t` (t odd, so a signed permutation) on one negacyclic polynomial.
fn automorphism(input: &[u64], t: usize, out: &mut [u64]) {
    let n = input.len();
    for (i, &c) in input.iter().enumerate() {
        let j = (i * t) % (2 * n);
        if j < n {
            out[j] = c;
        } else {
            out[j - n] = c.wrapping_neg();
        }
    }
}

/// tfhe's factor of the gadget row at `index` (its order: the smallest
/// factor, the last level, first).
pub(super) fn gadget_factor((base_log, levels): (usize, usize), index: usize) -> u64 {
    1u64 << (64 - base_log * (levels - index))
}

/// Tree bits that format 3 carries for `tag_bits`-bit tags, and the values
/// packed for them: one per bit and tree gadget level.
fn packed_count(tag_bits: u8, p: CompressionParams) -> usize {
    usize::from(tag_bits - LOW_TAG_BITS) * p.tree.1
}

/// Tag widths that fit one packed GLWE.
fn check_compressed_bits(tag_bits: u8) -> Result<(), LookupError> {
    check_tag_bits(tag_bits)?;
    if packed_count(tag_bits, COMPRESSION) > 1 << COMPRESSION.expansion_levels {
        return Err(LookupError::WrongParameters(TAG));
    }
    Ok(())
}

/// Automorphisms the key holds: enough for either format's expansion.
fn key_levels(p: CompressionParams) -> usize {
    p.expansion_levels.max(p.packing_levels)
}

fn automorphism_rows(p: CompressionParams) -> usize {
    key_levels(p) * p.key_switch.1
}

fn conversion_rows(p: CompressionParams) -> usize {
    2 * p.conversion.1
}

fn key_len(p: CompressionParams) -> usize {
    HEADER + (automorphism_rows(p) + conversion_rows(p)) * n() * 8
}

/// A seeded list of `count` GLWEs under `secret`, each encrypting one
/// polynomial of `messages`.
fn encrypt_list(
    secret: &FheSecretKey,
    messages: &[u64],
) -> (SeededGlweCiphertextListOwned<u64>, Seed) {
    let mut seeder = new_seeder();
    let seeder = seeder.as_mut();
    let seed = seeder.seed();
    let mut list = SeededGlweCiphertextList::new(
        0u64,
        PARAMETERS.glwe_size(),
        PARAMETERS.polynomial_size,
        GlweCiphertextCount(messages.len() / n()),
        seed.into(),
        PARAMETERS.ciphertext_modulus,
    );
    encrypt_seeded_glwe_ciphertext_list(
        &secret.glwe,
        &mut list,
        &PlaintextList::from_container(messages),
        PARAMETERS.noise,
        seeder,
    );
    (list, seed)
}

/// The requester's one-time material for format 3: key switching keys for
/// the expansion's automorphisms and a GGSW of its own key, all encrypted
/// under that key. That they reveal nothing of it rests on circular
/// security, as in Spiral.
pub struct ExpansionKey {
    params: CompressionParams,
    automorphisms: SeededGlweCiphertextListOwned<u64>,
    automorphism_seed: Seed,
    conversion: SeededGlweCiphertextListOwned<u64>,
    conversion_seed: Seed,
}

impl ExpansionKey {
    /// Makes the key for `secret`.
    pub fn generate(secret: &FheSecretKey) -> Self {
        Self::generate_with(secret, COMPRESSION)
    }

    /// The key for other gadgets than [`COMPRESSION`]'s (measurements).
    pub(crate) fn generate_with(secret: &FheSecretKey, p: CompressionParams) -> Self {
        // Every plaintext below is the secret key in some form: wiped on drop.
        let s = Zeroizing::new(secret.glwe.as_ref().to_vec());
        // Level e's key, gadget row i: -τ_e(s) · q/B^(levels - i).
        let mut automorphisms = Zeroizing::new(Vec::with_capacity(automorphism_rows(p) * n()));
        let mut rotated = Zeroizing::new(vec![0u64; n()]);
        for level in 0..key_levels(p) {
            automorphism(&s, automorphism_exponent(level), &mut rotated);
            for index in 0..p.key_switch.1 {
                let factor = gadget_factor(p.key_switch, index);
                automorphisms.extend(
                    rotated
                        .iter()
                        .map(|c| c.wrapping_neg().wrapping_mul(factor)),
                );
            }
        }
        // A GGSW of the polynomial s in tfhe's layout: row (-s·s, s) · q/B^j.
        let key = Polynomial::from_container(&s[..]);
        let mut square = Polynomial::new(0u64, PARAMETERS.polynomial_size);
        polynomial_wrapping_mul(&mut square, &key, &key);
        let mut conversion = Zeroizing::new(Vec::with_capacity(conversion_rows(p) * n()));
        for index in 0..p.conversion.1 {
            let factor = gadget_factor(p.conversion, index);
            conversion.extend(
                square
                    .as_ref()
                    .iter()
                    .map(|c| c.wrapping_neg().wrapping_mul(factor)),
            );
            conversion.extend(s.iter().map(|c| c.wrapping_mul(factor)));
        }
        square.as_mut().zeroize();
        let (automorphisms, automorphism_seed) = encrypt_list(secret, &automorphisms);
        let (conversion, conversion_seed) = encrypt_list(secret, &conversion);
        Self {
            params: p,
            automorphisms,
            automorphism_seed,
            conversion,
            conversion_seed,
        }
    }

    /// Bytes of the encoding: bodies at full precision (the keys' noise is
    /// what the expansion multiplies most).
    pub fn encoded_len() -> usize {
        key_len(COMPRESSION)
    }

    /// Encoding for the wire.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(key_len(self.params));
        out.push(wire::FORMAT_EXPANSION_KEY);
        out.extend_from_slice(&self.automorphism_seed.0.to_le_bytes());
        out.extend_from_slice(&self.conversion_seed.0.to_le_bytes());
        for &c in self
            .automorphisms
            .as_ref()
            .iter()
            .chain(self.conversion.as_ref())
        {
            out.extend_from_slice(&c.to_le_bytes());
        }
        out
    }

    /// The id under which nodes cache the key: SHA-256 of its encoding.
    pub fn id(&self) -> KeyId {
        KeyId::of(&self.to_bytes())
    }

    /// Whether `bytes` is an expansion key of `secret`: its conversion
    /// GGSW's top row of `s` decrypts to `s · q/2^6`. A key made for another
    /// secret (a restored backup, an interrupted `keys init --force`) would
    /// give its requester random counts, not an error.
    pub fn belongs_to(secret: &FheSecretKey, bytes: &[u8]) -> bool {
        let p = COMPRESSION;
        if check_fixed(bytes, wire::FORMAT_EXPANSION_KEY, Self::encoded_len(), KEY).is_err() {
            return false;
        }
        let conversion = full_values(&bytes[HEADER + automorphism_rows(p) * n() * 8..]);
        let index = p.conversion.1 - 1;
        let Some(row) = decompress(&conversion, seed_at(bytes, 17))
            .into_iter()
            .nth(2 * index + 1)
        else {
            return false;
        };
        let mut phase = PlaintextList::new(0u64, PlaintextCount(n()));
        decrypt_glwe_ciphertext(&secret.glwe, &row, &mut phase);
        let factor = gadget_factor(p.conversion, index);
        let belongs = phase
            .as_ref()
            .iter()
            .zip(secret.glwe.as_ref())
            .all(|(&got, &s)| {
                got.wrapping_sub(s.wrapping_mul(factor))
                    .wrapping_add(factor / 4)
                    < factor / 2
            });
        // The phase is the secret key, scaled.
        phase.as_mut().zeroize();
        belongs
    }

    /// The id of an untrusted encoding, once its format byte and length
    /// (all a party that does not evaluate can check) are an expansion key's.
    pub fn id_of(bytes: &[u8]) -> Result<KeyId, LookupError> {
        check_fixed(bytes, wire::FORMAT_EXPANSION_KEY, Self::encoded_len(), KEY)?;
        Ok(KeyId::of(bytes))
    }
}

/// A requester's expansion key as a node uses it: every row in the Fourier
/// domain. Its id is the caller's to check ([`ExpansionKey::id_of`]) before
/// the preparation, which costs far more.
pub struct PreparedExpansionKey {
    pub(super) params: CompressionParams,
    automorphisms: Vec<FourierGgsw>,
    conversion: FourierGgsw,
}

impl std::fmt::Debug for PreparedExpansionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreparedExpansionKey")
            .field("params", &self.params)
            .finish_non_exhaustive()
    }
}

/// A GGSW of zeros with `gadget`'s base log and levels.
fn zero_ggsw((base_log, levels): (usize, usize)) -> GgswCiphertextOwned<u64> {
    GgswCiphertext::new(
        0u64,
        PARAMETERS.glwe_size(),
        PARAMETERS.polynomial_size,
        DecompositionBaseLog(base_log),
        DecompositionLevelCount(levels),
        PARAMETERS.ciphertext_modulus,
    )
}

/// A Fourier "GGSW" of `gadget`: row 0 of each level from `masks`, row 1
/// from `bodies` (zero when there are none).
fn fourier_rows(gadget: (usize, usize), masks: &[&Glwe], bodies: &[&Glwe]) -> FourierGgsw {
    let mut standard = zero_ggsw(gadget);
    for (index, mut matrix) in standard.iter_mut().enumerate() {
        let mut rows = matrix.as_mut_glwe_list();
        rows.get_mut(0)
            .as_mut()
            .copy_from_slice(masks[index].as_ref());
        if let Some(body) = bodies.get(index) {
            rows.get_mut(1).as_mut().copy_from_slice(body.as_ref());
        }
    }
    let mut fourier = FourierGgswCiphertext::new(
        standard.glwe_size(),
        standard.polynomial_size(),
        standard.decomposition_base_log(),
        standard.decomposition_level_count(),
    );
    convert_standard_ggsw_ciphertext_to_fourier(&standard, &mut fourier);
    fourier
}

/// The GLWEs of a seeded list given by its bodies and seed.
fn decompress(bodies: &[u64], seed: Seed) -> Vec<Glwe> {
    let list = SeededGlweCiphertextList::from_container(
        bodies.to_vec(),
        PARAMETERS.glwe_size(),
        PARAMETERS.polynomial_size,
        seed.into(),
        PARAMETERS.ciphertext_modulus,
    )
    .decompress_into_glwe_ciphertext_list();
    list.iter()
        .map(|glwe| {
            GlweCiphertext::from_container(
                glwe.as_ref().to_vec(),
                PARAMETERS.polynomial_size,
                PARAMETERS.ciphertext_modulus,
            )
        })
        .collect()
}

impl PreparedExpansionKey {
    /// Decodes an untrusted expansion key. Its length is fixed by
    /// [`COMPRESSION`] and any 16 bytes are a seed that starts where an
    /// honest requester's does, so the format byte and the length are the
    /// fields to check. What the rows encrypt is the requester's own
    /// business: a key that is not what it claims garbles only that
    /// requester's answers, as GGSWs of its choosing could already.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, LookupError> {
        Self::from_bytes_with(bytes, COMPRESSION)
    }

    pub(crate) fn from_bytes_with(bytes: &[u8], p: CompressionParams) -> Result<Self, LookupError> {
        check_fixed(bytes, wire::FORMAT_EXPANSION_KEY, key_len(p), KEY)?;
        let values = full_values(&bytes[HEADER..]);
        let (automorphisms, conversion) = values.split_at(automorphism_rows(p) * n());
        let automorphisms = decompress(automorphisms, seed_at(bytes, 1));
        let automorphisms: Vec<FourierGgsw> = automorphisms
            .par_chunks(p.key_switch.1)
            .map(|rows| fourier_rows(p.key_switch, &rows.iter().collect::<Vec<_>>(), &[]))
            .collect();
        let rows = decompress(conversion, seed_at(bytes, 17));
        let masks: Vec<&Glwe> = rows.iter().step_by(2).collect();
        let bodies: Vec<&Glwe> = rows.iter().skip(1).step_by(2).collect();
        Ok(Self {
            params: p,
            automorphisms,
            conversion: fourier_rows(p.conversion, &masks, &bodies),
        })
    }

    /// `X -> X^t` applied to a GLWE under `s`, switched back to `s`.
    fn substitute(&self, input: &Glwe, level: usize) -> Glwe {
        let t = automorphism_exponent(level);
        let mut mask_only = zero_glwe();
        let mut out = zero_glwe();
        automorphism(
            input.get_mask().as_ref(),
            t,
            mask_only.get_mut_mask().as_mut(),
        );
        automorphism(input.get_body().as_ref(), t, out.get_mut_body().as_mut());
        external_product(&mut out, &self.automorphisms[level], &mask_only);
        out
    }

    /// The first `count` GLWEs of `levels` levels of expansion of `packed`:
    /// GLWE i encrypts packed coefficient i (times 2^levels) as a constant
    /// polynomial.
    pub(super) fn expand(&self, packed: Glwe, count: usize, levels: usize) -> Vec<Glwe> {
        let mut list = vec![packed];
        for level in 0..levels {
            let stride = 1 << level;
            // Entry k at this level holds the coefficients ≡ k mod 2^level;
            // its two children are k and k + stride, wanted below `count`.
            let children: Vec<(Glwe, Option<Glwe>)> = list
                .par_iter()
                .enumerate()
                .map(|(k, c)| {
                    let sub = self.substitute(c, level);
                    let mut even = c.clone();
                    glwe_ciphertext_add_assign(&mut even, &sub);
                    let odd = (k + stride < count).then(|| {
                        let mut odd = c.clone();
                        glwe_ciphertext_sub_assign(&mut odd, &sub);
                        for mut poly in odd.as_mut_polynomial_list().iter_mut() {
                            polynomial_wrapping_monic_monomial_div_assign(
                                &mut poly,
                                MonomialDegree(stride),
                            );
                        }
                        odd
                    });
                    (even, odd)
                })
                .collect();
            let mut next: Vec<Option<Glwe>> = (0..2 * stride).map(|_| None).collect();
            for (k, (even, odd)) in children.into_iter().enumerate() {
                next[k] = Some(even);
                next[k + stride] = odd;
            }
            list = next.into_iter().map_while(|c| c).collect();
            list.truncate(count);
        }
        list
    }

    /// Rebuilds the GGSW of one tree bit from its expanded GLWEs (one per
    /// tree gadget level, tfhe's order): row 1 is the GLWE of `bit · g`,
    /// row 0 its product with the key, negated, `-s · bit · g`.
    pub(super) fn convert(&self, glwes: &[Glwe]) -> FourierGgsw {
        let rows = self.key_rows(glwes);
        fourier_rows(
            self.params.tree,
            &rows.iter().collect::<Vec<_>>(),
            &glwes.iter().collect::<Vec<_>>(),
        )
    }
}

impl PreparedExpansionKey {
    /// The `-s · bit · g` rows for the GLWEs of `bit · g`.
    fn key_rows(&self, glwes: &[Glwe]) -> Vec<Glwe> {
        glwes
            .iter()
            .map(|glwe| {
                let mut times_s = zero_glwe();
                external_product(&mut times_s, &self.conversion, glwe);
                glwe_ciphertext_opposite_assign(&mut times_s);
                times_s
            })
            .collect()
    }
}

fn external_product(out: &mut Glwe, ggsw: &FourierGgsw, input: &Glwe) {
    let fft = Fft::new(PARAMETERS.polynomial_size);
    let bytes = add_external_product_assign_mem_optimized_requirement::<u64>(
        PARAMETERS.glwe_size(),
        PARAMETERS.polynomial_size,
        fft.as_view(),
    )
    .unaligned_bytes_required();
    with_scratch(bytes, |stack| {
        add_external_product_assign_mem_optimized(out, ggsw, input, fft.as_view(), stack)
    });
}

/// A tag encrypted for one node in format 3, as the client sends it.
pub struct CompressedTag {
    packed: SeededGlweCiphertextOwned<u64>,
    packed_seed: Seed,
    low: SeededGlweCiphertextOwned<u64>,
    low_seed: Seed,
    tag_bits: u8,
}

/// The values packed for `bits` (the tree bits, bit 11 first): bit i at
/// gadget index j in slot `i · levels + j`, as `bit · q/B^(levels - j)`.
pub(super) fn tree_values(bits: impl Iterator<Item = u64>, p: CompressionParams) -> Vec<u64> {
    let gadget = p.tree;
    bits.flat_map(|bit| (0..gadget.1).map(move |index| bit * gadget_factor(gadget, index)))
        .collect()
}

impl CompressedTag {
    /// Encrypts the low `tag_bits` bits of `tag`. Panics on widths that
    /// [`Self::supports`] refuses.
    pub fn encrypt(secret: &FheSecretKey, tag: Tag, tag_bits: u8) -> Self {
        check_compressed_bits(tag_bits).expect("tag bits of a valid federation");
        Self::encrypt_with(secret, tag, tag_bits, COMPRESSION)
    }

    pub(crate) fn encrypt_with(
        secret: &FheSecretKey,
        tag: Tag,
        tag_bits: u8,
        p: CompressionParams,
    ) -> Self {
        let values = tree_values((LOW_TAG_BITS..tag_bits).map(|bit| (tag.0 >> bit) & 1), p);
        assert!(
            values.len() <= 1 << p.expansion_levels,
            "more values than slots"
        );
        let mut plaintext = PlaintextList::new(0u64, PlaintextCount(n()));
        for (slot, value) in plaintext.as_mut().iter_mut().zip(values) {
            *slot = value >> p.expansion_levels;
        }
        let (packed, packed_seed) = seeded_glwe(secret, &plaintext);
        let (low, low_seed) = encrypt_low_bits(secret, tag);
        Self {
            packed,
            packed_seed,
            low,
            low_seed,
            tag_bits,
        }
    }

    /// Whether `tag_bits`-bit tags fit format 3: up to 32 bits (21 tree bits,
    /// three values each, in 64 slots). Wider ones need a seventh expansion
    /// level, whose noise the budget has no room for; clients send them in
    /// format 2.
    pub fn supports(tag_bits: u8) -> bool {
        check_compressed_bits(tag_bits).is_ok()
    }

    /// Whether untrusted tag bytes claim format 3 (then they need the
    /// requester's expansion key).
    pub fn is_compressed(bytes: &[u8]) -> bool {
        bytes.first() == Some(&wire::FORMAT_COMPRESSED_TAG)
    }

    /// Bytes of the encoding, whatever the tag's width.
    pub fn encoded_len() -> usize {
        ROUNDED_HEADER + 2 * n() * KEPT_BYTES
    }

    /// Encoding for the wire: the bodies rounded to their top 48 bits, as in
    /// format 2.
    pub fn to_bytes(&self) -> Vec<u8> {
        encode_rounded(
            wire::FORMAT_COMPRESSED_TAG,
            [self.packed_seed, self.low_seed],
            [self.packed.as_ref(), self.low.as_ref()],
        )
    }

    /// Refuses untrusted bytes that [`Self::from_bytes`] would: the width,
    /// the format byte and the length (cheap: nothing is decoded).
    pub fn check(bytes: &[u8], tag_bits: u8) -> Result<(), LookupError> {
        check_compressed_bits(tag_bits)?;
        check_fixed(bytes, wire::FORMAT_COMPRESSED_TAG, Self::encoded_len(), TAG)
    }

    /// Decodes an untrusted compressed tag of `tag_bits` bits: the format
    /// byte and the length are its only fields (any seed starts where an
    /// honest client's does).
    pub fn from_bytes(bytes: &[u8], tag_bits: u8) -> Result<Self, LookupError> {
        Self::check(bytes, tag_bits)?;
        let ([packed_seed, low_seed], mut values) = decode_rounded(bytes);
        let glwe = |values: Vec<u64>, seed: Seed| {
            SeededGlweCiphertext::from_container(
                values,
                PARAMETERS.glwe_size(),
                seed.into(),
                PARAMETERS.ciphertext_modulus,
            )
        };
        Ok(Self {
            packed: glwe(values.by_ref().take(n()).collect(), packed_seed),
            packed_seed,
            low: glwe(values.collect(), low_seed),
            low_seed,
            tag_bits,
        })
    }
}

impl PreparedTag {
    /// Expands a format 3 tag with its requester's key into the tree's
    /// GGSWs, in the Fourier domain, on the caller's rayon pool.
    pub fn prepare_compressed(tag: CompressedTag, key: &PreparedExpansionKey) -> Self {
        let count = packed_count(tag.tag_bits, key.params);
        let expanded = key.expand(
            tag.packed.decompress_into_glwe_ciphertext(),
            count,
            key.params.expansion_levels,
        );
        let high: Vec<FourierGgsw> = expanded
            .par_chunks(key.params.tree.1)
            .map(|glwes| key.convert(glwes))
            .collect();
        Self::from_parts(high, tag.low.decompress_into_glwe_ciphertext())
    }
}

#[cfg(test)]
mod experiment;
#[cfg(test)]
pub(super) mod tests;
