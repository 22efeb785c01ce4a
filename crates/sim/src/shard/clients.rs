//! The sharded world's clients: data and controller clerks as actors,
//! running operations to completion for the lab's tests, scripted workloads
//! (appenders, random mixes), and the keys and random values tests use.
//! Every data operation is recorded in the world's lincheck history.

use bytes::Bytes;
use rand::Rng;
use shardmeta::{Config, ShardId};

use crate::events::Micros;
use crate::kv::{ClerkOp, ClerkResult, ClientId};
use crate::shard::clerk::ShardClerk;
use crate::shard::ctrl_clerk::{CtrlClerk, CtrlOp, CtrlResult};
use crate::shard::script::Script;
use crate::shard::world::{Actor, ClerkKind, ShardWorld};
use crate::SEC;

impl ShardWorld {
    // ---- clients ---------------------------------------------------------------------

    fn add_actor(&mut self, clerk: ClerkKind) -> ClientId {
        let id = self.next_client;
        self.clients.insert(
            id,
            Actor {
                clerk,
                inflight: None,
                ctrl_busy: false,
                last: None,
                last_ctrl: None,
                script: None,
                stopping: false,
            },
        );
        id
    }

    /// A new data client. Its id doubles as its session's client id, so ids
    /// are unique across the world.
    pub fn make_client(&mut self) -> ClientId {
        self.next_client += 1;
        let clerk = ShardClerk::new(
            self.next_client,
            self.keyspace,
            self.controllers(),
            self.cfg.clerk,
        );
        self.add_actor(ClerkKind::Data(clerk))
    }

    /// A new controller client.
    pub fn make_ctrl_client(&mut self) -> ClientId {
        self.next_client += 1;
        let clerk = CtrlClerk::new(self.next_client, self.controllers(), self.cfg.clerk);
        self.add_actor(ClerkKind::Ctrl(clerk))
    }

    pub fn is_idle(&self, client: ClientId) -> bool {
        let a = &self.clients[&client];
        a.inflight.is_none() && !a.ctrl_busy
    }

    /// Starts a data operation without waiting.
    pub fn start_op(&mut self, client: ClientId, op: ClerkOp) {
        let now = self.now;
        let handle = self.history.invoke(client, &op, now);
        let actor = self.clients.get_mut(&client).expect("known client");
        actor.inflight = Some((handle, op.clone()));
        actor.last = None;
        let ClerkKind::Data(clerk) = &mut actor.clerk else {
            panic!("client {client} is a controller client");
        };
        let fx = clerk.start(op, now);
        self.apply_effects(client, fx);
    }

    pub fn start_get(&mut self, client: ClientId, key: &Bytes) {
        self.start_op(client, ClerkOp::Get(key.clone()));
    }

    /// The value a finished Get returned (`None`: not finished).
    pub fn finished_value(&self, client: ClientId) -> Option<Option<Bytes>> {
        match &self.clients[&client].last {
            Some(ClerkResult::Value(v)) => Some(v.clone()),
            _ => None,
        }
    }

    /// Runs a data operation to completion (60 s of virtual time at most).
    pub fn must(&mut self, client: ClientId, op: ClerkOp) -> ClerkResult {
        let desc = format!("{op:?}");
        self.start_op(client, op);
        self.run_until(60 * SEC, |w| w.is_idle(client));
        assert!(
            self.is_idle(client),
            "client {client}: {desc} did not finish in 60 s"
        );
        self.clients[&client].last.clone().expect("a result")
    }

    pub fn get(&mut self, client: ClientId, key: &Bytes) -> Option<Bytes> {
        match self.must(client, ClerkOp::Get(key.clone())) {
            ClerkResult::Value(v) => v,
            other => panic!("get({key:?}) -> {other:?}"),
        }
    }

    pub fn put(&mut self, client: ClientId, key: &Bytes, value: &str) {
        let r = self.must(
            client,
            ClerkOp::Put(key.clone(), Bytes::from(value.to_string())),
        );
        assert_eq!(r, ClerkResult::Done, "put({key:?}, {value})");
    }

    pub fn append(&mut self, client: ClientId, key: &Bytes, value: &str) {
        let r = self.must(
            client,
            ClerkOp::Append(key.clone(), Bytes::from(value.to_string())),
        );
        assert!(
            matches!(r, ClerkResult::Length(_)),
            "append({key:?}) -> {r:?}"
        );
    }

    /// Runs a controller operation on `client` to completion.
    pub fn ctrl(&mut self, client: ClientId, op: CtrlOp) -> CtrlResult {
        let now = self.now;
        let actor = self.clients.get_mut(&client).expect("known client");
        let ClerkKind::Ctrl(clerk) = &mut actor.clerk else {
            panic!("client {client} is a data client");
        };
        actor.ctrl_busy = true;
        actor.last_ctrl = None;
        let fx = clerk.start(op.clone(), now);
        self.apply_effects(client, fx);
        self.run_until(60 * SEC, |w| w.is_idle(client));
        assert!(
            self.is_idle(client),
            "controller op {op:?} did not finish in 60 s"
        );
        self.clients[&client].last_ctrl.clone().expect("a result")
    }

    /// Starts a controller operation on `client` without waiting.
    pub fn start_ctrl(&mut self, client: ClientId, op: CtrlOp) {
        let now = self.now;
        let actor = self.clients.get_mut(&client).expect("known client");
        let ClerkKind::Ctrl(clerk) = &mut actor.clerk else {
            panic!("client {client} is a data client");
        };
        actor.ctrl_busy = true;
        actor.last_ctrl = None;
        let fx = clerk.start(op, now);
        self.apply_effects(client, fx);
    }

    pub fn last_ctrl(&self, client: ClientId) -> Option<&CtrlResult> {
        self.clients[&client].last_ctrl.as_ref()
    }

    /// The lab's `join(gi...)`: data groups join with their members.
    pub fn join(&mut self, gis: &[usize]) {
        let groups = gis
            .iter()
            .map(|&gi| (self.gid(gi), self.members(gi)))
            .collect();
        let r = self.ctrl(self.admin, CtrlOp::Join(groups));
        assert_eq!(r, CtrlResult::Done, "join {gis:?}");
    }

    /// The lab's `leave(gi...)`.
    pub fn leave(&mut self, gis: &[usize]) {
        let gids = gis.iter().map(|&gi| self.gid(gi)).collect();
        let r = self.ctrl(self.admin, CtrlOp::Leave(gids));
        assert_eq!(r, CtrlResult::Done, "leave {gis:?}");
    }

    pub fn move_shard(&mut self, shard: ShardId, gi: usize) {
        let r = self.ctrl(self.admin, CtrlOp::Move(shard, self.gid(gi)));
        assert_eq!(r, CtrlResult::Done, "move {shard} to {gi}");
    }

    /// The latest configuration (a linearizable query of the controller).
    pub fn query_latest(&mut self) -> Config {
        self.query(None)
    }

    pub fn query(&mut self, num: Option<u64>) -> Config {
        match self.ctrl(self.admin, CtrlOp::Query(num)) {
            CtrlResult::Config(c) => c,
            other => panic!("query {num:?} -> {other:?}"),
        }
    }

    // ---- scripted clients ------------------------------------------------------------

    /// One client per key, each putting an initial value and then appending
    /// random strings of `value_len` bytes to its key, pausing `think`
    /// between operations, until stopped.
    pub fn spawn_appenders(
        &mut self,
        keys: &[Bytes],
        value_len: usize,
        think: Micros,
    ) -> Vec<ClientId> {
        let ids: Vec<ClientId> = keys.iter().map(|_| self.make_client()).collect();
        for (k, &id) in keys.iter().zip(&ids) {
            self.clients.get_mut(&id).expect("client").script =
                Some(Script::appender(k.clone(), value_len, think));
            self.next_scripted_op(id);
        }
        ids
    }

    /// `n` clients doing the lab's random mix (half appends, some puts, the
    /// rest gets) over `keys`, until stopped.
    pub fn spawn_random_clients(&mut self, keys: &[Bytes], n: usize) -> Vec<ClientId> {
        let ids: Vec<ClientId> = (0..n).map(|_| self.make_client()).collect();
        for &id in &ids {
            self.clients.get_mut(&id).expect("client").script =
                Some(Script::random(keys.to_vec(), 5));
            self.next_scripted_op(id);
        }
        ids
    }

    /// Scripted clients finish their current operation and stop.
    pub fn stop_clients(&mut self, ids: &[ClientId]) {
        for id in ids {
            self.clients.get_mut(id).expect("client").stopping = true;
        }
    }

    pub fn run_until_idle(&mut self, ids: &[ClientId], max: Micros) {
        let ids = ids.to_vec();
        self.run_until(max, |w| ids.iter().all(|&c| w.is_idle(c)));
        for c in &ids {
            assert!(
                self.is_idle(*c),
                "client {c} did not finish within the limit"
            );
        }
    }

    /// For each appender: its key and the value it expects there.
    pub fn appended_values(&self, ids: &[ClientId]) -> Vec<(Bytes, String)> {
        ids.iter()
            .map(|id| {
                let s = self.clients[id].script.as_ref().expect("a scripted client");
                s.expected().expect("an appender that never lost track")
            })
            .collect()
    }

    pub(super) fn next_scripted_op(&mut self, client: ClientId) {
        let actor = self.clients.get_mut(&client).expect("client");
        if actor.stopping || actor.inflight.is_some() {
            return;
        }
        let Some(script) = actor.script.as_mut() else {
            return;
        };
        let op = script.next_op(&mut self.rng);
        self.start_op(client, op);
    }

    // ---- keys and randomness ---------------------------------------------------------

    /// `n` keys, key `i` in shard `i % shards`.
    pub fn keys_cycling_shards(&self, n: usize) -> Vec<Bytes> {
        let mut keys = Vec::new();
        let mut next_candidate = 0u64;
        for i in 0..n {
            let want = (i % self.cfg.shards as usize) as ShardId;
            loop {
                let k = format!("k{next_candidate}");
                next_candidate += 1;
                if self.keyspace.shard_of_key(k.as_bytes()) == want {
                    keys.push(Bytes::from(k));
                    break;
                }
            }
        }
        keys
    }

    /// One key in each of the first `n` shards.
    pub fn keys_one_per_shard(&self, n: usize) -> Vec<Bytes> {
        assert!(n <= self.cfg.shards as usize);
        self.keys_cycling_shards(n)
    }

    pub fn random_string(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| self.rng.gen_range(b'a'..=b'z') as char)
            .collect()
    }

    pub fn random_pause(&mut self, max: Micros) -> Micros {
        self.rng.gen_range(0..max.max(1))
    }
}
