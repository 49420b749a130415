//! The node's lookup service (domain layer): authorise, evaluate, answer.
//!
//! gRPC types stay in [`crate::grpc`]; this module works on [`LookupQuery`].
//! Evaluation is CPU-bound and runs on a dedicated rayon pool, never on the
//! async runtime; the async side only awaits its result.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use fedq_crypto::lookup::{
    evaluate, EncryptedCount, EncryptedTag, FhePublicKey, KeyId, PreparedTag,
};
use fedq_crypto::{Bucket, IdentifierKind};
use rayon::prelude::*;
use tracing::{info, instrument};

use crate::config::NodeConfig;
use crate::error::NodeError;
use crate::index::LookupIndex;
use crate::store::Store;

/// Public keys kept in memory; the coordinator sends the key with every request,
/// so the cache only saves decoding.
const KEY_CACHE_ENTRIES: usize = 1024;

/// Who is calling, from the mTLS certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller(pub String);

/// One lookup item as the node sees it.
#[derive(Debug)]
pub struct QueryItem {
    /// Identifier kind.
    pub kind: IdentifierKind,
    /// Bucket in clear.
    pub bucket: Bucket,
    /// Encoded seeded GGSW list, still untrusted.
    pub encrypted_tag: Vec<u8>,
}

/// A lookup request in domain terms.
#[derive(Debug)]
pub struct LookupQuery {
    /// Id chosen by the coordinator, for logs and audit.
    pub query_id: String,
    /// Requester as authenticated by the coordinator.
    pub requester: String,
    /// Key the answers are re-randomised under.
    pub key_id: KeyId,
    /// Encoded public key, still untrusted.
    pub public_key: Vec<u8>,
    /// The requester's signed envelope, still unverified.
    pub envelope: fedq_crypto::envelope::SignedEnvelope,
    /// Hash of the query as received, which the envelope must carry.
    pub payload_hash: String,
    /// The OPRF key id the requester derived the tags under.
    pub oprf_key_id: String,
    /// Whether the requester asks for this node's own answer (staged disclosure).
    pub disclose: bool,
    /// The authorization reference given for disclosure.
    pub authorization: String,
    /// Items, answered in order.
    pub items: Vec<QueryItem>,
}

/// A batch of blinded identifiers for the node's OPRF, in domain terms.
#[derive(Debug)]
pub struct OprfQuery {
    /// Id chosen by the coordinator, for logs and audit.
    pub query_id: String,
    /// The requester's signed envelope, still unverified.
    pub envelope: fedq_crypto::envelope::SignedEnvelope,
    /// Hash of the request as received, which the envelope must carry.
    pub payload_hash: String,
    /// The declared kind of each item.
    pub kinds: Vec<IdentifierKind>,
    /// Blinded elements, still untrusted.
    pub blinded: Vec<Vec<u8>>,
}

/// The node's OPRF answer.
#[derive(Debug)]
pub struct OprfAnswer {
    /// Evaluated elements and the batch proof.
    pub evaluation: fedq_crypto::oprf::BlindEvaluation,
    /// The key they were evaluated under.
    pub public_key: fedq_crypto::oprf::NodeOprfPublicKey,
}

/// Answers to a lookup.
#[derive(Debug)]
pub struct LookupAnswer {
    /// One re-randomised encrypted count per item.
    pub answers: Vec<EncryptedCount>,
    /// Time spent evaluating.
    pub compute: Duration,
    /// With disclosure asked: whether this node reveals its own answers.
    pub disclosure: Option<crate::gate::Disclosure>,
}

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

/// The node's lookup service.
pub struct NodeService {
    config: NodeConfig,
    store: Mutex<Store>,
    index: RwLock<Arc<LookupIndex>>,
    keys: Mutex<HashMap<KeyId, FhePublicKey>>,
    pool: Arc<rayon::ThreadPool>,
    ledger: crate::ledger::Ledger,
    stats: crate::stats::StatsEngine,
    gate: crate::gate::Gate,
}

impl NodeService {
    /// Opens the store, builds the index and starts the evaluation pool.
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
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(config.threads)
            .thread_name(|i| format!("fedq-eval-{i}"))
            .build()
            .map_err(|_| NodeError::ShuttingDown)?;
        let crate::config::StoreLocation::Sqlite(store_path) = &config.store;
        let ledger = crate::ledger::Ledger::open(store_path)?;
        let stats =
            crate::stats::StatsEngine::new(config.stats_dir.clone(), config.catalog.clone());
        let gate = crate::gate::Gate::new(
            crate::envelope::EnvelopeVerifier::open(
                store_path,
                &config.federation_path,
                &config.requesters,
            )
            .map_err(|e| NodeError::Audit(format!("nonce store: {e}")))?,
            match &config.policy {
                Some(section) => crate::policy::Policy::from_section(section.clone())
                    .map_err(|problems| NodeError::InvalidArgument(problems.join("; ")))?,
                None => crate::policy::Policy::default(),
            },
            crate::audit::AuditLog::open_for(&config)
                .map_err(|e| NodeError::Audit(e.to_string()))?,
        );
        Ok(Self {
            ledger,
            stats,
            gate,
            config,
            store: Mutex::new(store),
            index: RwLock::new(Arc::new(index)),
            keys: Mutex::new(HashMap::new()),
            pool: Arc::new(pool),
        })
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

    /// Runs CPU-bound work on the evaluation pool, inside the caller's span,
    /// and awaits it without blocking the async runtime.
    async fn on_pool<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, NodeError> {
        let span = tracing::Span::current();
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.pool.spawn(move || {
            let _entered = span.enter();
            let _ = tx.send(work());
        });
        rx.await.map_err(|_| NodeError::ShuttingDown)
    }

    fn authorise(&self, caller: &Caller) -> Result<(), NodeError> {
        if self
            .config
            .allowed_callers
            .iter()
            .any(|allowed| allowed == &caller.0)
        {
            Ok(())
        } else {
            info!(decision = "deny", rule = "allowed_callers", "lookup denied");
            Err(NodeError::PermissionDenied(
                "caller is not allowed to query this node".to_owned(),
            ))
        }
    }

    fn public_key(&self, key_id: &KeyId, bytes: &[u8]) -> Result<FhePublicKey, NodeError> {
        let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(key) = keys.get(key_id) {
            if key.to_bytes() == bytes {
                return Ok(key.clone());
            }
        }
        let key = FhePublicKey::from_bytes(bytes)?;
        if key.id() != key_id {
            return Err(NodeError::InvalidArgument(
                "public key does not match its key id".to_owned(),
            ));
        }
        if keys.len() >= KEY_CACHE_ENTRIES {
            keys.clear();
        }
        keys.insert(key_id.clone(), key.clone());
        Ok(key)
    }

    fn check_items(&self, items: &[QueryItem]) -> Result<(), NodeError> {
        if items.is_empty() {
            return Err(NodeError::InvalidArgument("lookup has no items".to_owned()));
        }
        if items.len() > self.config.max_items {
            return Err(NodeError::InvalidArgument(format!(
                "lookup has more than {} items",
                self.config.max_items
            )));
        }
        let buckets = self.config.fingerprint_params().bucket_count();
        for (i, item) in items.iter().enumerate() {
            if item.bucket.0 >= buckets {
                return Err(NodeError::InvalidArgument(format!(
                    "item {i}: bucket out of range"
                )));
            }
        }
        Ok(())
    }

    /// Answers a lookup: one re-randomised encrypted count per item.
    #[instrument(skip_all, fields(query_id = %query.query_id, node = %self.config.node_id, items = query.items.len()))]
    pub async fn lookup(
        &self,
        caller: &Caller,
        query: LookupQuery,
    ) -> Result<LookupAnswer, NodeError> {
        self.authorise(caller)?;
        let kinds: Vec<IdentifierKind> = query.items.iter().map(|i| i.kind).collect();
        let visit = crate::gate::Visit {
            query_id: &query.query_id,
            envelope: &query.envelope,
            action: crate::policy::Action::Lookup { kinds: &kinds },
            payload_hash: &query.payload_hash,
            detail: lookup_detail(&kinds, query.disclose),
        };
        let envelope = self.gate.admit(&visit)?;
        let prepared = self.check_items(&query.items).and_then(|()| {
            Ok((
                self.public_key(&query.key_id, &query.public_key)?,
                self.refresh_index()?,
            ))
        });
        let prepared = prepared.and_then(|(public_key, index)| {
            let current = index.oprf_key().key_id().to_string();
            if query.oprf_key_id != current {
                return Err(NodeError::StaleOprfKey(
                    "the tags were derived under an OPRF key this node no longer uses: \
                     obtain fresh tags and ask again"
                        .to_owned(),
                ));
            }
            Ok((public_key, index))
        });
        let (public_key, index) =
            prepared.map_err(|e| self.gate.refuse_invalid(&visit, &envelope, e))?;
        let tag_bits = self.config.fingerprint_params().tag_bits();
        let items = query.items;
        let mut answer = self
            .on_pool(move || {
                let started = Instant::now();
                evaluate_items(&items, &index, &public_key, tag_bits).map(|answers| LookupAnswer {
                    answers,
                    compute: started.elapsed(),
                    disclosure: None,
                })
            })
            .await?
            .map_err(|e| self.gate.refuse_invalid(&visit, &envelope, e))?;
        // The audit entries are written before the answer leaves.
        self.gate
            .record_answer(&visit, &envelope, "lookup", "policy admits")?;
        if query.disclose {
            let disclosure = self.gate.disclosure(&envelope, &query.authorization);
            let reason = match disclosure {
                crate::gate::Disclosure::Revealed => {
                    format!("revealed under authorization {}", query.authorization.trim())
                }
                crate::gate::Disclosure::Withheld => {
                    "withheld: the disclosure rule does not cover this requester and purpose, or no authorization was given"
                        .to_owned()
                }
            };
            self.gate
                .record_answer(&visit, &envelope, "disclose", &reason)?;
            answer.disclosure = Some(disclosure);
        }
        info!(
            decision = "answer",
            compute_ms = answer.compute.as_millis() as u64,
            "lookup answered"
        );
        Ok(answer)
    }

    /// Evaluates a batch of blinded identifiers under the node's active OPRF
    /// key, with a proof against its public key. Admitted like a lookup
    /// (envelope, policy, per-kind metering) and audited with the count only.
    #[instrument(skip_all, fields(query_id = %query.query_id, node = %self.config.node_id, items = query.blinded.len()))]
    pub async fn oprf(&self, caller: &Caller, query: OprfQuery) -> Result<OprfAnswer, NodeError> {
        self.authorise(caller)?;
        let visit = crate::gate::Visit {
            query_id: &query.query_id,
            envelope: &query.envelope,
            action: crate::policy::Action::Oprf {
                kinds: &query.kinds,
            },
            payload_hash: &query.payload_hash,
            detail: oprf_detail(&query.kinds),
        };
        let envelope = self.gate.admit(&visit)?;
        let checked = if query.kinds.len() != query.blinded.len() {
            Err(NodeError::InvalidArgument(
                "one declared kind per blinded element is needed".to_owned(),
            ))
        } else if query.blinded.len() > self.config.max_items {
            Err(NodeError::InvalidArgument(format!(
                "an oprf request has at most {} items",
                self.config.max_items
            )))
        } else {
            self.refresh_index()
        };
        let index = checked.map_err(|e| self.gate.refuse_invalid(&visit, &envelope, e))?;
        let blinded = query.blinded;
        let answer = self
            .on_pool(move || {
                fedq_crypto::oprf::evaluate_blinded(index.oprf_key(), &blinded)
                    .map(|evaluation| OprfAnswer {
                        evaluation,
                        public_key: index.oprf_key().public_key().clone(),
                    })
                    .map_err(|e| NodeError::InvalidArgument(e.to_string()))
            })
            .await?
            .map_err(|e| self.gate.refuse_invalid(&visit, &envelope, e))?;
        self.gate
            .record_answer(&visit, &envelope, "oprf", "policy admits")?;
        info!(decision = "answer", "oprf evaluated");
        Ok(answer)
    }

    /// Answers a differentially private statistics query, charging the
    /// requester's budget at this node before the answer leaves.
    pub async fn stats(
        &self,
        caller: &Caller,
        request: crate::stats_service::StatsRequest,
    ) -> Result<crate::stats_service::StatsAnswer, NodeError> {
        self.authorise(caller)?;
        let visit = crate::gate::Visit {
            query_id: &request.query_id,
            envelope: &request.envelope,
            action: crate::policy::Action::Stats {
                table: &request.table,
            },
            payload_hash: &request.payload_hash,
            detail: format!(
                "table={} measure={}",
                crate::audit::request_name(&request.table),
                crate::audit::request_name(&request.measure)
            ),
        };
        let envelope = self.gate.admit(&visit)?;
        let record = self.gate.admitted_record(&visit, &envelope);
        let result = crate::stats_service::answer(
            &self.stats,
            &self.ledger,
            self.config.budget_caps,
            &envelope.requester,
            &record,
            &request,
        )
        .await;
        match &result {
            Ok(_) => {
                // The entry is in the log with the charge; re-sign the head.
                self.gate
                    .audit()
                    .checkpoint()
                    .map_err(|e| NodeError::Audit(e.to_string()))?;
            }
            Err(e) => self
                .gate
                .refuse_admitted(&visit, &envelope, &e.to_string())?,
        }
        result
    }

    /// What a requester has spent and may spend this epoch at this node.
    pub fn budget(
        &self,
        caller: &Caller,
        requester: &str,
    ) -> Result<crate::stats_service::BudgetStatus, NodeError> {
        self.authorise(caller)?;
        crate::stats_service::budget_status(&self.ledger, self.config.budget_caps, requester)
    }

    /// The public catalog, as JSON (tables that have been imported only).
    pub fn catalog_json(&self, caller: &Caller) -> Result<String, NodeError> {
        self.authorise(caller)?;
        let tables: Vec<_> = self
            .config
            .catalog
            .iter()
            .filter(|t| self.stats.has_table(&t.name))
            .collect();
        serde_json::to_string(&tables).map_err(|e| NodeError::InvalidArgument(e.to_string()))
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

fn evaluate_items(
    items: &[QueryItem],
    index: &LookupIndex,
    public_key: &FhePublicKey,
    tag_bits: u8,
) -> Result<Vec<EncryptedCount>, NodeError> {
    items
        .par_iter()
        .enumerate()
        .map(|(i, item)| {
            let tag = EncryptedTag::from_bytes(&item.encrypted_tag, tag_bits)
                .map_err(|e| NodeError::InvalidArgument(format!("item {i}: {e}")))?;
            let prepared = PreparedTag::prepare(tag);
            let candidates = index.candidates(item.kind, item.bucket);
            let (raw, _stats) = evaluate(&prepared, candidates, index.padded_candidates())?;
            Ok(EncryptedCount::rerandomise(raw, public_key))
        })
        .collect()
}

/// The audit detail of an OPRF batch: how many evaluations of which declared
/// kinds (never the blinded elements).
fn oprf_detail(kinds: &[IdentifierKind]) -> String {
    lookup_detail(kinds, false).replacen("items=", "evaluations=", 1)
}

/// The audit detail of a lookup: how many items of which kinds (never values).
fn lookup_detail(kinds: &[IdentifierKind], disclose: bool) -> String {
    let mut names: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    format!(
        "items={} kinds={}{}",
        kinds.len(),
        names.join(","),
        if disclose { " disclose=asked" } else { "" }
    )
}
