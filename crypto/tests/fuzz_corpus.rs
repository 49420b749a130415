//! Replays every committed fuzz input (`fuzz/corpus/<target>/*`, and the
//! crashes kept in `fuzz/artifacts/<target>/*`) through its target's body, the
//! same code the fuzzer ran: what once crashed stays fixed without a fuzzer.

use std::fs;
use std::path::{Path, PathBuf};

use fedq_crypto::fuzzing::{target, TARGETS};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// The files of `kind/<target>/`, per target folder, sorted.
fn inputs(kind: &str) -> Vec<(String, Vec<PathBuf>)> {
    let Ok(targets) = fs::read_dir(fuzz_dir().join(kind)) else {
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

fn replay(kind: &str) -> usize {
    let mut replayed = 0;
    for (name, files) in inputs(kind) {
        let body = target(&name).unwrap_or_else(|| panic!("{kind}/{name} is no fuzz target"));
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

#[test]
fn every_corpus_input_is_handled_without_panicking() {
    let corpus = inputs("corpus");
    for (name, _) in TARGETS {
        let files = corpus
            .iter()
            .find(|(target, _)| target == name)
            .map_or(0, |(_, files)| files.len());
        assert!(files > 0, "fuzz target {name} has no committed corpus");
    }
    assert!(replay("corpus") >= TARGETS.len());
}

#[test]
fn every_kept_crash_is_handled_without_panicking() {
    replay("artifacts");
}
