//! A deterministic simulation of a Raft cluster: servers running [`RaftNode`] on a virtual
//! clock, a network that loses, delays, reorders and partitions, crashes and restarts (from
//! what was fsynced, or losing what was not), and clients writing and reading KV keys.
//!
//! Everything random comes from one seed, so a failing seed replays exactly. A run has a
//! *safety* phase with faults, then a *liveness* phase (healed network, every server up)
//! that must converge in bounded virtual time. The checkers stand apart from the servers
//! ([`check`]): at most one leader per term, one command per log index on every server,
//! every acknowledged write in the log, a linearizable KV history, and equal catalogs at the
//! end.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::time::{Duration, Instant};

use super::node::{Event, Outcome, RaftConfig, RaftNode, ReadFailure, StateMachine};
use super::storage::Recovered;
use crate::catalog::{ApplyError, Catalog, Change, Command, KvDelete, KvSet, SnapshotError};

pub mod check;

use check::{KvOp, OpRecord};

/// The faults and the load of one run.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Every random choice of the run comes from this.
    pub seed: u64,
    /// 3 or 5.
    pub servers: usize,
    /// Virtual time of the safety phase.
    pub safety: Duration,
    /// Clients, each with one operation at a time.
    pub clients: usize,
    /// KV keys the clients use (each is one register of the linearizability model).
    pub keys: usize,
    /// Mean pause of a client between two operations.
    pub think: Duration,
    /// Probability that a message is lost.
    pub loss: f64,
    /// Messages take 1 ms to this much (so they reorder).
    pub max_delay: Duration,
    /// Mean time between faults (partition, heal, crash, restart) in the safety phase.
    pub fault_every: Duration,
    /// Whether the network partitions (into two random groups) and heals.
    pub partitions: bool,
    /// Whether servers crash and restart.
    pub crashes: bool,
    /// Servers down at once, at most (a minority keeps the cluster available).
    pub max_down: usize,
    /// Probability that a crash falls between a write and its fsync (losing it).
    pub torn_crash: f64,
    /// Snapshot and compact every this many entries (small, to exercise snapshots).
    pub snapshot_every: u64,
}

impl SimConfig {
    /// Every fault on, at rates that make a few partitions and crashes per run.
    pub fn chaos(seed: u64, servers: usize) -> SimConfig {
        SimConfig {
            seed,
            servers,
            safety: Duration::from_secs(6),
            clients: 3,
            keys: 2,
            think: Duration::from_millis(150),
            loss: 0.05,
            max_delay: Duration::from_millis(15),
            fault_every: Duration::from_millis(1500),
            partitions: true,
            crashes: true,
            max_down: (servers - 1) / 2,
            torn_crash: 0.3,
            snapshot_every: 24,
        }
    }
}

/// What a run did, for reports.
#[derive(Clone, Debug, Default)]
pub struct SimReport {
    /// The run's seed.
    pub seed: u64,
    /// Operations that completed with an answer (writes acknowledged or refused, reads).
    pub completed: usize,
    /// Writes whose outcome stayed unknown (timeouts, crashes).
    pub indeterminate: usize,
    /// Leaders elected (one per term that had one).
    pub elections: usize,
    /// Servers crashed.
    pub crashes: usize,
    /// Partitions made.
    pub partitions: usize,
    /// For each crash of a leader while the rest of the cluster could reach a quorum: the
    /// virtual time until another server led.
    pub failovers: Vec<Duration>,
    /// Virtual time simulated.
    pub elapsed: Duration,
}

/// A violated property, with the seed that shows it.
#[derive(Clone, Debug)]
pub struct SimFailure {
    /// The seed that replays it.
    pub seed: u64,
    /// Which property, and how.
    pub what: String,
}

impl std::fmt::Display for SimFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "seed {}: {} (replay with OUTPOST_RAFT_SEED={})",
            self.seed, self.what, self.seed
        )
    }
}

/// The catalog, recording what it applied at each index (for the log checker).
#[derive(Default)]
struct SimState {
    catalog: Catalog,
    applied: Vec<(u64, Vec<u8>)>,
}

impl StateMachine for SimState {
    fn apply(&mut self, index: u64, command: &Command) -> Result<(), ApplyError> {
        self.applied.push((index, command.encode()));
        StateMachine::apply(&mut self.catalog, index, command)
    }

    fn snapshot(&self, size_hint: usize) -> Vec<u8> {
        StateMachine::snapshot(&self.catalog, size_hint)
    }

    fn restore(&mut self, state: &[u8]) -> Result<(), SnapshotError> {
        StateMachine::restore(&mut self.catalog, state)
    }
}

struct Server {
    id: u64,
    node: Option<RaftNode>,
    state: SimState,
    disk: Recovered,
    /// Restart seed counter, so each incarnation draws different timeouts.
    incarnation: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PendingKind {
    Write,
    Read,
}

struct Client {
    /// Server the client believes leads.
    target: u64,
    /// The operation in progress: index into `history`, request ID, deadline.
    busy: Option<(usize, u64, u64, PendingKind)>,
    next_at: u64,
    /// Last value read per key (for a CAS): (value, modify index).
    seen: HashMap<u32, Option<(u32, u64)>>,
}

/// One simulated cluster.
pub struct Sim {
    cfg: SimConfig,
    rng: fastrand::Rng,
    base: Instant,
    /// Virtual milliseconds.
    now: u64,
    servers: Vec<Server>,
    /// (deliver at, sequence) → (from, to, bytes).
    net: BinaryHeap<Reverse<(u64, u64, usize, usize)>>,
    in_flight: HashMap<u64, Vec<u8>>,
    seq: u64,
    /// Partition group of each server; messages pass only within a group.
    group: Vec<u8>,
    clients: Vec<Client>,
    history: Vec<OpRecord>,
    requests: HashMap<u64, usize>,
    next_request: u64,
    next_value: u32,
    leaders: BTreeMap<u64, u64>,
    /// The command applied at each index, by the first server that applied it.
    log: BTreeMap<u64, Vec<u8>>,
    /// Acknowledged writes: (index, command).
    acked: Vec<(u64, Vec<u8>)>,
    report: SimReport,
    /// A leader crash being timed: (crashed at, its term).
    failover: Option<(u64, u64)>,
    healing: bool,
}

const CLIENT_TIMEOUT_MS: u64 = 2000;

impl Sim {
    /// A cluster of `cfg.servers` bootstrapped together, no client operation yet.
    pub fn new(cfg: SimConfig) -> Sim {
        let mut rng = fastrand::Rng::with_seed(cfg.seed);
        let voters: Vec<(u64, String)> = (1..=cfg.servers as u64)
            .map(|id| (id, format!("sim-{id}")))
            .collect();
        let boot = RaftNode::bootstrap(&voters);
        let base = Instant::now();
        let servers = (1..=cfg.servers as u64)
            .map(|id| Server {
                id,
                node: None,
                state: SimState::default(),
                disk: boot.clone(),
                incarnation: rng.u64(..),
            })
            .collect();
        let clients = (0..cfg.clients)
            .map(|_| Client {
                target: rng.u64(1..=cfg.servers as u64),
                busy: None,
                next_at: rng.u64(0..300),
                seen: HashMap::new(),
            })
            .collect();
        let mut sim = Sim {
            group: vec![0; cfg.servers],
            rng,
            base,
            now: 0,
            servers,
            net: BinaryHeap::new(),
            in_flight: HashMap::new(),
            seq: 0,
            clients,
            history: Vec::new(),
            requests: HashMap::new(),
            next_request: 1,
            next_value: 1,
            leaders: BTreeMap::new(),
            log: BTreeMap::new(),
            acked: Vec::new(),
            report: SimReport {
                seed: cfg.seed,
                ..Default::default()
            },
            failover: None,
            healing: false,
            cfg,
        };
        for i in 0..sim.servers.len() {
            sim.start(i);
        }
        sim
    }

    fn instant(&self) -> Instant {
        self.base + Duration::from_millis(self.now)
    }

    fn fail(&self, what: String) -> SimFailure {
        SimFailure {
            seed: self.cfg.seed,
            what,
        }
    }

    fn start(&mut self, i: usize) {
        // Servers start at different moments, so their ticks are out of phase.
        let now = self.instant() + Duration::from_millis(self.rng.u64(0..100));
        let s = &mut self.servers[i];
        s.incarnation = s.incarnation.wrapping_add(1);
        let mut cfg = RaftConfig::new(s.id, s.incarnation);
        cfg.snapshot_every = self.cfg.snapshot_every;
        let mut disk = s.disk.clone();
        if let Some(snap) = &disk.snapshot {
            disk.hard_state.commit = disk.hard_state.commit.max(snap.index);
        }
        s.state = SimState::default();
        s.node = Some(RaftNode::new(cfg, &disk, &mut s.state, now).expect("a valid config"));
    }

    fn crash(&mut self, i: usize) {
        let s = &mut self.servers[i];
        if let Some(node) = s.node.take() {
            self.report.crashes += 1;
            let others_have_quorum = {
                let up = self.servers.iter().filter(|s| s.node.is_some()).count();
                up > self.cfg.servers / 2 && self.group.iter().all(|&g| g == self.group[0])
            };
            if node.is_leader() && others_have_quorum && self.failover.is_none() {
                self.failover = Some((self.now, node.term()));
            }
        }
    }

    /// Runs the node of server `i` until it has nothing ready, then sends and handles what
    /// it produced.
    fn drive(&mut self, i: usize) -> Result<(), SimFailure> {
        loop {
            let Some(node) = self.servers[i].node.as_mut() else {
                return Ok(());
            };
            let Some(p) = node.ready() else { break };
            if self.cfg.crashes
                && !self.healing
                && !p.entries.is_empty()
                && self.rng.f64() < self.cfg.torn_crash / 200.0
            {
                // Crash between write and fsync: the persist never happened, but what a
                // leader sends before its fsync may be out.
                let out: Vec<_> = std::iter::from_fn(|| node.poll_transmit()).collect();
                for t in out.into_iter().filter(|t| !t.snapshot) {
                    self.send(i, t.to, t.bytes);
                }
                self.crash(i);
                return Ok(());
            }
            let s = &mut self.servers[i];
            s.disk.apply_persist(&p);
            let node = s.node.as_mut().expect("checked above");
            node.persisted(&mut s.state);
        }
        // The log checker: one command per index across all servers.
        let applied = std::mem::take(&mut self.servers[i].state.applied);
        for (index, cmd) in applied {
            match self.log.get(&index) {
                Some(c) if *c != cmd => {
                    return Err(self.fail(format!(
                        "server {} applied a different command at index {index} than another server",
                        i + 1
                    )));
                }
                Some(_) => {}
                None => {
                    self.log.insert(index, cmd);
                }
            }
        }
        let mut out = Vec::new();
        let mut events = Vec::new();
        {
            let node = self.servers[i].node.as_mut().expect("still up");
            while let Some(t) = node.poll_transmit() {
                out.push(t);
            }
            while let Some(e) = node.poll_event() {
                events.push(e);
            }
            for t in out.iter().filter(|t| t.snapshot) {
                node.snapshot_sent(t.to, true);
            }
            if node.is_leader() {
                let term = node.term();
                match self.leaders.get(&term) {
                    Some(&l) if l != node.id() => {
                        return Err(SimFailure {
                            seed: self.cfg.seed,
                            what: format!(
                                "two leaders in term {term}: servers {l} and {}",
                                node.id()
                            ),
                        });
                    }
                    Some(_) => {}
                    None => {
                        self.leaders.insert(term, node.id());
                        self.report.elections += 1;
                        if let Some((at, old_term)) = self.failover
                            && term > old_term
                        {
                            self.report
                                .failovers
                                .push(Duration::from_millis(self.now - at));
                            self.failover = None;
                        }
                    }
                }
            }
        }
        for t in out {
            self.send(i, t.to, t.bytes);
        }
        for e in events {
            self.on_event(i, e);
        }
        Ok(())
    }

    fn send(&mut self, from: usize, to: u64, bytes: Vec<u8>) {
        let to = (to - 1) as usize;
        if to >= self.servers.len() || (!self.healing && self.rng.f64() < self.cfg.loss) {
            return;
        }
        let delay = 1 + self
            .rng
            .u64(0..self.cfg.max_delay.as_millis().max(1) as u64);
        self.seq += 1;
        self.in_flight.insert(self.seq, bytes);
        self.net
            .push(Reverse((self.now + delay, self.seq, from, to)));
    }

    fn on_event(&mut self, i: usize, e: Event) {
        let server = self.servers[i].id;
        let (request, done) = match e {
            Event::Completed { request, outcome } => (request, Done::Write(outcome)),
            Event::ReadReady { request, .. } => (request, Done::Read(None)),
            Event::ReadFailed { request, reason } => (request, Done::Read(Some(reason))),
            _ => return,
        };
        let Some(&c) = self.requests.get(&request) else {
            return;
        };
        let Some((h, req, _, _)) = self.clients[c].busy else {
            return;
        };
        if req != request {
            return;
        }
        self.requests.remove(&request);
        let key = self.history[h].key;
        match done {
            Done::Write(Outcome::Applied { index }) => {
                let cmd = self.history[h].command.clone();
                self.acked.push((index, cmd));
                self.finish(c, h, None);
            }
            Done::Write(Outcome::Refused {
                error: ApplyError::CasFailed { .. },
                ..
            }) => {
                self.history[h].op = match self.history[h].op {
                    KvOp::Cas { expect, new, .. } => KvOp::Cas {
                        expect,
                        new,
                        ok: Some(false),
                    },
                    op => op,
                };
                self.finish(c, h, None);
            }
            Done::Write(Outcome::Refused { .. }) | Done::Write(Outcome::Unknown) => {
                self.history[h].indeterminate = true;
                self.clients[c].busy = None;
                self.clients[c].next_at = self.now + 10;
                self.report.indeterminate += 1;
            }
            Done::Write(Outcome::NotLeader { leader }) => {
                self.retry(c, leader);
            }
            Done::Write(Outcome::Dropped { .. }) => self.retry(c, None),
            Done::Read(None) => {
                let entry = self.servers[i]
                    .state
                    .catalog
                    .kv()
                    .get(&key_name(key))
                    .map(|e| (value_of(&e.value), e.modify_index));
                self.clients[c].seen.insert(key, entry);
                self.history[h].op = KvOp::Read {
                    value: Some(entry.map(|e| e.0)),
                };
                self.finish(c, h, None);
            }
            Done::Read(Some(reason)) => {
                let hint = match reason {
                    ReadFailure::NoLeader | ReadFailure::LeaderChanged => None,
                    _ => Some(server),
                };
                self.retry(c, hint);
            }
        }
    }

    fn finish(&mut self, c: usize, h: usize, _: Option<()>) {
        self.history[h].ret = self.now;
        self.report.completed += 1;
        let client = &mut self.clients[c];
        client.busy = None;
        let think = self.cfg.think.as_millis() as u64;
        client.next_at = self.now + self.rng.u64(0..=2 * think);
    }

    /// The operation was certainly not applied: try again (keeping its invocation time),
    /// at the hinted leader or another server.
    fn retry(&mut self, c: usize, leader: Option<u64>) {
        let n = self.cfg.servers as u64;
        let target = leader.unwrap_or_else(|| self.rng.u64(1..=n));
        let client = &mut self.clients[c];
        client.target = target;
        if let Some((h, _, deadline, kind)) = client.busy.take() {
            // Resubmitted on the next step, after a short pause.
            client.busy = Some((h, 0, deadline, kind));
            client.next_at = self.now + 5 + self.rng.u64(0..20);
        }
    }

    fn issue(&mut self, c: usize) {
        let n = self.cfg.servers as u64;
        // A down server cannot be asked; pick another.
        let mut target = self.clients[c].target;
        if self.servers[(target - 1) as usize].node.is_none() {
            target = self.rng.u64(1..=n);
            self.clients[c].target = target;
            if self.servers[(target - 1) as usize].node.is_none() {
                return;
            }
        }
        let request = self.next_request;
        self.next_request += 1;
        let (h, kind, deadline) = match self.clients[c].busy {
            Some((h, _, deadline, kind)) => (h, kind, deadline),
            None => {
                let key = self.rng.u32(0..self.cfg.keys as u32);
                let (op, command) = self.new_op(c, key);
                let kind = if matches!(op, KvOp::Read { .. }) {
                    PendingKind::Read
                } else {
                    PendingKind::Write
                };
                self.history.push(OpRecord {
                    client: c,
                    key,
                    invoke: self.now,
                    ret: u64::MAX,
                    op,
                    command: command.map(|c| c.encode()).unwrap_or_default(),
                    indeterminate: false,
                });
                (self.history.len() - 1, kind, self.now + CLIENT_TIMEOUT_MS)
            }
        };
        self.clients[c].busy = Some((h, request, deadline, kind));
        self.requests.insert(request, c);
        let i = (target - 1) as usize;
        let node = self.servers[i].node.as_mut().expect("checked up");
        match kind {
            PendingKind::Read => node.read_index(request),
            PendingKind::Write => {
                let cmd = Command::decode(&self.history[h].command).expect("we encoded it");
                node.propose(request, &cmd);
            }
        }
    }

    fn new_op(&mut self, c: usize, key: u32) -> (KvOp, Option<Command>) {
        let k = key_name(key);
        let roll = self.rng.u32(0..10);
        let value = self.next_value;
        if roll < 3 {
            return (KvOp::Read { value: None }, None);
        }
        self.next_value += 1;
        let set = |cas: Option<u64>| {
            Command::one(Change::KvSet(KvSet {
                key: k.clone(),
                value: value.to_le_bytes().to_vec(),
                flags: 0,
                cas,
            }))
        };
        match roll {
            3..=5 => (KvOp::Set { value }, Some(set(None))),
            6..=8 => {
                let seen = self.clients[c].seen.get(&key).copied().flatten();
                let (expect, cas) = match seen {
                    Some((v, index)) => (Some(v), index),
                    None => (None, 0),
                };
                (
                    KvOp::Cas {
                        expect,
                        new: value,
                        ok: Some(true),
                    },
                    Some(set(Some(cas))),
                )
            }
            _ => (
                KvOp::Delete,
                Some(Command::one(Change::KvDelete(KvDelete {
                    key: k,
                    recurse: false,
                    cas: None,
                }))),
            ),
        }
    }

    fn clients_step(&mut self) {
        for c in 0..self.clients.len() {
            match self.clients[c].busy {
                Some((h, _, deadline, kind)) if self.now >= deadline => {
                    // No answer in time: a write may or may not have happened.
                    if kind == PendingKind::Write {
                        self.history[h].indeterminate = true;
                        self.report.indeterminate += 1;
                    } else {
                        self.history[h].ret = u64::MAX;
                        self.history[h].indeterminate = true;
                    }
                    self.clients[c].busy = None;
                    self.clients[c].next_at = self.now + 10;
                }
                Some((_, 0, _, _)) if self.now >= self.clients[c].next_at => self.issue(c),
                None if self.now >= self.clients[c].next_at && !self.healing => self.issue(c),
                _ => {}
            }
        }
    }

    fn fault(&mut self) {
        let n = self.servers.len();
        let roll = self.rng.u32(0..4);
        match roll {
            0 if self.cfg.partitions => {
                for g in self.group.iter_mut() {
                    *g = self.rng.u8(0..2);
                }
                self.report.partitions += 1;
            }
            1 => self.group.iter_mut().for_each(|g| *g = 0),
            2 if self.cfg.crashes => {
                let down = self.servers.iter().filter(|s| s.node.is_none()).count();
                if down < self.cfg.max_down {
                    // Prefer the leader now and then: fail-over is what matters most.
                    let leader = self
                        .servers
                        .iter()
                        .position(|s| s.node.as_ref().is_some_and(|n| n.is_leader()));
                    let i = match leader {
                        Some(l) if self.rng.bool() => l,
                        _ => self.rng.usize(0..n),
                    };
                    self.crash(i);
                }
            }
            _ => {
                if let Some(i) = (0..n).find(|&i| self.servers[i].node.is_none()) {
                    self.start(i);
                }
            }
        }
    }

    fn step(&mut self) -> Result<(), SimFailure> {
        let now = self.instant();
        // Deliver what is due.
        while let Some(Reverse((at, seq, from, to))) = self.net.peek().copied() {
            if at > self.now {
                break;
            }
            self.net.pop();
            let bytes = self
                .in_flight
                .remove(&seq)
                .expect("queued with the message");
            if self.group[from] != self.group[to] {
                continue;
            }
            if let Some(node) = self.servers[to].node.as_mut() {
                if let Err(e) = node.handle_message(&bytes) {
                    return Err(
                        self.fail(format!("server {} refused a peer's message: {e}", to + 1))
                    );
                }
                self.drive(to)?;
            }
        }
        for i in 0..self.servers.len() {
            if let Some(node) = self.servers[i].node.as_mut()
                && node.poll_timeout() <= now
            {
                node.handle_timeout(now);
                self.drive(i)?;
            }
        }
        self.clients_step();
        for i in 0..self.servers.len() {
            self.drive(i)?;
        }
        Ok(())
    }

    /// Runs the safety phase, heals, runs the liveness phase, and checks everything.
    pub fn run(mut self) -> Result<SimReport, SimFailure> {
        const STEP: u64 = 5;
        let safety = self.cfg.safety.as_millis() as u64;
        let fault_every = self.cfg.fault_every.as_millis().max(1) as u64;
        let mut next_fault = self.rng.u64(0..2 * fault_every);
        while self.now < safety {
            if self.now >= next_fault {
                self.fault();
                next_fault = self.now + self.rng.u64(1..2 * fault_every);
            }
            self.step()?;
            self.now += STEP;
        }
        // Liveness: heal everything, let the clients finish, converge.
        self.healing = true;
        self.group.iter_mut().for_each(|g| *g = 0);
        for i in 0..self.servers.len() {
            if self.servers[i].node.is_none() {
                self.start(i);
            }
        }
        let deadline = self.now + 20_000;
        loop {
            self.step()?;
            self.now += STEP;
            if self.converged() {
                break;
            }
            if self.now > deadline {
                let status: Vec<String> = self
                    .servers
                    .iter()
                    .filter_map(|s| s.node.as_ref())
                    .map(|n| format!("{:?}", (n.id(), n.term(), n.leader(), n.applied())))
                    .collect();
                return Err(self.fail(format!(
                    "no convergence 20 s after healing: (id, term, leader, applied) {status:?}"
                )));
            }
        }
        self.report.elapsed = Duration::from_millis(self.now);
        self.check()?;
        Ok(self.report)
    }

    /// One leader known to all, every server applied the same index, no client busy.
    fn converged(&self) -> bool {
        let nodes: Vec<&RaftNode> = self
            .servers
            .iter()
            .filter_map(|s| s.node.as_ref())
            .collect();
        let Some(leader) = nodes.iter().find(|n| n.is_leader()) else {
            return false;
        };
        self.clients.iter().all(|c| c.busy.is_none())
            && nodes
                .iter()
                .all(|n| n.leader() == Some(leader.id()) && n.applied() == leader.applied())
    }

    fn check(&self) -> Result<(), SimFailure> {
        // Every acknowledged write is in the log at its index.
        for (index, cmd) in &self.acked {
            if self.log.get(index) != Some(cmd) {
                return Err(self.fail(format!(
                    "the write acknowledged at index {index} is not what the log holds there"
                )));
            }
        }
        // The catalogs agree.
        let first = self.servers[0].state.catalog.snapshot();
        for s in &self.servers[1..] {
            if s.state.catalog.snapshot() != first {
                return Err(self.fail(format!(
                    "server {} ends with a different catalog than server 1",
                    s.id
                )));
            }
        }
        // Linearizable history, with a final read of every key from server 1's state
        // (converged: everything committed is applied there).
        let mut history = self.history.clone();
        for key in 0..self.cfg.keys as u32 {
            let value = self.servers[0]
                .state
                .catalog
                .kv()
                .get(&key_name(key))
                .map(|e| value_of(&e.value));
            history.push(OpRecord {
                client: usize::MAX,
                key,
                invoke: self.now,
                ret: self.now + 1,
                op: KvOp::Read { value: Some(value) },
                command: Vec::new(),
                indeterminate: false,
            });
        }
        check::linearizable(&history).map_err(|e| self.fail(e))
    }
}

enum Done {
    Write(Outcome),
    Read(Option<ReadFailure>),
}

fn key_name(key: u32) -> String {
    format!("k/{key}")
}

fn value_of(bytes: &[u8]) -> u32 {
    <[u8; 4]>::try_from(bytes).map_or(0, u32::from_le_bytes)
}

/// Runs seeds `seeds` with `make(seed)`, stopping at the first failure.
pub fn run_seeds(
    seeds: impl IntoIterator<Item = u64>,
    make: impl Fn(u64) -> SimConfig,
) -> Result<Vec<SimReport>, SimFailure> {
    seeds
        .into_iter()
        .map(|seed| Sim::new(make(seed)).run())
        .collect()
}

#[cfg(test)]
mod tests;
