//! One key's record: [`Entry`], 16 bytes in the store's ordered set (the
//! key's hash and a thin pointer) plus a single heap block.
//!
//! A key with a string value costs one allocation holding everything about
//! it but its hash, instead of a key `Bytes`, a value `Bytes`, an item struct
//! in a tree node and a second copy of the key in a hash index:
//!
//! ```text
//! block: len u32 LE (of what follows) | key_len u32 BE | key | flags u8
//!   | version u64 LE | expire_at_ms u64 LE (only if flags & EXPIRES)
//!   | string value (the rest)
//! ```
//!
//! Entries compare by (hash, key length, key bytes): `SCAN` order by the
//! key's hash, then any fixed order among equal hashes. The hash sits
//! beside the pointer, in the tree node itself, so a search compares hashes
//! without touching the blocks: it reads one block (the match), not one per
//! comparison (a cache miss each: that was the top user-space cost of a
//! write's apply on every replica, issue 15). The pointer is thin (the
//! block starts with its own length) so the set's element stays 16 bytes,
//! what a boxed slice (pointer and length) took before.
//!
//! A hash value's fields are not in the entry (they would be rewritten on
//! every field write): its entry has `flags & HASH` and an empty value, and
//! the store keeps the fields beside it. Invariant: a well-formed block —
//! [`Entry::new`] and [`Entry::probe`] are the only constructors, and the
//! hash is `key_hash` of the key ([`Entry::hash_bound`]'s excepted: a search
//! bound, never stored).

use std::cmp::Ordering;
use std::ptr::NonNull;

const LEN_BYTES: usize = 4;
const KEY_LEN_BYTES: usize = 4;
const KEY_AT: usize = KEY_LEN_BYTES;
const EXPIRES: u8 = 1;
const HASH: u8 = 2;

/// What an entry holds as its value.
#[derive(Clone, Copy, Debug)]
pub(super) enum Kind<'a> {
    Str(&'a [u8]),
    /// The fields live in the store's side table.
    Hash,
}

pub(super) struct Entry {
    hash: u64,
    block: Block,
}

/// An owned byte block behind a one-word pointer: `LEN_BYTES` of length
/// (little-endian u32), then that many bytes. It is a `Box<[u8]>` of
/// `LEN_BYTES + len` bytes whose length lives in the block instead of in
/// the pointer.
///
/// Safety rule: `0` is always the data pointer of a `Box<[u8]>` leaked by
/// [`Block::new`], of `LEN_BYTES + n` bytes whose first `LEN_BYTES` hold `n`;
/// only `Drop` gives it back, once.
struct Block(NonNull<u8>);

// SAFETY: a `Block` owns its bytes exclusively, as a `Box<[u8]>` does (no
// shared or interior mutability), so moving or sharing it across threads is
// as safe as for the box.
unsafe impl Send for Block {}
// SAFETY: as above: `&Block` only ever reads.
unsafe impl Sync for Block {}

impl Block {
    /// Takes `bytes` (its first `LEN_BYTES` are overwritten with the length
    /// of the rest) as a block.
    fn new(mut bytes: Vec<u8>) -> Block {
        let len = u32::try_from(bytes.len() - LEN_BYTES).expect("entries are under 4 GiB");
        bytes[..LEN_BYTES].copy_from_slice(&len.to_le_bytes());
        let raw: *mut [u8] = Box::into_raw(bytes.into_boxed_slice());
        Block(NonNull::new(raw.cast::<u8>()).expect("a box is never null"))
    }

    /// Every byte of the block, the length prefix included.
    fn whole(&self) -> &[u8] {
        // SAFETY: by the safety rule the pointer is a live allocation of at
        // least `LEN_BYTES` bytes holding `n`, then `n` more, owned by `self`
        // and unchanged while borrowed (nothing writes through a `Block`).
        unsafe {
            let head = std::slice::from_raw_parts(self.0.as_ptr(), LEN_BYTES);
            let n = u32::from_le_bytes(head.try_into().expect("4 bytes")) as usize;
            std::slice::from_raw_parts(self.0.as_ptr(), LEN_BYTES + n)
        }
    }

    /// The bytes after the length.
    fn bytes(&self) -> &[u8] {
        &self.whole()[LEN_BYTES..]
    }
}

impl Drop for Block {
    fn drop(&mut self) {
        let len = self.whole().len();
        let raw = std::ptr::slice_from_raw_parts_mut(self.0.as_ptr(), len);
        // SAFETY: by the safety rule `raw` is exactly the box `new` leaked (same
        // pointer, same length), and this is the only place it is given back.
        drop(unsafe { Box::from_raw(raw) });
    }
}

impl Clone for Block {
    fn clone(&self) -> Block {
        Block::new(self.whole().to_vec())
    }
}

impl Clone for Entry {
    fn clone(&self) -> Entry {
        Entry {
            hash: self.hash,
            block: self.block.clone(),
        }
    }
}

/// The start of a block: room for the length, then the key.
fn start_block(key: &[u8], capacity: usize) -> Vec<u8> {
    let len = u32::try_from(key.len()).expect("keys are bounded by MAX_KEY_BYTES");
    let mut out = Vec::with_capacity(capacity);
    out.extend_from_slice(&[0; LEN_BYTES]);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(key);
    out
}

impl Entry {
    pub(super) fn new(key: &[u8], kind: Kind<'_>, expire_at_ms: Option<u64>, version: u64) -> Self {
        let value: &[u8] = match kind {
            Kind::Str(v) => v,
            Kind::Hash => &[],
        };
        let expiry_bytes = if expire_at_ms.is_some() { 8 } else { 0 };
        let size = LEN_BYTES + KEY_AT + key.len() + 9 + expiry_bytes + value.len();
        let mut out = start_block(key, size);
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
        debug_assert_eq!(out.len(), size);
        Entry {
            hash: super::key_hash(key),
            block: Block::new(out),
        }
    }

    /// A search key for `key`: equal to its entry, if there is one. Only
    /// compared, never stored or read.
    pub(super) fn probe(key: &[u8]) -> Self {
        Entry {
            hash: super::key_hash(key),
            block: Block::new(start_block(key, LEN_BYTES + KEY_AT + key.len())),
        }
    }

    /// A search bound no greater than any entry whose key hashes to `hash`
    /// or more, and greater than every entry whose key hashes lower. Only
    /// compared, never stored or read.
    pub(super) fn hash_bound(hash: u64) -> Self {
        Entry {
            hash,
            block: Block::new(start_block(b"", LEN_BYTES + KEY_AT)),
        }
    }

    fn key_len(&self) -> usize {
        let b = self.block.bytes();
        u32::from_be_bytes(b[..KEY_AT].try_into().expect("4 bytes")) as usize
    }

    fn flags_at(&self) -> usize {
        KEY_AT + self.key_len()
    }

    fn flags(&self) -> u8 {
        self.block.bytes()[self.flags_at()]
    }

    fn u64_at(&self, at: usize) -> u64 {
        u64::from_le_bytes(self.block.bytes()[at..at + 8].try_into().expect("8 bytes"))
    }

    /// The key's length and bytes: the order among equal hashes.
    fn key_part(&self) -> &[u8] {
        &self.block.bytes()[..self.flags_at()]
    }

    pub(super) fn hash(&self) -> u64 {
        self.hash
    }

    pub(super) fn key(&self) -> &[u8] {
        &self.block.bytes()[KEY_AT..self.flags_at()]
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
        &self.block.bytes()[self.flags_at() + 9 + expiry_bytes..]
    }

    /// Every byte of the record (the hash follows from the key): two entries
    /// are the same record iff these are equal.
    pub(super) fn bytes(&self) -> &[u8] {
        self.block.bytes()
    }

    /// Heap bytes this entry owns (for memory reports).
    pub(super) fn heap_bytes(&self) -> usize {
        self.block.whole().len()
    }
}

/// By hash and key only (the set holds one entry per key).
impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
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
        // The blocks are read only when the hashes tie (in a search: at the match).
        self.hash
            .cmp(&other.hash)
            .then_with(|| self.key_part().cmp(other.key_part()))
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
            assert_eq!(e, Entry::probe(b"key"));
            let copy = e.clone();
            assert_eq!(copy.bytes(), e.bytes());
            assert_eq!(copy.heap_bytes(), e.heap_bytes());
        }
        let h = Entry::new(b"", Kind::Hash, None, 7);
        assert!(h.is_hash() && h.key().is_empty() && h.str_value().is_empty());
    }

    #[test]
    fn the_set_element_is_two_words_and_the_block_holds_the_rest() {
        assert_eq!(std::mem::size_of::<Entry>(), 16);
        let e = Entry::new(b"key", Kind::Str(b"value"), None, 1);
        // length, key length, key, flags, version, value
        assert_eq!(e.heap_bytes(), 4 + 4 + 3 + 1 + 8 + 5);
    }

    #[test]
    fn order_is_hash_first_and_bounds_sort_before_their_hash() {
        let mut keys: Vec<Entry> = (0..100)
            .map(|i| Entry::new(format!("k{i}").as_bytes(), Kind::Str(b""), None, 0))
            .collect();
        keys.push(Entry::new(b"", Kind::Str(b""), None, 0));
        keys.sort();
        assert!(keys.windows(2).all(|w| w[0].hash() <= w[1].hash()));
        for e in &keys {
            assert!(Entry::hash_bound(e.hash()) <= *e);
            assert!(Entry::hash_bound(e.hash().saturating_add(1)) > *e);
        }
    }

    /// Among equal hashes, entries order by key length, then bytes (the
    /// order the old big-endian sort key gave).
    #[test]
    fn equal_hashes_order_by_key_length_then_bytes() {
        let with_hash = |key: &[u8]| Entry {
            hash: 7,
            block: Block::new(start_block(key, 0)),
        };
        assert!(with_hash(b"zz") < with_hash(b"aaa"));
        assert!(with_hash(b"ab") < with_hash(b"ac"));
        assert_eq!(with_hash(b"ab"), with_hash(b"ab"));
    }
}
