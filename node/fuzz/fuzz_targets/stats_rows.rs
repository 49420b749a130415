#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    fedq_node::fuzzing::stats_rows(data);
});
