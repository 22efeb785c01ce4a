//! One key's record in a single heap allocation: [`Entry`].
//!
//! A key with a string value costs one allocation holding everything about
//! it, and 16 bytes in the store's ordered set (its boxed slice), instead of
//! a key `Bytes`, a value `Bytes`, an item struct in a tree node and a second
//! copy of the key in a hash index.
//!
//! ```text
//! hash u64 BE | key_len u32 BE | key | flags u8 | version u64 LE
//!   | expire_at_ms u64 LE (only if flags & EXPIRES) | string value (the rest)
//! ```
//!
//! The first `12 + key_len` bytes are the *sort key*: entries compare by it
//! bytewise, which orders them by the key's hash (`SCAN` order) and then by
//! length and bytes (any fixed order would do among equal hashes). A lookup
//! builds the same prefix for a key ([`sort_key`]) and searches with it
//! (`Entry: Borrow<[u8]>`), so no `Entry` is built to find one.
//!
//! A hash value's fields are not in the entry (they would be rewritten on
//! every field write): its entry has `flags & HASH` and an empty value, and
//! the store keeps the fields beside it. Invariant: a well-formed layout —
//! [`Entry::new`] is the only constructor.

use std::borrow::Borrow;
use std::cmp::Ordering;

const HASH_BYTES: usize = 8;
const LEN_BYTES: usize = 4;
const KEY_AT: usize = HASH_BYTES + LEN_BYTES;
const EXPIRES: u8 = 1;
const HASH: u8 = 2;

/// What an entry holds as its value.
#[derive(Clone, Copy, Debug)]
pub(super) enum Kind<'a> {
    Str(&'a [u8]),
    /// The fields live in the store's side table.
    Hash,
}

#[derive(Clone)]
pub(super) struct Entry(Box<[u8]>);

/// The sort key of `key`: what an entry for it starts with.
pub(super) fn sort_key(key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(KEY_AT + key.len());
    push_sort_key(&mut out, key);
    out
}

/// The smallest sort key of any key with hash `hash` or greater.
pub(super) fn hash_bound(hash: u64) -> [u8; HASH_BYTES] {
    hash.to_be_bytes()
}

fn push_sort_key(out: &mut Vec<u8>, key: &[u8]) {
    let len = u32::try_from(key.len()).expect("keys are bounded by MAX_KEY_BYTES");
    out.extend_from_slice(&super::key_hash(key).to_be_bytes());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(key);
}

impl Entry {
    pub(super) fn new(key: &[u8], kind: Kind<'_>, expire_at_ms: Option<u64>, version: u64) -> Self {
        let value: &[u8] = match kind {
            Kind::Str(v) => v,
            Kind::Hash => &[],
        };
        let expiry_bytes = if expire_at_ms.is_some() { 8 } else { 0 };
        let mut out = Vec::with_capacity(KEY_AT + key.len() + 9 + expiry_bytes + value.len());
        push_sort_key(&mut out, key);
        let mut flags = 0;
        if expire_at_ms.is_some() {
            flags |= EXPIRES;
        }
        if matches!(kind, Kind::Hash) {
            flags |= HASH;
        }
        out.push(flags);
        out.extend_from_slice(&version.to_le_bytes());
        if let Some(t) = expire_at_ms {
            out.extend_from_slice(&t.to_le_bytes());
        }
        out.extend_from_slice(value);
        debug_assert_eq!(out.len(), out.capacity());
        Entry(out.into_boxed_slice())
    }

    fn key_len(&self) -> usize {
        let len: [u8; LEN_BYTES] = self.0[HASH_BYTES..KEY_AT].try_into().expect("4 bytes");
        u32::from_be_bytes(len) as usize
    }

    fn flags_at(&self) -> usize {
        KEY_AT + self.key_len()
    }

    fn flags(&self) -> u8 {
        self.0[self.flags_at()]
    }

    fn u64_at(&self, at: usize) -> u64 {
        u64::from_le_bytes(self.0[at..at + 8].try_into().expect("8 bytes"))
    }

    pub(super) fn sort_key(&self) -> &[u8] {
        &self.0[..self.flags_at()]
    }

    pub(super) fn hash(&self) -> u64 {
        u64::from_be_bytes(self.0[..HASH_BYTES].try_into().expect("8 bytes"))
    }

    pub(super) fn key(&self) -> &[u8] {
        &self.0[KEY_AT..self.flags_at()]
    }

    pub(super) fn version(&self) -> u64 {
        self.u64_at(self.flags_at() + 1)
    }

    pub(super) fn expire_at_ms(&self) -> Option<u64> {
        let at = self.flags_at() + 9;
        (self.flags() & EXPIRES != 0).then(|| self.u64_at(at))
    }

    pub(super) fn is_hash(&self) -> bool {
        self.flags() & HASH != 0
    }

    /// The string value (empty for a hash: its fields are elsewhere).
    pub(super) fn str_value(&self) -> &[u8] {
        let expiry_bytes = if self.flags() & EXPIRES != 0 { 8 } else { 0 };
        &self.0[self.flags_at() + 9 + expiry_bytes..]
    }

    /// Every byte: two entries are the same record iff these are equal.
    pub(super) fn bytes(&self) -> &[u8] {
        &self.0
    }

    /// Heap bytes this entry owns (for memory reports).
    pub(super) fn heap_bytes(&self) -> usize {
        self.0.len()
    }
}

impl Borrow<[u8]> for Entry {
    fn borrow(&self) -> &[u8] {
        self.sort_key()
    }
}

/// By sort key only (the set holds one entry per key), as `Borrow` requires.
impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.sort_key() == other.sort_key()
    }
}

impl Eq for Entry {}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Entry {
    fn cmp(&self, other: &Self) -> Ordering {
        self.sort_key().cmp(other.sort_key())
    }
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry")
            .field("key", &String::from_utf8_lossy(self.key()))
            .field("hash", &self.is_hash())
            .field("value", &String::from_utf8_lossy(self.str_value()))
            .field("expire_at_ms", &self.expire_at_ms())
            .field("version", &self.version())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_read_back_with_and_without_expiry() {
        for expiry in [None, Some(u64::MAX - 1)] {
            let e = Entry::new(b"key", Kind::Str(b"value"), expiry, 42);
            assert_eq!(e.key(), b"key");
            assert_eq!(e.str_value(), b"value");
            assert_eq!(e.expire_at_ms(), expiry);
            assert_eq!(e.version(), 42);
            assert!(!e.is_hash());
            assert_eq!(e.hash(), super::super::key_hash(b"key"));
            assert_eq!(e.sort_key(), sort_key(b"key").as_slice());
        }
        let h = Entry::new(b"", Kind::Hash, None, 7);
        assert!(h.is_hash() && h.key().is_empty() && h.str_value().is_empty());
    }

    #[test]
    fn order_is_hash_first_and_bounds_sort_before_their_hash() {
        let mut keys: Vec<Entry> = (0..100)
            .map(|i| Entry::new(format!("k{i}").as_bytes(), Kind::Str(b""), None, 0))
            .collect();
        keys.sort();
        assert!(keys.windows(2).all(|w| w[0].hash() <= w[1].hash()));
        for e in &keys {
            assert!(hash_bound(e.hash()).as_slice() < e.sort_key());
            assert!(hash_bound(e.hash().saturating_add(1)).as_slice() > e.sort_key());
        }
    }
}
