#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    fedq_crypto::fuzzing::lookup_group(data);
});
