//! The node's fuzz targets outside the fuzzer: the committed inputs of
//! `node/fuzz` (corpus and kept crashes) replayed through their bodies, and
//! the seeds judged as they claim.

use fedq_node::fuzzing::{seeds, TARGETS};

#[test]
fn every_corpus_input_and_kept_crash_is_handled_without_panicking() {
    let fuzz = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz"));
    fedq_crypto::fuzzing::corpus::replay_all(fuzz, TARGETS);
}

#[test]
fn honest_seeds_are_accepted_and_hostile_ones_refused() {
    fedq_crypto::fuzzing::corpus::check_seeds(&seeds(), TARGETS);
}
