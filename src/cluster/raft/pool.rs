//! The RPC connections an agent or a server dials on the server port: at most one per
//! server address, requests matched to replies by ID, [`MAX_IN_FLIGHT`] at once on each.
//!
//! What became of a request is told apart carefully, because a forwarded write must never
//! be reported lost when it may have applied: [`CallError::NotSent`] (it never left: retry
//! at will), [`CallError::Lost`] (it was handed to a connection that then closed: it may
//! have taken effect), [`CallError::TimedOut`].

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_io::Timer;
use async_net::TcpStream;
use futures_lite::{AsyncWriteExt, FutureExt};
use smol::lock::{Mutex, Semaphore};
use smol::{LocalExecutor, Task};

use super::rpc::{MAX_IN_FLIGHT, Reply, Request};
use super::tcp::{self, FrameError, Link, Seals};

/// A connection unused for this long is closed and redialled rather than reused (before the
/// server closes it as idle, so a request never races that close).
const IDLE: Duration = Duration::from_secs(60);

/// Why a request got no reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum CallError {
    /// It was never sent (no connection, a failed handshake, a closed connection).
    NotSent(String),
    /// It was handed to a connection that closed before the reply came.
    Lost,
    /// No reply by the deadline (it may or may not have been received).
    TimedOut,
}

/// The dialer's connections, by server address.
pub(crate) struct Pool {
    link: Link,
    ex: Rc<LocalExecutor<'static>>,
    slots: RefCell<HashMap<String, Slot>>,
}

/// The connection to one server, locked while it is dialled.
type Slot = Rc<Mutex<Option<Rc<Conn>>>>;

struct Conn {
    queue: async_channel::Sender<Vec<u8>>,
    waiters: Rc<RefCell<HashMap<u64, async_channel::Sender<Reply>>>>,
    next_id: Cell<u64>,
    permits: Arc<Semaphore>,
    closed: Rc<Cell<bool>>,
    last_used: Cell<Instant>,
    _task: Task<()>,
}

/// `f`, or `None` once `deadline` passed.
pub(crate) async fn until<T>(deadline: Instant, f: impl Future<Output = T>) -> Option<T> {
    async { Some(f.await) }
        .or(async {
            Timer::at(deadline).await;
            None
        })
        .await
}

impl Pool {
    pub(crate) fn new(link: Link, ex: Rc<LocalExecutor<'static>>) -> Pool {
        Pool {
            link,
            ex,
            slots: RefCell::default(),
        }
    }

    /// How this pool's connections are secured and counted.
    pub(crate) fn link(&self) -> &Link {
        &self.link
    }

    /// Sends `make(id)` to the server at `addr` (dialling it if needed) and waits for its
    /// reply until `deadline`.
    pub(crate) async fn call(
        &self,
        addr: &str,
        make: impl FnOnce(u64) -> Request,
        deadline: Instant,
    ) -> Result<Reply, CallError> {
        let conn = self.conn(addr, deadline).await?;
        conn.call(make, deadline).await
    }

    /// Closes the connections to servers not in `keep`.
    pub(crate) fn retain(&self, keep: impl Fn(&str) -> bool) {
        self.slots.borrow_mut().retain(|addr, _| keep(addr));
    }

    async fn conn(&self, addr: &str, deadline: Instant) -> Result<Rc<Conn>, CallError> {
        let slot = self
            .slots
            .borrow_mut()
            .entry(addr.to_owned())
            .or_default()
            .clone();
        let mut slot = until(deadline, slot.lock())
            .await
            .ok_or(CallError::TimedOut)?;
        if let Some(c) = slot.as_ref()
            && !c.closed.get()
            && c.last_used.get().elapsed() < IDLE
        {
            return Ok(c.clone());
        }
        *slot = None;
        let left = deadline.saturating_duration_since(Instant::now());
        let mut stream = tcp::timeout(left.min(tcp::DIAL_TIMEOUT), TcpStream::connect(addr))
            .await
            .map_err(|e| CallError::NotSent(format!("cannot reach {addr}: {e}")))?;
        let _ = stream.set_nodelay(true);
        let left = deadline.saturating_duration_since(Instant::now());
        let seals = match tcp::timeout(
            left.min(tcp::HELLO_TIMEOUT),
            tcp::handshake_dial(&mut stream, &self.link.keys(), tcp::rpc_hello()),
        )
        .await
        {
            Ok(s) => s,
            Err(e) => {
                self.link.counters.rejected();
                if !matches!(e, FrameError::Io(_)) && self.link.counters.warn_now() {
                    tracing::warn!("raft: server {addr}: {e}");
                } else {
                    tracing::debug!("raft: server {addr}: {e}");
                }
                return Err(CallError::NotSent(format!("server {addr}: {e}")));
            }
        };
        let conn = Rc::new(Conn::start(stream, seals, &self.ex, &self.link));
        *slot = Some(conn.clone());
        Ok(conn)
    }
}

impl Conn {
    fn start(stream: TcpStream, seals: Seals, ex: &LocalExecutor<'static>, link: &Link) -> Conn {
        let (queue, rx) = async_channel::bounded::<Vec<u8>>(MAX_IN_FLIGHT);
        let waiters: Rc<RefCell<HashMap<u64, async_channel::Sender<Reply>>>> = Rc::default();
        let closed = Rc::new(Cell::new(false));
        let task = {
            let waiters = waiters.clone();
            let closed = closed.clone();
            let counters = link.counters.clone();
            ex.spawn(async move {
                let Seals {
                    send: mut send_seal,
                    recv: mut recv_seal,
                } = seals;
                let (mut reader, mut writer) = (stream.clone(), stream);
                let write = async move {
                    while let Ok(payload) = rx.recv().await {
                        let bytes = tcp::encode_sealed(&payload, send_seal.as_mut());
                        tcp::timeout(tcp::WRITE_TIMEOUT, writer.write_all(&bytes)).await?;
                    }
                    Ok::<(), FrameError>(())
                };
                let read = async {
                    loop {
                        let bytes = tcp::read_sealed(&mut reader, recv_seal.as_mut()).await?;
                        let reply = Reply::decode(&bytes)?;
                        // A reply nobody waits for any more (its caller timed out) is dropped.
                        if let Some(tx) = waiters.borrow_mut().remove(&reply.id()) {
                            let _ = tx.try_send(reply);
                        }
                    }
                };
                let result = read.or(write).await;
                closed.set(true);
                // Every waiter's reply is lost with the connection.
                waiters.borrow_mut().clear();
                if let Err(e) = result {
                    if !matches!(e, FrameError::Io(_)) {
                        counters.bad_frame();
                    }
                    tracing::debug!("raft: RPC connection closed: {e}");
                }
            })
        };
        Conn {
            queue,
            waiters,
            next_id: Cell::new(1),
            permits: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
            closed,
            last_used: Cell::new(Instant::now()),
            _task: task,
        }
    }

    async fn call(
        &self,
        make: impl FnOnce(u64) -> Request,
        deadline: Instant,
    ) -> Result<Reply, CallError> {
        let _permit = until(deadline, self.permits.acquire_arc())
            .await
            .ok_or(CallError::TimedOut)?;
        if self.closed.get() {
            return Err(CallError::NotSent("the connection closed".into()));
        }
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        self.last_used.set(Instant::now());
        let (tx, rx) = async_channel::bounded(1);
        self.waiters.borrow_mut().insert(id, tx);
        if self.queue.try_send(make(id).encode()).is_err() {
            self.waiters.borrow_mut().remove(&id);
            return Err(CallError::NotSent("the connection is busy".into()));
        }
        match until(deadline, rx.recv()).await {
            Some(Ok(reply)) => Ok(reply),
            Some(Err(_)) => Err(CallError::Lost),
            None => {
                self.waiters.borrow_mut().remove(&id);
                Err(CallError::TimedOut)
            }
        }
    }
}
