//! A small least-recently-used cache of metadata tables (L2 tables and
//! refcount blocks), keyed by their offset in the image file.
//!
//! The cache only holds tables; writing dirty tables back, and in which order,
//! is the driver's business (see `flush` in mod.rs).

use std::collections::{BTreeMap, HashMap};

struct Slot<T> {
    table: Vec<T>,
    dirty: bool,
    used: u64,
}

pub struct TableCache<T> {
    slots: HashMap<u64, Slot<T>>,
    /// `used` tick -> key, to find the least recently used slot quickly.
    order: BTreeMap<u64, u64>,
    tick: u64,
    capacity: usize,
}

impl<T> TableCache<T> {
    pub fn new(capacity: usize) -> Self {
        TableCache {
            slots: HashMap::new(),
            order: BTreeMap::new(),
            tick: 0,
            capacity: capacity.max(2),
        }
    }

    pub fn is_full(&self) -> bool {
        self.slots.len() >= self.capacity
    }

    pub fn contains(&self, key: u64) -> bool {
        self.slots.contains_key(&key)
    }

    fn touch(&mut self, key: u64) {
        let next = self.tick + 1;
        if let Some(slot) = self.slots.get_mut(&key) {
            if slot.used != self.tick {
                self.order.remove(&slot.used);
                slot.used = next;
                self.order.insert(next, key);
                self.tick = next;
            }
        }
    }

    pub fn get(&mut self, key: u64) -> Option<&[T]> {
        self.touch(key);
        self.slots.get(&key).map(|s| s.table.as_slice())
    }

    /// The table, marked dirty.
    pub fn get_mut(&mut self, key: u64) -> Option<&mut [T]> {
        self.touch(key);
        self.slots.get_mut(&key).map(|s| {
            s.dirty = true;
            s.table.as_mut_slice()
        })
    }

    /// Inserts a table; the caller has made room with [`Self::victim`] first.
    pub fn insert(&mut self, key: u64, table: Vec<T>, dirty: bool) {
        self.remove(key);
        self.tick += 1;
        self.order.insert(self.tick, key);
        self.slots.insert(
            key,
            Slot {
                table,
                dirty,
                used: self.tick,
            },
        );
    }

    pub fn remove(&mut self, key: u64) -> Option<(Vec<T>, bool)> {
        let slot = self.slots.remove(&key)?;
        self.order.remove(&slot.used);
        Some((slot.table, slot.dirty))
    }

    /// The least recently used key and whether its table is dirty.
    pub fn victim(&self) -> Option<(u64, bool)> {
        let (_, &key) = self.order.iter().next()?;
        self.slots.get(&key).map(|s| (key, s.dirty))
    }

    /// Keys of dirty tables, in file order.
    pub fn dirty_keys(&self) -> Vec<u64> {
        let mut keys: Vec<u64> = self
            .slots
            .iter()
            .filter(|(_, s)| s.dirty)
            .map(|(&k, _)| k)
            .collect();
        keys.sort_unstable();
        keys
    }

    pub fn peek(&self, key: u64) -> Option<&[T]> {
        self.slots.get(&key).map(|s| s.table.as_slice())
    }

    pub fn mark_clean(&mut self, key: u64) {
        if let Some(s) = self.slots.get_mut(&key) {
            s.dirty = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_least_recently_used() {
        let mut c: TableCache<u8> = TableCache::new(2);
        c.insert(1, vec![1], false);
        c.insert(2, vec![2], true);
        assert!(c.get(1).is_some());
        assert_eq!(c.victim(), Some((2, true)));
        c.remove(2);
        c.insert(3, vec![3], false);
        assert_eq!(c.victim(), Some((1, false)));
        assert_eq!(c.dirty_keys(), Vec::<u64>::new());
        c.get_mut(3);
        assert_eq!(c.dirty_keys(), vec![3]);
    }
}
