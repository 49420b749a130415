//! The node's OPRF keys in two slots, and rotating them.

use chrono::Utc;
use fedq_crypto::oprf::NodeOprfKey;
use fedq_crypto::{Fingerprint, IdentifierKind, NormalForm};
use fedq_db::{Backend, Exec};

use super::{bump, Store, StoreError};

/// One of the two OPRF key slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// Slot `a` (column `fp_a`).
    A,
    /// Slot `b` (column `fp_b`).
    B,
}

impl Slot {
    fn name(self) -> &'static str {
        match self {
            Slot::A => "a",
            Slot::B => "b",
        }
    }

    fn parse(name: &str) -> Result<Self, StoreError> {
        match name {
            "a" => Ok(Slot::A),
            "b" => Ok(Slot::B),
            _ => Err(StoreError::Corrupt),
        }
    }

    /// The fingerprint column of this slot (a fixed name, safe to splice into SQL).
    pub(super) fn column(self) -> &'static str {
        match self {
            Slot::A => "fp_a",
            Slot::B => "fp_b",
        }
    }

    /// The other slot.
    pub fn other(self) -> Self {
        match self {
            Slot::A => Slot::B,
            Slot::B => Slot::A,
        }
    }
}

/// The node's OPRF keys as of one read: the active key and, during a
/// rotation, the pending one.
#[derive(Debug)]
pub struct OprfKeys {
    /// Slot of the active key.
    pub active_slot: Slot,
    /// The key lookups and OPRF evaluations use.
    pub active: NodeOprfKey,
    /// The key a running rotation is moving to.
    pub pending: Option<NodeOprfKey>,
    /// Bumped by every change of the key set.
    pub epoch: i64,
}

impl OprfKeys {
    /// Per item, in order, its fingerprint under the active key and, during
    /// a rotation, under the pending one.
    pub fn fingerprints(
        &self,
        items: &[(IdentifierKind, &NormalForm)],
    ) -> Vec<(Fingerprint, Option<Fingerprint>)> {
        let active = fedq_crypto::oprf::node_fingerprints(&self.active, items);
        let mut pending = self
            .pending
            .as_ref()
            .map(|key| fedq_crypto::oprf::node_fingerprints(key, items).into_iter());
        active
            .into_iter()
            .map(|fp| (fp, pending.as_mut().and_then(Iterator::next)))
            .collect()
    }
}

impl Store {
    /// The node's OPRF keys, read in one statement.
    pub fn oprf_keys(&self) -> Result<OprfKeys, StoreError> {
        self.db.snapshot(read_keys)
    }

    /// Starts a key rotation: draws a pending key into the free slot, or
    /// returns the keys unchanged when a rotation is already under way (it
    /// resumes with the same pending key).
    pub fn begin_rotation(&mut self) -> Result<OprfKeys, StoreError> {
        self.db.write(|tx| {
            let keys = read_keys(tx)?;
            if keys.pending.is_some() {
                return Ok(keys);
            }
            insert_key(
                tx,
                keys.active_slot.other(),
                &NodeOprfKey::generate(),
                "pending",
            )?;
            bump(tx, "key_epoch")?;
            read_keys(tx)
        })
    }

    /// Writes pending-key fingerprints of (kind, normal form) pairs, for every
    /// record id holding them, in one transaction; refused with
    /// [`StoreError::KeysChanged`] if the key set is no longer `keys_epoch`.
    pub fn write_pending(
        &mut self,
        keys_epoch: i64,
        rows: &[(IdentifierKind, &NormalForm, Fingerprint)],
    ) -> Result<(), StoreError> {
        self.db.write(|tx| {
            let keys = read_keys(tx)?;
            if keys.epoch != keys_epoch || keys.pending.is_none() {
                return Err(StoreError::KeysChanged);
            }
            let update = format!(
                "UPDATE identifiers SET {} = ?3 WHERE kind = ?1 AND value = ?2",
                keys.active_slot.other().column()
            );
            for (kind, normal, fp) in rows {
                tx.execute(&update, &[&kind.code(), &normal.as_str(), &fp.as_bytes()])?;
            }
            Ok(())
        })
    }

    /// Ends a rotation: the pending key becomes the active one and the old key
    /// is deleted, in one transaction that also bumps the generation (serving
    /// nodes reload key and index together). Returns the slot whose column
    /// still holds the old fingerprints, for [`Store::clear_slot`]. Refused if
    /// a record still lacks its pending fingerprint.
    pub fn finish_rotation(&mut self, keys_epoch: i64) -> Result<Slot, StoreError> {
        self.db.write(|tx| {
            let keys = read_keys(tx)?;
            if keys.epoch != keys_epoch || keys.pending.is_none() {
                return Err(StoreError::KeysChanged);
            }
            let (old, new) = (keys.active_slot, keys.active_slot.other());
            let missing: i64 = tx.query_one(
                &format!(
                    "SELECT COUNT(*) FROM identifiers WHERE {} IS NULL",
                    new.column()
                ),
                &[],
                |r| r.get(0),
            )?;
            if missing > 0 {
                return Err(StoreError::RotationIncomplete(missing));
            }
            tx.execute("DELETE FROM oprf_keys WHERE slot = ?1", &[&old.name()])?;
            tx.execute(
                "UPDATE oprf_keys SET state = 'active' WHERE slot = ?1",
                &[&new.name()],
            )?;
            bump(tx, "key_epoch")?;
            bump(tx, "generation")?;
            Ok(old)
        })
    }

    /// Clears the fingerprints of a slot that holds no key (after a rotation),
    /// in batches of short transactions, then (SQLite) checkpoints the
    /// write-ahead log so that the old values leave it too. Returns how many
    /// rows it cleared.
    pub fn clear_slot(&mut self, slot: Slot) -> Result<u64, StoreError> {
        let column = slot.column();
        let mut cleared = 0;
        loop {
            let n = self.db.write(|tx| {
                let in_use = tx
                    .query_opt(
                        "SELECT 1 FROM oprf_keys WHERE slot = ?1",
                        &[&slot.name()],
                        |_| Ok(()),
                    )?
                    .is_some();
                if in_use {
                    return Err(StoreError::KeysChanged);
                }
                Ok(tx.execute(
                    &format!(
                        "UPDATE identifiers SET {column} = NULL WHERE (kind, value, record_id) IN
                         (SELECT kind, value, record_id FROM identifiers WHERE {column} IS NOT NULL LIMIT 20000)"
                    ),
                    &[],
                )?)
            })?;
            cleared += n;
            if n == 0 {
                break;
            }
        }
        // PostgreSQL's old row versions go with its (auto)vacuum.
        if self.db.backend() == Backend::Sqlite {
            self.db
                .run(|exec| exec.query_opt("PRAGMA wal_checkpoint(TRUNCATE)", &[], |_| Ok(())))?;
        }
        Ok(cleared)
    }
}

pub(super) fn insert_key(
    tx: &mut dyn Exec,
    slot: Slot,
    key: &NodeOprfKey,
    state: &str,
) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO oprf_keys (slot, secret, state, created_at) VALUES (?1, ?2, ?3, ?4)",
        &[
            &slot.name(),
            &key.to_text().as_str(),
            &state,
            &Utc::now().timestamp(),
        ],
    )?;
    Ok(())
}

pub(super) fn read_keys(exec: &mut dyn Exec) -> Result<OprfKeys, StoreError> {
    let epoch: i64 =
        exec.query_one("SELECT value FROM meta WHERE key = 'key_epoch'", &[], |r| {
            r.get(0)
        })?;
    let rows = exec.query_all("SELECT slot, secret, state FROM oprf_keys", &[], |row| {
        Ok((
            row.get::<String>(0)?,
            zeroize::Zeroizing::new(row.get::<String>(1)?),
            row.get::<String>(2)?,
        ))
    })?;
    let (mut active, mut pending) = (None, None);
    for (slot, secret, state) in rows {
        let slot = Slot::parse(&slot)?;
        let key = NodeOprfKey::from_text(&secret).map_err(|_| StoreError::Corrupt)?;
        match state.as_str() {
            "active" => active = Some((slot, key)),
            "pending" => pending = Some(key),
            _ => return Err(StoreError::Corrupt),
        }
    }
    let (active_slot, active) = active.ok_or(StoreError::Corrupt)?;
    Ok(OprfKeys {
        active_slot,
        active,
        pending,
        epoch,
    })
}
