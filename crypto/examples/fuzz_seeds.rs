//! Writes the seeds of every fuzz target (honest encodings, and a few hostile
//! ones that must stay refused) into `crypto/fuzz/corpus/<target>/seed-<name>`.
//!
//! `cargo run -p fedq-crypto --example fuzz_seeds`; the keys and randomness
//! are fresh on every run, so rerun it only when a layout changes.

use std::path::Path;
use std::{fs, io};

fn main() -> io::Result<()> {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    for seed in fedq_crypto::fuzzing::seeds() {
        let dir = corpus.join(seed.target);
        fs::create_dir_all(&dir)?;
        let path = dir.join(format!("seed-{}", seed.name));
        fs::write(&path, &seed.bytes)?;
        println!("{} ({} bytes)", path.display(), seed.bytes.len());
    }
    Ok(())
}
