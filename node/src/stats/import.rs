//! `fedq-node import --table`: a CSV into `<dir>/<table>.parquet`, with each row's contribution rank.
//!
//! The rank of a row is a uniformly random position 1..=n among the n rows of
//! its privacy unit, drawn once with a CSPRNG, so bounding contributions at
//! query time is the filter `fedq_rank <= bound`. Ranks need every row of a
//! unit, so the parsed table is held in Arrow arrays (~80 bytes a row for the
//! incidents schema) until the end of the CSV and written in one go.
//! Bad rows are reported with their line and reason (never their values).

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Read};
use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Date32Builder, Int32Builder, Int64Builder, StringBuilder, UInt32Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::Compression;
use datafusion::parquet::file::properties::WriterProperties;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;

use super::catalog::{self, ColumnSpec, TableCatalog, RANK_COLUMN};
use super::StatsError;

/// Rows per Arrow chunk: amortises builder overhead while keeping chunks cache-friendly.
const CHUNK_ROWS: usize = 100_000;
/// Rows per Parquet row group: large groups keep scans sequential.
const ROW_GROUP_ROWS: usize = 1_000_000;

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
    catalog.validate().map_err(|problems| StatsError::Invalid(format!("bad catalog: {}", problems.join("; "))))?;
    let mut reader = csv::ReaderBuilder::new().flexible(true).buffer_capacity(1 << 20).from_reader(csv);
    let slots = map_header(catalog, reader.byte_headers()?)?;
    let width = reader.byte_headers()?.len();
    let unit_slot = slots.iter().position(|s| s.spec.name() == catalog.privacy_unit).unwrap_or(0);

    let mut report = StatsImportReport { rows: 0, imported: 0, rejected: Vec::new() };
    let mut chunks: Vec<Vec<ArrayRef>> = Vec::new();
    let mut builders = new_builders(&slots);
    let mut parsed = vec![Parsed::Ident; slots.len()];
    let mut unit_ids: HashMap<Vec<u8>, u32> = HashMap::new();
    let mut row_units: Vec<u32> = Vec::new();
    let mut record = csv::ByteRecord::new();
    while reader.read_byte_record(&mut record)? {
        report.rows += 1;
        let line = record.position().map_or(0, |p| p.line());
        if record.len() != width {
            report.rejected.push((line, format!("expected {width} fields, found {}", record.len())));
            continue;
        }
        if let Err(reason) = parse_row(&slots, &record, &mut parsed) {
            report.rejected.push((line, reason));
            continue;
        }
        let unit = &record[slots[unit_slot].index];
        let next_id = u32::try_from(unit_ids.len()).map_err(|_| too_many_rows())?;
        let id = match unit_ids.get(unit) {
            Some(id) => *id,
            None => *unit_ids.entry(unit.to_vec()).or_insert(next_id),
        };
        row_units.push(id);
        append_row(&slots, &record, &parsed, &mut builders);
        report.imported += 1;
        if report.imported % CHUNK_ROWS == 0 {
            chunks.push(finish_chunk(&mut builders));
            progress(reader.position().byte());
        }
    }
    if report.imported % CHUNK_ROWS != 0 {
        chunks.push(finish_chunk(&mut builders));
    }
    progress(reader.position().byte());

    let t0 = std::time::Instant::now();
    let ranks = draw_ranks(&row_units, unit_ids.len())?;
    let t1 = std::time::Instant::now();
    write_parquet(&schema(catalog), chunks, ranks, dir, &catalog.name)?;
    eprintln!("TIMING ranks {:?} write {:?}", t1 - t0, t1.elapsed());
    tracing::info!(rows = report.rows, imported = report.imported, rejected = report.rejected.len(), "statistics table imported");
    Ok(report)
}

/// A catalog column and where it sits in the CSV.
struct Slot<'a> {
    spec: &'a ColumnSpec,
    index: usize,
    /// Category domain lookup, by bytes so no row needs UTF-8 decoding.
    domain: HashMap<&'a [u8], u32>,
    /// Inclusive date bounds as Date32 days.
    days: (i32, i32),
    is_unit: bool,
}

fn map_header<'a>(catalog: &'a TableCatalog, header: &csv::ByteRecord) -> Result<Vec<Slot<'a>>, StatsError> {
    const BOM: &[u8] = b"\xef\xbb\xbf";
    let names: Vec<&[u8]> =
        header.iter().enumerate().map(|(i, h)| if i == 0 { h.strip_prefix(BOM).unwrap_or(h) } else { h }).collect();
    let mut slots = Vec::with_capacity(catalog.columns.len());
    for spec in &catalog.columns {
        let index = names
            .iter()
            .position(|h| *h == spec.name().as_bytes())
            .ok_or_else(|| StatsError::Invalid(format!("the csv header lacks column {}", spec.name())))?;
        let mut slot = Slot { spec, index, domain: HashMap::new(), days: (0, 0), is_unit: spec.name() == catalog.privacy_unit };
        match spec {
            ColumnSpec::Category { values, .. } => {
                slot.domain = values.iter().enumerate().map(|(i, v)| (v.as_bytes(), i as u32)).collect();
            }
            ColumnSpec::Date { from, to, .. } => {
                let day = |s: &str| catalog::parse_date(s).map(catalog::date32).unwrap_or_default();
                slot.days = (day(from), day(to));
            }
            ColumnSpec::Integer { .. } | ColumnSpec::Identifier { .. } => {}
        }
        slots.push(slot);
    }
    Ok(slots)
}

/// A validated field, kept between validation and appending so a row is stored whole or not at all.
#[derive(Debug, Clone, Copy)]
enum Parsed {
    Category(u32),
    Date { days: i32, year: i32 },
    Integer(i64),
    Ident,
}

fn parse_row(slots: &[Slot<'_>], record: &csv::ByteRecord, out: &mut [Parsed]) -> Result<(), String> {
    for (slot, out) in slots.iter().zip(out.iter_mut()) {
        let field = &record[slot.index];
        let name = slot.spec.name();
        *out = match slot.spec {
            ColumnSpec::Category { .. } => match slot.domain.get(field) {
                Some(i) => Parsed::Category(*i),
                None => return Err(format!("column {name}: value outside the domain")),
            },
            ColumnSpec::Date { from, to, .. } => {
                let date = catalog::parse_date_bytes(field).ok_or_else(|| format!("column {name}: not a date (yyyy-mm-dd)"))?;
                let days = catalog::date32(date);
                if days < slot.days.0 || days > slot.days.1 {
                    return Err(format!("column {name}: outside [{from}, {to}]"));
                }
                Parsed::Date { days, year: chrono::Datelike::year(&date) }
            }
            ColumnSpec::Integer { .. } => match std::str::from_utf8(field).ok().and_then(|s| s.parse().ok()) {
                Some(v) => Parsed::Integer(v),
                None => return Err(format!("column {name}: not an integer")),
            },
            ColumnSpec::Identifier { .. } => {
                if slot.is_unit && field.is_empty() {
                    return Err(format!("column {name}: missing privacy unit"));
                }
                if std::str::from_utf8(field).is_err() {
                    return Err(format!("column {name}: not valid utf-8"));
                }
                Parsed::Ident
            }
        };
    }
    Ok(())
}

/// Arrow builders of one chunk, one per catalog column.
enum Builder {
    Str(StringBuilder),
    Date { days: Date32Builder, month: StringBuilder, year: Int32Builder },
    Int(Int64Builder),
}

fn new_builders(slots: &[Slot<'_>]) -> Vec<Builder> {
    let n = CHUNK_ROWS;
    let strings = |bytes_per_row| StringBuilder::with_capacity(n, n * bytes_per_row);
    slots
        .iter()
        .map(|slot| match slot.spec {
            ColumnSpec::Category { .. } | ColumnSpec::Identifier { .. } => Builder::Str(strings(16)),
            ColumnSpec::Date { .. } => Builder::Date {
                days: Date32Builder::with_capacity(n),
                month: strings(7),
                year: Int32Builder::with_capacity(n),
            },
            ColumnSpec::Integer { .. } => Builder::Int(Int64Builder::with_capacity(n)),
        })
        .collect()
}

fn append_row(slots: &[Slot<'_>], record: &csv::ByteRecord, parsed: &[Parsed], builders: &mut [Builder]) {
    for ((slot, parsed), builder) in slots.iter().zip(parsed).zip(builders.iter_mut()) {
        let field = &record[slot.index];
        match (builder, parsed, slot.spec) {
            (Builder::Str(b), Parsed::Category(i), ColumnSpec::Category { values, .. }) => {
                b.append_value(&values[*i as usize]);
            }
            (Builder::Str(b), Parsed::Ident, _) => b.append_value(std::str::from_utf8(field).unwrap_or_default()),
            (Builder::Date { days: d, month, year }, Parsed::Date { days, year: y }, _) => {
                d.append_value(*days);
                // Validated as ten ASCII bytes YYYY-MM-DD, so the first seven are the month.
                month.append_value(std::str::from_utf8(&field[..7]).unwrap_or_default());
                year.append_value(*y);
            }
            (Builder::Int(b), Parsed::Integer(v), _) => b.append_value(*v),
            // Builders are made from the same slots that parsed the row, so kinds always agree.
            _ => unreachable!("builder and parsed field kinds differ"),
        }
    }
}

fn finish_chunk(builders: &mut [Builder]) -> Vec<ArrayRef> {
    let mut arrays: Vec<ArrayRef> = Vec::new();
    for builder in builders {
        match builder {
            Builder::Str(b) => arrays.push(Arc::new(b.finish())),
            Builder::Date { days, month, year } => {
                arrays.push(Arc::new(days.finish()));
                arrays.push(Arc::new(month.finish()));
                arrays.push(Arc::new(year.finish()));
            }
            Builder::Int(b) => arrays.push(Arc::new(b.finish())),
        }
    }
    arrays
}

/// The Parquet schema: catalog columns in order (dates followed by their month
/// and year), then the rank.
pub(super) fn schema(catalog: &TableCatalog) -> SchemaRef {
    let mut fields = Vec::new();
    for column in &catalog.columns {
        let name = column.name();
        match column {
            ColumnSpec::Category { .. } | ColumnSpec::Identifier { .. } => fields.push(Field::new(name, DataType::Utf8, false)),
            ColumnSpec::Date { .. } => {
                fields.push(Field::new(name, DataType::Date32, false));
                fields.push(Field::new(catalog::month_column(name), DataType::Utf8, false));
                fields.push(Field::new(catalog::year_column(name), DataType::Int32, false));
            }
            ColumnSpec::Integer { .. } => fields.push(Field::new(name, DataType::Int64, false)),
        }
    }
    fields.push(Field::new(RANK_COLUMN, DataType::UInt32, false));
    Arc::new(Schema::new(fields))
}

fn too_many_rows() -> StatsError {
    StatsError::Invalid("too many rows or units for one table (at most 4294967295)".to_owned())
}

/// Each unit's rows get a uniformly random permutation of 1..=n: a counting
/// sort groups row indices by unit, then each group is shuffled.
fn draw_ranks(row_units: &[u32], unit_count: usize) -> Result<Vec<u32>, StatsError> {
    u32::try_from(row_units.len()).map_err(|_| too_many_rows())?;
    let mut start = vec![0u32; unit_count + 1];
    for &unit in row_units {
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

/// Writes a temporary file next to the target, then renames it over the
/// target, so queries see the old table or the new one, never half of one.
fn write_parquet(
    schema: &SchemaRef,
    chunks: Vec<Vec<ArrayRef>>,
    ranks: Vec<u32>,
    dir: &Path,
    table: &str,
) -> Result<(), StatsError> {
    std::fs::create_dir_all(dir)?;
    let target = dir.join(format!("{table}.parquet"));
    let temp = dir.join(format!(".{table}.parquet.{}-{:016x}.tmp", std::process::id(), rand::random::<u64>()));
    let result = write_file(schema, chunks, ranks, &temp).and_then(|()| Ok(std::fs::rename(&temp, &target)?));
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

fn write_file(schema: &SchemaRef, chunks: Vec<Vec<ArrayRef>>, ranks: Vec<u32>, path: &Path) -> Result<(), StatsError> {
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .build();
    let file = BufWriter::with_capacity(1 << 20, File::create(path)?);
    let mut writer = ArrowWriter::try_new(file, Arc::clone(schema), Some(props))?;
    let mut offset = 0;
    for mut columns in chunks {
        let len = columns.first().map_or(0, |c| c.len());
        columns.push(Arc::new(UInt32Array::from(ranks[offset..offset + len].to_vec())));
        offset += len;
        writer.write(&RecordBatch::try_new(Arc::clone(schema), columns)?)?;
    }
    let file = writer.into_inner()?.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    Ok(())
}
