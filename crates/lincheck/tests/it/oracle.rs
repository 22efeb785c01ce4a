//! The search checked against dumb code: on tiny random histories (random
//! outputs, so about half are illegal), `check_kv` must agree with a brute
//! force enumeration of every real-time-respecting order.

use std::collections::BTreeMap;

use bytes::Bytes;
use lincheck::{check_kv, KvInput, KvModel, KvOperation, KvOutput, Model, Operation};
use proptest::prelude::*;

type State = BTreeMap<Bytes, Option<Bytes>>;

/// Whether some order of the unplaced operations, placing every completed
/// one and any subset of unknown ones, is legal from `state`.
fn brute(h: &[KvOperation], placed: u32, state: &State) -> bool {
    let done = |i: usize| placed & (1 << i) != 0;
    if (0..h.len()).all(|i| done(i) || h[i].ret.is_none()) {
        return true;
    }
    (0..h.len()).filter(|&i| !done(i)).any(|x| {
        let must_wait = (0..h.len())
            .any(|y| y != x && !done(y) && h[y].return_time().is_some_and(|r| r < h[x].call));
        if must_wait {
            return false;
        }
        let key = h[x].input.key();
        let current = state.get(key).cloned().flatten();
        KvModel
            .step(&current, &h[x].input, h[x].output())
            .is_some_and(|next| {
                let mut state = state.clone();
                state.insert(key.clone(), next);
                brute(h, placed | (1 << x), &state)
            })
    })
}

fn value() -> impl Strategy<Value = Bytes> {
    prop_oneof![
        Just(Bytes::from_static(b"a")),
        Just(Bytes::from_static(b"b"))
    ]
}

fn read() -> impl Strategy<Value = Option<Bytes>> {
    prop_oneof![
        Just(None),
        Just(Some("a")),
        Just(Some("b")),
        Just(Some("ab")),
        Just(Some("ba")),
        Just(Some("aa"))
    ]
    .prop_map(|v| v.map(Bytes::from_static_str))
}

trait FromStaticStr {
    fn from_static_str(s: &'static str) -> Bytes;
}

impl FromStaticStr for Bytes {
    fn from_static_str(s: &'static str) -> Bytes {
        Bytes::from_static(s.as_bytes())
    }
}

fn io() -> impl Strategy<Value = (KvInput, KvOutput)> {
    let key = prop_oneof![
        Just(Bytes::from_static(b"x")),
        Just(Bytes::from_static(b"y"))
    ];
    (
        key,
        0u8..4,
        value(),
        read(),
        proptest::option::of(0u64..4),
        proptest::option::of(any::<bool>()),
    )
        .prop_map(|(key, kind, value, seen, len, existed)| match kind {
            0 => (KvInput::Get { key }, KvOutput::Get(seen)),
            1 => (KvInput::Put { key, value }, KvOutput::Put),
            2 => (KvInput::Append { key, value }, KvOutput::Append(len)),
            _ => (KvInput::Delete { key }, KvOutput::Delete(existed)),
        })
}

fn operation() -> impl Strategy<Value = KvOperation> {
    (io(), 0u64..10, 0u64..6, prop::bool::weighted(0.2)).prop_map(
        |((input, output), call, len, lost)| {
            if lost {
                Operation::unknown(0, input, call)
            } else {
                Operation::returned(0, input, call, call + len, output)
            }
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn search_agrees_with_brute_force(h in prop::collection::vec(operation(), 0..7)) {
        let expected = brute(&h, 0, &State::new());
        let result = check_kv(&h);
        prop_assert_eq!(result.is_ok(), expected, "{:?}\n{:#?}", result, h);
        let unknown = matches!(result, lincheck::CheckResult::Unknown { .. });
        prop_assert!(!unknown, "budget exhausted on a tiny history");
    }
}
