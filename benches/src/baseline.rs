//! tfhe-rs's own bootstrapped membership test, measured as the baseline that
//! the lookup protocol is compared against in benchmarks.
//!
//! `tfhe::integer::ServerKey::is_in_clears_parallelized` on an encrypted
//! `u32` (16 two-bit blocks, default 128-bit parameters) against clear
//! candidates: the approach DESIGN.md rules out for lookups, kept here only to
//! measure it on the same machine and threads.

use std::time::{Duration, Instant};

use tfhe::integer::{gen_keys_radix, RadixClientKey, ServerKey};
use tfhe::shortint::parameters::PARAM_MESSAGE_2_CARRY_2_KS_PBS_TUNIFORM_2M128;

/// Two-bit blocks of a `u32`.
const BLOCKS: usize = 16;

/// Keys of the baseline (generation takes seconds).
pub(crate) struct BaselineKeys {
    client: RadixClientKey,
    server: ServerKey,
}

impl BaselineKeys {
    /// Generates a client and server key.
    pub(crate) fn generate() -> Self {
        let (client, server) =
            gen_keys_radix(PARAM_MESSAGE_2_CARRY_2_KS_PBS_TUNIFORM_2M128, BLOCKS);
        Self { client, server }
    }

    /// Times one `is_in_clears_parallelized` of an encrypted `needle` against
    /// `candidates`, and checks its answer.
    pub(crate) fn time_is_in_clears(&self, needle: u32, candidates: &[u32]) -> Duration {
        let encrypted = self.client.encrypt(u64::from(needle));
        let started = Instant::now();
        let found = self
            .server
            .is_in_clears_parallelized(&encrypted, candidates);
        let elapsed = started.elapsed();
        let clear: bool = self.client.decrypt_bool(&found);
        assert_eq!(
            clear,
            candidates.contains(&needle),
            "baseline answered wrongly"
        );
        elapsed
    }
}
