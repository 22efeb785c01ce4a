//! The sharded driver: one task on the process's tokio runtime that owns
//! the process's `host::ShardNode<DiskStorage>` (its controller and
//! data-group replicas and their migration agents) and is the only code that
//! touches it. It hosts ShardNode's own logic, never a copy: this file only
//! carries ShardNode's inputs and outputs to and from the peer transport and
//! the client path, as the simulator's `sim::shard::process` does in virtual
//! time.
//!
//! Loop (`crate::driver::task::next_inputs`, the single-group driver's
//! too): wait for input until the next tick is due (if one was already
//! waiting, or several writes await commit, yield once first, so the tasks
//! woken with it send theirs too); take what has arrived (up to
//! [`crate::driver::MAX_INPUTS_PER_DRIVE`]); tick if due (sending what the
//! agents ask for, and polling the controller for the router); drive once
//! (Raft messages go out tagged with their group; completions answer
//! waiters); publish each group's status and the routing configuration.
//!
//! A task, not a thread, for the single-group driver's reason (its module
//! docs): a request or a peer's message reaches the driver as a task wake-up
//! on the same runtime, and its answers wake the waiting tasks the same way,
//! with no futex wake of another thread in between. What blocks inside a
//! drive blocks the worker it runs on: every hosted group syncs its log
//! inline (leaders too: the host has no sync thread; about 0.5-2 ms an fsync
//! here), takes its snapshots inline, and encodes and applies migrating
//! shards inline. The process's runtime has at least two workers (`raftkv`'s
//! `runtime`), so another runs the connections and peer links meanwhile, as
//! they ran beside the driver thread before. The steps that can block far
//! longer — draining the removal thread and reopening a group parked by a
//! full disk (its store's recovery) — go through
//! `crate::driver::task::blocking` (`tokio::task::block_in_place`).
//!
//! Invariants: every accepted request's `oneshot` is answered exactly once,
//! or dropped when the driver stops, the runtime drops its task, or its
//! group is parked (the waiter treats that as unknown); the published
//! routing configuration's number never decreases; a `HostError` stops the
//! driver and is reported through `fatal`.
//!
//! Disk full: the host parks a group whose log write found no space instead
//! of failing the drive (`host::Host` docs; the policy is `replica::space`,
//! the single-group driver's too). This driver logs it, drops the group's
//! pending requests, publishes it ([`View::disk_full`]: the router refuses
//! the group's writes with `-MISCONF`, forwards its reads to another member,
//! INFO shows it), and whenever the host says a reopen is due rebuilds the
//! group from its directory with the [`Reopen`] it was given — the other
//! groups of the process go on meanwhile.
//!
//! WAL segments a durable snapshot covers are deleted on the process's
//! removal thread (`crate::driver::removal_thread`, the single-group
//! driver's): every group's store is opened with
//! `DiskOptions::defer_segment_removal` (`shard::node`), and after every
//! drive this driver hands each store's removal over
//! (`shard::removals`, which keeps the safety rule: no segment vanishes
//! under a recovery). A failed removal of a hosted group's store stops the
//! process, as after any failed storage I/O.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use host::{
    GroupCommand, GroupMachine, GroupQuery, GroupQueryResult, GroupResponse, Outbound, Refused,
    ShardNode,
};
use raft::Message;
use replica::{Outcome, Rejected, Token};
use shardkv::message::{
    decode_group_reply, decode_group_request, encode_group_reply, encode_group_request,
};
use shardkv::{GroupReply, GroupRequest, ShardStatus};
use shardmeta::{Config, GroupId, NodeId, CONTROLLER_GROUP, NO_GROUP};
use storage::DiskStorage;
use tokio::sync::mpsc::{self, error::TrySendError};
use tokio::sync::oneshot;

use super::removals::GroupRemovals;
use crate::driver::task::{blocking, next_inputs, Ticker};
use crate::driver::unix_ms;
use crate::peer::{GroupAnswer, Outgoing, Peers, ShardFrame};

/// Inputs queued for the driver before senders see `Busy`.
pub const QUEUE_INPUTS: usize = 65_536;
/// A pull reply this large is not re-sent to the same requester for the
/// same configuration within [`LARGE_REPLY_HOLD`].
pub const LARGE_REPLY_BYTES: usize = 1 << 20;
pub const LARGE_REPLY_HOLD: Duration = Duration::from_secs(2);

pub type Node = ShardNode<DiskStorage>;

/// Rebuilds a parked group from its data directory and adds it back to the
/// node (what a restart would do for it): how a group resumes after a full disk.
pub type Reopen = Box<dyn FnMut(&mut Node, GroupId) -> Result<(), String> + Send>;

pub enum Input {
    Step(GroupId, Message),
    Propose {
        group: GroupId,
        cmd: GroupCommand,
        reply: oneshot::Sender<GroupAnswer>,
    },
    Read {
        group: GroupId,
        query: GroupQuery,
        reply: oneshot::Sender<GroupAnswer>,
    },
    Frame(NodeId, ShardFrame),
    /// The router saw evidence of a newer configuration: poll now.
    Refresh,
    /// A membership or leadership operation on a hosted group's replica
    /// (`crate::admin`): answered at once (a listing, a refusal, "not
    /// leader") or once its change commits or its transfer ends.
    Admin {
        group: GroupId,
        op: crate::admin::AdminOp,
        reply: oneshot::Sender<GroupAnswer>,
    },
    /// A graceful stop: every group led here starts handing leadership over
    /// (`host::Host::hand_off_leadership`); the reply lists (group, target).
    HandOff(oneshot::Sender<Vec<(GroupId, NodeId)>>),
    Shutdown,
}

/// One hosted group as the client path and `INFO` see it.
#[derive(Clone, Debug)]
pub struct GroupView {
    pub status: replica::Status,
    /// Data groups: the applied configuration's number and shards by status.
    pub config_num: u64,
    pub serving: Vec<u32>,
    pub pulling: Vec<u32>,
    pub handing_off: Vec<u32>,
    pub gc: Vec<u32>,
}

/// What the driver publishes after each drive.
#[derive(Clone, Debug)]
pub struct View {
    pub groups: BTreeMap<GroupId, GroupView>,
    /// The newest configuration this process knows (from the controller, or
    /// applied by a hosted group): what the router routes by.
    pub routing: Arc<Config>,
    /// The newest configuration number any hosted group has applied, or a
    /// group told the router it applied (see `router`): a routing
    /// configuration older than this is behind.
    pub seen_applied: u64,
    /// Hosted groups that cannot write their log (disk full), and why.
    pub disk_full: BTreeMap<GroupId, String>,
    /// Answers to the router's configuration polls so far, newer or not:
    /// how a redirect that doubts its configuration knows a poll came back
    /// (`Router::recheck_redirect`).
    pub polls_answered: u64,
}

/// Cloneable access to the driver task.
#[derive(Clone)]
pub struct DriverHandle {
    tx: mpsc::Sender<Input>,
    view: Arc<Mutex<View>>,
    telemetry: Arc<crate::metrics::Telemetry>,
}

impl DriverHandle {
    /// Feeds an input that needs no answer (dropped if the queue is full:
    /// Raft and the agents retransmit).
    pub fn send(&self, input: Input) {
        let _ = self.tx.try_send(input);
    }

    /// Proposes `cmd` to `group`; the time to its answer goes to the
    /// group's proposal latency histogram (measured here, at the edge).
    pub async fn propose(&self, group: GroupId, cmd: GroupCommand) -> GroupAnswer {
        let started = Instant::now();
        let (reply, rx) = oneshot::channel();
        let answer = self.submit(Input::Propose { group, cmd, reply }, rx).await;
        if let Some(m) = self.telemetry.get(group) {
            m.proposal_latency.observe(started.elapsed());
        }
        answer
    }

    pub async fn read(&self, group: GroupId, query: GroupQuery) -> GroupAnswer {
        let (reply, rx) = oneshot::channel();
        self.submit(
            Input::Read {
                group,
                query,
                reply,
            },
            rx,
        )
        .await
    }

    async fn submit(&self, input: Input, rx: oneshot::Receiver<GroupAnswer>) -> GroupAnswer {
        match self.tx.try_send(input) {
            Ok(()) => rx.await.unwrap_or(GroupAnswer::Unknown),
            Err(TrySendError::Full(_)) => GroupAnswer::Busy,
            Err(TrySendError::Closed(_)) => GroupAnswer::NotSent,
        }
    }

    /// The view after the latest drive.
    pub fn view(&self) -> View {
        self.view.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The routing configuration and how far behind it may be.
    pub fn routing(&self) -> (Arc<Config>, u64) {
        let v = self.view.lock().unwrap_or_else(|e| e.into_inner());
        (v.routing.clone(), v.seen_applied)
    }

    /// The leader of a hosted group, if known.
    pub fn leader(&self, group: GroupId) -> Option<Option<NodeId>> {
        let v = self.view.lock().unwrap_or_else(|e| e.into_inner());
        v.groups.get(&group).map(|g| g.status.raft.leader)
    }

    /// A hosted group's known leader and its replica's term (0: it has
    /// never heard from its group, as a replica started with `--join-group`
    /// before the group adds it).
    pub fn leader_and_term(&self, group: GroupId) -> Option<(Option<NodeId>, u64)> {
        let v = self.view.lock().unwrap_or_else(|e| e.into_inner());
        v.groups
            .get(&group)
            .map(|g| (g.status.raft.leader, g.status.raft.term))
    }

    /// Records that some group applied configuration `num` (a router's
    /// `WrongGroup` answer) and asks the driver to poll for it.
    /// While hosted `group` cannot write its log (disk full): why.
    pub fn disk_full(&self, group: GroupId) -> Option<String> {
        let v = self.view.lock().unwrap_or_else(|e| e.into_inner());
        v.disk_full.get(&group).cloned()
    }

    /// Asks the driver to poll a controller for a newer configuration now.
    pub fn refresh(&self) {
        self.send(Input::Refresh);
    }

    /// How many configuration polls have been answered (see [`View`]).
    pub fn polls_answered(&self) -> u64 {
        let v = self.view.lock().unwrap_or_else(|e| e.into_inner());
        v.polls_answered
    }

    pub fn saw_applied(&self, num: u64) {
        {
            let mut v = self.view.lock().unwrap_or_else(|e| e.into_inner());
            v.seen_applied = v.seen_applied.max(num);
        }
        self.send(Input::Refresh);
    }

    /// Runs admin `op` on hosted `group`'s replica (see [`Input::Admin`]).
    pub async fn admin(&self, group: GroupId, op: crate::admin::AdminOp) -> GroupAnswer {
        let (reply, rx) = oneshot::channel();
        self.submit(Input::Admin { group, op, reply }, rx).await
    }

    /// Starts handing over leadership of every group led here; the
    /// transfers started, as (group, target).
    pub async fn hand_off(&self) -> Vec<(GroupId, NodeId)> {
        let (reply, rx) = oneshot::channel();
        match self.tx.try_send(Input::HandOff(reply)) {
            Ok(()) => rx.await.unwrap_or_default(),
            Err(_) => Vec::new(),
        }
    }

    /// Asks the driver to stop after the inputs queued before this one (waits
    /// for room in the queue, not for the driver to stop).
    pub async fn shutdown(&self) {
        let _ = self.tx.send(Input::Shutdown).await;
    }
}

/// Driver settings.
#[derive(Clone, Debug)]
pub struct DriverConfig {
    pub id: NodeId,
    pub tick: Duration,
    pub config_poll: Duration,
    pub controllers: Vec<NodeId>,
    pub shards: u32,
    /// Where [`DriverHandle::propose`] records each group's latency.
    pub telemetry: Arc<crate::metrics::Telemetry>,
}

/// Starts the driver over `node` as a task on the current tokio runtime;
/// `reopen` resumes groups parked by a full disk. The returned join handle
/// ends after `shutdown`.
pub fn start(
    node: Node,
    cfg: DriverConfig,
    peers: Peers,
    fatal: oneshot::Sender<String>,
    reopen: Reopen,
) -> (DriverHandle, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(QUEUE_INPUTS);
    let telemetry = cfg.telemetry.clone();
    let view = Arc::new(Mutex::new(View {
        groups: BTreeMap::new(),
        routing: Arc::new(Config::initial(cfg.shards)),
        seen_applied: 0,
        disk_full: BTreeMap::new(),
        polls_answered: 0,
    }));
    let mut driver = Driver {
        node,
        reopen,
        parked: BTreeSet::new(),
        peers,
        pending: HashMap::new(),
        next_token: 0,
        view: view.clone(),
        last_roles: BTreeMap::new(),
        snapshots_rejected: BTreeMap::new(),
        poll_rr: cfg.id as usize,
        next_poll: Instant::now(),
        large_replies: HashMap::new(),
        admin_waits: BTreeMap::new(),
        removals: GroupRemovals::start(),
        cfg,
    };
    driver.publish();
    let join = tokio::spawn(async move {
        let result = driver.run(rx).await;
        // Drains the removal thread (`Driver`'s `Drop`) before the failure is
        // reported.
        blocking(move || drop(driver));
        if let Err(e) = result {
            tracing::error!("node stopped: {e}");
            let _ = fatal.send(e.to_string());
        }
    });
    (
        DriverHandle {
            tx,
            view,
            telemetry,
        },
        join,
    )
}

struct Driver {
    node: Node,
    reopen: Reopen,
    /// The groups the host had parked at the latest drive (disk full).
    parked: BTreeSet<GroupId>,
    peers: Peers,
    /// Invariant: exactly the tokens accepted by the node and not yet
    /// completed, with their group.
    pending: HashMap<Token, (GroupId, oneshot::Sender<GroupAnswer>)>,
    next_token: Token,
    view: Arc<Mutex<View>>,
    last_roles: BTreeMap<GroupId, (raft::Role, u64, Option<NodeId>, u64)>,
    /// Per group: leader snapshots dropped as undecodable, as last logged.
    snapshots_rejected: BTreeMap<GroupId, u64>,
    poll_rr: usize,
    next_poll: Instant,
    /// (requesting process, its group, configuration) -> when a large pull
    /// reply went to it.
    large_replies: HashMap<(NodeId, GroupId, u64), Instant>,
    /// Per group: admin requests waiting for a change to commit or a
    /// transfer to end (checked after every drive; dropped, which the
    /// waiter reports as unknown, if the group is parked).
    admin_waits: BTreeMap<GroupId, crate::admin::AdminWaits>,
    /// Deletes the segments the stores' snapshots cover (module docs).
    removals: GroupRemovals,
    cfg: DriverConfig,
}

impl Driver {
    async fn run(&mut self, mut rx: mpsc::Receiver<Input>) -> Result<(), host::HostError> {
        let mut ticker = Ticker::new(self.cfg.tick);
        let mut next_release = Instant::now();
        loop {
            let writes = self.writes_in_flight() > 1;
            let Some(inputs) = next_inputs(&mut rx, &mut ticker, true, writes).await else {
                return Ok(());
            };
            for input in inputs {
                if !self.handle(input) {
                    return self.drive();
                }
            }
            let now = Instant::now();
            if ticker.due(now) {
                self.tick();
            }
            if now >= next_release {
                self.release_snapshot_pages();
                next_release = now + crate::driver::SNAPSHOT_RELEASE_INTERVAL;
            }
            self.drive()?;
        }
    }

    /// Proposals the hosted groups have accepted and not yet answered.
    fn writes_in_flight(&self) -> usize {
        let host = self.node.host();
        host.groups()
            .filter_map(|group| host.replica(group))
            .map(|r| r.proposals_in_flight())
            .sum()
    }

    /// Takes every hosted group's snapshot file pages out of the resident set (see
    /// `storage::DiskStorage::release_snapshot_pages`): booting from a snapshot or sending
    /// one to a follower maps them in.
    fn release_snapshot_pages(&self) {
        let host = self.node.host();
        for group in host.groups() {
            if let Some(r) = host.replica(group) {
                r.storage().release_snapshot_pages();
            }
        }
    }

    /// Takes one input; false on shutdown.
    fn handle(&mut self, input: Input) -> bool {
        match input {
            Input::Step(group, msg) => {
                if let Err(e) = self.node.step(group, msg) {
                    tracing::debug!(group, "raft message dropped: {e}");
                }
            }
            Input::Propose { group, cmd, reply } => {
                let token = self.token();
                match self.node.propose(group, token, cmd, unix_ms()) {
                    Ok(()) => drop(self.pending.insert(token, (group, reply))),
                    Err(r) => drop(reply.send(refused(r))),
                }
            }
            Input::Read {
                group,
                query,
                reply,
            } => {
                let token = self.token();
                match self.node.read(group, token, query) {
                    Ok(()) => drop(self.pending.insert(token, (group, reply))),
                    Err(r) => drop(reply.send(refused(r))),
                }
            }
            Input::Frame(from, frame) => self.on_frame(from, frame),
            Input::Refresh => self.next_poll = Instant::now(),
            Input::Admin { group, op, reply } => self.admin(group, op, reply),
            Input::HandOff(reply) => {
                let started = self.node.hand_off_leadership();
                for (group, to) in &started {
                    tracing::info!(group, to, "handing leadership over before stopping");
                }
                let _ = reply.send(started);
            }
            Input::Shutdown => return false,
        }
        true
    }

    /// Starts admin `op` on `group`'s replica. Changes and transfers need
    /// the leader; elsewhere the answer is "not leader" with the replica's
    /// hint, which the router follows.
    fn admin(
        &mut self,
        group: GroupId,
        op: crate::admin::AdminOp,
        reply: oneshot::Sender<GroupAnswer>,
    ) {
        use crate::admin::AdminOp;
        let Some(replica) = self.node.replica_mut(group) else {
            let _ = reply.send(GroupAnswer::NotLeader { hint: None });
            return;
        };
        match op {
            AdminOp::Snapshot => {
                let _ = reply.send(GroupAnswer::Admin(Err(
                    "ERR snapshot save of one group of a sharded deployment is not supported"
                        .into(),
                )));
                return;
            }
            AdminOp::Change { .. } | AdminOp::Transfer(_) if !replica.is_leader() => {
                let hint = replica.raw_node().raft().leader();
                let _ = reply.send(GroupAnswer::NotLeader { hint });
                return;
            }
            _ => {}
        }
        let waits = self.admin_waits.entry(group).or_default();
        let reply = crate::admin::Responder::new(move |r| drop(reply.send(GroupAnswer::Admin(r))));
        crate::admin::start(replica, op, reply, waits);
    }

    /// Answers the admin requests whose change committed or whose transfer
    /// ended at the latest drive.
    fn check_admin(&mut self) {
        let mut done = Vec::new();
        for (&group, waits) in self.admin_waits.iter_mut() {
            match self.node.replica(group) {
                Some(r) => crate::admin::check(r, waits),
                None => {
                    done.push(group); // parked: dropping the waits answers Unknown
                    continue;
                }
            }
            if waits.is_empty() {
                done.push(group);
            }
        }
        for g in done {
            self.admin_waits.remove(&g);
        }
    }

    /// A peer's sharded frame other than Raft messages and forwarded
    /// requests (those are routed by `shard::inbound`).
    fn on_frame(&mut self, from: NodeId, frame: ShardFrame) {
        let now = unix_ms();
        match frame {
            ShardFrame::ConfigQuery { for_group, num } => {
                let config = self.node.config(num);
                self.send(from, ShardFrame::ConfigReply { for_group, config });
            }
            ShardFrame::ConfigReply { for_group, config } => {
                if for_group == NO_GROUP {
                    self.poll_answered();
                }
                let Some(config) = config.filter(|c| c.check().is_ok()) else {
                    return;
                };
                if for_group == NO_GROUP {
                    self.adopt(config);
                } else {
                    self.node.on_config(for_group, config, now);
                }
            }
            ShardFrame::GroupRequest {
                from_group,
                to_group,
                request,
            } => match decode_group_request(&request) {
                Ok(req) => {
                    if self.holding_large_reply(from, from_group, &req) {
                        return;
                    }
                    if let Some(reply) = self.node.on_group_request(to_group, &req, now) {
                        let reply = encode_group_reply(&reply);
                        self.note_reply(from, from_group, &req, reply.len());
                        self.send(
                            from,
                            ShardFrame::GroupReply {
                                to_group: from_group,
                                reply,
                            },
                        );
                    }
                }
                Err(e) => tracing::warn!(peer = from, "undecodable group request: {e}"),
            },
            ShardFrame::GroupReply { to_group, reply } => match decode_group_reply(&reply) {
                Ok(reply) => self.node.on_group_reply(to_group, reply, now),
                Err(e) => tracing::warn!(peer = from, "undecodable group reply: {e}"),
            },
            other => tracing::warn!(peer = from, "unexpected frame for the driver: {other:?}"),
        }
    }

    /// Whether a large pull reply to the same request went out recently:
    /// the requester's agent resends every interval, and each copy of a
    /// big shard would cross the network and be proposed again, so one is
    /// given time to arrive ([`LARGE_REPLY_HOLD`]) before another is sent.
    fn holding_large_reply(
        &mut self,
        from: NodeId,
        from_group: GroupId,
        req: &GroupRequest,
    ) -> bool {
        let GroupRequest::Pull(p) = req else {
            return false;
        };
        let now = Instant::now();
        self.large_replies
            .retain(|_, at| now.duration_since(*at) < LARGE_REPLY_HOLD);
        self.large_replies.contains_key(&(from, from_group, p.num))
    }

    fn note_reply(&mut self, from: NodeId, from_group: GroupId, req: &GroupRequest, bytes: usize) {
        if let GroupRequest::Pull(p) = req {
            if bytes >= LARGE_REPLY_BYTES {
                self.large_replies
                    .insert((from, from_group, p.num), Instant::now());
            }
        }
    }

    fn tick(&mut self) {
        let now = unix_ms();
        for out in self.node.tick(now) {
            match out {
                Outbound::ConfigQuery { to, group, num } => {
                    if to == self.cfg.id {
                        if let Some(c) = self.node.config(num) {
                            self.node.on_config(group, c, now);
                        }
                    } else {
                        self.send(
                            to,
                            ShardFrame::ConfigQuery {
                                for_group: group,
                                num,
                            },
                        );
                    }
                }
                Outbound::Group {
                    to,
                    from_group,
                    to_group,
                    request,
                } => self.group_request(to, from_group, to_group, request, now),
            }
        }
        if Instant::now() >= self.next_poll {
            self.poll_config();
        }
        self.reopen_due(now);
    }

    /// Rebuilds the parked groups whose reopen is due (`host::Host` docs).
    fn reopen_due(&mut self, now: u64) {
        for g in self.node.host().parked_due(now) {
            // Safety rule (no segment vanishes under a recovery): the old
            // store's removals run before the directory is listed again.
            blocking(|| self.removals.before_reopen(g));
            match blocking(|| (self.reopen)(&mut self.node, g)) {
                Ok(()) => {
                    tracing::warn!(
                        group = g,
                        "the Raft log is writable again; group resumed from its data directory"
                    );
                    self.last_roles.remove(&g);
                }
                Err(e) => {
                    tracing::debug!(group = g, "disk full: reopening failed: {e}");
                    self.node.reopen_failed(g, now);
                }
            }
        }
    }

    /// Logs groups the last drive parked and ends their pending requests
    /// (dropped: the waiters see unknown, as in a crash).
    fn note_parked(&mut self) {
        let now: BTreeMap<GroupId, String> = self
            .node
            .host()
            .parked()
            .map(|(g, w)| (g, w.why().to_string()))
            .collect();
        for (g, w) in self.node.host().parked() {
            if !self.parked.contains(&g) {
                tracing::error!(group = g, "{}", w.describe());
            }
        }
        let newly: BTreeSet<GroupId> = now
            .keys()
            .filter(|g| !self.parked.contains(g))
            .copied()
            .collect();
        if !newly.is_empty() {
            self.pending.retain(|_, (g, _)| !newly.contains(g));
            self.removals.forget(&newly);
        }
        self.parked = now.keys().copied().collect();
        self.view
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .disk_full = now;
    }

    fn group_request(
        &mut self,
        to: NodeId,
        from_group: GroupId,
        to_group: GroupId,
        request: GroupRequest,
        now: u64,
    ) {
        if to == self.cfg.id {
            if let Some(reply) = self.node.on_group_request(to_group, &request, now) {
                self.local_group_reply(from_group, reply, now);
            }
            return;
        }
        let request = encode_group_request(&request);
        self.send(
            to,
            ShardFrame::GroupRequest {
                from_group,
                to_group,
                request,
            },
        );
    }

    fn local_group_reply(&mut self, to_group: GroupId, reply: GroupReply, now: u64) {
        self.node.on_group_reply(to_group, reply, now);
    }

    /// The router's poll: the next configuration after the routing one,
    /// from the local controller replica or a remote one (round robin).
    fn poll_config(&mut self) {
        self.next_poll = Instant::now() + self.cfg.config_poll;
        let next = self.routing_num() + 1;
        if let Some(c) = self.node.controller().map(|c| c.latest().clone()) {
            self.adopt(c);
            self.poll_answered();
            return;
        }
        self.poll_rr += 1;
        let to = self.cfg.controllers[self.poll_rr % self.cfg.controllers.len()];
        self.send(
            to,
            ShardFrame::ConfigQuery {
                for_group: NO_GROUP,
                num: next,
            },
        );
    }

    fn poll_answered(&self) {
        let mut v = self.view.lock().unwrap_or_else(|e| e.into_inner());
        v.polls_answered += 1;
    }

    fn routing_num(&self) -> u64 {
        self.view
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .routing
            .num
    }

    /// Takes `config` for routing if it is newer; asks for the next at once.
    fn adopt(&mut self, config: Config) {
        let newer = {
            let mut v = self.view.lock().unwrap_or_else(|e| e.into_inner());
            let newer = config.num > v.routing.num && config.shards.len() == v.routing.shards.len();
            if newer {
                tracing::info!(num = config.num, "routing configuration");
                v.routing = Arc::new(config);
            }
            newer
        };
        if newer {
            self.next_poll = Instant::now();
        }
    }

    fn send(&self, to: NodeId, frame: ShardFrame) {
        match self.peers.get(to) {
            Some(p) => {
                p.send(Outgoing::Shard(frame));
            }
            None => tracing::warn!(to, "frame for an unknown process dropped"),
        }
    }

    fn drive(&mut self) -> Result<(), host::HostError> {
        let peers = &self.peers;
        let done = self
            .node
            .drive(&mut |env| peers.send_group_raft(env.group, env.msg))?;
        for gc in done {
            if let Some((_, reply)) = self.pending.remove(&gc.completion.token) {
                let _ = reply.send(answer(gc.completion.outcome));
            }
        }
        self.check_admin();
        self.note_parked();
        self.removals.hand_over(&mut self.node)?;
        self.publish();
        Ok(())
    }

    /// Publishes every group's status; adopts newer configurations the
    /// hosted data groups applied.
    fn publish(&mut self) {
        let groups: Vec<GroupId> = self.node.host().groups().collect();
        let mut views = BTreeMap::new();
        let mut newest: Option<Config> = None;
        for g in groups {
            let Some(r) = self.node.replica(g) else {
                continue;
            };
            let st = r.status();
            crate::driver::log_rejected_snapshots(
                Some(g),
                self.snapshots_rejected.entry(g).or_default(),
                &st,
                r.last_snapshot_rejection(),
            );
            let mut view = GroupView {
                status: st,
                config_num: 0,
                serving: Vec::new(),
                pulling: Vec::new(),
                handing_off: Vec::new(),
                gc: Vec::new(),
            };
            if let Some(sm) = r.state_machine().as_data() {
                view.config_num = sm.config().num;
                view.serving = sm.shards_in(ShardStatus::Serving);
                view.pulling = sm.shards_in(ShardStatus::Pulling);
                view.handing_off = sm.shards_in(ShardStatus::HandingOff);
                view.gc = sm.shards_in(ShardStatus::Gc);
                if newest.as_ref().is_none_or(|n| n.num < sm.config().num) {
                    newest = Some(sm.config().clone());
                }
            }
            self.log_role(g, &st, view.config_num);
            views.insert(g, view);
        }
        let mut v = self.view.lock().unwrap_or_else(|e| e.into_inner());
        v.groups = views;
        if let Some(c) = newest {
            v.seen_applied = v.seen_applied.max(c.num);
            if c.num > v.routing.num {
                v.routing = Arc::new(c);
            }
        }
    }

    fn log_role(&mut self, group: GroupId, st: &replica::Status, config_num: u64) {
        let now = (st.raft.role, st.raft.term, st.raft.leader, config_num);
        if self.last_roles.get(&group) != Some(&now) {
            let kind = if group == CONTROLLER_GROUP {
                "controller"
            } else {
                "data"
            };
            tracing::info!(group, kind, role = ?st.raft.role, term = st.raft.term, leader = ?st.raft.leader, config = config_num, "group state");
            self.last_roles.insert(group, now);
        }
    }

    fn token(&mut self) -> Token {
        self.next_token += 1;
        self.next_token
    }
}

impl Drop for Driver {
    /// At stop, or when the runtime drops the task: a store reopened on one of
    /// these directories (a restart in this process) must not see segments
    /// vanish under its recovery.
    fn drop(&mut self) {
        self.removals.drain();
    }
}

fn refused(r: Refused) -> GroupAnswer {
    match r {
        Refused::Rejected {
            rejected: Rejected::NotLeader { hint },
            ..
        } => GroupAnswer::NotLeader { hint },
        Refused::Rejected {
            rejected: Rejected::Busy { .. },
            ..
        } => GroupAnswer::Busy,
        Refused::NoSuchGroup { .. } | Refused::Misaddressed { .. } | Refused::DiskFull { .. } => {
            GroupAnswer::NotLeader { hint: None }
        }
    }
}

fn answer(o: Outcome<GroupMachine>) -> GroupAnswer {
    match o {
        Outcome::Applied(GroupResponse::Data(shardkv::Response::Op(r))) => GroupAnswer::Applied(r),
        Outcome::Applied(GroupResponse::Ctrl(r)) => GroupAnswer::Ctrl(r),
        Outcome::Applied(other) => {
            tracing::error!("a client request was answered {other:?}");
            GroupAnswer::Unknown
        }
        Outcome::Value(GroupQueryResult::Data(v)) => GroupAnswer::Value(v),
        Outcome::Value(GroupQueryResult::Ctrl(c)) => GroupAnswer::Config(c),
        Outcome::Unknown { .. } => GroupAnswer::Unknown,
        Outcome::ReadAborted { .. } => GroupAnswer::ReadAborted,
    }
}
