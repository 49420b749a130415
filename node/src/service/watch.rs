//! Standing lookups (watches): registered like a lookup of one item, then
//! evaluated against the bucket's new candidates each time the node's
//! records change, the encrypted results kept until the coordinator takes
//! them. The node never learns what it watches nor whether it hit.

use std::sync::Arc;

use fedq_crypto::lookup::{
    evaluate, CountEncoding, EncryptedCount, EncryptedTag, FhePublicKey, PreparedTag,
};
use fedq_crypto::{Bucket, IdentifierKind};
use tracing::{info, instrument};

use super::{Caller, LookupQuery, NodeService};
use crate::error::NodeError;
use crate::gate::Visit;
use crate::index::LookupIndex;
use crate::policy::kinds_detail;
use crate::watch::{Evaluated, Watch, WatchHead, WatchResult, WatchStoreError};

/// New candidates are evaluated in groups of this many (padded with
/// dummies): the work per watch and round shows how many groups, not how
/// many records, arrived.
pub const WATCH_PAD: usize = 16;

/// A watch's decoded public key and its encoded encrypted tag.
type Sealed = (FhePublicKey, Vec<u8>);

/// Watches whose ciphertexts an evaluation round holds in memory at once:
/// enough to keep every core of the pool busy, ~1 MB each.
const WATCH_CHUNK: usize = 64;

/// A watch as the coordinator passes it on.
#[derive(Debug)]
pub struct WatchQuery {
    /// The lookup it stands for: one item, no disclosure.
    pub lookup: LookupQuery,
    /// The coordinator's id of the watch.
    pub watch_id: String,
    /// Its end, Unix seconds (signed).
    pub until: i64,
}

impl NodeService {
    /// Registers a watch: admitted like a lookup of its item (envelope of
    /// action `watch`, policy, metering), its tag checked as a lookup's,
    /// within `policy.watch` (lifetime, live watches), audited.
    #[instrument(skip_all, fields(query_id = %query.lookup.query_id, node = %self.config.node_id))]
    pub async fn watch_add(&self, caller: &Caller, query: WatchQuery) -> Result<(), NodeError> {
        let lookup = &query.lookup;
        let kinds: Vec<IdentifierKind> = lookup.items.iter().map(|i| i.kind).collect();
        let admitted = self.admit(
            caller,
            Visit {
                query_id: &lookup.query_id,
                envelope: &lookup.envelope,
                action: crate::policy::Action::Watch { kinds: &kinds },
                payload_hash: &lookup.payload_hash,
                detail: format!(
                    "{} until={}",
                    kinds_detail("items", &kinds, false),
                    query.until
                ),
            },
        )?;
        admitted.check(admitted.told(&lookup.requester))?;
        let now = chrono::Utc::now().timestamp();
        let checked = self.check_watch(&query, now).and_then(|()| {
            self.check_items(&lookup.items)?;
            let key = self.public_key(&lookup.key_id, &lookup.public_key)?;
            let index = self.refresh_index()?;
            if lookup.oprf_key_id != index.oprf_key().key_id().to_string() {
                return Err(NodeError::StaleOprfKey(
                    "the fingerprint was derived under a key this node no longer uses: \
                     obtain a fresh one and register again"
                        .to_owned(),
                ));
            }
            let item = &lookup.items[0];
            EncryptedTag::from_bytes(
                &item.encrypted_tag,
                self.config.fingerprint_params().tag_bits(),
            )
            .map_err(|e| NodeError::InvalidArgument(format!("item 0: {e}")))?;
            Ok((key, index))
        });
        let (_, index) = admitted.check(checked)?;
        let encoding = admitted.check(
            CountEncoding::for_nodes(admitted.envelope().audience.len())
                .map_err(|e| NodeError::InvalidArgument(e.to_string())),
        )?;
        let item = &lookup.items[0];
        let watch = Watch {
            head: WatchHead {
                id: query.watch_id.clone(),
                requester: lookup.requester.clone(),
                key_id: lookup.key_id.as_str().to_owned(),
                kind: item.kind.code(),
                bucket: item.bucket.0,
                oprf_key_id: lookup.oprf_key_id.clone(),
                nodes: encoding.nodes(),
                registered_at: now,
                until: query.until,
                // Only records imported from now on are evaluated.
                seen: sorted(index.candidates(item.kind, item.bucket)),
            },
            public_key: lookup.public_key.clone(),
            tag: item.encrypted_tag.clone(),
        };
        let max_live = self.gate.policy().watch_limits().max_live_per_requester;
        let stored = self
            .watches
            .add(&watch, now, max_live)
            .map_err(|e| match e {
                WatchStoreError::TooMany(_) => NodeError::ResourceExhausted(e.to_string()),
                WatchStoreError::Db(e) => NodeError::Audit(format!("watch store: {e}")),
            });
        match stored {
            Err(NodeError::ResourceExhausted(reason)) => {
                admitted.refuse(&reason)?;
                return Err(NodeError::ResourceExhausted(reason));
            }
            other => admitted.check(other)?,
        }
        admitted.record("watch", "policy admits")?;
        info!(decision = "answer", "watch registered");
        Ok(())
    }

    /// The watch's end against `policy.watch.max_days` and the policy's
    /// `valid_until`, and its id's shape.
    fn check_watch(&self, query: &WatchQuery, now: i64) -> Result<(), NodeError> {
        let id = &query.watch_id;
        if id.is_empty() || id.len() > 64 || !id.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(NodeError::InvalidArgument("malformed watch id".to_owned()));
        }
        if query.lookup.items.len() != 1 {
            return Err(NodeError::InvalidArgument(
                "a watch has one item".to_owned(),
            ));
        }
        let policy = self.gate.policy();
        let max_days = policy.watch_limits().max_days;
        if query.until <= now {
            return Err(NodeError::InvalidArgument(
                "the watch would end before it starts".to_owned(),
            ));
        }
        if query.until.saturating_sub(now) > i64::from(max_days) * 86_400 {
            return Err(NodeError::PermissionDenied(format!(
                "a watch lasts at most {max_days} days at this node (policy.watch.max_days)"
            )));
        }
        let ends = chrono::DateTime::from_timestamp(query.until, 0).map(|t| t.date_naive());
        if let (Some(ends), Some(sunset)) = (ends, policy.valid_until()) {
            if ends > sunset {
                return Err(NodeError::PermissionDenied(format!(
                    "a watch cannot outlast this node's policy (valid until {sunset})"
                )));
            }
        }
        Ok(())
    }

    /// Deletes a watch and its waiting results (the coordinator passes on
    /// the requester's cancellation); audited.
    pub fn watch_cancel(
        &self,
        caller: &Caller,
        requester: &str,
        id: &str,
    ) -> Result<bool, NodeError> {
        self.authorise(caller)?;
        let found = self
            .watches
            .cancel(requester, id)
            .map_err(|e| NodeError::Audit(format!("watch store: {e}")))?;
        self.gate.record_event(
            requester,
            "watch-cancel",
            &format!("watch={id} found={found}"),
        )?;
        Ok(found)
    }

    /// Results after `after` for the coordinator (those up to it are forgotten).
    pub fn watch_results(
        &self,
        caller: &Caller,
        after: u64,
    ) -> Result<Vec<WatchResult>, NodeError> {
        self.authorise(caller)?;
        self.watches
            .results_after(after)
            .map_err(|e| NodeError::Audit(format!("watch store: {e}")))
    }

    /// The node's own watch store, for tests that damage a watch the way an
    /// operator's edit or a bad disk would.
    #[cfg(any(test, feature = "testkit"))]
    pub fn watch_store(&self) -> &crate::watch::WatchStore {
        &self.watches
    }

    /// The bucket's tags as a watch registered now records them as seen:
    /// for benches and tests that store watches directly.
    #[cfg(any(test, feature = "testkit"))]
    pub fn bucket_tags(&self, kind: IdentifierKind, bucket: Bucket) -> Result<Vec<u64>, NodeError> {
        Ok(sorted(self.refresh_index()?.candidates(kind, bucket)))
    }

    /// Rows this node holds for watch `id` (the watch and its waiting
    /// results): for operators and tests that check a cancelled or expired
    /// watch is gone.
    pub fn watch_rows(&self, id: &str) -> Result<i64, NodeError> {
        self.watches
            .rows_of(id)
            .map_err(|e| NodeError::Audit(format!("watch store: {e}")))
    }

    /// Evaluates every live watch when the node's records have changed since
    /// the last round: each against its bucket's candidates not seen before,
    /// padded. Every live watch gets a result, whether or not its bucket
    /// changed, so that the results do not say which buckets did. Returns how
    /// many watches were evaluated (0: nothing changed).
    pub async fn evaluate_watches(&self) -> Result<usize, NodeError> {
        // An ended watch goes at once, with its ciphertexts, imports or not.
        self.watches
            .purge(chrono::Utc::now().timestamp())
            .map_err(|e| NodeError::Audit(format!("watch store: {e}")))?;
        let index = self.refresh_index()?;
        let generation = index.generation();
        if *self
            .watch_generation
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            == Some(generation)
        {
            return Ok(0);
        }
        let now = chrono::Utc::now().timestamp();
        let stored = self
            .watches
            .live(now)
            .map_err(|e| NodeError::Audit(format!("watch store: {e}")))?;
        // The index again, after the watches: at least as new as every
        // watch's snapshot of its bucket, so nothing from before a watch
        // counts as new for it.
        let index = self.refresh_index()?;
        let generation = index.generation();
        // A watch whose last result the coordinator has not collected waits:
        // its unseen tags are all counted in one later result, so a node
        // holds at most one result per watch.
        let pending = self
            .watches
            .pending()
            .map_err(|e| NodeError::Audit(format!("watch store: {e}")))?;
        // The rounds' notes of watches that are still live.
        let evaluated_at = {
            let live: std::collections::HashSet<&str> =
                stored.iter().map(|w| w.id.as_str()).collect();
            let mut noted = self
                .watch_evaluated
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            noted.retain(|id, _| live.contains(id.as_str()));
            noted.clone()
        };
        let mut waiting = false;
        let mut watches = Vec::with_capacity(stored.len());
        for watch in stored {
            if evaluated_at.get(&watch.id) == Some(&generation) {
                continue;
            }
            if pending.contains(&watch.id) {
                // Looked at again next tick, until its result is collected.
                waiting = true;
                continue;
            }
            // A requester removed from the federation watches no more.
            if self.gate.agency_of(&watch.requester).is_none() {
                self.watches
                    .cancel(&watch.requester, &watch.id)
                    .map_err(|e| NodeError::Audit(format!("watch store: {e}")))?;
                self.gate.record_event(
                    &watch.requester,
                    "watch-cancel",
                    &format!("watch={} requester no longer listed", watch.id),
                )?;
                continue;
            }
            watches.push(watch);
        }
        let tag_bits = self.config.fingerprint_params().tag_bits();
        let oprf_key_id: Arc<str> = index.oprf_key().key_id().to_string().into();
        let count = watches.len();
        let new_records = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        // A bounded number of watches' ciphertexts (~1 MB each) in memory at
        // once, however many watches are live.
        for chunk in watches.chunks(WATCH_CHUNK) {
            let ids: Vec<&str> = chunk.iter().map(|w| w.id.as_str()).collect();
            let mut stored = self
                .watches
                .ciphertexts(&ids)
                .map_err(|e| NodeError::Audit(format!("watch store: {e}")))?;
            // A stored key that no longer decodes spoils its own watch only.
            let work: Vec<(WatchHead, Option<Sealed>)> = chunk
                .iter()
                .map(|watch| {
                    let sealed = stored.remove(&watch.id).and_then(|c| {
                        let key_id = fedq_crypto::lookup::KeyId::parse(&watch.key_id).ok()?;
                        let key = self.public_key(&key_id, &c.public_key).ok()?;
                        Some((key, c.tag))
                    });
                    (watch.clone(), sealed)
                })
                .collect();
            let (work, index, oprf_key_id, new_records) = (
                Arc::new(work),
                Arc::clone(&index),
                Arc::clone(&oprf_key_id),
                Arc::clone(&new_records),
            );
            let done = self
                .pool
                .map(work.len(), move |i| {
                    let (watch, sealed) = &work[i];
                    let evaluated = sealed
                        .as_ref()
                        .ok_or_else(|| {
                            NodeError::InvalidArgument(
                                "its ciphertexts are missing or its public key does not decode"
                                    .to_owned(),
                            )
                        })
                        .and_then(|(key, tag)| {
                            // A panic (ours or tfhe's) spoils this watch's
                            // round only, not every watch's.
                            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                                evaluate_watch(
                                    watch,
                                    tag,
                                    key,
                                    &index,
                                    tag_bits,
                                    &oprf_key_id,
                                    &new_records,
                                )
                            }))
                            .unwrap_or_else(|_| {
                                Err(NodeError::InvalidArgument(
                                    "its evaluation panicked".to_owned(),
                                ))
                            })
                        });
                    // One watch that cannot be evaluated (its stored tag or
                    // key damaged) must not hold up the others: it gets no
                    // result this round, and its bucket's tags count as seen.
                    Ok(evaluated.unwrap_or_else(|e| {
                        tracing::warn!(error = %e, "a watch could not be evaluated");
                        Evaluated {
                            watch_id: watch.id.clone(),
                            seen: IdentifierKind::from_code(watch.kind)
                                .map(|kind| sorted(index.candidates(kind, Bucket(watch.bucket))))
                                .unwrap_or_else(|| watch.seen.clone()),
                            answer: None,
                        }
                    }))
                })
                .await?;
            self.watches
                .record(&done, now)
                .map_err(|e| NodeError::Audit(format!("watch store: {e}")))?;
            // Noted chunk by chunk: if a later chunk fails, these are not
            // evaluated again (a second result over the same tags).
            let mut noted = self
                .watch_evaluated
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            for done in &done {
                noted.insert(done.watch_id.clone(), generation);
            }
        }
        if !waiting {
            *self
                .watch_generation
                .lock()
                .unwrap_or_else(|e| e.into_inner()) = Some(generation);
        }
        if count > 0 {
            let new = new_records.load(std::sync::atomic::Ordering::Relaxed);
            self.gate.record_event(
                "",
                "watch-evaluate",
                &format!("watches={count} new_candidates={new}"),
            )?;
            info!(watches = count, "watches evaluated");
        }
        Ok(count)
    }

    /// Evaluates the watches every `interval` (and at once) while the node
    /// serves.
    pub async fn evaluate_watches_every(self: Arc<Self>, interval: std::time::Duration) {
        let mut ticks = tokio::time::interval(interval);
        loop {
            ticks.tick().await;
            if let Err(e) = self.evaluate_watches().await {
                tracing::warn!(error = %e, "watch evaluation failed; tried again at the next tick");
            }
        }
    }
}

fn sorted(tags: &[u64]) -> Vec<u64> {
    let mut tags = tags.to_vec();
    tags.sort_unstable();
    tags.dedup();
    tags
}

/// One watch's round: its bucket's tags now, and the encrypted count of its
/// tag among those it had not seen (none under a rotated OPRF key: its tag
/// no longer names anything here).
fn evaluate_watch(
    watch: &WatchHead,
    tag: &[u8],
    key: &FhePublicKey,
    index: &LookupIndex,
    tag_bits: u8,
    oprf_key_id: &str,
    new_records: &std::sync::atomic::AtomicUsize,
) -> Result<Evaluated, NodeError> {
    let kind = IdentifierKind::from_code(watch.kind)
        .ok_or_else(|| NodeError::InvalidArgument("stored watch has an unknown kind".to_owned()))?;
    let current = sorted(index.candidates(kind, Bucket(watch.bucket)));
    if watch.oprf_key_id != oprf_key_id {
        return Ok(Evaluated {
            watch_id: watch.id.clone(),
            seen: current,
            answer: None,
        });
    }
    let new: Vec<u64> = current
        .iter()
        .filter(|tag| watch.seen.binary_search(tag).is_err())
        .copied()
        .collect();
    new_records.fetch_add(new.len(), std::sync::atomic::Ordering::Relaxed);
    let tag = PreparedTag::prepare(EncryptedTag::from_bytes(tag, tag_bits)?);
    let encoding = CountEncoding::for_nodes(watch.nodes)?.with_noise(tag.noise());
    let pad_to = new.len().div_ceil(WATCH_PAD).max(1) * WATCH_PAD;
    let (raw, _) = evaluate(&tag, &new, pad_to, encoding)?;
    let answer = EncryptedCount::rerandomise(raw, key, encoding).to_bytes();
    Ok(Evaluated {
        watch_id: watch.id.clone(),
        seen: current,
        answer: Some(answer),
    })
}
