//! A sharded group hosted by the real `replica` driver (one node, in-memory
//! storage): commands and ReadIndex reads go through Raft, ownership is
//! checked at apply and at read time, and a snapshot taken mid-migration
//! restores on reboot.

use bytes::Bytes;
use raft::{MemStorage, Storage};
use replica::{Config, Outcome};
use shardkv::{Command, Op, OpError, Reply, Request, Response, Settings, ShardKv, ShardStatus};
use shardmeta::{Config as ShardConfig, Member};

type Replica = replica::Replica<MemStorage, ShardKv>;

fn boot(storage: MemStorage) -> Replica {
    let mut cfg = Config::new(raft::Config::new(1, vec![1]));
    cfg.snapshot_every_entries = Some(3);
    Replica::new(cfg, storage, ShardKv::new(Settings::new(1, 10))).unwrap()
}

fn drive(r: &mut Replica) -> Vec<(u64, Outcome<ShardKv>)> {
    let done = r.drive(&mut |_m| {}).unwrap();
    done.into_iter().map(|c| (c.token, c.outcome)).collect()
}

fn config(num: u64, shards: Vec<u64>) -> ShardConfig {
    let groups = [1, 2]
        .into_iter()
        .map(|g| {
            let m = Member {
                id: g,
                addr: format!("10.0.0.{g}:1"),
            };
            (g, vec![m])
        })
        .collect();
    ShardConfig {
        num,
        shards,
        groups,
    }
}

#[test]
fn a_group_runs_under_the_replica_and_restores_mid_migration() {
    let mut r = boot(MemStorage::new());
    for t in 0..30 {
        r.tick(t * 10);
        drive(&mut r);
    }
    assert!(r.is_leader());
    let key = Bytes::from("k");
    let shard = shardmeta::Keyspace::new(10).unwrap().shard_of_key(&key);
    r.propose(1, Command::NewConfig(config(1, vec![1; 10])), 300)
        .unwrap();
    let put = Op::Put {
        key: key.clone(),
        value: Bytes::from("v"),
    };
    let request = Request {
        client_id: 9,
        seq: 1,
        op: put,
    };
    r.propose(2, Command::Request(request.clone()), 300)
        .unwrap();
    r.read(3, shardkv::Query::Op(Op::Get { key: key.clone() }))
        .unwrap();
    let done = drive(&mut r);
    assert!(done.contains(&(2, Outcome::Applied(Response::Op(Ok(Reply::Done))))));
    assert!(done.contains(&(3, Outcome::Value(Ok(Reply::Value(Some(Bytes::from("v"))))))));

    // Config 2 gives the key's shard to group 2: frozen here, reads refused.
    let mut owners = vec![1; 10];
    owners[shard as usize] = 2;
    r.propose(4, Command::NewConfig(config(2, owners)), 310)
        .unwrap();
    r.read(5, shardkv::Query::Op(Op::Get { key: key.clone() }))
        .unwrap();
    let mut retry = request;
    retry.seq = 2;
    r.propose(6, Command::Request(retry), 310).unwrap();
    let done = drive(&mut r);
    assert!(done
        .iter()
        .any(|(t, o)| *t == 5 && matches!(o, Outcome::Value(Err(_)))));
    assert!(done.iter().any(|(t, o)| *t == 6
        && matches!(
            o,
            Outcome::Applied(Response::Op(Err(OpError::WrongGroup(_))))
        )));
    for t in 31..40 {
        r.tick(t * 10);
        drive(&mut r);
    }
    let before = r.state_machine().clone();
    assert_eq!(before.status(shard), ShardStatus::HandingOff);
    let storage = r.into_storage();
    assert!(
        storage.snapshot().unwrap().meta.index > 0,
        "a snapshot was taken"
    );
    let mut rebooted = boot(storage);
    drive(&mut rebooted);
    assert_eq!(rebooted.state_machine(), &before);
}

/// A snapshot and log entries written in version 1 (string values only,
/// before expiry), kept as bytes under `testdata/` since before the format
/// changed, still load: data, sessions and configuration come back, and an
/// old InstallShards entry still applies.
#[test]
fn version_1_snapshot_and_entries_still_load() {
    let old = include_bytes!("../../testdata/snapshot_v1.bin");
    assert_eq!(old[4], 1, "the fixture is version 1");
    let mut sm = ShardKv::new(Settings::new(1, 10));
    sm.restore(old).expect("version 1 loads");
    assert_eq!(sm.config().num, 1);
    assert_eq!(sm.query(b"a"), Ok(Some(Bytes::from("1x"))));
    assert_eq!(sm.query(b"b"), Ok(Some(Bytes::from("22"))));
    assert_eq!(sm.query(b"{t}x"), Ok(Some(Bytes::from("333"))));
    assert!(sm.sessions().get(42).is_some() && sm.sessions().get(43).is_some());
    let mut again = ShardKv::new(Settings::new(1, 10));
    again.restore(&sm.snapshot()).unwrap();
    assert_eq!(again, sm);
    // The APPEND entry of client 43 (already applied) is a duplicate: its
    // cached answer, not a second append.
    let append = include_bytes!("../../testdata/entry_v1_append.bin");
    assert_eq!(append[0], 1, "the fixture is version 1");
    let index = sm.applied_index() + 1;
    assert_eq!(sm.apply(index, append), Response::Op(Ok(Reply::Length(2))));
    assert_eq!(sm.query(b"a"), Ok(Some(Bytes::from("1x"))));
    let install = shardkv::decode_entry(include_bytes!("../../testdata/entry_v1_install.bin"))
        .expect("a version 1 InstallShards decodes");
    let Command::InstallShards { num, shards, .. } = install.cmd else {
        panic!("not an install: {:?}", install.cmd)
    };
    assert_eq!(num, 2);
    let data: Vec<_> = shards[&0].live_strings(0).collect();
    assert_eq!(data, vec![(b"k".as_slice(), b"v".as_slice())]);
}
