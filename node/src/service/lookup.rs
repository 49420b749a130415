//! Encrypted membership lookups: one re-randomised encrypted count per item.

use std::sync::Arc;
use std::time::{Duration, Instant};

use fedq_crypto::lookup::{
    evaluate, CountEncoding, EncryptedCount, EncryptedTag, FhePublicKey, KeyId, PreparedTag,
};
use fedq_crypto::{Bucket, IdentifierKind};
use tracing::{info, instrument};

use super::{Caller, NodeService};
use crate::error::NodeError;
use crate::gate::{Disclosure, Visit};
use crate::index::LookupIndex;
use crate::policy::kinds_detail;

/// Public keys kept in memory; the coordinator sends the key with every request,
/// so the cache only saves decoding.
const KEY_CACHE_ENTRIES: usize = 1024;

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

impl NodeService {
    pub(super) fn public_key(
        &self,
        key_id: &KeyId,
        bytes: &[u8],
    ) -> Result<FhePublicKey, NodeError> {
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

    pub(super) fn check_items(&self, items: &[QueryItem]) -> Result<(), NodeError> {
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
        let kinds: Vec<IdentifierKind> = query.items.iter().map(|i| i.kind).collect();
        let admitted = self.admit(
            caller,
            Visit {
                query_id: &query.query_id,
                envelope: &query.envelope,
                action: crate::policy::Action::Lookup { kinds: &kinds },
                payload_hash: &query.payload_hash,
                detail: kinds_detail("items", &kinds, query.disclose),
            },
        )?;
        admitted.check(admitted.told(&query.requester))?;
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
                    "the fingerprints were derived under a key this node no longer uses: \
                     obtain fresh ones and ask again"
                        .to_owned(),
                ));
            }
            Ok((public_key, index))
        });
        let (public_key, index) = admitted.check(prepared)?;
        // The audience was checked to be exactly the federation's nodes: the
        // answers the coordinator adds are this many.
        let encoding = admitted.check(
            CountEncoding::for_nodes(admitted.envelope().audience.len())
                .map_err(|e| NodeError::InvalidArgument(e.to_string())),
        )?;
        let tag_bits = self.config.fingerprint_params().tag_bits();
        let items = Arc::new(query.items);
        let started = Instant::now();
        let answers = admitted.check(
            self.pool
                .map(items.len(), move |i| {
                    evaluate_item(i, &items[i], &index, (&public_key, encoding), tag_bits)
                })
                .await,
        )?;
        let mut answer = LookupAnswer {
            answers,
            compute: started.elapsed(),
            disclosure: None,
        };
        // The audit entries are written before the answer leaves.
        admitted.record("lookup", "policy admits")?;
        if query.disclose {
            let disclosure = self
                .gate
                .disclosure(admitted.envelope(), &query.authorization);
            let reason = match disclosure {
                Disclosure::Revealed => {
                    format!("revealed under authorization {}", query.authorization.trim())
                }
                Disclosure::Withheld | Disclosure::NotAsked => {
                    "withheld: the disclosure rule does not cover this requester and purpose, or no authorization was given"
                        .to_owned()
                }
            };
            admitted.record("disclose", &reason)?;
            answer.disclosure = Some(disclosure);
        }
        info!(
            decision = "answer",
            compute_ms = answer.compute.as_millis() as u64,
            "lookup answered"
        );
        Ok(answer)
    }
}

/// Evaluates one item: decode its tag (bounded and checked before tfhe sees
/// it), run the CMux tree over its bucket, re-randomise the count.
fn evaluate_item(
    i: usize,
    item: &QueryItem,
    index: &LookupIndex,
    (public_key, encoding): (&FhePublicKey, CountEncoding),
    tag_bits: u8,
) -> Result<EncryptedCount, NodeError> {
    let tag = EncryptedTag::from_bytes(&item.encrypted_tag, tag_bits)
        .map_err(|e| NodeError::InvalidArgument(format!("item {i}: {e}")))?;
    let prepared = PreparedTag::prepare(tag);
    let candidates = index.candidates(item.kind, item.bucket);
    let (raw, _stats) = evaluate(&prepared, candidates, index.padded_candidates(), encoding)?;
    Ok(EncryptedCount::rerandomise(raw, public_key, encoding))
}
