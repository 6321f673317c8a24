//! The shell that runs a [`RaftNode`] for real: wall-clock ticks, the data dir
//! ([`DiskLog`], fsynced on a blocking thread), the TCP transport ([`super::tcp`]), a state
//! machine, and an async [`RaftHandle`] for the rest of the agent.

use std::cell::RefCell;
use std::collections::HashMap;
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
use super::storage::{DiskLog, StorageError};
use super::tcp::{self, Frame, TransportEvent};
use super::wire::ConfChangeRecord;
use crate::catalog::{ApplyError, Command, SnapshotError};

/// Requests waiting in the driver's inbox, at most (callers wait when it is full).
pub const INBOX: usize = 1024;

/// A shared state machine: the driver applies to it, readers borrow it between awaits.
impl<T: StateMachine> StateMachine for Rc<RefCell<T>> {
    fn apply(&mut self, index: u64, command: &Command) -> Result<(), ApplyError> {
        self.borrow_mut().apply(index, command)
    }

    fn snapshot(&self) -> Vec<u8> {
        self.borrow().snapshot()
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
}

impl RaftHandle {
    /// Proposes `command` on this server. [`Outcome::Applied`] once it is committed and
    /// applied here (so a read of this server's state sees it); [`Outcome::NotLeader`] on a
    /// follower (forward the write to the leader).
    pub async fn propose(&self, command: Command) -> Result<Outcome, HandleError> {
        let (tx, rx) = async_channel::bounded(1);
        self.call(Request::Propose(command, tx), rx).await
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
        let deadline = Instant::now() + self.timeout;
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
            })?;
            recovered = boot;
        }
        let node = RaftNode::new(cfg.raft.clone(), &recovered, &mut sm, Instant::now())?;
        let status = Rc::new(RefCell::new(node.status()));
        let (req_tx, req_rx) = async_channel::bounded(INBOX);
        let (net_tx, net_rx) = async_channel::bounded(INBOX);
        let listen = ex.spawn(tcp::serve(listener, net_tx.clone(), ex.clone()));
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
        };
        let run = ex.spawn(driver.run());
        Ok(RaftServer {
            handle: RaftHandle {
                requests: req_tx,
                status,
                timeout: cfg.request_timeout,
            },
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
}

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
                tracing::warn!("raft: this server was removed from the cluster; raft stops here");
                return;
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
        }
    }

    fn transport(&mut self, e: TransportEvent) {
        match e {
            TransportEvent::Message { from, bytes } => {
                if let Err(err) = self.node.handle_message(&bytes) {
                    tracing::debug!("raft: message from server {from} refused: {err}");
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
        while let Some(p) = self.node.ready() {
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
        Ok(())
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
        *self.status.borrow_mut() = self.node.status();
        removed
    }

    /// One sender per peer at its current address.
    fn sync_peers(&mut self) {
        let me = self.node.id();
        let peers = self.node.peers().clone();
        self.senders
            .retain(|id, (addr, _, _)| peers.get(id) == Some(addr));
        for (&id, addr) in &peers {
            if id == me || self.senders.contains_key(&id) {
                continue;
            }
            let (tx, rx) = async_channel::bounded(tcp::QUEUE);
            let task = self.ex.spawn(tcp::send_loop(
                me,
                id,
                addr.clone(),
                rx,
                self.net_tx.clone(),
            ));
            self.senders.insert(id, (addr.clone(), tx, task));
        }
    }
}

#[cfg(test)]
mod tests;
