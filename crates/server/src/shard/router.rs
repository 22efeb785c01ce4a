//! The client path of a sharded process: any key, any node. A key maps to
//! its slot, its shard and (in the routing configuration the driver
//! publishes) its owner group; the request goes to the local replica if this
//! process hosts that group's leader, else to the process presumed to lead
//! it, over the peer transport (one hop). `WrongGroup` answers (the group
//! has not taken the shard yet, or gave it away) make the driver poll the
//! controller, and the request is retried until the deadline.
//!
//! The single-group guarantees hold unchanged (`requests` states them):
//! `handed` is set once an attempt may have been proposed (`Unknown`, or a
//! forwarded attempt never answered); at the deadline a request that was
//! never handed is `-CLUSTERDOWN`, any other `-TIMEOUT`. `NotLeader`,
//! `Busy`, `NotSent`, `ReadAborted` and `WrongGroup` started nothing.
//!
//! Exactly-once across retries and shard moves: every attempt of a write
//! carries the same (client id, seq); shardkv sessions are created lazily
//! and move with the shards, so ids are globally unique: process id in the
//! high bits, then a boot epoch persisted in the data dir (so a restarted
//! process never reuses an id), then a counter ([`ClientIds`]). The retry
//! rule of `shardkv::session` is kept: a request is never retried after its
//! deadline, which `ShardedConfig::validate` bounds by half the groups'
//! session timeout, and the session pool never runs more than the response
//! window ahead of a session's oldest unanswered seq.
//!
//! Disk full: while a group hosted here is parked (its log write found no
//! space; `shard::driver`), writes for it entering this process are refused
//! at once with `-MISCONF` (certainly no effect); reads for it go to another
//! member (a hint, else round robin), and only a read that finds no leader in
//! time is answered `-MISCONF` instead of `-CLUSTERDOWN`. Writes entering a
//! process whose file system is below `--min-free-bytes` are refused with
//! `-MISCONF` too (`crate::space`; unlike the single-group leader, a sharded
//! group's leader does not yet refuse writes forwarded to it on that ground).
//!
//! Controller commands (`SHARDCTL`) go the same way to the controller group,
//! inside one kv-style session per process, one at a time.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use raft::NodeId;
use shardkv::OpError;
use shardmeta::{Config, GroupId, Keyspace, CONTROLLER_GROUP, NO_GROUP};
use tokio::time::Instant;

use super::driver::DriverHandle;
use super::forward::Forwards;
use crate::peer::{GroupAnswer, GroupForward, Outgoing, Peers, ShardFrame};
use crate::requests::{RequestError, Timeouts};
use crate::sessions::{SessionPool, Take};

/// Pause between attempts that were refused or found the wrong group.
pub(super) const RETRY_PAUSE: std::time::Duration = std::time::Duration::from_millis(5);

/// How long [`Router::recheck_redirect`] waits for a configuration poll.
pub const RECHECK_WITHIN: std::time::Duration = std::time::Duration::from_millis(250);

/// How often [`Router::recheck_redirect`] looks for the poll's answer.
const RECHECK_PAUSE: std::time::Duration = std::time::Duration::from_millis(1);

/// How long `CLUSTER SLOTS | SHARDS | NODES` waits to learn unknown leaders.
pub const LEARN_LEADERS_WITHIN: std::time::Duration = std::time::Duration::from_millis(500);

/// Globally unique shardkv client ids: `process << 40 | epoch << 20 | n`.
///
/// Invariant: `n < 2^20` and `epoch < 2^20`, so ids of different
/// processes, boots and counters never collide (the epoch increases on
/// every boot; see `shard::node`).
pub struct ClientIds {
    base: u64,
    next: AtomicU64,
}

impl ClientIds {
    pub fn new(process: NodeId, epoch: u64) -> Self {
        assert!(process < 1 << 24, "process ids must be below 2^24");
        ClientIds {
            base: (process << 40) | ((epoch & 0xF_FFFF) << 20),
            next: AtomicU64::new(0),
        }
    }

    pub fn next(&self) -> u64 {
        let n = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        assert!(n < 1 << 20, "more than 2^20 sessions in one boot");
        self.base | n
    }
}

/// Which group a request is for.
#[derive(Clone, Copy, Debug)]
enum Target<'a> {
    /// The group owning this key in the routing configuration of each attempt.
    Key(&'a [u8]),
    /// This data group, whatever it owns (a `WrongGroup` answer is returned
    /// to the caller, which chose the shards, instead of retried).
    Group(GroupId),
    Controller,
}

/// A controller session (kv's sessions: registered through the log).
struct CtrlSession {
    client_id: u64,
    next_seq: u64,
}

/// The sharded process's client-facing core, shared by all connections.
pub struct Router {
    pub id: NodeId,
    pub keyspace: Keyspace,
    pub controllers: Vec<NodeId>,
    /// Groups hosted here (the controller is `CONTROLLER_GROUP`).
    pub hosted: BTreeSet<GroupId>,
    pub driver: DriverHandle,
    pub peers: Peers,
    pub forwards: Arc<Forwards>,
    pub timeouts: Timeouts,
    /// The process's free-space floor (`crate::space`): writes entering here
    /// are refused while its file system is below it.
    pub reserve: crate::space::Reserve,
    sessions: SessionPool,
    ids: ClientIds,
    /// Presumed leaders of groups, learned from `NotLeader` hints.
    hints: Mutex<BTreeMap<GroupId, NodeId>>,
    pub(super) rr: AtomicUsize,
    ctrl: tokio::sync::Mutex<Option<CtrlSession>>,
    /// With TLS on client ports: how `SHARDCTL JOIN` PINGs a member's
    /// client address (`crate::tls::Acceptor::probe`).
    pub probe_tls: Option<crate::client::ClientTls>,
    /// This process's own peer address (`--peers`; `Peers` holds only the
    /// others'): what a membership change adding this process records.
    pub self_peer: String,
}

impl Router {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: NodeId,
        keyspace: Keyspace,
        controllers: Vec<NodeId>,
        hosted: BTreeSet<GroupId>,
        driver: DriverHandle,
        peers: Peers,
        forwards: Arc<Forwards>,
        timeouts: Timeouts,
        response_window: u64,
        ids: ClientIds,
        reserve: crate::space::Reserve,
    ) -> Self {
        Router {
            reserve,
            id,
            keyspace,
            controllers,
            hosted,
            driver,
            peers,
            forwards,
            timeouts,
            sessions: SessionPool::new(response_window),
            ids,
            hints: Mutex::new(BTreeMap::new()),
            rr: AtomicUsize::new(0),
            ctrl: tokio::sync::Mutex::new(None),
            probe_tls: None,
            self_peer: String::new(),
        }
    }

    /// A linearizable read of a read-only op (ReadIndex on its group's
    /// leader, no log entry). A keyless one (`DBSIZE`, `KEYS`, `SCAN`,
    /// `RANDOMKEY`) reads the slots this process is the primary of
    /// (`super::keyspace`).
    pub async fn read(&self, op: kv::Op) -> Result<kv::Reply, RequestError> {
        let Some(key) = op.key().cloned() else {
            return super::keyspace::read(self, op).await;
        };
        let deadline = Instant::now() + self.timeouts.request;
        let req = GroupForward::Read(shardkv::Query::Op(op));
        match self.run(Target::Key(&key), &req, deadline).await? {
            (GroupAnswer::Value(Ok(v)), _) => Ok(v),
            (other, _) => {
                tracing::error!("a read was answered {other:?}; failing it");
                Err(RequestError::Timeout)
            }
        }
    }

    /// A read of `shards` of group `gid` (a [`shardkv::Query::Shards`]);
    /// `Ok(Err(_))` when the group does not serve one of them (the caller
    /// plans again from a newer configuration).
    pub(super) async fn read_shards(
        &self,
        gid: GroupId,
        shards: Vec<shardmeta::ShardId>,
        op: kv::Op,
        deadline: Instant,
    ) -> Result<shardkv::QueryResult, RequestError> {
        let req = GroupForward::Read(shardkv::Query::Shards { shards, op });
        match self.run(Target::Group(gid), &req, deadline).await? {
            (GroupAnswer::Value(v), _) => Ok(v),
            (other, _) => {
                tracing::error!("a read was answered {other:?}; failing it");
                Err(RequestError::Timeout)
            }
        }
    }

    /// A write through the owning group's log, exactly once per call.
    /// `FLUSHALL` / `FLUSHDB` go to every group this process is the
    /// primary of (`super::keyspace::flush`).
    pub async fn write(&self, op: shardkv::Op) -> Result<shardkv::Reply, RequestError> {
        let Some(key) = op.key().cloned() else {
            if op == kv::Op::FlushAll {
                return super::keyspace::flush(self).await;
            }
            return Ok(kv::Reply::Error(kv::CmdError::Keyless));
        };
        self.write_to(Target::Key(&key), op).await
    }

    /// [`Router::write`] to group `gid` (a keyless op it applies to the
    /// shards it serves).
    pub(super) async fn write_group(
        &self,
        gid: GroupId,
        op: shardkv::Op,
    ) -> Result<shardkv::Reply, RequestError> {
        self.write_to(Target::Group(gid), op).await
    }

    async fn write_to(
        &self,
        target: Target<'_>,
        op: shardkv::Op,
    ) -> Result<shardkv::Reply, RequestError> {
        let deadline = Instant::now() + self.timeouts.request;
        if let Some(why) = self.reserve.low() {
            return Err(RequestError::NoSpace(why));
        }
        let (client_id, seq) = self.take_seq(deadline).await?;
        let req = GroupForward::Write(shardkv::Request { client_id, seq, op });
        let res = self.run(target, &req, deadline).await;
        self.sessions.release(client_id, seq);
        match res? {
            (GroupAnswer::Applied(Ok(reply)), _) => Ok(reply),
            (GroupAnswer::Applied(Err(OpError::ValueTooLarge { len, max })), _) => {
                Err(RequestError::Kv(kv::KvError::ValueTooLarge { len, max }))
            }
            (other, _) => {
                // StaleRequest, or an answer of another kind: it may have taken effect.
                tracing::error!("a write was answered {other:?}; failing it");
                Err(RequestError::Timeout)
            }
        }
    }

    /// A (session, seq) for a new write; sessions are made here, lazily.
    async fn take_seq(&self, deadline: Instant) -> Result<(u64, u64), RequestError> {
        loop {
            match self.sessions.try_take() {
                Take::Seq(c, s) => return Ok((c, s)),
                Take::Register => self.sessions.add(self.ids.next()),
                Take::Full => pause(deadline)
                    .await
                    .map_err(|_| RequestError::ClusterDown)?,
            }
        }
    }

    /// A configuration read through the controller's leader (`None`: the latest).
    pub async fn ctrl_query(&self, num: Option<u64>) -> Result<Config, RequestError> {
        let deadline = Instant::now() + self.timeouts.request;
        match self
            .run(Target::Controller, &GroupForward::CtrlRead(num), deadline)
            .await?
        {
            (GroupAnswer::Config(c), _) => Ok(c),
            (other, _) => {
                tracing::error!("a configuration read was answered {other:?}");
                Err(RequestError::Timeout)
            }
        }
    }

    /// Proposes a Join / Leave / Move to the controller, exactly once.
    pub async fn ctrl_change(
        &self,
        op: shardctrler::Op,
    ) -> Result<shardctrler::Response, RequestError> {
        let deadline = Instant::now() + self.timeouts.request;
        let mut session = self.ctrl.lock().await;
        loop {
            let (client_id, seq) = match session.as_mut() {
                Some(s) => {
                    s.next_seq += 1;
                    (s.client_id, s.next_seq - 1)
                }
                None => {
                    *session = Some(self.ctrl_register(deadline).await?);
                    continue;
                }
            };
            let cmd = shardctrler::Command::Request(shardctrler::Request {
                client_id,
                seq,
                op: op.clone(),
            });
            match self
                .run(Target::Controller, &GroupForward::Ctrl(cmd), deadline)
                .await?
            {
                (GroupAnswer::Ctrl(Err(shardctrler::CtrlError::SessionExpired { .. })), false) => {
                    *session = None; // never applied: register again and retry
                }
                (GroupAnswer::Ctrl(r), _) => return Ok(r),
                (other, _) => {
                    tracing::error!("a controller command was answered {other:?}");
                    return Err(RequestError::Timeout);
                }
            }
        }
    }

    async fn ctrl_register(&self, deadline: Instant) -> Result<CtrlSession, RequestError> {
        let req = GroupForward::Ctrl(shardctrler::Command::RegisterSession);
        // Registering has no effect a client can see: a failure is CLUSTERDOWN.
        match self.run(Target::Controller, &req, deadline).await {
            Ok((GroupAnswer::Ctrl(Ok(shardctrler::Reply::Registered { client_id })), _)) => {
                Ok(CtrlSession {
                    client_id,
                    next_seq: 1,
                })
            }
            _ => Err(RequestError::ClusterDown),
        }
    }

    /// Attempts `req` until answered; returns the answer and whether an
    /// earlier attempt may have been proposed.
    async fn run(
        &self,
        target: Target<'_>,
        req: &GroupForward,
        deadline: Instant,
    ) -> Result<(GroupAnswer, bool), RequestError> {
        let mut handed = false;
        loop {
            let answer = match self.group_of(target) {
                Some((gid, members)) => {
                    if let Some(why) = self.disk_full(gid).filter(|_| req.is_write()) {
                        return Err(RequestError::NoSpace(why));
                    }
                    self.attempt(gid, &members, req, deadline).await
                }
                None => {
                    self.driver.saw_applied(0); // no owner yet: poll the controller
                    GroupAnswer::NotLeader { hint: None }
                }
            };
            match answer {
                GroupAnswer::Applied(Err(OpError::WrongGroup(wg)))
                | GroupAnswer::Value(Err(wg)) => {
                    self.driver.saw_applied(wg.config_num);
                    if matches!(target, Target::Group(_)) {
                        return Ok((answer, handed));
                    }
                }
                GroupAnswer::Applied(Err(OpError::SessionsFull)) => {}
                a @ (GroupAnswer::Applied(_)
                | GroupAnswer::Value(_)
                | GroupAnswer::Ctrl(_)
                | GroupAnswer::Config(_)
                | GroupAnswer::Admin(_)) => return Ok((a, handed)),
                GroupAnswer::Unknown => handed = true,
                GroupAnswer::NotLeader { .. }
                | GroupAnswer::Busy
                | GroupAnswer::NotSent
                | GroupAnswer::ReadAborted => {}
            }
            if pause(deadline).await.is_err() {
                let full = self.group_of(target).and_then(|(g, _)| self.disk_full(g));
                return Err(match (handed, full) {
                    (true, _) => RequestError::Timeout,
                    (false, Some(why)) => RequestError::NoSpace(why),
                    (false, None) => RequestError::ClusterDown,
                });
            }
        }
    }

    /// Runs admin `op` on group `gid`'s replica on the process presumed to
    /// lead it (changes and transfers need the leader: a follower answers
    /// "not leader" with its hint, and the next attempt follows it).
    ///
    /// An attempt whose fate is unknown (the presumed leader did not answer
    /// in time: killed, cut off) is retried, like a client write; a
    /// membership change is not idempotent, so a retry refused because the
    /// change is already in effect ([`in_effect`]) counts as done, and one
    /// that cannot tell says that an earlier attempt may have taken effect.
    pub async fn admin(&self, gid: GroupId, op: crate::admin::AdminOp) -> crate::admin::AdminReply {
        let deadline = Instant::now() + self.timeouts.request;
        let target = if gid == CONTROLLER_GROUP {
            Target::Controller
        } else {
            Target::Group(gid)
        };
        let req = GroupForward::Admin(op.clone());
        let mut handed = false;
        loop {
            let Some((g, members)) = self.group_of(target) else {
                return Err(format!(
                    "ERR group {gid} is not in the controller's latest configuration (raftkv shard query)"
                ));
            };
            match self.attempt(g, &members, &req, deadline).await {
                GroupAnswer::Admin(Err(e)) if handed => {
                    if in_effect(&op, &e) {
                        return Ok(Vec::new());
                    }
                    if !e.contains("already in progress") {
                        return Err(format!("{e} (an earlier attempt that timed out may have taken effect: check RAFT GROUP {gid} MEMBER LIST)"));
                    }
                }
                GroupAnswer::Admin(reply) => return reply,
                GroupAnswer::Unknown => handed = true,
                _ => {}
            }
            if pause(deadline).await.is_err() {
                return Err(if handed {
                    format!("TIMEOUT group {gid}'s leader did not answer in time; the operation may or may not take effect (check RAFT GROUP {gid} MEMBER LIST)")
                } else {
                    format!("CLUSTERDOWN no leader of group {gid} answered")
                });
            }
        }
    }

    /// Why hosted group `gid` cannot write its log here, while it cannot.
    fn disk_full(&self, gid: GroupId) -> Option<String> {
        if !self.hosted.contains(&gid) {
            return None;
        }
        self.driver.disk_full(gid)
    }

    /// The group `target` goes to now and its members (process ids).
    fn group_of(&self, target: Target<'_>) -> Option<(GroupId, Vec<NodeId>)> {
        match target {
            Target::Controller => Some((CONTROLLER_GROUP, self.controllers.clone())),
            Target::Group(gid) => {
                let (config, _) = self.driver.routing();
                let members: Vec<NodeId> = config.members(gid).iter().map(|m| m.id).collect();
                (!members.is_empty()).then_some((gid, members))
            }
            Target::Key(key) => {
                let (config, _) = self.driver.routing();
                let gid = config.owner(self.keyspace.shard_of_key(key));
                let members: Vec<NodeId> = config.members(gid).iter().map(|m| m.id).collect();
                (gid != NO_GROUP && !members.is_empty()).then_some((gid, members))
            }
        }
    }

    /// The process presumed to lead `gid`.
    /// A group parked here (disk full) counts as not hosted, minus this process.
    fn presumed_leader(&self, gid: GroupId, members: &[NodeId]) -> Option<NodeId> {
        let parked = self.disk_full(gid).is_some();
        let local = self.hosted.contains(&gid) && !parked;
        let local_state = if local {
            self.driver.leader_and_term(gid)
        } else {
            None
        };
        if let Some((Some(l), _)) = local_state {
            return Some(l);
        }
        // A hosted replica that has never heard from its group (term 0: started
        // with --join-group, not added yet) may wait for a leader forever: ask
        // the other members instead, as a process not hosting the group would.
        let joining = local_state.is_some_and(|(_, term)| term == 0);
        let others: Vec<NodeId> = members
            .iter()
            .copied()
            .filter(|&m| !(parked || joining) || m != self.id)
            .collect();
        let hints = self.hints.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(&h) = hints
            .get(&gid)
            .filter(|&&h| others.contains(&h) && self.reachable(h))
        {
            return Some(h);
        }
        if (local && !joining) || others.is_empty() {
            return None; // our own replica knows no leader yet: wait for the election
        }
        Some(others[self.rr.fetch_add(1, Ordering::Relaxed) % others.len()])
    }

    /// The leader this process currently presumes for `gid`, if any.
    ///
    /// A leader (known to a hosted replica, or a remembered hint) whose peer
    /// link is down (killed, cut off) does not count: `CLUSTER SLOTS` and `-MOVED` would send
    /// cluster clients to a dead address for as long as no request of that
    /// group happened to pass through here and fail (measured before this
    /// rule: half the processes still listed a leader killed with -9 five
    /// seconds later).
    pub fn leader_hint(&self, gid: GroupId) -> Option<NodeId> {
        if let Some(Some(l)) = self.driver.leader(gid) {
            if self.reachable(l) {
                return Some(l);
            }
        }
        self.hints
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&gid)
            .copied()
            .filter(|&h| self.reachable(h))
    }

    /// This process, or one whose peer link is up.
    fn reachable(&self, id: NodeId) -> bool {
        id == self.id || self.peers.get(id).is_some_and(|p| p.is_connected())
    }

    async fn attempt(
        &self,
        gid: GroupId,
        members: &[NodeId],
        req: &GroupForward,
        deadline: Instant,
    ) -> GroupAnswer {
        let Some(to) = self.presumed_leader(gid, members) else {
            return GroupAnswer::NotLeader { hint: None };
        };
        let answer = if to == self.id {
            self.local(gid, req, deadline).await
        } else {
            self.forward(to, gid, req, deadline).await
        };
        let mut hints = self.hints.lock().unwrap_or_else(|e| e.into_inner());
        match &answer {
            GroupAnswer::NotLeader { hint: Some(h) } if *h != to => {
                hints.insert(gid, *h);
            }
            GroupAnswer::NotLeader { .. } | GroupAnswer::Unknown | GroupAnswer::NotSent => {
                hints.remove(&gid);
            }
            _ => {
                hints.insert(gid, to);
            }
        }
        answer
    }

    async fn local(&self, gid: GroupId, req: &GroupForward, deadline: Instant) -> GroupAnswer {
        use host::{GroupCommand, GroupQuery};
        let fut = async {
            match req.clone() {
                GroupForward::Write(r) => {
                    self.driver
                        .propose(gid, GroupCommand::Data(shardkv::Command::Request(r)))
                        .await
                }
                GroupForward::Read(q) => self.driver.read(gid, GroupQuery::Data(q)).await,
                GroupForward::Ctrl(c) => self.driver.propose(gid, GroupCommand::Ctrl(c)).await,
                GroupForward::CtrlRead(n) => self.driver.read(gid, GroupQuery::Ctrl(n)).await,
                GroupForward::Admin(op) => self.driver.admin(gid, op).await,
            }
        };
        tokio::time::timeout_at(deadline, fut)
            .await
            .unwrap_or(GroupAnswer::Unknown)
    }

    async fn forward(
        &self,
        to: NodeId,
        group: GroupId,
        req: &GroupForward,
        deadline: Instant,
    ) -> GroupAnswer {
        let Some(peer) = self.peers.get(to) else {
            return GroupAnswer::NotSent;
        };
        if !peer.is_connected() {
            return GroupAnswer::NotSent;
        }
        let (id, rx) = self.forwards.register(to, req.clone());
        let frame = ShardFrame::Forward {
            id,
            group,
            req: req.clone(),
        };
        if !peer.send(Outgoing::Shard(frame)) {
            self.forwards.forget(id);
            return GroupAnswer::NotSent;
        }
        // A frame dropped unsent after this point (the link fell) is not
        // reported: its waiter times out as Unknown, the safe side.
        let until = deadline.min(Instant::now() + self.timeouts.forward_attempt);
        match tokio::time::timeout_at(until, rx).await {
            Ok(Ok(answer)) => answer,
            _ => {
                self.forwards.forget(id);
                GroupAnswer::Unknown
            }
        }
    }

    /// For a connection that asked for the cluster layout: `Some(redirect)`
    /// when `key` belongs elsewhere — `MOVED <slot> <addr>` from the routing
    /// configuration, or `TRYAGAIN` if that configuration is older than one
    /// a group is known to have applied (never a redirect backwards).
    /// `None`: serve it here (this process hosts the owner, or no group owns
    /// the key yet and the request path will say so).
    pub fn redirect(&self, key: &[u8]) -> Option<Redirect> {
        let (config, seen_applied) = self.driver.routing();
        let leaders = self.leaders(&config);
        let layout = crate::cluster_view::Layout {
            config: &config,
            keyspace: self.keyspace,
            me: self.id,
            leaders: &leaders,
        };
        let r = redirect_for(
            &layout,
            &self.hosted,
            seen_applied,
            shardmeta::key_slot(key),
        );
        if matches!(r, Some(Redirect::TryAgain)) {
            self.driver.saw_applied(seen_applied);
        }
        r
    }

    /// [`Router::redirect`] again after a controller has answered a fresh
    /// configuration poll (waiting at most [`RECHECK_WITHIN`]): for a key
    /// whose client came back right after being redirected away.
    ///
    /// Why: processes learn a new configuration at different moments (each
    /// polls on its own). Just after a shard moves from group A to group B,
    /// the process that already knows says `MOVED` to B, and one that does
    /// not yet says `MOVED` back to A: a client following redirects would
    /// bounce between the two until the slower one polls, which exhausts a
    /// cluster client's redirect budget (16 for the `redis` crate) in a
    /// few milliseconds. A client returning with a key it was just sent away
    /// for means some other process disagrees with this one, so this one
    /// checks before redirecting again; the stale side then learns the move
    /// and the bounce ends within one round trip to a controller.
    pub async fn recheck_redirect(&self, key: &[u8]) -> Option<Redirect> {
        let answered = self.driver.polls_answered();
        let routing = self.driver.routing().0.num;
        self.driver.refresh();
        let until = Instant::now() + RECHECK_WITHIN;
        while Instant::now() < until {
            tokio::time::sleep(RECHECK_PAUSE).await;
            // One answer: the refresh polls at once, and polls are 100 ms
            // apart, so an older poll is rarely still out. If one is and its
            // stale answer comes first, the client bounces once more and the
            // next recheck sees the newer configuration. (Waiting for two
            // answers would cost every recheck a full poll interval.)
            if self.driver.polls_answered() > answered || self.driver.routing().0.num > routing {
                break;
            }
        }
        self.redirect(key)
    }

    /// Asks every group of the routing configuration whose leader this
    /// process knows nothing of an empty read (no shard, no log entry), in
    /// parallel and for at most [`LEARN_LEADERS_WITHIN`]: the process that
    /// answers is the leader, and is remembered as such.
    pub async fn learn_leaders(&self) {
        let (config, _) = self.driver.routing();
        let unknown: Vec<GroupId> = config
            .groups
            .keys()
            .copied()
            .filter(|&g| g != NO_GROUP && self.leader_hint(g).is_none())
            .collect();
        let deadline = Instant::now() + LEARN_LEADERS_WITHIN;
        let asks = unknown
            .into_iter()
            .map(|gid| self.read_shards(gid, Vec::new(), kv::Op::DbSize, deadline));
        futures::future::join_all(asks).await;
    }

    /// The process to advertise for every group in `config` (`CLUSTER
    /// SLOTS`, `-MOVED`): its presumed leader, or while none is known its
    /// first member this process can reach (which forwards to the leader),
    /// never one known to be down while another is up.
    pub fn leaders(&self, config: &Config) -> BTreeMap<GroupId, NodeId> {
        config
            .groups
            .iter()
            .filter_map(|(&g, members)| {
                let l = self
                    .leader_hint(g)
                    .or_else(|| members.iter().map(|m| m.id).find(|&id| self.reachable(id)))?;
                Some((g, l))
            })
            .collect()
    }
}

/// Whether `refusal` of a retried membership change says the change is
/// already in effect (an earlier attempt, whose answer was lost, applied it):
/// an add refused as "already a member", a removal as "removed ... cannot be
/// reused" (the core remembers removed ids for good). A promotion refused as
/// "not a learner" could also mean the id was never one, so it does not count.
pub fn in_effect(op: &crate::admin::AdminOp, refusal: &str) -> bool {
    use raft::ConfChange;
    match op {
        crate::admin::AdminOp::Change { change, .. } => match change {
            ConfChange::AddLearner { .. } | ConfChange::AddVoter { .. } => {
                refusal.contains("already a member")
            }
            ConfChange::Remove { .. } => refusal.contains("was removed from the group"),
            ConfChange::Promote { .. } => false,
        },
        _ => false,
    }
}

/// What a cluster-aware connection is told instead of being served here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Redirect {
    /// `-MOVED <slot> <addr>`: the owner's presumed leader's client address.
    Moved { slot: u16, addr: String },
    /// `-TRYAGAIN`: this process's routing configuration is older than one
    /// some group has applied, so a redirect could point backwards.
    TryAgain,
}

impl std::fmt::Display for Redirect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Redirect::Moved { slot, addr } => f.write_str(&crate::cluster_view::moved(*slot, addr)),
            Redirect::TryAgain => f.write_str(
                "TRYAGAIN this node's view of the slot's owner is out of date; try again",
            ),
        }
    }
}

/// The redirect rule, pure: `None` when no group owns `slot` yet or this
/// process hosts its owner in `layout.config`; `TryAgain` when that
/// configuration is older than `seen_applied`; else `Moved`.
pub fn redirect_for(
    layout: &crate::cluster_view::Layout<'_>,
    hosted: &BTreeSet<GroupId>,
    seen_applied: u64,
    slot: u16,
) -> Option<Redirect> {
    let gid = layout.config.owner(layout.keyspace.shard_of_slot(slot));
    if gid == NO_GROUP || hosted.contains(&gid) {
        return None;
    }
    if layout.config.num < seen_applied {
        return Some(Redirect::TryAgain);
    }
    let addr = layout.owner_addr(slot)?.to_string();
    Some(Redirect::Moved { slot, addr })
}

/// Sleeps `RETRY_PAUSE`, or fails if that would pass the deadline.
async fn pause(deadline: Instant) -> Result<(), ()> {
    if Instant::now() + RETRY_PAUSE >= deadline {
        return Err(());
    }
    tokio::time::sleep(RETRY_PAUSE).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// MOVED only from a configuration no older than any a group is known
    /// to have applied; never for a group hosted here or an unowned slot.
    #[test]
    fn redirects_never_point_backwards() {
        use shardmeta::Member;
        let mut config = Config::initial(2);
        config.num = 5;
        config.shards = vec![1, 2];
        for (g, id) in [(1, 1), (2, 2)] {
            let addr = format!("127.0.0.1:{}", 6378 + id);
            config.groups.insert(g, vec![Member { id, addr }]);
        }
        let leaders = BTreeMap::new();
        let layout = crate::cluster_view::Layout {
            config: &config,
            keyspace: Keyspace::new(2).unwrap(),
            me: 1,
            leaders: &leaders,
        };
        let hosted = BTreeSet::from([1]);
        assert_eq!(redirect_for(&layout, &hosted, 5, 100), None, "hosted here");
        let moved = redirect_for(&layout, &hosted, 5, 9000).unwrap();
        assert_eq!(moved.to_string(), "MOVED 9000 127.0.0.1:6380");
        assert_eq!(
            redirect_for(&layout, &hosted, 6, 9000),
            Some(Redirect::TryAgain)
        );
        let mut unowned = config.clone();
        unowned.shards[1] = NO_GROUP;
        let layout = crate::cluster_view::Layout {
            config: &unowned,
            ..layout
        };
        assert_eq!(redirect_for(&layout, &hosted, 5, 9000), None, "unowned");
    }

    #[test]
    fn client_ids_differ_across_processes_boots_and_counters() {
        let a = ClientIds::new(1, 1);
        let b = ClientIds::new(1, 2);
        let c = ClientIds::new(2, 1);
        let ids = [a.next(), a.next(), b.next(), c.next()];
        let distinct: BTreeSet<u64> = ids.iter().copied().collect();
        assert_eq!(distinct.len(), ids.len());
    }
}
