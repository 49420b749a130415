//! The node's domain services: each RPC reads authorise -> admit -> work on
//! the pool -> record.
//!
//! gRPC types stay in [`crate::grpc`]; these modules work on domain queries.
//! [`Admitted`] is the one audited-request helper: once a request passed the
//! gate, every refusal and every answer goes through it into the audit log
//! before anything leaves. CPU-bound work runs on [`crate::pool::WorkPool`],
//! never on the async runtime.
//!
//! - `lookup.rs`: encrypted membership lookups.
//! - `oprf.rs`: blinded OPRF evaluations.
//! - `stats.rs`: differentially private statistics, budgets, the catalog.
//! - `watch.rs`: standing lookups, evaluated as records arrive.

mod expansion_cache;
mod lookup;
mod oprf;
pub mod stats;
mod watch;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use fedq_crypto::envelope::{Envelope, SignedEnvelope};
use fedq_crypto::lookup::{FhePublicKey, KeyId};
use fedq_crypto::IdentifierKind;
use tracing::info;

use crate::config::NodeConfig;
use crate::error::NodeError;
use crate::gate::{Gate, Visit};
use crate::index::LookupIndex;
use crate::pool::WorkPool;
use crate::store::Store;

pub use self::lookup::{LookupAnswer, LookupQuery, QueryItem};
pub use self::oprf::{OprfAnswer, OprfQuery};
pub use self::watch::{WatchQuery, WATCH_PAD};
// `Malformed` is defined below.

/// Who is calling, from the mTLS certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller(pub String);

/// Public facts about the node.
#[derive(Debug, Clone)]
pub struct NodeInfo {
    /// Node id.
    pub node_id: String,
    /// Jurisdiction.
    pub jurisdiction: String,
    /// Bucket bits.
    pub bucket_bits: u8,
    /// Tag bits.
    pub tag_bits: u8,
    /// Padded bucket size.
    pub padded_candidates: usize,
}

/// A request the gRPC adapter could not turn into a domain query (an unknown
/// identifier kind, a malformed key id or budget, an oversized statistics
/// query): refused with `InvalidArgument` once its envelope is verified, and
/// audited like every other refusal.
pub struct Malformed {
    /// Id chosen by the coordinator (already bounded).
    pub query_id: String,
    /// The requester's signed envelope, still unverified.
    pub envelope: SignedEnvelope,
    /// The action the envelope must name; only its name is used.
    pub action: crate::policy::Action<'static>,
    /// Hash of the request as received, which the envelope must carry.
    pub payload_hash: String,
    /// Non-identifying summary for the audit log.
    pub detail: String,
    /// What could not be read.
    pub problem: String,
}

/// The node's services over its store, index, pool, ledger and gate.
pub struct NodeService {
    config: NodeConfig,
    store: Mutex<Store>,
    index: RwLock<Arc<LookupIndex>>,
    keys: Mutex<HashMap<KeyId, FhePublicKey>>,
    /// Requesters' prepared expansion keys (`lookup.expansion_keys` at most).
    expansion_keys: Mutex<expansion_cache::ExpansionCache>,
    pool: WorkPool,
    ledger: crate::ledger::Ledger,
    stats: crate::stats::StatsEngine,
    gate: Gate,
    /// The node's share of the deconfliction key, if it holds one.
    deconfliction: Option<Arc<fedq_crypto::toprf::KeyShare>>,
    /// Standing lookups and their waiting results.
    watches: crate::watch::WatchStore,
    /// The index generation every watch was last evaluated at.
    watch_generation: Mutex<Option<i64>>,
    /// Per watch, the generation it was last evaluated at (some wait for
    /// the coordinator to collect their previous result).
    watch_evaluated: Mutex<HashMap<String, i64>>,
}

/// A request the gate admitted: refusals and answers from here on are
/// audited against its verified envelope before anything leaves.
pub(crate) struct Admitted<'a> {
    gate: &'a Gate,
    visit: Visit<'a>,
    envelope: Envelope,
}

impl Admitted<'_> {
    /// The verified envelope.
    pub(crate) fn envelope(&self) -> &Envelope {
        &self.envelope
    }

    /// Passes `result` through, auditing an error as an invalid request.
    pub(crate) fn check<T>(&self, result: Result<T, NodeError>) -> Result<T, NodeError> {
        result.map_err(|e| self.gate.refuse_invalid(&self.visit, &self.envelope, e))
    }

    /// The requester the coordinator names must be the envelope's signer
    /// (one identity per request).
    pub(crate) fn told(&self, requester: &str) -> Result<(), NodeError> {
        if requester == self.envelope.requester {
            Ok(())
        } else {
            Err(NodeError::Unverified(
                "the requester named does not match the envelope's signer".to_owned(),
            ))
        }
    }

    /// Audits a refusal that is not about the request's form (a budget).
    pub(crate) fn refuse(&self, reason: &str) -> Result<(), NodeError> {
        self.gate
            .refuse_admitted(&self.visit, &self.envelope, reason)
    }

    /// Audits the answer; it may leave once this returns.
    pub(crate) fn record(&self, action: &str, reason: &str) -> Result<(), NodeError> {
        self.gate
            .record_answer(&self.visit, &self.envelope, action, reason)
    }

    /// The audit record of this admission, for the ledger's atomic append.
    pub(crate) fn record_for_ledger(&self) -> fedq_audit::AuditRecord {
        self.gate.admitted_record(&self.visit, &self.envelope)
    }
}

impl NodeService {
    /// Opens the store, builds the index and starts the work pool.
    pub fn new(config: NodeConfig) -> Result<Self, NodeError> {
        let store = Store::open_for(&config)?;
        let index = LookupIndex::load(
            &store,
            config.fingerprint_params(),
            config.federation.padded_candidates,
        )?;
        info!(
            records = index.records(),
            padded = index.padded_candidates(),
            "lookup index loaded"
        );
        let pool =
            WorkPool::new(config.threads, "fedq-work").map_err(|_| NodeError::ShuttingDown)?;
        let ledger = crate::ledger::Ledger::open(&config.store)?;
        let stats =
            crate::stats::StatsEngine::new(config.stats_dir.clone(), config.catalog.clone());
        let gate = Gate::new(
            crate::envelope::EnvelopeVerifier::open(
                &config.store,
                &config.node_id,
                crate::federation::Watched::new(
                    &config.federation_path,
                    config.federation_file.clone(),
                ),
            )
            .map_err(|e| NodeError::Audit(format!("nonce store: {e}")))?,
            std::sync::Arc::clone(&config.policy),
            config
                .open_audit()
                .map_err(|e| NodeError::Audit(e.to_string()))?,
            config.limits.refusal_audits_per_minute,
        );
        // A node whose key is not the one the federation pins would sign a
        // log nobody can check against the pin: it does not start.
        if let Some(pinned) = config.federation_file.node_audit_key(&config.node_id) {
            if gate.audit().public_key() != pinned {
                return Err(NodeError::Audit(
                    "the audit key file is not the key federation.toml pins for this node"
                        .to_owned(),
                ));
            }
        }
        // Rate limits hold across a restart: the last hour's requests are
        // in the audit log, which every admitted request reached.
        let now = chrono::Utc::now();
        let recent = gate
            .audit()
            .entries_between(now - chrono::TimeDelta::hours(1), now)
            .map_err(|e| NodeError::Audit(e.to_string()))?;
        gate.policy()
            .restore_counters(recent.iter().map(|e| &e.record));
        let deconfliction = config
            .load_deconfliction_share()
            .map_err(NodeError::NotConfigured)?
            .map(Arc::new);
        let watches = crate::watch::WatchStore::open(&config.store)
            .map_err(|e| NodeError::Audit(format!("watch store: {e}")))?;
        let expansion_cache = expansion_cache::ExpansionCache::new(config.expansion_keys);
        Ok(Self {
            ledger,
            stats,
            gate,
            deconfliction,
            watches,
            watch_generation: Mutex::new(None),
            watch_evaluated: Mutex::new(HashMap::new()),
            config,
            store: Mutex::new(store),
            index: RwLock::new(Arc::new(index)),
            keys: Mutex::new(HashMap::new()),
            expansion_keys: Mutex::new(expansion_cache),
            pool,
        })
    }

    /// This node's id (its certificate's common name).
    pub fn node_id(&self) -> &str {
        &self.config.node_id
    }

    /// Public facts about the node.
    pub fn info(&self) -> NodeInfo {
        let params = self.config.fingerprint_params();
        NodeInfo {
            node_id: self.config.node_id.clone(),
            jurisdiction: self.config.jurisdiction.clone(),
            bucket_bits: params.bucket_bits(),
            tag_bits: params.tag_bits(),
            padded_candidates: self.current_index().padded_candidates(),
        }
    }

    fn current_index(&self) -> Arc<LookupIndex> {
        Arc::clone(&self.index.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Rebuilds the index if an import or purge changed the store since it was
    /// built, or once one of its records has expired.
    fn refresh_index(&self) -> Result<Arc<LookupIndex>, NodeError> {
        let store = self.store.lock().unwrap_or_else(|e| e.into_inner());
        // Read under the store lock: a caller that waited for another's reload sees it.
        let current = self.current_index();
        let now = chrono::Utc::now();
        if current.is_current(store.generation()?, now) {
            return Ok(current);
        }
        let fresh = Arc::new(LookupIndex::load_at(
            &store,
            self.config.fingerprint_params(),
            self.config.federation.padded_candidates,
            now,
        )?);
        info!(
            records = fresh.records(),
            padded = fresh.padded_candidates(),
            "lookup index reloaded"
        );
        *self.index.write().unwrap_or_else(|e| e.into_inner()) = Arc::clone(&fresh);
        Ok(fresh)
    }

    /// The transport admits only `allowed_callers` before decoding; this
    /// checks again where the caller's name is used, so that the service is
    /// safe on its own (tests call it directly).
    fn authorise(&self, caller: &Caller) -> Result<(), NodeError> {
        if self
            .config
            .allowed_callers
            .iter()
            .any(|allowed| allowed == &caller.0)
        {
            Ok(())
        } else {
            info!(
                decision = "deny",
                rule = "allowed_callers",
                "request denied"
            );
            Err(NodeError::PermissionDenied(
                "caller is not allowed to query this node".to_owned(),
            ))
        }
    }

    /// Refuses a malformed request (see [`Malformed`]), auditing it.
    pub fn refuse_malformed(&self, caller: &Caller, request: Malformed) -> NodeError {
        if let Err(denied) = self.authorise(caller) {
            return denied;
        }
        let visit = Visit {
            query_id: &request.query_id,
            envelope: &request.envelope,
            action: request.action,
            payload_hash: &request.payload_hash,
            detail: request.detail,
        };
        self.gate.refuse_malformed(&visit, request.problem)
    }

    /// Authorises the caller and admits the request at the gate (envelope,
    /// policy, metering); a refusal is audited there.
    fn admit<'a>(&'a self, caller: &Caller, visit: Visit<'a>) -> Result<Admitted<'a>, NodeError> {
        self.authorise(caller)?;
        let envelope = self.gate.admit(&visit)?;
        Ok(Admitted {
            gate: &self.gate,
            visit,
            envelope,
        })
    }

    /// The audit log's head as this node last signed it, for the
    /// coordinator to witness (only `allowed_callers` may ask).
    pub fn signed_head(
        &self,
        caller: &Caller,
    ) -> Result<fedq_audit::witness::SignedHead, NodeError> {
        self.authorise(caller)?;
        self.gate
            .audit()
            .signed_head()
            .map_err(|e| NodeError::Audit(e.to_string()))
    }

    /// Every record of this node's audit log, oldest first, read through the
    /// node's own connection: for operators' tools and tests.
    pub fn audit_records(&self) -> Result<Vec<fedq_audit::AuditRecord>, NodeError> {
        Ok(self
            .gate
            .audit()
            .entries_between(
                chrono::DateTime::<chrono::Utc>::MIN_UTC,
                chrono::DateTime::<chrono::Utc>::MAX_UTC,
            )
            .map_err(|e| NodeError::Audit(e.to_string()))?
            .into_iter()
            .map(|e| e.record)
            .collect())
    }

    /// The `node.toml` this node was started from.
    pub fn config_path(&self) -> &std::path::Path {
        &self.config.path
    }

    /// Reads `node.toml` again and puts its `[policy]` in force (rate-limit
    /// counters carried over). A file that no longer validates changes
    /// nothing: the error, with every problem's key path, is returned for
    /// the operator's log, and the policy in force stays.
    pub fn reload_policy(&self) -> Result<(), crate::config::ConfigError> {
        let fresh = crate::config::NodeConfig::load(&self.config.path)?;
        self.gate.replace_policy(fresh.policy);
        info!("policy reloaded");
        Ok(())
    }

    /// Whether this node's store holds the identifier: the node's own view,
    /// used by operators and by tests that check answers per node.
    pub fn holds(
        &self,
        kind: IdentifierKind,
        normal: &fedq_crypto::NormalForm,
    ) -> Result<bool, NodeError> {
        Ok(self
            .store
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(kind, normal)?)
    }

    /// Id of the node's active OPRF key (lookups must name it).
    pub fn oprf_key_id(&self) -> Result<fedq_crypto::oprf::OprfKeyId, NodeError> {
        Ok(self.refresh_index()?.oprf_key().key_id())
    }

    /// The node's own fingerprint of an identifier under its active OPRF key
    /// (what a requester obtains through the blinded round trip): for
    /// operators' checks and tests.
    pub fn fingerprint(
        &self,
        kind: IdentifierKind,
        normal: &fedq_crypto::NormalForm,
    ) -> Result<fedq_crypto::Fingerprint, NodeError> {
        let index = self.refresh_index()?;
        Ok(fedq_crypto::oprf::node_fingerprint(
            index.oprf_key(),
            kind,
            normal,
        ))
    }
}
