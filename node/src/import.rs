//! `fedq-node import --identifiers FILE`: CSV `kind,value,record_id[,expires_at]`
//! into the store.
//!
//! Rows are normalised and fingerprinted (the node's own OPRF, under its
//! active key and, during a rotation, its pending key) in parallel, in chunks,
//! and written in one transaction per chunk by a writer thread, so that the
//! next chunk's OPRF runs while the previous one is written. An invalid row is reported with its line number
//! and reason and counted; nothing is dropped silently. Rows already stored are
//! not duplicated: their import time is refreshed (the retention period runs
//! from the last import) and, when the file has an `expires_at` column, their
//! expiry replaced by the file's.
//!
//! `expires_at` is a date `YYYY-MM-DD` (the record expires at the end of that
//! day, UTC), an RFC 3339 time, or empty (no expiry of its own).

use std::io::Read;

use chrono::{DateTime, NaiveDate, Utc};
use fedq_crypto::{IdentifierKind, NormalForm};
use rayon::prelude::*;

use crate::store::{ExpiryUpdate, IdentifierRow, OprfKeys, Store, StoreError};

/// Rows per transaction: large enough to amortise the commit, small enough to
/// keep memory flat.
const CHUNK_ROWS: usize = 50_000;
/// Longest record id accepted.
pub(crate) const MAX_RECORD_ID: usize = 128;

/// Errors that stop an import (bad rows do not: they are reported).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImportError {
    /// The CSV cannot be read.
    #[error("cannot read the csv: {0}")]
    Csv(#[from] csv::Error),
    /// The header lacks a required column.
    #[error("the csv header must have columns kind,value,record_id (missing {0})")]
    MissingColumn(&'static str),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One refused row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectedRow {
    /// 1-based line number in the file.
    pub line: u64,
    /// Why it was refused (never the value).
    pub reason: String,
}

/// Outcome of an import.
#[derive(Debug, Default, Clone)]
pub struct ImportReport {
    /// Data rows read.
    pub rows: usize,
    /// Rows newly stored.
    pub inserted: usize,
    /// Valid rows that were already stored.
    pub duplicates: usize,
    /// Of the duplicates, those whose expiry the file changed.
    pub expiry_updated: usize,
    /// Every refused row, in file order.
    pub rejected: Vec<RejectedRow>,
}

struct RawRow {
    line: u64,
    kind: String,
    value: String,
    record_id: String,
    expires_at: String,
}

/// Imports identifiers; `progress` is told how many bytes have been read.
pub fn import_identifiers(
    store: &mut Store,
    input: impl Read,
    progress: impl FnMut(u64),
) -> Result<ImportReport, ImportError> {
    import_identifiers_at(store, input, Utc::now(), progress)
}

/// Like [`import_identifiers`], with the import time given (the retention
/// period runs from it).
pub fn import_identifiers_at(
    store: &mut Store,
    input: impl Read,
    now: DateTime<Utc>,
    mut progress: impl FnMut(u64),
) -> Result<ImportReport, ImportError> {
    let (mut reader, columns) = open_csv(input)?;
    let expiry = if columns.expires.is_some() {
        ExpiryUpdate::Replace
    } else {
        ExpiryUpdate::Keep
    };

    let keys = store.oprf_keys()?;
    let mut report = ImportReport::default();
    let (sender, receiver) = std::sync::mpsc::sync_channel::<Vec<IdentifierRow>>(1);
    std::thread::scope(|scope| {
        let writer = scope.spawn(move || write_chunks(store, receiver, (expiry, now)));
        // A send fails once the writer stopped on an error, which is reported below.
        let read = read_chunks(
            &mut reader,
            columns,
            &keys,
            &mut report,
            &mut |rows| sender.send(rows).is_ok(),
            &mut progress,
        );
        drop(sender);
        let counts = writer.join().map_err(|_| {
            ImportError::Store(StoreError::Io(std::io::Error::other(
                "the writer thread panicked",
            )))
        })?;
        // A write error stops the reader (its send fails): report it first.
        let counts = counts?;
        read?;
        report.inserted = counts.inserted;
        report.duplicates = counts.existing;
        report.expiry_updated = counts.expiry_changed;
        Ok(report)
    })
}

/// A CSV reader past its header, and where the columns are.
fn open_csv<R: Read>(input: R) -> Result<(csv::Reader<R>, Columns), ImportError> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::Headers)
        .from_reader(input);
    let headers = reader.headers()?;
    let column = |name: &'static str| {
        headers
            .iter()
            .position(|h| h.eq_ignore_ascii_case(name))
            .ok_or(ImportError::MissingColumn(name))
    };
    let columns = Columns {
        kind: column("kind")?,
        value: column("value")?,
        record: column("record_id")?,
        expires: column("expires_at").ok(),
    };
    Ok((reader, columns))
}

/// Reads, validates and fingerprints a CSV of identifiers without storing
/// it: every row the import would store goes to `sink`, in chunks, and the
/// report counts rows and rejections (nothing inserted). The fuzz target of
/// the import's row decoding.
pub fn parse_identifiers(
    input: impl Read,
    keys: &OprfKeys,
    mut sink: impl FnMut(Vec<IdentifierRow>),
) -> Result<ImportReport, ImportError> {
    let (mut reader, columns) = open_csv(input)?;
    let mut report = ImportReport::default();
    read_chunks(
        &mut reader,
        columns,
        keys,
        &mut report,
        &mut |rows| {
            sink(rows);
            true
        },
        &mut |_| {},
    )?;
    Ok(report)
}

/// Column positions of the CSV.
#[derive(Clone, Copy)]
struct Columns {
    kind: usize,
    value: usize,
    record: usize,
    expires: Option<usize>,
}

fn read_chunks<R: Read>(
    reader: &mut csv::Reader<R>,
    columns: Columns,
    keys: &OprfKeys,
    report: &mut ImportReport,
    send: &mut impl FnMut(Vec<IdentifierRow>) -> bool,
    progress: &mut impl FnMut(u64),
) -> Result<(), ImportError> {
    let mut chunk = Vec::with_capacity(CHUNK_ROWS);
    let mut record = csv::StringRecord::new();
    loop {
        let more = match reader.read_record(&mut record) {
            Ok(more) => more,
            Err(e) if e.position().is_some() && !matches!(e.kind(), csv::ErrorKind::Io(_)) => {
                let line = e.position().map_or(0, |p| p.line());
                report.rows += 1;
                report.rejected.push(RejectedRow {
                    line,
                    reason: "not valid csv (bad quoting or utf-8)".to_owned(),
                });
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        if more {
            report.rows += 1;
            let line = record.position().map_or(0, |p| p.line());
            let field = |i: usize| record.get(i).unwrap_or("").to_owned();
            chunk.push(RawRow {
                line,
                kind: field(columns.kind),
                value: field(columns.value),
                record_id: field(columns.record),
                expires_at: columns.expires.map(field).unwrap_or_default(),
            });
        }
        if chunk.len() >= CHUNK_ROWS || (!more && !chunk.is_empty()) {
            let rows = prepare_chunk(keys, &mut chunk, report);
            if !send(rows) {
                return Ok(());
            }
            progress(reader.position().byte());
        }
        if !more {
            return Ok(());
        }
    }
}

/// Normalises and fingerprints one chunk on the rayon pool; refused rows go
/// to the report. Returns the rows in key order.
fn prepare_chunk(
    keys: &OprfKeys,
    chunk: &mut Vec<RawRow>,
    report: &mut ImportReport,
) -> Vec<IdentifierRow> {
    let results: Vec<Result<Parsed, RejectedRow>> = chunk.par_iter().map(parse).collect();
    chunk.clear();
    let mut parsed = Vec::with_capacity(results.len());
    for result in results {
        match result {
            Ok(row) => parsed.push(row),
            Err(rejected) => report.rejected.push(rejected),
        }
    }
    let items: Vec<(IdentifierKind, &NormalForm)> =
        parsed.iter().map(|p| (p.kind, &p.normal)).collect();
    let fingerprints = keys.fingerprints(&items);
    let mut rows: Vec<IdentifierRow> = parsed
        .into_iter()
        .zip(fingerprints)
        .map(|(p, (fingerprint, pending_fingerprint))| IdentifierRow {
            kind: p.kind,
            normal: p.normal,
            record_id: p.record_id,
            expires_at: p.expires_at,
            fingerprint,
            pending_fingerprint,
        })
        .collect();
    // Key order turns random B-tree inserts into one sweep over the pages
    // (stable: repeated rows keep their file order).
    rows.sort_by(|a, b| {
        (a.kind.code(), a.normal.as_str(), &a.record_id).cmp(&(
            b.kind.code(),
            b.normal.as_str(),
            &b.record_id,
        ))
    });
    rows
}

/// The writer thread: one transaction per chunk. A chunk whose fingerprints
/// were computed under keys that a rotation has since changed is
/// fingerprinted again under the current keys.
fn write_chunks(
    store: &mut Store,
    chunks: std::sync::mpsc::Receiver<Vec<IdentifierRow>>,
    (expiry, now): (ExpiryUpdate, DateTime<Utc>),
) -> Result<crate::store::UpsertCounts, ImportError> {
    let mut total = crate::store::UpsertCounts::default();
    let mut epoch = store.oprf_keys()?.epoch;
    for mut rows in chunks {
        let counts = loop {
            match store.upsert_identifiers(&rows, epoch, expiry, now) {
                Err(StoreError::KeysChanged) => {
                    let keys = store.oprf_keys()?;
                    refingerprint(&keys, &mut rows);
                    epoch = keys.epoch;
                }
                other => break other?,
            }
        };
        total.inserted += counts.inserted;
        total.existing += counts.existing;
        total.expiry_changed += counts.expiry_changed;
    }
    Ok(total)
}

fn refingerprint(keys: &OprfKeys, rows: &mut [IdentifierRow]) {
    let items: Vec<(IdentifierKind, &NormalForm)> =
        rows.iter().map(|r| (r.kind, &r.normal)).collect();
    let fingerprints = keys.fingerprints(&items);
    for (row, (fingerprint, pending)) in rows.iter_mut().zip(fingerprints) {
        row.fingerprint = fingerprint;
        row.pending_fingerprint = pending;
    }
}

/// A row that passed validation, not yet fingerprinted.
struct Parsed {
    kind: IdentifierKind,
    normal: NormalForm,
    record_id: String,
    expires_at: Option<DateTime<Utc>>,
}

fn parse(raw: &RawRow) -> Result<Parsed, RejectedRow> {
    let reject = |reason: String| RejectedRow {
        line: raw.line,
        reason,
    };
    let kind: IdentifierKind = raw
        .kind
        .parse()
        .map_err(|e: fedq_crypto::IdentifierError| reject(e.to_string()))?;
    let record_id = raw.record_id.trim();
    if record_id.is_empty() || record_id.len() > MAX_RECORD_ID {
        return Err(reject(format!(
            "record_id must be 1 to {MAX_RECORD_ID} characters"
        )));
    }
    let expires_at = parse_expires_at(&raw.expires_at).map_err(reject)?;
    let normal = fedq_crypto::normalise(kind, &raw.value).map_err(|e| reject(e.to_string()))?;
    Ok(Parsed {
        kind,
        normal,
        record_id: record_id.to_owned(),
        expires_at,
    })
}

/// Parses an `expires_at` cell: empty, `YYYY-MM-DD` (expires at the end of
/// that day, UTC, i.e. at the next midnight) or an RFC 3339 time.
fn parse_expires_at(text: &str) -> Result<Option<DateTime<Utc>>, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let invalid = || "expires_at must be a date YYYY-MM-DD or an RFC 3339 time".to_owned();
    if let Ok(day) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        let next = day.succ_opt().ok_or_else(invalid)?;
        return Ok(Some(next.and_time(chrono::NaiveTime::MIN).and_utc()));
    }
    DateTime::parse_from_rfc3339(text)
        .map(|t| Some(t.with_timezone(&Utc)))
        .map_err(|_| invalid())
}
