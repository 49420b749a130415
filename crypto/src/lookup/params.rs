//! The one place where the lookup's TFHE parameters are named.
//!
//! They are the GLWE/GGSW half of tfhe-rs's 128-bit set
//! `PARAM_MESSAGE_2_CARRY_2_KS_PBS_TUNIFORM_2M128` (the parameters of its
//! bootstrapping key): GLWE dimension 1, polynomial size 2048, TUniform(17)
//! noise, one decomposition level of base 2^23, native 64-bit modulus. No
//! bootstrapping happens, so the LWE half of the set is unused.
//!
//! # Compressed queries (format 3): the budget, measured
//! A requester uploads, per item and node, one seeded GLWE packing the tree
//! bits (17 for 28-bit tags) once per level of the tree's gadget, and one
//! seeded GLWE for the 11 low bits: 24,609 bytes ([`super::compress`]). The
//! node expands the packed GLWE and rebuilds each bit's GGSW. Relative to
//! q = 2^64 (`compress::experiment` measures every figure below, 2026-12-03,
//! 2-core AMD EPYC):
//! - a fresh GGSW's noise is 2^-47.8 (TUniform(17), σ ≈ 2^16.2);
//! - each automorphism key switch (24 levels of base 2^2, keys at the same
//!   128-bit noise) adds ~2^24 and the six expansion levels double what came
//!   before: an expanded GLWE carries σ ≈ 2^27.7;
//! - the conversion multiplies it by the binary key: a rebuilt GGSW's
//!   `s · bit` rows carry ~2^34, 2^18 times a fresh GGSW's;
//! - a CMux multiplies its GGSW's noise by the decomposed digits of the GLWE
//!   it selects, √(levels · N) · base/√12: 2^27.2 for fresh GGSWs' one level
//!   of base 2^23, which would put a rebuilt GGSW's CMux at ~2^61. The tree's
//!   rebuilt GGSWs therefore take three levels of base 2^8 (2^12.5).
//!
//! Measured on a 300-candidate bucket (24 fresh queries each; σ of the
//! evaluation, the node's expansion and tree per item):
//!
//! | gadgets (expansion levels, key switch, tree) | σ | expansion | tree |
//! |---|---|---|---|
//! | format 2 (fresh GGSWs, one level of 2^23) | 2^46.1 | — | 37.7 ms (+11.7 preparing) |
//! | 6, 12 × 2^4, 3 × 2^8 | 2^49.5 | 6.9 ms | 48.4 ms |
//! | 6, 12 × 2^4, 2 × 2^12 | 2^53.2 | 5.9 ms | 39.0 ms |
//! | **6, 24 × 2^2, 3 × 2^8 (used)** | 2^47.8 | 9.5 ms | 43.4 ms |
//! | 7, 24 × 2^2, 4 × 2^6 | 2^46.2 | 15.3 ms | 49.3 ms |
//! | 7, 24 × 2^2, 6 × 2^4 | 2^45.0 | 15.9 ms | 64.7 ms |
//!
//! In the node (`fedq-bench lookup --records 1000000 --nodes 1 --items 8`),
//! four levels of 2^6 cost 0.064-0.072 s per item, over APSI's 0.061 s;
//! three levels of 2^8 a median 0.054 s in batches and 0.061 s on single
//! items over six runs (format 2: 0.027-0.030 s), the expansion 15-20% of
//! it. Their evaluation noise, 2^47.6 on the noise test's
//! 16-candidate bucket, is what moved [`EVALUATION_NOISE_STD_LOG2`] from 47
//! to 48; the flooding table below is unchanged but for 31 and 57 to 60
//! nodes, which lose one bit. A larger modulus changes nothing (the noise
//! that security requires grows with it), and a larger N doubles every
//! CMux.
//!
//! Rounding costs noise fast, which is why it stops at 48 bits: at 44 a
//! fresh GGSW's noise is 2^18.3 and format 2's evaluation 2^48.
//!
//! # Packed groups (format 4): the budget, measured
//! Batches meet 4 KB per item and node only if several items share one
//! GLWE ([`super::packed`]): three items' 28 bits at three gadget levels
//! are 252 values, eight expansion levels. The low bits travel as packed
//! values too (a 12 KB GLWE per item would be over 4 KB alone) and rotate
//! the tree's result with 11 more CMuxes. Measured the same way
//! (`compress::experiment::measure_packed_groups`, 48 items):
//! - two more expansion levels: an expanded GLWE carries σ ≈ 2^28.7;
//! - the evaluation: σ = 2^49.1 (2^48.9 on the noise test's bucket), with
//!   the 11 rotation CMuxes about half a bit of it;
//! - a body rounded to 40 bits does not show against the key switching's
//!   2^24 per level (2^49.25 at 40 bits, 2^49.33 at 48), so the GLWE
//!   travels in 10,258 bytes: 3,421 per item in a group of three;
//! - the node: 10-12 ms of expansion per item and a tree 10-20% faster
//!   than format 3's (plaintext leaves, no monomial products).
//!
//! No cheaper noise was found: finer key switching gains ~0.2 bits (the
//! keys' own noise dominates), four tree levels of 2^6 fit only two items
//! per GLWE (5 KB each), and the `s · bit` rows' ~2^35 is the expanded
//! noise times the binary key, which any conversion of a GLWE pays. So
//! format 4's budget is 2^49.5 ([`EVALUATION_NOISE_STD_LOG2`]), and each
//! answer is flooded for its own format's noise ([`NoiseBudget`]): packed
//! answers lose one bit of flooding at 11 federation sizes (29, 46 to 50,
//! and 64) against format 3's, and format 2's (watches, federations
//! without compression) gets back the 2^47 budget it had before
//! compression.
//!
//! # The evaluation's shape, and the bucket it is measured on
//! The node decides half of the high bits top-down into indicators that
//! every tag of the bucket shares, and the rest by the tree
//! ([`super::evaluate`]): 320 tags of 17 high bits take ~683 external
//! products where a tree alone took ~2,822, the same number on the query's
//! path. On a 2-core AMD EPYC without AVX-512 (2026-12-03, 300-tag bucket)
//! format 4's evaluation went from 99 to 29 ms per item, format 3's from
//! 106 to 28 and format 2's from 68 to 25; `fedq-bench lookup` from 0.110
//! to 0.052 s per item in batches and 0.120 to 0.051 on single items.
//!
//! Each real tag in the query's leaf adds its indicator's noise, so the
//! bucket that the noise is measured on must be as full as a real one:
//! `leak_tests::evaluation_noise_is_what_the_budget_assumes` uses 244 real
//! tags padded to 320 (a bucket at 1,000,000 identifiers), and measured
//! σ = 2^49.08 (format 4), 2^48.27 (format 3), 2^46.02 (format 2) and
//! 2^46.63 (format 1). On the 16-tag bucket it used before, a non-matching
//! query's path left the candidates' paths early, and format 3 measured
//! 2^47.7: its budget, then 2^48.5, left no margin over the full bucket's
//! noise (2^48.3-2^48.6 in `compress::experiment`, under the old tree as
//! under the new one), and is now 2^48.9. A table built to crowd one
//! leaf (a node's own data) raises only that node's answer's noise, as
//! that node could already by adding noise of its own.

use tfhe::core_crypto::prelude::{
    CiphertextModulus, DecompositionBaseLog, DecompositionLevelCount, DynamicDistribution,
    GlweDimension, GlweSize, LweDimension, PolynomialSize,
};
use tfhe::shortint::parameters::PARAM_MESSAGE_2_CARRY_2_KS_PBS_TUNIFORM_2M128 as BASE;

/// Low tag bits that index a leaf polynomial's coefficients: log2(N).
pub const LOW_TAG_BITS: u8 = 11;

/// Bits kept after the node switches its answer to a smaller modulus: 2^32
/// halves the download (8 KB per item) and adds at most [`ROUNDING_BOUND_LOG2`]
/// of noise per answer.
pub const ANSWER_MODULUS_LOG: u32 = 32;

/// Most nodes in one federation: counts up to 64 fit [`CountEncoding`]'s
/// largest message space (7 bits) with per-node flooding of 2^48.
pub const MAX_NODES: usize = 64;

/// Standard deviation (log2) that the budget assumes for one node's
/// evaluation noise in the noisiest format ([`NoiseBudget::Packed`]; the
/// others have their own). Measured with 28-bit tags on a full bucket:
/// 2^48.8-2^49.3 in format 4 (eight expansion levels, and the low bits' 11
/// CMuxes), 2^48.3-2^48.6 in format 3 (rebuilt GGSWs), 2^45.5-2^46.0 in
/// format 2 (17 external products with fresh GGSWs on a path), 2^46.3-2^46.6
/// in format 1 (28), which nodes still accept
/// (`leak_tests::evaluation_noise_is_what_the_budget_assumes`, which fails
/// above this bound for any). It grows with the square root of the number
/// of CMuxes: format 4 carries tags of up to 32 bits (+0.1), formats 2 and
/// 3 up to 40 (+0.4).
pub const EVALUATION_NOISE_STD_LOG2: f64 = 49.5;

/// The evaluation noise an answer's tag format brings, which the node sizes
/// that answer's flooding against (σ_e in [`CountEncoding`]'s budget). All
/// of a lookup item's answers come from the same format (a client groups
/// and compresses items alike for every node), so each format gets the
/// most flooding its own noise leaves room for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoiseBudget {
    /// Fresh GGSWs (formats 1 and 2; watches): measured 2^45.5-2^46.6,
    /// budget 2^47.
    Fresh,
    /// A compressed tag's rebuilt GGSWs (format 3): 2^48.3-2^48.6 on a
    /// full bucket, budget 2^48.9.
    Rebuilt,
    /// A packed group's (format 4): 2^48.8-2^49.3, budget 2^49.5
    /// ([`EVALUATION_NOISE_STD_LOG2`], the largest).
    Packed,
}

impl NoiseBudget {
    /// log2 of the standard deviation the budget assumes.
    pub fn std_log2(self) -> f64 {
        match self {
            Self::Fresh => 47.0,
            Self::Rebuilt => 48.9,
            Self::Packed => EVALUATION_NOISE_STD_LOG2,
        }
    }
}

/// How many standard deviations of summed evaluation noise the budget
/// reserves: a Gaussian leaves 8σ with probability ~2^-49, under the 2^-40 per
/// item the lookup promises.
const EVALUATION_NOISE_SIGMAS: f64 = 8.0;

/// Bound (log2) of the other fresh noise of one answer: the rounding of the
/// switch to 2^32 (2048 mask coefficients rounded by up to 2^31 against a
/// binary key: standard deviation ~2^35.2) and the public-key encryption
/// (~2^21); 2^40 is ~28 standard deviations.
pub const ROUNDING_BOUND_LOG2: u32 = 40;

/// How a per-item count of jurisdictions is encoded for a federation of a
/// given size, and how much flooding noise each node may add to its answer.
///
/// The noise budget. The coordinator adds n answers; the sum decrypts
/// correctly while its noise stays below Δ/2. Each answer carries
/// - evaluation noise, Gaussian-like with σ_e ≤ 2^49.5 (measured ≤ 2^49.3): the
///   sum has σ_e·√n, and 8σ_e·√n is reserved for it (failure probability
///   ~2^-49 per item);
/// - flooding, uniform on [-B, B] (TUniform): at most n·B in the sum;
/// - rounding and public-key noise, at most 2^40 each: n·2^40.
///
/// So B is the largest power of two with n·B ≤ Δ/2 - 8σ_e√n - n·2^40, and
/// Δ = 2^(64 - b) for the fewest message bits b that hold the count n
/// (n < 2^b). A smaller federation gets a larger Δ and more flooding per
/// node; a larger one less of both:
///
/// | nodes | message bits | Δ/2 | flooding B per node | margin left |
/// |---|---|---|---|---|
/// | 1 | 1 | 2^62 | 2^61 | 2^61 |
/// | 2, 3 | 2 | 2^61 | 2^59 | 2^60 (n = 2), 2^59 (n = 3) |
/// | 8 | 4 | 2^59 | 2^55 | 2^58 |
/// | 32 to 45 | 6 | 2^57 | 2^51 | 2^56 (n = 32), 2^55.2 (n = 45) |
/// | 46 to 63 | 6 | 2^57 | 2^50 | 2^56.4 (n = 46), 2^56 (n = 63) |
/// | 64 | 7 | 2^56 | 2^48 | 2^55.6 |
///
/// The table is for packed answers (format 4, σ_e = 2^49.5). A node floods
/// each answer for its own format's noise ([`NoiseBudget`]): uncompressed
/// ones (σ_e = 2^47) get 2^53 at 31 nodes, 2^51 at 46 to 60 and 2^49 at 64;
/// compressed ones (2^48.9) 2^52 at 30 and 31, 2^51 to 50 nodes then 2^50,
/// and 2^49.
///
/// The margin is Δ/2 minus the worst-case sum of flooding and rounding, left
/// for the evaluation noise (whose 8σ_e√n is at most 2^55.5, at 64 nodes).
/// What the flooding buys is in `lookup`'s residual-leak section: per
/// answer, a requester who can name two candidate tables tells them apart
/// with probability ~|e0 - e1| / 2B: 2^11 times larger at 64 nodes than at
/// 2. Against the fixed 2^54 that fedq used while it stopped at 8 nodes,
/// that is 2^5 smaller at 2 or 3 nodes, 2 times smaller at 8, and 2^6
/// larger at 64.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CountEncoding {
    nodes: usize,
    noise: NoiseBudget,
}

impl CountEncoding {
    /// The encoding for [`MAX_NODES`] nodes, the largest federation: the
    /// least flooding per node.
    pub const LARGEST: Self = Self {
        nodes: MAX_NODES,
        noise: NoiseBudget::Packed,
    };

    /// The encoding of a federation of `nodes` (1 to [`MAX_NODES`]), its
    /// flooding sized for the noisiest format ([`Self::with_noise`] sizes
    /// it for another).
    pub fn for_nodes(nodes: usize) -> Result<Self, super::LookupError> {
        if (1..=MAX_NODES).contains(&nodes) {
            Ok(Self {
                nodes,
                noise: NoiseBudget::Packed,
            })
        } else {
            Err(super::LookupError::FederationSize {
                nodes,
                max: MAX_NODES,
            })
        }
    }

    /// The same encoding, its flooding sized for answers of `noise` (the
    /// count's scaling does not change).
    pub fn with_noise(self, noise: NoiseBudget) -> Self {
        Self { noise, ..self }
    }

    /// Nodes whose answers are added.
    pub fn nodes(self) -> usize {
        self.nodes
    }

    /// Bits of the count's message space: the fewest that hold `nodes`.
    pub fn message_bits(self) -> u32 {
        usize::BITS - self.nodes.leading_zeros()
    }

    /// Δ: scaling of a count in the 64-bit torus.
    pub fn delta(self) -> u64 {
        1u64 << (64 - self.message_bits())
    }

    /// log2 of B, the bound of the uniform noise each node adds to its answer.
    pub fn flood_bound_log2(self) -> u32 {
        let n = self.nodes as f64;
        let half_delta = (self.delta() / 2) as f64;
        let evaluation = EVALUATION_NOISE_SIGMAS * 2f64.powf(self.noise.std_log2()) * n.sqrt();
        let rounding = n * 2f64.powi(ROUNDING_BOUND_LOG2 as i32);
        let per_node = (half_delta - evaluation - rounding) / n;
        // Positive for every size up to MAX_NODES (checked by a test).
        per_node.log2().floor() as u32
    }

    /// Worst case of the summed flooding and rounding noise, log2: what the
    /// margin is measured against.
    pub fn worst_flooding_log2(self) -> f64 {
        let n = self.nodes as f64;
        (n * (2f64.powi(self.flood_bound_log2() as i32) + 2f64.powi(ROUNDING_BOUND_LOG2 as i32)))
            .log2()
    }
}

/// Gadgets of format 3's compressed queries ([`super::compress`]): each is
/// `(base log, levels)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompressionParams {
    /// Expansion levels L of a format 3 tag: its packed GLWE holds up to
    /// 2^L values.
    pub expansion_levels: usize,
    /// Expansion levels of a format 4 group ([`super::packed`]): several
    /// items' bits in one GLWE.
    pub packing_levels: usize,
    /// The automorphism keys' key switching.
    pub key_switch: (usize, usize),
    /// The GGSW of the requester's key that rebuilds each GGSW's `s · bit` rows.
    pub conversion: (usize, usize),
    /// The rebuilt GGSWs that the CMux tree multiplies by.
    pub tree: (usize, usize),
}

/// What formats 3 and 4 use; the budget is in this module's introduction.
pub const COMPRESSION: CompressionParams = CompressionParams {
    expansion_levels: 6,
    packing_levels: 8,
    key_switch: (2, 24),
    conversion: (6, 8),
    tree: (8, 3),
};

/// TFHE parameters of the lookup protocol.
#[derive(Debug, Clone, Copy)]
pub struct LookupParameters {
    /// GLWE dimension k.
    pub glwe_dimension: GlweDimension,
    /// Polynomial size N.
    pub polynomial_size: PolynomialSize,
    /// Noise of GGSW encryptions and of the public key.
    pub noise: DynamicDistribution<u64>,
    /// GGSW decomposition base.
    pub base_log: DecompositionBaseLog,
    /// GGSW decomposition levels.
    pub level_count: DecompositionLevelCount,
    /// Ciphertext modulus (native 2^64).
    pub ciphertext_modulus: CiphertextModulus<u64>,
}

/// The parameters every party uses.
pub const PARAMETERS: LookupParameters = LookupParameters {
    glwe_dimension: BASE.glwe_dimension,
    polynomial_size: BASE.polynomial_size,
    noise: BASE.glwe_noise_distribution,
    base_log: BASE.pbs_base_log,
    level_count: BASE.pbs_level,
    ciphertext_modulus: BASE.ciphertext_modulus,
};

impl LookupParameters {
    /// k + 1.
    pub fn glwe_size(&self) -> GlweSize {
        self.glwe_dimension.to_glwe_size()
    }

    /// Dimension of the extracted LWE answer (k · N).
    pub fn lwe_dimension(&self) -> LweDimension {
        self.glwe_dimension
            .to_equivalent_lwe_dimension(self.polynomial_size)
    }
}
