//! One tfhe external product (CMux) timed in a loop, to compare build
//! profiles on the lookup's hot path without a release build of the whole
//! workspace (~50 minutes on two cores; this crate builds in ~3 per profile):
//!
//! ```text
//! cd benches/profiles
//! for p in dev-deps reloff release relcu1 relthinlto; do cargo build --profile $p; done
//! for p in dev-deps reloff release relcu1 relthinlto; do echo $p; ./target/$p/profile-check; done
//! ```
//! (`release` builds into `target/release`.)

use std::time::Instant;
use tfhe::core_crypto::prelude::*;
use tfhe::shortint::parameters::PARAM_MESSAGE_2_CARRY_2_KS_PBS_TUNIFORM_2M128 as P;

fn main() {
    let glwe_size = P.glwe_dimension.to_glwe_size();
    let n = P.polynomial_size;
    let modulus = P.ciphertext_modulus;
    let mut seeder = new_seeder();
    let seeder = seeder.as_mut();
    let mut enc = EncryptionRandomGenerator::<DefaultRandomGenerator>::new(seeder.seed(), seeder);
    let mut secret_gen = SecretRandomGenerator::<DefaultRandomGenerator>::new(seeder.seed());
    let key: GlweSecretKeyOwned<u64> = allocate_and_generate_new_binary_glwe_secret_key(P.glwe_dimension, n, &mut secret_gen);
    let mut ggsw = GgswCiphertext::new(0u64, glwe_size, n, P.pbs_base_log, P.pbs_level, modulus);
    encrypt_constant_ggsw_ciphertext(&key, &mut ggsw, Cleartext(1), P.glwe_noise_distribution, &mut enc);
    let fft = Fft::new(n);
    let mut fourier = FourierGgswCiphertext::new(glwe_size, n, P.pbs_base_log, P.pbs_level);
    convert_standard_ggsw_ciphertext_to_fourier(&ggsw, &mut fourier);
    let mut buffers = ComputationBuffers::new();
    buffers.resize(cmux_assign_mem_optimized_requirement::<u64>(glwe_size, n, fft.as_view()).unaligned_bytes_required());
    let mut ct0 = GlweCiphertext::new(0u64, glwe_size, n, modulus);
    let mut ct1 = GlweCiphertext::new(0u64, glwe_size, n, modulus);
    let mut x = 0x9e3779b97f4a7c15u64;
    for c in ct0.as_mut().iter_mut().chain(ct1.as_mut().iter_mut()) { x ^= x << 13; x ^= x >> 7; x ^= x << 17; *c = x; }
    let reps = 4000;
    for round in 0..3 {
        let start = Instant::now();
        for _ in 0..reps {
            cmux_assign_mem_optimized(&mut ct0, &mut ct1, &fourier, fft.as_view(), buffers.stack());
        }
        let per = start.elapsed().as_secs_f64() / reps as f64;
        println!("round {round}: {:.1} us per cmux", per * 1e6);
    }
    // Prevent the work from being optimised away.
    println!("checksum {}", ct0.as_ref().iter().fold(0u64, |a, b| a.wrapping_add(*b)));
}
