//! The monthly transparency report: how many requests this node received
//! and decided, by partner agency, purpose, kind and decision, with
//! differentially private noise, fit for publication
//! (`fedq-node report --config FILE --month YYYY-MM [--epsilon E] [--json]`).
//!
//! # What is released
//! Four marginal tables, rather than one cross product (which would have
//! hundreds of mostly-zero cells, each as noisy as a marginal cell):
//! 1. `agency` × decision (admitted, refused),
//! 2. `purpose` × decision,
//! 3. `kind` × decision, where the kind is `lookup: <identifier kind>` for a
//!    batch of one kind, `lookup: (several kinds)` for a batch of several,
//!    `stats: <table>` for a statistics query,
//! 4. `disclosure`: answered lookups that asked for disclosure, by outcome
//!    (revealed, withheld).
//!
//! Totals per action or per decision are sums of released cells: post-
//! processing, free of privacy cost. Totals of different tables differ by
//! their independent noise.
//!
//! # Domains
//! Row keys come only from public domains, never from the audit log: the
//! policy's agencies, its purposes (normalised) and its stats tables, every
//! [`fedq_crypto::IdentifierKind`], each with one `(other)` row for values
//! outside the policy (unknown agencies, purposes, tables, and unparseable
//! lookup details). Every cell is released, zeros included, so absence is
//! never revealed. Entries of actions outside [`crate::policy::Action::NAMES`]
//! (the operator's own `report` entries and the like) are not partner
//! requests and are not counted.
//!
//! # Privacy unit and sensitivity
//! The unit is **one request** to this node (unbounded DP: one request added
//! or removed). A request leaves one entry of its own action (`lookup` or
//! `stats`, admitted or refused, by the gate, the ledger or the service),
//! plus, for an answered lookup that asked for disclosure, one `disclose`
//! entry. Request entries are counted in tables 1 to 3 (one cell each);
//! `disclose` entries only in table 4 (one cell). So one request changes each
//! table by at most 1 in L1 norm: sensitivity 1. A lookup batch counts once,
//! whatever its item count: the audit detail records the distinct kinds of a
//! batch but not the items per kind, and counting items would raise the
//! sensitivity to [`fedq_proto::MAX_ITEMS_PER_REQUEST`] (counting the batch
//! once per kind present, to the number of kinds), with noise to match.
//!
//! # Budget
//! The operator's `--epsilon` (default [`DEFAULT_EPSILON`]) covers the whole
//! report: each of the four tables gets epsilon / 4 and the tables compose
//! sequentially (the epsilons add up). Noise is discrete Laplace from OpenDP
//! ([`fedq_crypto::dp::release_integers`]), scale 4 / epsilon per cell.
//! Every run is a new release of the same month: runs compose too. Each run
//! is therefore written to the audit log (action `report`, requester
//! `operator`, the epsilon in the reason) **before** the report is printed,
//! so an oversight body can add up what was spent on a month.
//!
//! Noisy values are published as drawn, negative values included: no
//! post-processing. The log must verify ([`AuditLog::verify`]) or nothing
//! is released.

mod release;
mod tally;

#[cfg(test)]
mod tests;

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, NaiveDate, Utc};
use fedq_crypto::dp::{DpError, Epsilon};
use tracing::{info, instrument};

pub use self::release::{
    release, ReleasedRow, ReleasedTable, TransparencyReport, MECHANISM, POST_PROCESSING,
    PRIVACY_UNIT, SENSITIVITY,
};
pub use self::tally::{
    tally, Domains, Table, DECISIONS, DISCLOSURE_COLUMN, DISCLOSURE_OUTCOMES, OTHER, SEVERAL_KINDS,
    UNVERIFIED,
};
use crate::audit::{AuditError, AuditRecord, Decision};
use crate::config::NodeConfig;

/// Epsilon of a whole report when the operator gives none: one report a
/// month at 1 keeps each cell within about ±12 (95%) of its true count,
/// enough to show volumes and trends without exposing one request.
pub const DEFAULT_EPSILON: f64 = 1.0;

/// The audit action of a report run.
pub const REPORT_ACTION: &str = "report";

/// Errors of the transparency report.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReportError {
    /// The month is not `YYYY-MM` between 1970-01 and 9999-12.
    #[error("month must be YYYY-MM (UTC) between 1970-01 and 9999-12, e.g. 2026-11")]
    InvalidMonth,
    /// The epsilon is not finite and greater than zero.
    #[error("epsilon must be finite and greater than zero")]
    InvalidEpsilon,
    /// The month has not begun: its report would say nothing and still
    /// spend epsilon.
    #[error("{0} has not begun (UTC); the current month is the latest with a report")]
    FutureMonth(String),
    /// The node's `[policy]` section does not validate.
    #[error("invalid policy: {0}")]
    Policy(String),
    /// The audit log cannot be read or written.
    #[error(transparent)]
    Audit(#[from] AuditError),
    /// The audit log fails verification: nothing is released.
    #[error("the audit log fails verification at entry {seq}: {problem}; no report is released")]
    Tampered {
        /// The first bad entry.
        seq: u64,
        /// What is wrong with it.
        problem: String,
    },
    /// OpenDP refused the calibration.
    #[error("noise calibration failed: {0}")]
    Dp(#[from] DpError),
}

impl ReportError {
    /// Whether the operator's arguments are at fault (exit status 2).
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            Self::InvalidMonth | Self::InvalidEpsilon | Self::FutureMonth(_)
        )
    }
}

/// A calendar month (UTC), parsed strictly from `YYYY-MM`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Month(NaiveDate);

impl Month {
    /// The first instant of the month.
    pub fn start(self) -> DateTime<Utc> {
        self.0.and_time(chrono::NaiveTime::MIN).and_utc()
    }

    /// The first instant after the month (the report covers `[start, end)`).
    pub fn end(self) -> DateTime<Utc> {
        self.0
            .checked_add_months(chrono::Months::new(1))
            .map_or(DateTime::<Utc>::MAX_UTC, |d| {
                d.and_time(chrono::NaiveTime::MIN).and_utc()
            })
    }
}

impl FromStr for Month {
    type Err = ReportError;

    fn from_str(text: &str) -> Result<Self, ReportError> {
        let (year, month) = text.split_once('-').ok_or(ReportError::InvalidMonth)?;
        let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(year, 4) || !digits(month, 2) {
            return Err(ReportError::InvalidMonth);
        }
        let year: i32 = year.parse().map_err(|_| ReportError::InvalidMonth)?;
        let month: u32 = month.parse().map_err(|_| ReportError::InvalidMonth)?;
        if year < 1970 {
            return Err(ReportError::InvalidMonth);
        }
        NaiveDate::from_ymd_opt(year, month, 1)
            .map(Month)
            .ok_or(ReportError::InvalidMonth)
    }
}

impl fmt::Display for Month {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.format("%Y-%m"))
    }
}

/// What the operator asked for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReportOptions {
    /// The month to report on.
    pub month: Month,
    /// The epsilon of the whole report.
    pub epsilon: Epsilon,
}

impl ReportOptions {
    /// Parses the command-line values.
    pub fn new(month: &str, epsilon: f64) -> Result<Self, ReportError> {
        Ok(Self {
            month: month.parse()?,
            epsilon: Epsilon::new(epsilon).map_err(|_| ReportError::InvalidEpsilon)?,
        })
    }
}

/// Makes the report of `options.month`: verifies the audit log, tallies the
/// month's entries over the policy's domains, releases them with noise,
/// audits the release, and only then returns the report to print.
#[instrument(skip_all, fields(node = %config.node_id, month = %options.month))]
pub fn run(
    config: &NodeConfig,
    options: &ReportOptions,
    now: DateTime<Utc>,
) -> Result<TransparencyReport, ReportError> {
    if options.month.start() > now {
        return Err(ReportError::FutureMonth(options.month.to_string()));
    }
    let policy = &config.policy;
    let domains = Domains::new(policy.report_domains(), policy.tables());
    let log = config.open_audit()?;
    if let Some((seq, problem)) = log.verify()?.first_bad {
        return Err(ReportError::Tampered { seq, problem });
    }
    let tables = {
        let entries = log.entries_between(options.month.start(), options.month.end())?;
        tally(&domains, entries.iter().map(|e| &e.record))
    };
    let tables = release(&tables, options.epsilon)?;
    let report = TransparencyReport {
        node_id: config.node_id.clone(),
        jurisdiction: config.jurisdiction.clone(),
        month: options.month.to_string(),
        complete: now >= options.month.end(),
        generated_at: now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        epsilon: options.epsilon.get(),
        epsilon_spent: tables.iter().map(|t| t.epsilon).sum(),
        mechanism: MECHANISM,
        privacy_unit: PRIVACY_UNIT,
        composition: format!(
            "sequential composition over {} tables at epsilon/{} each",
            tables.len(),
            tables.len()
        ),
        noise_scale: tables.iter().map(|t| t.noise_scale).fold(0.0, f64::max),
        ci95_half_width: tables.iter().map(|t| t.ci95_half_width).fold(0.0, f64::max),
        post_processing: POST_PROCESSING,
        tables,
    };
    // The release is audited before anyone sees it; if that fails, nothing is printed.
    log.append(&audit_record(&report, now))?;
    info!(
        epsilon = report.epsilon_spent,
        "transparency report released"
    );
    Ok(report)
}

/// The audit record of a report run (no counts: they are in the report).
fn audit_record(report: &TransparencyReport, now: DateTime<Utc>) -> AuditRecord {
    AuditRecord {
        time: now,
        query_id: format!(
            "report-{}-{}",
            report.month,
            now.format("%Y%m%dT%H%M%S%.fZ")
        ),
        requester: "operator".to_owned(),
        agency: String::new(),
        role: "operator".to_owned(),
        purpose: "transparency report".to_owned(),
        legal_basis: String::new(),
        case_ref: String::new(),
        action: REPORT_ACTION.to_owned(),
        detail: format!(
            "month={} tables={}",
            report.month,
            report
                .tables
                .iter()
                .map(|t| t.name)
                .collect::<Vec<_>>()
                .join(",")
        ),
        decision: Decision::Admitted,
        reason: format!(
            "released with epsilon {} ({}, scale {} per cell, {})",
            report.epsilon_spent, report.mechanism, report.noise_scale, report.composition
        ),
    }
}
