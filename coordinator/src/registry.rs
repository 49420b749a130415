//! Registered requester public keys, in an SQLite file.
//!
//! A lookup names a key id; the coordinator refuses ids nobody registered and
//! attaches the key to the requests it sends to nodes (which check that it
//! hashes to the id, so a coordinator cannot swap it unnoticed).

use std::path::Path;
use std::sync::Mutex;

use fedq_crypto::lookup::{FhePublicKey, KeyId};
use rusqlite::{params, Connection, OptionalExtension};

/// Errors of the key registry.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// SQLite failed.
    #[error("key registry error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The registry directory cannot be created.
    #[error("cannot create the key registry directory: {0}")]
    Io(#[from] std::io::Error),
}

/// The registry.
pub struct KeyRegistry {
    conn: Mutex<Connection>,
}

impl KeyRegistry {
    /// Opens or creates the registry file.
    pub fn open(path: &Path) -> Result<Self, RegistryError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS public_keys (
                 key_id TEXT PRIMARY KEY,
                 requester TEXT NOT NULL,
                 public_key BLOB NOT NULL,
                 registered_at TEXT NOT NULL
             );",
        )?;
        Ok(Self {
            conn: Mutex::new(conn),
        })
    }

    /// Registers a key for a requester (idempotent).
    pub fn register(&self, requester: &str, key: &FhePublicKey) -> Result<(), RegistryError> {
        let conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        conn.execute(
            "INSERT OR IGNORE INTO public_keys (key_id, requester, public_key, registered_at) VALUES (?1, ?2, ?3, ?4)",
            params![key.id().as_str(), requester, key.to_bytes(), chrono::Utc::now().to_rfc3339()],
        )?;
        Ok(())
    }

    /// The encoded key registered under `id` by `requester`, if any.
    pub fn get(&self, requester: &str, id: &KeyId) -> Result<Option<Vec<u8>>, RegistryError> {
        let conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        Ok(conn
            .query_row(
                "SELECT public_key FROM public_keys WHERE key_id = ?1 AND requester = ?2",
                params![id.as_str(), requester],
                |r| r.get(0),
            )
            .optional()?)
    }
}
