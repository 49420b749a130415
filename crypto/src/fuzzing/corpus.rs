//! A fuzz workspace's committed inputs (`<fuzz>/corpus/<target>/*`, and the
//! crashes kept in `<fuzz>/artifacts/<target>/*`): written from the seeds,
//! replayed through the targets' bodies by ordinary `cargo test`, so that
//! what once crashed stays fixed without a fuzzer. Every crate with fuzz
//! targets (this one, `fedq-node`) replays its corpus through these.

use std::fs;
use std::path::{Path, PathBuf};

use super::{Body, Seed};

/// Writes each seed to `<fuzz>/corpus/<target>/seed-<name>`; returns the paths.
pub fn write_seeds(fuzz: &Path, seeds: &[Seed]) -> std::io::Result<Vec<PathBuf>> {
    let mut written = Vec::with_capacity(seeds.len());
    for seed in seeds {
        let dir = fuzz.join("corpus").join(seed.target);
        fs::create_dir_all(&dir)?;
        let path = dir.join(format!("seed-{}", seed.name));
        fs::write(&path, &seed.bytes)?;
        written.push(path);
    }
    Ok(written)
}

/// The body of the target called `name`.
fn body(targets: &[(&str, Body)], name: &str) -> Option<Body> {
    targets
        .iter()
        .find(|(target, _)| *target == name)
        .map(|(_, body)| *body)
}

/// The files of `<fuzz>/<kind>/<target>/`, per target folder, sorted.
fn inputs(fuzz: &Path, kind: &str) -> Vec<(String, Vec<PathBuf>)> {
    let Ok(targets) = fs::read_dir(fuzz.join(kind)) else {
        return Vec::new();
    };
    let mut out: Vec<(String, Vec<PathBuf>)> = targets
        .map(|entry| {
            let path = entry.expect("readable folder").path();
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .expect("a UTF-8 target name")
                .to_owned();
            let mut files: Vec<PathBuf> = fs::read_dir(&path)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
                .map(|f| f.expect("readable file").path())
                .filter(|f| f.is_file())
                .collect();
            files.sort();
            (name, files)
        })
        .collect();
    out.sort();
    out
}

/// Runs every file of `<fuzz>/<kind>/` through its target's body; returns
/// how many. A folder named after no target is an error.
fn replay(fuzz: &Path, kind: &str, targets: &[(&str, Body)]) -> usize {
    let mut replayed = 0;
    for (name, files) in inputs(fuzz, kind) {
        let body =
            body(targets, &name).unwrap_or_else(|| panic!("{kind}/{name} is no fuzz target"));
        for file in files {
            let data = fs::read(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            // A panic here names the file through the test's output.
            println!("{}", file.display());
            body(&data);
            replayed += 1;
        }
    }
    replayed
}

/// Replays the committed corpus (every target must have one) and every
/// crash the fuzzer kept.
pub fn replay_all(fuzz: &Path, targets: &[(&str, Body)]) {
    let corpus = inputs(fuzz, "corpus");
    for (name, _) in targets {
        let files = corpus
            .iter()
            .find(|(target, _)| target == name)
            .map_or(0, |(_, files)| files.len());
        assert!(files > 0, "fuzz target {name} has no committed corpus");
    }
    assert!(replay(fuzz, "corpus", targets) >= targets.len());
    replay(fuzz, "artifacts", targets);
}

/// Each seed's target accepts it exactly when the seed says it should.
pub fn check_seeds(seeds: &[Seed], targets: &[(&str, Body)]) {
    for seed in seeds {
        let body = body(targets, seed.target)
            .unwrap_or_else(|| panic!("seed {} names no target", seed.name));
        assert_eq!(
            body(&seed.bytes),
            seed.accepted,
            "{}/{}",
            seed.target,
            seed.name
        );
    }
}
