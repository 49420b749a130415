//! CSV records to Arrow arrays for one chunk of an import: field validation, rejection reasons, the Parquet schema.
//!
//! Chunks are independent (units are matched up later, from the stored unit
//! column), so several threads can convert chunks at once.

use std::collections::HashMap;
use std::sync::Arc;

use csv::ByteRecord;
use datafusion::arrow::array::{
    ArrayRef, Date32Builder, Int32Builder, Int64Builder, StringBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use super::catalog::{self, ColumnSpec, TableCatalog, RANK_COLUMN};
use super::StatsError;

/// Domains up to this size are searched linearly: faster than hashing each field.
const LINEAR_DOMAIN: usize = 32;

/// A catalog column and where it sits in the CSV.
#[derive(Debug)]
pub(super) struct Slot<'a> {
    spec: &'a ColumnSpec,
    index: usize,
    /// Category domain, by bytes so that no field needs UTF-8 decoding.
    domain: Vec<&'a [u8]>,
    domain_map: HashMap<&'a [u8], u32>,
    /// Inclusive date bounds as Date32 days.
    days: (i32, i32),
    is_unit: bool,
}

/// The converted rows of one chunk.
#[derive(Debug)]
pub(super) struct Chunk {
    /// One array per stored column, the rank excepted.
    pub(super) arrays: Vec<ArrayRef>,
    /// The privacy unit column (also in `arrays`).
    pub(super) units: ArrayRef,
    pub(super) rejected: Vec<(u64, String)>,
}

/// Finds each catalog column in the header (a UTF-8 byte order mark is ignored).
pub(super) fn map_header<'a>(
    catalog: &'a TableCatalog,
    header: &ByteRecord,
) -> Result<Vec<Slot<'a>>, StatsError> {
    const BOM: &[u8] = b"\xef\xbb\xbf";
    let names: Vec<&[u8]> = header
        .iter()
        .enumerate()
        .map(|(i, h)| {
            if i == 0 {
                h.strip_prefix(BOM).unwrap_or(h)
            } else {
                h
            }
        })
        .collect();
    let mut slots = Vec::with_capacity(catalog.columns.len());
    for spec in &catalog.columns {
        let index = names
            .iter()
            .position(|h| *h == spec.name().as_bytes())
            .ok_or_else(|| {
                StatsError::Invalid(format!("the csv header lacks column {}", spec.name()))
            })?;
        let is_unit = spec.name() == catalog.privacy_unit;
        let mut slot = Slot {
            spec,
            index,
            domain: Vec::new(),
            domain_map: HashMap::new(),
            days: (0, 0),
            is_unit,
        };
        match spec {
            ColumnSpec::Category { values, .. } => {
                slot.domain = values.iter().map(|v| v.as_bytes()).collect();
                if values.len() > LINEAR_DOMAIN {
                    slot.domain_map = slot
                        .domain
                        .iter()
                        .enumerate()
                        .map(|(i, v)| (*v, i as u32))
                        .collect();
                }
            }
            ColumnSpec::Date { from, to, .. } => {
                let day = |s: &str| {
                    catalog::parse_date(s)
                        .map(catalog::date32)
                        .unwrap_or_default()
                };
                slot.days = (day(from), day(to));
            }
            ColumnSpec::Integer { .. } | ColumnSpec::Identifier { .. } => {}
        }
        slots.push(slot);
    }
    Ok(slots)
}

/// Converts `records` (all with the header's `width`, or rejected); a row is stored whole or not at all.
pub(super) fn convert(slots: &[Slot<'_>], width: usize, records: &[ByteRecord]) -> Chunk {
    let mut builders = new_builders(slots, records.len());
    let mut parsed = vec![Parsed::Ident; slots.len()];
    let mut rejected = Vec::new();
    for record in records {
        let line = record.position().map_or(0, |p| p.line());
        if record.len() != width {
            rejected.push((
                line,
                format!("expected {width} fields, found {}", record.len()),
            ));
            continue;
        }
        match parse_row(slots, record, &mut parsed) {
            Ok(()) => append_row(slots, record, &parsed, &mut builders),
            Err(reason) => rejected.push((line, reason)),
        }
    }
    let mut arrays: Vec<ArrayRef> = Vec::new();
    let mut units = None;
    for (slot, builder) in slots.iter().zip(builders) {
        match builder {
            Builder::Str(mut b) => {
                let array: ArrayRef = Arc::new(b.finish());
                if slot.is_unit {
                    units = Some(Arc::clone(&array));
                }
                arrays.push(array);
            }
            Builder::Date {
                mut days,
                mut month,
                mut year,
            } => {
                arrays.push(Arc::new(days.finish()));
                arrays.push(Arc::new(month.finish()));
                arrays.push(Arc::new(year.finish()));
            }
            Builder::Int(mut b) => arrays.push(Arc::new(b.finish())),
        }
    }
    // A validated catalog's unit is an identifier column, which is a Str builder.
    let units = units.unwrap_or_else(|| Arc::new(StringBuilder::new().finish()));
    Chunk {
        arrays,
        units,
        rejected,
    }
}

/// A validated field, kept between validation and appending.
#[derive(Debug, Clone, Copy)]
enum Parsed {
    Category(u32),
    Date { days: i32, year: i32 },
    Integer(i64),
    Ident,
}

fn parse_row(slots: &[Slot<'_>], record: &ByteRecord, out: &mut [Parsed]) -> Result<(), String> {
    for (slot, out) in slots.iter().zip(out.iter_mut()) {
        let field = &record[slot.index];
        let name = slot.spec.name();
        *out = match slot.spec {
            ColumnSpec::Category { .. } => {
                let found = if slot.domain_map.is_empty() {
                    slot.domain
                        .iter()
                        .position(|v| *v == field)
                        .map(|i| i as u32)
                } else {
                    slot.domain_map.get(field).copied()
                };
                Parsed::Category(
                    found.ok_or_else(|| format!("column {name}: value outside the domain"))?,
                )
            }
            ColumnSpec::Date { from, to, .. } => {
                let date = catalog::parse_date_bytes(field)
                    .ok_or_else(|| format!("column {name}: not a date (yyyy-mm-dd)"))?;
                let days = catalog::date32(date);
                if days < slot.days.0 || days > slot.days.1 {
                    return Err(format!("column {name}: outside [{from}, {to}]"));
                }
                Parsed::Date {
                    days,
                    year: chrono::Datelike::year(&date),
                }
            }
            ColumnSpec::Integer { .. } => Parsed::Integer(
                parse_i64(field).ok_or_else(|| format!("column {name}: not an integer"))?,
            ),
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

/// A decimal integer with an optional sign, as `str::parse` accepts, without the UTF-8 check.
fn parse_i64(field: &[u8]) -> Option<i64> {
    let (negative, digits) = match field {
        [b'-', rest @ ..] => (true, rest),
        [b'+', rest @ ..] => (false, rest),
        _ => (false, field),
    };
    if digits.is_empty() {
        return None;
    }
    // Accumulating negatively reaches i64::MIN without overflow.
    let mut value: i64 = 0;
    for c in digits {
        let digit = i64::from(c.wrapping_sub(b'0'));
        if digit > 9 {
            return None;
        }
        value = value.checked_mul(10)?.checked_sub(digit)?;
    }
    if negative {
        Some(value)
    } else {
        value.checked_neg()
    }
}

/// Arrow builders of one chunk, one per catalog column.
// A handful of these exist per chunk and are matched per value in the hot
// loop: boxing the date builders would add an indirection for no memory gain.
#[allow(clippy::large_enum_variant)]
enum Builder {
    Str(StringBuilder),
    Date {
        days: Date32Builder,
        month: StringBuilder,
        year: Int32Builder,
    },
    Int(Int64Builder),
}

fn new_builders(slots: &[Slot<'_>], rows: usize) -> Vec<Builder> {
    let strings = |bytes_per_row| StringBuilder::with_capacity(rows, rows * bytes_per_row);
    slots
        .iter()
        .map(|slot| match slot.spec {
            ColumnSpec::Category { .. } | ColumnSpec::Identifier { .. } => {
                Builder::Str(strings(16))
            }
            ColumnSpec::Date { .. } => Builder::Date {
                days: Date32Builder::with_capacity(rows),
                month: strings(7),
                year: Int32Builder::with_capacity(rows),
            },
            ColumnSpec::Integer { .. } => Builder::Int(Int64Builder::with_capacity(rows)),
        })
        .collect()
}

fn append_row(
    slots: &[Slot<'_>],
    record: &ByteRecord,
    parsed: &[Parsed],
    builders: &mut [Builder],
) {
    for ((slot, parsed), builder) in slots.iter().zip(parsed).zip(builders.iter_mut()) {
        let field = &record[slot.index];
        match (builder, parsed, slot.spec) {
            (Builder::Str(b), Parsed::Category(i), ColumnSpec::Category { values, .. }) => {
                b.append_value(&values[*i as usize]);
            }
            (Builder::Str(b), Parsed::Ident, _) => {
                b.append_value(std::str::from_utf8(field).unwrap_or_default())
            }
            (
                Builder::Date {
                    days: d,
                    month,
                    year,
                },
                Parsed::Date { days, year: y },
                _,
            ) => {
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

/// The Parquet schema: catalog columns in order (dates followed by their month and year), then the rank.
pub(super) fn schema(catalog: &TableCatalog) -> SchemaRef {
    let mut fields = Vec::new();
    for column in &catalog.columns {
        let name = column.name();
        match column {
            ColumnSpec::Category { .. } | ColumnSpec::Identifier { .. } => {
                fields.push(Field::new(name, DataType::Utf8, false))
            }
            ColumnSpec::Date { .. } => {
                fields.push(Field::new(name, DataType::Date32, false));
                fields.push(Field::new(
                    catalog::month_column(name),
                    DataType::Utf8,
                    false,
                ));
                fields.push(Field::new(
                    catalog::year_column(name),
                    DataType::Int32,
                    false,
                ));
            }
            ColumnSpec::Integer { .. } => fields.push(Field::new(name, DataType::Int64, false)),
        }
    }
    fields.push(Field::new(RANK_COLUMN, DataType::UInt32, false));
    Arc::new(Schema::new(fields))
}

#[cfg(test)]
mod tests {
    use super::parse_i64;

    #[test]
    fn integers_parse_like_std() {
        for s in [
            "0",
            "-0",
            "+7",
            "-42",
            "9223372036854775807",
            "-9223372036854775808",
            "",
            "-",
            "1a",
            " 1",
            "9223372036854775808",
        ] {
            assert_eq!(parse_i64(s.as_bytes()), s.parse::<i64>().ok(), "{s:?}");
        }
    }
}
