//! A 10,000-operation history (10 clients, 50 keys, 1% lost replies) is
//! checked, and the same history with one corrupted read is rejected. Times
//! are printed (`--nocapture`), never asserted.

use bytes::Bytes;
use lincheck::synth::{kv_history, SynthConfig};
use lincheck::{check_with, CheckOptions, KvInput, KvModel, KvOutput};

#[test]
fn ten_thousand_operations_check_as_linearizable() {
    let h = kv_history(&SynthConfig::default());
    assert_eq!(h.len(), 10_000);
    let report = check_with(&KvModel, &h, &CheckOptions::default());
    println!("10k-op history: {:?}, {:?}", report.result, report.stats);
    assert!(report.result.is_ok());
}

#[test]
fn ten_thousand_operations_with_one_bad_read_are_rejected() {
    let mut h = kv_history(&SynthConfig::default());
    let g = h
        .iter()
        .rposition(|o| o.ret.is_some() && matches!(o.input, KvInput::Get { .. }))
        .expect("a completed get");
    h[g].ret.as_mut().unwrap().output = KvOutput::Get(Some(Bytes::from_static(b"never written")));
    let report = check_with(&KvModel, &h, &CheckOptions::default());
    println!("10k-op history, one bad read: {:?}", report.stats);
    let v = report.result.violation().expect("illegal");
    assert_eq!(v.blocked, g);
    println!("{v}");
}
