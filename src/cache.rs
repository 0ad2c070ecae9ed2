//! A small bounded map for values that are costly to compute and asked for
//! again and again with the same key (parsed GraphQL documents, device
//! labels). Clients choose the keys, so the map never grows past its bound:
//! once full, an arbitrary entry makes room for the new one, and an
//! oversized key is computed but not kept.

use std::{
    collections::HashMap,
    sync::{Mutex, PoisonError},
};

pub struct BoundedMap<V> {
    max_entries: usize,
    max_key_len: usize,
    map: Mutex<HashMap<String, V>>,
}

impl<V: Clone> BoundedMap<V> {
    pub fn new(max_entries: usize, max_key_len: usize) -> Self {
        Self {
            max_entries,
            max_key_len,
            map: Mutex::new(HashMap::new()),
        }
    }

    /// The value kept for `key`, or `make()`'s, kept for next time. `make`
    /// runs outside the lock.
    pub fn get_or_insert_with(&self, key: &str, make: impl FnOnce() -> V) -> V {
        if let Some(value) = self.lock().get(key) {
            return value.clone();
        }
        let value = make();
        if key.len() <= self.max_key_len {
            let mut map = self.lock();
            if map.len() >= self.max_entries
                && let Some(evicted) = map.keys().next().cloned()
            {
                map.remove(&evicted);
            }
            map.insert(key.to_owned(), value.clone());
        }
        value
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, V>> {
        // A panic elsewhere cannot leave a half-written entry behind.
        self.map.lock().unwrap_or_else(PoisonError::into_inner)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_computed_once_per_key() {
        let map = BoundedMap::new(8, 16);
        let mut calls = 0;
        for _ in 0..3 {
            let v = map.get_or_insert_with("a", || {
                calls += 1;
                1
            });
            assert_eq!(v, 1);
        }
        assert_eq!(calls, 1);
    }

    #[test]
    fn the_map_stays_within_its_bounds() {
        let map = BoundedMap::new(4, 16);
        for i in 0..100 {
            assert_eq!(map.get_or_insert_with(&format!("key{i}"), || i), i);
            assert!(map.len() <= 4);
        }
        let long = "x".repeat(17);
        let mut calls = 0;
        for _ in 0..2 {
            map.get_or_insert_with(&long, || {
                calls += 1;
                0
            });
        }
        assert_eq!(calls, 2, "an oversized key is not kept");
    }
}
