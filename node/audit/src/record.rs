//! What an audit entry says, and the canonical encoding its hash covers.
//!
//! # Entry hash (format 1)
//!
//! `hash = hex(SHA-256(encoding))`, lowercase, where `encoding` is the bytes
//! `fedq-audit-entry\0`, the format as a big-endian `u32` (1), `seq` as a
//! big-endian `u64`, then each of these fields as a big-endian `u64` byte
//! length followed by its UTF-8 bytes: `prev_hash`, `time` (RFC 3339, UTC,
//! nanoseconds, `Z`: `2026-01-02T03:04:05.000000000Z`), `query_id`,
//! `requester`, `agency`, `role`, `purpose`, `legal_basis`, `case_ref`,
//! `action`, `detail`, `decision` (`admitted` or `refused`), `reason`.
//! Length prefixes make the encoding unambiguous: no choice of field values
//! can make two different entries encode alike. The first entry's
//! `prev_hash` is [`GENESIS_HASH`]. Exported entries carry every one of these
//! values, so an oversight body can recompute the chain.

use chrono::{DateTime, Datelike, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::AuditError;

/// Entry format this build writes and verifies.
pub(crate) const FORMAT: u32 = 1;
/// The `prev_hash` of the first entry.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";
const DOMAIN: &[u8] = b"fedq-audit-entry\0";

/// Whether the node answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    /// The query was answered.
    Admitted,
    /// The query was refused.
    Refused,
}

impl Decision {
    /// The stored and hashed spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admitted => "admitted",
            Self::Refused => "refused",
        }
    }

    pub(crate) fn parse(text: &str) -> Option<Self> {
        match text {
            "admitted" => Some(Self::Admitted),
            "refused" => Some(Self::Refused),
            _ => None,
        }
    }
}

impl std::fmt::Display for Decision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One decision to log, as a caller supplies it.
///
/// Never put identifiers, ciphertexts, keys or record contents here: the log
/// is exported to oversight bodies. `detail` is a non-identifying summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// When the decision was made (UTC, years 1970 to 9999).
    #[serde(with = "canonical_time")]
    pub time: DateTime<Utc>,
    /// Query id chosen by the coordinator.
    pub query_id: String,
    /// Requester id.
    pub requester: String,
    /// The requester's agency.
    pub agency: String,
    /// The requester's role.
    pub role: String,
    /// Declared purpose.
    pub purpose: String,
    /// Declared legal basis.
    pub legal_basis: String,
    /// Case reference.
    pub case_ref: String,
    /// What was asked: "lookup", "stats", "disclose", "oprf", ...
    pub action: String,
    /// Non-identifying summary, e.g. "items=3 kinds=phone,email".
    pub detail: String,
    /// Admitted or refused.
    pub decision: Decision,
    /// Why refused, or "" / "policy admits".
    pub reason: String,
}

/// A stored entry: a record, its place in the chain and its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Position in the log, contiguous from 1.
    pub seq: u64,
    /// What was logged.
    #[serde(flatten)]
    pub record: AuditRecord,
    /// Hash of the previous entry ([`GENESIS_HASH`] for the first).
    pub prev_hash: String,
    /// Hash of this entry (see the module docs for the encoding).
    pub hash: String,
    /// The party's audit key's signature over (seq, hash), hex (see
    /// `signature.rs`); `None` for entries written before entries were
    /// signed, which the checkpoint covers. Not part of the hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

impl AuditEntry {
    /// The hash an entry with these contents must have.
    pub fn compute_hash(seq: u64, prev_hash: &str, record: &AuditRecord) -> String {
        let mut hasher = Sha256::new();
        hasher.update(DOMAIN);
        hasher.update(FORMAT.to_be_bytes());
        hasher.update(seq.to_be_bytes());
        let time = format_time(record.time);
        let fields: [&str; 13] = [
            prev_hash,
            &time,
            &record.query_id,
            &record.requester,
            &record.agency,
            &record.role,
            &record.purpose,
            &record.legal_basis,
            &record.case_ref,
            &record.action,
            &record.detail,
            record.decision.as_str(),
            &record.reason,
        ];
        for field in fields {
            hasher.update((field.len() as u64).to_be_bytes());
            hasher.update(field.as_bytes());
        }
        hex::encode(hasher.finalize())
    }

    /// Whether the stored hash matches the contents.
    pub fn hash_is_valid(&self) -> bool {
        Self::compute_hash(self.seq, &self.prev_hash, &self.record) == self.hash
    }
}

/// The canonical text of a time: stored, hashed and exported.
pub(crate) fn format_time(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Nanos, true)
}

/// Parses a stored time, which must be in canonical form.
pub(crate) fn parse_time(text: &str) -> Result<DateTime<Utc>, String> {
    let time = DateTime::parse_from_rfc3339(text)
        .map_err(|_| "time is not RFC 3339".to_owned())?
        .with_timezone(&Utc);
    if format_time(time) != text {
        return Err("time is not in canonical form".to_owned());
    }
    Ok(time)
}

/// Refuses records the log cannot store canonically.
pub(crate) fn validate(record: &AuditRecord) -> Result<(), AuditError> {
    if !(1970..=9999).contains(&record.time.year()) {
        return Err(AuditError::InvalidRecord(
            "time must be between 1970 and 9999",
        ));
    }
    Ok(())
}

/// Serde for the canonical time text (chrono's default drops trailing zeros).
mod canonical_time {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(time: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format_time(*time))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let text = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&text)
            .map(|t| t.with_timezone(&Utc))
            .map_err(serde::de::Error::custom)
    }
}
