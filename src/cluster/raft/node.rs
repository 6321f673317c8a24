//! The sans-IO Raft core: raft-rs's `RawNode` behind outpost's driver contract (bytes and
//! time in; messages, things to persist, completions and events out).

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use raft::eraftpb::{
    ConfChange, ConfChangeType, ConfChangeV2, Entry, EntryType, Message, MessageType,
};
use raft::{RawNode, StateRole, Storage as _};
use serde::{Deserialize, Serialize};

use super::cache::LogCache;
use super::storage::{Persist, Recovered};
use super::wire::{
    self, ConfChangeRecord, WireConfState, WireEntry, WireError, WireHardState, WireSnapshot,
};
use crate::catalog::{ApplyError, Catalog, Command, SnapshotError};

/// The replicated state machine the log is applied to: the catalog in outpost (the agent
/// wraps its state to also wake blocking queries), a plain [`Catalog`] in tests.
pub trait StateMachine {
    /// Applies the command at log `index`. An error is a deterministic refusal (every server
    /// gets the same one), reported to the writer; the state must be unchanged by it.
    fn apply(&mut self, index: u64, command: &Command) -> Result<(), ApplyError>;
    /// The whole state as bytes, for a snapshot; `size_hint` is about the size of the last
    /// one (to allocate once rather than grow).
    fn snapshot(&self, size_hint: usize) -> Vec<u8>;
    /// Replaces the whole state by a snapshot's bytes; empty bytes mean the empty state (the
    /// snapshot a new cluster starts from).
    fn restore(&mut self, state: &[u8]) -> Result<(), SnapshotError>;
}

impl StateMachine for Catalog {
    fn apply(&mut self, index: u64, command: &Command) -> Result<(), ApplyError> {
        Catalog::apply(self, index, command).map(drop)
    }

    fn snapshot(&self, size_hint: usize) -> Vec<u8> {
        Catalog::snapshot_with_capacity(self, size_hint)
    }

    fn restore(&mut self, state: &[u8]) -> Result<(), SnapshotError> {
        *self = if state.is_empty() {
            Catalog::new()
        } else {
            Catalog::restore(state)?
        };
        Ok(())
    }
}

/// Timing and bounds of one server. [`RaftConfig::new`] gives the LAN defaults.
#[derive(Clone, Debug)]
pub struct RaftConfig {
    /// This server's ID: non-zero, unique in the cluster, the same across restarts.
    pub id: u64,
    /// How often the core ticks. 100 ms on a LAN.
    pub tick: Duration,
    /// Ticks between a leader's heartbeats (1: every 100 ms).
    pub heartbeat_ticks: usize,
    /// A follower that heard nothing from a leader for a random number of ticks in
    /// `[election_ticks, 2 * election_ticks)` starts an election (with a pre-vote first).
    /// 5: 0.5 to 1 s, so a new leader is elected 0.5 to 1.1 s after the old one dies.
    ///
    /// The leader's lease (check-quorum: it steps down when a quorum was silent that long,
    /// and followers refuse votes while they heard from it that recently) is one tick
    /// shorter, so that a pre-vote is never refused because the voter's tick runs a little
    /// behind the candidate's.
    pub election_ticks: usize,
    /// Snapshot the state and compact the log after at least this many applied entries
    /// (up to half as many again, drawn per server), once the entries since the last
    /// snapshot hold at least half its size in bytes (up to all of it, drawn).
    pub snapshot_every: u64,
    /// Proposals and reads waiting for their outcome, at most (past that they are refused).
    pub max_pending: usize,
    /// A read that got no confirmation in this many ticks fails (the leader may have
    /// dropped it).
    pub read_timeout_ticks: u64,
    /// Seeds the core's randomness: election timeouts and compaction thresholds.
    pub seed: u64,
}

impl RaftConfig {
    /// The LAN defaults for server `id`.
    pub fn new(id: u64, seed: u64) -> RaftConfig {
        RaftConfig {
            id,
            tick: Duration::from_millis(100),
            heartbeat_ticks: 1,
            election_ticks: 5,
            snapshot_every: 4096,
            max_pending: 4096,
            read_timeout_ticks: 20,
            seed,
        }
    }
}

/// Why the core could not start. Nothing was changed.
#[derive(Debug, thiserror::Error)]
pub enum RaftError {
    #[error("raft configuration: {0}")]
    Config(String),
    #[error("the snapshot's state cannot be restored: {0}")]
    Snapshot(#[from] SnapshotError),
    #[error("the snapshot's membership data is malformed: {0}")]
    SnapshotData(postcard::Error),
}

// Why a proposal was dropped (the reasons of [`Outcome::Dropped`]; `rpc` carries them by
// name between servers).
pub(crate) const DROP_BUSY: &str = "too many proposals are waiting";
pub(crate) const DROP_TRANSFER_OR_FULL: &str =
    "the leader is handing over leadership or has too many uncommitted entries";
pub(crate) const DROP_NOT_A_COMMAND: &str = "the entry is not a valid command";
pub(crate) const DROP_MEMBERSHIP_BUSY: &str = "another membership change was still being applied";
pub(crate) const DROP_LEADER_CHANGED: &str = "leadership changed before it was committed";
/// Every reason this core gives.
pub(crate) const DROP_REASONS: &[&str] = &[
    DROP_BUSY,
    DROP_TRANSFER_OR_FULL,
    DROP_NOT_A_COMMAND,
    DROP_MEMBERSHIP_BUSY,
    DROP_LEADER_CHANGED,
];

/// What became of a proposal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Committed, and applied at `index` on this server (and so on every server).
    Applied { index: u64 },
    /// Committed at `index` and refused by the state machine, as on every server (a failed
    /// check-and-set, an invalid registration): tell the writer.
    Refused { index: u64, error: ApplyError },
    /// This server is not the leader: send the write to `leader` (its ID, if known).
    NotLeader { leader: Option<u64> },
    /// Certainly not applied, and never will be; retrying is safe.
    Dropped { reason: &'static str },
    /// This server's state was replaced by a snapshot before it saw the entry: it may or
    /// may not have been applied. Retry only what is idempotent or guarded by a CAS.
    Unknown,
}

/// Why a read could not be confirmed. Retrying is always safe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReadFailure {
    /// No leader is known (an election is going on).
    NoLeader,
    /// Leadership changed while the read waited.
    LeaderChanged,
    /// No confirmation in time (the leader was busy electing itself, or unreachable).
    TimedOut,
    /// Too many reads are waiting.
    Busy,
}

/// What the core tells the shell, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// The proposal `request` came to an end.
    Completed { request: u64, outcome: Outcome },
    /// The read `request` is linearizable now: the state machine has applied at least
    /// `index`, the leader's commit index when a quorum confirmed its leadership.
    ReadReady { request: u64, index: u64 },
    /// The read `request` failed.
    ReadFailed { request: u64, reason: ReadFailure },
    /// The leader changed (`None`: no leader known now).
    LeaderChanged { leader: Option<u64>, term: u64 },
    /// The membership changed; [`RaftNode::peers`] has the new one.
    PeersChanged,
    /// This server was removed from the cluster's configuration (until a leader adds it
    /// again).
    Removed,
}

/// Bytes for a peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    /// The peer's server ID.
    pub to: u64,
    /// One encoded raft message ([`super::wire`]).
    pub bytes: Vec<u8>,
    /// Carries a snapshot: report with [`RaftNode::snapshot_sent`] once it was written
    /// out (or could not be).
    pub snapshot: bool,
}

/// This server's view of leadership, for `/v1/status/leader` and the operator CLI.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    /// This server.
    pub id: u64,
    /// The current term.
    pub term: u64,
    /// The leader this server knows of.
    pub leader: Option<u64>,
    /// Whether this server leads.
    pub is_leader: bool,
    /// Its part now: `Leader`, `Candidate` (also while asking for pre-votes) or `Follower`,
    /// as Consul names them.
    pub state: &'static str,
    /// Index and term of the last entry in the log here.
    pub last_log: (u64, u64),
    /// Index and term of the last entry the log was compacted to (the snapshot's).
    pub last_snapshot: (u64, u64),
    /// Index of the last command applied here.
    pub applied: u64,
    /// Index of the last entry known committed.
    pub commit: u64,
    /// The voters and the address each listens on for Raft.
    pub peers: BTreeMap<u64, String>,
    /// The learners (non-voting members: client agents' replicas) and their addresses.
    pub learners: BTreeMap<u64, String>,
}

impl Status {
    /// Whether `other` differs from this in more than the log's positions, which move with
    /// every append (waiters for an applied index need not wake for those).
    pub fn differs_beyond_the_log(&self, other: &Status) -> bool {
        let Status {
            id,
            term,
            leader,
            is_leader,
            state,
            last_log: _,
            last_snapshot: _,
            applied,
            commit,
            peers,
            learners,
        } = self;
        (
            id, term, leader, is_leader, state, applied, commit, peers, learners,
        ) != (
            &other.id,
            &other.term,
            &other.leader,
            &other.is_leader,
            &other.state,
            &other.applied,
            &other.commit,
            &other.peers,
            &other.learners,
        )
    }
}

/// What a snapshot carries besides the state: the servers' addresses.
#[derive(Serialize, Deserialize)]
struct SnapshotData {
    peers: Vec<(u64, String)>,
    #[serde(with = "serde_bytes")]
    state: Vec<u8>,
}

impl SnapshotData {
    fn encode(&self) -> Vec<u8> {
        // Lengths and IDs take at most 10 bytes each.
        let size = self.state.len()
            + 20
            + self
                .peers
                .iter()
                .map(|(_, addr)| 20 + addr.len())
                .sum::<usize>();
        postcard::to_extend(self, Vec::with_capacity(size)).expect("plain structs always serialize")
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Command,
    Membership,
}

struct Proposal {
    request: u64,
    term: u64,
    kind: Kind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ReadState {
    /// Held until this leader has committed an entry of its term (raft-rs would drop it).
    Waiting,
    Submitted,
    Confirmed(u64),
}

struct PendingRead {
    request: u64,
    deadline: u64,
    state: ReadState,
}

enum InFlight {
    Raft(Box<raft::Ready>),
    Compaction,
}

/// One server's Raft state machine, sans IO. See the module docs for the driver contract.
pub struct RaftNode {
    raw: RawNode<LogCache>,
    cfg: RaftConfig,
    rng: fastrand::Rng,
    /// Draws the compaction thresholds, apart from `rng` so that they leave the election
    /// timeouts of a seed as they were.
    snapshot_rng: fastrand::Rng,
    in_flight: Option<InFlight>,
    pending_compaction: Option<Persist>,
    /// By log index.
    proposals: BTreeMap<u64, Proposal>,
    reads: Vec<PendingRead>,
    applied: u64,
    snapshot_index: u64,
    peers: BTreeMap<u64, String>,
    transmit: VecDeque<Transmit>,
    events: VecDeque<Event>,
    next_tick: Instant,
    ticks: u64,
    last_leader: (u64, u64),
    removed: bool,
    /// A member was added: snapshot at the next applied index, so that the snapshot it
    /// will be sent names it (raft-rs refuses a snapshot whose membership lacks the
    /// receiver).
    snapshot_due: bool,
    /// Bytes of entries applied since the last snapshot, and that snapshot's size: a
    /// snapshot costs about its size, so it waits until the log since the last one holds
    /// half as much (the work of snapshotting stays proportional to the writes, and a big
    /// catalog is not serialized every `snapshot_every` entries).
    bytes_since_snapshot: u64,
    last_snapshot_len: u64,
    /// This server's thresholds for its next compaction (entries applied, bytes of them),
    /// drawn anew after each: between `snapshot_every` and half as many again, and between
    /// half and all of the last snapshot's size. Servers apply the same entries, so with
    /// equal thresholds all would pause to snapshot at once; drawn, their pauses mostly
    /// fall apart, and a follower's pause alone holds up no write (the leader and the other
    /// followers make the quorum).
    next_snapshot: (u64, u64),
}

impl RaftNode {
    /// The state a new cluster starts from, the same on each of `voters` (ID and Raft
    /// address): a snapshot at index 1 with that membership and an empty state. Persist it
    /// ([`Persist`] with this snapshot) before starting the node from it. A server that
    /// joins later starts empty instead, and gets the leader's snapshot once added.
    pub fn bootstrap(voters: &[(u64, String)]) -> Recovered {
        let data = SnapshotData {
            peers: voters.to_vec(),
            state: Vec::new(),
        };
        let mut ids: Vec<u64> = voters.iter().map(|v| v.0).collect();
        ids.sort_unstable();
        ids.dedup();
        Recovered {
            hard_state: WireHardState {
                term: 1,
                vote: 0,
                commit: 1,
            },
            snapshot: Some(WireSnapshot {
                index: 1,
                term: 1,
                conf_state: WireConfState {
                    voters: ids,
                    ..Default::default()
                },
                data: data.encode().into(),
            }),
            entries: Vec::new(),
            warnings: Vec::new(),
        }
    }

    /// The core of server `cfg.id`, from what its storage recovered; `sm` is restored from
    /// the snapshot (the log after it is applied again as raft re-delivers it).
    pub fn new(
        cfg: RaftConfig,
        recovered: &Recovered,
        sm: &mut impl StateMachine,
        now: Instant,
    ) -> Result<RaftNode, RaftError> {
        let mut peers = BTreeMap::new();
        let mut applied = 0;
        match &recovered.snapshot {
            Some(s) => {
                let data: SnapshotData =
                    postcard::from_bytes(&s.data).map_err(RaftError::SnapshotData)?;
                sm.restore(&data.state)?;
                peers = data.peers.into_iter().collect();
                applied = s.index;
            }
            None => sm.restore(&[])?,
        }
        let rc = raft::Config {
            id: cfg.id,
            election_tick: cfg.election_ticks.saturating_sub(1),
            min_election_tick: cfg.election_ticks,
            max_election_tick: 2 * cfg.election_ticks,
            heartbeat_tick: cfg.heartbeat_ticks,
            applied,
            max_size_per_msg: 1 << 20,
            max_inflight_msgs: 256,
            check_quorum: true,
            pre_vote: true,
            max_uncommitted_size: 32 << 20,
            ..Default::default()
        };
        rc.validate()
            .map_err(|e| RaftError::Config(e.to_string()))?;
        let raw = RawNode::new(
            &rc,
            LogCache::from_recovered(recovered),
            &super::logger::logger(cfg.id),
        )
        .map_err(|e| RaftError::Config(e.to_string()))?;
        let mut node = RaftNode {
            raw,
            rng: fastrand::Rng::with_seed(cfg.seed),
            snapshot_rng: fastrand::Rng::with_seed(cfg.seed ^ 0x736e_6170_7368_6f74),
            next_tick: now + cfg.tick,
            cfg,
            in_flight: None,
            pending_compaction: None,
            proposals: BTreeMap::new(),
            reads: Vec::new(),
            applied,
            snapshot_index: applied,
            peers,
            transmit: VecDeque::new(),
            events: VecDeque::new(),
            ticks: 0,
            last_leader: (0, 0),
            removed: false,
            snapshot_due: false,
            bytes_since_snapshot: 0,
            last_snapshot_len: recovered
                .snapshot
                .as_ref()
                .map_or(0, |s| s.data.len() as u64),
            next_snapshot: (0, 0),
        };
        node.rejitter();
        node.draw_next_snapshot();
        // A cluster of one (a `-bootstrap` server) wins its election at once rather than
        // after an election timeout: its catalog is writable as soon as it starts.
        let voters: Vec<u64> = node.raw.raft.prs().conf().voters().ids().iter().collect();
        if voters == [node.cfg.id] {
            node.raw
                .campaign()
                .map_err(|e| RaftError::Config(e.to_string()))?;
        }
        Ok(node)
    }

    // ---- inputs ----

    /// Bytes a peer sent. A malformed message, one for another server, or one that is
    /// never sent between servers is refused and changes nothing.
    pub fn handle_message(&mut self, bytes: &[u8]) -> Result<(), WireError> {
        let m = wire::decode_message(bytes)?;
        self.step(m)
    }

    /// A message a peer sent, already decoded (the simulator skips the bytes).
    pub fn step(&mut self, m: Message) -> Result<(), WireError> {
        debug_assert!(self.in_flight.is_none(), "step between ready and persisted");
        if m.to != self.cfg.id || m.from == 0 || m.from == self.cfg.id {
            return Err(WireError::Misdirected {
                from: m.from,
                to: m.to,
            });
        }
        let one_entry = matches!(
            m.get_msg_type(),
            MessageType::MsgReadIndex | MessageType::MsgReadIndexResp
        );
        if one_entry && m.entries.len() != 1 {
            return Err(WireError::Shape(
                "a read-index message carries exactly one entry",
            ));
        }
        // A response from a server that is not a member is dropped by raft-rs: not an error.
        let _ = self.raw.step(m);
        self.after_input();
        Ok(())
    }

    /// Time passed: ticks once per elapsed tick period (at most a few at once after a stall).
    pub fn handle_timeout(&mut self, now: Instant) {
        let mut n = 0;
        while self.next_tick <= now {
            if n < 3 {
                self.raw.tick();
                self.ticks += 1;
                n += 1;
            }
            self.next_tick += self.cfg.tick;
        }
        if n > 0 {
            self.expire_reads();
            self.after_input();
        }
    }

    /// When [`RaftNode::handle_timeout`] wants to be called next.
    pub fn poll_timeout(&self) -> Instant {
        self.next_tick
    }

    /// Proposes `command`; its [`Event::Completed`] with `request` follows (at once with
    /// [`Outcome::NotLeader`] on a follower: writes go to the leader).
    pub fn propose(&mut self, request: u64, command: &Command) {
        let data = command.encode();
        self.propose_entry(request, Kind::Command, |raw| raw.propose(vec![], data));
    }

    /// Proposes a membership change (one server at a time); completes as a proposal does.
    /// Refused with [`Outcome::Dropped`] while another change is still being applied.
    pub fn change_membership(&mut self, request: u64, change: &ConfChangeRecord) {
        let mut cc = ConfChange::default();
        match change {
            ConfChangeRecord::AddVoter { id, .. } => {
                cc.set_change_type(ConfChangeType::AddNode);
                cc.node_id = *id;
            }
            ConfChangeRecord::AddLearner { id, .. } => {
                cc.set_change_type(ConfChangeType::AddLearnerNode);
                cc.node_id = *id;
            }
            ConfChangeRecord::Remove { id } => {
                cc.set_change_type(ConfChangeType::RemoveNode);
                cc.node_id = *id;
            }
        }
        let context = change.encode();
        self.propose_entry(request, Kind::Membership, |raw| {
            raw.propose_conf_change(context, cc)
        });
    }

    fn propose_entry(
        &mut self,
        request: u64,
        kind: Kind,
        f: impl FnOnce(&mut RawNode<LogCache>) -> raft::Result<()>,
    ) {
        debug_assert!(
            self.in_flight.is_none(),
            "propose between ready and persisted"
        );
        let outcome = if self.raw.raft.state != StateRole::Leader {
            Some(Outcome::NotLeader {
                leader: self.leader(),
            })
        } else if self.proposals.len() >= self.cfg.max_pending {
            Some(Outcome::Dropped { reason: DROP_BUSY })
        } else if f(&mut self.raw).is_err() {
            Some(Outcome::Dropped {
                reason: DROP_TRANSFER_OR_FULL,
            })
        } else {
            let index = self.raw.raft.raft_log.last_index();
            let term = self.raw.raft.term;
            self.proposals.insert(
                index,
                Proposal {
                    request,
                    term,
                    kind,
                },
            );
            None
        };
        if let Some(outcome) = outcome {
            self.events.push_back(Event::Completed { request, outcome });
        }
        self.after_input();
    }

    /// Asks for a linearizable read (Raft's ReadIndex): [`Event::ReadReady`] follows once
    /// the leader confirmed it still leads and this server applied its commit index; read
    /// the state machine then. Works on followers too (the leader is asked).
    pub fn read_index(&mut self, request: u64) {
        debug_assert!(self.in_flight.is_none(), "read between ready and persisted");
        let fail = if self.raw.raft.leader_id == 0 {
            Some(ReadFailure::NoLeader)
        } else if self.reads.len() >= self.cfg.max_pending {
            Some(ReadFailure::Busy)
        } else {
            None
        };
        if let Some(reason) = fail {
            self.events.push_back(Event::ReadFailed { request, reason });
            return;
        }
        self.reads.push(PendingRead {
            request,
            deadline: self.ticks + self.cfg.read_timeout_ticks,
            state: ReadState::Waiting,
        });
        self.after_input();
    }

    /// Hands leadership to `to` (before this leader leaves, say).
    pub fn transfer_leader(&mut self, to: u64) {
        self.raw.transfer_leader(to);
        self.after_input();
    }

    /// The transport could not reach `id` (a send queue overflowed, a dial failed):
    /// replication to it slows to probing until it answers again.
    pub fn peer_unreachable(&mut self, id: u64) {
        self.raw.report_unreachable(id);
    }

    /// A snapshot [`Transmit`] to `to` was written out (`delivered`) or dropped.
    pub fn snapshot_sent(&mut self, to: u64, delivered: bool) {
        let status = if delivered {
            raft::SnapshotStatus::Finish
        } else {
            raft::SnapshotStatus::Failure
        };
        self.raw.report_snapshot(to, status);
    }

    // ---- the ready cycle ----

    /// What must be made durable next, if anything is ready. The shell sends what
    /// [`RaftNode::poll_transmit`] has now (a leader's appends, which need not wait), persists
    /// this (fsync) and then calls [`RaftNode::persisted`] before any other input.
    pub fn ready(&mut self) -> Option<Persist> {
        if self.in_flight.is_some() {
            return None;
        }
        if let Some(p) = self.pending_compaction.take() {
            self.in_flight = Some(InFlight::Compaction);
            return Some(p);
        }
        if !self.raw.has_ready() {
            return None;
        }
        let mut rd = self.raw.ready();
        // A leader's appends go out before its own fsync, so that its disk and the
        // followers' work at once (Raft thesis §10.2.1): raft-rs counts the leader toward a
        // commit only once `persisted` reports its entries durable.
        let msgs = rd.take_messages();
        self.queue(msgs);
        let persist = Persist {
            snapshot: (!rd.snapshot().is_empty()).then(|| WireSnapshot::from_raft(rd.snapshot())),
            entries: rd.entries().iter().map(WireEntry::from_raft).collect(),
            hard_state: rd.hs().map(WireHardState::from_raft),
            must_sync: rd.must_sync(),
            background: false,
        };
        self.in_flight = Some(InFlight::Raft(Box::new(rd)));
        Some(persist)
    }

    /// The last [`RaftNode::ready`] is durable: applies what is committed to `sm`, and makes
    /// the messages and events that depended on it available.
    pub fn persisted(&mut self, sm: &mut impl StateMachine) {
        let Some(InFlight::Raft(rd)) = self.in_flight.take() else {
            return;
        };
        let mut rd = *rd;
        if !rd.snapshot().is_empty() {
            let snap = rd.snapshot().clone();
            self.raw.mut_store().apply_snapshot(snap.clone());
            self.restore(&snap, sm);
        }
        for rs in rd.take_read_states() {
            let Ok(ctx) = <[u8; 8]>::try_from(rs.request_ctx.as_slice()) else {
                continue;
            };
            let request = u64::from_le_bytes(ctx);
            if let Some(r) = self
                .reads
                .iter_mut()
                .find(|r| r.request == request && r.state == ReadState::Submitted)
            {
                r.state = ReadState::Confirmed(rs.index);
            }
        }
        let committed = rd.take_committed_entries();
        self.raw.mut_store().append(rd.entries());
        if let Some(hs) = rd.hs() {
            self.raw.mut_store().set_hard_state(hs.clone());
        }
        let msgs = rd.take_persisted_messages();
        self.queue(msgs);
        self.apply_entries(committed, sm);
        let mut light = self.raw.advance(rd);
        if let Some(c) = light.commit_index() {
            self.raw.mut_store().set_commit(c);
        }
        self.queue(light.take_messages());
        self.apply_entries(light.take_committed_entries(), sm);
        self.raw.advance_apply();
        self.maybe_compact(sm);
        self.after_input();
    }

    // ---- outputs ----

    /// The next message to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmit.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    // ---- leadership ----

    /// The leader this server knows of.
    pub fn leader(&self) -> Option<u64> {
        Some(self.raw.raft.leader_id).filter(|&l| l != 0)
    }

    /// Whether this server leads now.
    pub fn is_leader(&self) -> bool {
        self.raw.raft.state == StateRole::Leader
    }

    /// This server's ID.
    pub fn id(&self) -> u64 {
        self.cfg.id
    }

    /// The current term.
    pub fn term(&self) -> u64 {
        self.raw.raft.term
    }

    /// Index of the last entry applied to the state machine.
    pub fn applied(&self) -> u64 {
        self.applied
    }

    /// The members, voters and learners, and their Raft addresses, as the applied log has
    /// them.
    pub fn peers(&self) -> &BTreeMap<u64, String> {
        &self.peers
    }

    /// The stored log as the disk should hold it now: the snapshot it continues (index,
    /// term) and the entries after it (for [`super::DiskLog::rewrite_log`] once a background
    /// snapshot is durable).
    pub fn stored_log(&self) -> ((u64, u64), Vec<WireEntry>) {
        let store = self.raw.store();
        (
            store.snapshot_base(),
            store
                .entries_after_snapshot()
                .iter()
                .map(WireEntry::from_raft)
                .collect(),
        )
    }

    /// Whether this member is a learner (it replicates and never votes).
    pub fn is_learner(&self) -> bool {
        self.raw.raft.prs().conf().learners().contains(&self.cfg.id)
    }

    /// Leadership and membership in one value.
    pub fn status(&self) -> Status {
        let log = &self.raw.raft.raft_log;
        let compacted = log.first_index().saturating_sub(1);
        Status {
            id: self.cfg.id,
            term: self.term(),
            leader: self.leader(),
            is_leader: self.is_leader(),
            state: match self.raw.raft.state {
                StateRole::Leader => "Leader",
                StateRole::Candidate | StateRole::PreCandidate => "Candidate",
                StateRole::Follower => "Follower",
            },
            last_log: (log.last_index(), log.last_term()),
            last_snapshot: (compacted, log.term(compacted).unwrap_or(0)),
            applied: self.applied,
            commit: self.raw.raft.raft_log.committed,
            peers: self.members(false),
            learners: self.members(true),
        }
    }

    /// The voters (`learners` false) or the learners, with their addresses.
    fn members(&self, learners: bool) -> BTreeMap<u64, String> {
        let conf = self.raw.raft.prs().conf();
        self.peers
            .iter()
            .filter(|(id, _)| conf.learners().contains(id) == learners)
            .map(|(&id, a)| (id, a.clone()))
            .collect()
    }

    // ---- internals ----

    /// raft-rs draws election timeouts from the thread's RNG; draw them from the seeded one
    /// instead, whenever the election clock restarts (so a seed replays exactly).
    fn rejitter(&mut self) {
        let r = &mut self.raw.raft;
        if r.state != StateRole::Leader && r.election_elapsed == 0 {
            let min = self.cfg.election_ticks;
            let t = self.rng.usize(min..2 * min);
            r.set_randomized_election_timeout(t);
        }
    }

    fn after_input(&mut self) {
        self.rejitter();
        let now = (self.raw.raft.leader_id, self.raw.raft.term);
        if now != self.last_leader {
            let (leader, term) = now;
            if leader != self.last_leader.0 {
                self.events.push_back(Event::LeaderChanged {
                    leader: Some(leader).filter(|&l| l != 0),
                    term,
                });
            }
            self.last_leader = now;
            // raft-rs forgets unconfirmed reads when the term or leader changes.
            let events = &mut self.events;
            self.reads.retain(|r| {
                if matches!(r.state, ReadState::Confirmed(_)) {
                    return true;
                }
                events.push_back(Event::ReadFailed {
                    request: r.request,
                    reason: ReadFailure::LeaderChanged,
                });
                false
            });
        }
        // Submit held reads once raft-rs can serve them.
        let serving =
            self.raw.raft.state != StateRole::Leader || self.raw.raft.commit_to_current_term();
        if serving {
            for i in 0..self.reads.len() {
                if self.reads[i].state == ReadState::Waiting {
                    self.reads[i].state = ReadState::Submitted;
                    let ctx = self.reads[i].request.to_le_bytes().to_vec();
                    self.raw.read_index(ctx);
                }
            }
        }
        let applied = self.applied;
        let events = &mut self.events;
        self.reads.retain(|r| match r.state {
            ReadState::Confirmed(index) if index <= applied => {
                events.push_back(Event::ReadReady {
                    request: r.request,
                    index,
                });
                false
            }
            _ => true,
        });
    }

    fn expire_reads(&mut self) {
        let ticks = self.ticks;
        let events = &mut self.events;
        self.reads.retain(|r| {
            if r.deadline > ticks {
                return true;
            }
            events.push_back(Event::ReadFailed {
                request: r.request,
                reason: ReadFailure::TimedOut,
            });
            false
        });
    }

    fn queue(&mut self, msgs: Vec<Message>) {
        for m in msgs {
            if let Some(bytes) = wire::encode_message(&m) {
                self.transmit.push_back(Transmit {
                    to: m.to,
                    bytes,
                    snapshot: m.get_msg_type() == MessageType::MsgSnapshot,
                });
            }
        }
    }

    fn restore(&mut self, snap: &raft::eraftpb::Snapshot, sm: &mut impl StateMachine) {
        let index = snap.get_metadata().index;
        match postcard::from_bytes::<SnapshotData>(&snap.data) {
            Ok(data) => {
                if let Err(e) = sm.restore(&data.state) {
                    // The leader's own snapshot: this cannot be, short of a bug or a version
                    // mismatch. Go on with the old state rather than crash; say so loudly.
                    tracing::error!("raft: cannot restore the snapshot at index {index}: {e}");
                }
                self.peers = data.peers.into_iter().collect();
                self.events.push_back(Event::PeersChanged);
            }
            Err(e) => tracing::error!("raft: malformed snapshot at index {index}: {e}"),
        }
        self.applied = index;
        self.snapshot_index = index;
        // Whatever was proposed up to here may or may not be in the snapshot.
        let later = self.proposals.split_off(&(index + 1));
        for (_, p) in std::mem::replace(&mut self.proposals, later) {
            self.events.push_back(Event::Completed {
                request: p.request,
                outcome: Outcome::Unknown,
            });
        }
    }

    fn apply_entries(&mut self, entries: Vec<Entry>, sm: &mut impl StateMachine) {
        for e in entries {
            if e.index <= self.applied {
                continue;
            }
            self.bytes_since_snapshot += (e.data.len() + e.context.len()) as u64;
            let (kind, outcome) = match e.get_entry_type() {
                EntryType::EntryNormal if e.data.is_empty() => (None, None),
                EntryType::EntryNormal => {
                    let outcome = match Command::decode(&e.data) {
                        Ok(cmd) => match sm.apply(e.index, &cmd) {
                            Ok(()) => Outcome::Applied { index: e.index },
                            Err(error) => Outcome::Refused {
                                index: e.index,
                                error,
                            },
                        },
                        Err(err) => {
                            tracing::error!("raft: entry {} is not a command: {err}", e.index);
                            Outcome::Dropped {
                                reason: DROP_NOT_A_COMMAND,
                            }
                        }
                    };
                    (Some(Kind::Command), Some(outcome))
                }
                EntryType::EntryConfChange | EntryType::EntryConfChangeV2 => {
                    self.apply_membership(&e);
                    (
                        Some(Kind::Membership),
                        Some(Outcome::Applied { index: e.index }),
                    )
                }
            };
            while let Some(entry) = self.proposals.first_entry() {
                if *entry.key() > e.index {
                    break;
                }
                let (index, p) = entry.remove_entry();
                let outcome = match &outcome {
                    Some(o) if index == e.index && p.term == e.term && kind == Some(p.kind) => {
                        o.clone()
                    }
                    _ if index == e.index && p.term == e.term => Outcome::Dropped {
                        reason: DROP_MEMBERSHIP_BUSY,
                    },
                    _ => Outcome::Dropped {
                        reason: DROP_LEADER_CHANGED,
                    },
                };
                self.events.push_back(Event::Completed {
                    request: p.request,
                    outcome,
                });
            }
            self.applied = e.index;
        }
    }

    fn apply_membership(&mut self, e: &Entry) {
        let record = ConfChangeRecord::decode(&e.context);
        let result = match &record {
            Some(
                ConfChangeRecord::AddVoter { id, .. }
                | ConfChangeRecord::AddLearner { id, .. }
                | ConfChangeRecord::Remove { id },
            ) => {
                let mut cc = ConfChange::default();
                cc.set_change_type(match record {
                    Some(ConfChangeRecord::AddVoter { .. }) => ConfChangeType::AddNode,
                    Some(ConfChangeRecord::AddLearner { .. }) => ConfChangeType::AddLearnerNode,
                    _ => ConfChangeType::RemoveNode,
                });
                cc.node_id = *id;
                self.raw.apply_conf_change(&cc)
            }
            // raft-rs's own (empty) change: leave a joint configuration.
            None => self.raw.apply_conf_change(&ConfChangeV2::default()),
        };
        if let Err(err) = result {
            tracing::error!("raft: membership change at {} not applied: {err}", e.index);
            return;
        }
        match record {
            Some(
                ConfChangeRecord::AddVoter { id, addr } | ConfChangeRecord::AddLearner { id, addr },
            ) => {
                if id == self.cfg.id {
                    self.removed = false;
                }
                if !self.peers.contains_key(&id) {
                    self.snapshot_due = true;
                }
                self.peers.insert(id, addr);
            }
            Some(ConfChangeRecord::Remove { id }) => {
                self.peers.remove(&id);
                if id == self.cfg.id && !self.removed {
                    self.removed = true;
                    self.events.push_back(Event::Removed);
                }
            }
            None => {}
        }
        self.events.push_back(Event::PeersChanged);
    }

    fn draw_next_snapshot(&mut self) {
        let (every, len) = (self.cfg.snapshot_every, self.last_snapshot_len);
        self.next_snapshot = (
            every + self.snapshot_rng.u64(0..=every / 2),
            len / 2 + self.snapshot_rng.u64(0..=len / 2),
        );
    }

    fn maybe_compact(&mut self, sm: &impl StateMachine) {
        let due = self.snapshot_due
            || (self.applied >= self.snapshot_index + self.next_snapshot.0
                && self.bytes_since_snapshot >= self.next_snapshot.1);
        if !due || self.pending_compaction.is_some() || self.applied == self.snapshot_index {
            return;
        }
        let Ok(term) = self.raw.store().term(self.applied) else {
            return;
        };
        let data = SnapshotData {
            peers: self.peers.iter().map(|(&id, a)| (id, a.clone())).collect(),
            // The state grew since, most likely: an eighth more.
            state: sm.snapshot(self.last_snapshot_len as usize / 8 * 9),
        };
        let snap = WireSnapshot {
            index: self.applied,
            term,
            conf_state: WireConfState::from_raft(&self.raw.raft.prs().conf().to_conf_state()),
            data: data.encode().into(),
        };
        self.raw.mut_store().compact_to(snap.to_raft());
        self.snapshot_index = self.applied;
        self.snapshot_due = false;
        self.bytes_since_snapshot = 0;
        self.last_snapshot_len = snap.data.len() as u64;
        self.draw_next_snapshot();
        let store = self.raw.store();
        self.pending_compaction = Some(Persist {
            snapshot: Some(snap),
            entries: store
                .entries_after_snapshot()
                .iter()
                .map(WireEntry::from_raft)
                .collect(),
            hard_state: Some(WireHardState::from_raft(store.hard_state())),
            must_sync: true,
            background: true,
        });
    }
}

#[cfg(test)]
mod tests;
