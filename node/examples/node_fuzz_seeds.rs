//! Writes the seeds of the node's fuzz targets into
//! `node/fuzz/corpus/<target>/seed-<name>`: `cargo run --example node_fuzz_seeds`.

use std::path::Path;

fn main() -> std::io::Result<()> {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    for path in fedq_crypto::fuzzing::corpus::write_seeds(&fuzz, &fedq_node::fuzzing::seeds())? {
        println!("{}", path.display());
    }
    Ok(())
}
