//! The node's door: every lookup and statistics request passes here before
//! any work. It verifies the signed envelope, applies the node's policy, and
//! writes the audit entry of a refusal; admitted requests are audited by the
//! service once their answer is ready and before it leaves.

use chrono::Utc;
use fedq_crypto::envelope::{Envelope, SignedEnvelope};
use tracing::info;

use crate::audit::{AuditLog, AuditRecord, Decision};
use crate::envelope::{EnvelopeRefusal, EnvelopeVerifier};
use crate::error::NodeError;
use crate::policy::{Action, Policy, PolicyRequest, Role};
use crate::throttle::{RefusalThrottle, Suppressed, Verdict};

/// Whether a node reveals its own answers to a disclosure request: revealed
/// when the node's policy lets this requester learn its own hit bit, else
/// withheld (only the combined answer is released).
pub use fedq_proto::outcome::Disclosure;

/// How the audit reason of a refusal whose envelope did not verify begins:
/// its requester, agency and purpose are only what the sender claimed (the
/// transparency report counts them apart, under "(unverified)").
pub const UNVERIFIED_REASON: &str = "envelope: ";

/// One request at the door.
pub struct Visit<'a> {
    /// The coordinator's query id.
    pub query_id: &'a str,
    /// The unverified envelope.
    pub envelope: &'a SignedEnvelope,
    /// The action name the envelope must carry.
    pub action: Action<'a>,
    /// The hash of the query as received.
    pub payload_hash: &'a str,
    /// Non-identifying summary for the audit log.
    pub detail: String,
}

/// Envelope verification, policy and audit, shared by the services.
pub struct Gate {
    verifier: EnvelopeVerifier,
    /// Replaced whole when the operator reloads it; a request reads one.
    policy: std::sync::RwLock<std::sync::Arc<Policy>>,
    audit: AuditLog,
    refusals: RefusalThrottle,
}

impl Gate {
    /// A gate over the node's verifier, policy and audit log, auditing at
    /// most `refusals_per_minute` refusals one by one per requester.
    pub fn new(
        verifier: EnvelopeVerifier,
        policy: std::sync::Arc<Policy>,
        audit: AuditLog,
        refusals_per_minute: u32,
    ) -> Self {
        Self {
            verifier,
            policy: std::sync::RwLock::new(policy),
            audit,
            refusals: RefusalThrottle::new(refusals_per_minute),
        }
    }

    /// The agency the federation file lists for `requester`, if it is one.
    pub fn agency_of(&self, requester: &str) -> Option<String> {
        self.verifier.agency_of(requester)
    }

    /// The policy in force.
    pub fn policy(&self) -> std::sync::Arc<Policy> {
        self.policy
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Puts `policy` in force for every request admitted from now on; it
    /// takes over the rate-limit counters of the one it replaces.
    pub fn replace_policy(&self, policy: std::sync::Arc<Policy>) {
        let mut current = self
            .policy
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        policy.carry_counters_from(&current);
        *current = policy;
    }

    /// The audit log (the ledger appends to it inside its charge).
    pub fn audit(&self) -> &AuditLog {
        &self.audit
    }

    /// Verifies `visit`'s envelope (consuming its nonce), or audits the
    /// refusal under the claimed fields and returns it.
    fn verify(&self, visit: &Visit<'_>, now: chrono::DateTime<Utc>) -> Result<Envelope, NodeError> {
        match self.verifier.verify(
            visit.envelope,
            visit.action.name(),
            visit.payload_hash,
            now.timestamp(),
        ) {
            Ok(envelope) => Ok(envelope),
            Err(refusal) => {
                // The claimed fields are audited as claimed: they are unverified.
                let claimed = EnvelopeVerifier::claimed(visit.envelope);
                self.refuse(
                    visit,
                    Signer::Claimed(claimed.as_ref()),
                    &format!("{UNVERIFIED_REASON}{refusal}"),
                )?;
                Err(envelope_error(refusal))
            }
        }
    }

    /// Refuses a request whose fields could not be read (`problem`), after
    /// verifying its envelope so that the refusal is audited under its
    /// signer (and its nonce is spent). The policy is not asked: it cannot
    /// judge a request it cannot read. Only `visit.action`'s name is used.
    pub fn refuse_malformed(&self, visit: &Visit<'_>, problem: String) -> NodeError {
        match self.verify(visit, Utc::now()) {
            Ok(envelope) => {
                self.refuse_invalid(visit, &envelope, NodeError::InvalidArgument(problem))
            }
            Err(error) => error,
        }
    }

    /// Verifies and admits `visit`, or audits the refusal and returns it.
    pub fn admit(&self, visit: &Visit<'_>) -> Result<Envelope, NodeError> {
        let now = Utc::now();
        let envelope = self.verify(visit, now)?;
        let role: Role = match envelope.role.parse() {
            Ok(role) => role,
            Err(_) => {
                self.refuse(visit, Signer::Verified(&envelope), "envelope: unknown role")?;
                return Err(NodeError::PermissionDenied("unknown role".to_owned()));
            }
        };
        let request = PolicyRequest {
            requester: &envelope.requester,
            agency: &envelope.agency,
            role,
            purpose: &envelope.purpose,
            action: visit.action,
        };
        if let Err(refusal) = self.policy().admit(&request, now) {
            self.refuse(visit, Signer::Verified(&envelope), &refusal.to_string())?;
            return Err(if refusal.exhausted {
                NodeError::ResourceExhausted(refusal.to_string())
            } else {
                NodeError::PermissionDenied(refusal.to_string())
            });
        }
        Ok(envelope)
    }

    /// Whether this node reveals its own answers to `envelope`'s requester;
    /// an empty authorization reference never does.
    pub fn disclosure(&self, envelope: &Envelope, authorization: &str) -> Disclosure {
        let allowed = !authorization.trim().is_empty()
            && envelope.role.parse().is_ok_and(|role| {
                self.policy()
                    .may_disclose(&envelope.agency, role, &envelope.purpose)
            });
        if allowed {
            Disclosure::Revealed
        } else {
            Disclosure::Withheld
        }
    }

    /// Audits a refusal that happened after admission (an invalid query, an
    /// exhausted budget), with the verified envelope.
    pub fn refuse_admitted(
        &self,
        visit: &Visit<'_>,
        envelope: &Envelope,
        reason: &str,
    ) -> Result<(), NodeError> {
        self.refuse(visit, Signer::Verified(envelope), reason)
    }

    /// Audits an admitted request that turned out malformed ("invalid
    /// request: …") and hands its error back; if the audit itself fails, that
    /// failure is returned instead (nothing leaves unaudited).
    pub fn refuse_invalid(
        &self,
        visit: &Visit<'_>,
        envelope: &Envelope,
        error: NodeError,
    ) -> NodeError {
        match self.refuse_admitted(visit, envelope, &format!("invalid request: {error}")) {
            Ok(()) => error,
            Err(audit) => audit,
        }
    }

    /// Audits an admitted request; the answer may leave once this returns.
    pub fn record_answer(
        &self,
        visit: &Visit<'_>,
        envelope: &Envelope,
        action: &str,
        reason: &str,
    ) -> Result<(), NodeError> {
        let mut record = record(visit, Some(envelope), Decision::Admitted, reason);
        record.action = action.to_owned();
        self.audit
            .append(&record)
            .map_err(|e| NodeError::Audit(e.to_string()))?;
        Ok(())
    }

    /// Audits something the node did that no envelope asked for at that
    /// moment (a watch evaluation round, a cancellation the coordinator
    /// passed on): `requester` is whom it concerns, if anyone.
    pub fn record_event(
        &self,
        requester: &str,
        action: &str,
        detail: &str,
    ) -> Result<(), NodeError> {
        let record = AuditRecord {
            time: Utc::now(),
            query_id: String::new(),
            requester: requester.to_owned(),
            agency: self.agency_of(requester).unwrap_or_default(),
            role: String::new(),
            purpose: String::new(),
            legal_basis: String::new(),
            case_ref: String::new(),
            action: action.to_owned(),
            detail: detail.to_owned(),
            decision: Decision::Admitted,
            reason: "done by the node".to_owned(),
        };
        self.audit
            .append(&record)
            .map(drop)
            .map_err(|e| NodeError::Audit(e.to_string()))
    }

    /// The record of an admitted request, for the ledger to append atomically.
    pub fn admitted_record(&self, visit: &Visit<'_>, envelope: &Envelope) -> AuditRecord {
        record(visit, Some(envelope), Decision::Admitted, "policy admits")
    }

    /// Audits a refusal of `visit`. `signer` is the envelope whose signature
    /// verified, or else the fields it only claims (audited as claimed, and
    /// rate-limited together with every other unverified refusal).
    fn refuse(&self, visit: &Visit<'_>, signer: Signer<'_>, reason: &str) -> Result<(), NodeError> {
        info!(
            decision = "refuse",
            action = visit.action.name(),
            "request refused"
        );
        let (envelope, key) = match signer {
            Signer::Verified(envelope) => (Some(envelope), envelope.requester.as_str()),
            Signer::Claimed(claimed) => (claimed, crate::throttle::UNVERIFIED),
        };
        let audit = |record: &AuditRecord| {
            self.audit
                .append(record)
                .map(|_| ())
                .map_err(|e| NodeError::Audit(e.to_string()))
        };
        match self.refusals.check(key, Utc::now()) {
            Verdict::Count => {
                info!(
                    action = visit.action.name(),
                    "refusal counted, not audited one by one: over limits.refusal_audits_per_minute"
                );
                Ok(())
            }
            Verdict::Audit(suppressed) => {
                if let Some(Suppressed { count, since }) = suppressed {
                    let summary = record(
                        visit,
                        matches!(signer, Signer::Verified(_))
                            .then_some(envelope)
                            .flatten(),
                        Decision::Refused,
                        &format!(
                            "{count} more refusals of {key} since {} were counted, not audited \
                             one by one (limits.refusal_audits_per_minute)",
                            since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                        ),
                    );
                    audit(&summary)?;
                }
                audit(&record(visit, envelope, Decision::Refused, reason))
            }
        }
    }
}

/// Whose refusal is audited.
#[derive(Clone, Copy)]
enum Signer<'a> {
    /// The envelope's signature verified.
    Verified(&'a Envelope),
    /// It did not (or there was none): the fields it claims, if readable.
    Claimed(Option<&'a Envelope>),
}

fn record(
    visit: &Visit<'_>,
    envelope: Option<&Envelope>,
    decision: Decision,
    reason: &str,
) -> AuditRecord {
    let field = |f: fn(&Envelope) -> &String| envelope.map(f).cloned().unwrap_or_default();
    AuditRecord {
        time: Utc::now(),
        query_id: visit.query_id.to_owned(),
        requester: field(|e| &e.requester),
        agency: field(|e| &e.agency),
        role: field(|e| &e.role),
        purpose: field(|e| &e.purpose),
        legal_basis: field(|e| &e.legal_basis),
        case_ref: field(|e| &e.case_ref),
        action: visit.action.name().to_owned(),
        detail: visit.detail.clone(),
        decision,
        reason: reason.to_owned(),
    }
}

fn envelope_error(refusal: EnvelopeRefusal) -> NodeError {
    match refusal {
        EnvelopeRefusal::Malformed(reason) => NodeError::InvalidArgument(reason),
        EnvelopeRefusal::Replay | EnvelopeRefusal::NotAddressed | EnvelopeRefusal::Partial(_) => {
            NodeError::PermissionDenied(refusal.to_string())
        }
        EnvelopeRefusal::Store => NodeError::Audit("nonce store failed".to_owned()),
        other => NodeError::Unverified(other.to_string()),
    }
}
