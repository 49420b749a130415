//! The one place where the lookup's TFHE parameters are named.
//!
//! They are the GLWE/GGSW half of tfhe-rs's 128-bit set
//! `PARAM_MESSAGE_2_CARRY_2_KS_PBS_TUNIFORM_2M128` (the parameters of its
//! bootstrapping key): GLWE dimension 1, polynomial size 2048, TUniform(17)
//! noise, one decomposition level of base 2^23, native 64-bit modulus. No
//! bootstrapping happens, so the LWE half of the set is unused.

use tfhe::core_crypto::prelude::{
    CiphertextModulus, DecompositionBaseLog, DecompositionLevelCount, DynamicDistribution,
    GlweDimension, GlweSize, LweDimension, PolynomialSize,
};
use tfhe::shortint::parameters::PARAM_MESSAGE_2_CARRY_2_KS_PBS_TUNIFORM_2M128 as BASE;

/// Low tag bits that index a leaf polynomial's coefficients: log2(N).
pub const LOW_TAG_BITS: u8 = 11;

/// Plaintext modulus of a lookup answer: a per-item count of jurisdictions
/// in `0..32`. Δ = 2^64 / 32 = 2^59.
pub const MESSAGE_BITS: u32 = 5;

/// Bits kept after the node switches its answer to a smaller modulus: 2^32
/// halves the download (8 KB per item) and adds only ~2^35 of rounding noise
/// against Δ/2 = 2^58.
pub const ANSWER_MODULUS_LOG: u32 = 32;

/// Bound (log2) of the uniform noise each node adds to an answer's body when it
/// re-randomises it ("as much noise as the budget allows"). The evaluation noise
/// is about 2^47; summed over [`MAX_NODES`] nodes the flooding stays below
/// 8 · 2^54 = 2^57 < Δ/2 = 2^58.
pub const FLOOD_BOUND_LOG2: u32 = 54;

/// Most nodes whose answers may be added together without decryption errors.
pub const MAX_NODES: usize = 8;

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

    /// Δ: scaling of a count in the 64-bit torus.
    pub fn delta(&self) -> u64 {
        1u64 << (64 - MESSAGE_BITS)
    }
}
