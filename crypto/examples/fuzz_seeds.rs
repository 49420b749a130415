//! Writes the seeds of every fuzz target (honest encodings, and a few hostile
//! ones that must stay refused) into `crypto/fuzz/corpus/<target>/seed-<name>`.
//!
//! `cargo run --example fuzz_seeds`; the keys and randomness are fresh on
//! every run, so rerun it only when a layout changes.

use std::path::Path;

fn main() -> std::io::Result<()> {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    for path in fedq_crypto::fuzzing::corpus::write_seeds(&fuzz, &fedq_crypto::fuzzing::seeds())? {
        println!("{}", path.display());
    }
    Ok(())
}
