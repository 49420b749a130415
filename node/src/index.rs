//! In-memory lookup index: per (kind, bucket), the candidates' tags.
//!
//! Built from the store at start-up and rebuilt when the store's generation
//! changes (after an import), so a serving node picks up new data by itself.

use std::collections::HashMap;

use fedq_crypto::{Bucket, FingerprintParams, IdentifierKind};

use crate::store::{Store, StoreError};

/// Padded bucket sizes are rounded up to this, so that adding a few records
/// does not change the evaluation's shape.
const PAD_GRANULE: usize = 32;

/// Candidate tags per (kind, bucket).
#[derive(Debug, Default)]
pub struct LookupIndex {
    buckets: HashMap<(IdentifierKind, u32), Vec<u64>>,
    padded: usize,
    records: usize,
    generation: i64,
}

impl LookupIndex {
    /// Builds the index from the store.
    pub fn load(
        store: &Store,
        params: FingerprintParams,
        min_padding: usize,
    ) -> Result<Self, StoreError> {
        let generation = store.generation()?;
        let mut buckets: HashMap<(IdentifierKind, u32), Vec<u64>> = HashMap::new();
        let mut records = 0;
        store.for_each_fingerprint(|kind, fp| {
            buckets
                .entry((kind, fp.bucket(params).0))
                .or_default()
                .push(fp.tag(params).0);
            records += 1;
        })?;
        let mut largest = 0;
        for tags in buckets.values_mut() {
            tags.sort_unstable();
            tags.dedup();
            largest = largest.max(tags.len());
        }
        let padded = min_padding.max(largest.div_ceil(PAD_GRANULE) * PAD_GRANULE);
        Ok(Self {
            buckets,
            padded,
            records,
            generation,
        })
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

    /// Number of identifier rows indexed.
    pub fn records(&self) -> usize {
        self.records
    }

    /// Store generation the index was built from.
    pub fn generation(&self) -> i64 {
        self.generation
    }

    /// Size of the largest bucket.
    pub fn largest_bucket(&self) -> usize {
        self.buckets.values().map(Vec::len).max().unwrap_or(0)
    }
}
