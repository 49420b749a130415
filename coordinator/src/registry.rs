//! Registered requester public keys, in the coordinator's store (an SQLite
//! file or a PostgreSQL database), each with the requester's expansion key
//! for compressed lookups when it registered one.
//!
//! A lookup names a key id; the coordinator refuses ids nobody registered and
//! attaches the key to the requests it sends to nodes (which check that it
//! hashes to the id, so a coordinator cannot swap it unnoticed).
//!
//! Registrations expire: a key registered longer ago than the maximum age
//! (`key_max_age_days`) counts as unregistered until registered again, which
//! refreshes its registration time (`fedq keys init`, or `--force` for a new key).

use std::time::Duration;

use chrono::{DateTime, Utc};
use fedq_crypto::lookup::{FhePublicKey, KeyId};
use fedq_db::{Db, DbError, Location, Schema};

/// Default maximum age of a key registration in days: requesters re-register
/// (or rotate) their lookup key about once a quarter.
pub const DEFAULT_KEY_MAX_AGE_DAYS: i64 = 90;

/// Errors of the key registry.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// The store failed, or cannot be opened.
    #[error("key registry error: {0}")]
    Db(#[from] DbError),
    /// The registry directory cannot be created.
    #[error("cannot create the key registry directory: {0}")]
    Io(#[from] std::io::Error),
}

/// What the registry knows of a requester's key id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyStatus {
    /// Registered and not expired: the encoded key.
    Registered(Vec<u8>),
    /// Registered, but longer ago than the maximum age (or at an unreadable time).
    Expired {
        /// When it was last registered, if readable.
        registered_at: Option<DateTime<Utc>>,
    },
    /// Never registered by this requester.
    Unknown,
}

/// The registry.
pub struct KeyRegistry {
    db: Db,
    max_age: Duration,
}

/// The registry's one table: requesters' lookup public keys, by key id.
const SCHEMA: Schema = Schema {
    sqlite: "CREATE TABLE IF NOT EXISTS public_keys (
        key_id TEXT PRIMARY KEY,
        requester TEXT NOT NULL,
        public_key BLOB NOT NULL,
        registered_at TEXT NOT NULL
    );
    CREATE TABLE IF NOT EXISTS expansion_keys (
        key_id TEXT PRIMARY KEY,
        expansion_key_id TEXT NOT NULL,
        expansion_key BLOB NOT NULL
    );",
    postgres: "CREATE TABLE IF NOT EXISTS public_keys (
        key_id TEXT PRIMARY KEY,
        requester TEXT NOT NULL,
        public_key BYTEA NOT NULL,
        registered_at TEXT NOT NULL
    );
    CREATE TABLE IF NOT EXISTS expansion_keys (
        key_id TEXT PRIMARY KEY,
        expansion_key_id TEXT NOT NULL,
        expansion_key BYTEA NOT NULL
    );",
};

impl KeyRegistry {
    /// Opens or creates the registry in the coordinator's store;
    /// registrations expire after [`DEFAULT_KEY_MAX_AGE_DAYS`] unless
    /// [`KeyRegistry::with_max_age`] says otherwise.
    pub fn open(store: &Location) -> Result<Self, RegistryError> {
        Ok(Self {
            db: Db::open_with_schema(store, &SCHEMA)?,
            max_age: Duration::from_secs(DEFAULT_KEY_MAX_AGE_DAYS as u64 * 86_400),
        })
    }

    /// Sets how long a registration stays valid (`key_max_age_days`).
    pub fn with_max_age(mut self, max_age: Duration) -> Self {
        self.max_age = max_age;
        self
    }

    /// Registers a key for a requester (idempotent); registering it again
    /// refreshes its registration time.
    pub fn register(&self, requester: &str, key: &FhePublicKey) -> Result<(), RegistryError> {
        self.register_at(requester, key.id(), key.to_bytes(), Utc::now())
    }

    fn register_at(
        &self,
        requester: &str,
        id: &KeyId,
        encoded: &[u8],
        now: DateTime<Utc>,
    ) -> Result<(), RegistryError> {
        // Another requester cannot take over (or refresh) someone's key id.
        self.db.run(|exec| {
            exec.execute(
                "INSERT INTO public_keys (key_id, requester, public_key, registered_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (key_id) DO UPDATE SET registered_at = excluded.registered_at
                 WHERE public_keys.requester = excluded.requester",
                &[&id.as_str(), &requester, &encoded, &now.to_rfc3339()],
            )
        })?;
        Ok(())
    }

    /// Stores the expansion key registered with `requester`'s public key
    /// `id` (which [`Self::register`] stored first), replacing any earlier
    /// one. Nothing is stored for a key id that another requester owns.
    ///
    /// A requester keeps one expansion key: those of its other public keys
    /// are deleted. `fedq keys init` replaces the key pair and the expansion
    /// key together, so an older key's expansion key serves nobody, and
    /// keeping it would let one requester fill the store 3.4 MB at a time
    /// by registering key after key. Any requester's expansion key whose
    /// registration has expired goes too: no lookup can name it until its
    /// requester registers again, which sends the key again.
    pub fn register_expansion(
        &self,
        requester: &str,
        id: &KeyId,
        expansion: (&KeyId, &[u8]),
    ) -> Result<(), RegistryError> {
        self.register_expansion_at(requester, id, expansion, Utc::now())
    }

    fn register_expansion_at(
        &self,
        requester: &str,
        id: &KeyId,
        (expansion_id, encoded): (&KeyId, &[u8]),
        now: DateTime<Utc>,
    ) -> Result<(), RegistryError> {
        if !matches!(
            self.status_at(requester, id, now)?,
            KeyStatus::Registered(_)
        ) {
            return Ok(());
        }
        self.db.run(|exec| {
            let registrations: Vec<(String, String)> = exec.query_all(
                "SELECT p.key_id, p.registered_at FROM public_keys p
                 JOIN expansion_keys e ON e.key_id = p.key_id",
                &[],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            for (expired, _) in registrations
                .iter()
                .filter(|(_, at)| !self.current(at, now).1)
            {
                exec.execute(
                    "DELETE FROM expansion_keys WHERE key_id = ?1",
                    &[&expired.as_str()],
                )?;
            }
            exec.execute(
                "DELETE FROM expansion_keys WHERE key_id <> ?1 AND key_id IN
                 (SELECT key_id FROM public_keys WHERE requester = ?2)",
                &[&id.as_str(), &requester],
            )?;
            exec.execute(
                "INSERT INTO expansion_keys (key_id, expansion_key_id, expansion_key) VALUES (?1, ?2, ?3)
                 ON CONFLICT (key_id) DO UPDATE SET expansion_key_id = excluded.expansion_key_id,
                 expansion_key = excluded.expansion_key",
                &[&id.as_str(), &expansion_id.as_str(), &encoded],
            )
        })?;
        Ok(())
    }

    /// The expansion key `expansion_id` that `requester` registered with its
    /// public key `id`, if any.
    pub fn expansion_key(
        &self,
        requester: &str,
        id: &KeyId,
        expansion_id: &KeyId,
    ) -> Result<Option<Vec<u8>>, RegistryError> {
        Ok(self.db.run(|exec| {
            exec.query_opt(
                "SELECT e.expansion_key FROM expansion_keys e JOIN public_keys p ON p.key_id = e.key_id
                 WHERE e.key_id = ?1 AND p.requester = ?2 AND e.expansion_key_id = ?3",
                &[&id.as_str(), &requester, &expansion_id.as_str()],
                |r| r.get(0),
            )
        })?)
    }

    /// Whether `requester` registered the expansion key `expansion_id` with
    /// its public key `id`.
    pub fn has_expansion_key(
        &self,
        requester: &str,
        id: &KeyId,
        expansion_id: &KeyId,
    ) -> Result<bool, RegistryError> {
        let found: Option<String> = self.db.run(|exec| {
            exec.query_opt(
                "SELECT e.expansion_key_id FROM expansion_keys e JOIN public_keys p ON p.key_id = e.key_id
                 WHERE e.key_id = ?1 AND p.requester = ?2 AND e.expansion_key_id = ?3",
                &[&id.as_str(), &requester, &expansion_id.as_str()],
                |r| r.get(0),
            )
        })?;
        Ok(found.is_some())
    }

    /// The encoded key registered under `id` by `requester`, if any and not expired.
    pub fn get(&self, requester: &str, id: &KeyId) -> Result<Option<Vec<u8>>, RegistryError> {
        Ok(match self.status(requester, id)? {
            KeyStatus::Registered(key) => Some(key),
            KeyStatus::Expired { .. } | KeyStatus::Unknown => None,
        })
    }

    /// Whether `requester` registered `id`, and whether that has expired.
    pub fn status(&self, requester: &str, id: &KeyId) -> Result<KeyStatus, RegistryError> {
        self.status_at(requester, id, Utc::now())
    }

    fn status_at(
        &self,
        requester: &str,
        id: &KeyId,
        now: DateTime<Utc>,
    ) -> Result<KeyStatus, RegistryError> {
        let row: Option<(Vec<u8>, String)> = self.db.run(|exec| {
            exec.query_opt(
                "SELECT public_key, registered_at FROM public_keys WHERE key_id = ?1 AND requester = ?2",
                &[&id.as_str(), &requester],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
        })?;
        let Some((key, registered_at)) = row else {
            return Ok(KeyStatus::Unknown);
        };
        Ok(match self.current(&registered_at, now) {
            (_, true) => KeyStatus::Registered(key),
            (registered_at, false) => KeyStatus::Expired { registered_at },
        })
    }

    /// A stored registration time, if readable, and whether it is within
    /// the maximum age at `now`. An unreadable time counts as expired:
    /// registering again fixes it.
    fn current(&self, registered_at: &str, now: DateTime<Utc>) -> (Option<DateTime<Utc>>, bool) {
        let registered_at = DateTime::parse_from_rfc3339(registered_at)
            .ok()
            .map(|t| t.with_timezone(&Utc));
        let max_age = chrono::Duration::from_std(self.max_age).unwrap_or(chrono::Duration::MAX);
        let current = registered_at.is_some_and(|at| now.signed_duration_since(at) < max_age);
        (registered_at, current)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALICE: &str = "alice";

    fn days(n: i64) -> chrono::Duration {
        chrono::Duration::days(n)
    }

    fn registry(dir: &tempfile::TempDir) -> anyhow::Result<KeyRegistry> {
        Ok(
            KeyRegistry::open(&Location::Sqlite(dir.path().join("keys.db")))?
                .with_max_age(Duration::from_secs(30 * 86_400)),
        )
    }

    fn key_id() -> anyhow::Result<KeyId> {
        Ok(KeyId::parse("00112233445566778899aabbccddeeff")?)
    }

    #[test]
    fn a_registration_expires_after_the_max_age_and_registering_again_refreshes_it(
    ) -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let registry = registry(&dir)?;
        let id = key_id()?;
        let t0 = Utc::now() - days(100);
        registry.register_at(ALICE, &id, b"key", t0)?;

        let fresh = registry.status_at(ALICE, &id, t0 + days(29))?;
        assert_eq!(fresh, KeyStatus::Registered(b"key".to_vec()));
        let stale = registry.status_at(ALICE, &id, t0 + days(30))?;
        assert!(
            matches!(stale, KeyStatus::Expired { registered_at: Some(at) } if at.timestamp() == t0.timestamp())
        );
        // `get` (the lookup path) treats the expired key as unregistered.
        assert_eq!(registry.get(ALICE, &id)?, None);

        registry.register_at(ALICE, &id, b"key", Utc::now())?;
        assert_eq!(registry.get(ALICE, &id)?, Some(b"key".to_vec()));
        Ok(())
    }

    #[test]
    fn an_expansion_key_is_found_only_by_its_owner_and_id() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let registry = registry(&dir)?;
        let id = key_id()?;
        let expansion = KeyId::parse("ffeeddccbbaa99887766554433221100")?;
        let other = KeyId::parse("0123456789abcdef0123456789abcdef")?;
        registry.register_at(ALICE, &id, b"key", Utc::now())?;
        registry.register_expansion(ALICE, &id, (&expansion, b"expansion"))?;
        assert_eq!(
            registry.expansion_key(ALICE, &id, &expansion)?,
            Some(b"expansion".to_vec())
        );
        assert_eq!(registry.expansion_key(ALICE, &id, &other)?, None);
        assert_eq!(registry.expansion_key("mallory", &id, &expansion)?, None);
        assert!(registry.has_expansion_key(ALICE, &id, &expansion)?);
        assert!(!registry.has_expansion_key("mallory", &id, &expansion)?);
        assert!(!registry.has_expansion_key(ALICE, &id, &other)?);
        // Another requester cannot replace it either.
        registry.register_expansion("mallory", &id, (&other, b"forged"))?;
        assert_eq!(registry.expansion_key(ALICE, &id, &other)?, None);
        // Its owner can.
        registry.register_expansion(ALICE, &id, (&other, b"new"))?;
        assert_eq!(
            registry.expansion_key(ALICE, &id, &other)?,
            Some(b"new".to_vec())
        );
        assert_eq!(registry.expansion_key(ALICE, &id, &expansion)?, None);
        Ok(())
    }

    #[test]
    fn an_expired_registrations_expansion_key_is_deleted() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let registry = registry(&dir)?;
        let (alices, bobs) = (key_id()?, KeyId::parse("0123456789abcdef0123456789abcdef")?);
        let expansion = KeyId::parse("00000000000000000000000000000001")?;
        let t0 = Utc::now();
        registry.register_at(ALICE, &alices, b"key", t0)?;
        registry.register_expansion_at(ALICE, &alices, (&expansion, b"alice's"), t0)?;
        // Within alice's 30 days, bob's registration leaves hers alone.
        registry.register_at("bob", &bobs, b"key", t0 + days(29))?;
        registry.register_expansion_at("bob", &bobs, (&expansion, b"bob's"), t0 + days(29))?;
        assert!(registry.has_expansion_key(ALICE, &alices, &expansion)?);
        // Past them, it deletes her expansion key, not her public key's row.
        let later = t0 + days(31);
        registry.register_at("bob", &bobs, b"key", later)?;
        registry.register_expansion_at("bob", &bobs, (&expansion, b"bob's"), later)?;
        assert!(!registry.has_expansion_key(ALICE, &alices, &expansion)?);
        assert!(registry.has_expansion_key("bob", &bobs, &expansion)?);
        assert!(matches!(
            registry.status_at(ALICE, &alices, later)?,
            KeyStatus::Expired { .. }
        ));
        Ok(())
    }

    #[test]
    fn a_requester_keeps_one_expansion_key() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let registry = registry(&dir)?;
        let (first, second) = (key_id()?, KeyId::parse("ffeeddccbbaa99887766554433221100")?);
        let theirs = KeyId::parse("0123456789abcdef0123456789abcdef")?;
        let expansion = KeyId::parse("00000000000000000000000000000001")?;
        registry.register_at(ALICE, &first, b"key", Utc::now())?;
        registry.register_expansion(ALICE, &first, (&expansion, b"first"))?;
        registry.register_at("bob", &theirs, b"key", Utc::now())?;
        registry.register_expansion("bob", &theirs, (&expansion, b"bob's"))?;
        // Alice's next key pair: her first expansion key goes, bob's stays.
        registry.register_at(ALICE, &second, b"key", Utc::now())?;
        registry.register_expansion(ALICE, &second, (&expansion, b"second"))?;
        assert!(!registry.has_expansion_key(ALICE, &first, &expansion)?);
        assert!(registry.has_expansion_key(ALICE, &second, &expansion)?);
        assert!(registry.has_expansion_key("bob", &theirs, &expansion)?);
        let rows: i64 = registry
            .db
            .run(|exec| exec.query_one("SELECT COUNT(*) FROM expansion_keys", &[], |r| r.get(0)))?;
        assert_eq!(rows, 2);
        Ok(())
    }

    #[test]
    fn another_requester_can_neither_use_nor_refresh_a_key() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let registry = registry(&dir)?;
        let id = key_id()?;
        let t0 = Utc::now() - days(100);
        registry.register_at(ALICE, &id, b"key", t0)?;
        registry.register_at("mallory", &id, b"key", Utc::now())?;
        assert_eq!(registry.status("mallory", &id)?, KeyStatus::Unknown);
        assert!(matches!(
            registry.status(ALICE, &id)?,
            KeyStatus::Expired { .. }
        ));
        Ok(())
    }

    #[test]
    fn the_default_max_age_applies_without_configuration() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let registry = KeyRegistry::open(&Location::Sqlite(dir.path().join("keys.db")))?;
        let id = key_id()?;
        let now = Utc::now();
        registry.register_at(ALICE, &id, b"key", now - days(DEFAULT_KEY_MAX_AGE_DAYS - 1))?;
        assert!(registry.get(ALICE, &id)?.is_some());
        registry.register_at(ALICE, &id, b"key", now - days(DEFAULT_KEY_MAX_AGE_DAYS + 1))?;
        assert_eq!(registry.get(ALICE, &id)?, None);
        Ok(())
    }
}
