//! The privacy budget ledger: per requester and epoch, the privacy loss spent.
//!
//! A charge is checked against the cap and committed in one `BEGIN IMMEDIATE`
//! SQLite transaction (synchronous = FULL), together with a record of the
//! release, before any noisy value leaves the node. Concurrent queries
//! serialise on SQLite's write lock, so the cap can never be overspent; a
//! crash after the commit loses at most the answer, never the charge. There
//! are no refunds: once noise is drawn, the loss is spent.

use std::ops::Not;
use std::path::Path;
use std::sync::Mutex;

use fedq_crypto::dp::{amount, PrivacyLoss};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

/// Slack for floating-point sums of charges: a cap is never exceeded by more.
const CAP_TOLERANCE: f64 = 1e-9;

/// Errors of the ledger.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LedgerError {
    /// The charge would exceed the cap for this requester and epoch.
    #[error("{0}")]
    Exhausted(Shortfall),
    /// SQLite failed.
    #[error("ledger error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The store file cannot be opened.
    #[error(transparent)]
    Open(#[from] fedq_transport::sqlite::OpenError),
    /// The audit entry of the charge could not be written (nothing is charged).
    #[error("audit log: {0}")]
    Audit(String),
    /// The ledger directory cannot be created.
    #[error("cannot create the ledger directory: {0}")]
    Io(#[from] std::io::Error),
}

/// Why a charge does not fit, in the numbers a requester needs to decide
/// what to ask instead: what it costs, what is left of which cap, and when
/// the budget renews.
#[derive(Debug, Clone, PartialEq)]
pub struct Shortfall {
    /// The epoch charged.
    pub epoch: String,
    /// What the query costs.
    pub asked: PrivacyLoss,
    /// Spent before it.
    pub spent: PrivacyLoss,
    /// The caps of the epoch.
    pub caps: BudgetCaps,
}

/// The ledger's tables: what each requester has spent per epoch, and every release.
const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS privacy_ledger (
    requester TEXT NOT NULL,
    epoch TEXT NOT NULL,
    epsilon REAL NOT NULL,
    rho REAL NOT NULL,
    PRIMARY KEY (requester, epoch)
);
CREATE TABLE IF NOT EXISTS releases (
    query_id TEXT NOT NULL,
    requester TEXT NOT NULL,
    epoch TEXT NOT NULL,
    epsilon REAL NOT NULL,
    rho REAL NOT NULL,
    purpose TEXT NOT NULL,
    at TEXT NOT NULL
);";

impl Shortfall {
    /// The refusal of `asked` when `spent` is already charged, or `None` when it fits.
    pub fn of(
        epoch: &str,
        spent: PrivacyLoss,
        asked: PrivacyLoss,
        caps: BudgetCaps,
    ) -> Option<Self> {
        caps.admits(spent.compose(asked)).not().then(|| Self {
            epoch: epoch.to_owned(),
            asked,
            spent,
            caps,
        })
    }
}

impl std::fmt::Display for Shortfall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (name, asked, spent, cap) = if self.asked.rho > 0.0 {
            ("rho", self.asked.rho, self.spent.rho, self.caps.rho)
        } else {
            (
                "epsilon",
                self.asked.epsilon,
                self.spent.epsilon,
                self.caps.epsilon,
            )
        };
        write!(
            f,
            "privacy budget exhausted for epoch {}: the query costs {name} {}, {} of {} is left",
            self.epoch,
            amount(asked),
            amount((cap - spent).max(0.0)),
            amount(cap)
        )?;
        match renewal(&self.epoch) {
            Some(day) => write!(f, " (renews {day} 00:00 UTC)"),
            None => Ok(()),
        }
    }
}

/// The first day of the epoch after `epoch` (`YYYY-MM`).
pub fn renewal(epoch: &str) -> Option<chrono::NaiveDate> {
    chrono::NaiveDate::parse_from_str(&format!("{epoch}-01"), "%Y-%m-%d")
        .ok()?
        .checked_add_months(chrono::Months::new(1))
}

/// Budget caps per requester and epoch (each mechanism family has its own).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BudgetCaps {
    /// Pure-DP epsilon per epoch.
    pub epsilon: f64,
    /// zCDP rho per epoch.
    pub rho: f64,
}

impl BudgetCaps {
    /// Whether a total spend stays within both caps.
    pub fn admits(&self, total: PrivacyLoss) -> bool {
        total.epsilon <= self.epsilon + CAP_TOLERANCE && total.rho <= self.rho + CAP_TOLERANCE
    }
}

/// One release to charge.
#[derive(Debug, Clone)]
pub struct Charge<'a> {
    /// Requester charged.
    pub requester: &'a str,
    /// Epoch label, e.g. "2026-11".
    pub epoch: &'a str,
    /// Loss from OpenDP's privacy map.
    pub loss: PrivacyLoss,
    /// Query id, for the release record.
    pub query_id: &'a str,
    /// Declared purpose.
    pub purpose: &'a str,
}

/// The ledger, in the node's SQLite store.
pub struct Ledger {
    conn: Mutex<Connection>,
}

impl Ledger {
    /// Opens the ledger tables in the SQLite file at `path`.
    pub fn open(path: &Path) -> Result<Self, LedgerError> {
        let conn = fedq_transport::sqlite::open_with_schema(path, SCHEMA)?;
        Ok(Self {
            conn: Mutex::new(conn),
        })
    }

    /// What a requester has spent in an epoch.
    pub fn spent(&self, requester: &str, epoch: &str) -> Result<PrivacyLoss, LedgerError> {
        let conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        spent_in(&conn, requester, epoch)
    }

    /// Charges a release if it fits under the caps; returns the new total.
    /// `audit` is appended to the audit log in the same transaction, so a
    /// charge and its audit entry are committed together or not at all.
    pub fn charge(
        &self,
        charge: &Charge<'_>,
        caps: BudgetCaps,
        audit: Option<&crate::audit::AuditRecord>,
    ) -> Result<PrivacyLoss, LedgerError> {
        let mut conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let spent = spent_in(&tx, charge.requester, charge.epoch)?;
        if let Some(shortfall) = Shortfall::of(charge.epoch, spent, charge.loss, caps) {
            return Err(LedgerError::Exhausted(shortfall));
        }
        let total = spent.compose(charge.loss);
        tx.execute(
            "INSERT INTO privacy_ledger (requester, epoch, epsilon, rho) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (requester, epoch) DO UPDATE SET epsilon = excluded.epsilon, rho = excluded.rho",
            params![charge.requester, charge.epoch, total.epsilon, total.rho],
        )?;
        tx.execute(
            "INSERT INTO releases (query_id, requester, epoch, epsilon, rho, purpose, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                charge.query_id,
                charge.requester,
                charge.epoch,
                charge.loss.epsilon,
                charge.loss.rho,
                charge.purpose,
                chrono::Utc::now().to_rfc3339()
            ],
        )?;
        let seq = audit
            .map(|record| crate::audit::AuditLog::append_in(&tx, record))
            .transpose()
            .map_err(|e| LedgerError::Audit(e.to_string()))?;
        tx.commit()?;
        fedq_transport::metrics::budget_spent(
            charge.requester,
            charge.epoch,
            total.epsilon,
            total.rho,
        );
        if let (Some(record), Some(seq)) = (audit, seq) {
            crate::audit::AuditLog::counted(record, seq);
        }
        Ok(total)
    }
}

fn spent_in(conn: &Connection, requester: &str, epoch: &str) -> Result<PrivacyLoss, LedgerError> {
    let row: Option<(f64, f64)> = conn
        .query_row(
            "SELECT epsilon, rho FROM privacy_ledger WHERE requester = ?1 AND epoch = ?2",
            params![requester, epoch],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    Ok(
        row.map_or_else(PrivacyLoss::default, |(epsilon, rho)| PrivacyLoss {
            epsilon,
            rho,
        }),
    )
}

/// The budget epoch of an instant: calendar months (UTC).
pub fn epoch_of(time: chrono::DateTime<chrono::Utc>) -> String {
    time.format("%Y-%m").to_string()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn charge(ledger: &Ledger, epsilon: f64, caps: BudgetCaps) -> Result<PrivacyLoss, LedgerError> {
        ledger.charge(
            &Charge {
                requester: "r",
                epoch: "2026-11",
                loss: PrivacyLoss { epsilon, rho: 0.0 },
                query_id: "q",
                purpose: "p",
            },
            caps,
            None,
        )
    }

    #[test]
    fn fifty_concurrent_charges_never_overspend() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("node.db");
        let caps = BudgetCaps {
            epsilon: 1.0,
            rho: 0.0,
        };
        // Separate connections, as separate requests or processes would have.
        let handles: Vec<_> = (0..50)
            .map(|_| {
                let path = path.clone();
                std::thread::spawn(move || {
                    let ledger = Ledger::open(&path).expect("ledger opens");
                    charge(&ledger, 0.1, caps).is_ok()
                })
            })
            .collect();
        let admitted = handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .filter(|ok| *ok)
            .count();
        assert_eq!(admitted, 10, "exactly cap / charge queries fit");
        let spent = Ledger::open(&path)?.spent("r", "2026-11")?;
        assert!(spent.epsilon <= 1.0 + CAP_TOLERANCE);
        Ok(())
    }

    #[test]
    fn charges_survive_a_restart_and_exhaustion_is_refused(
    ) -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("node.db");
        let caps = BudgetCaps {
            epsilon: 1.0,
            rho: 1.0,
        };
        {
            let ledger = Arc::new(Ledger::open(&path)?);
            charge(&ledger, 0.75, caps)?;
        }
        let reopened = Ledger::open(&path)?;
        assert_eq!(reopened.spent("r", "2026-11")?.epsilon, 0.75);
        match charge(&reopened, 0.5, caps) {
            Err(LedgerError::Exhausted(shortfall)) => assert_eq!(
                shortfall.to_string(),
                format!(
                    "privacy budget exhausted for epoch 2026-11: the query costs epsilon 0.5, \
                     {} of {} is left (renews 2026-12-01 00:00 UTC)",
                    amount(caps.epsilon - 0.75),
                    amount(caps.epsilon)
                )
            ),
            other => panic!("expected a shortfall, got {other:?}"),
        }
        assert_eq!(
            reopened.spent("r", "2026-11")?.epsilon,
            0.75,
            "a refused charge spends nothing"
        );
        assert_eq!(
            reopened.spent("r", "2026-12")?.epsilon,
            0.0,
            "epochs are separate"
        );
        Ok(())
    }
}
