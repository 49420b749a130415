//! Requesters' prepared expansion keys (compressed lookups), bounded.
//!
//! Least recently used goes first, and a requester holds one entry: its new
//! key replaces its old one. So a requester that registers key after key
//! (ids ground to sort anywhere) pushes out nobody but itself, and the keys
//! of requesters who look up often stay.

use std::collections::HashMap;
use std::sync::Arc;

use fedq_crypto::lookup::{KeyId, PreparedExpansionKey};

struct Entry {
    requester: String,
    key: Arc<PreparedExpansionKey>,
    last_used: u64,
}

/// At most `capacity` prepared keys, by expansion key id.
pub(super) struct ExpansionCache {
    capacity: usize,
    entries: HashMap<KeyId, Entry>,
    clock: u64,
}

impl ExpansionCache {
    pub(super) fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            entries: HashMap::new(),
            clock: 0,
        }
    }

    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    /// The key `id`, if held; marks it as just used.
    pub(super) fn get(&mut self, id: &KeyId) -> Option<Arc<PreparedExpansionKey>> {
        let now = self.tick();
        let entry = self.entries.get_mut(id)?;
        entry.last_used = now;
        Some(Arc::clone(&entry.key))
    }

    /// Holds `key` as `requester`'s, in place of any other key of theirs,
    /// evicting the least recently used entry when full.
    pub(super) fn insert(&mut self, requester: &str, id: &KeyId, key: Arc<PreparedExpansionKey>) {
        let now = self.tick();
        self.entries
            .retain(|held, entry| held == id || entry.requester != requester);
        if !self.entries.contains_key(id) && self.entries.len() >= self.capacity {
            let oldest = self
                .entries
                .iter()
                .min_by_key(|(_, entry)| entry.last_used)
                .map(|(held, _)| held.clone());
            if let Some(oldest) = oldest {
                self.entries.remove(&oldest);
            }
        }
        self.entries.insert(
            id.clone(),
            Entry {
                requester: requester.to_owned(),
                key,
                last_used: now,
            },
        );
    }

    #[cfg(test)]
    fn holds(&self, id: &KeyId) -> bool {
        self.entries.contains_key(id)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::OnceLock;

    use super::*;

    /// One prepared key (its content does not matter to the cache).
    fn key() -> Arc<PreparedExpansionKey> {
        static KEY: OnceLock<Arc<PreparedExpansionKey>> = OnceLock::new();
        Arc::clone(KEY.get_or_init(|| {
            let mut bytes = vec![0u8; fedq_crypto::lookup::ExpansionKey::encoded_len()];
            bytes[0] = 1;
            Arc::new(PreparedExpansionKey::from_bytes(&bytes).expect("shape"))
        }))
    }

    fn id(n: u8) -> KeyId {
        KeyId::parse(&format!("{n:02x}").repeat(16)).expect("id")
    }

    #[test]
    fn the_least_recently_used_goes_and_a_requester_holds_one_entry() {
        let mut cache = ExpansionCache::new(2);
        cache.insert("alice", &id(0x01), key());
        cache.insert("bob", &id(0xfe), key());
        // Alice looks up again: Bob's is now the least recently used.
        assert!(cache.get(&id(0x01)).is_some());
        cache.insert("carol", &id(0x80), key());
        assert!(cache.holds(&id(0x01)) && cache.holds(&id(0x80)));
        assert!(!cache.holds(&id(0xfe)));
        // Mallory registers key after key: each replaces her own.
        for n in 0xa0..0xb0 {
            cache.insert("mallory", &id(n), key());
        }
        assert!(cache.holds(&id(0xaf)));
        assert_eq!(
            (0xa0..0xaf).filter(|&n| cache.holds(&id(n))).count(),
            0,
            "mallory holds one entry"
        );
        // Re-inserting a held key evicts nothing.
        cache.insert("mallory", &id(0xaf), key());
        assert!(cache.holds(&id(0xaf)));
        assert_eq!(cache.entries.len(), 2);
    }
}
