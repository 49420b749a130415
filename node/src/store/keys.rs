//! The node's OPRF keys in two slots, and rotating them.

use chrono::Utc;
use fedq_crypto::oprf::NodeOprfKey;
use fedq_crypto::{Fingerprint, IdentifierKind, NormalForm};
use rusqlite::{params, Connection};

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
        read_keys(&self.conn)
    }

    /// Starts a key rotation: draws a pending key into the free slot, or
    /// returns the keys unchanged when a rotation is already under way (it
    /// resumes with the same pending key).
    pub fn begin_rotation(&mut self) -> Result<OprfKeys, StoreError> {
        let tx =
            rusqlite::Transaction::new(&mut self.conn, rusqlite::TransactionBehavior::Immediate)?;
        let keys = read_keys(&tx)?;
        if keys.pending.is_some() {
            return Ok(keys);
        }
        insert_key(
            &tx,
            keys.active_slot.other(),
            &NodeOprfKey::generate(),
            "pending",
        )?;
        bump(&tx, "key_epoch")?;
        let keys = read_keys(&tx)?;
        tx.commit()?;
        Ok(keys)
    }

    /// Writes pending-key fingerprints of (kind, normal form) pairs, for every
    /// record id holding them, in one transaction; refused with
    /// [`StoreError::KeysChanged`] if the key set is no longer `keys_epoch`.
    pub fn write_pending(
        &mut self,
        keys_epoch: i64,
        rows: &[(IdentifierKind, &NormalForm, Fingerprint)],
    ) -> Result<(), StoreError> {
        let tx =
            rusqlite::Transaction::new(&mut self.conn, rusqlite::TransactionBehavior::Immediate)?;
        let keys = read_keys(&tx)?;
        if keys.epoch != keys_epoch || keys.pending.is_none() {
            return Err(StoreError::KeysChanged);
        }
        {
            let mut update = tx.prepare_cached(&format!(
                "UPDATE identifiers SET {} = ?3 WHERE kind = ?1 AND value = ?2",
                keys.active_slot.other().column()
            ))?;
            for (kind, normal, fp) in rows {
                update.execute(params![kind.code(), normal.as_str(), &fp.as_bytes()[..]])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Ends a rotation: the pending key becomes the active one and the old key
    /// is deleted, in one transaction that also bumps the generation (serving
    /// nodes reload key and index together). Returns the slot whose column
    /// still holds the old fingerprints, for [`Store::clear_slot`]. Refused if
    /// a record still lacks its pending fingerprint.
    pub fn finish_rotation(&mut self, keys_epoch: i64) -> Result<Slot, StoreError> {
        let tx =
            rusqlite::Transaction::new(&mut self.conn, rusqlite::TransactionBehavior::Immediate)?;
        let keys = read_keys(&tx)?;
        if keys.epoch != keys_epoch || keys.pending.is_none() {
            return Err(StoreError::KeysChanged);
        }
        let (old, new) = (keys.active_slot, keys.active_slot.other());
        let missing: i64 = tx.query_row(
            &format!(
                "SELECT COUNT(*) FROM identifiers WHERE {} IS NULL",
                new.column()
            ),
            [],
            |r| r.get(0),
        )?;
        if missing > 0 {
            return Err(StoreError::RotationIncomplete(missing));
        }
        tx.execute("DELETE FROM oprf_keys WHERE slot = ?1", params![old.name()])?;
        tx.execute(
            "UPDATE oprf_keys SET state = 'active' WHERE slot = ?1",
            params![new.name()],
        )?;
        bump(&tx, "key_epoch")?;
        bump(&tx, "generation")?;
        tx.commit()?;
        Ok(old)
    }

    /// Clears the fingerprints of a slot that holds no key (after a rotation),
    /// in batches of short transactions, then checkpoints the write-ahead log
    /// so that the old values leave it too. Returns how many rows it cleared.
    pub fn clear_slot(&mut self, slot: Slot) -> Result<u64, StoreError> {
        let column = slot.column();
        let mut cleared = 0;
        loop {
            let tx = rusqlite::Transaction::new(
                &mut self.conn,
                rusqlite::TransactionBehavior::Immediate,
            )?;
            let in_use: bool = tx.query_row(
                "SELECT EXISTS (SELECT 1 FROM oprf_keys WHERE slot = ?1)",
                params![slot.name()],
                |r| r.get(0),
            )?;
            if in_use {
                return Err(StoreError::KeysChanged);
            }
            let n = tx.execute(
                &format!(
                    "UPDATE identifiers SET {column} = NULL WHERE (kind, value, record_id) IN
                     (SELECT kind, value, record_id FROM identifiers WHERE {column} IS NOT NULL LIMIT 20000)"
                ),
                [],
            )?;
            tx.commit()?;
            cleared += n as u64;
            if n == 0 {
                break;
            }
        }
        self.conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        Ok(cleared)
    }
}

pub(super) fn insert_key(
    conn: &Connection,
    slot: Slot,
    key: &NodeOprfKey,
    state: &str,
) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO oprf_keys (slot, secret, state, created_at) VALUES (?1, ?2, ?3, ?4)",
        params![
            slot.name(),
            key.to_text().as_str(),
            state,
            Utc::now().timestamp()
        ],
    )?;
    Ok(())
}

pub(super) fn read_keys(conn: &Connection) -> Result<OprfKeys, StoreError> {
    let epoch: i64 = conn.query_row("SELECT value FROM meta WHERE key = 'key_epoch'", [], |r| {
        r.get(0)
    })?;
    let mut stmt = conn.prepare_cached("SELECT slot, secret, state FROM oprf_keys")?;
    let mut rows = stmt.query([])?;
    let (mut active, mut pending) = (None, None);
    while let Some(row) = rows.next()? {
        let slot = Slot::parse(&row.get::<_, String>(0)?)?;
        let secret = zeroize::Zeroizing::new(row.get::<_, String>(1)?);
        let key = NodeOprfKey::from_text(&secret).map_err(|_| StoreError::Corrupt)?;
        match row.get::<_, String>(2)?.as_str() {
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
