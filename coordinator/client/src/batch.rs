//! Batch files of identifiers to look up.

use std::path::Path;

use anyhow::{bail, Context};
use fedq_crypto::IdentifierKind;

use crate::report::LookupInput;

/// Reads a batch file: CSV `kind,value`, with or without a header.
pub fn read_batch(path: &Path) -> anyhow::Result<Vec<LookupInput>> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_path(path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let mut inputs = Vec::new();
    let mut problems = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let record = record?;
        let line = record.position().map_or(i as u64 + 1, |p| p.line());
        let kind_text = record.get(0).unwrap_or("").trim();
        if i == 0 && kind_text.eq_ignore_ascii_case("kind") {
            continue;
        }
        match (kind_text.parse::<IdentifierKind>(), record.get(1)) {
            (Ok(kind), Some(value)) => inputs.push(LookupInput {
                kind,
                value: value.to_owned(),
            }),
            (Err(e), _) => problems.push(format!("line {line}: {e}")),
            (Ok(_), None) => problems.push(format!("line {line}: missing value column")),
        }
    }
    if !problems.is_empty() {
        bail!(
            "{}: invalid rows, nothing was sent:\n  {}",
            path.display(),
            problems.join("\n  ")
        );
    }
    Ok(inputs)
}
