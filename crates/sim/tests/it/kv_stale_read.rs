//! A targeted stale-read scenario (dissertation §6.4, the bug Jepsen found in a
//! RESP-speaking Raft store): a leader cut off with a minority must not answer a read
//! from its local state after the majority has moved on. Unlike the sweep, which
//! stumbles on this window rarely, the schedule here forces it every run.

use bytes::Bytes;
use sim::kv::{ClerkOp, ClerkResult, KvCluster, KvConfig};
use sim::{seed_from_env, SeedGuard, MS, SEC};

#[test]
fn partitioned_leader_never_serves_a_stale_read() {
    let seed = seed_from_env(0x57a1e);
    let _g = SeedGuard(seed, "partitioned_leader_never_serves_a_stale_read");
    let mut c = KvCluster::new(KvConfig::new(5, seed));
    let writer = c.make_client();
    c.put(writer, "k", "old");
    let old_leader = c.leader().expect("a leader after a successful put");
    let others: Vec<u64> = c.ids().into_iter().filter(|&i| i != old_leader).collect();
    // The old leader keeps one follower; the other three form the majority.
    let minority = [old_leader, others[0]];
    let majority = [others[1], others[2], others[3]];
    c.partition(&[&minority, &majority]);
    // A reader that can only reach the old leader, and a writer on the majority side.
    let reader = c.make_client();
    c.connect_client(reader, &[old_leader]);
    c.connect_client(writer, &majority);
    c.put(writer, "k", "new");
    assert!(
        c.leader().is_some_and(|l| majority.contains(&l)),
        "the majority elected a new leader"
    );
    // The old leader cannot confirm leadership with a quorum: no answer, and above all
    // not "old".
    let read = c.call(reader, ClerkOp::Get(Bytes::from_static(b"k")), 3 * SEC);
    assert!(
        !matches!(&read, Some(ClerkResult::Value(Some(v))) if v.as_ref() == b"old"),
        "stale read: the partitioned old leader {old_leader} answered \"old\" after \"new\" was acknowledged"
    );
    assert_eq!(read, None, "a minority must not answer reads at all");
    // Healed, the pending read completes with the new value.
    c.connect_all();
    c.connect_client(reader, &c.ids());
    assert!(
        c.run_until(20 * SEC, |c| c.is_idle(reader)),
        "the read never completed after healing"
    );
    assert_eq!(
        c.last_result(reader),
        Some(&ClerkResult::Value(Some(Bytes::from_static(b"new"))))
    );
    c.run_for(100 * MS);
    c.end();
}
