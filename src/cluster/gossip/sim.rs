//! A deterministic simulation: many [`Gossip`] cores over a simulated network on virtual
//! time. One seed decides every loss, delay, duplicate and each core's randomness, so a run
//! replays exactly; the checkers live in the tests, apart from the nodes.
//!
//! ```
//! use std::time::Duration;
//! use outpost::cluster::gossip::sim::{Sim, SimConfig};
//!
//! let mut sim = Sim::new(SimConfig::new(7, 5));
//! sim.join_all(Duration::from_millis(500));
//! assert!(sim.run_until(Duration::from_secs(10), Sim::converged));
//! sim.crash(3);
//! assert!(sim.run_until(sim.elapsed() + Duration::from_secs(5), Sim::converged));
//! ```

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, RngExt, SeedableRng};

use super::{
    EventKind, Gossip, GossipConfig, GossipError, Keyring, KeyringOp, KeyringReport, MemberStatus,
    Node, Tags, keygen,
};

/// The simulated network's behaviour.
#[derive(Clone, Debug, PartialEq)]
pub struct NetConfig {
    /// Probability that a datagram is lost.
    pub loss: f64,
    /// Shortest one-way delay.
    pub min_delay: Duration,
    /// Longest one-way delay; delays are uniform in between, so datagrams reorder.
    pub max_delay: Duration,
    /// Probability that a datagram arrives twice (the copy with its own delay).
    pub duplicate: f64,
}

impl Default for NetConfig {
    /// A LAN: no loss, 0.1 to 2 ms.
    fn default() -> NetConfig {
        NetConfig {
            loss: 0.0,
            min_delay: Duration::from_micros(100),
            max_delay: Duration::from_millis(2),
            duplicate: 0.0,
        }
    }
}

/// A simulation's set-up.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Decides everything.
    pub seed: u64,
    /// Members at the start.
    pub members: usize,
    /// Every member's gossip configuration.
    pub gossip: GossipConfig,
    /// The network.
    pub net: NetConfig,
    /// Seal packets with a cluster key drawn from the seed.
    pub encrypt: bool,
}

impl SimConfig {
    /// `members` members on the LAN profile over a clean LAN, without encryption.
    pub fn new(seed: u64, members: usize) -> SimConfig {
        SimConfig {
            seed,
            members,
            gossip: GossipConfig::lan(),
            net: NetConfig::default(),
            encrypt: false,
        }
    }
}

/// One member event as the simulation saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SimEvent {
    /// Virtual time since the start.
    pub at: Duration,
    /// The member that saw it.
    pub observer: usize,
    /// The member it is about.
    pub subject: usize,
    /// What happened.
    pub kind: EventKind,
}

/// A simulated member's life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Life {
    /// Running.
    Up,
    /// Stopped without leaving (its core is gone).
    Crashed,
    /// Left gracefully (its core runs on, as an agent shutting down would for a moment).
    Left,
}

struct SimNode {
    core: Option<Gossip>,
    addr: SocketAddr,
    name: String,
    generation: u32,
    life: Life,
    /// The wake-up already queued for this node, if any.
    wake: Option<Instant>,
    bytes_out: u64,
    packets_out: u64,
}

enum Item {
    Deliver {
        to: usize,
        from: SocketAddr,
        bytes: Vec<u8>,
    },
    Wake(usize),
    Join {
        node: usize,
        to: usize,
    },
}

/// The simulation: members, the network between them and virtual time.
pub struct Sim {
    base: Instant,
    now: Instant,
    rng: StdRng,
    net: NetConfig,
    gossip: GossipConfig,
    key: Option<String>,
    nodes: Vec<SimNode>,
    by_addr: HashMap<SocketAddr, usize>,
    by_name: HashMap<String, usize>,
    queue: BTreeMap<(Instant, u64), Item>,
    seq: u64,
    /// Partition group of each node; datagrams cross no group boundary.
    groups: Option<Vec<usize>>,
    events: Vec<SimEvent>,
    /// Datagrams the network dropped (loss or partition).
    pub dropped: u64,
}

/// The simulated address of member `i`: 198.18.0.0/15 is set aside for benchmarks
/// (RFC 2544); nothing is sent anywhere.
pub fn sim_addr(i: usize) -> SocketAddr {
    let ip = Ipv4Addr::new(
        198,
        18 + (i / 62_500) as u8,
        (i / 250 % 250) as u8,
        (i % 250 + 1) as u8,
    );
    SocketAddr::new(IpAddr::V4(ip), 8301)
}

impl Sim {
    /// A simulation of `config.members` members, none joined yet.
    pub fn new(config: SimConfig) -> Sim {
        let mut rng = StdRng::seed_from_u64(config.seed);
        let key = config.encrypt.then(|| keygen(&mut rng));
        let base = Instant::now();
        let mut sim = Sim {
            base,
            now: base,
            rng,
            net: config.net,
            gossip: config.gossip,
            key,
            nodes: Vec::new(),
            by_addr: HashMap::new(),
            by_name: HashMap::new(),
            queue: BTreeMap::new(),
            seq: 0,
            groups: None,
            events: Vec::new(),
            dropped: 0,
        };
        for _ in 0..config.members {
            sim.add_member();
        }
        sim
    }

    /// Adds a member (not joined); returns its index.
    pub fn add_member(&mut self) -> usize {
        let i = self.nodes.len();
        let name = format!("n{i}");
        let addr = sim_addr(i);
        self.nodes.push(SimNode {
            core: None,
            addr,
            name: name.clone(),
            generation: 1,
            life: Life::Up,
            wake: None,
            bytes_out: 0,
            packets_out: 0,
        });
        self.by_addr.insert(addr, i);
        self.by_name.insert(name, i);
        self.start_core(i);
        i
    }

    fn start_core(&mut self, i: usize) {
        let mut seed = [0u8; 32];
        self.rng.fill_bytes(&mut seed);
        let n = &self.nodes[i];
        let tags = if i == 0 {
            Tags::server("dc1", 8300)
        } else {
            Tags::client("dc1")
        };
        let node = Node::new(&n.name, n.addr, n.generation, tags);
        let keyring = self.key.as_deref().map(|k| {
            Keyring::new(k).unwrap_or_else(|e| unreachable!("a generated key parses: {e}"))
        });
        let core = Gossip::new(self.gossip.clone(), node, keyring, seed, self.now)
            .unwrap_or_else(|e| panic!("simulated member {i}: {e}"));
        self.nodes[i].core = Some(core);
        self.nodes[i].life = Life::Up;
        self.nodes[i].wake = None;
        self.settle(i);
    }

    fn push(&mut self, at: Instant, item: Item) {
        self.seq += 1;
        self.queue.insert((at, self.seq), item);
    }

    /// Members 1.. join member 0, each at a random moment within `spread`.
    pub fn join_all(&mut self, spread: Duration) {
        for i in 1..self.nodes.len() {
            let at = self.now + spread.mul_f64(self.rng.random::<f64>());
            self.push(at, Item::Join { node: i, to: 0 });
        }
    }

    /// Member `node` joins member `to` now.
    pub fn join(&mut self, node: usize, to: usize) {
        let addr = self.nodes[to].addr;
        if let Some(core) = self.nodes[node].core.as_mut()
            && let Err(e) = core.join(self.now, addr)
        {
            panic!("simulated join of n{node} to n{to}: {e}");
        }
        self.settle(node);
    }

    /// Member `i` stops at once, without leaving: its state is gone.
    pub fn crash(&mut self, i: usize) {
        self.nodes[i].core = None;
        self.nodes[i].life = Life::Crashed;
        self.nodes[i].wake = None;
    }

    /// Member `i` leaves gracefully; its core keeps running (unreachable from then on as a
    /// member, as an agent finishing its shutdown).
    pub fn leave(&mut self, i: usize) {
        if let Some(core) = self.nodes[i].core.as_mut() {
            if let Err(e) = core.leave(self.now) {
                panic!("simulated leave of n{i}: {e}");
            }
            self.nodes[i].life = Life::Left;
        }
        self.settle(i);
    }

    /// Member `i` starts again (a restart: empty state, the next generation) and joins
    /// member `to`.
    pub fn restart(&mut self, i: usize, to: usize) {
        let next = self.nodes[i].generation + 1;
        self.restart_at(i, to, next);
    }

    /// Member `i` starts again at `generation` (lower than before: a clock set back) and
    /// joins member `to`.
    pub fn restart_at(&mut self, i: usize, to: usize, generation: u32) {
        self.nodes[i].generation = generation;
        self.start_core(i);
        self.join(i, to);
    }

    /// Splits the network: datagrams pass only within a group. Members in no group form
    /// one more group together.
    pub fn partition(&mut self, groups: &[&[usize]]) {
        let mut g = vec![groups.len(); self.nodes.len()];
        for (k, members) in groups.iter().enumerate() {
            for &i in *members {
                g[i] = k;
            }
        }
        self.groups = Some(g);
    }

    /// Ends the partition.
    pub fn heal(&mut self) {
        self.groups = None;
    }

    /// Changes the loss probability from now on.
    pub fn set_loss(&mut self, loss: f64) {
        self.net.loss = loss;
    }

    /// Virtual time since the start.
    pub fn elapsed(&self) -> Duration {
        self.now - self.base
    }

    /// The virtual clock.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Runs until virtual time `until` (since the start).
    pub fn run_to(&mut self, until: Duration) {
        let end = self.base + until;
        while let Some((&(at, _), _)) = self.queue.first_key_value() {
            if at > end {
                break;
            }
            self.step();
        }
        self.now = self.now.max(end);
    }

    /// Runs for `d` more.
    pub fn run_for(&mut self, d: Duration) {
        let until = self.elapsed() + d;
        self.run_to(until);
    }

    /// Runs until `done` holds (checked every 50 ms of virtual time) or until `until`
    /// (since the start); whether it held.
    pub fn run_until(&mut self, until: Duration, done: impl FnMut(&Sim) -> bool) -> bool {
        self.run_until_every(until, Duration::from_millis(50), done)
    }

    /// [`Sim::run_until`], checking `done` every `step` of virtual time.
    pub fn run_until_every(
        &mut self,
        until: Duration,
        step: Duration,
        mut done: impl FnMut(&Sim) -> bool,
    ) -> bool {
        loop {
            if done(self) {
                return true;
            }
            if self.elapsed() >= until {
                return false;
            }
            let next = (self.elapsed() + step).min(until);
            self.run_to(next);
        }
    }

    fn step(&mut self) {
        let Some(((at, _), item)) = self.queue.pop_first() else {
            return;
        };
        self.now = self.now.max(at);
        let now = self.now;
        match item {
            Item::Deliver { to, from, bytes } => {
                if let Some(core) = self.nodes[to].core.as_mut() {
                    core.handle_packet(now, from, &bytes);
                    self.settle(to);
                }
            }
            Item::Wake(i) => {
                if self.nodes[i].wake == Some(at) {
                    self.nodes[i].wake = None;
                    if let Some(core) = self.nodes[i].core.as_mut() {
                        core.handle_timeout(now);
                    }
                    self.settle(i);
                }
            }
            Item::Join { node, to } => {
                if self.nodes[node].life == Life::Up {
                    self.join(node, to);
                }
            }
        }
    }

    /// Drains member `i`'s outputs into the network and the event log, and queues its next
    /// wake-up.
    fn settle(&mut self, i: usize) {
        let Some(mut core) = self.nodes[i].core.take() else {
            return;
        };
        while let Some(t) = core.poll_transmit() {
            self.route(i, t.destination, t.contents);
        }
        while let Some(e) = core.poll_event() {
            if let Some(&subject) = self.by_name.get(e.member.name()) {
                self.events.push(SimEvent {
                    at: self.elapsed(),
                    observer: i,
                    subject,
                    kind: e.kind,
                });
            }
        }
        if let Some(t) = core.poll_timeout() {
            let t = t.max(self.now);
            if self.nodes[i].wake.is_none_or(|w| t < w) {
                self.nodes[i].wake = Some(t);
                self.push(t, Item::Wake(i));
            }
        }
        self.nodes[i].core = Some(core);
    }

    fn route(&mut self, from: usize, to: SocketAddr, bytes: Vec<u8>) {
        self.nodes[from].bytes_out += bytes.len() as u64;
        self.nodes[from].packets_out += 1;
        let Some(&j) = self.by_addr.get(&to) else {
            self.dropped += 1;
            return;
        };
        if let Some(g) = &self.groups
            && g[from] != g[j]
        {
            self.dropped += 1;
            return;
        }
        if self.rng.random_bool(self.net.loss.clamp(0.0, 1.0)) {
            self.dropped += 1;
            return;
        }
        let copies = if self.rng.random_bool(self.net.duplicate.clamp(0.0, 1.0)) {
            2
        } else {
            1
        };
        let from_addr = self.nodes[from].addr;
        for _ in 0..copies {
            let spread = self.net.max_delay.saturating_sub(self.net.min_delay);
            let delay = self.net.min_delay + spread.mul_f64(self.rng.random::<f64>());
            let at = self.now + delay;
            self.push(
                at,
                Item::Deliver {
                    to: j,
                    from: from_addr,
                    bytes: bytes.clone(),
                },
            );
        }
    }

    // ---- what the checkers read ----

    /// Members, including crashed ones.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the simulation has no members.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Member `i`'s life.
    pub fn life(&self, i: usize) -> Life {
        self.nodes[i].life
    }

    /// Member `i`'s core, unless it crashed.
    pub fn core(&self, i: usize) -> Option<&Gossip> {
        self.nodes[i].core.as_ref()
    }

    /// Runs `f` on member `i`'s core (unless it crashed), then sends what it produced.
    pub fn with_core<R>(
        &mut self,
        i: usize,
        f: impl FnOnce(&mut Gossip, Instant) -> R,
    ) -> Option<R> {
        let now = self.now;
        let r = self.nodes[i].core.as_mut().map(|c| f(c, now));
        self.settle(i);
        r
    }

    /// Runs a keyring query from member `i` (as `consul keyring` sent to its agent) until
    /// it ends, at most `timeout` of virtual time; its report.
    pub fn keyring_query(
        &mut self,
        i: usize,
        op: KeyringOp,
        key: Option<&str>,
        timeout: Duration,
    ) -> Result<KeyringReport, GossipError> {
        let id = self
            .with_core(i, |c, now| c.start_keyring_query(now, op, key, timeout))
            .ok_or(GossipError::Stopped)??;
        let until = self.elapsed() + timeout + Duration::from_millis(1);
        self.run_until_every(until, Duration::from_millis(1), |sim| {
            sim.core(i).is_none_or(|c| c.keyring_query_done(id))
        });
        self.nodes[i]
            .core
            .as_mut()
            .and_then(|c| c.take_keyring_report(id))
            .ok_or(GossipError::Stopped)
    }

    /// Delivers `bytes` to member `to` now, as if sent from `from` (a misbehaving peer).
    pub fn inject(&mut self, from: SocketAddr, to: usize, bytes: &[u8]) {
        let now = self.now;
        if let Some(core) = self.nodes[to].core.as_mut() {
            core.handle_packet(now, from, bytes);
        }
        self.settle(to);
    }

    /// How `observer` sees `subject`: its status, or `None` if it does not know it (or the
    /// observer crashed).
    pub fn status(&self, observer: usize, subject: usize) -> Option<MemberStatus> {
        let core = self.nodes[observer].core.as_ref()?;
        core.member(&self.nodes[subject].name).map(|m| m.status)
    }

    /// Every running member sees every other running member alive, and every crashed or
    /// departed one not alive.
    pub fn converged(&self) -> bool {
        let up = self.nodes.iter().filter(|n| n.life == Life::Up).count();
        self.nodes.iter().enumerate().all(|(o, node)| {
            let Some(core) = node.core.as_ref().filter(|_| node.life == Life::Up) else {
                return true;
            };
            let mut alive_up = 0;
            for m in core.members().skip(1) {
                if m.status != MemberStatus::Alive {
                    continue;
                }
                match self.by_name.get(m.name()) {
                    Some(&s) if s != o && self.nodes[s].life == Life::Up => alive_up += 1,
                    // Alive to this member, but crashed or departed.
                    _ => return false,
                }
            }
            alive_up == up - 1
        })
    }

    /// Every running member sees `subject` with `status`.
    pub fn all_see(&self, subject: usize, status: MemberStatus) -> bool {
        (0..self.nodes.len())
            .filter(|&o| o != subject && self.nodes[o].life == Life::Up)
            .all(|o| self.status(o, subject) == Some(status))
    }

    /// Every member event so far, in order.
    pub fn events(&self) -> &[SimEvent] {
        &self.events
    }

    /// Bytes member `i` sent so far.
    pub fn bytes_out(&self, i: usize) -> u64 {
        self.nodes[i].bytes_out
    }

    /// Datagrams member `i` sent so far.
    pub fn packets_out(&self, i: usize) -> u64 {
        self.nodes[i].packets_out
    }
}

/// The seeds a simulation test runs: `OUTPOST_SIM_SEED` alone if set (to replay a failure),
/// else `count` seeds from `first`, or `OUTPOST_SIM_SEEDS` of them if set (for a longer soak).
pub fn seeds(first: u64, count: u64) -> Vec<u64> {
    let var = |name: &str| {
        std::env::var(name)
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
    };
    match var("OUTPOST_SIM_SEED") {
        Some(seed) => vec![seed],
        None => (first..first + var("OUTPOST_SIM_SEEDS").unwrap_or(count)).collect(),
    }
}
