//! The privacy budget ledger: what each requester, and each agency, has
//! spent, in one currency.
//!
//! Every release is charged its cost as zCDP rho ([`PrivacyLoss::cost`]:
//! a Gaussian release's rho, or OpenDP's zCDP cast of a Laplace release's
//! epsilon), against three caps at once: the requester's per epoch, its
//! agency's per epoch (all the agency's requesters together), and the
//! requester's over its lifetime. Costs add up under zCDP composition, so
//! one cap bounds every mix of mechanisms.
//!
//! A charge is checked against the caps and committed in one `BEGIN
//! IMMEDIATE` SQLite transaction (synchronous = FULL), together with a record
//! of the release and its audit entry, before any noisy value leaves the
//! node. Concurrent queries serialise on SQLite's write lock, so no cap can
//! be overspent; a crash after the commit loses at most the answer, never the
//! charge. There are no refunds: once noise is drawn, the loss is spent.

use std::ops::Not;

use fedq_crypto::dp::{amount, epsilon_within, PrivacyLoss};
use fedq_db::{Db, DbError, Exec, Location, Schema};

/// Slack for floating-point sums of charges: a cap is never exceeded by more.
const CAP_TOLERANCE: f64 = 1e-9;

/// Errors of the ledger.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LedgerError {
    /// The charge would exceed a cap.
    #[error("{0}")]
    Exhausted(Shortfall),
    /// The store failed, or cannot be opened.
    #[error("ledger error: {0}")]
    Db(#[from] DbError),
    /// The audit entry of the charge could not be written (nothing is charged).
    #[error("audit log: {0}")]
    Audit(String),
    /// The ledger directory cannot be created.
    #[error("cannot create the ledger directory: {0}")]
    Io(#[from] std::io::Error),
}

/// The ledger's tables. `privacy_ledger` keeps each requester's spend per
/// epoch and mechanism (what `fedq budget` has always shown); `budget_spent`
/// the cost in the one currency per cap; `releases` every release.
///
/// Spending recorded before `budget_spent` existed is carried over once, and
/// never under-counted: an epoch's pure-DP epsilons are cast as their sum
/// (`(sum eps)^2 / 2 >= sum eps^2 / 2`). Agencies start from zero then (the
/// old ledger did not record them).
const SCHEMA: Schema = Schema {
    sqlite: SQLITE_SCHEMA,
    postgres: POSTGRES_SCHEMA,
};

/// On SQLite, stores from before `budget_spent` existed are carried over.
const SQLITE_SCHEMA: &str = "CREATE TABLE IF NOT EXISTS privacy_ledger (
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
);
CREATE TABLE IF NOT EXISTS budget_spent (
    scope TEXT NOT NULL,
    holder TEXT NOT NULL,
    period TEXT NOT NULL,
    cost REAL NOT NULL,
    PRIMARY KEY (scope, holder, period)
);
INSERT OR IGNORE INTO budget_spent (scope, holder, period, cost)
    SELECT 'requester', requester, epoch, rho + epsilon * epsilon / 2.0 FROM privacy_ledger;
INSERT OR IGNORE INTO budget_spent (scope, holder, period, cost)
    SELECT 'lifetime', requester, '', SUM(rho + epsilon * epsilon / 2.0)
    FROM privacy_ledger GROUP BY requester;";

const POSTGRES_SCHEMA: &str = "CREATE TABLE IF NOT EXISTS privacy_ledger (
    requester TEXT NOT NULL,
    epoch TEXT NOT NULL,
    epsilon DOUBLE PRECISION NOT NULL,
    rho DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (requester, epoch)
);
CREATE TABLE IF NOT EXISTS releases (
    query_id TEXT NOT NULL,
    requester TEXT NOT NULL,
    epoch TEXT NOT NULL,
    epsilon DOUBLE PRECISION NOT NULL,
    rho DOUBLE PRECISION NOT NULL,
    purpose TEXT NOT NULL,
    at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS budget_spent (
    scope TEXT NOT NULL,
    holder TEXT NOT NULL,
    period TEXT NOT NULL,
    cost DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (scope, holder, period)
);";

/// Which cap a charge is held against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The requester, per epoch.
    Requester,
    /// The requester's agency, per epoch.
    Agency,
    /// The requester, over every epoch.
    Lifetime,
}

impl Scope {
    const ALL: [Scope; 3] = [Scope::Requester, Scope::Agency, Scope::Lifetime];

    fn as_str(self) -> &'static str {
        match self {
            Scope::Requester => "requester",
            Scope::Agency => "agency",
            Scope::Lifetime => "lifetime",
        }
    }
}

/// Budget caps, all in zCDP rho.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BudgetCaps {
    /// Per requester and epoch.
    pub requester: f64,
    /// Per agency (all its requesters together) and epoch.
    pub agency: f64,
    /// Per requester, over every epoch.
    pub lifetime: f64,
}

impl BudgetCaps {
    fn of(&self, scope: Scope) -> f64 {
        match scope {
            Scope::Requester => self.requester,
            Scope::Agency => self.agency,
            Scope::Lifetime => self.lifetime,
        }
    }
}

/// What one requester has spent, against each of its caps.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Spent {
    /// The requester's releases this epoch: per mechanism, and their cost.
    pub requester: PrivacyLoss,
    /// The cost of every release to the requester's agency this epoch.
    pub agency: f64,
    /// The cost of every release to the requester, ever.
    pub lifetime: f64,
}

impl Spent {
    /// The spend after a release of `loss`.
    pub fn after(&self, loss: PrivacyLoss) -> Spent {
        Spent {
            requester: self.requester.compose(loss),
            agency: self.agency + loss.cost,
            lifetime: self.lifetime + loss.cost,
        }
    }

    fn of(&self, scope: Scope) -> f64 {
        match scope {
            Scope::Requester => self.requester.cost,
            Scope::Agency => self.agency,
            Scope::Lifetime => self.lifetime,
        }
    }

    /// What may still be spent (rho) before the first cap binds.
    pub fn left(&self, caps: BudgetCaps) -> f64 {
        Scope::ALL
            .iter()
            .map(|&scope| caps.of(scope) - self.of(scope))
            .fold(f64::INFINITY, f64::min)
            .max(0.0)
    }
}

/// Why a charge does not fit, in the numbers a requester needs to decide
/// what to ask instead: what it costs, which cap binds, what is left of it,
/// and when it renews.
#[derive(Debug, Clone, PartialEq)]
pub struct Shortfall {
    /// The epoch charged.
    pub epoch: String,
    /// The requester's agency.
    pub agency: String,
    /// What the query costs.
    pub asked: PrivacyLoss,
    /// The cap that binds.
    pub scope: Scope,
    /// Spent against that cap before the query.
    pub spent: f64,
    /// That cap.
    pub cap: f64,
}

impl Shortfall {
    /// The refusal of `asked` on top of `spent`, or `None` when it fits
    /// under every cap.
    pub fn of(
        epoch: &str,
        agency: &str,
        spent: &Spent,
        asked: PrivacyLoss,
        caps: BudgetCaps,
    ) -> Option<Self> {
        let scope = Scope::ALL.into_iter().find(|&scope| {
            (spent.of(scope) + asked.cost <= caps.of(scope) + CAP_TOLERANCE).not()
        })?;
        Some(Self {
            epoch: epoch.to_owned(),
            agency: agency.to_owned(),
            asked,
            scope,
            spent: spent.of(scope),
            cap: caps.of(scope),
        })
    }
}

impl std::fmt::Display for Shortfall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let whose = match self.scope {
            Scope::Requester => format!("for epoch {}", self.epoch),
            Scope::Agency => format!("of agency {} for epoch {}", self.agency, self.epoch),
            Scope::Lifetime => "for the requester's lifetime".to_owned(),
        };
        write!(
            f,
            "privacy budget exhausted {whose}: the query costs rho {}",
            amount(self.asked.cost)
        )?;
        if self.asked.epsilon > 0.0 {
            write!(f, " (pure-DP epsilon {})", amount(self.asked.epsilon))?;
        }
        let left = (self.cap - self.spent).max(0.0);
        write!(
            f,
            ", rho {} of {} is left (at most epsilon {} in one pure-DP query)",
            amount(left),
            amount(self.cap),
            amount(epsilon_within(left))
        )?;
        match self.scope {
            Scope::Lifetime => Ok(()),
            Scope::Requester | Scope::Agency => match renewal(&self.epoch) {
                Some(day) => write!(f, " (renews {day} 00:00 UTC)"),
                None => Ok(()),
            },
        }
    }
}

/// The first day of the epoch after `epoch` (`YYYY-MM`).
pub fn renewal(epoch: &str) -> Option<chrono::NaiveDate> {
    chrono::NaiveDate::parse_from_str(&format!("{epoch}-01"), "%Y-%m-%d")
        .ok()?
        .checked_add_months(chrono::Months::new(1))
}

/// One release to charge.
#[derive(Debug, Clone)]
pub struct Charge<'a> {
    /// Requester charged.
    pub requester: &'a str,
    /// The requester's agency (as the federation file lists it).
    pub agency: &'a str,
    /// Epoch label, e.g. "2026-11".
    pub epoch: &'a str,
    /// Loss from OpenDP's privacy map.
    pub loss: PrivacyLoss,
    /// Query id, for the release record.
    pub query_id: &'a str,
    /// Declared purpose.
    pub purpose: &'a str,
}

/// The ledger, in the node's store.
pub struct Ledger {
    db: Db,
}

impl Ledger {
    /// Opens the ledger tables in the node's store.
    pub fn open(store: &Location) -> Result<Self, LedgerError> {
        Ok(Self {
            db: Db::open_with_schema(store, &SCHEMA)?,
        })
    }

    /// What a requester of `agency` has spent, in `epoch` and ever.
    pub fn spent(&self, requester: &str, agency: &str, epoch: &str) -> Result<Spent, LedgerError> {
        self.db
            .snapshot(|exec| spent_in(exec, requester, agency, epoch))
    }

    /// Charges a release if it fits under every cap; returns what is spent
    /// after it. `audit` is appended to the audit log in the same
    /// transaction, so a charge and its audit entry are committed together
    /// or not at all.
    pub fn charge(
        &self,
        charge: &Charge<'_>,
        caps: BudgetCaps,
        audit: Option<&crate::audit::AuditRecord>,
    ) -> Result<Spent, LedgerError> {
        // One writer at a time (see `fedq_db`): the check and the charge see
        // the same spend, so concurrent charges never overspend.
        let (after, seq) = self.db.write(|tx| {
            let spent = spent_in(tx, charge.requester, charge.agency, charge.epoch)?;
            if let Some(shortfall) =
                Shortfall::of(charge.epoch, charge.agency, &spent, charge.loss, caps)
            {
                return Err(LedgerError::Exhausted(shortfall));
            }
            let after = spent.after(charge.loss);
            tx.execute(
                "INSERT INTO privacy_ledger (requester, epoch, epsilon, rho) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (requester, epoch) DO UPDATE SET epsilon = excluded.epsilon, rho = excluded.rho",
                &[
                    &charge.requester,
                    &charge.epoch,
                    &after.requester.epsilon,
                    &after.requester.rho,
                ],
            )?;
            for (scope, holder, period) in [
                (Scope::Requester, charge.requester, charge.epoch),
                (Scope::Agency, charge.agency, charge.epoch),
                (Scope::Lifetime, charge.requester, ""),
            ] {
                tx.execute(
                    "INSERT INTO budget_spent (scope, holder, period, cost) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (scope, holder, period) DO UPDATE SET cost = excluded.cost",
                    &[&scope.as_str(), &holder, &period, &after.of(scope)],
                )?;
            }
            tx.execute(
                "INSERT INTO releases (query_id, requester, epoch, epsilon, rho, purpose, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                &[
                    &charge.query_id,
                    &charge.requester,
                    &charge.epoch,
                    &charge.loss.epsilon,
                    &charge.loss.rho,
                    &charge.purpose,
                    &chrono::Utc::now().to_rfc3339(),
                ],
            )?;
            let seq = audit
                .map(|record| crate::audit::AuditLog::append_in(tx, self.db.location(), record))
                .transpose()
                .map_err(|e| LedgerError::Audit(e.to_string()))?;
            Ok((after, seq))
        })?;
        fedq_transport::metrics::budget_spent(
            charge.requester,
            charge.epoch,
            after.requester.epsilon,
            after.requester.cost,
        );
        if let (Some(record), Some(seq)) = (audit, seq) {
            crate::audit::AuditLog::counted(record, seq);
        }
        Ok(after)
    }
}

fn spent_in(
    exec: &mut dyn Exec,
    requester: &str,
    agency: &str,
    epoch: &str,
) -> Result<Spent, LedgerError> {
    let (epsilon, rho) = exec
        .query_opt(
            "SELECT epsilon, rho FROM privacy_ledger WHERE requester = ?1 AND epoch = ?2",
            &[&requester, &epoch],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?
        .unwrap_or((0.0, 0.0));
    let mut cost = |scope: Scope, holder: &str, period: &str| -> Result<f64, LedgerError> {
        Ok(exec
            .query_opt(
                "SELECT cost FROM budget_spent WHERE scope = ?1 AND holder = ?2 AND period = ?3",
                &[&scope.as_str(), &holder, &period],
                |r| r.get(0),
            )?
            .unwrap_or(0.0))
    };
    Ok(Spent {
        requester: PrivacyLoss {
            epsilon,
            rho,
            cost: cost(Scope::Requester, requester, epoch)?,
        },
        agency: cost(Scope::Agency, agency, epoch)?,
        lifetime: cost(Scope::Lifetime, requester, "")?,
    })
}

/// The budget epoch of an instant: calendar months (UTC).
pub fn epoch_of(time: chrono::DateTime<chrono::Utc>) -> String {
    time.format("%Y-%m").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAPS: BudgetCaps = BudgetCaps {
        requester: 1.0,
        agency: 1.5,
        lifetime: 2.0,
    };

    fn pure(epsilon: f64) -> PrivacyLoss {
        PrivacyLoss {
            epsilon,
            rho: 0.0,
            cost: epsilon * epsilon / 2.0,
        }
    }

    fn gaussian(rho: f64) -> PrivacyLoss {
        PrivacyLoss {
            epsilon: 0.0,
            rho,
            cost: rho,
        }
    }

    fn charge(
        ledger: &Ledger,
        (requester, agency, epoch): (&str, &str, &str),
        loss: PrivacyLoss,
        caps: BudgetCaps,
    ) -> Result<Spent, LedgerError> {
        ledger.charge(
            &Charge {
                requester,
                agency,
                epoch,
                loss,
                query_id: "q",
                purpose: "p",
            },
            caps,
            None,
        )
    }

    fn scope_of(result: Result<Spent, LedgerError>) -> Option<Scope> {
        match result {
            Err(LedgerError::Exhausted(shortfall)) => Some(shortfall.scope),
            _ => None,
        }
    }

    /// On SQLite and, when a server is named, PostgreSQL.
    #[test]
    fn fifty_concurrent_charges_never_overspend() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        for store in fedq_db::testing::locations(dir.path(), "node.db") {
            // Separate connections, as separate requests or processes would have.
            let handles: Vec<_> = (0..50)
                .map(|_| {
                    let store = store.clone();
                    std::thread::spawn(move || {
                        let ledger = Ledger::open(&store).expect("ledger opens");
                        charge(&ledger, ("r", "a", "2026-11"), gaussian(0.1), CAPS).is_ok()
                    })
                })
                .collect();
            let admitted = handles
                .into_iter()
                .map(|h| h.join().expect("thread"))
                .filter(|ok| *ok)
                .count();
            assert_eq!(admitted, 10, "exactly cap / charge queries fit ({store:?})");
            let spent = Ledger::open(&store)?.spent("r", "a", "2026-11")?;
            assert!(spent.requester.cost <= CAPS.requester + CAP_TOLERANCE);
        }
        Ok(())
    }

    #[test]
    fn one_currency_a_spent_epsilon_leaves_no_rho() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let ledger = Ledger::open(&Location::Sqlite(dir.path().join("node.db")))?;
        let who = ("r", "a", "2026-11");
        // Two pure-DP releases of epsilon 1 cost rho 0.5 each: the cap.
        charge(&ledger, who, pure(1.0), CAPS)?;
        let after = charge(&ledger, who, pure(1.0), CAPS)?;
        assert!((after.requester.epsilon - 2.0).abs() < 1e-12);
        assert!((after.requester.cost - 1.0).abs() < 1e-12);
        assert_eq!(after.left(CAPS), 0.0);
        // A Gaussian query is charged against the same cap: refused.
        assert_eq!(
            scope_of(charge(&ledger, who, gaussian(0.01), CAPS)),
            Some(Scope::Requester)
        );
        Ok(())
    }

    #[test]
    fn an_agency_cap_binds_across_its_requesters() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let ledger = Ledger::open(&Location::Sqlite(dir.path().join("node.db")))?;
        charge(&ledger, ("r1", "a", "2026-11"), gaussian(0.9), CAPS)?;
        // r2 has its own requester cap untouched, but the agency has 0.6 left.
        let refused = charge(&ledger, ("r2", "a", "2026-11"), gaussian(0.7), CAPS);
        match refused {
            Err(LedgerError::Exhausted(shortfall)) => {
                assert_eq!(shortfall.scope, Scope::Agency);
                let text = shortfall.to_string();
                assert!(text.contains("of agency a for epoch 2026-11"), "{text}");
                assert!(text.contains("rho 0.6 of 1.5 is left"), "{text}");
            }
            other => panic!("expected the agency's cap, got {other:?}"),
        }
        charge(&ledger, ("r2", "a", "2026-11"), gaussian(0.6), CAPS)?;
        // Another agency's requester is not held by agency a's spend.
        charge(&ledger, ("r3", "b", "2026-11"), gaussian(0.9), CAPS)?;
        Ok(())
    }

    #[test]
    fn the_lifetime_cap_outlasts_epochs() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let ledger = Ledger::open(&Location::Sqlite(dir.path().join("node.db")))?;
        charge(&ledger, ("r", "a", "2026-10"), gaussian(1.0), CAPS)?;
        charge(&ledger, ("r", "a", "2026-11"), gaussian(0.9), CAPS)?;
        // A new epoch renews the monthly caps, not the lifetime's 0.1 left.
        let refused = charge(&ledger, ("r", "a", "2026-12"), gaussian(0.2), CAPS);
        match refused {
            Err(LedgerError::Exhausted(shortfall)) => {
                assert_eq!(shortfall.scope, Scope::Lifetime);
                let text = shortfall.to_string();
                assert!(text.contains("for the requester's lifetime"), "{text}");
                assert!(!text.contains("renews"), "{text}");
            }
            other => panic!("expected the lifetime cap, got {other:?}"),
        }
        Ok(())
    }

    #[test]
    fn charges_survive_a_restart_and_exhaustion_is_refused(
    ) -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("node.db");
        let who = ("r", "a", "2026-11");
        {
            let ledger = Ledger::open(&Location::Sqlite(path.clone()))?;
            charge(&ledger, who, gaussian(0.75), CAPS)?;
        }
        let reopened = Ledger::open(&Location::Sqlite(path.clone()))?;
        assert_eq!(reopened.spent("r", "a", "2026-11")?.requester.cost, 0.75);
        match charge(&reopened, who, pure(1.0), CAPS) {
            Err(LedgerError::Exhausted(shortfall)) => assert_eq!(
                shortfall.to_string(),
                "privacy budget exhausted for epoch 2026-11: the query costs rho 0.5 \
                 (pure-DP epsilon 1), rho 0.25 of 1 is left (at most epsilon 0.7071 in one \
                 pure-DP query) (renews 2026-12-01 00:00 UTC)"
            ),
            other => panic!("expected a shortfall, got {other:?}"),
        }
        let spent = reopened.spent("r", "a", "2026-11")?;
        assert_eq!(
            spent.requester.cost, 0.75,
            "a refused charge spends nothing"
        );
        assert_eq!(spent.lifetime, 0.75);
        assert_eq!(
            reopened.spent("r", "a", "2026-12")?.requester.cost,
            0.0,
            "epochs are separate"
        );
        Ok(())
    }

    #[test]
    fn spending_from_before_one_currency_is_carried_over_never_undercounted(
    ) -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("node.db");
        {
            // The ledger as it was: epsilon and rho apart, no costs.
            let conn = rusqlite::Connection::open(&path)?;
            conn.execute_batch(
                "CREATE TABLE privacy_ledger (requester TEXT NOT NULL, epoch TEXT NOT NULL,
                    epsilon REAL NOT NULL, rho REAL NOT NULL, PRIMARY KEY (requester, epoch));
                 INSERT INTO privacy_ledger VALUES ('r', '2026-10', 1.0, 0.1);
                 INSERT INTO privacy_ledger VALUES ('r', '2026-11', 0.0, 0.2);",
            )?;
        }
        let ledger = Ledger::open(&Location::Sqlite(path.clone()))?;
        let spent = ledger.spent("r", "a", "2026-10")?;
        assert!((spent.requester.cost - 0.6).abs() < 1e-12, "{spent:?}");
        assert!((spent.lifetime - 0.8).abs() < 1e-12, "{spent:?}");
        // Opening again carries nothing over twice.
        charge(&ledger, ("r", "a", "2026-11"), gaussian(0.1), CAPS)?;
        drop(ledger);
        let spent = Ledger::open(&Location::Sqlite(path.clone()))?.spent("r", "a", "2026-11")?;
        assert!((spent.requester.cost - 0.3).abs() < 1e-12, "{spent:?}");
        assert!((spent.lifetime - 0.9).abs() < 1e-12, "{spent:?}");
        Ok(())
    }
}
