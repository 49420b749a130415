//! Deconfliction: agencies that work the same target are told so, privately.
//!
//! A requester registers a target under its pseudonym: the output of the
//! federation's threshold OPRF (`fedq_crypto::toprf`), which it can only
//! compute with the help of t nodes, and which the coordinator cannot compute
//! at all. With it come the agency's contact and case reference, sealed under
//! a key that only holders of the same identifier derive, and that key
//! wrapped under the requester's own key (handed back with each alert, so the
//! requester keeps no state).
//!
//! The coordinator matches pseudonyms. When a registration coincides with a
//! live registration of another agency, it raises one alert for each of the
//! two requesters, carrying the other's sealed contact. It learns which
//! registrations coincide and when, never an identifier, a contact or a case
//! reference. An agency is never matched against itself.
//!
//! Registrations and their alerts are deleted (with everything sealed in
//! them) when they expire or are cancelled.
//!
//! # Layout
//! - this file: limits and errors;
//! - `store`: the two tables and their transactions, on either engine.

mod store;
#[cfg(test)]
mod tests;

pub use store::{
    AlertRecord, DeconflictionStore, NewRegistration, Registration, MAX_ALERTS_PER_CALL,
    MAX_MATCHES,
};

/// Live registrations per requester when `[deconfliction]
/// max_live_per_requester` is unset: an investigator's open cases.
pub const DEFAULT_MAX_LIVE_PER_REQUESTER: u32 = 1_000;
/// Highest accepted `max_live_per_requester`.
const MAX_MAX_LIVE_PER_REQUESTER: u32 = 1_000_000;
/// Longest registration when `max_lifetime_days` is unset: a quarter, after
/// which the agency registers again if the operation goes on.
pub const DEFAULT_MAX_LIFETIME_DAYS: i64 = 90;
/// Highest accepted `max_lifetime_days` (two years).
const MAX_MAX_LIFETIME_DAYS: i64 = 730;

/// Bounds on registrations, from `coordinator.toml`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Live registrations one requester may hold.
    pub max_live_per_requester: u32,
    /// Longest a registration may last, in seconds.
    pub max_lifetime_seconds: i64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_live_per_requester: DEFAULT_MAX_LIVE_PER_REQUESTER,
            max_lifetime_seconds: DEFAULT_MAX_LIFETIME_DAYS * 86_400,
        }
    }
}

impl Limits {
    /// Validates the `[deconfliction]` keys; every problem is named.
    pub fn from_config(
        max_live_per_requester: Option<u32>,
        max_lifetime_days: Option<i64>,
    ) -> Result<Self, Vec<String>> {
        let mut problems = Vec::new();
        let live = max_live_per_requester.unwrap_or(DEFAULT_MAX_LIVE_PER_REQUESTER);
        if !(1..=MAX_MAX_LIVE_PER_REQUESTER).contains(&live) {
            problems.push(format!(
                "deconfliction.max_live_per_requester: must be between 1 and {MAX_MAX_LIVE_PER_REQUESTER}"
            ));
        }
        let days = max_lifetime_days.unwrap_or(DEFAULT_MAX_LIFETIME_DAYS);
        if !(1..=MAX_MAX_LIFETIME_DAYS).contains(&days) {
            problems.push(format!(
                "deconfliction.max_lifetime_days: must be between 1 and {MAX_MAX_LIFETIME_DAYS}"
            ));
        }
        if problems.is_empty() {
            Ok(Self {
                max_live_per_requester: live,
                max_lifetime_seconds: days * 86_400,
            })
        } else {
            Err(problems)
        }
    }
}

/// Why a deconfliction request was refused, or failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeconflictionError {
    /// The request is malformed (sizes, times).
    #[error("{0}")]
    Invalid(String),
    /// The requester holds as many live registrations as it may.
    #[error("at most {0} live deconfliction registrations per requester; cancel one first")]
    TooMany(u32),
    /// No live registration of the caller has this id.
    #[error("no live registration {0} of yours")]
    NotFound(String),
    /// The store failed.
    #[error("deconfliction store: {0}")]
    Db(#[from] fedq_db::DbError),
}
