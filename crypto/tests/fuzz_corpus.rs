//! Replays every committed fuzz input of `crypto/fuzz` (corpus and kept
//! crashes) through its target's body, the same code the fuzzer ran.

#[test]
fn every_corpus_input_and_kept_crash_is_handled_without_panicking() {
    let fuzz = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz"));
    fedq_crypto::fuzzing::corpus::replay_all(fuzz, fedq_crypto::fuzzing::TARGETS);
}
