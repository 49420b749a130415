//! The true tallies of the transparency report: the public domains (row
//! keys) and the count of each cell. Nothing here draws noise and nothing
//! here leaves the node; `release.rs` does both.

use std::collections::BTreeSet;

use fedq_crypto::IdentifierKind;

use crate::audit::{AuditRecord, Decision};
use crate::policy::{normalise_purpose, ReportDomains};

/// The row of requests whose agency, purpose or table is not in the policy.
pub const OTHER: &str = "(other)";
/// The row of refusals whose envelope did not verify: their agency and
/// purpose are unproven claims (anyone may claim to be any agency), so they
/// are never counted under the agency or purpose they name.
pub const UNVERIFIED: &str = "(unverified)";
/// The kind of a lookup batch that names more than one identifier kind.
pub const SEVERAL_KINDS: &str = "(several kinds)";
/// The columns of the request tables, in [`Decision`] order.
pub const DECISIONS: [&str; 2] = ["admitted", "refused"];
/// The rows of the disclosure table.
pub const DISCLOSURE_OUTCOMES: [&str; 2] = ["revealed", "withheld"];
/// The column of the disclosure table (answered disclosure requests).
pub const DISCLOSURE_COLUMN: &str = "lookups";

/// The action of the entry an answered lookup adds when it asked for disclosure.
const DISCLOSE: &str = "disclose";

/// One table of true counts, `rows × columns`, every cell present.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    /// What the rows are: "agency", "purpose", "kind" or "disclosure".
    pub name: &'static str,
    /// Row keys, from public domains only.
    pub rows: Vec<String>,
    /// Column keys.
    pub columns: Vec<&'static str>,
    /// Counts, row-major (`rows.len() * columns.len()` cells).
    pub counts: Vec<i64>,
}

impl Table {
    fn new(name: &'static str, rows: Vec<String>, columns: Vec<&'static str>) -> Self {
        let cells = rows.len() * columns.len();
        Self {
            name,
            rows,
            columns,
            counts: vec![0; cells],
        }
    }

    /// Adds one to the cell (`row`, `column`); a row key outside the domain
    /// counts under [`OTHER`], which every table that can see one has.
    fn add(&mut self, row: &str, column: usize) {
        let index = self
            .rows
            .iter()
            .position(|r| r == row)
            .or_else(|| self.rows.iter().position(|r| r == OTHER));
        if let Some(index) = index {
            self.counts[index * self.columns.len() + column] += 1;
        }
    }

    /// The count of a cell, if both keys are in the table.
    pub fn count(&self, row: &str, column: &str) -> Option<i64> {
        let r = self.rows.iter().position(|k| k == row)?;
        let c = self.columns.iter().position(|k| *k == column)?;
        self.counts.get(r * self.columns.len() + c).copied()
    }
}

/// The public domains of the report: every row key comes from the policy or
/// from the code, never from the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Domains {
    agencies: Vec<String>,
    purposes: Vec<String>,
    /// Request actions (lookup, stats, ...; not disclose).
    actions: Vec<String>,
    /// Stats tables admitted by the policy.
    tables: BTreeSet<String>,
}

impl Domains {
    /// The domains of a policy: its agencies, purposes and actions
    /// ([`crate::policy::Policy::report_domains`]) and its stats tables.
    pub fn new<'a>(domains: ReportDomains, tables: impl IntoIterator<Item = &'a str>) -> Self {
        Self {
            agencies: domains.agencies,
            purposes: domains.purposes,
            actions: domains
                .actions
                .into_iter()
                .filter(|a| a != DISCLOSE)
                .collect(),
            tables: tables.into_iter().map(str::to_owned).collect(),
        }
    }

    /// The rows of the kind table: `lookup: <kind>` for every identifier
    /// kind, `lookup: (several kinds)`, `lookup: (other)`, `stats: <table>`
    /// for every policy table, `stats: (other)`, then any further action.
    fn kind_rows(&self) -> Vec<String> {
        let mut rows = Vec::new();
        for action in &self.actions {
            match action.as_str() {
                "lookup" => {
                    let kinds = IdentifierKind::ALL.iter().map(|k| k.as_str());
                    for kind in kinds.chain([SEVERAL_KINDS, OTHER]) {
                        rows.push(format!("lookup: {kind}"));
                    }
                }
                "stats" => {
                    let tables = self.tables.iter().map(String::as_str);
                    for table in tables.chain([OTHER]) {
                        rows.push(format!("stats: {table}"));
                    }
                }
                other => rows.push(other.to_owned()),
            }
        }
        rows
    }

    /// The kind row of a request entry (see [`Self::kind_rows`]).
    fn kind_of(&self, record: &AuditRecord) -> String {
        match record.action.as_str() {
            "lookup" => {
                let kind = match lookup_kinds(&record.detail).as_deref() {
                    Some([one]) => one.as_str(),
                    Some([_, _, ..]) => SEVERAL_KINDS,
                    _ => OTHER,
                };
                format!("lookup: {kind}")
            }
            "stats" => {
                let table = detail_field(&record.detail, "table")
                    .filter(|t| self.tables.contains(*t))
                    .unwrap_or(OTHER);
                format!("stats: {table}")
            }
            other => other.to_owned(),
        }
    }
}

/// Counts the request entries and disclosure entries of `records` into the
/// four tables, in this order: agency × decision, purpose × decision,
/// kind × decision, disclosure outcome. Every cell is present, zeros
/// included. Entries of actions outside the domain (the operator's own
/// `report` entries and the like) are not partner requests: not counted.
pub fn tally<'a>(
    domains: &Domains,
    records: impl IntoIterator<Item = &'a AuditRecord>,
) -> Vec<Table> {
    let with_other = |keys: &[String]| {
        let mut rows = keys.to_vec();
        rows.push(OTHER.to_owned());
        rows.push(UNVERIFIED.to_owned());
        rows
    };
    let decisions = DECISIONS.to_vec();
    let mut agency = Table::new("agency", with_other(&domains.agencies), decisions.clone());
    let mut purpose = Table::new("purpose", with_other(&domains.purposes), decisions.clone());
    let mut kind = Table::new("kind", domains.kind_rows(), decisions);
    let mut disclosure = Table::new(
        "disclosure",
        DISCLOSURE_OUTCOMES.map(str::to_owned).to_vec(),
        vec![DISCLOSURE_COLUMN],
    );
    for record in records {
        if record.action == DISCLOSE {
            let outcome = if record.reason.starts_with("revealed") {
                "revealed"
            } else {
                "withheld"
            };
            disclosure.add(outcome, 0);
            continue;
        }
        if !domains.actions.contains(&record.action) {
            continue;
        }
        let column = match record.decision {
            Decision::Admitted => 0,
            Decision::Refused => 1,
        };
        if record.reason.starts_with(crate::gate::UNVERIFIED_REASON) {
            agency.add(UNVERIFIED, column);
            purpose.add(UNVERIFIED, column);
        } else {
            agency.add(&record.agency, column);
            purpose.add(&normalise_purpose(&record.purpose), column);
        }
        kind.add(&domains.kind_of(record), column);
    }
    vec![agency, purpose, kind, disclosure]
}

/// The distinct identifier kinds of a lookup detail (`kinds=email,phone`),
/// sorted; `None` if the field is missing, empty or names an unknown kind.
fn lookup_kinds(detail: &str) -> Option<Vec<IdentifierKind>> {
    let mut kinds = BTreeSet::new();
    for name in detail_field(detail, "kinds")?.split(',') {
        kinds.insert(name.parse::<IdentifierKind>().ok()?);
    }
    let kinds: Vec<IdentifierKind> = kinds.into_iter().collect();
    (!kinds.is_empty()).then_some(kinds)
}

/// The value of `name=value` among the detail's space-separated fields.
fn detail_field<'a>(detail: &'a str, name: &str) -> Option<&'a str> {
    detail
        .split_whitespace()
        .find_map(|field| field.strip_prefix(name)?.strip_prefix('='))
}
