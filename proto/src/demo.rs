//! The vocabulary of the demo federation's `incidents` table: the synthetic
//! data generator writes these values and `fedq federation init` publishes
//! them as the table's public group-by domains, so both read them from here.

/// Incident categories (public domain of `category`).
#[rustfmt::skip]
pub const CATEGORIES: &[&str] = &["phishing", "ransomware", "fraud", "ddos", "data_breach", "malware", "insider", "other"];

/// Economic sectors (public domain of `sector`).
#[rustfmt::skip]
pub const SECTORS: &[&str] = &["finance", "health", "energy", "government", "retail", "telecom", "transport", "education"];

/// The catalog of the generator's `incidents.csv`, as `fedq federation init`
/// publishes it: incidents per reporting unit, at most 10 rows per unit.
pub fn incidents_catalog() -> crate::catalog::TableCatalog {
    use crate::catalog::{ColumnSpec, TableCatalog};
    let strings = |values: &[&str]| values.iter().map(|v| (*v).to_owned()).collect();
    let identifier = |name: &str| ColumnSpec::Identifier {
        name: name.to_owned(),
    };
    let integer = |name: &str, min, max| ColumnSpec::Integer {
        name: name.to_owned(),
        min,
        max,
    };
    TableCatalog {
        name: "incidents".to_owned(),
        privacy_unit: "unit_id".to_owned(),
        max_rows_per_unit: 10,
        columns: vec![
            identifier("incident_id"),
            identifier("unit_id"),
            ColumnSpec::Date {
                name: "date".to_owned(),
                from: "2024-01-01".to_owned(),
                to: "2026-12-31".to_owned(),
            },
            ColumnSpec::Category {
                name: "category".to_owned(),
                values: strings(CATEGORIES),
            },
            ColumnSpec::Category {
                name: "sector".to_owned(),
                values: strings(SECTORS),
            },
            integer("loss_eur", 0, 1_000_000),
            integer("severity", 1, 5),
        ],
    }
}
