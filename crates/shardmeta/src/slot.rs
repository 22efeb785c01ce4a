//! Keys to hash slots to shards.
//!
//! A key's slot is Redis Cluster's: CRC16 (XMODEM: poly 0x1021, init 0) of
//! the key, modulo 16,384 — or, when the key holds a non-empty `{...}`, of
//! the part between the first `{` and the first `}` after it, so related
//! keys can be kept together. A shard is a fixed, contiguous range of slots:
//! shard `i` of `n` holds slots `[i * SLOTS / n, (i + 1) * SLOTS / n)`.

use crc::{Crc, CRC_16_XMODEM};

/// Redis Cluster's number of hash slots.
pub const SLOTS: u16 = 16_384;
/// Most shards a keyspace may have: one slot each.
pub const MAX_SHARDS: u32 = SLOTS as u32;

const CRC16: Crc<u16> = Crc::<u16>::new(&CRC_16_XMODEM);

/// The part of `key` that is hashed: its hash tag if it has a non-empty
/// one, else the whole key (Redis Cluster specification).
pub fn hash_tag(key: &[u8]) -> &[u8] {
    let Some(open) = key.iter().position(|&b| b == b'{') else {
        return key;
    };
    let rest = &key[open + 1..];
    match rest.iter().position(|&b| b == b'}') {
        Some(close) if close > 0 => &rest[..close],
        _ => key,
    }
}

/// The hash slot of `key`, in `0..SLOTS`.
pub fn key_slot(key: &[u8]) -> u16 {
    CRC16.checksum(hash_tag(key)) % SLOTS
}

/// Why a keyspace cannot be made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyspaceError {
    /// Zero shards, or more shards than slots.
    ShardCount(u32),
}

impl std::fmt::Display for KeyspaceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyspaceError::ShardCount(n) => {
                write!(f, "shard count must be in 1..={MAX_SHARDS}, not {n}")
            }
        }
    }
}

impl std::error::Error for KeyspaceError {}

/// Slots grouped into `shards` contiguous ranges.
///
/// Invariant: `1 <= shards <= MAX_SHARDS`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Keyspace {
    shards: u32,
}

impl Keyspace {
    pub fn new(shards: u32) -> Result<Self, KeyspaceError> {
        if shards == 0 || shards > MAX_SHARDS {
            return Err(KeyspaceError::ShardCount(shards));
        }
        Ok(Keyspace { shards })
    }

    pub fn shards(&self) -> u32 {
        self.shards
    }

    /// The shard holding `slot` (`slot < SLOTS`).
    pub fn shard_of_slot(&self, slot: u16) -> u32 {
        debug_assert!(slot < SLOTS, "slot {slot} out of range");
        // The inverse of `slot_range`: the largest i with start(i) <= slot.
        ((slot as u64 + 1) * self.shards as u64)
            .div_ceil(SLOTS as u64)
            .saturating_sub(1) as u32
    }

    /// The shard holding `key`.
    pub fn shard_of_key(&self, key: &[u8]) -> u32 {
        self.shard_of_slot(key_slot(key))
    }

    /// The slots of `shard` as a half-open range `start..end`.
    pub fn slot_range(&self, shard: u32) -> std::ops::Range<u16> {
        assert!(shard < self.shards, "shard {shard} of {}", self.shards);
        let start = |i: u32| (i as u64 * SLOTS as u64 / self.shards as u64) as u16;
        start(shard)..start(shard + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn slots_match_redis_cluster() {
        // Values from the Redis Cluster specification and `CLUSTER KEYSLOT`.
        assert_eq!(CRC16.checksum(b"123456789"), 0x31C3);
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(key_slot(b"bar"), 5061);
        assert_eq!(key_slot(b"hello"), 866);
        assert_eq!(key_slot(b""), 0);
    }

    #[test]
    fn hash_tags_follow_the_specification() {
        assert_eq!(hash_tag(b"{user1000}.following"), b"user1000");
        assert_eq!(hash_tag(b"foo{}{bar}"), b"foo{}{bar}"); // empty first tag: whole key
        assert_eq!(hash_tag(b"foo{{bar}}zap"), b"{bar");
        assert_eq!(hash_tag(b"foo{bar}{zap}"), b"bar");
        assert_eq!(hash_tag(b"no tag"), b"no tag");
        assert_eq!(hash_tag(b"open{only"), b"open{only");
        assert_eq!(
            key_slot(b"{user1000}.following"),
            key_slot(b"{user1000}.followers")
        );
    }

    #[test]
    fn shard_counts_outside_the_slots_are_refused() {
        assert_eq!(Keyspace::new(0), Err(KeyspaceError::ShardCount(0)));
        assert!(Keyspace::new(MAX_SHARDS + 1).is_err());
        assert!(Keyspace::new(MAX_SHARDS).is_ok());
    }

    proptest! {
        #[test]
        fn shards_partition_the_slots(n in 1u32..=MAX_SHARDS) {
            let ks = Keyspace::new(n).unwrap();
            let mut next = 0u16;
            for i in 0..n {
                let r = ks.slot_range(i);
                prop_assert_eq!(r.start, next);
                prop_assert!(r.end > r.start, "shard {} of {} is empty", i, n);
                next = r.end;
            }
            prop_assert_eq!(next, SLOTS);
        }

        #[test]
        fn shard_of_slot_inverts_slot_range(n in 1u32..=2048, slot in 0u16..SLOTS) {
            let ks = Keyspace::new(n).unwrap();
            let s = ks.shard_of_slot(slot);
            prop_assert!(s < n);
            prop_assert!(ks.slot_range(s).contains(&slot));
        }

        #[test]
        fn slots_are_in_range(key in proptest::collection::vec(any::<u8>(), 0..64)) {
            prop_assert!(key_slot(&key) < SLOTS);
        }
    }
}
