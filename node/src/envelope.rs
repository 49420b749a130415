//! Checking a request's signed envelope at the node: known requester, valid
//! signature, agency and role as the federation file lists them, the action
//! and payload hash of the query actually received, a fresh time, and a nonce
//! never seen before (a replay is refused).
//!
//! Seen nonces are kept in the node's SQLite file until their time window has
//! passed; after that the time check alone refuses a replay.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};

use fedq_crypto::envelope::{Envelope, PayloadHasher, SignedEnvelope, VerifyingKey};
use fedq_proto::v1;
use rusqlite::{params, Connection};

use crate::federation::{FederationFile, RequesterEntry};

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
}

/// The hash a lookup's envelope must carry: key id, items, disclosure request.
pub fn lookup_payload_hash(
    key_id: &str,
    items: &[v1::LookupItem],
    disclose: bool,
    authorization: &str,
) -> String {
    let mut hasher = PayloadHasher::new("lookup");
    hasher.text(key_id).number(items.len() as u64);
    for item in items {
        hasher
            .number(item.kind as u64)
            .number(u64::from(item.bucket))
            .bytes(&item.encrypted_tag);
    }
    hasher.number(u64::from(disclose)).text(authorization);
    hasher.finish()
}

/// The hash an OPRF request's envelope must carry: declared kinds and blinded
/// elements, in order.
pub fn oprf_payload_hash(kinds: &[i32], blinded: &[Vec<u8>]) -> String {
    let mut hasher = PayloadHasher::new("oprf");
    hasher.number(kinds.len() as u64);
    for kind in kinds {
        hasher.number(*kind as u64);
    }
    hasher.number(blinded.len() as u64);
    for element in blinded {
        hasher.bytes(element);
    }
    hasher.finish()
}

/// The hash a statistics query's envelope must carry.
pub fn stats_payload_hash(query: &v1::StatsQuery) -> String {
    let mut hasher = PayloadHasher::new("stats");
    hasher.text(&query.table).text(&query.measure);
    hasher.number(query.group_by.len() as u64);
    for g in &query.group_by {
        hasher.text(g);
    }
    hasher.number(query.filters.len() as u64);
    for f in &query.filters {
        hasher.text(f);
    }
    match query.budget {
        Some(v1::stats_query::Budget::Epsilon(e)) => hasher.text("epsilon").number(e.to_bits()),
        Some(v1::stats_query::Budget::Rho(r)) => hasher.text("rho").number(r.to_bits()),
        None => hasher.text("none"),
    };
    hasher.finish()
}

/// Converts the wire envelope.
pub fn from_wire(envelope: Option<v1::SignedEnvelope>) -> SignedEnvelope {
    let envelope = envelope.unwrap_or_default();
    SignedEnvelope {
        bytes: envelope.envelope,
        signature: envelope.signature,
    }
}

/// Converts to the wire envelope.
pub fn to_wire(envelope: SignedEnvelope) -> v1::SignedEnvelope {
    v1::SignedEnvelope {
        envelope: envelope.bytes,
        signature: envelope.signature,
    }
}

/// Verifies envelopes against the federation's requesters.
pub struct EnvelopeVerifier {
    federation_path: PathBuf,
    requesters: RwLock<HashMap<String, RequesterEntry>>,
    nonces: Mutex<Connection>,
}

impl EnvelopeVerifier {
    /// A verifier over `requesters`, keeping seen nonces in the SQLite file `db`.
    pub fn open(
        db: &Path,
        federation_path: &Path,
        requesters: &[RequesterEntry],
    ) -> Result<Self, rusqlite::Error> {
        let conn = Connection::open(db)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS seen_nonces (
                 requester TEXT NOT NULL,
                 nonce TEXT NOT NULL,
                 expires_at INTEGER NOT NULL,
                 PRIMARY KEY (requester, nonce)
             ) WITHOUT ROWID;",
        )?;
        Ok(Self {
            federation_path: federation_path.to_owned(),
            requesters: RwLock::new(index(requesters)),
            nonces: Mutex::new(conn),
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
        if envelope.role != entry.role {
            return Err(EnvelopeRefusal::Mismatch("role"));
        }
        if envelope.action != action || envelope.payload_hash != payload_hash {
            return Err(EnvelopeRefusal::WrongPayload);
        }
        if (now - envelope.issued_at).abs() > MAX_CLOCK_SKEW_SECONDS {
            return Err(EnvelopeRefusal::Stale);
        }
        self.record_nonce(&envelope, now)?;
        Ok(envelope)
    }

    /// Parses the envelope without verifying it, for the audit entry of a
    /// refusal (the fields are then marked as claimed, not verified).
    pub fn claimed(signed: &SignedEnvelope) -> Option<Envelope> {
        signed.peek().ok()
    }

    /// The listed requester, re-reading the federation file once on a miss
    /// (`fedq federation add-requester` edits it while nodes run).
    fn requester(&self, id: &str) -> Option<RequesterEntry> {
        let read = |map: &HashMap<String, RequesterEntry>| {
            map.get(id).filter(|r| !r.public_key.is_empty()).cloned()
        };
        if let Some(found) = read(&self.requesters.read().unwrap_or_else(|e| e.into_inner())) {
            return Some(found);
        }
        let file = FederationFile::load(&self.federation_path).ok()?;
        let mut map = self.requesters.write().unwrap_or_else(|e| e.into_inner());
        *map = index(&file.requesters);
        read(&map)
    }

    fn record_nonce(&self, envelope: &Envelope, now: i64) -> Result<(), EnvelopeRefusal> {
        let conn = self.nonces.lock().unwrap_or_else(|e| e.into_inner());
        let store = |_| EnvelopeRefusal::Store;
        conn.execute(
            "DELETE FROM seen_nonces WHERE expires_at < ?1",
            params![now],
        )
        .map_err(store)?;
        let inserted = conn
            .execute(
                "INSERT OR IGNORE INTO seen_nonces (requester, nonce, expires_at) VALUES (?1, ?2, ?3)",
                params![
                    envelope.requester,
                    envelope.nonce,
                    envelope.issued_at + MAX_CLOCK_SKEW_SECONDS
                ],
            )
            .map_err(store)?;
        if inserted == 0 {
            return Err(EnvelopeRefusal::Replay);
        }
        Ok(())
    }
}

fn index(requesters: &[RequesterEntry]) -> HashMap<String, RequesterEntry> {
    requesters
        .iter()
        .map(|r| (r.id.clone(), r.clone()))
        .collect()
}
