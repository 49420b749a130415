#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    fedq_crypto::fuzzing::oprf_keys(data);
});
