//! Witnessed checkpoints: a node's signed head, countersigned by the
//! coordinator, which keeps them. A node's operator holds the node's key and
//! can rewrite or truncate its log and sign the result; they cannot make the
//! coordinator forget what it countersigned. `audit verify --witness` then
//! compares the node's log with every witnessed checkpoint: a log rolled
//! back below a witnessed seq, or different at one, fails.
//!
//! # Witness file (format 1)
//!
//! JSON lines, one [`WitnessedCheckpoint`] each: `{"version":"1","node":..,
//! "seq":..,"hash":..,"node_signature":..,"witnessed_at":..,
//! "countersignature":..}`. `node_signature` is the node's checkpoint
//! signature (`checkpoint.rs`, 128 hex digits); `witnessed_at` is RFC 3339
//! UTC with nanoseconds. The countersignature (Ed25519 by the coordinator's
//! audit key, 128 hex digits) covers `fedq-audit-witness\0`, the format as a
//! big-endian `u32` (1), then the node id, a big-endian `u64` seq, the hash,
//! the 64 bytes of the node's signature and `witnessed_at`, each text as a
//! big-endian `u64` byte length and its UTF-8 bytes.

use chrono::{DateTime, Utc};
use fedq_crypto::audit_key::AuditPublicKey;
use serde::{Deserialize, Serialize};

use super::checkpoint::{self, AuditKey};
use super::record;

const DOMAIN: &[u8] = b"fedq-audit-witness\0";
const FORMAT: u32 = 1;
/// Longest line of a witness file that is parsed: a well-formed one is
/// under 500 bytes (node ids are at most 32).
pub const MAX_LINE_BYTES: usize = 4096;

/// A party's checkpoint as it signed it: what a node sends to be witnessed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedHead {
    /// Seq of the head (0: the empty log).
    pub seq: u64,
    /// The head entry's hash ([`super::GENESIS_HASH`] for the empty log).
    pub hash: String,
    /// The checkpoint signature.
    pub signature: [u8; 64],
    /// The key that signed it.
    pub public_key: AuditPublicKey,
}

impl SignedHead {
    /// Whether `key` signed this head.
    pub fn is_signed_by(&self, key: &AuditPublicKey) -> bool {
        key.verifies(&checkpoint::message(self.seq, &self.hash), &self.signature)
    }
}

/// One witnessed checkpoint, as the coordinator keeps and exports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "version", deny_unknown_fields)]
pub enum WitnessFileLine {
    /// Format 1.
    #[serde(rename = "1")]
    V1(WitnessedCheckpoint),
}

/// A node's checkpoint and the coordinator's countersignature over it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WitnessedCheckpoint {
    /// The node's id.
    pub node: String,
    /// Seq of the node's signed head.
    pub seq: u64,
    /// The head entry's hash.
    pub hash: String,
    /// The node's checkpoint signature, hex.
    pub node_signature: String,
    /// When the coordinator witnessed it (canonical RFC 3339).
    pub witnessed_at: String,
    /// The coordinator's signature over all of the above, hex.
    pub countersignature: String,
}

fn message(node: &str, seq: u64, hash: &str, node_signature: &[u8; 64], at: &str) -> Vec<u8> {
    let mut message = DOMAIN.to_vec();
    message.extend_from_slice(&FORMAT.to_be_bytes());
    let text = |message: &mut Vec<u8>, text: &str| {
        message.extend_from_slice(&(text.len() as u64).to_be_bytes());
        message.extend_from_slice(text.as_bytes());
    };
    text(&mut message, node);
    message.extend_from_slice(&seq.to_be_bytes());
    text(&mut message, hash);
    message.extend_from_slice(node_signature);
    text(&mut message, at);
    message
}

fn signature_bytes(hex_text: &str) -> Option<[u8; 64]> {
    let mut bytes = [0u8; 64];
    (hex_text.len() == 128 && hex::decode_to_slice(hex_text, &mut bytes).is_ok()).then_some(bytes)
}

impl WitnessedCheckpoint {
    /// Countersigns `head` of node `node` with the witness's key.
    pub(super) fn countersign(
        key: &AuditKey,
        node: &str,
        head: &SignedHead,
        at: DateTime<Utc>,
    ) -> Self {
        let witnessed_at = record::format_time(at);
        let countersignature = key.sign(&message(
            node,
            head.seq,
            &head.hash,
            &head.signature,
            &witnessed_at,
        ));
        Self {
            node: node.to_owned(),
            seq: head.seq,
            hash: head.hash.clone(),
            node_signature: hex::encode(head.signature),
            witnessed_at,
            countersignature: hex::encode(countersignature),
        }
    }

    /// Whether `witness` countersigned exactly this.
    pub fn is_countersigned_by(&self, witness: &AuditPublicKey) -> bool {
        let (Some(node_signature), Some(countersignature)) = (
            signature_bytes(&self.node_signature),
            signature_bytes(&self.countersignature),
        ) else {
            return false;
        };
        witness.verifies(
            &message(
                &self.node,
                self.seq,
                &self.hash,
                &node_signature,
                &self.witnessed_at,
            ),
            &countersignature,
        )
    }

    /// Whether the node's key `node_key` signed this head.
    pub fn is_signed_by_node(&self, node_key: &AuditPublicKey) -> bool {
        signature_bytes(&self.node_signature).is_some_and(|signature| {
            node_key.verifies(&checkpoint::message(self.seq, &self.hash), &signature)
        })
    }

    /// One line of a witness file (with its newline).
    pub fn to_line(&self) -> String {
        let mut line =
            serde_json::to_string(&WitnessFileLine::V1(self.clone())).expect("a line serialises");
        line.push('\n');
        line
    }

    /// Parses one line of a witness file (at most [`MAX_LINE_BYTES`]).
    pub fn from_line(line: &str) -> Result<Self, String> {
        if line.len() > MAX_LINE_BYTES {
            return Err(format!("longer than {MAX_LINE_BYTES} bytes"));
        }
        match serde_json::from_str(line) {
            Ok(WitnessFileLine::V1(witnessed)) => Ok(witnessed),
            Err(_) => Err("not a version 1 witnessed checkpoint".to_owned()),
        }
    }
}

/// How a log compares with one witnessed checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WitnessCheck {
    /// The log holds that hash at that seq.
    Holds,
    /// The log ends below the witnessed seq: it was rolled back.
    RolledBack {
        /// The witnessed seq.
        witnessed: u64,
        /// Where the log ends now.
        head: u64,
    },
    /// The log holds another entry at the witnessed seq: history forked.
    Forked {
        /// The witnessed seq.
        witnessed: u64,
    },
}

impl WitnessCheck {
    /// What is wrong, for the operator; `None` if the log holds.
    pub fn problem(&self) -> Option<String> {
        match self {
            Self::Holds => None,
            Self::RolledBack { witnessed, head } => Some(format!(
                "the log was rolled back: it ends at entry {head}, but the coordinator \
                 witnessed entry {witnessed}"
            )),
            Self::Forked { witnessed } => Some(format!(
                "the log forked: entry {witnessed} differs from the one the coordinator witnessed"
            )),
        }
    }
}
