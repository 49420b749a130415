//! The coordinator's domain service: key registration, fan-out to every
//! node and combination. It never holds a secret key and cannot decrypt.
//!
//! Every request is audited through [`CoordinatorService::audited`] before
//! its answer leaves. Files: `lookup.rs` (OPRF and lookups), `stats.rs`
//! (statistics, catalogs, budgets), `witness.rs` (witnessing the nodes'
//! audit checkpoints), this file (errors, admission, audit).

mod deconfliction;
mod lookup;
mod stats;
mod watch;
mod witness;

pub use self::witness::Witnessed;

use fedq_audit::{AuditLog, AuditRecord, Decision};
use fedq_crypto::lookup::{ExpansionKey, FhePublicKey, KeyId};
use fedq_proto::v1;
use tracing::info;

use crate::config::CoordinatorConfig;
use crate::fanout::NodeReply;
use crate::node_client::{connect_nodes, NodeHandle};
use crate::registry::{KeyRegistry, RegistryError};

/// Errors of the coordinator's domain layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CoordinatorError {
    /// The request is malformed.
    #[error("{0}")]
    InvalidArgument(String),
    /// The caller is not a requester of this federation.
    #[error("caller is not a requester of this federation")]
    PermissionDenied,
    /// An envelope the caller carries is not the caller's own, validly signed.
    #[error("the request envelope is not signed by the caller: {0}")]
    NotSigner(&'static str),
    /// The key id was never registered by this requester.
    #[error("public key is not registered; run `fedq keys init`")]
    UnknownKey,
    /// The key's registration is older than the coordinator's maximum age.
    #[error("public key is not registered (registration expired); run `fedq keys init`")]
    ExpiredKey,
    /// The audit log could not record the request: nothing is answered.
    #[error("audit log: {0}")]
    Audit(String),
    /// The key registry failed.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// A per-requester bound is reached.
    #[error("{0}")]
    Exhausted(String),
    /// What the request names does not exist (for this caller).
    #[error("{0}")]
    NotFound(String),
    /// The coordinator's store failed.
    #[error("store: {0}")]
    Store(String),
}

impl From<CoordinatorError> for tonic::Status {
    fn from(error: CoordinatorError) -> Self {
        match error {
            CoordinatorError::InvalidArgument(reason) => tonic::Status::invalid_argument(reason),
            CoordinatorError::PermissionDenied => {
                tonic::Status::permission_denied(error.to_string())
            }
            CoordinatorError::NotSigner(_) => tonic::Status::unauthenticated(error.to_string()),
            CoordinatorError::UnknownKey | CoordinatorError::ExpiredKey => {
                tonic::Status::failed_precondition(error.to_string())
            }
            CoordinatorError::Audit(e) => {
                fedq_transport::internal::internal_status(&format!("audit failure: {e}"))
            }
            CoordinatorError::Registry(e) => fedq_transport::internal::internal_status(&e),
            CoordinatorError::Exhausted(reason) => tonic::Status::resource_exhausted(reason),
            CoordinatorError::NotFound(reason) => tonic::Status::not_found(reason),
            CoordinatorError::Store(e) => fedq_transport::internal::internal_status(&e),
        }
    }
}

/// The coordinator.
pub struct CoordinatorService {
    config: CoordinatorConfig,
    registry: KeyRegistry,
    audit: AuditLog,
    nodes: Vec<NodeHandle>,
    federation: fedq_proto::federation::Watched,
    witness: crate::witness::WitnessStore,
    deconfliction: crate::deconfliction::DeconflictionStore,
    alerts_raised: tokio::sync::watch::Sender<u64>,
    /// Held while missed watch cancellations are being resent.
    resending_cancellations: std::sync::Arc<tokio::sync::Semaphore>,
    watches: crate::watch::WatchRegistry,
}

/// Who asked and why, as the coordinator knows it: the caller from mTLS, the
/// rest as the envelope claims (the nodes verify the signature).
struct AuditFacts {
    requester: String,
    purpose: String,
    case_ref: String,
    action: &'static str,
    envelope: Option<fedq_crypto::envelope::Envelope>,
}

impl AuditFacts {
    fn of(caller: &str, context: Option<&v1::RequestContext>, action: &'static str) -> Self {
        let envelope = context
            .and_then(|c| c.envelope.clone())
            .and_then(|e| fedq_proto::payload::from_wire(Some(e)).peek().ok());
        Self {
            requester: caller.to_owned(),
            purpose: context.map(|c| c.purpose.clone()).unwrap_or_default(),
            case_ref: context
                .map(|c| c.case_reference.clone())
                .unwrap_or_default(),
            action,
            envelope,
        }
    }
}

impl CoordinatorService {
    /// Opens the key registry and prepares node connections.
    pub fn new(config: CoordinatorConfig) -> anyhow::Result<Self> {
        let registry = KeyRegistry::open(&config.key_store)?.with_max_age(config.key_max_age);
        let nodes = connect_nodes(&config.federation.nodes, &config.tls, config.node_timeout)?;
        let audit = AuditLog::open_at(
            &config.key_store,
            &config.audit_checkpoint,
            &config.audit_key,
        )?;
        let federation = fedq_proto::federation::Watched::new(
            &config.federation_path,
            config.federation.clone(),
        );
        // Countersignatures are checked against the pinned key: a coordinator
        // holding another key would countersign what nobody can check.
        if let Some(pinned) = config.federation.coordinator_audit_key() {
            anyhow::ensure!(
                audit.public_key() == pinned,
                "the audit key file is not the key federation.toml pins for the coordinator"
            );
        }
        let witness = crate::witness::WitnessStore::open(&config.key_store)?;
        let deconfliction = crate::deconfliction::DeconflictionStore::open(&config.key_store)?;
        let watches = crate::watch::WatchRegistry::open(&config.key_store)?;
        Ok(Self {
            config,
            registry,
            audit,
            nodes,
            federation,
            witness,
            deconfliction,
            alerts_raised: tokio::sync::watch::channel(0).0,
            resending_cancellations: std::sync::Arc::new(tokio::sync::Semaphore::new(1)),
            watches,
        })
    }

    /// Whether `caller` is a requester of the federation file as it is now
    /// (a removed requester is refused within [`Watched::RECHECK`]).
    ///
    /// [`Watched::RECHECK`]: fedq_proto::federation::Watched::RECHECK
    pub fn is_requester(&self, caller: &str) -> bool {
        self.federation.requester(caller).is_some()
    }

    fn requester(&self, caller: &str) -> Result<(), CoordinatorError> {
        if self.is_requester(caller) {
            Ok(())
        } else {
            Err(CoordinatorError::PermissionDenied)
        }
    }

    /// One identity per request: every envelope the caller carries must be
    /// signed by the caller itself (its key in the federation file as it is
    /// now) and name it as requester. Otherwise alice's connection could
    /// carry bob's envelopes and spend bob's budget.
    fn signed_by_caller<'e>(
        &self,
        caller: &str,
        envelopes: impl IntoIterator<Item = Option<&'e v1::SignedEnvelope>>,
    ) -> Result<(), CoordinatorError> {
        for envelope in envelopes {
            self.caller_envelope(caller, envelope)?;
        }
        Ok(())
    }

    /// The envelope, verified as signed by `caller` (its key in the
    /// federation file as it is now) and naming it as requester.
    fn caller_envelope(
        &self,
        caller: &str,
        envelope: Option<&v1::SignedEnvelope>,
    ) -> Result<fedq_crypto::envelope::Envelope, CoordinatorError> {
        let entry = self
            .federation
            .requester(caller)
            .ok_or(CoordinatorError::PermissionDenied)?;
        let key = fedq_crypto::envelope::VerifyingKey::from_text(&entry.public_key)
            .map_err(|_| CoordinatorError::NotSigner("no signing key is listed for the caller"))?;
        let envelope = envelope.ok_or(CoordinatorError::NotSigner("an envelope is missing"))?;
        let signed = fedq_proto::payload::from_wire(Some(envelope.clone()));
        let verified = signed
            .verify(&key)
            .map_err(|_| CoordinatorError::NotSigner("the signature is not the caller's"))?;
        if verified.requester != caller {
            return Err(CoordinatorError::NotSigner("it names another requester"));
        }
        Ok(verified)
    }

    /// The caller's registered, unexpired public key under `key_id`, as
    /// lookups and watches attach it to what they send each node.
    fn registered_key(
        &self,
        caller: &str,
        key_id: &str,
    ) -> Result<(KeyId, Vec<u8>), CoordinatorError> {
        let key_id = KeyId::parse(key_id)
            .map_err(|_| CoordinatorError::InvalidArgument("malformed key id".to_owned()))?;
        match self.registry.status(caller, &key_id)? {
            crate::registry::KeyStatus::Registered(key) => Ok((key_id, key)),
            crate::registry::KeyStatus::Expired { .. } => Err(CoordinatorError::ExpiredKey),
            crate::registry::KeyStatus::Unknown => Err(CoordinatorError::UnknownKey),
        }
    }

    /// Registers a requester's public key, and its expansion key for
    /// compressed lookups when given one; returns the public key's id.
    pub fn register_key(
        &self,
        caller: &str,
        bytes: &[u8],
        expansion: &[u8],
    ) -> Result<KeyId, CoordinatorError> {
        self.requester(caller)?;
        let key = FhePublicKey::from_bytes(bytes)
            .map_err(|e| CoordinatorError::InvalidArgument(e.to_string()))?;
        let expansion_id = (!expansion.is_empty())
            .then(|| ExpansionKey::id_of(expansion))
            .transpose()
            .map_err(|e| CoordinatorError::InvalidArgument(e.to_string()))?;
        self.registry.register(caller, &key)?;
        if let Some(expansion_id) = &expansion_id {
            self.registry
                .register_expansion(caller, key.id(), (expansion_id, expansion))?;
        }
        info!(key_id = %key.id(), expansion = expansion_id.is_some(), "public key registered");
        Ok(key.id().clone())
    }

    /// The id of the expansion key that the caller registered with `key_id`,
    /// checked to be registered (the bytes are read only when a node asks).
    fn registered_expansion_key(
        &self,
        caller: &str,
        key_id: &KeyId,
        expansion_id: &str,
    ) -> Result<KeyId, CoordinatorError> {
        let expansion_id = KeyId::parse(expansion_id).map_err(|_| {
            CoordinatorError::InvalidArgument("malformed expansion key id".to_owned())
        })?;
        if self
            .registry
            .has_expansion_key(caller, key_id, &expansion_id)?
        {
            Ok(expansion_id)
        } else {
            Err(CoordinatorError::InvalidArgument(
                "no such expansion key registered with this public key: run `fedq keys init`"
                    .to_owned(),
            ))
        }
    }

    /// Runs one request's work and appends its audit entry before the answer
    /// leaves: admitted with how many nodes answered, or refused with why.
    /// An answer whose entry cannot be written is not sent.
    async fn audited<T>(
        &self,
        facts: AuditFacts,
        detail: String,
        work: impl std::future::Future<Output = Result<T, CoordinatorError>>,
        summary: impl FnOnce(&T) -> (String, usize, usize),
    ) -> Result<T, CoordinatorError> {
        let result = work.await;
        let outcome = result.as_ref().map(|answer| {
            let (query_id, ok, total) = summary(answer);
            (query_id, format!("{detail} nodes_ok={ok}/{total}"))
        });
        self.audit(facts, outcome, &detail)?;
        result
    }

    fn audit(
        &self,
        facts: AuditFacts,
        outcome: Result<(String, String), &CoordinatorError>,
        detail: &str,
    ) -> Result<(), CoordinatorError> {
        let (query_id, detail, decision, reason) = match outcome {
            Ok((query_id, detail)) => (
                query_id,
                detail,
                Decision::Admitted,
                "forwarded to the nodes".to_owned(),
            ),
            Err(e) => (
                String::new(),
                detail.to_owned(),
                Decision::Refused,
                e.to_string(),
            ),
        };
        let record = AuditRecord {
            time: chrono::Utc::now(),
            query_id,
            requester: facts.requester,
            agency: facts
                .envelope
                .as_ref()
                .map(|e| e.agency.clone())
                .unwrap_or_default(),
            role: facts
                .envelope
                .as_ref()
                .map(|e| e.role.clone())
                .unwrap_or_default(),
            purpose: facts.purpose,
            legal_basis: facts
                .envelope
                .as_ref()
                .map(|e| e.legal_basis.clone())
                .unwrap_or_default(),
            case_ref: facts.case_ref,
            action: facts.action.to_owned(),
            detail,
            decision,
            reason,
        };
        self.audit
            .append(&record)
            .map(drop)
            .map_err(|e| CoordinatorError::Audit(e.to_string()))
    }
}

/// The context an audit entry reads its claims from: the request's, with
/// the envelope of its first node share (the shares differ only in payload).
fn audit_context(
    context: Option<&v1::RequestContext>,
    envelope: Option<&v1::SignedEnvelope>,
) -> v1::RequestContext {
    v1::RequestContext {
        envelope: envelope.cloned(),
        ..context.cloned().unwrap_or_default()
    }
}

/// Separates the nodes that answered from those that did not, which are
/// listed with their status, never dropped.
fn split_outcomes<T>(outcomes: Vec<NodeReply<T>>) -> (Vec<T>, Vec<v1::NodeStatus>) {
    let mut answered = Vec::with_capacity(outcomes.len());
    let mut unreachable = Vec::new();
    for outcome in outcomes {
        match outcome.result {
            Ok(answer) => answered.push(answer),
            Err(e) => unreachable.push(v1::NodeStatus {
                node: outcome.node,
                outcome: e.outcome.into(),
                reason: e.reason,
                ..Default::default()
            }),
        }
    }
    (answered, unreachable)
}

/// Each node's status after a call whose answer is only "done": ok, or why
/// not.
fn statuses(outcomes: Vec<NodeReply<()>>) -> Vec<v1::NodeStatus> {
    outcomes
        .into_iter()
        .map(|outcome| match outcome.result {
            Ok(()) => v1::NodeStatus {
                node: outcome.node,
                outcome: fedq_proto::outcome::NodeOutcome::Ok.into(),
                ..Default::default()
            },
            Err(e) => v1::NodeStatus {
                node: outcome.node,
                outcome: e.outcome.into(),
                reason: e.reason,
                ..Default::default()
            },
        })
        .collect()
}
