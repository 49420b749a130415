//! `fedq-node import --table`: a CSV into `<dir>/<table>.parquet`, with each row's contribution rank.
//!
//! The rank of a row is a uniformly random position 1..=n among the n rows of
//! its privacy unit, drawn once with a CSPRNG, so bounding contributions at
//! query time is the filter `fedq_rank <= bound`. Ranks need every row of a
//! unit, so the converted table is held in Arrow arrays (~80 bytes a row for
//! the incidents schema) until the end of the CSV and written in one go.
//! Bad rows are reported with their line and reason (never their values).
//!
//! Rows within the catalog's bound are written first, in row groups of their
//! own: the rank filter then skips every other row group by its statistics
//! (min rank > bound) without decoding it, which is most of the table when
//! some units report far more than the bound. The filter stays in the query,
//! so a changed bound still gives correct answers, only slower until re-import.

use std::collections::HashMap;
use std::fs::File;
use std::hash::{BuildHasherDefault, Hasher};
use std::io::{BufWriter, Read};
use std::path::Path;
use std::sync::{mpsc, Arc, Mutex, PoisonError};

use csv::ByteRecord;
use datafusion::arrow::array::{ArrayRef, AsArray, BooleanArray, UInt32Array};
use datafusion::arrow::compute::kernels::boolean::not;
use datafusion::arrow::compute::FilterBuilder;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::parquet::arrow::arrow_writer::{compute_leaves, ArrowColumnChunk};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::Compression;
use datafusion::parquet::file::properties::{EnabledStatistics, WriterProperties};
use datafusion::parquet::schema::types::ColumnPath;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rayon::prelude::*;

use super::catalog::{ColumnSpec, TableCatalog};
use super::rows::{self, Chunk};
use super::StatsError;

/// Rows per Arrow chunk: amortises builder overhead while keeping chunks cache-friendly.
const CHUNK_ROWS: usize = 100_000;
/// Rows per Parquet row group: large groups keep scans sequential.
const ROW_GROUP_ROWS: usize = 1_000_000;
/// Converting threads; the reading thread is the bottleneck past a few.
const MAX_WORKERS: usize = 4;

/// What an import did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatsImportReport {
    /// Data rows read (the header excluded).
    pub rows: usize,
    /// Rows stored.
    pub imported: usize,
    /// Refused rows: 1-based line number and reason.
    pub rejected: Vec<(u64, String)>,
}

/// Imports a CSV (with a header holding every catalog column) into `<dir>/<table>.parquet`,
/// replacing any earlier import atomically. `progress` gets the bytes read so far.
#[tracing::instrument(skip_all, fields(table = %catalog.name))]
pub fn import_table(
    catalog: &TableCatalog,
    csv: impl Read,
    dir: &Path,
    mut progress: impl FnMut(u64),
) -> Result<StatsImportReport, StatsError> {
    catalog
        .validate()
        .map_err(|problems| StatsError::Invalid(format!("bad catalog: {}", problems.join("; "))))?;
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .buffer_capacity(1 << 20)
        .from_reader(csv);
    let slots = rows::map_header(catalog, reader.byte_headers()?)?;
    let width = reader.byte_headers()?.len();
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, MAX_WORKERS);

    // This thread parses CSV (the reader need not be Send); workers convert chunks to Arrow.
    let (work_tx, work_rx) = mpsc::sync_channel::<(usize, Vec<ByteRecord>, usize)>(workers);
    let work_rx = Mutex::new(work_rx);
    let (done_tx, done_rx) = mpsc::channel::<(usize, Chunk, Vec<ByteRecord>)>();
    let (rows, mut chunks) = std::thread::scope(|scope| -> Result<_, StatsError> {
        let (work_tx, done_tx) = (work_tx, done_tx);
        for _ in 0..workers {
            let (work_rx, done_tx, slots) = (&work_rx, done_tx.clone(), &slots);
            scope.spawn(move || loop {
                // A poisoned lock still guards a sound receiver; the panic itself
                // surfaces when the scope joins.
                let job = work_rx
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .recv()
                    .ok();
                let Some((index, records, len)) = job else {
                    break;
                };
                let chunk = rows::convert(slots, width, &records[..len]);
                if done_tx.send((index, chunk, records)).is_err() {
                    break;
                }
            });
        }
        drop(done_tx);
        let (mut rows, mut chunks, mut spare) = (0, Vec::new(), Vec::new());
        for index in 0.. {
            while let Ok((i, chunk, records)) = done_rx.try_recv() {
                chunks.push((i, chunk));
                spare.push(records);
            }
            let mut records = spare.pop().unwrap_or_default();
            let mut len = 0;
            while len < CHUNK_ROWS {
                if records.len() == len {
                    records.push(ByteRecord::new());
                }
                if !reader.read_byte_record(&mut records[len])? {
                    break;
                }
                len += 1;
            }
            rows += len;
            let last = len < CHUNK_ROWS;
            if len > 0 && work_tx.send((index, records, len)).is_err() {
                return Err(StatsError::Engine("an import worker stopped".to_owned()));
            }
            progress(reader.position().byte());
            if last {
                break;
            }
        }
        drop(work_tx);
        chunks.extend(done_rx.iter().map(|(i, chunk, _)| (i, chunk)));
        Ok((rows, chunks))
    })?;
    chunks.sort_unstable_by_key(|(i, _)| *i);

    let mut report = StatsImportReport {
        rows,
        imported: 0,
        rejected: Vec::new(),
    };
    for (_, chunk) in &mut chunks {
        report.imported += chunk.units.len();
        report.rejected.append(&mut chunk.rejected);
    }
    let ranks = draw_ranks(chunks.iter().map(|(_, c)| &c.units))?;
    let unique: Vec<&str> = catalog
        .columns
        .iter()
        .filter(|c| matches!(c, ColumnSpec::Identifier { .. }))
        .map(|c| c.name())
        .collect();
    let arrays = chunks.into_iter().map(|(_, c)| c.arrays).collect();
    let parts = cluster_by_bound(arrays, &ranks, catalog.max_rows_per_unit)?;
    write_parquet(&rows::schema(catalog), &unique, parts, dir, &catalog.name)?;
    tracing::info!(
        rows = report.rows,
        imported = report.imported,
        rejected = report.rejected.len(),
        "statistics table imported"
    );
    Ok(report)
}

fn too_many_rows() -> StatsError {
    StatsError::Invalid("too many rows for one table (at most 4294967295)".to_owned())
}

/// Each unit's rows get a uniformly random permutation of 1..=n: units are
/// numbered, a counting sort groups row indices by unit, and each group is shuffled.
fn draw_ranks<'a>(
    unit_columns: impl Iterator<Item = &'a ArrayRef>,
) -> Result<Vec<u32>, StatsError> {
    let mut ids: HashMap<&str, u32, BuildHasherDefault<FxHasher>> = HashMap::default();
    let mut row_units: Vec<u32> = Vec::new();
    for column in unit_columns {
        for unit in column.as_string::<i32>().iter().flatten() {
            let next = u32::try_from(ids.len()).map_err(|_| too_many_rows())?;
            row_units.push(*ids.entry(unit).or_insert(next));
        }
    }
    u32::try_from(row_units.len()).map_err(|_| too_many_rows())?;
    let mut start = vec![0u32; ids.len() + 1];
    for &unit in &row_units {
        start[unit as usize + 1] += 1;
    }
    for i in 1..start.len() {
        start[i] += start[i - 1];
    }
    let mut next = start.clone();
    let mut order = vec![0u32; row_units.len()];
    for (row, &unit) in row_units.iter().enumerate() {
        order[next[unit as usize] as usize] = row as u32;
        next[unit as usize] += 1;
    }
    // Ranks decide which rows count when a unit is over its bound: they must
    // be unpredictable, hence a CSPRNG seeded by the OS.
    let mut rng = StdRng::from_entropy();
    let mut ranks = vec![0u32; row_units.len()];
    for unit in start.windows(2) {
        let rows = &mut order[unit[0] as usize..unit[1] as usize];
        rows.shuffle(&mut rng);
        for (rank, &row) in (1u32..).zip(rows.iter()) {
            ranks[row as usize] = rank;
        }
    }
    Ok(ranks)
}

/// An Fx-style multiplicative hash: unit ids come from the node's own file, so
/// hash flooding is no concern, and SipHash made up most of the ranking time.
#[derive(Default)]
struct FxHasher(u64);

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;
        for word in bytes.chunks(8) {
            let mut buf = [0u8; 8];
            buf[..word.len()].copy_from_slice(word);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(buf)).wrapping_mul(SEED);
        }
    }

    fn finish(&self) -> u64 {
        // The multiplication leaves entropy in the high bits; the table indexes
        // by the low bits, so they are rotated down (as rustc-hash 2 does).
        self.0.rotate_left(26)
    }
}

/// Appends each chunk's ranks as its last column and splits the rows into
/// those within `bound` and the rest, keeping their order within each part.
fn cluster_by_bound(
    chunks: Vec<Vec<ArrayRef>>,
    ranks: &[u32],
    bound: u32,
) -> Result<[Vec<Vec<ArrayRef>>; 2], StatsError> {
    let mut offsets = Vec::with_capacity(chunks.len());
    let mut offset = 0;
    for chunk in &chunks {
        offsets.push(offset);
        offset += chunk.first().map_or(0, |a| a.len());
    }
    let split: Vec<(Vec<ArrayRef>, Vec<ArrayRef>)> = chunks
        .into_par_iter()
        .zip(offsets)
        .map(|(mut columns, offset)| {
            let len = columns.first().map_or(0, |a| a.len());
            let rank = UInt32Array::from(ranks[offset..offset + len].to_vec());
            let within: BooleanArray = rank.iter().map(|r| r.map(|r| r <= bound)).collect();
            let beyond = not(&within)?;
            columns.push(Arc::new(rank));
            // One optimised predicate per mask, shared by every column of the chunk.
            let keep = |mask: &BooleanArray| -> Result<Vec<ArrayRef>, StatsError> {
                let predicate = FilterBuilder::new(mask).optimize().build();
                Ok(columns
                    .iter()
                    .map(|c| predicate.filter(c))
                    .collect::<Result<_, _>>()?)
            };
            Ok((keep(&within)?, keep(&beyond)?))
        })
        .collect::<Result<_, StatsError>>()?;
    let nonempty = |c: &Vec<ArrayRef>| c.first().is_some_and(|a| !a.is_empty());
    let (within, beyond): (Vec<_>, Vec<_>) = split.into_iter().unzip();
    Ok([
        within.into_iter().filter(nonempty).collect(),
        beyond.into_iter().filter(nonempty).collect(),
    ])
}

/// Writes a temporary file next to the target, then renames it over the
/// target, so queries see the old table or the new one, never half of one.
fn write_parquet(
    schema: &SchemaRef,
    unique: &[&str],
    parts: [Vec<Vec<ArrayRef>>; 2],
    dir: &Path,
    table: &str,
) -> Result<(), StatsError> {
    fedq_transport::files::create_private_dir(dir)?;
    let target = dir.join(format!("{table}.parquet"));
    let temp = dir.join(format!(
        ".{table}.parquet.{}-{:016x}.tmp",
        std::process::id(),
        rand::random::<u64>()
    ));
    let result = write_file(schema, unique, parts, &temp)
        .and_then(|()| Ok(std::fs::rename(&temp, &target)?));
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result?;
    // Persist the rename itself; not all platforms let a directory be opened, hence best effort.
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Encodes the columns of each row group in parallel: Parquet encoding is
/// otherwise the longest single-threaded step of an import. Chunks hold every
/// column, ranks included; a row group never spans two parts.
fn write_file(
    schema: &SchemaRef,
    unique: &[&str],
    parts: [Vec<Vec<ArrayRef>>; 2],
    path: &Path,
) -> Result<(), StatsError> {
    let mut props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        // Row-group statistics are what pruning uses; page statistics cost time for nothing here.
        .set_statistics_enabled(EnabledStatistics::Chunk);
    for name in unique {
        // Identifiers are (nearly) unique: dictionary encoding would be tried, fail and fall back.
        props = props.set_column_dictionary_enabled(ColumnPath::from(*name), false);
    }
    let file = BufWriter::with_capacity(1 << 20, fedq_transport::files::create_new_private(path)?);
    let writer = ArrowWriter::try_new(file, Arc::clone(schema), Some(props.build()))?;
    let (mut file_writer, factory) = writer.into_serialized_writer()?;

    let mut groups: Vec<Vec<Vec<ArrayRef>>> = Vec::new();
    for part in parts {
        let mut chunks = part.into_iter().peekable();
        loop {
            let mut group: Vec<Vec<ArrayRef>> = Vec::new();
            let mut group_rows = 0;
            // The first chunk always fits, so an oversized chunk is a group of its own.
            while let Some(next) = chunks.next_if(|c| {
                group.is_empty() || group_rows + c.first().map_or(0, |a| a.len()) <= ROW_GROUP_ROWS
            }) {
                group_rows += next.first().map_or(0, |a| a.len());
                group.push(next);
            }
            if group.is_empty() {
                break;
            }
            groups.push(group);
        }
    }
    for (group_index, group) in groups.into_iter().enumerate() {
        let writers = factory.create_column_writers(group_index)?;
        let encoded: Vec<ArrowColumnChunk> = writers
            .into_par_iter()
            .zip(schema.fields().par_iter())
            .enumerate()
            .map(|(column, (mut writer, field))| {
                for chunk in &group {
                    for leaf in compute_leaves(field, &chunk[column])? {
                        writer.write(&leaf)?;
                    }
                }
                writer.close()
            })
            .collect::<Result<_, _>>()?;
        let mut row_group = file_writer.next_row_group()?;
        for column in encoded {
            column.append_to_row_group(&mut row_group)?;
        }
        row_group.close()?;
    }
    let file = file_writer
        .into_inner()?
        .into_inner()
        .map_err(|e| e.into_error())?;
    file.sync_all()?;
    Ok(())
}
