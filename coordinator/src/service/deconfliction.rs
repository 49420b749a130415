//! Deconfliction registrations and the alerts they raise: checked, stored,
//! audited; followers are woken when an alert is raised.

use fedq_audit::{AuditRecord, Decision};
use fedq_proto::v1;
use tracing::{info, instrument};

use crate::deconfliction::{AlertRecord, DeconflictionError, NewRegistration, Registration};

use super::{AuditFacts, CoordinatorError, CoordinatorService};

/// How far a registration's envelope time may be from the coordinator's
/// clock, as at the nodes.
const MAX_CLOCK_SKEW_SECONDS: i64 = 300;

impl From<DeconflictionError> for CoordinatorError {
    fn from(error: DeconflictionError) -> Self {
        match error {
            DeconflictionError::Invalid(reason) => CoordinatorError::InvalidArgument(reason),
            DeconflictionError::TooMany(_) => CoordinatorError::Exhausted(error.to_string()),
            DeconflictionError::NotFound(_) => CoordinatorError::NotFound(error.to_string()),
            DeconflictionError::Db(e) => CoordinatorError::Store(e.to_string()),
        }
    }
}

impl CoordinatorService {
    /// Registers a target for the caller's agency; raises an alert for both
    /// sides of every live registration of another agency on the same
    /// pseudonym. Audited, and each alert audited for its recipient.
    #[instrument(skip_all)]
    pub fn deconflict_register(
        &self,
        caller: &str,
        request: v1::DeconflictRegisterRequest,
    ) -> Result<Registration, CoordinatorError> {
        let facts = AuditFacts::of(caller, request.context.as_ref(), "deconflict-register");
        let result = self.register_checked(caller, &request);
        let outcome = result.as_ref().map(|(registration, _)| {
            (
                registration.id.clone(),
                format!(
                    "registration={} until={} matches={}",
                    registration.id, registration.until, registration.matches
                ),
            )
        });
        self.audit(facts, outcome, "registration")?;
        let (registration, alerts) = result?;
        for alert in &alerts {
            self.audit_alert(alert)?;
        }
        if let Some(last) = alerts.last() {
            self.alerts_raised.send_replace(last.id);
        }
        info!(matches = registration.matches, "deconfliction registered");
        Ok(registration)
    }

    fn register_checked(
        &self,
        caller: &str,
        request: &v1::DeconflictRegisterRequest,
    ) -> Result<(Registration, Vec<AlertRecord>), CoordinatorError> {
        let entry = self
            .federation
            .requester(caller)
            .ok_or(CoordinatorError::PermissionDenied)?;
        let envelope = self.caller_envelope(
            caller,
            request.context.as_ref().and_then(|c| c.envelope.as_ref()),
        )?;
        let now = chrono::Utc::now().timestamp();
        if envelope.action != "deconflict-register"
            || envelope.payload_hash
                != fedq_proto::payload::deconflict_register_payload_hash(request)
        {
            return Err(CoordinatorError::NotSigner(
                "it was signed for another request",
            ));
        }
        if envelope.agency != entry.agency || envelope.role != entry.role.as_str() {
            return Err(CoordinatorError::NotSigner(
                "its agency or role is not the federation file's",
            ));
        }
        // Auditors read logs; they work no targets. Which other roles may
        // take part is each node's policy (its partial evaluations).
        if entry.role == fedq_proto::Role::Auditor {
            return Err(CoordinatorError::PermissionDenied);
        }
        if !fedq_crypto::envelope::within_skew(envelope.issued_at, now, MAX_CLOCK_SKEW_SECONDS) {
            return Err(CoordinatorError::InvalidArgument(format!(
                "stale request time (more than {MAX_CLOCK_SKEW_SECONDS} s from the coordinator's clock)"
            )));
        }
        let pseudonym: [u8; 32] =
            request.pseudonym.as_slice().try_into().map_err(|_| {
                CoordinatorError::InvalidArgument("a pseudonym is 32 bytes".to_owned())
            })?;
        let sealed = request.sealed_contact.len();
        if sealed == 0 || sealed > fedq_proto::limits::MAX_SEALED_CONTACT_BYTES {
            return Err(CoordinatorError::InvalidArgument(format!(
                "a sealed contact has 1 to {} bytes",
                fedq_proto::limits::MAX_SEALED_CONTACT_BYTES
            )));
        }
        if request.wrapped_key.len() != fedq_proto::limits::WRAPPED_KEY_BYTES {
            return Err(CoordinatorError::InvalidArgument(format!(
                "a wrapped key has {} bytes",
                fedq_proto::limits::WRAPPED_KEY_BYTES
            )));
        }
        let limits = &self.config.deconfliction;
        if request.until <= now {
            return Err(CoordinatorError::InvalidArgument(
                "the registration would end before it starts (--until is in the past)".to_owned(),
            ));
        }
        if request.until.saturating_sub(now) > limits.max_lifetime_seconds {
            return Err(CoordinatorError::InvalidArgument(format!(
                "a registration lasts at most {} days here (--until is later)",
                limits.max_lifetime_seconds / 86_400
            )));
        }
        let new = NewRegistration {
            requester: caller.to_owned(),
            agency: entry.agency,
            pseudonym,
            sealed_contact: request.sealed_contact.clone(),
            wrapped_key: request.wrapped_key.clone(),
            until: request.until,
            nonce: envelope.nonce,
            nonce_expires_at: fedq_crypto::envelope::expires_at(
                envelope.issued_at,
                MAX_CLOCK_SKEW_SECONDS,
            ),
        };
        Ok(self.deconfliction.register(&new, now, limits)?)
    }

    fn audit_alert(&self, alert: &AlertRecord) -> Result<(), CoordinatorError> {
        let agency = self
            .federation
            .requester(&alert.requester)
            .map(|r| r.agency)
            .unwrap_or_default();
        let record = AuditRecord {
            time: chrono::Utc::now(),
            query_id: format!("alert-{}", alert.id),
            requester: alert.requester.clone(),
            agency,
            role: String::new(),
            purpose: String::new(),
            legal_basis: String::new(),
            case_ref: String::new(),
            action: "deconflict-notify".to_owned(),
            detail: format!(
                "registration={} other_registration={} other_agency={}",
                alert.registration, alert.other_registration, alert.other_agency
            ),
            decision: Decision::Admitted,
            reason: "registrations coincide".to_owned(),
        };
        self.audit
            .append(&record)
            .map(drop)
            .map_err(|e| CoordinatorError::Audit(e.to_string()))
    }

    /// The caller's live registrations.
    pub fn deconflict_list(&self, caller: &str) -> Result<Vec<Registration>, CoordinatorError> {
        self.requester(caller)?;
        Ok(self
            .deconfliction
            .list(caller, chrono::Utc::now().timestamp())?)
    }

    /// Cancels one of the caller's registrations (and its alerts). Audited.
    pub fn deconflict_cancel(&self, caller: &str, id: &str) -> Result<(), CoordinatorError> {
        let facts = AuditFacts::of(caller, None, "deconflict-cancel");
        let result = self.requester(caller).and_then(|()| {
            Ok(self
                .deconfliction
                .cancel(caller, id, chrono::Utc::now().timestamp())?)
        });
        let detail = format!("registration={}", id.chars().take(64).collect::<String>());
        self.audit(
            facts,
            result.as_ref().map(|()| (String::new(), detail.clone())),
            &detail,
        )?;
        result
    }

    /// The caller's live alerts after `after`, of every kind, in id order
    /// (one page: at most [`crate::deconfliction::MAX_ALERTS_PER_CALL`]).
    pub fn alerts(&self, caller: &str, after: u64) -> Result<Vec<v1::Alert>, CoordinatorError> {
        self.requester(caller)?;
        let now = chrono::Utc::now().timestamp();
        let limit = crate::deconfliction::MAX_ALERTS_PER_CALL;
        let deconfliction = self
            .deconfliction
            .alerts(caller, after, now)?
            .into_iter()
            .map(|alert| v1::Alert {
                id: alert.id,
                raised_at: alert.raised_at,
                kind: Some(v1::alert::Kind::Deconfliction(v1::DeconflictionAlert {
                    registration: alert.registration,
                    wrapped_key: alert.wrapped_key,
                    other_agency: alert.other_agency,
                    other_registration: alert.other_registration,
                    other_sealed_contact: alert.other_sealed_contact,
                    other_until: alert.other_until,
                })),
            });
        let watches = self
            .watches
            .alerts(caller, after, now, limit)
            .map_err(|e| CoordinatorError::Store(e.to_string()))?
            .into_iter()
            .map(|alert| v1::Alert {
                id: alert.id,
                raised_at: alert.raised_at,
                kind: Some(v1::alert::Kind::Watch(v1::WatchAlert {
                    watch_id: alert.watch_id,
                    answer: alert.answer,
                    nodes: alert.nodes,
                })),
            });
        // Both pages are in id order and at most `limit` long: their first
        // `limit` merged are the page.
        let mut alerts: Vec<v1::Alert> = deconfliction.chain(watches).collect();
        alerts.sort_by_key(|a| a.id);
        alerts.truncate(limit);
        Ok(alerts)
    }

    /// Deletes expired registrations, watches and their alerts, and the
    /// registrations of requesters no longer listed, every `interval` (and
    /// at once): between requests nothing else would.
    pub async fn purge_deconfliction_every(
        self: std::sync::Arc<Self>,
        interval: std::time::Duration,
    ) {
        let mut ticks = tokio::time::interval(interval);
        loop {
            ticks.tick().await;
            let now = chrono::Utc::now().timestamp();
            let service = std::sync::Arc::clone(&self);
            let purged = tokio::task::spawn_blocking(move || {
                service
                    .deconfliction
                    .purge(now, |requester| service.is_requester(requester))?;
                // Ended watches go with their alerts too.
                service
                    .watches
                    .purge(now, |requester| service.is_requester(requester))
                    .map_err(crate::deconfliction::DeconflictionError::from)
            })
            .await;
            if !matches!(purged, Ok(Ok(()))) {
                tracing::warn!("deconfliction or watch purge failed; retried at the next tick");
            }
        }
    }

    /// Changes whenever an alert is raised (to the last alert's id): what a
    /// follower waits on before it looks again.
    pub fn alerts_raised(&self) -> tokio::sync::watch::Receiver<u64> {
        self.alerts_raised.subscribe()
    }
}
