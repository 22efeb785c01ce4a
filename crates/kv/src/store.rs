//! The typed key space of one replica (or of one shard of a sharded group).
//!
//! Owns: the ordered map of keys to [`Item`]s (a typed value, an optional
//! expiry instant in log time, and a version) and the index of expiry
//! instants. Knows nothing of sessions or log entries: the meaning of each
//! [`crate::Op`] lives in `ops`, which calls the accessors here.
//!
//! # Expiry, decided by the log
//!
//! An item with `expire_at_ms = Some(t)` is *dead* at every log time
//! `now >= t`: [`Store::live`] does not return it, so no command and no read
//! ever sees it, whether or not it has been removed yet. Log time is the
//! largest leader timestamp applied (see `state_machine`), so every replica
//! judges the same entry against the same `now` and agrees on which keys
//! are dead. Memory is reclaimed by [`Store::purge_expired`], which the
//! state machine runs on every applied entry (a leader proposes a tick
//! when idle), bounded per entry.
//!
//! # Versions (for `WATCH`)
//!
//! Every write of a key sets its version to the log index of the entry that
//! wrote it, so a version is unique per (key, write) and "the version changed"
//! means exactly "some entry wrote the key". A missing or dead key has version
//! 0.
//!
//! # Hash order (for `SCAN`)
//!
//! Every key is also indexed by [`key_hash`] (64-bit FNV-1a of its bytes: a
//! function of the key alone, the same on every replica and in every
//! release), so `SCAN` can walk the keys in a fixed order that insertions
//! and deletions of *other* keys do not shift (see `ops::keyspace`).
//!
//! Invariants (checked by [`Store::validate`]):
//! - `expiries` holds exactly `(t, key)` for every item with `Some(t)`;
//! - `by_hash` holds exactly `(key_hash(key), key)` for every key;
//! - every key is at most [`MAX_KEY_BYTES`], every string at most
//!   [`MAX_VALUE_BYTES`];
//! - iteration is in key order (`BTreeMap`), so equal stores encode to equal
//!   snapshots.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::config::{MAX_KEY_BYTES, MAX_VALUE_BYTES};

/// A value of one of the Redis types raftkv keeps.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Value {
    Str(Bytes),
    /// Field -> value, in field order.
    Hash(BTreeMap<Bytes, Bytes>),
}

/// One key's value with its expiry and version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    pub value: Value,
    /// Log time (Unix ms) at which the key dies; `None`: never.
    pub expire_at_ms: Option<u64>,
    /// Log index of the entry that last wrote the key (0: restored from a
    /// snapshot format without versions).
    pub version: u64,
}

impl Item {
    pub fn is_live(&self, now_ms: u64) -> bool {
        self.expire_at_ms.is_none_or(|t| now_ms < t)
    }
}

/// The keys of a replica or a shard. Serialises as its map of items only;
/// the expiry index is rebuilt on the way in.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Store {
    // Invariant: keys and string values within the limits.
    data: BTreeMap<Bytes, Item>,
    // Invariant: exactly {(t, k) | data[k].expire_at_ms == Some(t)}.
    expiries: BTreeSet<(u64, Bytes)>,
    // Invariant: exactly {(key_hash(k), k) | k in data}.
    by_hash: BTreeSet<(u64, Bytes)>,
}

/// The fixed hash that orders `SCAN` (FNV-1a, 64 bits).
pub fn key_hash(key: &[u8]) -> u64 {
    key.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

impl Store {
    pub fn new() -> Self {
        Store::default()
    }

    /// Builds a store from items (snapshot decoding); the caller validates.
    pub fn from_items(data: BTreeMap<Bytes, Item>) -> Self {
        let expiries = data
            .iter()
            .filter_map(|(k, i)| i.expire_at_ms.map(|t| (t, k.clone())))
            .collect();
        let by_hash = data.keys().map(|k| (key_hash(k), k.clone())).collect();
        Store {
            data,
            expiries,
            by_hash,
        }
    }

    /// The item of `key` if it exists and is not dead at `now_ms`.
    pub fn live(&self, key: &[u8], now_ms: u64) -> Option<&Item> {
        self.data.get(key).filter(|i| i.is_live(now_ms))
    }

    /// The live string value of `key` (`None` when missing, dead or not a string).
    pub fn live_str(&self, key: &[u8], now_ms: u64) -> Option<&Bytes> {
        match self.live(key, now_ms) {
            Some(Item {
                value: Value::Str(s),
                ..
            }) => Some(s),
            _ => None,
        }
    }

    /// Live string values in key order (dead keys and other types skipped).
    pub fn live_strings(&self, now_ms: u64) -> impl Iterator<Item = (&Bytes, &Bytes)> {
        self.data
            .iter()
            .filter_map(move |(k, item)| match &item.value {
                Value::Str(s) if item.is_live(now_ms) => Some((k, s)),
                _ => None,
            })
    }

    /// A store of plain strings (no expiry) at `version`: for tests and for
    /// formats that knew only strings (there, the applied index: every key
    /// was last written at or before it, and every later write is after).
    pub fn from_strings(pairs: impl IntoIterator<Item = (Bytes, Bytes)>, version: u64) -> Self {
        let items = pairs.into_iter().map(|(k, v)| {
            let item = Item {
                value: Value::Str(v),
                expire_at_ms: None,
                version,
            };
            (k, item)
        });
        Store::from_items(items.collect())
    }

    /// Stores `item` under `key`, replacing what was there (dead or alive).
    pub fn put(&mut self, key: Bytes, item: Item) {
        debug_assert!(key.len() <= MAX_KEY_BYTES);
        match self.data.get(&key) {
            Some(old) => {
                if let Some(t) = old.expire_at_ms {
                    self.expiries.remove(&(t, key.clone()));
                }
            }
            None => drop(self.by_hash.insert((key_hash(&key), key.clone()))),
        }
        if let Some(t) = item.expire_at_ms {
            self.expiries.insert((t, key.clone()));
        }
        self.data.insert(key, item);
    }

    /// Removes `key`; returns its item if it was live at `now_ms`.
    pub fn remove(&mut self, key: &[u8], now_ms: u64) -> Option<Item> {
        let (key, item) = self.data.remove_entry(key)?;
        self.by_hash.remove(&(key_hash(&key), key.clone()));
        if let Some(t) = item.expire_at_ms {
            self.expiries.remove(&(t, key));
        }
        item.is_live(now_ms).then_some(item)
    }

    /// Changes the expiry of an existing `key` and stamps `version`.
    /// Returns false if the key is not there.
    pub fn set_expiry(&mut self, key: &[u8], at_ms: Option<u64>, version: u64) -> bool {
        let Some((k, item)) = self.data.get_key_value(key) else {
            return false;
        };
        let k = k.clone();
        if let Some(t) = item.expire_at_ms {
            self.expiries.remove(&(t, k.clone()));
        }
        if let Some(t) = at_ms {
            self.expiries.insert((t, k.clone()));
        }
        let item = self.data.get_mut(&k).expect("just looked up");
        item.expire_at_ms = at_ms;
        item.version = version;
        true
    }

    /// Removes up to `max` keys dead at `now_ms`, earliest expiry first.
    /// Returns how many it removed.
    pub fn purge_expired(&mut self, now_ms: u64, max: usize) -> usize {
        let mut purged = 0;
        while purged < max {
            match self.expiries.first() {
                Some((t, _)) if *t <= now_ms => {
                    let (_, key) = self.expiries.pop_first().expect("non-empty");
                    self.data.remove(&key);
                    self.by_hash.remove(&(key_hash(&key), key));
                    purged += 1;
                }
                _ => break,
            }
        }
        purged
    }

    /// The earliest expiry instant held (dead keys not yet purged included).
    pub fn next_expiry_ms(&self) -> Option<u64> {
        self.expiries.first().map(|(t, _)| *t)
    }

    /// The version of `key` at `now_ms` (0 when missing or dead).
    pub fn version_of(&self, key: &[u8], now_ms: u64) -> u64 {
        self.live(key, now_ms).map_or(0, |i| i.version)
    }

    /// Live keys at `now_ms`.
    pub fn live_len(&self, now_ms: u64) -> usize {
        let dead = match now_ms.checked_add(1) {
            Some(end) => self.expiries.range(..(end, Bytes::new())).count(),
            None => self.expiries.len(),
        };
        self.data.len() - dead
    }

    /// Up to `count` keys (more only to finish a run of equal hashes) in
    /// hash order from hash `from`, dead ones included, and the hash where
    /// the next call resumes (`None`: the end).
    pub fn hash_range(&self, from: u64, count: usize) -> (Vec<Bytes>, Option<u64>) {
        let mut keys = Vec::new();
        let mut last = None;
        for (h, k) in self.by_hash.range((from, Bytes::new())..) {
            if keys.len() >= count && last != Some(*h) {
                return (keys, Some(*h));
            }
            keys.push(k.clone());
            last = Some(*h);
        }
        (keys, None)
    }

    /// The first live key in hash order at or after hash `from`, wrapping
    /// around; `None` when no key is live.
    pub fn live_key_from_hash(&self, from: u64, now_ms: u64) -> Option<Bytes> {
        let after = self.by_hash.range((from, Bytes::new())..);
        let before = self.by_hash.range(..(from, Bytes::new()));
        after
            .chain(before)
            .map(|(_, k)| k)
            .find(|k| self.live(k, now_ms).is_some())
            .cloned()
    }

    /// Keys held, dead ones not yet purged included.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Keys holding an expiry (dead ones not yet purged included).
    pub fn expiring_len(&self) -> usize {
        self.expiries.len()
    }

    /// Every item in key order, dead ones included.
    pub fn iter(&self) -> impl Iterator<Item = (&Bytes, &Item)> {
        self.data.iter()
    }

    /// The invariants, reported (snapshot decoding uses it on untrusted input).
    pub fn validate(&self) -> Result<(), &'static str> {
        let mut expiring = 0;
        for (k, item) in &self.data {
            if k.len() > MAX_KEY_BYTES {
                return Err("key over the limit");
            }
            match &item.value {
                Value::Str(s) if s.len() > MAX_VALUE_BYTES => return Err("value over the limit"),
                Value::Str(_) => {}
                Value::Hash(h) if h.is_empty() => return Err("an empty hash"),
                Value::Hash(h) => {
                    let over = |(f, v): (&Bytes, &Bytes)| {
                        f.len() > MAX_KEY_BYTES || v.len() > MAX_VALUE_BYTES
                    };
                    if h.iter().any(over) {
                        return Err("hash field or value over the limit");
                    }
                }
            }
            if let Some(t) = item.expire_at_ms {
                expiring += 1;
                if !self.expiries.contains(&(t, k.clone())) {
                    return Err("expiring key missing from the expiry index");
                }
            }
        }
        if expiring != self.expiries.len() {
            return Err("expiry index names keys without an expiry");
        }
        if self.by_hash.len() != self.data.len()
            || self
                .by_hash
                .iter()
                .any(|(h, k)| *h != key_hash(k) || !self.data.contains_key(k))
        {
            return Err("hash index and keys disagree");
        }
        Ok(())
    }
}

impl Serialize for Store {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.data.serialize(s)
    }
}

/// Reads the map as its entries and refuses keys out of order or repeated,
/// so every accepted encoding is the canonical one (re-encoding gives the
/// same bytes; postcard writes a map exactly as a sequence of pairs).
impl<'de> Deserialize<'de> for Store {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let entries = Vec::<(Bytes, Item)>::deserialize(d)?;
        if entries.windows(2).any(|w| w[0].0 >= w[1].0) {
            return Err(serde::de::Error::custom("keys not strictly increasing"));
        }
        Ok(Store::from_items(entries.into_iter().collect()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(v: &str, expire_at_ms: Option<u64>) -> Item {
        Item {
            value: Value::Str(Bytes::copy_from_slice(v.as_bytes())),
            expire_at_ms,
            version: 1,
        }
    }

    #[test]
    fn dead_keys_are_invisible_before_they_are_purged() {
        let mut s = Store::new();
        s.put(Bytes::from("a"), item("1", Some(100)));
        s.put(Bytes::from("b"), item("2", None));
        assert!(s.live(b"a", 99).is_some());
        assert!(s.live(b"a", 100).is_none());
        assert_eq!(s.len(), 2);
        assert_eq!(s.purge_expired(100, 10), 1);
        assert_eq!(s.len(), 1);
        s.validate().unwrap();
    }

    #[test]
    fn purge_is_bounded_and_earliest_first() {
        let mut s = Store::new();
        for (i, k) in ["c", "a", "b"].iter().enumerate() {
            s.put(Bytes::from(*k), item("v", Some(10 + i as u64)));
        }
        assert_eq!(s.purge_expired(1_000, 2), 2);
        assert!(s.live(b"b", 0).is_some(), "the latest expiry is left");
        assert_eq!(s.purge_expired(1_000, 2), 1);
        assert!(s.is_empty());
        s.validate().unwrap();
    }

    #[test]
    fn replacing_and_changing_expiry_keep_the_index_exact() {
        let mut s = Store::new();
        s.put(Bytes::from("a"), item("1", Some(5)));
        s.put(Bytes::from("a"), item("2", Some(7)));
        assert_eq!(s.expiring_len(), 1);
        assert!(s.set_expiry(b"a", None, 3));
        assert_eq!(s.expiring_len(), 0);
        assert!(!s.set_expiry(b"zz", Some(1), 3));
        assert!(s.remove(b"a", 0).is_some());
        s.validate().unwrap();
    }

    #[test]
    fn hash_ranges_cover_every_key_once() {
        let mut s = Store::new();
        for i in 0..50 {
            s.put(Bytes::from(format!("key{i}")), item("v", None));
        }
        let (mut seen, mut cursor) = (Vec::new(), 0);
        loop {
            let (keys, next) = s.hash_range(cursor, 7);
            seen.extend(keys);
            match next {
                Some(n) => {
                    assert!(n > cursor);
                    cursor = n;
                }
                None => break,
            }
        }
        seen.sort();
        let all: Vec<Bytes> = s.iter().map(|(k, _)| k.clone()).collect();
        assert_eq!(seen, all);
        assert_eq!(s.live_len(0), 50);
        s.validate().unwrap();
    }

    #[test]
    fn serde_round_trip_rebuilds_the_index() {
        let mut s = Store::new();
        s.put(Bytes::from("a"), item("1", Some(5)));
        s.put(Bytes::from("b"), item("2", None));
        let bytes = postcard::to_stdvec(&s).unwrap();
        let back: Store = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(back, s);
        back.validate().unwrap();
    }
}
