//! The gossip shell: the only code that touches the gossip socket. It reads the clock, draws
//! the core's seed from the OS, moves datagrams between the UDP socket and the [`Gossip`]
//! core, and serves the agent a [`GossipHandle`].

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_io::Timer;
use async_net::UdpSocket;
use event_listener::Event;
use futures_lite::FutureExt;

use super::{
    Counters, Gossip, GossipConfig, GossipError, Keyring, KeyringOp, KeyringReport, LocalState,
    Member, MemberEvent, Node, Tags,
};

/// Events buffered per subscriber; a subscriber further behind loses events (counted in
/// [`GossipHandle::lagged_events`]) and should reconcile from [`GossipHandle::members`].
pub const SUBSCRIBER_CAPACITY: usize = 1024;
/// Most subscribers at once.
pub const MAX_SUBSCRIBERS: usize = 64;

/// Why the shell could not start.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    /// The socket could not be bound.
    #[error("gossip: cannot bind UDP {addr}: {source}")]
    Bind {
        /// The bind address.
        addr: SocketAddr,
        /// What the system said.
        source: std::io::Error,
    },
    /// The core refused the configuration or identity.
    #[error(transparent)]
    Gossip(#[from] GossipError),
    /// The operating system gave no random bytes for the seed.
    #[error("gossip: the system random number generator failed")]
    Rng,
}

/// Why a join did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JoinError {
    /// Refused before anything was sent (own address, after running out of generations).
    #[error(transparent)]
    Gossip(#[from] GossipError),
    /// Nothing answered in time.
    #[error("no member answered at {addrs} within {timeout:?}")]
    Timeout {
        /// The addresses tried, comma-separated.
        addrs: String,
        /// How long it waited.
        timeout: Duration,
    },
}

struct Shared {
    core: Mutex<Gossip>,
    /// Something for the driver to act on (a join, a leave, new keys, shutdown).
    wake: Event,
    /// The driver finished a round: handled an input and sent what it produced.
    round: Event,
    rounds: AtomicU64,
    subscribers: Mutex<Vec<async_channel::Sender<MemberEvent>>>,
    lagged: AtomicU64,
    stop: AtomicBool,
    local_addr: SocketAddr,
}

impl Shared {
    fn core(&self) -> MutexGuard<'_, Gossip> {
        // The core does not panic while locked; if it ever did, its state is still the best
        // there is.
        self.core.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The agent's handle on the gossip layer: cheap to clone, usable from any task or thread.
/// Dropping it does not stop the driver; [`GossipHandle::shutdown`] does.
#[derive(Clone)]
pub struct GossipHandle {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for GossipHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GossipHandle")
            .field("local_addr", &self.shared.local_addr)
            .finish_non_exhaustive()
    }
}

/// The generation a starting agent should use: the Unix time in seconds, which grows from
/// one start to the next (a wrong clock only slows a rejoin down).
pub fn generation_now() -> u32 {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    u32::try_from(secs).unwrap_or(u32::MAX)
}

impl GossipHandle {
    /// Binds the gossip socket on `bind` and makes the core for `node`, whose `addr` is the
    /// advertised address (a zero port or unspecified IP there is taken from the bound
    /// socket). Returns the handle and the driver: spawn the driver on the executor; it runs
    /// until [`GossipHandle::shutdown`].
    pub async fn bind(
        bind: SocketAddr,
        mut node: Node,
        config: GossipConfig,
        keyring: Option<Keyring>,
    ) -> Result<(GossipHandle, impl Future<Output = ()> + Send + 'static), BindError> {
        let socket = UdpSocket::bind(bind)
            .await
            .map_err(|source| BindError::Bind { addr: bind, source })?;
        let local_addr = socket
            .local_addr()
            .map_err(|source| BindError::Bind { addr: bind, source })?;
        if node.addr.port() == 0 {
            node.addr.set_port(local_addr.port());
        }
        if node.addr.ip().is_unspecified() {
            node.addr.set_ip(local_addr.ip());
        }
        let mut seed = [0u8; 32];
        aws_lc_rs::rand::fill(&mut seed).map_err(|_| BindError::Rng)?;
        let max_packet = config.max_packet_size;
        let core = Gossip::new(config, node, keyring, seed, Instant::now())?;
        let shared = Arc::new(Shared {
            core: Mutex::new(core),
            wake: Event::new(),
            round: Event::new(),
            rounds: AtomicU64::new(0),
            subscribers: Mutex::new(Vec::new()),
            lagged: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            local_addr,
        });
        let handle = GossipHandle {
            shared: shared.clone(),
        };
        Ok((handle, drive(socket, shared, max_packet)))
    }

    /// The bound socket's address.
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local_addr
    }

    /// Joins the cluster through any of `addrs` (Consul's `-join`): an announce goes to
    /// each, and this returns once this member has a live peer, or fails after `timeout`.
    /// Retrying (`-retry-join`) is the caller's loop; the addresses are also retried by the
    /// core while this member is alone.
    pub async fn join(&self, addrs: &[SocketAddr], timeout: Duration) -> Result<(), JoinError> {
        {
            let mut core = self.shared.core();
            let now = Instant::now();
            for &a in addrs {
                core.join(now, a)?;
            }
        }
        self.shared.wake.notify(usize::MAX);
        let deadline = Instant::now() + timeout;
        loop {
            let round = self.shared.round.listen();
            if self.shared.core().state() == LocalState::Active {
                return Ok(());
            }
            if Instant::now() >= deadline || self.shared.stop.load(Ordering::Acquire) {
                let addrs: Vec<String> = addrs.iter().map(ToString::to_string).collect();
                return Err(JoinError::Timeout {
                    addrs: addrs.join(", "),
                    timeout,
                });
            }
            round.or(wait_until(deadline)).await;
        }
    }

    /// Leaves gracefully (Consul's `leave`): the others show this member left at once.
    /// Returns once the leave notices have been sent twice (a probe timeout apart), or
    /// after `timeout`. Stop the driver afterwards (or [`GossipHandle::join`] again).
    pub async fn leave(&self, timeout: Duration) -> Result<(), GossipError> {
        let started = Instant::now();
        let deadline = started + timeout;
        let repeat = {
            let mut core = self.shared.core();
            core.leave(started)?;
            core.config().probe_timeout
        };
        self.shared.wake.notify(usize::MAX);
        // The round under way may have drained the queue before the notices were in it:
        // the one after it has sent them.
        self.rounds_after(2, deadline).await;
        // The core repeats the notices a probe timeout later.
        Timer::at((started + repeat * 2).min(deadline)).await;
        self.rounds_after(1, deadline).await;
        Ok(())
    }

    /// Waits until the driver has finished `n` more rounds, it stopped, or `deadline`.
    async fn rounds_after(&self, n: u64, deadline: Instant) {
        let target = self.shared.rounds.load(Ordering::Acquire) + n;
        loop {
            let round = self.shared.round.listen();
            if self.shared.rounds.load(Ordering::Acquire) >= target
                || self.shared.stop.load(Ordering::Acquire)
                || Instant::now() >= deadline
            {
                return;
            }
            round.or(wait_until(deadline)).await;
        }
    }

    /// Changes this member's tags; the others see an `Updated` event.
    pub fn set_tags(&self, tags: Tags) -> Result<(), GossipError> {
        self.shared.core().set_tags(Instant::now(), tags)?;
        self.shared.wake.notify(usize::MAX);
        Ok(())
    }

    /// Every member known, this one first (Consul's `members`).
    pub fn members(&self) -> Vec<Member> {
        self.shared.core().members().cloned().collect()
    }

    /// The member named `name`.
    pub fn member(&self, name: &str) -> Option<Member> {
        self.shared.core().member(name).cloned()
    }

    /// This member.
    pub fn local(&self) -> Member {
        self.shared.core().local().clone()
    }

    /// Alone, active, left or defunct.
    pub fn state(&self) -> LocalState {
        self.shared.core().state()
    }

    /// The core's counters.
    pub fn counters(&self) -> Counters {
        self.shared.core().counters().clone()
    }

    /// Events dropped because a subscriber's channel was full.
    pub fn lagged_events(&self) -> u64 {
        self.shared.lagged.load(Ordering::Relaxed)
    }

    /// A channel of member events from now on, bounded at [`SUBSCRIBER_CAPACITY`]. At most
    /// [`MAX_SUBSCRIBERS`]: past that the oldest subscription is closed.
    pub fn subscribe(&self) -> async_channel::Receiver<MemberEvent> {
        let (tx, rx) = async_channel::bounded(SUBSCRIBER_CAPACITY);
        let mut subs = self
            .shared
            .subscribers
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        subs.retain(|s| !s.is_closed());
        if subs.len() >= MAX_SUBSCRIBERS {
            subs.remove(0);
        }
        subs.push(tx);
        rx
    }

    /// Installed keys in base64, the primary first (this member's).
    pub fn list_keys(&self) -> Result<Vec<String>, GossipError> {
        self.shared.core().list_keys()
    }

    /// Installs a key on this member only.
    pub fn install_key(&self, key: &str) -> Result<(), GossipError> {
        let r = self.shared.core().install_key(key);
        self.shared.wake.notify(usize::MAX);
        r
    }

    /// Makes an installed key the primary, on this member only.
    pub fn use_key(&self, key: &str) -> Result<(), GossipError> {
        let r = self.shared.core().use_key(key);
        self.shared.wake.notify(usize::MAX);
        r
    }

    /// Removes a key other than the primary, on this member only.
    pub fn remove_key(&self, key: &str) -> Result<(), GossipError> {
        let r = self.shared.core().remove_key(key);
        self.shared.wake.notify(usize::MAX);
        r
    }

    /// `consul keyring -list|-install|-use|-remove` on the whole cluster: `op` (with `key`
    /// in base64, but for `List`) goes sealed to every live member and to this one, and the
    /// report says what each answered, who did not answer within `timeout`, and who is known
    /// failed (not asked). A query already under way on this member is waited for first,
    /// within the same `timeout`. Errors only when nothing was sent: no encryption, a bad
    /// key, this member left, gossip stopped or still busy at the deadline.
    pub async fn keyring_query(
        &self,
        op: KeyringOp,
        key: Option<&str>,
        timeout: Duration,
    ) -> Result<KeyringReport, GossipError> {
        let deadline = Instant::now() + timeout;
        let id = loop {
            let round = self.shared.round.listen();
            let now = Instant::now();
            let left = deadline.saturating_duration_since(now);
            match self.shared.core().start_keyring_query(now, op, key, left) {
                Err(GossipError::QueryBusy)
                    if now < deadline && !self.shared.stop.load(Ordering::Acquire) => {}
                other => break other?,
            }
            round.or(wait_until(deadline)).await;
        };
        self.shared.wake.notify(usize::MAX);
        loop {
            let round = self.shared.round.listen();
            if let Some(report) = self.shared.core().take_keyring_report(id) {
                return Ok(report);
            }
            if self.shared.stop.load(Ordering::Acquire) {
                return Err(GossipError::Stopped);
            }
            // The core ends the query at its deadline; the driver's round shows it.
            round.await;
        }
    }

    /// The keyring's version now: it grows with every change of this member's keys, made
    /// here or by another member's keyring query.
    pub fn keyring_version(&self) -> u64 {
        self.shared.core().keyring_version()
    }

    /// Waits until the keyring's version differs from `since` and returns the new one
    /// (changes made meanwhile are folded into one); `None` once gossip has stopped. The
    /// agent persists the keyring and rekeys the Raft port on each.
    pub async fn keyring_changed(&self, since: u64) -> Option<u64> {
        loop {
            let round = self.shared.round.listen();
            let v = self.shared.core().keyring_version();
            if v != since {
                return Some(v);
            }
            if self.shared.stop.load(Ordering::Acquire) {
                return None;
            }
            round.await;
        }
    }

    /// Stops the driver without leaving: to the others this member just stops answering
    /// (it will be declared failed). Subscriptions close.
    pub fn shutdown(&self) {
        self.shared.stop.store(true, Ordering::Release);
        self.shared.wake.notify(usize::MAX);
    }
}

async fn wait_until(deadline: Instant) {
    Timer::at(deadline).await;
}

/// Moves datagrams between `socket` and the core until shutdown.
async fn drive(socket: UdpSocket, shared: Arc<Shared>, max_packet: usize) {
    // One byte more than accepted, so an oversized datagram shows (and is counted).
    let mut buf = vec![0u8; max_packet + 1];
    let mut transmits = Vec::new();
    let mut events = Vec::new();
    loop {
        if shared.stop.load(Ordering::Acquire) {
            break;
        }
        // Listen before draining, so that a change made meanwhile is not missed.
        let wake = shared.wake.listen();
        let deadline = {
            let mut core = shared.core();
            while let Some(t) = core.poll_transmit() {
                transmits.push(t);
            }
            while let Some(e) = core.poll_event() {
                events.push(e);
            }
            core.poll_timeout()
        };
        for t in transmits.drain(..) {
            if let Err(e) = socket.send_to(&t.contents, t.destination).await {
                tracing::debug!("gossip: sending to {} failed: {e}", t.destination);
            }
        }
        publish(&shared, &mut events);
        shared.rounds.fetch_add(1, Ordering::AcqRel);
        shared.round.notify(usize::MAX);

        enum Wake {
            Datagram(usize, SocketAddr),
            Timeout,
            Changed,
        }
        let recv = async {
            match socket.recv_from(&mut buf).await {
                Ok((n, from)) => Wake::Datagram(n, from),
                Err(e) => {
                    // ICMP errors from earlier sends surface here; go on, without spinning
                    // if the error persists.
                    tracing::debug!("gossip socket: {e}");
                    Timer::after(Duration::from_millis(10)).await;
                    Wake::Changed
                }
            }
        };
        let timer = async {
            match deadline {
                Some(at) => Timer::at(at).await,
                None => Timer::never().await,
            };
            Wake::Timeout
        };
        let changed = async {
            wake.await;
            Wake::Changed
        };
        match changed.or(timer).or(recv).await {
            Wake::Datagram(n, from) => {
                shared.core().handle_packet(Instant::now(), from, &buf[..n]);
            }
            Wake::Timeout => shared.core().handle_timeout(Instant::now()),
            Wake::Changed => {}
        }
    }
    shared
        .subscribers
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clear();
    shared.round.notify(usize::MAX);
}

fn publish(shared: &Shared, events: &mut Vec<MemberEvent>) {
    if events.is_empty() {
        return;
    }
    let mut subs = shared.subscribers.lock().unwrap_or_else(|e| e.into_inner());
    for e in events.drain(..) {
        subs.retain(|s| match s.try_send(e.clone()) {
            Ok(()) => true,
            Err(async_channel::TrySendError::Full(_)) => {
                shared.lagged.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(async_channel::TrySendError::Closed(_)) => false,
        });
    }
}

#[cfg(test)]
mod tests;
