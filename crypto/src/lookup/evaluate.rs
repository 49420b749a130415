//! The node's encrypted membership evaluation (no bootstrapping, no evaluation key).
//!
//! For one item the node holds the candidate tags of the queried bucket. It pads
//! them with fresh random dummy tags to a fixed count, so that time and shape do
//! not depend on how many records the bucket holds, and evaluates:
//!
//! 1. leaves: one polynomial per distinct high part (`tag >> 11`) with a
//!    monomial `X^low` for each real tag's `low = tag & 0x7ff` (dummies leave
//!    their leaf at zero), times the requester's encryption of `Δ · X^-low'`
//!    (format 2): coefficient 0 of the product is Δ when `low'` is among the
//!    leaf's lows. A format 1 tag has no such encryption: its leaf is the
//!    trivial encryption of Δ at each `low`, rotated after the tree (step 3);
//! 2. a CMux tree over the high bits, pruned to the leaves' paths: every
//!    internal node is `cmux(bit, child0 or 0, child1 or 0)`, one external
//!    product with a GGSW of the requester;
//! 3. format 1 only: a blind rotation by `X^-low` over the 11 low bits (one
//!    CMux per bit);
//! 4. sample extraction of coefficient 0: an LWE encryption of 1 if the tag is
//!    among the real candidates, else 0.
//!
//! All of it is tfhe `core_crypto`; the work is spread over the caller's rayon
//! pool, with one scratch buffer per worker thread.

use std::cell::RefCell;
use std::collections::BTreeMap;

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
    let low_mask = (1u64 << LOW_TAG_BITS) - 1;
    let tag_mask = if tag_bits == 64 {
        u64::MAX
    } else {
        (1u64 << tag_bits) - 1
    };

    // Each leaf's low parts, real (true) and dummy (false).
    let mut lows: BTreeMap<u64, Vec<(usize, bool)>> = BTreeMap::new();
    let mut rng = rand::thread_rng();
    let dummies = (candidates.len()..pad_to).map(|_| (rng.gen::<u64>(), false));
    for (tag, real) in candidates.iter().map(|&tag| (tag, true)).chain(dummies) {
        let tag = tag & tag_mask;
        lows.entry(tag >> LOW_TAG_BITS)
            .or_default()
            .push(((tag & low_mask) as usize, real));
    }
    let padded = candidates.len().max(pad_to);
    let leaves: BTreeMap<u64, Glwe> = lows
        .into_iter()
        .map(|(high, lows)| (high, leaf(&query.low, &lows, encoding)))
        .collect();

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

    let mut level: Vec<(u64, Glwe)> = leaves.into_iter().collect();
    for depth in 0..levels {
        let ggsw = &query.high[depth];
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
                    (None, Some(ct1)) => {
                        let mut product = zero_glwe();
                        add_external_product_assign_mem_optimized(
                            &mut product,
                            ggsw,
                            &ct1,
                            fft.as_view(),
                            stack,
                        );
                        product
                    }
                    (Some(mut ct0), None) => {
                        let mut product = zero_glwe();
                        add_external_product_assign_mem_optimized(
                            &mut product,
                            ggsw,
                            &ct0,
                            fft.as_view(),
                            stack,
                        );
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

    // Format 1: blind rotation by X^-low, bit i rotating by 2^i when set.
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

/// One leaf of the tree: the polynomial `Σ X^low` over its real tags' low
/// parts (`(low, true)`; a dummy's `(low, false)` adds nothing), encrypted
/// the way the tag's format needs. A dummy or a duplicate costs the same work
/// as a real tag, so that the time does not tell how many the bucket holds.
fn leaf(low: &LowBits, lows: &[(usize, bool)], encoding: CountEncoding) -> Glwe {
    let mut leaf = zero_glwe();
    match low {
        LowBits::Rotation(_) => {
            // Set, not add: a node answers presence, so duplicates count once.
            for &(at, real) in lows {
                if real {
                    leaf.get_mut_body().as_mut()[at] = encoding.delta();
                }
            }
        }
        LowBits::Monomial(requested) => {
            let mut term = zero_glwe();
            let mut added: Vec<usize> = Vec::with_capacity(lows.len());
            for &(at, real) in lows {
                for (mut out, input) in term
                    .as_mut_polynomial_list()
                    .iter_mut()
                    .zip(requested.as_polynomial_list().iter())
                {
                    polynomial_wrapping_monic_monomial_mul(&mut out, &input, MonomialDegree(at));
                }
                if real && !added.contains(&at) {
                    added.push(at);
                    glwe_ciphertext_add_assign(&mut leaf, &term);
                } else {
                    std::hint::black_box(&term);
                }
            }
            // The requester encrypted at the smallest Δ; a smaller federation
            // counts at a larger one (a power of two: exact).
            let scale = encoding.delta() / CountEncoding::LARGEST.delta();
            leaf.as_mut()
                .iter_mut()
                .for_each(|value| *value = value.wrapping_mul(scale));
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
