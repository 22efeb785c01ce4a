//! The key-value model: Get, Put, Append and Delete on binary-safe keys and
//! values, partitioned by key. Each partition's state is the key's value, or
//! `None` when the key is absent.

use bytes::{Bytes, BytesMut};

use crate::history::Operation;
use crate::model::Model;

/// A key-value request.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum KvInput {
    /// Read a key.
    Get { key: Bytes },
    /// Overwrite a key.
    Put { key: Bytes, value: Bytes },
    /// Append to a key's value (an absent key counts as empty).
    Append { key: Bytes, value: Bytes },
    /// Remove a key.
    Delete { key: Bytes },
}

impl KvInput {
    /// `Get(key)`.
    pub fn get(key: impl Into<Bytes>) -> Self {
        Self::Get { key: key.into() }
    }

    /// `Put(key, value)`.
    pub fn put(key: impl Into<Bytes>, value: impl Into<Bytes>) -> Self {
        Self::Put {
            key: key.into(),
            value: value.into(),
        }
    }

    /// `Append(key, value)`.
    pub fn append(key: impl Into<Bytes>, value: impl Into<Bytes>) -> Self {
        Self::Append {
            key: key.into(),
            value: value.into(),
        }
    }

    /// `Delete(key)`.
    pub fn delete(key: impl Into<Bytes>) -> Self {
        Self::Delete { key: key.into() }
    }

    /// The key the request touches.
    pub fn key(&self) -> &Bytes {
        match self {
            Self::Get { key } | Self::Delete { key } => key,
            Self::Put { key, .. } | Self::Append { key, .. } => key,
        }
    }
}

/// A key-value reply. The variant must match the request's.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum KvOutput {
    /// The value read, `None` when the key was absent.
    Get(Option<Bytes>),
    /// Put acknowledged.
    Put,
    /// Append acknowledged, with the value's new length in bytes when the
    /// caller knows it.
    Append(Option<u64>),
    /// Delete acknowledged, with whether the key existed when known.
    Delete(Option<bool>),
}

/// A key-value history operation.
pub type KvOperation = Operation<KvInput, KvOutput>;

/// The sequential key-value specification.
#[derive(Clone, Copy, Debug, Default)]
pub struct KvModel;

impl Model for KvModel {
    type Input = KvInput;
    type Output = KvOutput;
    type State = Option<Bytes>;
    type Partition = Bytes;

    fn init(&self) -> Self::State {
        None
    }

    fn step(
        &self,
        state: &Self::State,
        input: &KvInput,
        output: Option<&KvOutput>,
    ) -> Option<Self::State> {
        match (input, output) {
            (KvInput::Get { .. }, None) => Some(state.clone()),
            (KvInput::Get { .. }, Some(KvOutput::Get(seen))) => {
                (seen == state).then(|| state.clone())
            }
            (KvInput::Put { value, .. }, None | Some(KvOutput::Put)) => Some(Some(value.clone())),
            (KvInput::Append { value, .. }, None) => Some(Some(appended(state, value))),
            (KvInput::Append { value, .. }, Some(KvOutput::Append(len))) => {
                let next = appended(state, value);
                let wrong_len = len.is_some_and(|len| len != next.len() as u64);
                (!wrong_len).then_some(Some(next))
            }
            (KvInput::Delete { .. }, None) => Some(None),
            (KvInput::Delete { .. }, Some(KvOutput::Delete(existed))) => {
                let wrong_existed = existed.is_some_and(|e| e != state.is_some());
                (!wrong_existed).then_some(None)
            }
            (input, Some(output)) => panic!("history bug: {output:?} is not a reply to {input:?}"),
        }
    }

    fn partition(&self, input: &KvInput) -> Bytes {
        input.key().clone()
    }

    fn is_read_only(&self, input: &KvInput) -> bool {
        matches!(input, KvInput::Get { .. })
    }
}

fn appended(state: &Option<Bytes>, suffix: &Bytes) -> Bytes {
    let prefix = state.as_deref().unwrap_or_default();
    let mut out = BytesMut::with_capacity(prefix.len() + suffix.len());
    out.extend_from_slice(prefix);
    out.extend_from_slice(suffix);
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn some(v: &'static str) -> Option<Bytes> {
        Some(Bytes::from_static(v.as_bytes()))
    }

    #[test]
    fn get_must_match_state() {
        let m = KvModel;
        assert_eq!(
            m.step(
                &some("a"),
                &KvInput::get("k"),
                Some(&KvOutput::Get(some("a")))
            ),
            Some(some("a"))
        );
        assert_eq!(
            m.step(&some("a"), &KvInput::get("k"), Some(&KvOutput::Get(None))),
            None
        );
        assert_eq!(m.step(&None, &KvInput::get("k"), None), Some(None));
    }

    #[test]
    fn append_checks_length_only_when_known() {
        let m = KvModel;
        let app = KvInput::append("k", "xy");
        assert_eq!(
            m.step(&some("a"), &app, Some(&KvOutput::Append(Some(3)))),
            Some(some("axy"))
        );
        assert_eq!(
            m.step(&some("a"), &app, Some(&KvOutput::Append(Some(2)))),
            None
        );
        assert_eq!(
            m.step(&None, &app, Some(&KvOutput::Append(None))),
            Some(some("xy"))
        );
    }

    #[test]
    fn delete_checks_existence_only_when_known() {
        let m = KvModel;
        let del = KvInput::delete("k");
        assert_eq!(
            m.step(&some("a"), &del, Some(&KvOutput::Delete(Some(true)))),
            Some(None)
        );
        assert_eq!(
            m.step(&None, &del, Some(&KvOutput::Delete(Some(true)))),
            None
        );
        assert_eq!(
            m.step(&None, &del, Some(&KvOutput::Delete(None))),
            Some(None)
        );
    }

    #[test]
    #[should_panic(expected = "history bug")]
    fn mismatched_reply_is_a_bug() {
        KvModel.step(&None, &KvInput::get("k"), Some(&KvOutput::Put));
    }
}
