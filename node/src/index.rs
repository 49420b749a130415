//! In-memory lookup index: per (kind, bucket), the candidates' tags, with
//! the OPRF key they were derived under (read in the same transaction, so a
//! rotation never pairs a key with the other key's tags).
//!
//! Built from the store at start-up and rebuilt when the store's generation
//! changes (after an import or a purge), so a serving node picks up new data
//! by itself. Records already expired when it is built are left out, and the
//! index remembers the earliest upcoming expiry of those it holds: from that
//! second on it is stale ([`LookupIndex::is_current`]) and must be rebuilt, so
//! an expired record never matches although the store still holds it.
//!
//! Expired records still count towards the padded bucket size: the
//! evaluation's shape does not change when records expire (they act as
//! dummies); only a purge, which deletes them, can shrink it.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use fedq_crypto::oprf::NodeOprfKey;
use fedq_crypto::{Bucket, FingerprintParams, IdentifierKind};

use crate::store::{is_expired, Store, StoreError};

/// Padded bucket sizes are rounded up to this, so that adding a few records
/// does not change the evaluation's shape.
const PAD_GRANULE: usize = 32;

/// Candidate tags per (kind, bucket), under one OPRF key.
#[derive(Debug)]
pub struct LookupIndex {
    key: NodeOprfKey,
    buckets: HashMap<(IdentifierKind, u32), Vec<u64>>,
    padded: usize,
    records: usize,
    expired: usize,
    generation: i64,
    /// Earliest expiry (UTC seconds) of an indexed record; `None`: none expires.
    valid_until: Option<i64>,
}

impl LookupIndex {
    /// Builds the index from the store, as of now.
    pub fn load(
        store: &Store,
        params: FingerprintParams,
        min_padding: usize,
    ) -> Result<Self, StoreError> {
        Self::load_at(store, params, min_padding, Utc::now())
    }

    /// Builds the index from the store, leaving out records expired at `now`.
    pub fn load_at(
        store: &Store,
        params: FingerprintParams,
        min_padding: usize,
        now: DateTime<Utc>,
    ) -> Result<Self, StoreError> {
        let now = now.timestamp();
        let generation = store.generation()?;
        let mut buckets: HashMap<(IdentifierKind, u32), Vec<u64>> = HashMap::new();
        // Expired rows are few (a purge deletes them): kept apart for the padding only.
        let mut expired: HashMap<(IdentifierKind, u32), Vec<u64>> = HashMap::new();
        let mut records = 0;
        let mut expired_records = 0;
        let mut valid_until: Option<i64> = None;
        let key = store.load_active(|kind, fp, expiry| {
            let key = (kind, fp.bucket(params).0);
            let tag = fp.tag(params).0;
            if is_expired(expiry, now) {
                expired.entry(key).or_default().push(tag);
                expired_records += 1;
                return;
            }
            buckets.entry(key).or_default().push(tag);
            records += 1;
            if let Some(at) = expiry {
                valid_until = Some(valid_until.map_or(at, |v| v.min(at)));
            }
        })?;
        for tags in buckets.values_mut().chain(expired.values_mut()) {
            tags.sort_unstable();
            tags.dedup();
        }
        let mut largest = buckets.values().map(Vec::len).max().unwrap_or(0);
        for (key, dead) in &expired {
            let live = buckets.get(key).map(Vec::as_slice).unwrap_or(&[]);
            let extra = dead
                .iter()
                .filter(|t| live.binary_search(t).is_err())
                .count();
            largest = largest.max(live.len() + extra);
        }
        let padded = min_padding.max(largest.div_ceil(PAD_GRANULE) * PAD_GRANULE);
        Ok(Self {
            key,
            buckets,
            padded,
            records,
            expired: expired_records,
            generation,
            valid_until,
        })
    }

    /// Whether the index still answers correctly for a store at `generation`
    /// at time `now`: the store has not changed and no indexed record has
    /// expired since it was built.
    pub fn is_current(&self, generation: i64, now: DateTime<Utc>) -> bool {
        generation == self.generation && !is_expired(self.valid_until, now.timestamp())
    }

    /// The OPRF key the tags were derived under: the node's active key.
    pub fn oprf_key(&self) -> &NodeOprfKey {
        &self.key
    }

    /// The real candidate tags of a bucket (empty if none).
    pub fn candidates(&self, kind: IdentifierKind, bucket: Bucket) -> &[u64] {
        self.buckets
            .get(&(kind, bucket.0))
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// Every bucket of this node is padded to this many tags.
    pub fn padded_candidates(&self) -> usize {
        self.padded
    }

    /// Number of (unexpired) identifier rows indexed.
    pub fn records(&self) -> usize {
        self.records
    }

    /// Number of stored rows left out because they had expired.
    pub fn expired_records(&self) -> usize {
        self.expired
    }

    /// Store generation the index was built from.
    pub fn generation(&self) -> i64 {
        self.generation
    }

    /// When the earliest indexed record expires (`None`: none does).
    pub fn valid_until(&self) -> Option<DateTime<Utc>> {
        self.valid_until
            .and_then(|secs| DateTime::from_timestamp(secs, 0))
    }

    /// Size of the largest bucket (unexpired records).
    pub fn largest_bucket(&self) -> usize {
        self.buckets.values().map(Vec::len).max().unwrap_or(0)
    }
}
