//! Each entry's own signature, written in the transaction that appends it.
//!
//! The checkpoint is rewritten after an append commits, so a crash between
//! the two used to leave entries that nothing had signed, and `verify` had
//! to accept unsigned entries after the signed head: anyone able to write
//! the database could append a forged tail. Now every entry carries the
//! party's signature over its (seq, hash), committed with it; an entry after
//! the signed head without a valid one is a forgery, never a crash.
//!
//! # Entry signature (format 1)
//!
//! Ed25519 by the party's audit key over `fedq-audit-entry-signature\0`, the
//! format as a big-endian `u32` (1), `seq` as a big-endian `u64`, the hash's
//! byte length as a big-endian `u64` and the hash's hex text; stored as 128
//! lowercase hex digits in the `signature` column. The domain differs from
//! the checkpoint's, so an entry's signature never serves as a checkpoint of
//! a shorter log. Entries written before format 1 have none: the checkpoint
//! covers them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, Weak};

use fedq_crypto::audit_key::AuditPublicKey;
use fedq_db::Location;

use super::checkpoint::AuditKey;
use super::AuditError;

const DOMAIN: &[u8] = b"fedq-audit-entry-signature\0";
const FORMAT: u32 = 1;

fn message(seq: u64, hash: &str) -> Vec<u8> {
    let mut message = DOMAIN.to_vec();
    message.extend_from_slice(&FORMAT.to_be_bytes());
    message.extend_from_slice(&seq.to_be_bytes());
    message.extend_from_slice(&(hash.len() as u64).to_be_bytes());
    message.extend_from_slice(hash.as_bytes());
    message
}

/// The stored signature of entry (`seq`, `hash`).
pub(super) fn sign(key: &AuditKey, seq: u64, hash: &str) -> String {
    hex::encode(key.sign(&message(seq, hash)))
}

/// Whether `signature` (as stored) is `key`'s over entry (`seq`, `hash`).
pub(super) fn is_valid(key: &AuditPublicKey, seq: u64, hash: &str, signature: &str) -> bool {
    let mut bytes = [0u8; 64];
    signature.len() == 128
        && hex::decode_to_slice(signature, &mut bytes).is_ok()
        && key.verifies(&message(seq, hash), &bytes)
}

/// The keys of the logs open in this process, by store (a file's canonical
/// path, or a PostgreSQL connection string).
///
/// The privacy ledger appends its audit entry inside its own connection's
/// transaction ([`super::AuditLog::append_in`]), so the entry is signed
/// there, with the key of a log that [`super::AuditLog::open`] opened on the
/// same store. References are weak: a log that is dropped signs no more, and
/// any other log still open on the store (one key per store) signs instead.
type Signers = HashMap<String, Vec<Weak<AuditKey>>>;

fn signers() -> &'static Mutex<Signers> {
    static SIGNERS: OnceLock<Mutex<Signers>> = OnceLock::new();
    SIGNERS.get_or_init(Mutex::default)
}

fn canonical(store: &Location) -> Result<String, AuditError> {
    match store {
        Location::Sqlite(db) => Ok(std::fs::canonicalize(db)
            .map_err(AuditError::io(db))?
            .display()
            .to_string()),
        Location::Postgres(url) => Ok(url.clone()),
    }
}

/// Makes `key` a signer of appends to `store` in this process. A store
/// already open under another key is refused: one store, one key.
pub(super) fn register(store: &Location, key: &Arc<AuditKey>) -> Result<(), AuditError> {
    let path = canonical(store)?;
    let mut signers = signers().lock().unwrap_or_else(|e| e.into_inner());
    signers.retain(|_, keys| {
        keys.retain(|key| key.strong_count() > 0);
        !keys.is_empty()
    });
    let keys = signers.entry(path).or_default();
    let other = keys
        .iter()
        .filter_map(Weak::upgrade)
        .any(|open| open.verifying_key() != key.verifying_key());
    if other {
        return Err(AuditError::Diverged(
            "this store is already open under another audit key".to_owned(),
        ));
    }
    keys.push(Arc::downgrade(key));
    Ok(())
}

/// The key that signs appends made to `store`: that of a log open on the
/// same store.
pub(super) fn signer_for(store: &Location) -> Result<Arc<AuditKey>, AuditError> {
    let no_log =
        || AuditError::InvalidRecord("no audit log is open on this store in this process to sign");
    let path = canonical(store)?;
    signers()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&path)
        .and_then(|keys| keys.iter().find_map(Weak::upgrade))
        .ok_or_else(no_log)
}
