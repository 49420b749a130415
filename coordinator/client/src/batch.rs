//! Batch files of identifiers to look up.

use std::path::Path;

use anyhow::{bail, Context};
use fedq_crypto::IdentifierKind;

use crate::report::LookupInput;

/// An identifier kind as a person types it; a near miss gets a suggestion
/// and the list of kinds.
pub fn parse_kind(text: &str) -> Result<IdentifierKind, String> {
    text.parse().map_err(|e| {
        format!(
            "{e}{}",
            fedq_proto::suggest::hint(text, IdentifierKind::ALL.map(IdentifierKind::as_str))
        )
    })
}

/// Reads a batch file (`-`: standard input): CSV `kind,value`, with or
/// without a header.
pub fn read_batch(path: &Path) -> anyhow::Result<Vec<LookupInput>> {
    let builder = || {
        let mut builder = csv::ReaderBuilder::new();
        builder.has_headers(false).flexible(true);
        builder
    };
    if path == Path::new("-") {
        return read_rows(
            builder().from_reader(std::io::stdin().lock()),
            "standard input",
        );
    }
    let reader = builder()
        .from_path(path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    read_rows(reader, &path.display().to_string())
}

fn read_rows<R: std::io::Read>(
    mut reader: csv::Reader<R>,
    source: &str,
) -> anyhow::Result<Vec<LookupInput>> {
    let mut inputs = Vec::new();
    let mut problems = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let record = record?;
        let line = record.position().map_or(i as u64 + 1, |p| p.line());
        let kind_text = record.get(0).unwrap_or("").trim();
        if i == 0 && kind_text.eq_ignore_ascii_case("kind") {
            continue;
        }
        match (parse_kind(kind_text), record.get(1)) {
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
            "{source}: invalid rows, nothing was sent:\n  {}",
            problems.join("\n  ")
        );
    }
    Ok(inputs)
}
