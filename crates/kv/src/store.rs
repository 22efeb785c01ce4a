//! The key-value data itself and the meaning of each [`Op`].
//!
//! Owns: the ordered map of keys to values. Knows nothing of sessions, log
//! indexes or time; `apply` is a pure function of (data, op).
//!
//! Invariants: every value is at most [`MAX_VALUE_BYTES`] long; iteration is
//! in key order (a `BTreeMap`), so snapshots of equal stores are identical.

use std::collections::BTreeMap;

use bytes::{Bytes, BytesMut};

use crate::command::{KvError, Op, Reply, Response};
use crate::config::MAX_VALUE_BYTES;

/// The data of one replica.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Store {
    // Invariant: every value.len() <= MAX_VALUE_BYTES.
    data: BTreeMap<Bytes, Bytes>,
}

impl Store {
    pub fn new() -> Self {
        Store::default()
    }

    pub fn get(&self, key: &[u8]) -> Option<&Bytes> {
        self.data.get(key)
    }

    pub fn len(&self) -> usize {
        self.data.len()
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Entries in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&Bytes, &Bytes)> {
        self.data.iter()
    }

    /// Inserts one restored pair. Caller (the snapshot decoder) has checked
    /// the value limit.
    pub(crate) fn insert_restored(&mut self, key: Bytes, value: Bytes) {
        debug_assert!(value.len() <= MAX_VALUE_BYTES);
        self.data.insert(key, value);
    }

    /// Applies `op`; the outcome depends only on the current data and `op`.
    pub fn apply(&mut self, op: &Op) -> Response {
        match op {
            Op::Get { key } => Ok(Reply::Value(self.data.get(key).cloned())),
            Op::Put { key, value } => {
                self.data.insert(key.clone(), value.clone());
                Ok(Reply::Done)
            }
            Op::Append { key, value } => self.append(key, value),
            Op::Delete { key } => Ok(Reply::Deleted(self.data.remove(key).is_some())),
        }
    }

    fn append(&mut self, key: &Bytes, suffix: &Bytes) -> Response {
        let old = self.data.get(key).map(Bytes::as_ref).unwrap_or_default();
        let new_len = old.len() as u64 + suffix.len() as u64;
        if new_len > MAX_VALUE_BYTES as u64 {
            return Err(KvError::ValueTooLarge {
                len: new_len,
                max: MAX_VALUE_BYTES as u64,
            });
        }
        let mut joined = BytesMut::with_capacity(new_len as usize);
        joined.extend_from_slice(old);
        joined.extend_from_slice(suffix);
        self.data.insert(key.clone(), joined.freeze());
        Ok(Reply::Length(new_len))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[test]
    fn get_missing_is_none() {
        let mut s = Store::new();
        assert_eq!(s.apply(&Op::Get { key: b("a") }), Ok(Reply::Value(None)));
    }

    #[test]
    fn put_then_get() {
        let mut s = Store::new();
        assert_eq!(
            s.apply(&Op::Put {
                key: b("a"),
                value: b("1")
            }),
            Ok(Reply::Done)
        );
        assert_eq!(
            s.apply(&Op::Get { key: b("a") }),
            Ok(Reply::Value(Some(b("1"))))
        );
        assert_eq!(
            s.apply(&Op::Put {
                key: b("a"),
                value: b("2")
            }),
            Ok(Reply::Done)
        );
        assert_eq!(s.get(b"a"), Some(&b("2")));
    }

    #[test]
    fn append_creates_and_extends_and_returns_length() {
        let mut s = Store::new();
        assert_eq!(
            s.apply(&Op::Append {
                key: b("a"),
                value: b("xy")
            }),
            Ok(Reply::Length(2))
        );
        assert_eq!(
            s.apply(&Op::Append {
                key: b("a"),
                value: b("z")
            }),
            Ok(Reply::Length(3))
        );
        assert_eq!(s.get(b"a"), Some(&b("xyz")));
        // Appending nothing to a missing key creates an empty value, as Redis does.
        assert_eq!(
            s.apply(&Op::Append {
                key: b("e"),
                value: b("")
            }),
            Ok(Reply::Length(0))
        );
        assert_eq!(s.get(b"e"), Some(&b("")));
    }

    #[test]
    fn append_past_the_limit_fails_and_leaves_the_value() {
        let mut s = Store::new();
        let big = Bytes::from(vec![0u8; MAX_VALUE_BYTES]);
        s.apply(&Op::Put {
            key: b("a"),
            value: big,
        })
        .unwrap();
        let err = s.apply(&Op::Append {
            key: b("a"),
            value: b("x"),
        });
        assert!(matches!(err, Err(KvError::ValueTooLarge { .. })));
        assert_eq!(s.get(b"a").map(Bytes::len), Some(MAX_VALUE_BYTES));
    }

    #[test]
    fn delete_reports_existence() {
        let mut s = Store::new();
        assert_eq!(
            s.apply(&Op::Delete { key: b("a") }),
            Ok(Reply::Deleted(false))
        );
        s.apply(&Op::Put {
            key: b("a"),
            value: b("1"),
        })
        .unwrap();
        assert_eq!(
            s.apply(&Op::Delete { key: b("a") }),
            Ok(Reply::Deleted(true))
        );
        assert_eq!(s.get(b"a"), None);
        assert!(s.is_empty());
    }

    #[test]
    fn keys_and_values_are_binary_safe() {
        let mut s = Store::new();
        let key = Bytes::from_static(&[0, 0xff, b'\r', b'\n']);
        let value = Bytes::from_static(&[0, 1, 2, 0xfe]);
        s.apply(&Op::Put {
            key: key.clone(),
            value: value.clone(),
        })
        .unwrap();
        assert_eq!(s.get(&key), Some(&value));
    }
}
