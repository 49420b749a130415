//! The noisy release of the tallies and the published report (text, JSON).
//! Noise comes only from [`fedq_crypto::dp::release_integers`] (OpenDP).

use std::fmt::Write as _;

use fedq_crypto::dp::{release_integers, DpError, Epsilon, PrivacyBudget};
use serde::Serialize;

use super::tally::Table;

/// How the noise is drawn, as the report states it.
pub const MECHANISM: &str = "discrete Laplace (OpenDP make_laplace)";
/// The privacy unit, as the report states it.
pub const PRIVACY_UNIT: &str = "one request to this node";
/// How much one request can change one table (L1): each request entry lands
/// in one cell of each request table, each disclosure entry in one cell of
/// the disclosure table, and a request leaves at most one of each.
pub const SENSITIVITY: u64 = 1;
/// What is done to the noisy values after the release.
pub const POST_PROCESSING: &str =
    "none: values are published as drawn, negative values included (clamping at zero would bias totals upwards)";

/// One released table: noisy counts only, never the true ones.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReleasedTable {
    /// What the rows are: "agency", "purpose", "kind" or "disclosure".
    pub name: &'static str,
    /// The epsilon this table cost (OpenDP's privacy map at [`SENSITIVITY`]).
    pub epsilon: f64,
    /// The most one request changes this table (L1).
    pub sensitivity: u64,
    /// The Laplace scale of the noise of every cell.
    pub noise_scale: f64,
    /// 95% of cells are within this of their true count.
    pub ci95_half_width: f64,
    /// Column keys.
    pub columns: Vec<&'static str>,
    /// One row per key of the public domain, zeros included.
    pub rows: Vec<ReleasedRow>,
}

/// One row of a released table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReleasedRow {
    /// The row key (an agency, a purpose, `lookup: phone`, ...).
    pub key: String,
    /// One noisy count per column.
    pub values: Vec<i64>,
}

/// Releases every table with noise, splitting `epsilon` equally between
/// them (sequential composition: the tables' epsilons add up to at most
/// `epsilon`). All noise is drawn before anything is returned.
pub fn release(tables: &[Table], epsilon: Epsilon) -> Result<Vec<ReleasedTable>, DpError> {
    let parts = u32::try_from(tables.len()).unwrap_or(u32::MAX);
    let share = PrivacyBudget::Epsilon(epsilon).split(parts);
    let mut released = Vec::with_capacity(tables.len());
    for table in tables {
        let noisy = release_integers(&table.counts, SENSITIVITY, share)?;
        let width = table.columns.len().max(1);
        let rows = table
            .rows
            .iter()
            .zip(noisy.values.chunks(width))
            .map(|(key, values)| ReleasedRow {
                key: key.clone(),
                values: values.to_vec(),
            })
            .collect();
        released.push(ReleasedTable {
            name: table.name,
            epsilon: noisy.loss.epsilon,
            sensitivity: SENSITIVITY,
            noise_scale: noisy.scale,
            ci95_half_width: noisy.ci95_half_width,
            columns: table.columns.clone(),
            rows,
        });
    }
    Ok(released)
}

/// The transparency report of one node for one month, fit for publication.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TransparencyReport {
    /// The node's id.
    pub node_id: String,
    /// The node's jurisdiction.
    pub jurisdiction: String,
    /// The month covered, `YYYY-MM` (UTC).
    pub month: String,
    /// False while the month is not over when the report is made.
    pub complete: bool,
    /// When the report was made (RFC 3339, UTC).
    pub generated_at: String,
    /// The epsilon the operator gave for the whole report.
    pub epsilon: f64,
    /// The epsilon spent: the sum of the tables' (sequential composition).
    pub epsilon_spent: f64,
    /// [`MECHANISM`].
    pub mechanism: &'static str,
    /// [`PRIVACY_UNIT`].
    pub privacy_unit: &'static str,
    /// How the epsilon is split between the tables.
    pub composition: String,
    /// The largest noise scale of any table (they are equal).
    pub noise_scale: f64,
    /// The largest 95% half-width of any table.
    pub ci95_half_width: f64,
    /// [`POST_PROCESSING`].
    pub post_processing: &'static str,
    /// agency × decision, purpose × decision, kind × decision, disclosure.
    pub tables: Vec<ReleasedTable>,
}

impl TransparencyReport {
    /// The report as one JSON object.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a report serialises")
    }

    /// The report as text: a header, then one aligned table per dimension.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let status = if self.complete {
            "complete month"
        } else {
            "partial: the month is not over"
        };
        let _ = writeln!(
            out,
            "fedq transparency report: node {} (jurisdiction {}), {} ({status})",
            self.node_id, self.jurisdiction, self.month
        );
        let _ = writeln!(out, "generated {}", self.generated_at);
        let _ = writeln!(
            out,
            "privacy: epsilon {} in total (spent {}); {}; {}",
            self.epsilon,
            round(self.epsilon_spent),
            self.mechanism,
            self.composition
        );
        let _ = writeln!(
            out,
            "unit: {}, which changes each table by at most {SENSITIVITY}",
            self.privacy_unit
        );
        let _ = writeln!(
            out,
            "noise: scale {} per cell; 95% of cells are within ±{} of the true count",
            round(self.noise_scale),
            round(self.ci95_half_width)
        );
        let _ = writeln!(out, "post-processing: {}", self.post_processing);
        for table in &self.tables {
            out.push('\n');
            write_table(&mut out, table);
        }
        out
    }
}

fn write_table(out: &mut String, table: &ReleasedTable) {
    let title = match table.name {
        "disclosure" => "answered disclosure requests by outcome".to_owned(),
        name => format!("requests by {name} and decision"),
    };
    let _ = writeln!(
        out,
        "{title} (epsilon {}, scale {}, 95% ±{})",
        round(table.epsilon),
        round(table.noise_scale),
        round(table.ci95_half_width)
    );
    let key_width = table
        .rows
        .iter()
        .map(|r| r.key.chars().count())
        .chain([table.name.len()])
        .max()
        .unwrap_or(0);
    let _ = write!(out, "  {:<key_width$}", table.name);
    for column in &table.columns {
        let _ = write!(out, "  {column:>10}");
    }
    out.push('\n');
    for row in &table.rows {
        let _ = write!(out, "  {:<key_width$}", row.key);
        for value in &row.values {
            let _ = write!(out, "  {value:>10}");
        }
        out.push('\n');
    }
}

/// Three decimals, without trailing zeros, for the header.
fn round(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}
