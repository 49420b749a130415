//! Witnessing the nodes' audit checkpoints: at startup and every `[witness]
//! interval_seconds`, each node's signed head is fetched, checked against
//! the key `federation.toml` pins for it and against what was witnessed
//! before (`crate::witness`), then countersigned and kept, or refused:
//! warned, audited in the coordinator's own log, and kept as an alarm.

use std::sync::Arc;
use std::time::Duration;

use fedq_audit::witness::SignedHead;
use fedq_audit::{AuditRecord, Decision};
use fedq_crypto::audit_key::AuditPublicKey;
use fedq_proto::v1;
use tracing::{debug, warn};

use super::CoordinatorService;
use crate::node_client::NodeHandle;
use crate::witness::{judge, Alarm, AlarmKind, Verdict};

/// What one round did with one node's checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Witnessed {
    /// Countersigned and kept, at this seq.
    Countersigned(u64),
    /// The head witnessed last time, unchanged.
    Unchanged(u64),
    /// Refused and kept as an alarm.
    Refused(AlarmKind),
    /// Not witnessed: no pinned key, no answer or an unreadable one.
    Skipped(String),
}

/// A node's answer as a signed head, if well formed: its id, a 64-hex hash,
/// 64-byte signature and 32-byte key (bounded before use).
fn signed_head(node: &str, answer: v1::NodeCheckpointResponse) -> Result<SignedHead, String> {
    if answer.node_id != node {
        return Err("the answer names another node".to_owned());
    }
    let hash_ok = answer.hash.len() == 64
        && answer
            .hash
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !hash_ok {
        return Err("the hash is not 64 lowercase hex digits".to_owned());
    }
    let signature: [u8; 64] = answer
        .signature
        .as_slice()
        .try_into()
        .map_err(|_| "the signature is not 64 bytes".to_owned())?;
    let public_key = AuditPublicKey::from_bytes(&answer.public_key)
        .map_err(|_| "the public key is not an Ed25519 key".to_owned())?;
    Ok(SignedHead {
        seq: answer.seq,
        hash: answer.hash,
        signature,
        public_key,
    })
}

impl CoordinatorService {
    /// Witnesses every node now and then every `interval`, until dropped.
    pub async fn witness_every(self: Arc<Self>, interval: Duration) {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            self.witness_round().await;
        }
    }

    /// Fetches, checks and countersigns (or refuses) every node's checkpoint
    /// once; returns what happened, per node.
    pub async fn witness_round(&self) -> Vec<(String, Witnessed)> {
        let rounds = self.nodes.iter().map(|node| async move {
            let outcome = self.witness(node).await;
            debug!(node = %node.id, outcome = ?outcome, "audit checkpoint witnessed");
            (node.id.clone(), outcome)
        });
        futures::future::join_all(rounds).await
    }

    async fn witness(&self, node: &NodeHandle) -> Witnessed {
        let Some(pinned) = self.federation.current().node_audit_key(&node.id) else {
            return Witnessed::Skipped("federation.toml pins no audit key for it".to_owned());
        };
        let answer = match node
            .client
            .clone()
            .checkpoint(v1::NodeCheckpointRequest {})
            .await
        {
            Ok(answer) => answer.into_inner(),
            Err(status) => return Witnessed::Skipped(format!("no answer: {:?}", status.code())),
        };
        let head = match signed_head(&node.id, answer) {
            Ok(head) => head,
            Err(problem) => return Witnessed::Skipped(problem),
        };
        match self.judge(&node.id, &head, &pinned) {
            Ok(witnessed) => witnessed,
            Err(e) => {
                warn!(error = %e, "witness store failed");
                Witnessed::Skipped("the witness store failed".to_owned())
            }
        }
    }

    fn judge(
        &self,
        node: &str,
        head: &SignedHead,
        pinned: &AuditPublicKey,
    ) -> Result<Witnessed, crate::witness::WitnessError> {
        let highest = self.witness.highest(node)?;
        let verdict = if head.public_key == *pinned && head.is_signed_by(pinned) {
            judge(highest.as_ref(), head.seq, &head.hash)
        } else {
            Verdict::Alarm(AlarmKind::Key)
        };
        match verdict {
            Verdict::New => {
                let witnessed = self.audit.countersign(node, head, chrono::Utc::now());
                self.witness.keep(&witnessed)?;
                Ok(Witnessed::Countersigned(head.seq))
            }
            Verdict::Seen => Ok(Witnessed::Unchanged(head.seq)),
            Verdict::Alarm(kind) => {
                let (witnessed_seq, witnessed_hash) = highest.unwrap_or_default();
                let alarm = Alarm {
                    node: node.to_owned(),
                    kind,
                    seq: head.seq,
                    hash: head.hash.clone(),
                    witnessed_seq,
                    witnessed_hash,
                    at: chrono::Utc::now().to_rfc3339(),
                };
                if self.witness.raise(&alarm)? {
                    // No node id here: `witness alarms` names it.
                    warn!(
                        alarm = %kind,
                        seq = head.seq,
                        witnessed_seq,
                        "a node's audit checkpoint was refused; see `fedq-coordinator witness alarms`"
                    );
                    self.audit_alarm(&alarm);
                }
                Ok(Witnessed::Refused(kind))
            }
        }
    }

    /// Writes the refusal into the coordinator's own audit log; a failure
    /// there is logged (the alarm is kept in the witness store either way).
    fn audit_alarm(&self, alarm: &Alarm) {
        let record = AuditRecord {
            time: chrono::Utc::now(),
            query_id: String::new(),
            requester: String::new(),
            agency: String::new(),
            role: String::new(),
            purpose: String::new(),
            legal_basis: String::new(),
            case_ref: String::new(),
            action: "witness".to_owned(),
            detail: format!(
                "node={} seq={} witnessed_seq={}",
                alarm.node, alarm.seq, alarm.witnessed_seq
            ),
            decision: Decision::Refused,
            reason: alarm.describe(),
        };
        if let Err(e) = self.audit.append(&record) {
            warn!(error = %e, "the witness alarm could not be audited");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer() -> v1::NodeCheckpointResponse {
        v1::NodeCheckpointResponse {
            node_id: "fr".to_owned(),
            seq: 3,
            hash: "ab".repeat(32),
            signature: vec![0; 64],
            public_key: fedq_crypto::audit_key::AuditSigningKey::generate()
                .public_key()
                .to_bytes()
                .to_vec(),
        }
    }

    /// One way to spoil a node's checkpoint answer.
    type Spoil = fn(&mut v1::NodeCheckpointResponse);

    #[test]
    fn malformed_answers_are_not_witnessed() {
        assert!(signed_head("fr", answer()).is_ok());
        let cases: [(&str, Spoil); 5] = [
            ("another node", |a| a.node_id = "de".to_owned()),
            ("a short hash", |a| a.hash.truncate(10)),
            ("an uppercase hash", |a| a.hash = "AB".repeat(32)),
            ("a long signature", |a| a.signature.push(0)),
            ("a short key", |a| a.public_key.truncate(31)),
        ];
        for (what, spoil) in cases {
            let mut bad = answer();
            spoil(&mut bad);
            assert!(signed_head("fr", bad).is_err(), "{what}");
        }
    }
}
