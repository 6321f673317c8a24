//! The shell that runs a [`RaftNode`] for real: wall-clock ticks, the data dir
//! ([`DiskLog`], fsynced on a blocking thread), the TCP transport ([`super::tcp`]), a state
//! machine, and an async [`RaftHandle`] for the rest of the agent.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant};

use async_io::Timer;
use async_net::TcpListener;
use futures_lite::FutureExt;
use smol::{LocalExecutor, Task};

use super::node::{
    Event, Outcome, RaftConfig, RaftError, RaftNode, ReadFailure, StateMachine, Status,
};
use super::pool::{CallError, Pool, until};
use super::rpc::{self, WriteResult};
use super::storage::{DiskLog, StorageError};
use super::tcp::{self, Frame, Link, TransportEvent, TransportStats};
use super::wire::ConfChangeRecord;
use crate::catalog::{ApplyError, Command, SnapshotError};

/// Requests waiting in the driver's inbox, at most (callers wait when it is full).
pub const INBOX: usize = 1024;
/// How long a write waits between tries while no leader is known (or the known one cannot
/// be reached): an election takes 0.5 to 1.1 s.
pub const RETRY_PAUSE: Duration = Duration::from_millis(200);

/// A shared state machine: the driver applies to it, readers borrow it between awaits.
impl<T: StateMachine> StateMachine for Rc<RefCell<T>> {
    fn apply(&mut self, index: u64, command: &Command) -> Result<(), ApplyError> {
        self.borrow_mut().apply(index, command)
    }

    fn snapshot(&self, size_hint: usize) -> Vec<u8> {
        self.borrow().snapshot(size_hint)
    }

    fn restore(&mut self, state: &[u8]) -> Result<(), SnapshotError> {
        self.borrow_mut().restore(state)
    }
}

/// How to start one server.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// ID, timing and bounds.
    pub raft: RaftConfig,
    /// Where `raft.log` and `raft.snap` live.
    pub data_dir: PathBuf,
    /// When the data dir is empty: start a new cluster of these voters (ID, Raft address;
    /// the same list on each of them, this server included). `None`: wait to be added by a
    /// leader (a server joining a running cluster).
    pub bootstrap: Option<Vec<(u64, String)>>,
    /// How long [`RaftHandle`] calls wait for an answer.
    pub request_timeout: Duration,
    /// The cluster's shared secret (the agent passes the gossip encryption key): every
    /// connection on the server port, Raft or RPC, must then prove it holds the key, and
    /// each frame carries a tag under it ([`super::auth`]). `None`: no authentication, and
    /// a peer that offers it is refused. All servers and client agents of a cluster must
    /// agree.
    pub key: Option<[u8; 32]>,
}

impl ServerConfig {
    /// A server of `raft` keeping its data in `data_dir`, to be added by a leader
    /// (`bootstrap: None`), a 5 s request timeout, no key: set the fields that differ with
    /// `ServerConfig { bootstrap: Some(voters), ..ServerConfig::new(raft, dir) }`.
    pub fn new(raft: RaftConfig, data_dir: PathBuf) -> ServerConfig {
        ServerConfig {
            raft,
            data_dir,
            bootstrap: None,
            request_timeout: Duration::from_secs(5),
            key: None,
        }
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("raft storage: {0}")]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Raft(#[from] RaftError),
    #[error("raft listener: {0}")]
    Listener(std::io::Error),
}

/// Why a [`RaftHandle`] call got no outcome.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HandleError {
    /// No answer in time: a write may or may not be applied.
    #[error("no answer from raft in time (a write may or may not be applied)")]
    TimedOut,
    /// The server stopped (shut down, storage failed, or removed from the cluster).
    #[error("this raft server has stopped")]
    Stopped,
    /// A read could not be confirmed; retrying is safe.
    #[error("read not confirmed: {0:?}")]
    Read(ReadFailure),
}

enum Request {
    Propose(Command, async_channel::Sender<Outcome>),
    Membership(ConfChangeRecord, async_channel::Sender<Outcome>),
    Read(async_channel::Sender<Result<u64, ReadFailure>>),
    Transfer(u64),
    Hints(BTreeMap<u64, String>),
}

enum Waiter {
    Write(async_channel::Sender<Outcome>),
    Read(async_channel::Sender<Result<u64, ReadFailure>>),
}

/// The agent's side of a running Raft server. Cheap to clone; single-threaded (`!Send`,
/// like the rest of the agent's state).
#[derive(Clone)]
pub struct RaftHandle {
    requests: async_channel::Sender<Request>,
    status: Rc<RefCell<Status>>,
    timeout: Duration,
    /// Notified whenever `status` changes but for the log's positions (a write waits on it
    /// to see its index applied).
    changed: Rc<event_listener::Event>,
    /// Connections to the leader, for forwarded writes.
    pool: Rc<Pool>,
    /// When the last message from the leader arrived.
    contact: Rc<std::cell::Cell<Option<Instant>>>,
}

impl RaftHandle {
    /// How long ago this server last heard from its leader (Consul's
    /// `X-Consul-LastContact`): zero on the leader, `None` while it has heard from none.
    pub fn last_contact(&self) -> Option<Duration> {
        if self.status.borrow().is_leader {
            return Some(Duration::ZERO);
        }
        self.contact.get().map(|t| t.elapsed())
    }

    /// Proposes `command` on this server. [`Outcome::Applied`] once it is committed and
    /// applied here (so a read of this server's state sees it); [`Outcome::NotLeader`] on a
    /// follower. [`RaftHandle::write`] is the same on the leader, and forwards from a
    /// follower.
    pub async fn propose(&self, command: Command) -> Result<Outcome, HandleError> {
        self.propose_until(command, Instant::now() + self.timeout)
            .await
    }

    async fn propose_until(
        &self,
        command: Command,
        deadline: Instant,
    ) -> Result<Outcome, HandleError> {
        let (tx, rx) = async_channel::bounded(1);
        self.call_until(Request::Propose(command, tx), rx, deadline)
            .await
    }

    /// Writes `command` through the leader, wherever it is: proposed here on the leader, or
    /// forwarded to the leader over the server port (RPC, as Consul's followers do on
    /// 8300), all within the request timeout. What the agent calls for every catalog
    /// write on a server.
    ///
    /// - [`Outcome::Applied`] (and [`Outcome::Refused`]): committed at `index`, and *applied
    ///   on this server too*: a read of this server's state right after `write` returns
    ///   sees the write (read your writes), also when the leader is another server. Should
    ///   this server lag behind the leader past the request timeout, the write (applied
    ///   on the leader) is reported [`HandleError::TimedOut`] instead.
    /// - While no leader is known (an election), or the known one cannot be reached,
    ///   `write` waits [`RETRY_PAUSE`] and tries again, until the request timeout. A
    ///   server that no longer leads answers with its best hint, which is tried at once
    ///   (once).
    /// - [`Outcome::Dropped`]: certainly not applied; retrying is safe.
    /// - [`Outcome::Unknown`] (the connection to the leader closed after the write went
    ///   out, or this server's state was replaced by a snapshot) and
    ///   [`HandleError::TimedOut`]: it may or may not have applied, and may still apply.
    ///   A write that may have applied is never reported otherwise.
    /// - Never [`Outcome::NotLeader`]: after the timeout it is [`HandleError::TimedOut`].
    pub async fn write(&self, command: Command) -> Result<Outcome, HandleError> {
        self.write_until(command, Instant::now() + self.timeout)
            .await
    }

    async fn write_until(
        &self,
        command: Command,
        deadline: Instant,
    ) -> Result<Outcome, HandleError> {
        let encoded = command.encode();
        // A leader named by the server last asked, tried once at once.
        let mut hint: Option<(u64, String)> = None;
        let mut hinted = false;
        loop {
            let (leader, addr) = match hint.take() {
                Some(h) => h,
                None => match self.propose_until(command.clone(), deadline).await? {
                    Outcome::NotLeader { leader: Some(l) } => match self.address(l) {
                        Some(addr) => (l, addr),
                        None => {
                            pause(deadline).await?;
                            continue;
                        }
                    },
                    Outcome::NotLeader { leader: None } => {
                        pause(deadline).await?;
                        continue;
                    }
                    done => return Ok(done),
                },
            };
            let me = self.status.borrow().id;
            self.pool.retain(|a| a == addr || self.is_peer(a));
            let budget = budget(deadline);
            let reply = self
                .pool
                .call(
                    &addr,
                    |id| rpc::Request::Forward {
                        id,
                        command: encoded.clone(),
                        relay: false,
                        budget_ms: budget,
                    },
                    deadline,
                )
                .await;
            let result = match reply {
                Ok(rpc::Reply::Forward { result, .. }) => result,
                // The leader answered something else: it may have got the write.
                Ok(rpc::Reply::Status { .. }) | Err(CallError::Lost) => {
                    return Ok(Outcome::Unknown);
                }
                Err(CallError::TimedOut) => return Err(HandleError::TimedOut),
                Err(CallError::NotSent(why)) => {
                    tracing::debug!("raft: cannot forward a write to server {leader}: {why}");
                    pause(deadline).await?;
                    continue;
                }
            };
            match result {
                WriteResult::NotLeader {
                    leader: Some(next),
                    addr: next_addr,
                } if !hinted && next != leader => {
                    hinted = true;
                    if next != me
                        && let Some(a) = next_addr.or_else(|| self.address(next))
                    {
                        hint = Some((next, a));
                    }
                }
                WriteResult::NotLeader { .. } => pause(deadline).await?,
                other => {
                    let outcome = other.into_result()?;
                    if let Outcome::Applied { index } | Outcome::Refused { index, .. } = outcome {
                        self.wait_applied(index, deadline).await?;
                    }
                    return Ok(outcome);
                }
            }
        }
    }

    /// Waits until this server applied `index`.
    async fn wait_applied(&self, index: u64, deadline: Instant) -> Result<(), HandleError> {
        loop {
            let changed = self.changed.listen();
            if self.status.borrow().applied >= index {
                return Ok(());
            }
            until(deadline, changed)
                .await
                .ok_or(HandleError::TimedOut)?;
        }
    }

    /// The Raft address of server `id`, from the log.
    fn address(&self, id: u64) -> Option<String> {
        self.status
            .borrow()
            .peers
            .get(&id)
            .filter(|a| !a.is_empty())
            .cloned()
    }

    fn is_peer(&self, addr: &str) -> bool {
        self.status.borrow().peers.values().any(|a| a == addr)
    }

    /// Replaces the keys of the server port, for a rotation of the gossip keyring: the
    /// first is the one this server proves when it dials, any of them is accepted from a
    /// dialer (empty: no key, as [`ServerConfig::key`] `None`). Connections already set up
    /// stay up under the key they were set up with. Rotate as gossip does: install the
    /// new key on every agent (`[old, new]`), then use it (`[new, old]`), then remove
    /// the old one (`[new]`).
    pub fn set_keys(&self, keys: &[[u8; 32]]) {
        self.pool.link().set_keys(keys);
    }

    /// Counts of connections refused or closed on this server's port, and by its dials.
    pub fn transport_stats(&self) -> TransportStats {
        self.pool.link().counters.stats()
    }

    /// Answers an RPC request from a peer or a client agent.
    async fn answer(&self, request: rpc::Request) -> rpc::Reply {
        match request {
            rpc::Request::Status { id } => rpc::Reply::Status {
                id,
                status: rpc::WireStatus::from_status(&self.status()),
            },
            rpc::Request::Forward {
                id,
                command,
                relay,
                budget_ms,
            } => {
                let budget = Duration::from_millis(budget_ms.into());
                let deadline = Instant::now() + budget.min(self.timeout);
                let r = match Command::decode(&command) {
                    Err(e) => {
                        tracing::debug!("raft: a forwarded command does not decode: {e}");
                        Ok(Outcome::Dropped {
                            reason: rpc::DROP_UNDECODABLE,
                        })
                    }
                    // A client agent's write: forwarded on to the leader if need be.
                    Ok(c) if relay => self.write_until(c, deadline).await,
                    // A server's: proposed here or answered with a hint, never relayed.
                    Ok(c) => self.propose_until(c, deadline).await,
                };
                rpc::Reply::Forward {
                    id,
                    result: WriteResult::from_result(r, &self.status.borrow().peers),
                }
            }
        }
    }

    /// Adds or removes a voter (on the leader; one change at a time).
    pub async fn change_membership(
        &self,
        change: ConfChangeRecord,
    ) -> Result<Outcome, HandleError> {
        let (tx, rx) = async_channel::bounded(1);
        self.call(Request::Membership(change, tx), rx).await
    }

    /// Waits until a read of this server's state machine is linearizable (ReadIndex, for
    /// `?consistent`); returns the index it is at least at.
    pub async fn read_index(&self) -> Result<u64, HandleError> {
        let (tx, rx) = async_channel::bounded(1);
        self.call(Request::Read(tx), rx)
            .await?
            .map_err(HandleError::Read)
    }

    /// Asks this server, if it leads, to hand leadership to `to`.
    pub async fn transfer_leader(&self, to: u64) -> Result<(), HandleError> {
        self.requests
            .send(Request::Transfer(to))
            .await
            .map_err(|_| HandleError::Stopped)
    }

    /// Addresses of servers this one may not know from the log yet (the agent passes the
    /// servers gossip shows). A member added by a leader learns the others' addresses
    /// only from the snapshot it is sent; until then it could not answer the leader.
    /// The log's addresses win over these.
    pub fn set_hints(&self, hints: BTreeMap<u64, String>) {
        let _ = self.requests.try_send(Request::Hints(hints));
    }

    /// Term, leader, membership, as of the driver's last step.
    pub fn status(&self) -> Status {
        self.status.borrow().clone()
    }

    /// The leader's ID and Raft address, if one is known.
    pub fn leader(&self) -> Option<(u64, String)> {
        let s = self.status.borrow();
        let id = s.leader?;
        Some((id, s.peers.get(&id).cloned().unwrap_or_default()))
    }

    async fn call<T>(
        &self,
        req: Request,
        rx: async_channel::Receiver<T>,
    ) -> Result<T, HandleError> {
        self.call_until(req, rx, Instant::now() + self.timeout)
            .await
    }

    async fn call_until<T>(
        &self,
        req: Request,
        rx: async_channel::Receiver<T>,
        deadline: Instant,
    ) -> Result<T, HandleError> {
        async {
            self.requests
                .send(req)
                .await
                .map_err(|_| HandleError::Stopped)?;
            rx.recv().await.map_err(|_| HandleError::Stopped)
        }
        .or(async {
            Timer::at(deadline).await;
            Err(HandleError::TimedOut)
        })
        .await
    }
}

/// Waits [`RETRY_PAUSE`], or fails once `deadline` would pass.
pub(crate) async fn pause(deadline: Instant) -> Result<(), HandleError> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left <= RETRY_PAUSE {
        Timer::at(deadline).await;
        return Err(HandleError::TimedOut);
    }
    Timer::after(RETRY_PAUSE).await;
    Ok(())
}

/// The time left until `deadline`, in milliseconds, for a request's budget.
pub(crate) fn budget(deadline: Instant) -> u32 {
    let left = deadline.saturating_duration_since(Instant::now());
    u32::try_from(left.as_millis()).unwrap_or(u32::MAX)
}

/// A running Raft server: dropping it stops every task (listener, connections, senders,
/// driver), as a crash would, minus the process.
pub struct RaftServer {
    handle: RaftHandle,
    _tasks: Vec<Task<()>>,
}

impl RaftServer {
    /// Opens the data dir (bootstrapping it if asked and empty), and starts the listener on
    /// `listener` and the driver on `ex`, applying committed commands to `sm`.
    pub fn start<S: StateMachine + 'static>(
        ex: Rc<LocalExecutor<'static>>,
        cfg: ServerConfig,
        listener: TcpListener,
        mut sm: S,
    ) -> Result<RaftServer, StartError> {
        let (mut disk, mut recovered) = DiskLog::open(&cfg.data_dir)?;
        if recovered.is_empty()
            && let Some(voters) = &cfg.bootstrap
        {
            let boot = RaftNode::bootstrap(voters);
            disk.persist(&super::storage::Persist {
                snapshot: boot.snapshot.clone(),
                entries: Vec::new(),
                hard_state: Some(boot.hard_state),
                must_sync: true,
                background: false,
            })?;
            recovered = boot;
        }
        let node = RaftNode::new(cfg.raft.clone(), &recovered, &mut sm, Instant::now())?;
        let status = Rc::new(RefCell::new(node.status()));
        let (req_tx, req_rx) = async_channel::bounded(INBOX);
        let (net_tx, net_rx) = async_channel::bounded(INBOX);
        let link = Link::new(cfg.key.as_ref());
        let changed = Rc::new(event_listener::Event::new());
        let handle = RaftHandle {
            requests: req_tx,
            status: status.clone(),
            timeout: cfg.request_timeout,
            changed: changed.clone(),
            pool: Rc::new(Pool::new(link.clone(), ex.clone())),
            contact: Rc::default(),
        };
        let answer = handle.clone();
        let service: tcp::RpcService = Rc::new(move |request| {
            let h = answer.clone();
            Box::pin(async move { h.answer(request).await })
        });
        let listen = ex.spawn(tcp::serve_with(
            listener,
            net_tx.clone(),
            ex.clone(),
            link.clone(),
            Some(service),
        ));
        let driver = Driver {
            node,
            disk: Some(disk),
            sm,
            status: status.clone(),
            requests: req_rx,
            net: net_rx,
            net_tx,
            senders: HashMap::new(),
            waiters: HashMap::new(),
            next_request: 1,
            ex: ex.clone(),
            link,
            changed,
            hints: BTreeMap::new(),
            contact: handle.contact.clone(),
            snapshotting: None,
            settle: Settle::default(),
        };
        let run = ex.spawn(driver.run());
        Ok(RaftServer {
            handle,
            _tasks: vec![listen, run],
        })
    }

    /// A handle for the agent's tasks.
    pub fn handle(&self) -> RaftHandle {
        self.handle.clone()
    }
}

struct Driver<S> {
    node: RaftNode,
    disk: Option<DiskLog>,
    sm: S,
    status: Rc<RefCell<Status>>,
    requests: async_channel::Receiver<Request>,
    net: async_channel::Receiver<TransportEvent>,
    net_tx: async_channel::Sender<TransportEvent>,
    /// Per peer: its queue and sender task (dropped with it).
    senders: HashMap<u64, (String, async_channel::Sender<Frame>, Task<()>)>,
    waiters: HashMap<u64, Waiter>,
    next_request: u64,
    ex: Rc<LocalExecutor<'static>>,
    link: Link,
    changed: Rc<event_listener::Event>,
    /// [`RaftHandle::set_hints`].
    hints: BTreeMap<u64, String>,
    /// [`RaftHandle::last_contact`]'s clock.
    contact: Rc<std::cell::Cell<Option<Instant>>>,
    /// A compaction's snapshot being written (its index and term once durable).
    snapshotting: Option<Task<Result<(u64, u64), StorageError>>>,
    settle: Settle,
}

/// Gives the heap's free pages back to the system once writes have settled: a burst of
/// writes (registrations, a snapshot's buffers) leaves freed memory that glibc's allocator
/// keeps in its arenas; returned, it no longer counts in this server's RSS.
#[derive(Default)]
struct Settle {
    /// The applied index last seen, and when it last changed.
    seen: (u64, Option<Instant>),
    /// The applied index at the last trim.
    trimmed: u64,
}

impl Settle {
    /// How long the applied index must stay put before a trim.
    const QUIET: Duration = Duration::from_secs(1);

    /// Whether to trim now, the applied index being `applied`: once per settled index.
    fn due(&mut self, applied: u64, now: Instant) -> bool {
        if applied != self.seen.0 {
            self.seen = (applied, Some(now));
            return false;
        }
        let settled = self
            .seen
            .1
            .is_some_and(|t| now.duration_since(t) >= Self::QUIET);
        if settled && applied != self.trimmed {
            self.trimmed = applied;
            return true;
        }
        false
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn release_free_heap() {
    // SAFETY: malloc_trim only walks and releases the allocator's own free lists; it has
    // no preconditions.
    unsafe {
        nix::libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn release_free_heap() {}

enum Input {
    Request(Request),
    Net(TransportEvent),
    Tick,
    Closed,
}

impl<S: StateMachine> Driver<S> {
    async fn run(mut self) {
        self.sync_peers();
        // What the start left to do (a cluster of one has elected itself; committed
        // entries after the snapshot wait to be applied): at once, not at the first tick.
        if let Err(e) = self.cycle().await {
            tracing::error!("raft: stopping: {e}");
            return;
        }
        loop {
            let deadline = self.node.poll_timeout();
            let input = async {
                match self.requests.recv().await {
                    Ok(r) => Input::Request(r),
                    Err(_) => Input::Closed,
                }
            }
            .or(async {
                match self.net.recv().await {
                    Ok(e) => Input::Net(e),
                    Err(_) => Input::Closed,
                }
            })
            .or(async {
                Timer::at(deadline).await;
                Input::Tick
            })
            .await;
            match input {
                Input::Closed => return,
                Input::Tick => {}
                Input::Request(r) => self.request(r),
                Input::Net(e) => self.transport(e),
            }
            // Take what else is waiting, so one fsync covers a batch.
            for _ in 0..256 {
                match self.requests.try_recv() {
                    Ok(r) => self.request(r),
                    Err(_) => break,
                }
            }
            for _ in 0..256 {
                match self.net.try_recv() {
                    Ok(e) => self.transport(e),
                    Err(_) => break,
                }
            }
            self.node.handle_timeout(Instant::now());
            if let Err(e) = self.cycle().await {
                tracing::error!("raft: stopping: {e}");
                return;
            }
            if self.events() {
                // Not a member any more: it answers nothing and elects no one, but stays up,
                // so that a leader can add it again (a server removed while it was down
                // replays its removal, then its re-addition, when it catches up).
                tracing::warn!(
                    "raft: this server was removed from the cluster's configuration; waiting to be added again"
                );
            }
            if self.settle.due(self.node.applied(), Instant::now()) {
                release_free_heap();
            }
        }
    }

    fn request(&mut self, r: Request) {
        let id = self.next_request;
        self.next_request += 1;
        match r {
            Request::Propose(cmd, tx) => {
                self.waiters.insert(id, Waiter::Write(tx));
                self.node.propose(id, &cmd);
            }
            Request::Membership(change, tx) => {
                self.waiters.insert(id, Waiter::Write(tx));
                self.node.change_membership(id, &change);
            }
            Request::Read(tx) => {
                self.waiters.insert(id, Waiter::Read(tx));
                self.node.read_index(id);
            }
            Request::Transfer(to) => self.node.transfer_leader(to),
            Request::Hints(hints) => {
                if hints != self.hints {
                    self.hints = hints;
                    self.sync_peers();
                }
            }
        }
    }

    fn transport(&mut self, e: TransportEvent) {
        match e {
            TransportEvent::Message { from, bytes } => {
                if let Err(err) = self.node.handle_message(&bytes) {
                    tracing::debug!("raft: message from server {from} refused: {err}");
                } else if self.node.leader() == Some(from) {
                    self.contact.set(Some(Instant::now()));
                }
            }
            TransportEvent::Unreachable { peer } => self.node.peer_unreachable(peer),
            TransportEvent::SnapshotSent { peer, delivered } => {
                self.node.snapshot_sent(peer, delivered)
            }
        }
    }

    /// The ready cycle: persist (fsync off the executor), acknowledge, send.
    async fn cycle(&mut self) -> Result<(), StorageError> {
        if self.snapshotting.as_ref().is_some_and(Task::is_finished) {
            self.finish_snapshot(true).await?;
        }
        while let Some(p) = self.node.ready() {
            if p.background
                && let Some(snap) = p.snapshot
            {
                // This server's own compaction: raft waits for nothing here, so the file
                // is written beside the log's appends, and the log rewritten after.
                self.finish_snapshot(false).await?;
                let dir = self
                    .disk
                    .as_ref()
                    .expect("the disk is here")
                    .dir()
                    .to_path_buf();
                self.snapshotting = Some(smol::unblock(move || {
                    super::storage::write_snapshot(&dir, &snap).map(|()| (snap.index, snap.term))
                }));
                self.node.persisted(&mut self.sm);
                continue;
            }
            if p.snapshot.is_some() {
                // A snapshot from the leader replaces the log: never beside a write of ours.
                self.finish_snapshot(false).await?;
            }
            // A leader's appends travel while its own fsync runs.
            self.send_transmits();
            let mut disk = self
                .disk
                .take()
                .expect("the disk is back after each persist");
            let (disk, result) = smol::unblock(move || {
                let r = disk.persist(&p);
                (disk, r)
            })
            .await;
            self.disk = Some(disk);
            result?;
            self.node.persisted(&mut self.sm);
        }
        self.send_transmits();
        Ok(())
    }

    /// Queues what the core has to send on each peer's connection.
    fn send_transmits(&mut self) {
        while let Some(t) = self.node.poll_transmit() {
            let frame = Frame {
                bytes: t.bytes,
                snapshot: t.snapshot,
            };
            let queued = self
                .senders
                .get(&t.to)
                .is_some_and(|(_, q, _)| q.try_send(frame).is_ok());
            if !queued {
                self.node.peer_unreachable(t.to);
                if t.snapshot {
                    self.node.snapshot_sent(t.to, false);
                }
            }
        }
    }

    /// Waits for the background snapshot, if one is being written; with `rewrite`, then
    /// starts the log after it (unless a later snapshot superseded it meanwhile).
    async fn finish_snapshot(&mut self, rewrite: bool) -> Result<(), StorageError> {
        let Some(task) = self.snapshotting.take() else {
            return Ok(());
        };
        let base = task.await?;
        let (now, entries) = self.node.stored_log();
        if !rewrite || now != base {
            return Ok(());
        }
        let mut disk = self
            .disk
            .take()
            .expect("the disk is back after each persist");
        let (disk, result) = smol::unblock(move || {
            let r = disk.rewrite_log(base, &entries);
            (disk, r)
        })
        .await;
        self.disk = Some(disk);
        result
    }

    /// Hands out events; true when this server was removed.
    fn events(&mut self) -> bool {
        let mut removed = false;
        while let Some(e) = self.node.poll_event() {
            match e {
                Event::Completed { request, outcome } => {
                    if let Some(Waiter::Write(tx)) = self.waiters.remove(&request) {
                        let _ = tx.try_send(outcome);
                    }
                }
                Event::ReadReady { request, index } => {
                    if let Some(Waiter::Read(tx)) = self.waiters.remove(&request) {
                        let _ = tx.try_send(Ok(index));
                    }
                }
                Event::ReadFailed { request, reason } => {
                    if let Some(Waiter::Read(tx)) = self.waiters.remove(&request) {
                        let _ = tx.try_send(Err(reason));
                    }
                }
                Event::LeaderChanged { leader, term } => match leader {
                    Some(l) => tracing::info!("raft: server {l} leads in term {term}"),
                    None => tracing::info!("raft: no leader in term {term}"),
                },
                Event::PeersChanged => self.sync_peers(),
                Event::Removed => removed = true,
            }
        }
        // Waiters whose caller gave up (timed out) are forgotten.
        self.waiters.retain(|_, w| match w {
            Waiter::Write(tx) => !tx.is_closed(),
            Waiter::Read(tx) => !tx.is_closed(),
        });
        let status = self.node.status();
        let wake = self.status.borrow().differs_beyond_the_log(&status);
        *self.status.borrow_mut() = status;
        if wake {
            self.changed.notify(usize::MAX);
        }
        removed
    }

    /// One sender per peer at its current address.
    fn sync_peers(&mut self) {
        let me = self.node.id();
        let mut peers = self.hints.clone();
        peers.extend(self.node.peers().iter().map(|(&i, a)| (i, a.clone())));
        self.senders
            .retain(|id, (addr, _, _)| peers.get(id) == Some(addr));
        for (&id, addr) in &peers {
            if id == me || self.senders.contains_key(&id) {
                continue;
            }
            let (tx, rx) = async_channel::bounded(tcp::QUEUE);
            let task = self.ex.spawn(tcp::send_loop_with(
                me,
                id,
                addr.clone(),
                rx,
                self.net_tx.clone(),
                self.link.clone(),
            ));
            self.senders.insert(id, (addr.clone(), tx, task));
        }
    }
}

#[cfg(test)]
mod tests;
