//! Hand-written histories whose verdict is known: the classic anomalies must
//! be rejected with a useful explanation, and the legal concurrent
//! orderings accepted.

use bytes::Bytes;
use lincheck::{
    check_kv, check_with, CheckOptions, CheckResult, KvInput, KvModel, KvOperation, KvOutput,
    Operation,
};

fn done(client: u64, call: u64, ret: u64, input: KvInput, output: KvOutput) -> KvOperation {
    Operation::returned(client, input, call, ret, output)
}

fn unknown(client: u64, call: u64, input: KvInput) -> KvOperation {
    Operation::unknown(client, input, call)
}

fn put(k: &'static str, v: &'static str) -> KvInput {
    KvInput::put(k, v)
}

fn app(k: &'static str, v: &'static str) -> KvInput {
    KvInput::append(k, v)
}

fn get(k: &'static str) -> KvInput {
    KvInput::get(k)
}

fn read(v: Option<&'static str>) -> KvOutput {
    KvOutput::Get(v.map(Bytes::from_static_str))
}

trait FromStaticStr {
    fn from_static_str(s: &'static str) -> Bytes;
}

impl FromStaticStr for Bytes {
    fn from_static_str(s: &'static str) -> Bytes {
        Bytes::from_static(s.as_bytes())
    }
}

fn assert_ok(h: &[KvOperation]) {
    let r = check_kv(h);
    assert!(r.is_ok(), "expected linearizable, got {r:?}");
}

/// Asserts illegal and returns (partition, blocked op, explanation).
fn assert_illegal(h: &[KvOperation]) -> (Bytes, usize, String) {
    match check_kv(h) {
        CheckResult::Illegal(v) => (v.partition.clone(), v.blocked, v.explanation().to_owned()),
        other => panic!("expected illegal, got {other:?}"),
    }
}

#[test]
fn empty_history_is_linearizable() {
    assert_ok(&[]);
}

#[test]
fn sequential_history_is_linearizable() {
    assert_ok(&[
        done(1, 0, 1, get("x"), read(None)),
        done(1, 2, 3, put("x", "1"), KvOutput::Put),
        done(1, 4, 5, app("x", "2"), KvOutput::Append(Some(2))),
        done(1, 6, 7, get("x"), read(Some("12"))),
        done(1, 8, 9, KvInput::delete("x"), KvOutput::Delete(Some(true))),
        done(
            1,
            10,
            11,
            KvInput::delete("x"),
            KvOutput::Delete(Some(false)),
        ),
        done(1, 12, 13, get("x"), read(None)),
    ]);
}

#[test]
fn stale_read_is_rejected_with_key_and_operation() {
    let h = [
        done(1, 0, 10, put("x", "1"), KvOutput::Put),
        done(1, 20, 30, put("x", "2"), KvOutput::Put),
        done(2, 40, 50, get("x"), read(Some("1"))),
    ];
    let (key, blocked, text) = assert_illegal(&h);
    assert_eq!(key, "x");
    assert_eq!(blocked, 2);
    assert!(text.contains("partition b\"x\""), "{text}");
    assert!(text.contains("#2 client 2 [40, 50]"), "{text}");
    assert!(
        text.contains("longest linearizable prefix: 2 operations"),
        "{text}"
    );
}

#[test]
fn lost_write_is_rejected() {
    let h = [
        done(1, 0, 10, put("x", "1"), KvOutput::Put),
        done(2, 20, 30, get("x"), read(None)),
    ];
    assert_eq!(assert_illegal(&h).1, 1);
}

#[test]
fn lost_append_is_rejected() {
    let h = [
        done(1, 0, 10, app("x", "a"), KvOutput::Append(None)),
        done(2, 5, 15, app("x", "b"), KvOutput::Append(None)),
        done(3, 20, 30, get("x"), read(Some("b"))),
    ];
    assert_illegal(&h);
}

#[test]
fn read_of_never_written_value_is_rejected() {
    let h = [
        done(1, 0, 10, put("x", "1"), KvOutput::Put),
        done(2, 5, 15, get("x"), read(Some("ghost"))),
    ];
    assert_illegal(&h);
}

#[test]
fn sequential_appends_out_of_order_are_rejected() {
    let h = [
        done(1, 0, 10, app("x", "a"), KvOutput::Append(None)),
        done(1, 20, 30, app("x", "b"), KvOutput::Append(None)),
        done(2, 40, 50, get("x"), read(Some("ba"))),
    ];
    assert_illegal(&h);
}

#[test]
fn concurrent_appends_may_land_in_either_order() {
    for seen in ["ab", "ba"] {
        let h = [
            done(1, 0, 30, app("x", "a"), KvOutput::Append(None)),
            done(2, 10, 20, app("x", "b"), KvOutput::Append(None)),
            done(3, 40, 50, get("x"), KvOutput::Get(Some(Bytes::from(seen)))),
        ];
        assert_ok(&h);
    }
}

#[test]
fn append_length_must_match() {
    let wrong = [done(1, 0, 10, app("x", "ab"), KvOutput::Append(Some(3)))];
    assert_illegal(&wrong);
    let right = [
        done(1, 0, 10, app("x", "ab"), KvOutput::Append(Some(3))),
        done(2, 5, 15, app("x", "c"), KvOutput::Append(Some(1))), // went first
    ];
    assert_ok(&right);
}

#[test]
fn delete_existence_must_match() {
    assert_illegal(&[done(
        1,
        0,
        10,
        KvInput::delete("x"),
        KvOutput::Delete(Some(true)),
    )]);
    assert_ok(&[
        done(1, 0, 10, put("x", "1"), KvOutput::Put),
        done(2, 5, 15, KvInput::delete("x"), KvOutput::Delete(Some(true))),
        done(3, 20, 30, get("x"), read(None)),
    ]);
}

#[test]
fn concurrent_puts_may_be_ordered_either_way() {
    for last in ["1", "2"] {
        let h = [
            done(1, 0, 10, put("x", "1"), KvOutput::Put),
            done(2, 5, 15, put("x", "2"), KvOutput::Put),
            done(3, 20, 30, get("x"), KvOutput::Get(Some(Bytes::from(last)))),
        ];
        assert_ok(&h);
    }
}

#[test]
fn read_concurrent_with_write_may_see_old_or_new() {
    for seen in [None, Some("1")] {
        assert_ok(&[
            done(1, 0, 100, put("x", "1"), KvOutput::Put),
            done(2, 10, 20, get("x"), read(seen)),
        ]);
    }
}

#[test]
fn reads_may_not_flip_back_to_the_old_value() {
    let h = [
        done(1, 0, 100, put("x", "1"), KvOutput::Put),
        done(2, 10, 20, get("x"), read(Some("1"))),
        done(3, 30, 40, get("x"), read(None)),
    ];
    assert_illegal(&h);
}

#[test]
fn operations_that_touch_are_concurrent() {
    // The get is called at the instant the put returns: either order is
    // allowed (the permissive reading of equal times).
    assert_ok(&[
        done(1, 0, 10, put("x", "1"), KvOutput::Put),
        done(2, 10, 20, get("x"), read(None)),
    ]);
}

#[test]
fn unknown_write_may_be_seen() {
    assert_ok(&[
        unknown(1, 0, put("x", "1")),
        done(2, 10, 20, get("x"), read(Some("1"))),
    ]);
}

#[test]
fn unknown_write_may_never_take_effect() {
    assert_ok(&[
        unknown(1, 0, put("x", "1")),
        done(2, 10, 20, get("x"), read(None)),
    ]);
}

#[test]
fn unknown_write_may_take_effect_long_after_its_call() {
    assert_ok(&[
        unknown(1, 0, put("x", "1")),
        done(2, 10, 20, get("x"), read(None)),
        done(2, 30, 40, put("x", "2"), KvOutput::Put),
        done(2, 50, 60, get("x"), read(Some("1"))),
    ]);
}

#[test]
fn unknown_write_seen_then_unseen_is_rejected() {
    let h = [
        unknown(1, 0, put("x", "1")),
        done(2, 10, 20, get("x"), read(Some("1"))),
        done(3, 30, 40, get("x"), read(None)),
    ];
    assert_illegal(&h);
}

#[test]
fn unknown_write_seen_before_its_call_is_rejected() {
    let h = [
        done(2, 0, 5, get("x"), read(Some("1"))),
        unknown(1, 10, put("x", "1")),
    ];
    assert_illegal(&h);
}

#[test]
fn unknown_reads_are_dropped() {
    let h = [unknown(1, 0, get("x")), done(2, 1, 2, get("x"), read(None))];
    let report = check_with(&KvModel, &h, &CheckOptions::default());
    assert!(report.result.is_ok());
    assert_eq!(report.stats.searched, 1);
}

#[test]
fn keys_are_checked_independently_and_the_bad_one_is_named() {
    let h = [
        done(1, 0, 10, put("x", "1"), KvOutput::Put),
        done(2, 0, 10, put("y", "1"), KvOutput::Put),
        done(1, 20, 30, get("x"), read(Some("1"))),
        done(2, 20, 30, get("y"), read(Some("2"))),
    ];
    let (key, blocked, _) = assert_illegal(&h);
    assert_eq!((key.as_ref(), blocked), (&b"y"[..], 3));
}

#[test]
fn exhausted_budget_answers_unknown() {
    let h = [
        done(1, 0, 10, put("x", "1"), KvOutput::Put),
        done(2, 0, 10, put("x", "2"), KvOutput::Put),
        done(3, 20, 30, get("x"), read(Some("1"))),
    ];
    let report = check_with(
        &KvModel,
        &h,
        &CheckOptions {
            max_steps_per_partition: 1,
        },
    );
    match report.result {
        CheckResult::Unknown { partitions } => assert_eq!(partitions, vec![Bytes::from("x")]),
        other => panic!("expected unknown, got {other:?}"),
    }
}
