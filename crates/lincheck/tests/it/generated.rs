//! Property tests on generated histories: a history recorded from a real
//! sequential execution with random concurrency windows (and lost replies)
//! must be accepted; the same history with a detectable corruption must be
//! rejected, naming the corrupted key.

use bytes::Bytes;
use lincheck::synth::{kv_history, SynthConfig};
use lincheck::{check_kv, KvInput, KvOperation, KvOutput};
use proptest::prelude::*;
use proptest::sample::Index;

fn config() -> impl Strategy<Value = SynthConfig> {
    (
        any::<u64>(),
        1usize..150,
        1u64..6,
        1u64..4,
        1u64..40,
        0u64..20,
        0u64..50,
    )
        .prop_map(
            |(seed, ops, clients, keys, max_latency, max_think, unknown_per_mille)| SynthConfig {
                seed,
                ops,
                clients,
                keys,
                max_latency,
                max_think,
                unknown_per_mille,
            },
        )
}

/// Indices of operations that returned and match `pred`.
fn completed(h: &[KvOperation], pred: impl Fn(&KvInput) -> bool) -> Vec<usize> {
    (0..h.len())
        .filter(|&i| h[i].ret.is_some() && pred(&h[i].input))
        .collect()
}

fn set_output(op: &mut KvOperation, output: KvOutput) {
    op.ret.as_mut().expect("completed").output = output;
}

fn assert_rejected_on_key(h: &[KvOperation], key: &Bytes) -> Result<(), TestCaseError> {
    let result = check_kv(h);
    let v = result.violation();
    prop_assert!(v.is_some(), "corrupted history accepted: {result:?}");
    prop_assert_eq!(&v.unwrap().partition, key);
    Ok(())
}

proptest! {
    #[test]
    fn recorded_sequential_executions_are_linearizable(cfg in config()) {
        let h = kv_history(&cfg);
        let result = check_kv(&h);
        prop_assert!(result.is_ok(), "{result:?}");
    }

    #[test]
    fn a_read_of_a_value_never_written_is_rejected(cfg in config(), pick in any::<Index>()) {
        let mut h = kv_history(&cfg);
        let gets = completed(&h, |i| matches!(i, KvInput::Get { .. }));
        prop_assume!(!gets.is_empty());
        let g = gets[pick.index(gets.len())];
        set_output(&mut h[g], KvOutput::Get(Some(Bytes::from_static(b"never written"))));
        assert_rejected_on_key(&h, h[g].input.key())?;
    }

    #[test]
    fn a_read_from_the_future_is_rejected(cfg in config(), pick in any::<Index>()) {
        let mut h = kv_history(&cfg);
        // (get, put) on one key where the put was called after the get returned.
        let pairs: Vec<(usize, Bytes)> = completed(&h, |i| matches!(i, KvInput::Get { .. }))
            .into_iter()
            .flat_map(|g| {
                let h = &h;
                h.iter().filter_map(move |p| match &p.input {
                    KvInput::Put { key, value }
                        if key == h[g].input.key() && p.call > h[g].return_time().unwrap() =>
                    {
                        Some((g, value.clone()))
                    }
                    _ => None,
                })
            })
            .collect();
        prop_assume!(!pairs.is_empty());
        let (g, value) = pairs[pick.index(pairs.len())].clone();
        set_output(&mut h[g], KvOutput::Get(Some(value)));
        assert_rejected_on_key(&h, h[g].input.key())?;
    }

    #[test]
    fn an_impossible_append_length_is_rejected(cfg in config(), pick in any::<Index>()) {
        let mut h = kv_history(&cfg);
        let appends = completed(&h, |i| matches!(i, KvInput::Append { .. }));
        prop_assume!(!appends.is_empty());
        let a = appends[pick.index(appends.len())];
        let key = h[a].input.key().clone();
        let written: usize = h.iter().map(|o| match &o.input {
            KvInput::Put { key: k, value } | KvInput::Append { key: k, value } if *k == key => value.len(),
            _ => 0,
        }).sum();
        set_output(&mut h[a], KvOutput::Append(Some(written as u64 + 1)));
        assert_rejected_on_key(&h, &key)?;
    }
}
