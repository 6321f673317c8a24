//! The sans-IO gossip core: foca (SWIM) behind the envelope, the rate and replay guards, the
//! member table and named timers. Bytes, time and a seed in; datagrams, deadlines and member
//! events out.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use foca::{Foca, NoCustomBroadcast, OwnedNotification, PostcardCodec, State};
use rand::rngs::StdRng;
use rand::{Rng, RngExt, SeedableRng};

use super::config::{ConfigError, GossipConfig};
use super::guard::{RateLimiter, ReplayGuard};
use super::keyring::{KEY_LEN, KeyError, Keyring, parse_key};
use super::members::{EventKind, Member, MemberEvent, MemberStatus, MemberTable};
use super::node::Node;
use super::query::{
    KeyringMessage, KeyringOp, KeyringReport, MAX_QUERY_TARGETS, MemberAnswer, Pending, Taken,
    error_text, keys_per_part,
};
use super::wire::{self, FLAG_KEYRING, FRAME_HEADER, FrameHeader, NONCE_LEN, OpenError};

/// Datagrams waiting for the shell; past this the oldest is dropped (and counted).
pub const MAX_TRANSMITS: usize = 1024;
/// Events waiting for the shell; past this the oldest is dropped (and counted).
pub const MAX_EVENTS: usize = 4096;
/// Join addresses remembered to retry while alone.
pub const MAX_SEEDS: usize = 16;
/// Source addresses with a rate bucket.
pub const MAX_RATE_SOURCES: usize = 4096;
/// Sender sessions with a replay window.
pub const MAX_SESSIONS: usize = 4096;
/// Live members told directly of a leave; the rest learn it by gossip.
pub const MAX_LEAVE_NOTICES: usize = 512;
/// Finished keyring reports kept for the shell to take; past this the oldest is dropped.
pub const MAX_REPORTS: usize = 8;
/// Sender sessions whose last keyring query id is remembered (to ignore older queries that
/// arrive late); past this the oldest is forgotten.
pub const MAX_QUERY_SOURCES: usize = 64;
/// Timers handled in one `handle_timeout` call at most (the rest stay due).
const MAX_TIMERS_PER_CALL: usize = 10_000;

type Swim = Foca<Node, PostcardCodec, StdRng, NoCustomBroadcast>;

/// A datagram to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    /// Where to.
    pub destination: SocketAddr,
    /// The whole datagram, envelope included.
    pub contents: Vec<u8>,
}

/// What the core counts. Every datagram received ends in exactly one of `accepted` or a
/// `dropped_*` counter.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Datagrams received.
    pub packets_in: u64,
    /// Bytes received.
    pub bytes_in: u64,
    /// Datagrams handed to foca after every check.
    pub accepted: u64,
    /// Datagrams queued to send.
    pub packets_out: u64,
    /// Bytes queued to send.
    pub bytes_out: u64,
    /// Larger than `max_packet_size`.
    pub dropped_oversized: u64,
    /// Over the sender address's rate.
    pub dropped_rate: u64,
    /// Not an envelope, or foca could not decode what was inside.
    pub dropped_malformed: u64,
    /// Sealed with no installed key, or sealed while this member has no keyring.
    pub dropped_decrypt: u64,
    /// In the clear while this member requires encryption.
    pub dropped_plaintext: u64,
    /// Seen before (same session and packet number), or too old for the replay window.
    pub dropped_replay: u64,
    /// Decoded but refused by the protocol (e.g. claims to come from this member).
    pub dropped_protocol: u64,
    /// Arrived after this member left.
    pub dropped_left: u64,
    /// A keyring reply not expected (late, duplicate, from a member not asked), or a
    /// keyring query older than one already answered for its sender.
    pub dropped_stale: u64,
    /// Keyring queries answered.
    pub keyring_queries: u64,
    /// Datagrams dropped because the shell did not take them (over [`MAX_TRANSMITS`]).
    pub dropped_transmits: u64,
    /// Events dropped because the shell did not take them (over [`MAX_EVENTS`]).
    pub dropped_events: u64,
    /// Times this member was declared failed and came back with a new generation.
    pub rejoins: u64,
    /// Protocol timers foca reported an error for (its sentinels of a driver bug).
    pub timer_errors: u64,
}

/// Why the core last woke up from a timer (str0m's `last_timeout_reason`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WakeReason {
    /// Probe the next member.
    Probe,
    /// A direct probe got no ack: ask others to probe.
    IndirectProbe,
    /// A suspicion ran out: declare the member failed unless it refuted.
    Suspicion,
    /// Send pending changes to a few members.
    Gossip,
    /// Ask a random member for its member list.
    Announce,
    /// Forget a member foca knows as down.
    ForgetDown,
    /// Refresh suspect flags, reap members, rescale timing to the cluster size.
    Scan,
    /// Try to reach failed members (or the join addresses when alone).
    Reconnect,
    /// A join got no answer yet: announce to the join addresses again.
    JoinRetry,
    /// Repeat the leave notices.
    LeaveNotice,
    /// Ask the members that have not answered a keyring query again, or end it.
    KeyringQuery,
}

/// This member's own standing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LocalState {
    /// No live peer: not joined yet, or every other member is failed or left.
    Alone,
    /// Joined: at least one live peer.
    Active,
    /// Left gracefully ([`Gossip::leave`]); [`Gossip::join`] rejoins.
    Left,
    /// Declared failed and out of generations to rejoin with (after 2^32 rejoins).
    Defunct,
}

/// Why an operation was refused. The core's state is unchanged, but after `Protocol` (an
/// encoding failure foca reports mid-operation, which a validated identity never causes).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GossipError {
    /// The configuration does not fit together.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The local identity is not acceptable.
    #[error("gossip identity: {0}")]
    Identity(String),
    /// A join to this member's own address.
    #[error("cannot join {0}: it is this agent's own gossip address")]
    OwnAddress(SocketAddr),
    /// A keyring operation while gossip is not encrypted.
    #[error("gossip encryption is not enabled (start the agent with -encrypt)")]
    NotEncrypted,
    /// A keyring operation was refused.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The local identity ran out of generations.
    #[error("this member is out of generations to rejoin with")]
    Defunct,
    /// A change of tags after leaving.
    #[error("this member has left the cluster; join again first")]
    Left,
    /// The shell's driver has stopped.
    #[error("gossip has stopped on this agent")]
    Stopped,
    /// A keyring query while this member's previous one is under way.
    #[error("a keyring operation is already under way on this agent; try again")]
    QueryBusy,
    /// foca refused (an encoding error: the identity does not fit a packet).
    #[error("gossip protocol: {0}")]
    Protocol(String),
}

/// A timer of the core, named.
#[derive(Clone, Debug)]
enum Timer {
    /// One of foca's protocol timers.
    Swim(foca::Timer<Node>),
    /// Refresh suspect flags, reap, rescale.
    Scan,
    /// Reach failed members, or the join addresses when alone.
    Reconnect,
    /// Announce to the join addresses again, backing off, until a member answers.
    JoinRetry,
    /// Tell every live member of the leave a second time.
    LeaveNotice,
    /// Ask again whoever has not answered keyring query `id`, or end it at its deadline.
    KeyringQuery(u64),
}

/// What foca asked for during one call, collected and then handled by the core.
#[derive(Default)]
struct Collect {
    sends: Vec<(Node, Vec<u8>)>,
    timers: Vec<(Duration, foca::Timer<Node>)>,
    notes: Vec<OwnedNotification<Node>>,
}

impl foca::Runtime<Node> for Collect {
    fn notify(&mut self, notification: foca::Notification<'_, Node>) {
        self.notes.push(notification.to_owned());
    }

    fn send_to(&mut self, to: Node, data: &[u8]) {
        self.sends.push((to, data.to_vec()));
    }

    fn submit_after(&mut self, event: foca::Timer<Node>, after: Duration) {
        self.timers.push((after, event));
    }
}

/// The gossip core. One per agent; see the [module docs](super) for the driver contract.
pub struct Gossip {
    config: GossipConfig,
    swim: Swim,
    rt: Collect,
    rng: StdRng,
    keyring: Option<Keyring>,
    session: u64,
    seq: u64,
    replay: ReplayGuard,
    limiter: RateLimiter,
    table: MemberTable,
    local: Member,
    left: bool,
    defunct: bool,
    timers: BTreeMap<(Instant, u64), Timer>,
    timer_seq: u64,
    transmits: VecDeque<Transmit>,
    events: VecDeque<MemberEvent>,
    new_events: Vec<MemberEvent>,
    counters: Counters,
    seeds: VecDeque<SocketAddr>,
    /// The next join retry's back-off, while a join is unanswered.
    join_backoff: Option<Duration>,
    /// A member list (foca's feed) arrived since the last join.
    got_feed: bool,
    /// The packet being handled suspects us: (its sender, the incarnation suspected).
    refute: Option<(Node, foca::Incarnation)>,
    /// The sender of the packet being handled.
    inspected_src: Option<Node>,
    /// The packet being handled carries an identity of our address at this generation or
    /// above: we restarted with a generation too low (a clock set back) and must outrank it.
    outranked: Option<u32>,
    /// The packet being handled is an announce from an older generation of a member we
    /// know: the identity to show it, so it can outrank it.
    outranks: Option<foca::Member<Node>>,
    scratch: Vec<u8>,
    readdressed: Vec<u8>,
    /// The cluster size foca's timing was last scaled for.
    scaled_for: usize,
    last_wake: Option<WakeReason>,
    /// Grows with every change of the keyring, local or asked by a query.
    keyring_version: u64,
    /// The last keyring query id this member used.
    query_id: u64,
    /// This member's keyring query under way.
    pending: Option<Pending>,
    /// Finished keyring queries, for the shell to take (up to [`MAX_REPORTS`]).
    reports: VecDeque<KeyringReport>,
    /// The last keyring query id seen per sender session (up to [`MAX_QUERY_SOURCES`]).
    queries_seen: VecDeque<(u64, u64)>,
}

impl std::fmt::Debug for Gossip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gossip")
            .field("local", &self.local)
            .field("members", &self.table.len())
            .finish_non_exhaustive()
    }
}

impl Gossip {
    /// A core for the member `local`, not yet joined. `keyring` turns encryption on (every
    /// packet sealed, plain ones refused); `seed` is the only randomness the core uses
    /// (probe order, nonces, its session): draw it from the OS, or from the simulator's
    /// seed. `now` starts the core's timers.
    pub fn new(
        config: GossipConfig,
        local: Node,
        keyring: Option<Keyring>,
        seed: [u8; 32],
        now: Instant,
    ) -> Result<Gossip, GossipError> {
        config.validate()?;
        local.validate().map_err(GossipError::Identity)?;
        let mut rng = StdRng::from_seed(seed);
        let swim_rng = StdRng::from_rng(&mut rng);
        let sealed = keyring.is_some();
        let swim = Foca::new(
            local.clone(),
            config.foca(1, sealed),
            swim_rng,
            PostcardCodec,
        );
        let session = rng.next_u64();
        let mut core = Gossip {
            limiter: RateLimiter::new(config.rate_limit, config.rate_burst, MAX_RATE_SOURCES),
            replay: ReplayGuard::new(MAX_SESSIONS),
            config,
            swim,
            rt: Collect::default(),
            rng,
            keyring,
            session,
            seq: 0,
            table: MemberTable::default(),
            local: Member {
                node: local,
                status: MemberStatus::Alive,
                suspect: false,
                since: now,
            },
            left: false,
            defunct: false,
            timers: BTreeMap::new(),
            timer_seq: 0,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            new_events: Vec::new(),
            counters: Counters::default(),
            seeds: VecDeque::new(),
            join_backoff: None,
            got_feed: false,
            refute: None,
            inspected_src: None,
            outranked: None,
            outranks: None,
            scratch: Vec::new(),
            readdressed: Vec::new(),
            scaled_for: 1,
            last_wake: None,
            keyring_version: 0,
            query_id: 0,
            pending: None,
            reports: VecDeque::new(),
            queries_seen: VecDeque::new(),
        };
        core.arm(now + core.config.gossip_interval, Timer::Scan);
        core.arm(now + core.config.reconnect_interval, Timer::Reconnect);
        Ok(core)
    }

    // ---- inputs ----

    /// A datagram arrived from `from`. Oversized, rate-limited, malformed, undecryptable,
    /// plain (when encrypted) and replayed datagrams are dropped and counted; nothing here
    /// panics on any input.
    pub fn handle_packet(&mut self, now: Instant, from: SocketAddr, packet: &[u8]) {
        let c = &mut self.counters;
        c.packets_in += 1;
        c.bytes_in += packet.len() as u64;
        if self.left {
            // A member that left answers nothing (foca would still refute suspicions).
            c.dropped_left += 1;
            return;
        }
        if packet.len() > self.config.max_packet_size {
            c.dropped_oversized += 1;
            return;
        }
        if !self.limiter.allow(from, now) {
            c.dropped_rate += 1;
            return;
        }
        let header = match wire::open(self.keyring.as_ref(), packet, &mut self.scratch) {
            Ok(h) => h,
            Err(OpenError::Malformed) => {
                c.dropped_malformed += 1;
                return;
            }
            Err(OpenError::Decrypt) => {
                c.dropped_decrypt += 1;
                return;
            }
            Err(OpenError::Plaintext) => {
                c.dropped_plaintext += 1;
                return;
            }
        };
        if header.session == self.session {
            c.dropped_protocol += 1;
            return;
        }
        if !self.replay.check(header.session, header.seq, now) {
            c.dropped_replay += 1;
            return;
        }
        if header.flags & FLAG_KEYRING != 0 {
            self.handle_keyring(from, header.session);
            return;
        }
        let result = if self.inspect() {
            self.swim.handle_data(&self.readdressed, &mut self.rt)
        } else {
            self.swim
                .handle_data(&self.scratch[FRAME_HEADER..], &mut self.rt)
        };
        if result.is_ok() {
            self.refute_to();
        }
        self.refute = None;
        self.outrank(from);
        self.show_newer_generation();
        match result {
            Ok(()) => self.counters.accepted += 1,
            Err(
                foca::Error::Decode(_) | foca::Error::MalformedPacket | foca::Error::DataTooBig,
            ) => self.counters.dropped_malformed += 1,
            Err(e) => {
                tracing::debug!("gossip: packet from {from} refused: {e}");
                self.counters.dropped_protocol += 1;
            }
        }
        self.after_swim(now, Some(from));
        self.inspected_src = None;
    }

    /// Looks at foca's packet in `scratch` before foca does, for three things foca does not
    /// do. It takes only packets addressed to its current identity, but two kinds addressed
    /// otherwise are ours all the same and are readdressed into `readdressed` (`true`
    /// then): a join's announce, sent to a placeholder (the joiner knows an address, not our
    /// name), and packets to an older generation of us (sent before the sender heard we
    /// rejoined; dropping them made members that rejoined at once, as after a partition,
    /// fail each other's probes). It notes a member list (the answer to a join). And it
    /// notes a suspicion of us carried in a gossip, for [`Gossip::refute_to`].
    fn inspect(&mut self) -> bool {
        let Some(payload) = self.scratch.get(FRAME_HEADER..) else {
            return false;
        };
        let Ok((mut header, rest)) = postcard::take_from_bytes::<foca::Header<Node>>(payload)
        else {
            return false;
        };
        let me = self.swim.identity();
        self.inspected_src = Some(header.src.clone());
        if header.message == foca::Message::Feed {
            self.got_feed = true;
        }
        let carries_updates = !matches!(
            header.message,
            foca::Message::Announce | foca::Message::TurnUndead | foca::Message::Broadcast
        );
        if carries_updates {
            let seen = about_me(me, rest);
            self.refute = seen.suspected.map(|i| (header.src.clone(), i));
            self.outranked = seen.outranked;
        } else if header.message == foca::Message::Announce {
            self.outranks = self.newer_generation_of(&header.src);
        }
        if header.dst == *me {
            return false;
        }
        let join = header.message == foca::Message::Announce && header.dst.is_placeholder();
        // "You are down" to an older generation is old news: the rejoin answered it.
        let older_me = header.dst.addr == me.addr
            && header.dst.generation < me.generation
            && header.message != foca::Message::TurnUndead;
        if !join && !older_me {
            return false;
        }
        header.dst = me.clone();
        self.readdressed.clear();
        match postcard::to_extend(&header, std::mem::take(&mut self.readdressed)) {
            Ok(mut v) => {
                v.extend_from_slice(rest);
                self.readdressed = v;
                true
            }
            Err(_) => false,
        }
    }

    /// The member we know at `src`'s address, if its generation is above `src`'s (the
    /// member restarted with a generation too low: foca would ignore its announce).
    fn newer_generation_of(&self, src: &Node) -> Option<foca::Member<Node>> {
        self.swim
            .iter_membership_state()
            .find(|m| m.id().addr == src.addr && m.id().generation > src.generation)
            .cloned()
    }

    /// Shows an announcer the newer identity we know for its address (see
    /// [`Gossip::outrank`] on its side).
    fn show_newer_generation(&mut self) {
        let Some(known) = self.outranks.take() else {
            return;
        };
        let Some(to) = self.inspected_src.clone() else {
            return;
        };
        let me = self.swim.identity().clone();
        if let Some(p) = craft(&me, 0, &to, foca::Message::Gossip, Some(&known)) {
            self.queue(&to, &p);
        }
    }

    /// Our address has an identity at our generation or above out there: a restart with
    /// a generation too low (the Unix time on a board whose clock went back). foca would
    /// renew one generation at a time, each refused, for as long as the cluster remembers
    /// the old one (`reap_after`); take the generation above it at once and announce again.
    fn outrank(&mut self, from: SocketAddr) {
        let Some(above) = self.outranked.take() else {
            return;
        };
        let current = self.swim.identity().generation;
        if self.left || self.defunct || above < current {
            return;
        }
        let Some(generation) = above.checked_add(1) else {
            return;
        };
        let mut next = self.swim.identity().clone();
        next.generation = generation;
        next.leaving = false;
        tracing::info!(
            "gossip: this address is known at generation {above}; rejoining as {generation}"
        );
        if let Err(e) = self.swim.change_identity(next.clone(), &mut self.rt) {
            tracing::warn!("gossip: outranking an old identity: {e}");
            return;
        }
        self.counters.rejoins += 1;
        self.local.node = next;
        if let Err(e) = self.swim.announce(Node::placeholder(from), &mut self.rt) {
            tracing::debug!("gossip: announce after outranking: {e}");
        }
    }

    /// Tells every live member (up to [`MAX_LEAVE_NOTICES`]) that our leaving identity is
    /// down: foca's own leave reaches only a few random members.
    fn send_leave_notices(&mut self) {
        let leaving = self.local.node.clone();
        let live: Vec<Node> = self
            .table
            .with_status(MemberStatus::Alive)
            .take(MAX_LEAVE_NOTICES)
            .map(|m| m.node.clone())
            .collect();
        let down = foca::Member::down(leaving.clone());
        for to in live {
            match craft(&leaving, 0, &to, foca::Message::Gossip, Some(&down)) {
                Some(payload) => self.queue(&to, &payload),
                None => tracing::warn!("gossip: encoding the leave notice failed"),
            }
        }
    }

    /// foca refutes a suspicion by raising its incarnation and gossiping to a few random
    /// members, which may leave out the one that suspects: answer whoever told us, at once,
    /// with our liveness at the refuting incarnation (foca's own is at least that).
    fn refute_to(&mut self) {
        let Some((to, incarnation)) = self.refute.take() else {
            return;
        };
        let Some(next) = incarnation.checked_add(1) else {
            return;
        };
        let me = self.swim.identity().clone();
        if to.is_placeholder() || to.addr == me.addr {
            return;
        }
        let alive = foca::Member::new(me.clone(), next, State::Alive);
        if let Some(p) = craft(&me, next, &to, foca::Message::Gossip, Some(&alive)) {
            self.queue(&to, &p);
        }
    }

    /// Handles every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        for _ in 0..MAX_TIMERS_PER_CALL {
            let Some(entry) = self.timers.first_entry() else {
                return;
            };
            if entry.key().0 > now {
                return;
            }
            match entry.remove() {
                Timer::Swim(t) => {
                    self.last_wake = Some(wake_reason(&t));
                    if let Err(e) = self.swim.handle_timer(t, &mut self.rt) {
                        tracing::debug!("gossip: protocol timer: {e}");
                        self.counters.timer_errors += 1;
                    }
                    self.after_swim(now, None);
                }
                Timer::Scan => {
                    self.last_wake = Some(WakeReason::Scan);
                    self.scan(now);
                    self.arm(now + self.config.gossip_interval, Timer::Scan);
                }
                Timer::Reconnect => {
                    self.last_wake = Some(WakeReason::Reconnect);
                    self.reconnect(now);
                    self.arm(now + self.config.reconnect_interval, Timer::Reconnect);
                }
                Timer::JoinRetry => {
                    self.last_wake = Some(WakeReason::JoinRetry);
                    self.retry_join(now);
                }
                Timer::LeaveNotice => {
                    self.last_wake = Some(WakeReason::LeaveNotice);
                    if self.left {
                        self.send_leave_notices();
                    }
                }
                Timer::KeyringQuery(id) => {
                    self.last_wake = Some(WakeReason::KeyringQuery);
                    self.query_round(now, id);
                }
            }
        }
    }

    /// Asks the member at `addr` to let this member in (foca's announce). Its answer (a
    /// list of members) arrives as a packet; [`Gossip::state`] turns `Active` then. The
    /// address is remembered (up to [`MAX_SEEDS`]) and tried again while this member is
    /// alone. After [`Gossip::leave`], a join rejoins with a new generation.
    pub fn join(&mut self, now: Instant, addr: SocketAddr) -> Result<(), GossipError> {
        if addr == self.local.node.addr {
            return Err(GossipError::OwnAddress(addr));
        }
        if self.defunct {
            return Err(GossipError::Defunct);
        }
        if !self.seeds.contains(&addr) {
            if self.seeds.len() >= MAX_SEEDS {
                self.seeds.pop_front();
            }
            self.seeds.push_back(addr);
        }
        if self.left {
            let mut fresh = self
                .local
                .node
                .next_generation()
                .ok_or(GossipError::Defunct)?;
            fresh.leaving = false;
            self.swim
                .change_identity(fresh.clone(), &mut self.rt)
                .map_err(protocol)?;
            self.left = false;
            self.local = Member {
                node: fresh,
                status: MemberStatus::Alive,
                suspect: false,
                since: now,
            };
        }
        let result = self.swim.announce(Node::placeholder(addr), &mut self.rt);
        self.got_feed = false;
        if self.join_backoff.is_none() {
            // UDP may lose the announce: ask again soon, then less often.
            let first = self.config.probe_interval;
            self.join_backoff = Some(first);
            self.arm(now + first, Timer::JoinRetry);
        }
        self.after_swim(now, None);
        result.map_err(protocol)
    }

    /// Leaves gracefully: the member takes a leaving identity (one generation on) and tells
    /// a few members it is down, which the cluster shows as left at once. Afterwards it
    /// answers no probes; [`Gossip::join`] rejoins. Leaving twice changes nothing.
    pub fn leave(&mut self, now: Instant) -> Result<(), GossipError> {
        if self.left {
            return Ok(());
        }
        let mut leaving = self
            .local
            .node
            .next_generation()
            .ok_or(GossipError::Defunct)?;
        leaving.leaving = true;
        let result = self
            .swim
            .change_identity(leaving.clone(), &mut self.rt)
            .and_then(|()| self.swim.leave_cluster(&mut self.rt));
        // foca tells a few random members; tell every live one at once, and once more a
        // moment later in case a datagram was lost.
        self.left = true;
        self.local.node = leaving.clone();
        self.send_leave_notices();
        self.arm(now + self.config.probe_timeout, Timer::LeaveNotice);
        self.local = Member {
            node: leaving,
            status: MemberStatus::Left,
            suspect: false,
            since: now,
        };
        self.after_swim(now, None);
        result.map_err(protocol)
    }

    /// Changes this member's tags: a new generation carrying them, which the others show
    /// as an `Updated` event.
    pub fn set_tags(&mut self, now: Instant, tags: super::node::Tags) -> Result<(), GossipError> {
        if self.left {
            return Err(GossipError::Left);
        }
        if tags == self.local.node.tags {
            return Ok(());
        }
        let mut next = self
            .local
            .node
            .next_generation()
            .ok_or(GossipError::Defunct)?;
        next.tags = tags;
        next.validate().map_err(GossipError::Identity)?;
        self.swim
            .change_identity(next.clone(), &mut self.rt)
            .map_err(protocol)?;
        self.local.node = next;
        self.after_swim(now, None);
        Ok(())
    }

    // ---- outputs ----

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next member event.
    pub fn poll_event(&mut self) -> Option<MemberEvent> {
        self.events.pop_front()
    }

    /// When [`Gossip::handle_timeout`] is next due. Always `Some`: the core's scan runs
    /// every `gossip_interval`.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.keys().next().map(|(t, _)| *t)
    }

    /// Why the last timer fired.
    pub fn last_wake_reason(&self) -> Option<WakeReason> {
        self.last_wake
    }

    // ---- state ----

    /// This member and every remote member known (alive, failed or left), this member first.
    pub fn members(&self) -> impl Iterator<Item = &Member> {
        std::iter::once(&self.local).chain(self.table.iter())
    }

    /// The member named `name` (this member included).
    pub fn member(&self, name: &str) -> Option<&Member> {
        if name == self.local.node.name {
            Some(&self.local)
        } else {
            self.table.get(name)
        }
    }

    /// This member.
    pub fn local(&self) -> &Member {
        &self.local
    }

    /// Alone, active, left or defunct.
    pub fn state(&self) -> LocalState {
        if self.left {
            LocalState::Left
        } else if self.defunct {
            LocalState::Defunct
        } else if self.swim.num_members() > 0 {
            LocalState::Active
        } else {
            LocalState::Alone
        }
    }

    /// Live peers (alive or suspect), this member not counted.
    pub fn live_peers(&self) -> usize {
        self.swim.num_members()
    }

    /// The counters.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Names refused because a second live address claimed them.
    pub fn name_conflicts(&self) -> u64 {
        self.table.name_conflicts
    }

    /// The configuration.
    pub fn config(&self) -> &GossipConfig {
        &self.config
    }

    /// Whether packets are sealed.
    pub fn encrypted(&self) -> bool {
        self.keyring.is_some()
    }

    // ---- keyring (`consul keyring`, on this member) ----

    /// Installed keys in base64, the primary first.
    pub fn list_keys(&self) -> Result<Vec<String>, GossipError> {
        Ok(self
            .keyring
            .as_ref()
            .ok_or(GossipError::NotEncrypted)?
            .list())
    }

    /// Installs `key` (base64) on this member only; it opens packets at once and seals
    /// after [`Gossip::use_key`].
    pub fn install_key(&mut self, key: &str) -> Result<(), GossipError> {
        self.change_keys(|k| k.install(key))
    }

    /// Makes the installed `key` the primary (sealing) key of this member only.
    pub fn use_key(&mut self, key: &str) -> Result<(), GossipError> {
        self.change_keys(|k| k.use_key(key))
    }

    /// Removes `key` (not the primary) from this member only.
    pub fn remove_key(&mut self, key: &str) -> Result<(), GossipError> {
        self.change_keys(|k| k.remove(key))
    }

    /// Grows with every change of this member's keyring, made here or by another member's
    /// keyring query: the shell persists the keyring when it moves.
    pub fn keyring_version(&self) -> u64 {
        self.keyring_version
    }

    /// Applies `f` to the keyring; the version grows when the keys changed.
    fn change_keys(
        &mut self,
        f: impl FnOnce(&mut Keyring) -> Result<(), KeyError>,
    ) -> Result<(), GossipError> {
        let ring = self.keyring.as_mut().ok_or(GossipError::NotEncrypted)?;
        let before = ring.list();
        f(ring)?;
        if ring.list() != before {
            self.keyring_version += 1;
        }
        Ok(())
    }

    fn apply_key_op(
        &mut self,
        op: KeyringOp,
        key: Option<[u8; KEY_LEN]>,
    ) -> Result<(), GossipError> {
        use base64::Engine;
        let key = key.map(|k| base64::engine::general_purpose::STANDARD.encode(k));
        match (op, key.as_deref()) {
            (KeyringOp::List, _) => self.list_keys().map(|_| ()),
            (KeyringOp::Install, Some(k)) => self.install_key(k),
            (KeyringOp::Use, Some(k)) => self.use_key(k),
            (KeyringOp::Remove, Some(k)) => self.remove_key(k),
            (_, None) => Err(KeyError::Length(0).into()),
        }
    }

    // ---- keyring queries (`consul keyring`, on every live member) ----

    /// Starts a keyring query: `op` (with `key` in base64, but for `List`) is sent sealed to
    /// every live member, each applies it and answers with its result and keys; this member
    /// applies it too, after the query is sealed (so that a `use` reaches members with the
    /// key it replaces). Members that have not answered are asked again every
    /// `probe_interval` (at most [`MAX_QUERY_TARGETS`] a round) until `timeout`. One query
    /// at a time ([`GossipError::QueryBusy`]); take its report with
    /// [`Gossip::take_keyring_report`] once [`Gossip::keyring_query_done`]. Returns the
    /// query's id.
    pub fn start_keyring_query(
        &mut self,
        now: Instant,
        op: KeyringOp,
        key: Option<&str>,
        timeout: Duration,
    ) -> Result<u64, GossipError> {
        if self.keyring.is_none() {
            return Err(GossipError::NotEncrypted);
        }
        if self.left {
            return Err(GossipError::Left);
        }
        if self.pending.is_some() {
            return Err(GossipError::QueryBusy);
        }
        let key = match (op.takes_key(), key) {
            (false, _) => None,
            (true, Some(k)) => Some(parse_key(k)?),
            (true, None) => return Err(KeyError::Length(0).into()),
        };
        let targets = self
            .table
            .with_status(MemberStatus::Alive)
            .map(|m| (m.node.name.clone(), m.node.addr))
            .collect();
        let failed = self
            .table
            .with_status(MemberStatus::Failed)
            .map(|m| m.node.name.clone())
            .collect();
        self.query_id += 1;
        let id = self.query_id;
        self.pending = Some(Pending::new(id, op, key, now + timeout, targets, failed));
        self.send_queries(id, op, key);
        let error = self
            .apply_key_op(op, key)
            .err()
            .map(|e| error_text(&e.to_string()));
        let answer = MemberAnswer {
            error,
            keys: self.list_keys().unwrap_or_default(),
        };
        let name = self.local.node.name.clone();
        if let Some(p) = self.pending.as_mut() {
            p.answer(&name, answer);
        }
        self.query_round_after(now, id);
        Ok(id)
    }

    /// Whether keyring query `id` has finished (its report waits to be taken).
    pub fn keyring_query_done(&self, id: u64) -> bool {
        self.reports.iter().any(|r| r.id == id)
    }

    /// Takes the report of keyring query `id`, once finished (kept until taken, up to
    /// [`MAX_REPORTS`]).
    pub fn take_keyring_report(&mut self, id: u64) -> Option<KeyringReport> {
        let i = self.reports.iter().position(|r| r.id == id)?;
        self.reports.remove(i)
    }

    /// Sends query `id` to the members that have not answered, up to
    /// [`MAX_QUERY_TARGETS`].
    fn send_queries(&mut self, id: u64, op: KeyringOp, key: Option<[u8; KEY_LEN]>) {
        let Some(p) = &self.pending else {
            return;
        };
        let to: Vec<SocketAddr> = p
            .unanswered()
            .take(MAX_QUERY_TARGETS)
            .map(|(_, a)| *a)
            .collect();
        let Some(bytes) = (KeyringMessage::Query { id, op, key }).encode() else {
            return;
        };
        for addr in to {
            self.queue_to(addr, FLAG_KEYRING, &bytes);
        }
    }

    /// Ends query `id` if everyone answered, else schedules its next round.
    fn query_round_after(&mut self, now: Instant, id: u64) {
        let Some(p) = &self.pending else {
            return;
        };
        if p.complete() {
            self.finish_query();
            return;
        }
        let at = (now + self.config.probe_interval).min(p.deadline);
        self.arm(at, Timer::KeyringQuery(id));
    }

    /// A round of query `id`: past its deadline it ends; else the members that have not
    /// answered are asked again.
    fn query_round(&mut self, now: Instant, id: u64) {
        let Some(p) = &self.pending else {
            return;
        };
        if p.id != id {
            return;
        }
        if now >= p.deadline {
            self.finish_query();
            return;
        }
        let (op, key) = (p.op, p.key);
        self.send_queries(id, op, key);
        self.query_round_after(now, id);
    }

    fn finish_query(&mut self) {
        let Some(p) = self.pending.take() else {
            return;
        };
        if self.reports.len() >= MAX_REPORTS {
            self.reports.pop_front();
        }
        self.reports.push_back(p.finish());
    }

    /// A keyring message (the frame said so) in `scratch`: a query is applied and
    /// answered, a reply is taken by the query under way. Only a member with a keyring acts
    /// on them, so only a sender holding one of its keys can.
    fn handle_keyring(&mut self, from: SocketAddr, session: u64) {
        let msg = self
            .scratch
            .get(FRAME_HEADER..)
            .and_then(KeyringMessage::decode);
        let Some(msg) = msg else {
            self.counters.dropped_malformed += 1;
            return;
        };
        if self.keyring.is_none() {
            self.counters.dropped_protocol += 1;
            return;
        }
        match msg {
            KeyringMessage::Query { id, op, key } => {
                if !self.fresh_query(session, id) {
                    self.counters.dropped_stale += 1;
                    return;
                }
                self.counters.accepted += 1;
                self.counters.keyring_queries += 1;
                let error = self
                    .apply_key_op(op, key)
                    .err()
                    .map(|e| error_text(&e.to_string()));
                self.reply(from, id, error);
            }
            KeyringMessage::Reply {
                id,
                name,
                error,
                part,
                parts,
                keys,
            } => {
                let taken = self
                    .pending
                    .as_mut()
                    .map(|p| p.take(id, &name, error, part, parts, keys));
                if taken != Some(Taken::Yes) {
                    self.counters.dropped_stale += 1;
                    return;
                }
                self.counters.accepted += 1;
                if self.pending.as_ref().is_some_and(Pending::complete) {
                    self.finish_query();
                }
            }
        }
    }

    /// Whether query `id` of `session` is not older than the last one seen from it (a query
    /// repeated, as its initiator does until answered, is answered again).
    fn fresh_query(&mut self, session: u64, id: u64) -> bool {
        if let Some(seen) = self.queries_seen.iter_mut().find(|(s, _)| *s == session) {
            if id < seen.1 {
                return false;
            }
            seen.1 = id;
            return true;
        }
        if self.queries_seen.len() >= MAX_QUERY_SOURCES {
            self.queries_seen.pop_front();
        }
        self.queries_seen.push_back((session, id));
        true
    }

    /// Answers query `id` to `to`: the error if any, and the keys, in as many datagrams as
    /// the packet size needs.
    fn reply(&mut self, to: SocketAddr, id: u64, error: Option<String>) {
        let keys = self.keyring.as_ref().map(Keyring::raw).unwrap_or_default();
        let per = keys_per_part(self.config.max_packet_size);
        let chunks: Vec<Vec<[u8; KEY_LEN]>> = if keys.is_empty() {
            vec![Vec::new()]
        } else {
            keys.chunks(per).map(<[_]>::to_vec).collect()
        };
        let parts = u8::try_from(chunks.len()).unwrap_or(u8::MAX);
        for (part, keys) in chunks.into_iter().enumerate() {
            let msg = KeyringMessage::Reply {
                id,
                name: self.local.node.name.clone(),
                error: error.clone(),
                part: u8::try_from(part).unwrap_or(u8::MAX),
                parts,
                keys,
            };
            match msg.encode() {
                Some(bytes) => self.queue_to(to, FLAG_KEYRING, &bytes),
                None => tracing::warn!("gossip: encoding a keyring reply failed"),
            }
        }
    }

    // ---- internals ----

    fn arm(&mut self, at: Instant, timer: Timer) {
        self.timer_seq += 1;
        self.timers.insert((at, self.timer_seq), timer);
    }

    /// Turns what foca asked for into datagrams, timers and member events.
    fn after_swim(&mut self, now: Instant, mut from: Option<SocketAddr>) {
        let reap = (self.config.reap_after, self.config.tombstone_after);
        let mut rejoined = false;
        let mut idle = false;
        let mut hellos: Vec<Node> = Vec::new();
        loop {
            let timers = std::mem::take(&mut self.rt.timers);
            for (after, t) in timers {
                if let foca::Timer::ChangeSuspectToDown {
                    member_id,
                    incarnation,
                    ..
                } = &t
                {
                    self.table
                        .set_suspect(member_id, true, now, &mut self.new_events);
                    // Lifeguard's buddy system: tell the suspect itself, so it can refute
                    // even when the gossip about it would not reach it in time.
                    let suspect =
                        foca::Member::new(member_id.clone(), *incarnation, State::Suspect);
                    let me = self.swim.identity().clone();
                    if let Some(p) = craft(&me, 0, member_id, foca::Message::Gossip, Some(&suspect))
                    {
                        self.queue(member_id, &p);
                    }
                }
                self.arm(now + after, Timer::Swim(t));
            }
            let notes = std::mem::take(&mut self.rt.notes);
            for n in notes {
                match n {
                    OwnedNotification::MemberUp(node) => {
                        if node.name == self.local.node.name {
                            self.table.name_conflicts += 1;
                        } else {
                            self.table.up(&node, now, &mut self.new_events);
                            if self.inspected_src.as_ref().is_some_and(|src| *src != node) {
                                hellos.push(node);
                            }
                        }
                    }
                    OwnedNotification::MemberDown(node) => {
                        self.table.down(&node, now, reap, &mut self.new_events)
                    }
                    OwnedNotification::Rename(old, new) => {
                        if new.name != self.local.node.name {
                            self.table
                                .rename(&old, &new, now, reap, &mut self.new_events);
                        }
                    }
                    OwnedNotification::Rejoin(node) => {
                        tracing::info!(
                            "gossip: declared failed by the cluster; rejoining as generation {}",
                            node.generation
                        );
                        self.counters.rejoins += 1;
                        self.local.node = node;
                        rejoined = true;
                    }
                    OwnedNotification::Defunct => {
                        if !self.local.node.leaving {
                            tracing::warn!("gossip: declared failed and unable to rejoin");
                            self.defunct = true;
                        }
                    }
                    OwnedNotification::Idle => idle = true,
                    OwnedNotification::Active => {}
                }
            }
            let sends = std::mem::take(&mut self.rt.sends);
            for (to, data) in sends {
                self.queue(&to, &data);
            }
            // Learned of a member from a third party: say hello, so that it learns of us
            // even if our own announcement missed it (else it would wait for our probe, up
            // to a whole probe round of n intervals).
            let me = self.swim.identity().clone();
            for to in hellos.drain(..) {
                if let Some(p) = craft(&me, 0, &to, foca::Message::Gossip, None) {
                    self.queue(&to, &p);
                }
            }
            // Declared failed by whoever sent this: tell it at once who we are now.
            if rejoined && let Some(from) = from.take() {
                if let Err(e) = self.swim.announce(Node::placeholder(from), &mut self.rt) {
                    tracing::debug!("gossip: announce after rejoin: {e}");
                }
                continue;
            }
            break;
        }
        if idle && !self.left {
            self.forget_backlog();
        }
        self.rescale();
        self.flush_events();
    }

    /// Alone, foca keeps the changes it could not send (the failures of everyone it lost).
    /// Sent once it is back, they would declare live members failed: rebuild foca with the
    /// same identity and member states but no backlog, and drop its pending timers.
    fn forget_backlog(&mut self) {
        let states: Vec<foca::Member<Node>> = self.swim.iter_membership_state().cloned().collect();
        let config = self.config.foca(1, self.keyring.is_some());
        let rng = StdRng::from_rng(&mut self.rng);
        let mut swim = Foca::new(self.swim.identity().clone(), config, rng, PostcardCodec);
        if let Err(e) = swim.apply_many(states.into_iter(), false, &mut self.rt) {
            tracing::warn!("gossip: restoring member states: {e}");
            return;
        }
        // Only down members were restored: nothing to notify, send or schedule.
        self.rt.notes.clear();
        self.rt.sends.clear();
        self.rt.timers.clear();
        self.timers.retain(|_, t| !matches!(t, Timer::Swim(_)));
        self.swim = swim;
        self.scaled_for = 1;
    }

    fn queue(&mut self, to: &Node, payload: &[u8]) {
        self.queue_to(to.addr, 0, payload);
    }

    /// Seals `payload` with `flags` in a new datagram to `to`, now.
    fn queue_to(&mut self, to: SocketAddr, flags: u8, payload: &[u8]) {
        let header = FrameHeader {
            flags,
            session: self.session,
            seq: self.seq,
        };
        self.seq += 1;
        let mut nonce = [0u8; NONCE_LEN];
        if self.keyring.is_some() {
            self.rng.fill_bytes(&mut nonce);
        }
        let mut contents = Vec::with_capacity(payload.len() + wire::SEALED_OVERHEAD);
        if !wire::seal(self.keyring.as_ref(), nonce, header, payload, &mut contents) {
            tracing::warn!("gossip: sealing a packet failed");
            return;
        }
        self.counters.packets_out += 1;
        self.counters.bytes_out += contents.len() as u64;
        if self.transmits.len() >= MAX_TRANSMITS {
            self.transmits.pop_front();
            self.counters.dropped_transmits += 1;
        }
        self.transmits.push_back(Transmit {
            destination: to,
            contents,
        });
    }

    fn flush_events(&mut self) {
        for e in self.new_events.drain(..) {
            if self.events.len() >= MAX_EVENTS {
                self.events.pop_front();
                self.counters.dropped_events += 1;
            }
            self.events.push_back(e);
        }
    }

    /// Rescales suspicion and retransmits to the cluster size, as memberlist computes them
    /// per use.
    fn rescale(&mut self) {
        let n = self.swim.num_members() + 1;
        if n == self.scaled_for {
            return;
        }
        let old = self.config.foca(self.scaled_for, self.keyring.is_some());
        let new = self.config.foca(n, self.keyring.is_some());
        self.scaled_for = n;
        if old.suspect_to_down_after != new.suspect_to_down_after
            || old.max_transmissions != new.max_transmissions
        {
            // Only the two scaled values differ, which foca accepts at run time.
            if let Err(e) = self.swim.set_config(new) {
                tracing::warn!("gossip: rescaling to {n} members: {e}");
            }
        }
    }

    /// Suspect flags from foca's view; members foca knows alive that the table lacks (a
    /// name freed by a conflict); suspicions that ran out here; reaping.
    ///
    /// Only the member whose probe failed runs foca's suspicion timer; the others wait for
    /// its verdict, and one that missed every copy of it would show the member suspect for
    /// ever. So, as in memberlist, every member times suspicions itself: one still standing,
    /// at the same incarnation, a probe interval after its timeout is declared failed here.
    fn scan(&mut self, now: Instant) {
        let n = self.swim.num_members() + 1;
        let backstop = self.config.suspicion_timeout(n) + self.config.probe_interval;
        let mut expired: Vec<foca::Member<Node>> = Vec::new();
        for m in self.swim.iter_membership_state() {
            let node = m.id();
            if node.name == self.local.node.name {
                continue;
            }
            let entry = self.table.get(&node.name);
            match (entry, m.state()) {
                (Some(e), State::Alive | State::Suspect) if e.node == *node => {
                    let suspect = m.state() == State::Suspect;
                    if e.suspect != suspect {
                        self.table
                            .set_suspect(node, suspect, now, &mut self.new_events);
                    } else if suspect
                        && self
                            .table
                            .suspect_since(node)
                            .is_some_and(|since| now.saturating_duration_since(since) >= backstop)
                    {
                        expired.push(foca::Member::new(
                            node.clone(),
                            m.incarnation(),
                            State::Down,
                        ));
                    }
                }
                (e, State::Alive | State::Suspect)
                    if e.is_none_or(|e| e.status != MemberStatus::Alive) =>
                {
                    self.table.up(node, now, &mut self.new_events);
                }
                _ => {}
            }
        }
        if !expired.is_empty() {
            if let Err(e) = self
                .swim
                .apply_many(expired.into_iter(), true, &mut self.rt)
            {
                tracing::debug!("gossip: declaring an expired suspicion: {e}");
            }
            self.after_swim(now, None);
        }
        self.table.reap(now, &mut self.new_events);
        self.flush_events();
    }

    /// Announces again until a member list arrives (the answer to a join is one datagram;
    /// when it is lost, a member learns its peers only as they happen to talk to it):
    /// alone, to every join address; joined, to one random live member. The wait doubles
    /// each time up to `reconnect_interval` (from then on `reconnect` carries on).
    fn retry_join(&mut self, now: Instant) {
        let Some(backoff) = self.join_backoff else {
            return;
        };
        if self.left || self.defunct || self.got_feed {
            self.join_backoff = None;
            return;
        }
        let targets: Vec<Node> = if self.swim.num_members() == 0 {
            self.seeds.iter().map(|a| Node::placeholder(*a)).collect()
        } else {
            let live: Vec<&Member> = self.table.with_status(MemberStatus::Alive).collect();
            if live.is_empty() {
                Vec::new()
            } else {
                vec![live[self.rng.random_range(0..live.len())].node.clone()]
            }
        };
        for t in targets {
            if let Err(e) = self.swim.announce(t, &mut self.rt) {
                tracing::debug!("gossip: join retry: {e}");
            }
        }
        self.after_swim(now, None);
        let next = backoff * 2;
        if next > self.config.reconnect_interval {
            self.join_backoff = None;
        } else {
            self.join_backoff = Some(next);
            self.arm(now + next, Timer::JoinRetry);
        }
    }

    /// serf's reconnect: with live peers, try one failed member with probability
    /// failed/alive; alone, try the join addresses and failed members.
    fn reconnect(&mut self, now: Instant) {
        if self.left || self.defunct {
            return;
        }
        let failed: Vec<Node> = self
            .table
            .with_status(MemberStatus::Failed)
            .map(|m| m.node.clone())
            .collect();
        let alive = self.swim.num_members();
        let mut targets: Vec<Node> = Vec::new();
        if alive == 0 {
            let mut candidates: Vec<Node> =
                self.seeds.iter().map(|a| Node::placeholder(*a)).collect();
            candidates.extend(failed);
            for _ in 0..self.config.indirect_checks {
                if candidates.is_empty() {
                    break;
                }
                let i = self.rng.random_range(0..candidates.len());
                targets.push(candidates.swap_remove(i));
            }
        } else if !failed.is_empty() && self.rng.random_range(0..alive + 1) < failed.len() {
            let i = self.rng.random_range(0..failed.len());
            targets.push(failed[i].clone());
        }
        for t in targets {
            if let Err(e) = self.swim.announce(t, &mut self.rt) {
                tracing::debug!("gossip: reconnect announce: {e}");
            }
        }
        self.after_swim(now, None);
    }
}

/// A foca packet from `src` to `dst` carrying `update`, or none (foca's layout: header,
/// `u16` count, members; postcard). The leave, buddy, refutation and hello notices are made
/// this way.
fn craft(
    src: &Node,
    src_incarnation: foca::Incarnation,
    dst: &Node,
    message: foca::Message<Node>,
    update: Option<&foca::Member<Node>>,
) -> Option<Vec<u8>> {
    let header = foca::Header {
        src: src.clone(),
        src_incarnation,
        dst: dst.clone(),
        message,
    };
    let mut payload = postcard::to_allocvec(&header).ok()?;
    match update {
        None => {
            payload.extend_from_slice(&0u16.to_be_bytes());
            Some(payload)
        }
        Some(update) => {
            payload.extend_from_slice(&1u16.to_be_bytes());
            postcard::to_extend(update, payload).ok()
        }
    }
}

/// The highest incarnation at which the updates of a gossip (`u16` count, then members)
/// suspect `me`; `None` if none does or they do not decode.
/// What the updates of a packet say about us.
#[derive(Default)]
struct AboutMe {
    /// The highest incarnation at which they suspect our identity.
    suspected: Option<foca::Incarnation>,
    /// The highest generation of our address they carry, when not below ours and not us.
    outranked: Option<u32>,
}

/// Reads a packet's updates (`u16` count, then members) for what they say about `me`;
/// stops at the first that does not decode (foca will refuse the packet).
fn about_me(me: &Node, updates: &[u8]) -> AboutMe {
    let mut seen = AboutMe::default();
    let Some((count, mut rest)) = updates.split_first_chunk::<2>() else {
        return seen;
    };
    for _ in 0..u16::from_be_bytes(*count) {
        let Ok((m, r)) = postcard::take_from_bytes::<foca::Member<Node>>(rest) else {
            break;
        };
        rest = r;
        let id = m.id();
        if id == me {
            if m.state() == State::Suspect {
                seen.suspected = seen.suspected.max(Some(m.incarnation()));
            }
        } else if id.addr == me.addr && id.generation >= me.generation {
            seen.outranked = seen.outranked.max(Some(id.generation));
        }
    }
    seen
}

fn protocol(e: foca::Error) -> GossipError {
    GossipError::Protocol(e.to_string())
}

fn wake_reason(t: &foca::Timer<Node>) -> WakeReason {
    match t {
        foca::Timer::ProbeRandomMember(_) => WakeReason::Probe,
        foca::Timer::SendIndirectProbe { .. } => WakeReason::IndirectProbe,
        foca::Timer::ChangeSuspectToDown { .. } => WakeReason::Suspicion,
        foca::Timer::PeriodicGossip(_) => WakeReason::Gossip,
        foca::Timer::PeriodicAnnounce(_) | foca::Timer::PeriodicAnnounceDown(_) => {
            WakeReason::Announce
        }
        foca::Timer::RemoveDown(_) => WakeReason::ForgetDown,
    }
}

impl EventKind {
    /// Whether the member is alive after an event of this kind.
    pub fn is_alive(self) -> bool {
        matches!(
            self,
            EventKind::Joined | EventKind::Suspect | EventKind::Alive | EventKind::Updated
        )
    }
}
