//! `fedq-node rotate-oprf-key`: moves the node to a fresh OPRF key.
//!
//! Steps, each in short transactions so that a serving node keeps answering
//! (its audit log and nonce table share the store file):
//! 1. draw a pending key into the free key slot (or resume with the pending
//!    key of an interrupted rotation);
//! 2. re-derive the fingerprint of every stored identifier under it, in
//!    batches in key order (imports meanwhile write both slots);
//! 3. switch: the pending key becomes active, the old key is deleted, and the
//!    generation is bumped, so a serving node reloads key and index together.
//!    A lookup whose tags were derived under the old key is refused as stale
//!    and the client asks for fresh tags;
//! 4. erase the old fingerprints and checkpoint the write-ahead log.
//!
//! If an import switches keys under it (another rotation), a batch is
//! re-derived under the keys then current.

use fedq_crypto::oprf::OprfKeyId;
use fedq_crypto::{IdentifierKind, NormalForm};

use crate::store::{Store, StoreError};

/// Distinct identifiers re-derived per transaction.
const BATCH: usize = 20_000;

/// What a rotation did.
#[derive(Debug, Clone)]
pub struct RotationReport {
    /// Id of the key rotated away from.
    pub old_key: OprfKeyId,
    /// Id of the key now in use.
    pub new_key: OprfKeyId,
    /// Distinct identifiers whose fingerprint was re-derived.
    pub rederived: u64,
    /// Stored rows whose old fingerprint was erased.
    pub erased: u64,
}

/// Rotates the store's OPRF key; `progress(done, total)` follows step 2.
pub fn rotate(
    store: &mut Store,
    mut progress: impl FnMut(u64, u64),
) -> Result<RotationReport, StoreError> {
    let keys = store.begin_rotation()?;
    let old_key = keys.active.key_id();
    let pending = keys.pending.as_ref().ok_or(StoreError::KeysChanged)?;
    let new_key = pending.key_id();
    let total = store.value_count()?;
    let mut done = 0;
    progress(done, total);
    // A record that an import wrote under the old keys while this pass went
    // by makes the switch refuse; another pass covers it (rare: imports
    // re-fingerprint under the current keys before they write).
    let old_slot = loop {
        done += derive_pass(store, &keys, pending, &mut |n| progress(n, total.max(n)))?;
        match store.finish_rotation(keys.epoch) {
            Err(StoreError::RotationIncomplete(_)) => continue,
            other => break other?,
        }
    };
    let erased = store.clear_slot(old_slot)?;
    Ok(RotationReport {
        old_key,
        new_key,
        rederived: done,
        erased,
    })
}

/// Re-derives every stored identifier's pending-key fingerprint, in batches
/// in key order; returns how many distinct identifiers it did.
fn derive_pass(
    store: &mut Store,
    keys: &crate::store::OprfKeys,
    pending: &fedq_crypto::oprf::NodeOprfKey,
    progress: &mut impl FnMut(u64),
) -> Result<u64, StoreError> {
    let mut done = 0;
    let mut cursor: Option<(IdentifierKind, NormalForm)> = None;
    loop {
        let batch = store.values_after(cursor.as_ref(), BATCH)?;
        if batch.is_empty() {
            break;
        }
        let items: Vec<(IdentifierKind, &NormalForm)> =
            batch.iter().map(|(kind, normal)| (*kind, normal)).collect();
        let fingerprints = fedq_crypto::oprf::node_fingerprints(pending, &items);
        let rows: Vec<_> = items
            .iter()
            .zip(fingerprints)
            .map(|((kind, normal), fp)| (*kind, *normal, fp))
            .collect();
        store.write_pending(keys.epoch, &rows)?;
        done += batch.len() as u64;
        progress(done);
        cursor = batch.into_iter().last();
    }
    Ok(done)
}
