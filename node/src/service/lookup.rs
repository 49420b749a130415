//! Encrypted membership lookups: one re-randomised encrypted count per item.

use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fedq_crypto::lookup::{
    evaluate, packed, CompressedTag, CountEncoding, EncryptedCount, EncryptedTag, ExpansionKey,
    FhePublicKey, KeyId, PackedTags, PreparedExpansionKey, PreparedTag,
};
use fedq_crypto::{Bucket, IdentifierKind};
use fedq_proto::federation::TagCompression;
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
    /// With compressed tags: the requester's expansion key id (signed).
    pub expansion_key_id: Option<KeyId>,
    /// The expansion key itself when the coordinator attached it, still
    /// untrusted: it must hash to `expansion_key_id`.
    pub expansion_key: Vec<u8>,
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

    /// The prepared key `id` if this node holds it, marked as just used.
    fn cached_expansion_key(&self, id: &KeyId) -> Option<Arc<PreparedExpansionKey>> {
        self.expansion_keys
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
    }

    /// Prepares the expansion key the coordinator attached (checked to hash
    /// to the signed id, on the pool) and caches it for `requester`.
    async fn prepare_expansion_key(
        &self,
        requester: &str,
        id: &KeyId,
        bytes: Vec<u8>,
    ) -> Result<Arc<PreparedExpansionKey>, NodeError> {
        check_attached(id, &bytes)?;
        let bytes = Arc::new(bytes);
        let mut prepared = self
            .pool
            .map(1, move |_| Ok(PreparedExpansionKey::from_bytes(&bytes)?))
            .await?;
        let key = Arc::new(prepared.pop().ok_or(NodeError::ShuttingDown)?);
        self.expansion_keys
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(requester, id, Arc::clone(&key));
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
        let compression = self.config.federation.compression;
        // Asking for the expansion key comes before admission, which spends
        // the envelope: the request that follows with the key is the same one.
        // Only an allowed caller hears whether a key is cached. A federation
        // without compression never asks (its nodes refuse compressed tags).
        let cached = match &query.expansion_key_id {
            Some(id) if compression != TagCompression::None => {
                self.authorise(caller)?;
                let cached = self.cached_expansion_key(id);
                if cached.is_none() && query.expansion_key.is_empty() {
                    return Err(NodeError::ExpansionKeyNotCached);
                }
                cached
            }
            _ => None,
        };
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
        let tag_bits = self.config.fingerprint_params().tag_bits();
        // Every field of the tags but their bodies is checked before any
        // work: the key's preparation and the expansions come after.
        let groups = self.check_items(&query.items).and_then(|()| {
            item_groups(
                &query.items,
                (compression, tag_bits),
                query.expansion_key_id.is_some(),
            )
        });
        let groups = Arc::new(admitted.check(groups)?);
        let needs_key = groups.iter().any(|group| group.expanded);
        let prepared = self
            .public_key(&query.key_id, &query.public_key)
            .and_then(|key| Ok((key, self.refresh_index()?)));
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
        // The key held before admission is the one used: an eviction since
        // cannot turn an admitted request away.
        let expansion = match (cached, query.expansion_key_id) {
            (Some(key), _) => Some(key),
            (None, Some(id)) if needs_key => Some(
                admitted.check(
                    self.prepare_expansion_key(&query.requester, &id, query.expansion_key)
                        .await,
                )?,
            ),
            // Not needed by these tags, but a key that travels must still be
            // the one the requester signed.
            (None, Some(id)) if !query.expansion_key.is_empty() => {
                admitted.check(check_attached(&id, &query.expansion_key))?;
                None
            }
            (None, _) => None,
        };
        // The audience was checked to be exactly the federation's nodes: the
        // answers the coordinator adds are this many.
        let encoding = admitted.check(
            CountEncoding::for_nodes(admitted.envelope().audience.len())
                .map_err(|e| NodeError::InvalidArgument(e.to_string())),
        )?;
        let items = Arc::new(query.items);
        let started = Instant::now();
        // One unit of work per group: a packed group is expanded once for
        // all of its items.
        let answers = admitted
            .check(
                self.pool
                    .map(groups.len(), move |g| {
                        let group = groups[g].items.clone();
                        let tags =
                            decode_group(&items, group.clone(), expansion.as_deref(), tag_bits)?;
                        if tags.len() != group.len() {
                            return Err(NodeError::Internal(
                                fedq_transport::internal::ErrorId::log(
                                    &"a group decoded to another number of tags",
                                ),
                            ));
                        }
                        group
                            .zip(tags)
                            .map(|(i, tag)| {
                                evaluate_item(&items[i], tag, &index, (&public_key, encoding))
                            })
                            .collect::<Result<Vec<_>, _>>()
                    })
                    .await,
            )?
            .into_iter()
            .flatten()
            .collect();
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

/// Refuses an attached expansion key that is not one, or not the one whose
/// id the requester signed.
fn check_attached(id: &KeyId, bytes: &[u8]) -> Result<(), NodeError> {
    if &ExpansionKey::id_of(bytes)? != id {
        return Err(NodeError::InvalidArgument(
            "expansion key does not match its id".to_owned(),
        ));
    }
    Ok(())
}

/// Items evaluated together: a packed group (format 4), or one item of
/// another format.
struct ItemGroup {
    items: Range<usize>,
    /// Whether it needs the requester's expansion key (formats 3 and 4).
    expanded: bool,
}

/// How the items are grouped. Every field but the ciphertexts' bodies is
/// checked here, before any work: a group's structure, the compressed
/// formats' lengths, that no tag is compressed further than the federation
/// allows, and that compressed tags come with an expansion key id.
fn item_groups(
    items: &[QueryItem],
    (compression, tag_bits): (TagCompression, u8),
    has_key_id: bool,
) -> Result<Vec<ItemGroup>, NodeError> {
    let tags: Vec<&[u8]> = items.iter().map(|i| i.encrypted_tag.as_slice()).collect();
    let groups = packed::groups(&tags, tag_bits)
        .map_err(|(i, e)| NodeError::InvalidArgument(format!("item {i}: {e}")))?;
    groups
        .into_iter()
        .map(|range| {
            let tag = tags[range.start];
            let (is_packed, is_compressed) = (
                PackedTags::is_packed(tag),
                CompressedTag::is_compressed(tag),
            );
            let allowed = match compression {
                TagCompression::Packed => true,
                TagCompression::Single => !is_packed,
                TagCompression::None => !is_packed && !is_compressed,
            };
            if !allowed {
                return Err(NodeError::InvalidArgument(format!(
                    "item {}: a tag compressed further than this federation allows \
                     (parameters.compression = \"{compression}\")",
                    range.start
                )));
            }
            let expanded = is_packed || is_compressed;
            if expanded && !has_key_id {
                return Err(NodeError::InvalidArgument(format!(
                    "item {}: a compressed or packed tag needs the requester's expansion key id",
                    range.start
                )));
            }
            Ok(ItemGroup {
                items: range,
                expanded,
            })
        })
        .collect()
}

/// Decodes the tags of `group` (bounded and checked before tfhe sees them)
/// and prepares them for the tree: compressed and packed tags are expanded
/// with the requester's key.
fn decode_group(
    items: &[QueryItem],
    group: Range<usize>,
    expansion: Option<&PreparedExpansionKey>,
    tag_bits: u8,
) -> Result<Vec<PreparedTag>, NodeError> {
    let i = group.start;
    let invalid =
        |e: fedq_crypto::lookup::LookupError| NodeError::InvalidArgument(format!("item {i}: {e}"));
    let tag = &items[i].encrypted_tag;
    let packed = PackedTags::is_packed(tag);
    if !packed && !CompressedTag::is_compressed(tag) {
        let tag = EncryptedTag::from_bytes(tag, tag_bits).map_err(invalid)?;
        return Ok(vec![PreparedTag::prepare(tag)]);
    }
    let key = expansion.ok_or_else(|| {
        NodeError::InvalidArgument(format!(
            "item {i}: a compressed or packed tag needs the requester's expansion key id"
        ))
    })?;
    if packed {
        let tags: Vec<&[u8]> = items[group]
            .iter()
            .map(|item| item.encrypted_tag.as_slice())
            .collect();
        let tags = PackedTags::from_items(&tags, tag_bits).map_err(invalid)?;
        return Ok(PreparedTag::prepare_packed(tags, key));
    }
    let tag = CompressedTag::from_bytes(tag, tag_bits).map_err(invalid)?;
    Ok(vec![PreparedTag::prepare_compressed(tag, key)])
}

/// Evaluates one item: run the CMux tree over its bucket, re-randomise the
/// count.
pub(super) fn evaluate_item(
    item: &QueryItem,
    prepared: PreparedTag,
    index: &LookupIndex,
    (public_key, encoding): (&FhePublicKey, CountEncoding),
) -> Result<EncryptedCount, NodeError> {
    let candidates = index.candidates(item.kind, item.bucket);
    // Flooded as much as the tag's format leaves room for.
    let encoding = encoding.with_noise(prepared.noise());
    let (raw, _stats) = evaluate(&prepared, candidates, index.padded_candidates(), encoding)?;
    Ok(EncryptedCount::rerandomise(raw, public_key, encoding))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(tags: &[&[u8]]) -> Vec<QueryItem> {
        tags.iter()
            .map(|tag| QueryItem {
                kind: IdentifierKind::Phone,
                bucket: Bucket(0),
                encrypted_tag: tag.to_vec(),
            })
            .collect()
    }

    /// What each setting of `parameters.compression` lets through: a batch
    /// of a packed group (format 4), a compressed item (format 3) and an
    /// uncompressed one (format 2); and that compressed tags need a key id.
    #[test]
    fn a_federation_refuses_tags_compressed_further_than_it_allows() {
        use fedq_crypto::Tag;
        let (secret, _) = fedq_crypto::lookup::generate_keys();
        let mut sent = PackedTags::encrypt(&secret, &[Tag(1), Tag(2)], 28).to_item_bytes();
        sent.push(CompressedTag::encrypt(&secret, Tag(3), 28).to_bytes());
        sent.push(vec![2]);
        let tags: Vec<&[u8]> = sent.iter().map(Vec::as_slice).collect();
        let batch = items(&tags);
        let groups = |compression, batch: &[QueryItem], has_key_id| match item_groups(
            batch,
            (compression, 28),
            has_key_id,
        ) {
            Ok(groups) => Ok(groups
                .into_iter()
                .map(|g| (g.items, g.expanded))
                .collect::<Vec<_>>()),
            Err(NodeError::InvalidArgument(message)) => Err(message),
            Err(other) => panic!("{other:?}"),
        };
        assert_eq!(
            groups(TagCompression::Packed, &batch, true),
            Ok(vec![(0..2, true), (2..3, true), (3..4, false)])
        );
        let single = groups(TagCompression::Single, &batch, true).expect_err("packed refused");
        assert!(single.starts_with("item 0: "), "{single}");
        assert!(single.contains("compression = \"single\""), "{single}");
        assert_eq!(
            groups(TagCompression::Single, &batch[2..], true),
            Ok(vec![(0..1, true), (1..2, false)])
        );
        let none = groups(TagCompression::None, &batch[2..], true).expect_err("compressed refused");
        assert!(none.contains("compression = \"none\""), "{none}");
        assert_eq!(
            groups(TagCompression::None, &batch[3..], false),
            Ok(vec![(0..1, false)])
        );
        let keyless = groups(TagCompression::Packed, &batch[2..], false).expect_err("no key id");
        assert!(keyless.contains("expansion key id"), "{keyless}");
    }
}
