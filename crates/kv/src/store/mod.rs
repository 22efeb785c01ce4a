//! The typed key space of one replica (or of one shard of a sharded group).
//!
//! Owns: the keys, each with a typed value, an optional expiry instant in
//! log time, and a version; and the index of expiry instants. Knows nothing
//! of sessions or log entries: the meaning of each [`crate::Op`] lives in
//! `ops`, which calls the accessors here. Items go in as owned [`Item`]s and
//! are read back as borrowed [`ItemRef`]s.
//!
//! # Memory: one allocation per key
//!
//! Each key is one [`entry::Entry`]: a single heap block with the key, its
//! string value, expiry and version, held in a `BTreeSet` (16 bytes per key
//! in the tree's nodes: the key's hash, which searches compare without
//! reading the blocks, and a thin pointer to the block). With 1,000,000 keys of ~10 bytes and 100-byte
//! values that is about 170 bytes a key, less than Redis's ~190 (README,
//! "Memory"). A hash's fields (a `BTreeMap`, rewritten field by field) sit
//! in a side table keyed by the key.
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
//! Entries are ordered by [`key_hash`] (64-bit FNV-1a of the key's bytes: a
//! function of the key alone, the same on every replica and in every
//! release), so `SCAN` walks the keys in a fixed order that insertions and
//! deletions of *other* keys do not shift (see `ops::keyspace`), with no
//! second index. Snapshots and shard transfers still write the keys in key
//! order (the serde impls sort a list of references first: 8 bytes a key
//! while encoding), so the formats are unchanged byte for byte.
//!
//! Invariants (checked by [`Store::validate`]):
//! - `entries` holds one entry per key, ordered by (hash, key);
//! - `hashes` holds exactly the keys whose entry is a hash, each with at
//!   least one field;
//! - `expiries` holds exactly `(t, key)` for every entry expiring at `t`;
//! - every key is at most [`MAX_KEY_BYTES`], every string at most
//!   [`MAX_VALUE_BYTES`].

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::config::{MAX_KEY_BYTES, MAX_VALUE_BYTES};

mod entry;

use entry::{Entry, Kind};

/// A hash value's fields, in field order.
pub type Fields = BTreeMap<Bytes, Bytes>;

/// A value of one of the Redis types raftkv keeps (owned: what goes into
/// the store, and what the snapshot format holds).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Value {
    Str(Bytes),
    /// Field -> value, in field order.
    Hash(Fields),
}

/// One key's value with its expiry and version (owned).
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

/// A value as the store holds it (borrowed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueRef<'a> {
    Str(&'a [u8]),
    Hash(&'a Fields),
}

/// One key's value with its expiry and version, borrowed from the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ItemRef<'a> {
    pub value: ValueRef<'a>,
    pub expire_at_ms: Option<u64>,
    pub version: u64,
}

impl ItemRef<'_> {
    pub fn is_live(&self, now_ms: u64) -> bool {
        self.expire_at_ms.is_none_or(|t| now_ms < t)
    }

    /// An owned copy.
    pub fn to_item(&self) -> Item {
        let value = match self.value {
            ValueRef::Str(s) => Value::Str(Bytes::copy_from_slice(s)),
            ValueRef::Hash(h) => Value::Hash(h.clone()),
        };
        Item {
            value,
            expire_at_ms: self.expire_at_ms,
            version: self.version,
        }
    }
}

/// The keys of a replica or a shard. Serialises as a map key -> [`Item`] in
/// key order; the expiry index is rebuilt on the way in.
#[derive(Clone, Debug, Default)]
pub struct Store {
    // Invariant: one entry per key, keys and string values within the limits.
    entries: BTreeSet<Entry>,
    // Invariant: exactly the keys of hash entries, each non-empty.
    hashes: BTreeMap<Bytes, Fields>,
    // Invariant: exactly {(t, k) | entry k expires at t}.
    expiries: BTreeSet<(u64, Bytes)>,
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
    pub fn from_items(items: impl IntoIterator<Item = (Bytes, Item)>) -> Self {
        let mut store = Store::new();
        for (k, item) in items {
            store.put(k, item);
        }
        store
    }

    /// The item of `key` if it exists and is not dead at `now_ms`.
    pub fn live(&self, key: &[u8], now_ms: u64) -> Option<ItemRef<'_>> {
        self.get(key).filter(|i| i.is_live(now_ms))
    }

    /// The item of `key`, dead or alive.
    fn get(&self, key: &[u8]) -> Option<ItemRef<'_>> {
        let e = self.entries.get(&Entry::probe(key))?;
        Some(self.view(e))
    }

    fn view<'a>(&'a self, e: &'a Entry) -> ItemRef<'a> {
        let value = if e.is_hash() {
            ValueRef::Hash(
                self.hashes
                    .get(e.key())
                    .expect("a hash entry has its fields"),
            )
        } else {
            ValueRef::Str(e.str_value())
        };
        ItemRef {
            value,
            expire_at_ms: e.expire_at_ms(),
            version: e.version(),
        }
    }

    /// The live string value of `key` (`None` when missing, dead or not a string).
    pub fn live_str(&self, key: &[u8], now_ms: u64) -> Option<&[u8]> {
        match self.live(key, now_ms)?.value {
            ValueRef::Str(s) => Some(s),
            ValueRef::Hash(_) => None,
        }
    }

    /// Live string values in key order (dead keys and other types skipped).
    /// Sorts: for tests and tools, not for the apply path.
    pub fn live_strings(&self, now_ms: u64) -> impl Iterator<Item = (&[u8], &[u8])> {
        let mut out: Vec<(&[u8], &[u8])> = self
            .entries
            .iter()
            .filter(|e| !e.is_hash() && e.expire_at_ms().is_none_or(|t| now_ms < t))
            .map(|e| (e.key(), e.str_value()))
            .collect();
        out.sort_unstable_by(|a, b| a.0.cmp(b.0));
        out.into_iter()
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
        Store::from_items(items)
    }

    /// Stores `item` under `key`, replacing what was there (dead or alive).
    pub fn put(&mut self, key: Bytes, item: Item) {
        let Item {
            value,
            expire_at_ms,
            version,
        } = item;
        let entry = match &value {
            Value::Str(s) => Entry::new(&key, Kind::Str(s), expire_at_ms, version),
            Value::Hash(_) => Entry::new(&key, Kind::Hash, expire_at_ms, version),
        };
        if let Some(old) = self.entries.replace(entry) {
            self.forget(&old, &key);
        }
        if let Some(t) = expire_at_ms {
            self.expiries.insert((t, key.clone()));
        }
        if let Value::Hash(fields) = value {
            self.hashes.insert(key, fields);
        }
    }

    /// Drops what the side tables hold for `old`, an entry just taken out
    /// (returns its fields if it was a hash).
    fn forget(&mut self, old: &Entry, key: &[u8]) -> Option<Fields> {
        if let Some(t) = old.expire_at_ms() {
            self.expiries.remove(&(t, Bytes::copy_from_slice(key)));
        }
        if old.is_hash() {
            return self.hashes.remove(key);
        }
        None
    }

    /// Removes `key`; returns its item if it was live at `now_ms`.
    pub fn remove(&mut self, key: &[u8], now_ms: u64) -> Option<Item> {
        let old = self.entries.take(&Entry::probe(key))?;
        let fields = self.forget(&old, key);
        let expire_at_ms = old.expire_at_ms();
        let value = match fields {
            Some(h) => Value::Hash(h),
            None => Value::Str(Bytes::copy_from_slice(old.str_value())),
        };
        let item = Item {
            value,
            expire_at_ms,
            version: old.version(),
        };
        item.is_live(now_ms).then_some(item)
    }

    /// Changes the expiry of an existing `key` and stamps `version`.
    /// Returns false if the key is not there.
    pub fn set_expiry(&mut self, key: &[u8], at_ms: Option<u64>, version: u64) -> bool {
        let Some(old) = self.entries.take(&Entry::probe(key)) else {
            return false;
        };
        let kind = if old.is_hash() {
            Kind::Hash
        } else {
            Kind::Str(old.str_value())
        };
        let new = Entry::new(key, kind, at_ms, version);
        let k = Bytes::copy_from_slice(key);
        if let Some(t) = old.expire_at_ms() {
            self.expiries.remove(&(t, k.clone()));
        }
        if let Some(t) = at_ms {
            self.expiries.insert((t, k));
        }
        self.entries.insert(new);
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
                    if let Some(old) = self.entries.take(&Entry::probe(&key)) {
                        if old.is_hash() {
                            self.hashes.remove(&key);
                        }
                    }
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
        self.entries.len() - dead
    }

    /// Entries in hash order from hash `from` on.
    fn at_or_after_hash(&self, from: u64) -> impl Iterator<Item = &Entry> {
        self.entries
            .range((Bound::Included(Entry::hash_bound(from)), Bound::Unbounded))
    }

    /// Up to `count` keys (more only to finish a run of equal hashes) in
    /// hash order from hash `from`, dead ones included, and the hash where
    /// the next call resumes (`None`: the end).
    pub fn hash_range(&self, from: u64, count: usize) -> (Vec<Bytes>, Option<u64>) {
        let mut keys = Vec::new();
        let mut last = None;
        for e in self.at_or_after_hash(from) {
            let h = e.hash();
            if keys.len() >= count && last != Some(h) {
                return (keys, Some(h));
            }
            keys.push(Bytes::copy_from_slice(e.key()));
            last = Some(h);
        }
        (keys, None)
    }

    /// The first live key in hash order at or after hash `from`, wrapping
    /// around; `None` when no key is live.
    pub fn live_key_from_hash(&self, from: u64, now_ms: u64) -> Option<Bytes> {
        let before = self.entries.iter().take_while(|e| e.hash() < from);
        self.at_or_after_hash(from)
            .chain(before)
            .find(|e| e.expire_at_ms().is_none_or(|t| now_ms < t))
            .map(|e| Bytes::copy_from_slice(e.key()))
    }

    /// Keys held, dead ones not yet purged included.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Keys holding an expiry (dead ones not yet purged included).
    pub fn expiring_len(&self) -> usize {
        self.expiries.len()
    }

    /// Every item in hash order (not key order), dead ones included.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], ItemRef<'_>)> {
        self.entries.iter().map(|e| (e.key(), self.view(e)))
    }

    /// Every item in key order, dead ones included (sorts a list of
    /// references to the entries, 8 bytes per key: for encoding and tools, not
    /// the apply path).
    pub fn iter_key_order(&self) -> impl ExactSizeIterator<Item = (&[u8], ItemRef<'_>)> {
        let mut order: Vec<&Entry> = self.entries.iter().collect();
        order.sort_unstable_by(|a, b| a.key().cmp(b.key()));
        order.into_iter().map(|e| (e.key(), self.view(e)))
    }

    /// Heap bytes of the entries themselves (keys, string values, expiry
    /// and version; not the tree's nodes nor hash fields), for reports.
    pub fn entry_heap_bytes(&self) -> usize {
        self.entries.iter().map(Entry::heap_bytes).sum()
    }

    /// The invariants, reported (snapshot decoding uses it on untrusted input).
    pub fn validate(&self) -> Result<(), &'static str> {
        let mut expiring = 0;
        let mut hashes = 0;
        for e in &self.entries {
            let k = e.key();
            if k.len() > MAX_KEY_BYTES {
                return Err("key over the limit");
            }
            if e.hash() != key_hash(k) {
                return Err("entry filed under another key's hash");
            }
            if e.is_hash() {
                hashes += 1;
                let over =
                    |(f, v): (&Bytes, &Bytes)| f.len() > MAX_KEY_BYTES || v.len() > MAX_VALUE_BYTES;
                match self.hashes.get(k) {
                    None => return Err("hash entry without fields"),
                    Some(h) if h.is_empty() => return Err("an empty hash"),
                    Some(h) if h.iter().any(over) => {
                        return Err("hash field or value over the limit")
                    }
                    Some(_) => {}
                }
            } else if e.str_value().len() > MAX_VALUE_BYTES {
                return Err("value over the limit");
            }
            if let Some(t) = e.expire_at_ms() {
                expiring += 1;
                if !self.expiries.contains(&(t, Bytes::copy_from_slice(k))) {
                    return Err("expiring key missing from the expiry index");
                }
            }
        }
        if expiring != self.expiries.len() {
            return Err("expiry index names keys without an expiry");
        }
        if hashes != self.hashes.len() {
            return Err("hash fields held for keys that are not hashes");
        }
        Ok(())
    }
}

/// Same keys with the same items (every byte of every entry, and equal
/// hash fields); the expiry index follows from the entries.
impl PartialEq for Store {
    fn eq(&self, other: &Self) -> bool {
        self.entries.len() == other.entries.len()
            && self
                .entries
                .iter()
                .zip(&other.entries)
                .all(|(a, b)| a.bytes() == b.bytes())
            && self.hashes == other.hashes
    }
}

impl Eq for Store {}

/// Bytes written as serde bytes (as `Bytes` is), not as a sequence.
struct RawBytes<'a>(&'a [u8]);

impl Serialize for RawBytes<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.0)
    }
}

/// [`Item`]'s serde shape, borrowed (same field order and variant indexes,
/// so the same bytes).
#[derive(Serialize)]
#[serde(rename = "Item")]
struct ItemSer<'a> {
    value: ValueSer<'a>,
    expire_at_ms: Option<u64>,
    version: u64,
}

#[derive(Serialize)]
#[serde(rename = "Value")]
enum ValueSer<'a> {
    Str(RawBytes<'a>),
    Hash(&'a Fields),
}

impl Serialize for Store {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let items = self.iter_key_order();
        let mut map = s.serialize_map(Some(items.len()))?;
        for (k, i) in items {
            let value = match i.value {
                ValueRef::Str(v) => ValueSer::Str(RawBytes(v)),
                ValueRef::Hash(h) => ValueSer::Hash(h),
            };
            let item = ItemSer {
                value,
                expire_at_ms: i.expire_at_ms,
                version: i.version,
            };
            map.serialize_entry(&RawBytes(k), &item)?;
        }
        map.end()
    }
}

/// Reads the map as its entries, one at a time straight into the store (no
/// second copy of the whole data set), and refuses keys out of order or
/// repeated, so every accepted encoding is the canonical one (re-encoding
/// gives the same bytes; postcard writes a map exactly as a sequence of
/// pairs).
impl<'de> Deserialize<'de> for Store {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Pairs;
        impl<'de> serde::de::Visitor<'de> for Pairs {
            type Value = Store;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a sequence of (key, item) pairs in increasing key order")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Store, A::Error> {
                let mut store = Store::new();
                let mut previous: Option<Bytes> = None;
                while let Some((k, item)) = seq.next_element::<(Bytes, Item)>()? {
                    if previous.as_ref().is_some_and(|p| *p >= k) {
                        return Err(serde::de::Error::custom("keys not strictly increasing"));
                    }
                    previous = Some(k.clone());
                    store.put(k, item);
                }
                Ok(store)
            }
        }
        d.deserialize_seq(Pairs)
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
        let all: Vec<Bytes> = s
            .iter_key_order()
            .map(|(k, _)| Bytes::copy_from_slice(k))
            .collect();
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
