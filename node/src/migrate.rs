//! `fedq-node migrate`: creates or upgrades every table of the node's store
//! (identifiers and OPRF keys, the privacy ledger, seen nonces, the audit
//! log), so that an operator can prepare a PostgreSQL database (or check an
//! SQLite file) before the node serves. Serving and importing migrate too;
//! this does it alone, and says what it found.

use crate::config::NodeConfig;
use crate::store::{Store, SCHEMA_VERSION};

/// What `migrate` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migrated {
    /// The store, without a password.
    pub location: String,
    /// The identifier store's schema version before (`None`: a new store).
    pub from: Option<i64>,
    /// The version it is at now (this build's).
    pub to: i64,
}

/// Creates or upgrades the node's tables; refused (nothing changed) when the
/// store was written by a newer fedq.
pub fn migrate(config: &NodeConfig) -> anyhow::Result<Migrated> {
    let from = Store::schema_version_of(&config.store)?;
    Store::open(&config.store)?;
    crate::ledger::Ledger::open(&config.store)?;
    crate::envelope::create_tables(&config.store)?;
    config.open_audit()?;
    Ok(Migrated {
        location: config.store.display(),
        from,
        to: SCHEMA_VERSION,
    })
}
