//! `Host`: the replicas of one process, keyed by group, and the drive that
//! runs the ones with input.
//!
//! Invariants:
//! - every hosted replica's Raft id is `node_id`;
//! - `with_input` ⊆ hosted groups; a group is in it iff it was ticked,
//!   stepped, or given a request since its last drive (or its last drive
//!   failed);
//! - outputs are tagged with the group that produced them, and groups are
//!   driven in ascending id order (a run is a function of its inputs);
//! - a group is hosted (has a replica) or parked (waiting for disk space),
//!   never both.
//!
//! Disk full: a group whose drive fails with `StorageError::NoSpace` is
//! parked, not fatal (`replica::space` has the policy, shared with the
//! single-group server driver): its replica is dropped (its pending requests
//! get no completion, as in a crash; its directory lock is released),
//! requests and messages for it are refused with [`Refused::DiskFull`], the
//! other groups go on, and once [`Host::parked_due`] names it the host's host
//! rebuilds it from its directory with [`Host::add_group`] (or reports a
//! failed attempt with [`Host::reopen_failed`]). Any other failure still
//! ends the drive with an error.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use raft::{Message, Storage};
use replica::{Completion, Replica, SpaceWait, Token};
use shardmeta::{GroupId, NodeId};

use crate::error::{HostError, Refused};

/// A Raft message of one group, between two processes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope {
    pub group: GroupId,
    pub msg: Message,
}

impl Envelope {
    /// The process it goes to (the replica of `group` there has this Raft id).
    pub fn to(&self) -> NodeId {
        self.msg.to
    }
}

/// A finished request of one group.
pub struct GroupCompletion<M: rsm::StateMachine> {
    pub group: GroupId,
    pub completion: Completion<M>,
}

impl<M: rsm::StateMachine> fmt::Debug for GroupCompletion<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GroupCompletion")
            .field("group", &self.group)
            .field("completion", &self.completion)
            .finish()
    }
}

/// Everything one [`Host::drive`] produced, in order.
pub struct DriveOutput<M: rsm::StateMachine> {
    pub messages: Vec<Envelope>,
    pub completions: Vec<GroupCompletion<M>>,
}

/// The replicas one process hosts. See the crate docs.
pub struct Host<S: Storage, M: rsm::StateMachine> {
    node_id: NodeId,
    groups: BTreeMap<GroupId, Replica<S, M>>,
    // Invariant: a subset of `groups`' keys.
    with_input: BTreeSet<GroupId>,
    // Invariant: disjoint from `groups`' keys.
    parked: BTreeMap<GroupId, SpaceWait>,
    /// The time of the latest tick (when a group parked by a drive started waiting).
    now_ms: u64,
}

impl<S: Storage, M: rsm::StateMachine> Host<S, M> {
    /// A host of no groups yet, for process `node_id`.
    pub fn new(node_id: NodeId) -> Self {
        Host {
            node_id,
            groups: BTreeMap::new(),
            with_input: BTreeSet::new(),
            parked: BTreeMap::new(),
            now_ms: 0,
        }
    }

    pub fn node_id(&self) -> NodeId {
        self.node_id
    }

    /// Starts hosting `group`: boots its replica from `storage` with the
    /// fresh machine `sm` (restoring the storage's snapshot, if any). The
    /// group's Raft membership is `cfg.raft.voters`; `cfg.raft.id` must be
    /// this node's id. Give each group its own `cfg.raft.seed`. A parked
    /// group (disk full) is resumed this way, from its reopened storage.
    pub fn add_group(
        &mut self,
        group: GroupId,
        cfg: replica::Config,
        storage: S,
        sm: M,
    ) -> Result<(), HostError> {
        if self.groups.contains_key(&group) {
            return Err(HostError::GroupExists { group });
        }
        if cfg.raft.id != self.node_id {
            return Err(HostError::WrongRaftId {
                group,
                raft_id: cfg.raft.id,
                node: self.node_id,
            });
        }
        let replica = Replica::new(cfg, storage, sm)
            .map_err(|source| HostError::Replica { group, source })?;
        self.parked.remove(&group);
        self.groups.insert(group, replica);
        self.with_input.insert(group);
        Ok(())
    }

    /// Stops hosting `group` and hands its replica back (`into_storage` keeps
    /// its durable state). Its pending requests get no completion; messages
    /// for it are refused from now on.
    pub fn remove_group(&mut self, group: GroupId) -> Option<Replica<S, M>> {
        self.with_input.remove(&group);
        self.parked.remove(&group);
        self.groups.remove(&group)
    }

    /// One Raft tick at host time `now_ms` for every group.
    pub fn tick(&mut self, now_ms: u64) {
        self.now_ms = now_ms;
        for (&group, replica) in &mut self.groups {
            replica.tick(now_ms);
            self.with_input.insert(group);
        }
    }

    /// Feeds a peer's message to `group`'s replica.
    pub fn step(&mut self, group: GroupId, msg: Message) -> Result<(), Refused> {
        if msg.to != self.node_id {
            return Err(Refused::Misaddressed {
                to: msg.to,
                node: self.node_id,
            });
        }
        self.replica_for_input(group)?.step(msg);
        Ok(())
    }

    /// Proposes `cmd` to `group`; on `Ok`, exactly one completion for
    /// (`group`, `token`) comes out of a later drive.
    pub fn propose(
        &mut self,
        group: GroupId,
        token: Token,
        cmd: M::Command,
        now_ms: u64,
    ) -> Result<(), Refused> {
        self.replica_for_input(group)?
            .propose(token, cmd, now_ms)
            .map_err(|rejected| Refused::Rejected { group, rejected })
    }

    /// Queues a linearizable read of `group`'s state (ReadIndex).
    pub fn read(&mut self, group: GroupId, token: Token, query: M::Query) -> Result<(), Refused> {
        self.replica_for_input(group)?
            .read(token, query)
            .map_err(|rejected| Refused::Rejected { group, rejected })
    }

    /// Runs every group with input, in group order, through its replica's
    /// driver loop. Each outgoing message goes to `send` and each finished
    /// request to `complete` as soon as it is known (a committed write before
    /// the fsync of the Ready that carried its commit, as
    /// `Replica::drive_with`). A group whose log write finds the disk full is
    /// parked (module docs) and the others are driven on. On `Err` the failed
    /// group keeps its input flag and the groups after it are not driven; the
    /// host should stop.
    pub fn drive_with(
        &mut self,
        send: &mut dyn FnMut(Envelope),
        complete: &mut dyn FnMut(GroupCompletion<M>),
    ) -> Result<(), HostError> {
        while let Some(group) = self.with_input.pop_first() {
            let replica = self
                .groups
                .get_mut(&group)
                .expect("input only for hosted groups");
            let result = replica.drive_with(
                &mut |msg| send(Envelope { group, msg }),
                &mut |completion| complete(GroupCompletion { group, completion }),
            );
            let Err(source) = result else {
                continue;
            };
            if let Some(wait) = SpaceWait::from_error(&source, self.now_ms) {
                self.groups.remove(&group);
                self.parked.insert(group, wait);
                continue;
            }
            self.with_input.insert(group);
            return Err(HostError::Replica { group, source });
        }
        Ok(())
    }

    // ---- disk full -------------------------------------------------------------

    /// The groups waiting for disk space, and why.
    pub fn parked(&self) -> impl Iterator<Item = (GroupId, &SpaceWait)> + '_ {
        self.parked.iter().map(|(&g, w)| (g, w))
    }

    /// The parked groups whose reopen is due at `now_ms`.
    pub fn parked_due(&self, now_ms: u64) -> Vec<GroupId> {
        self.parked
            .iter()
            .filter(|(_, w)| w.due(now_ms))
            .map(|(&g, _)| g)
            .collect()
    }

    /// Reopening parked `group` at `now_ms` failed: it stays parked and is
    /// due again [`replica::DISK_FULL_RETRY_MS`] later.
    pub fn reopen_failed(&mut self, group: GroupId, now_ms: u64) {
        if let Some(w) = self.parked.get_mut(&group) {
            w.reopen_failed(now_ms);
        }
    }

    /// [`Host::drive_with`], collecting the outputs.
    pub fn drive(&mut self) -> Result<DriveOutput<M>, HostError> {
        let mut messages = Vec::new();
        let mut completions = Vec::new();
        self.drive_with(&mut |e| messages.push(e), &mut |c| completions.push(c))?;
        Ok(DriveOutput {
            messages,
            completions,
        })
    }

    /// Every group this process leads starts handing leadership to its most
    /// up-to-date other voter (dissertation §3.10, TimeoutNow): what a
    /// graceful stop does first, so a rolling restart of a process hosting
    /// many groups costs none of them an election timeout. Returns the
    /// transfers started, as (group, target); a group with no other voter,
    /// or whose transfer is refused, keeps its leader until the stop.
    pub fn hand_off_leadership(&mut self) -> Vec<(GroupId, NodeId)> {
        let leading: Vec<GroupId> = self
            .groups
            .iter()
            .filter(|(_, r)| r.is_leader())
            .map(|(&g, _)| g)
            .collect();
        let mut started = Vec::new();
        for g in leading {
            let Some(r) = self.replica_mut(g) else {
                continue;
            };
            let Some(to) = r.raw_node().raft().best_transfer_target() else {
                continue;
            };
            if r.transfer_leader(to).is_ok() {
                started.push((g, to));
            }
        }
        started
    }

    // ---- queries -------------------------------------------------------------

    /// The groups hosted here, in order.
    pub fn groups(&self) -> impl Iterator<Item = GroupId> + '_ {
        self.groups.keys().copied()
    }

    /// The groups the next drive will run, in order.
    pub fn groups_with_input(&self) -> impl Iterator<Item = GroupId> + '_ {
        self.with_input.iter().copied()
    }

    /// `group`'s replica (status, leadership, tests).
    pub fn replica(&self, group: GroupId) -> Option<&Replica<S, M>> {
        self.groups.get(&group)
    }

    /// Every hosted group's storage, in group order, without marking any
    /// group as having input: for the host's host to take work a store
    /// queued for it (the server takes each `storage::DiskStorage`'s
    /// segment removal after a drive), never to feed Raft.
    pub fn storages_mut(&mut self) -> impl Iterator<Item = (GroupId, &mut S)> + '_ {
        self.groups.iter_mut().map(|(&g, r)| (g, r.storage_mut()))
    }

    /// `group`'s replica, marked as having input (the next drive runs it):
    /// for inputs the host has no method for (`campaign`, ...).
    pub fn replica_mut(&mut self, group: GroupId) -> Option<&mut Replica<S, M>> {
        self.replica_for_input(group).ok()
    }

    fn replica_for_input(&mut self, group: GroupId) -> Result<&mut Replica<S, M>, Refused> {
        if self.parked.contains_key(&group) {
            return Err(Refused::DiskFull { group });
        }
        let replica = self
            .groups
            .get_mut(&group)
            .ok_or(Refused::NoSuchGroup { group })?;
        self.with_input.insert(group);
        Ok(replica)
    }
}
