//! Bounded, sharded lookup cache.
//!
//! Each shard holds two generations of entries behind one `parking_lot` mutex: new
//! entries go into `hot`; when `hot` reaches half the shard's capacity, `cold` is
//! dropped and `hot` becomes `cold`. A hit in `cold` moves the entry back to `hot`.
//! So a shard never holds more than its capacity, recently used entries survive a
//! rotation, and every operation is O(1) with no per-entry bookkeeping (an approximate
//! LRU). Negative results (`None`) are cached like positive ones.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use apiary_model::GeoInfo;
use parking_lot::Mutex;

/// Most shards used; a power of two.
const MAX_SHARDS: usize = 16;
/// Fewest entries per shard before we use fewer shards.
const MIN_SHARD_CAPACITY: usize = 64;

type Map = HashMap<u128, Option<GeoInfo>, BuildHasherDefault<KeyHasher>>;

pub(crate) struct Cache {
    shards: Box<[Mutex<Shard>]>,
    capacity: usize,
}

struct Shard {
    hot: Map,
    cold: Map,
    half: usize,
    hits: u64,
    misses: u64,
}

/// Counters of a [`Cache`], summed over shards.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Counts {
    pub entries: usize,
    pub hits: u64,
    pub misses: u64,
}

impl Cache {
    /// A cache of at most `capacity` entries; `0` disables caching.
    pub(crate) fn new(capacity: usize) -> Cache {
        let mut shards = MAX_SHARDS;
        while shards > 1 && capacity / shards < MIN_SHARD_CAPACITY {
            shards /= 2;
        }
        let per_shard = capacity / shards;
        // Each generation holds half; a shard of capacity 1 still holds one entry.
        let half = (per_shard / 2).max(usize::from(per_shard > 0));
        let shards = (0..shards)
            .map(|_| {
                Mutex::new(Shard {
                    hot: Map::default(),
                    cold: Map::default(),
                    half,
                    hits: 0,
                    misses: 0,
                })
            })
            .collect();
        Cache {
            shards,
            capacity: if per_shard == 0 { 0 } else { capacity },
        }
    }

    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    fn shard(&self, key: u128) -> &Mutex<Shard> {
        // Shard count is a power of two; the top bits of the mixed hash pick the shard
        // while the map uses the low bits.
        let idx = (mix(key) >> 59) as usize & (self.shards.len() - 1);
        &self.shards[idx]
    }

    /// `Some(result)` when `key` is cached (the result itself may be `None`).
    pub(crate) fn get(&self, key: u128) -> Option<Option<GeoInfo>> {
        if self.capacity == 0 {
            return None;
        }
        let mut shard = self.shard(key).lock();
        if let Some(v) = shard.hot.get(&key) {
            let v = v.clone();
            shard.hits += 1;
            return Some(v);
        }
        if let Some(v) = shard.cold.remove(&key) {
            shard.hits += 1;
            let out = v.clone();
            shard.insert_hot(key, v);
            return Some(out);
        }
        shard.misses += 1;
        None
    }

    pub(crate) fn insert(&self, key: u128, value: Option<GeoInfo>) {
        if self.capacity == 0 {
            return;
        }
        let mut shard = self.shard(key).lock();
        shard.cold.remove(&key);
        shard.insert_hot(key, value);
    }

    pub(crate) fn counts(&self) -> Counts {
        let mut c = Counts::default();
        for s in self.shards.iter() {
            let s = s.lock();
            c.entries += s.hot.len() + s.cold.len();
            c.hits += s.hits;
            c.misses += s.misses;
        }
        c
    }
}

impl Shard {
    fn insert_hot(&mut self, key: u128, value: Option<GeoInfo>) {
        if self.hot.len() >= self.half && !self.hot.contains_key(&key) {
            // Rotate: the old cold generation is dropped, reusing its allocation.
            std::mem::swap(&mut self.hot, &mut self.cold);
            self.hot.clear();
        }
        self.hot.insert(key, value);
    }
}

/// A 64-bit mix of a 128-bit key (SplitMix64 finalizer over the folded halves).
fn mix(key: u128) -> u64 {
    let mut x = (key as u64) ^ ((key >> 64) as u64).rotate_left(29);
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Hasher for `u128` keys; far cheaper than the default SipHash, and the keys are
/// addresses we looked up, not something an attacker can choose in bulk to collide
/// (each key costs the attacker a distinct source address, and a shard's size is bounded).
#[derive(Default)]
pub(crate) struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write_u128(&mut self, key: u128) {
        self.0 = mix(key);
    }
    fn write(&mut self, bytes: &[u8]) {
        // Not used for u128 keys; kept correct for any other input.
        for &b in bytes {
            self.0 = mix(u128::from(self.0 ^ u64::from(b)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(n: u32) -> Option<GeoInfo> {
        Some(GeoInfo {
            asn: Some(n),
            ..GeoInfo::default()
        })
    }

    #[test]
    fn bounded_and_keeps_recent_entries() {
        let cache = Cache::new(1024);
        cache.insert(7, info(7));
        for k in 8..100_000u128 {
            cache.insert(k, info(k as u32));
            // Keep key 7 warm: it must survive every rotation.
            assert_eq!(cache.get(7), Some(info(7)), "after inserting {k}");
        }
        let c = cache.counts();
        assert!(c.entries <= 1024, "{} entries", c.entries);
        assert!(c.entries >= 256, "{} entries", c.entries);
        assert_eq!(cache.get(99_999), Some(info(99_999)));
        assert_eq!(cache.get(0), None);
    }

    #[test]
    fn negative_results_are_cached() {
        let cache = Cache::new(100);
        cache.insert(1, None);
        assert_eq!(cache.get(1), Some(None));
        assert_eq!(cache.get(2), None);
        let c = cache.counts();
        assert_eq!((c.hits, c.misses), (1, 1));
    }

    #[test]
    fn zero_capacity_caches_nothing() {
        let cache = Cache::new(0);
        cache.insert(1, info(1));
        assert_eq!(cache.get(1), None);
        assert_eq!(cache.counts().entries, 0);
        assert_eq!(cache.capacity(), 0);
    }

    #[test]
    fn tiny_capacity_still_holds_an_entry() {
        let cache = Cache::new(1);
        cache.insert(5, info(5));
        assert_eq!(cache.get(5), Some(info(5)));
        cache.insert(6, info(6));
        assert!(cache.counts().entries <= 2);
    }
}
