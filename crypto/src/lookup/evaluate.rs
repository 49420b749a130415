//! The node's encrypted membership evaluation (no bootstrapping, no evaluation key).
//!
//! For one item the node holds the candidate tags of the queried bucket. It pads
//! them with fresh random dummy tags to a fixed count, so that time and shape do
//! not depend on how many records the bucket holds, and evaluates:
//!
//! 1. indicators: the first half of the high bits (`tag >> 11`) is decided
//!    top-down. From an encryption of `Δ` (formats 1 and 4: trivial) or the
//!    requester's encryption of `Δ · X^-low'` (formats 2 and 3), each level
//!    multiplies by the query's bit (one external product) and subtracts
//!    that from the parent, giving both children. The result, for each
//!    pattern of those bits that some padded tag has, encrypts the start
//!    times "the query's bits are this pattern";
//! 2. leaves: one per distinct value of the other high bits, `Σ X^low ·
//!    indicator(pattern)` over its real tags (`low = tag & 0x7ff`), a
//!    rotation and an addition each (dummies add nothing);
//! 3. a CMux tree over the other high bits, pruned to the leaves' paths:
//!    every internal node is `cmux(bit, child0 or 0, child1 or 0)`, one
//!    external product with a GGSW of the requester. Its root's coefficient
//!    0 is Δ when the query's tag is among the real candidates (formats 2
//!    and 3), or its coefficient `low'` is (formats 1 and 4);
//! 4. formats 1 and 4: a blind rotation by `X^-low'` over the 11 low bits
//!    (one CMux per bit);
//! 5. sample extraction of coefficient 0: an LWE encryption of 1 if the tag is
//!    among the real candidates, else 0.
//!
//! Splitting the high bits this way is what keeps a bucket's cost low: in a
//! tree alone, each of 320 tags pays its own path of ~9 external products
//! below the levels where paths meet, and the top-down half shares them
//! ([`indicator_bits`]).
//!
//! All of it is tfhe `core_crypto`; the work is spread over the caller's rayon
//! pool, with one scratch buffer per worker thread.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};

use rand::Rng;
use rayon::prelude::*;
use tfhe::core_crypto::algorithms::polynomial_algorithms::{
    polynomial_wrapping_monic_monomial_div, polynomial_wrapping_monic_monomial_mul,
};
use tfhe::core_crypto::fft_impl::fft64::{c64, ABox};
use tfhe::core_crypto::prelude::*;

use super::params::{CountEncoding, NoiseBudget, LOW_TAG_BITS, PARAMETERS};
use super::query::EncryptedTag;
use super::LookupError;

thread_local! {
    static SCRATCH: RefCell<ComputationBuffers> = RefCell::new(ComputationBuffers::new());
}

/// Runs `f` with this thread's scratch buffer, grown to `bytes`. `f` must not
/// re-enter rayon: a stolen job on this thread would find the buffer borrowed.
pub(crate) fn with_scratch<R>(bytes: usize, f: impl FnOnce(&mut PodStack) -> R) -> R {
    SCRATCH.with(|cell| {
        let mut buffers = cell.borrow_mut();
        buffers.resize(bytes);
        f(buffers.stack())
    })
}

/// What one evaluation cost, for benchmarks and logs (no data values).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EvalStats {
    /// Tags in the evaluated table, real and dummy.
    pub padded_candidates: usize,
    /// CMux operations (external products) performed.
    pub cmuxes: usize,
}

/// How a prepared tag selects the leaf's coefficient of its low bits.
enum LowBits {
    /// Format 2: the requester's encryption of `Δ_LARGEST · X^-low`.
    Monomial(GlweCiphertextOwned<u64>),
    /// Format 1: GGSWs of the 11 low bits, for a blind rotation.
    Rotation(Vec<FourierGgsw>),
}

pub(crate) type FourierGgsw = FourierGgswCiphertext<ABox<[c64]>>;

/// A query item prepared for evaluation: GGSWs in the Fourier domain.
pub struct PreparedTag {
    /// GGSWs of the high bits, tree level by level (bit 11 first).
    high: Vec<FourierGgsw>,
    low: LowBits,
    /// The noise its GGSWs bring to the evaluation.
    noise: NoiseBudget,
}

impl PreparedTag {
    /// Regenerates the masks from the seeds and moves the GGSWs to the
    /// Fourier domain (one forward FFT per GGSW, in parallel).
    ///
    /// tfhe `unwrap`s and asserts on the seeds and shapes here, on the
    /// caller's rayon pool; an [`EncryptedTag`] only comes from
    /// [`EncryptedTag::encrypt`], [`EncryptedTag::encrypt_bitwise`] or the
    /// checked decoder, so they hold.
    pub fn prepare(tag: EncryptedTag) -> Self {
        let standard = tag.ggsws.par_decompress_into_ggsw_ciphertext_list();
        let fft = Fft::new(PARAMETERS.polynomial_size);
        let scratch_bytes =
            convert_standard_ggsw_ciphertext_to_fourier_mem_optimized_requirement(fft.as_view())
                .unaligned_bytes_required();
        let mut bits: Vec<FourierGgsw> = standard
            .par_iter()
            .map(|ggsw| {
                let mut fourier = FourierGgswCiphertext::new(
                    PARAMETERS.glwe_size(),
                    PARAMETERS.polynomial_size,
                    PARAMETERS.base_log,
                    PARAMETERS.level_count,
                );
                with_scratch(scratch_bytes, |stack| {
                    convert_standard_ggsw_ciphertext_to_fourier_mem_optimized(
                        &ggsw,
                        &mut fourier,
                        fft.as_view(),
                        stack,
                    )
                });
                fourier
            })
            .collect();
        match tag.low {
            Some((glwe, _)) => Self {
                high: bits,
                low: LowBits::Monomial(glwe.decompress_into_glwe_ciphertext()),
                noise: NoiseBudget::Fresh,
            },
            None => {
                let low_count = bits.len().min(usize::from(LOW_TAG_BITS));
                let high = bits.split_off(low_count);
                Self {
                    high,
                    low: LowBits::Rotation(bits),
                    noise: NoiseBudget::Fresh,
                }
            }
        }
    }

    /// A tag from GGSWs already in the Fourier domain and a low-bit
    /// encryption of `Δ · X^-low` (format 3's rebuilt GGSWs).
    pub(crate) fn from_parts(high: Vec<FourierGgsw>, low: GlweCiphertextOwned<u64>) -> Self {
        Self {
            high,
            low: LowBits::Monomial(low),
            noise: NoiseBudget::Rebuilt,
        }
    }

    /// A tag whose every bit is a GGSW already in the Fourier domain: the
    /// low bits rotate the tree's result (format 4's rebuilt GGSWs).
    pub(crate) fn from_bits(high: Vec<FourierGgsw>, low: Vec<FourierGgsw>) -> Self {
        Self {
            high,
            low: LowBits::Rotation(low),
            noise: NoiseBudget::Packed,
        }
    }

    /// The noise budget its answer's flooding is sized against: the
    /// encoding to re-randomise with is `encoding.with_noise(tag.noise())`.
    pub fn noise(&self) -> NoiseBudget {
        self.noise
    }

    /// Number of encrypted tag bits.
    pub fn bit_count(&self) -> usize {
        self.high.len()
            + match &self.low {
                LowBits::Monomial(_) => usize::from(LOW_TAG_BITS),
                LowBits::Rotation(bits) => bits.len(),
            }
    }
}

type Glwe = GlweCiphertextOwned<u64>;

fn zero_glwe() -> Glwe {
    GlweCiphertext::new(
        0u64,
        PARAMETERS.glwe_size(),
        PARAMETERS.polynomial_size,
        PARAMETERS.ciphertext_modulus,
    )
}

/// How many of the high bits are decided top-down into shared indicators
/// (the rest by the tree). Either half costs one external product per
/// distinct prefix of the tags' bits in it, so the expected total is
/// symmetric in the split and smallest when it is balanced: 672 external
/// products for 320 tags of 17 high bits, against 2,811 for the tree alone.
/// The tree takes the larger half, so that fewer real tags share a leaf
/// (each one sharing adds its indicator's noise to that leaf).
fn indicator_bits(levels: usize) -> usize {
    levels / 2
}

/// One tag of the padded table, in the leaf of its tree bits.
struct Entry {
    /// High bits decided top-down: the indicator it takes.
    pattern: u64,
    /// Low bits: the leaf coefficient it sets.
    low: usize,
    /// A real tag's first occurrence; dummies and duplicates add nothing.
    counts: bool,
}

/// Evaluates whether the encrypted tag is among `candidates` (the real tags of
/// the bucket), padded with random dummies to `pad_to` tags. Returns the LWE
/// encryption (native modulus, not yet re-randomised) of 1 on a match, else 0,
/// scaled by `encoding`'s Δ.
pub fn evaluate(
    query: &PreparedTag,
    candidates: &[u64],
    pad_to: usize,
    encoding: CountEncoding,
) -> Result<(LweCiphertextOwned<u64>, EvalStats), LookupError> {
    let tag_bits = query.bit_count();
    // More than the 11 low bits means at least one tree level in either format.
    if tag_bits <= usize::from(LOW_TAG_BITS) || tag_bits > 64 {
        return Err(LookupError::WrongParameters("encrypted tag"));
    }
    let levels = query.high.len();
    let split = indicator_bits(levels);
    let low_mask = (1u64 << LOW_TAG_BITS) - 1;
    let tag_mask = if tag_bits == 64 {
        u64::MAX
    } else {
        (1u64 << tag_bits) - 1
    };
    let pattern_mask = (1u64 << split) - 1;

    let mut rng = rand::thread_rng();
    let dummies = (candidates.len()..pad_to).map(|_| (rng.gen::<u64>(), false));
    let mut seen = BTreeSet::new();
    let mut leaves: BTreeMap<u64, Vec<Entry>> = BTreeMap::new();
    for (tag, real) in candidates.iter().map(|&tag| (tag, true)).chain(dummies) {
        let tag = tag & tag_mask;
        let high = tag >> LOW_TAG_BITS;
        // A node answers presence: a duplicate counts once.
        let counts = real && seen.insert(tag);
        leaves.entry(high >> split).or_default().push(Entry {
            pattern: high & pattern_mask,
            low: (tag & low_mask) as usize,
            counts,
        });
    }
    let padded = candidates.len().max(pad_to);

    let fft = Fft::new(PARAMETERS.polynomial_size);
    let scratch_bytes = cmux_assign_mem_optimized_requirement::<u64>(
        PARAMETERS.glwe_size(),
        PARAMETERS.polynomial_size,
        fft.as_view(),
    )
    .unaligned_bytes_required();
    let mut stats = EvalStats {
        padded_candidates: padded,
        cmuxes: 0,
    };

    let patterns: BTreeSet<u64> = leaves.values().flatten().map(|e| e.pattern).collect();
    let indicators = indicators(
        start(&query.low, encoding),
        &query.high[..split],
        &patterns,
        (fft.as_view(), scratch_bytes),
        &mut stats,
    );
    let mut level: Vec<(u64, Glwe)> = leaves
        .into_iter()
        .collect::<Vec<_>>()
        .into_par_iter()
        .map(|(top, entries)| (top, leaf(&entries, &indicators)))
        .collect();

    for ggsw in &query.high[split..] {
        let pairs = pair_siblings(level);
        stats.cmuxes += pairs.len();
        level = pairs
            .into_par_iter()
            .map(|(parent, zero_child, one_child)| {
                let node = with_scratch(scratch_bytes, |stack| match (zero_child, one_child) {
                    (Some(mut ct0), Some(mut ct1)) => {
                        cmux_assign_mem_optimized(&mut ct0, &mut ct1, ggsw, fft.as_view(), stack);
                        ct0
                    }
                    // A missing child is zero: the node is b*child or (1-b)*child,
                    // one external product without the CMux's extra passes.
                    (None, Some(ct1)) => times_bit(ggsw, &ct1, fft.as_view(), stack),
                    (Some(mut ct0), None) => {
                        let product = times_bit(ggsw, &ct0, fft.as_view(), stack);
                        glwe_ciphertext_sub_assign(&mut ct0, &product);
                        ct0
                    }
                    (None, None) => zero_glwe(),
                });
                (parent, node)
            })
            .collect();
    }
    let mut acc = level.pop().map(|(_, root)| root).unwrap_or_else(zero_glwe);

    // Formats 1 and 4: blind rotation by X^-low, bit i rotating by 2^i when set.
    if let LowBits::Rotation(bits) = &query.low {
        for (bit, ggsw) in bits.iter().enumerate() {
            let mut rotated = zero_glwe();
            for (mut out, input) in rotated
                .as_mut_polynomial_list()
                .iter_mut()
                .zip(acc.as_polynomial_list().iter())
            {
                polynomial_wrapping_monic_monomial_div(&mut out, &input, MonomialDegree(1 << bit));
            }
            with_scratch(scratch_bytes, |stack| {
                cmux_assign_mem_optimized(&mut acc, &mut rotated, ggsw, fft.as_view(), stack)
            });
            stats.cmuxes += 1;
        }
    }

    let mut lwe = LweCiphertext::new(
        0u64,
        PARAMETERS.lwe_dimension().to_lwe_size(),
        PARAMETERS.ciphertext_modulus,
    );
    extract_lwe_sample_from_glwe_ciphertext(&acc, &mut lwe, MonomialDegree(0));
    Ok((lwe, stats))
}

/// `bit · ct`: one external product.
fn times_bit(ggsw: &FourierGgsw, ct: &Glwe, fft: FftView<'_>, stack: &mut PodStack) -> Glwe {
    let mut product = zero_glwe();
    add_external_product_assign_mem_optimized(&mut product, ggsw, ct, fft, stack);
    product
}

/// What the indicators start from, an encryption of `Δ` to be multiplied by
/// the query's bits: the trivial one for a tag whose low bits rotate the
/// result afterwards, or the requester's `Δ_LARGEST · X^-low'` (formats 2
/// and 3), which leaves then shift by each candidate's `X^low`.
fn start(low: &LowBits, encoding: CountEncoding) -> Glwe {
    match low {
        LowBits::Rotation(_) => {
            let mut start = zero_glwe();
            start.get_mut_body().as_mut()[0] = encoding.delta();
            start
        }
        LowBits::Monomial(requested) => {
            // The requester encrypted at the smallest Δ; a smaller federation
            // counts at a larger one (a power of two: exact).
            let scale = encoding.delta() / CountEncoding::LARGEST.delta();
            let mut start = requested.clone();
            start
                .as_mut()
                .iter_mut()
                .for_each(|value| *value = value.wrapping_mul(scale));
            start
        }
    }
}

/// For each pattern of the first `bits.len()` high bits in `wanted`, an
/// encryption of `start` times "the query's bits are that pattern". Built
/// top-down, one bit per level: a node's one child is `bit · node`, one
/// external product, and its zero child `node - bit · node`, which is free;
/// so the cost is one external product per distinct prefix, shared by every
/// tag with that prefix instead of paid again on each tag's path.
fn indicators(
    start: Glwe,
    bits: &[FourierGgsw],
    wanted: &BTreeSet<u64>,
    (fft, scratch_bytes): (FftView<'_>, usize),
    stats: &mut EvalStats,
) -> BTreeMap<u64, Glwe> {
    let mut level: Vec<(u64, Glwe)> = vec![(0, start)];
    for (depth, ggsw) in bits.iter().enumerate() {
        let width_mask = (1u64 << (depth + 1)) - 1;
        let prefixes: BTreeSet<u64> = wanted.iter().map(|p| p & width_mask).collect();
        stats.cmuxes += level.len();
        level = level
            .into_par_iter()
            .map(|(prefix, node)| {
                let one = with_scratch(scratch_bytes, |stack| times_bit(ggsw, &node, fft, stack));
                let mut zero = node;
                glwe_ciphertext_sub_assign(&mut zero, &one);
                let one_prefix = prefix | 1 << depth;
                [
                    prefixes.contains(&prefix).then_some((prefix, zero)),
                    prefixes.contains(&one_prefix).then_some((one_prefix, one)),
                ]
            })
            .collect::<Vec<_>>()
            .into_iter()
            .flatten()
            .flatten()
            .collect();
    }
    level.into_iter().collect()
}

/// One leaf of the tree: `Σ X^low · indicator(pattern)` over its real tags.
/// A dummy or a duplicate costs the same work as a real tag, so that the
/// time does not tell how many the bucket holds.
fn leaf(entries: &[Entry], indicators: &BTreeMap<u64, Glwe>) -> Glwe {
    let mut leaf = zero_glwe();
    let mut term = zero_glwe();
    for entry in entries {
        let Some(indicator) = indicators.get(&entry.pattern) else {
            continue;
        };
        for (mut out, input) in term
            .as_mut_polynomial_list()
            .iter_mut()
            .zip(indicator.as_polynomial_list().iter())
        {
            polynomial_wrapping_monic_monomial_mul(&mut out, &input, MonomialDegree(entry.low));
        }
        if entry.counts {
            glwe_ciphertext_add_assign(&mut leaf, &term);
        } else {
            std::hint::black_box(&term);
        }
    }
    leaf
}

/// Groups a sorted level into (parent prefix, child with bit 0, child with bit 1).
fn pair_siblings(level: Vec<(u64, Glwe)>) -> Vec<(u64, Option<Glwe>, Option<Glwe>)> {
    let mut pairs: Vec<(u64, Option<Glwe>, Option<Glwe>)> = Vec::with_capacity(level.len());
    for (prefix, node) in level {
        let parent = prefix >> 1;
        let is_one = prefix & 1 == 1;
        match pairs.last_mut() {
            Some((last, _, one @ None)) if *last == parent && is_one => *one = Some(node),
            _ if is_one => pairs.push((parent, None, Some(node))),
            _ => pairs.push((parent, Some(node), None)),
        }
    }
    pairs
}
