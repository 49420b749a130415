//! Checking a request's signed envelope at the node: known requester, valid
//! signature, agency and role as the federation file lists them, the action
//! and payload hash of the query actually received, a fresh time, and a nonce
//! never seen before (a replay is refused).
//!
//! Seen nonces are kept in the node's SQLite file until their time window has
//! passed; after that the time check alone refuses a replay.

use fedq_crypto::envelope::{expires_at, within_skew, Envelope, SignedEnvelope, VerifyingKey};
use fedq_db::{Db, DbError, Location, Schema};
pub use fedq_proto::payload::{
    from_wire, lookup_payload_hash, oprf_payload_hash, stats_payload_hash, to_wire,
};

use crate::federation::{RequesterEntry, Watched};

/// How far a request's time may be from the node's clock, either way.
pub const MAX_CLOCK_SKEW_SECONDS: i64 = 300;

/// Why an envelope was refused. The text is safe to send and to audit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EnvelopeRefusal {
    /// Missing or malformed envelope.
    #[error("{0}")]
    Malformed(String),
    /// Not a requester of the federation, or no signing key listed.
    #[error("unknown requester")]
    UnknownRequester,
    /// The signature does not verify.
    #[error("bad envelope signature")]
    BadSignature,
    /// Agency or role differ from the federation file.
    #[error("envelope {0} does not match the federation file")]
    Mismatch(&'static str),
    /// The envelope was made for another query or action.
    #[error("envelope does not match the query it came with")]
    WrongPayload,
    /// Outside the time window.
    #[error("stale request time (more than {MAX_CLOCK_SKEW_SECONDS} s from the node's clock)")]
    Stale,
    /// The nonce was seen before.
    #[error("replayed request (nonce already seen)")]
    Replay,
    /// The nonce store failed.
    #[error("nonce store error")]
    Store,
    /// The envelope's audience does not name this node.
    #[error("envelope is not addressed to this node")]
    NotAddressed,
    /// A lookup (or its OPRF step) that does not address every node of the
    /// federation: its answer would single out the nodes it does address.
    #[error("a lookup must address every node of the federation ({0})")]
    Partial(String),
}

/// Verifies envelopes against the federation's requesters, as the federation
/// file lists them now (a removed requester is refused within
/// [`Watched::RECHECK`]).
pub struct EnvelopeVerifier {
    node_id: String,
    federation: Watched,
    nonces: Db,
}

/// Nonces seen until their envelope's time window closes.
const SCHEMA: Schema = Schema {
    sqlite: "CREATE TABLE IF NOT EXISTS seen_nonces (
        requester TEXT NOT NULL,
        nonce TEXT NOT NULL,
        expires_at INTEGER NOT NULL,
        PRIMARY KEY (requester, nonce)
    ) WITHOUT ROWID;",
    postgres: "CREATE TABLE IF NOT EXISTS seen_nonces (
        requester TEXT NOT NULL,
        nonce TEXT NOT NULL,
        expires_at BIGINT NOT NULL,
        PRIMARY KEY (requester, nonce)
    );",
};

/// Creates the nonce table in the node's store (what [`EnvelopeVerifier::open`]
/// does before it serves).
pub fn create_tables(store: &Location) -> Result<(), DbError> {
    Db::open_with_schema(store, &SCHEMA).map(drop)
}

impl EnvelopeVerifier {
    /// A verifier for node `node_id` over the watched federation file,
    /// keeping seen nonces in the node's store.
    pub fn open(store: &Location, node_id: &str, federation: Watched) -> Result<Self, DbError> {
        Ok(Self {
            node_id: node_id.to_owned(),
            federation,
            nonces: Db::open_with_schema(store, &SCHEMA)?,
        })
    }

    /// Checks `signed` for a query of `action` whose payload hashes to
    /// `payload_hash`, at time `now` (Unix seconds). Records the nonce.
    pub fn verify(
        &self,
        signed: &SignedEnvelope,
        action: &str,
        payload_hash: &str,
        now: i64,
    ) -> Result<Envelope, EnvelopeRefusal> {
        let envelope = signed
            .peek()
            .map_err(|e| EnvelopeRefusal::Malformed(e.to_string()))?;
        let entry = self
            .requester(&envelope.requester)
            .ok_or(EnvelopeRefusal::UnknownRequester)?;
        let key = VerifyingKey::from_text(&entry.public_key)
            .map_err(|_| EnvelopeRefusal::UnknownRequester)?;
        signed
            .check_signature(&key)
            .map_err(|_| EnvelopeRefusal::BadSignature)?;
        if envelope.agency != entry.agency {
            return Err(EnvelopeRefusal::Mismatch("agency"));
        }
        if envelope.role != entry.role.as_str() {
            return Err(EnvelopeRefusal::Mismatch("role"));
        }
        if envelope.action != action || envelope.payload_hash != payload_hash {
            return Err(EnvelopeRefusal::WrongPayload);
        }
        self.check_audience(&envelope)?;
        // issued_at is the requester's number, i64::MIN included: overflow-safe.
        if !within_skew(envelope.issued_at, now, MAX_CLOCK_SKEW_SECONDS) {
            return Err(EnvelopeRefusal::Stale);
        }
        self.record_nonce(&envelope, now)?;
        Ok(envelope)
    }

    /// The envelope must name this node; a lookup or OPRF envelope must name
    /// exactly the federation's nodes (as this node's federation file lists
    /// them now).
    fn check_audience(&self, envelope: &Envelope) -> Result<(), EnvelopeRefusal> {
        if !envelope.audience.iter().any(|node| node == &self.node_id) {
            return Err(EnvelopeRefusal::NotAddressed);
        }
        if matches!(envelope.action.as_str(), "lookup" | "oprf" | "watch") {
            let federation = self.federation.current();
            let all: std::collections::BTreeSet<&str> =
                federation.nodes.iter().map(|n| n.id.as_str()).collect();
            let named: std::collections::BTreeSet<&str> =
                envelope.audience.iter().map(String::as_str).collect();
            if named.len() != envelope.audience.len() {
                // The audience's length sets the count's encoding and the
                // flooding of every answer: a node named twice would lower it.
                return Err(EnvelopeRefusal::Partial(
                    "the audience names a node more than once".to_owned(),
                ));
            }
            if named != all {
                let missing: Vec<&str> = all.difference(&named).copied().collect();
                let unknown = named.difference(&all).count();
                return Err(EnvelopeRefusal::Partial(format!(
                    "missing: {}; unknown: {unknown}",
                    if missing.is_empty() {
                        "none".to_owned()
                    } else {
                        missing.join(", ")
                    }
                )));
            }
        }
        Ok(())
    }

    /// Parses the envelope without verifying it, for the audit entry of a
    /// refusal (the fields are then marked as claimed, not verified).
    pub fn claimed(signed: &SignedEnvelope) -> Option<Envelope> {
        signed.peek().ok()
    }

    /// The listed requester with a signing key.
    /// The agency the federation file lists for requester `id`, if it is one.
    pub fn agency_of(&self, id: &str) -> Option<String> {
        self.requester(id).map(|entry| entry.agency)
    }

    fn requester(&self, id: &str) -> Option<RequesterEntry> {
        self.federation
            .requester(id)
            .filter(|r| !r.public_key.is_empty())
    }

    fn record_nonce(&self, envelope: &Envelope, now: i64) -> Result<(), EnvelopeRefusal> {
        let inserted = self
            .nonces
            .write(|tx| {
                tx.execute("DELETE FROM seen_nonces WHERE expires_at < ?1", &[&now])?;
                // The primary key decides, so that two requests racing with
                // one nonce (on any engine) cannot both be first.
                tx.execute(
                    "INSERT INTO seen_nonces (requester, nonce, expires_at) VALUES (?1, ?2, ?3)
                     ON CONFLICT (requester, nonce) DO NOTHING",
                    &[
                        &envelope.requester,
                        &envelope.nonce,
                        &expires_at(envelope.issued_at, MAX_CLOCK_SKEW_SECONDS),
                    ],
                )
            })
            .map_err(|_: DbError| EnvelopeRefusal::Store)?;
        if inserted == 0 {
            return Err(EnvelopeRefusal::Replay);
        }
        Ok(())
    }
}
