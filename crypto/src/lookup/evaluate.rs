//! The node's encrypted membership evaluation (no bootstrapping, no evaluation key).
//!
//! For one item the node holds the candidate tags of the queried bucket. It pads
//! them with fresh random dummy tags to a fixed count, so that time and shape do
//! not depend on how many records the bucket holds, and evaluates:
//!
//! 1. leaves: one trivially encrypted polynomial per distinct high part
//!    (`tag >> 11`) with Δ at coefficient `tag & 0x7ff` for each real tag
//!    (dummies leave their leaf at zero);
//! 2. a CMux tree over the high bits, pruned to the leaves' paths: every
//!    internal node is `cmux(bit, child0 or 0, child1 or 0)`, one external
//!    product with a GGSW of the requester;
//! 3. a blind rotation by `X^-low` over the 11 low bits (one CMux per bit);
//! 4. sample extraction of coefficient 0: an LWE encryption of 1 if the tag is
//!    among the real candidates, else 0.
//!
//! All of it is tfhe `core_crypto`; the work is spread over the caller's rayon
//! pool, with one scratch buffer per worker thread.

use std::cell::RefCell;
use std::collections::BTreeMap;

use rand::Rng;
use rayon::prelude::*;
use tfhe::core_crypto::algorithms::polynomial_algorithms::polynomial_wrapping_monic_monomial_div;
use tfhe::core_crypto::fft_impl::fft64::{c64, ABox};
use tfhe::core_crypto::prelude::*;

use super::params::{CountEncoding, LOW_TAG_BITS, PARAMETERS};
use super::query::EncryptedTag;
use super::LookupError;

thread_local! {
    static SCRATCH: RefCell<ComputationBuffers> = RefCell::new(ComputationBuffers::new());
}

/// Runs `f` with this thread's scratch buffer, grown to `bytes`. `f` must not
/// re-enter rayon: a stolen job on this thread would find the buffer borrowed.
fn with_scratch<R>(bytes: usize, f: impl FnOnce(&mut PodStack) -> R) -> R {
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

/// A query item prepared for evaluation: GGSWs in the Fourier domain.
pub struct PreparedTag {
    bits: Vec<FourierGgswCiphertext<ABox<[c64]>>>,
}

impl PreparedTag {
    /// Regenerates the GGSW masks from the seed and moves them to the Fourier
    /// domain (one forward FFT per GGSW, in parallel).
    ///
    /// tfhe `unwrap`s and asserts on the list's seed and shape here, on the
    /// caller's rayon pool; an [`EncryptedTag`] only comes from
    /// [`EncryptedTag::encrypt`] or its checked decoder, so they hold.
    pub fn prepare(tag: EncryptedTag) -> Self {
        let standard = tag.list.par_decompress_into_ggsw_ciphertext_list();
        let fft = Fft::new(PARAMETERS.polynomial_size);
        let scratch_bytes =
            convert_standard_ggsw_ciphertext_to_fourier_mem_optimized_requirement(fft.as_view())
                .unaligned_bytes_required();
        let bits = standard
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
        Self { bits }
    }

    /// Number of encrypted tag bits.
    pub fn bit_count(&self) -> usize {
        self.bits.len()
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
    let tag_bits = query.bits.len();
    if tag_bits <= usize::from(LOW_TAG_BITS) || tag_bits > 64 {
        return Err(LookupError::WrongParameters("encrypted tag"));
    }
    let levels = tag_bits - usize::from(LOW_TAG_BITS);
    let low_mask = (1u64 << LOW_TAG_BITS) - 1;
    let tag_mask = if tag_bits == 64 {
        u64::MAX
    } else {
        (1u64 << tag_bits) - 1
    };

    let mut leaves: BTreeMap<u64, Glwe> = BTreeMap::new();
    for &tag in candidates {
        let tag = tag & tag_mask;
        let leaf = leaves.entry(tag >> LOW_TAG_BITS).or_insert_with(zero_glwe);
        // Set, not add: a node answers presence, so duplicates count once.
        leaf.get_mut_body().as_mut()[(tag & low_mask) as usize] = encoding.delta();
    }
    let mut rng = rand::thread_rng();
    let mut padded = candidates.len();
    while padded < pad_to {
        let dummy: u64 = rng.gen::<u64>() & tag_mask;
        leaves
            .entry(dummy >> LOW_TAG_BITS)
            .or_insert_with(zero_glwe);
        padded += 1;
    }

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
        let ggsw = &query.bits[usize::from(LOW_TAG_BITS) + depth];
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

    // Blind rotation by X^-low: bit i rotates by 2^i when set.
    for bit in 0..usize::from(LOW_TAG_BITS) {
        let mut rotated = zero_glwe();
        for (mut out, input) in rotated
            .as_mut_polynomial_list()
            .iter_mut()
            .zip(acc.as_polynomial_list().iter())
        {
            polynomial_wrapping_monic_monomial_div(&mut out, &input, MonomialDegree(1 << bit));
        }
        with_scratch(scratch_bytes, |stack| {
            cmux_assign_mem_optimized(
                &mut acc,
                &mut rotated,
                &query.bits[bit],
                fft.as_view(),
                stack,
            )
        });
        stats.cmuxes += 1;
    }

    let mut lwe = LweCiphertext::new(
        0u64,
        PARAMETERS.lwe_dimension().to_lwe_size(),
        PARAMETERS.ciphertext_modulus,
    );
    extract_lwe_sample_from_glwe_ciphertext(&acc, &mut lwe, MonomialDegree(0));
    Ok((lwe, stats))
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
