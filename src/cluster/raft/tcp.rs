//! The server port: TCP between servers (Raft messages) and from agents (RPC: forwarded
//! writes, status). This file accepts every connection on it and dials the Raft ones;
//! the RPC ones are
//! dialled with the functions here (by `pool`).
//!
//! A connection starts with a hello from the dialer: 8 bytes of magic that say what the
//! connection carries (`OPRAFTT1`: one server's Raft messages, `OPRAFTR1`: RPC) and the
//! dialer's server ID (0 from a client agent, and ignored on RPC); the acceptor of an RPC
//! connection answers with the same 8 bytes of magic before anything else is sent (with a
//! key, its proof is that answer). Then frames, each a
//! 4-byte little-endian length and that many bytes: on a Raft connection one raft message
//! ([`super::wire`]) each, dialer to acceptor only; on an RPC connection requests one way and
//! replies the other ([`super::rpc`]). Junk, a wrong magic, a frame over [`MAX_FRAME`] or
//! an RPC frame that does not decode closes the connection (logged at debug and counted in
//! [`TransportStats`]), never a panic.
//!
//! With a key configured ([`super::ServerConfig::key`]), the hello is preceded by the
//! handshake of [`super::auth`] and every frame is followed by its 32-byte tag; a peer
//! without the key, with another key, or sending a frame whose tag is wrong is disconnected
//! and counted. Without a key, connections are as they always were, and a dialer that
//! wants to authenticate is refused.
//!
//! Each peer has one Raft sender task with a bounded queue ([`QUEUE`] frames): when the peer
//! is down the queue fills and new frames are dropped (raft retransmits), and the core is
//! told the peer is unreachable. A lost connection is redialled with backoff (50 ms doubling
//! to 1 s); dials, handshakes and writes are bounded by timeouts.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use async_io::Timer;
use async_net::{TcpListener, TcpStream};
use futures_lite::future::BoxedLocal;
use futures_lite::{AsyncReadExt, AsyncWriteExt, FutureExt};

use super::auth::{self, AUTH_MAGIC, Auth, NONCE_LEN, Seal, TAG_LEN};
use super::rpc::{self, MAX_IN_FLIGHT, RpcError};
use super::wire::MAX_MESSAGE;

/// Largest frame accepted: one raft message (a snapshot travels in one).
pub const MAX_FRAME: usize = MAX_MESSAGE;
/// Frames queued for one peer, at most.
pub const QUEUE: usize = 512;
/// Connections accepted at once, at most: the servers' Raft connections and one RPC
/// connection per agent that forwards writes or asks for the status.
pub const MAX_INBOUND: usize = 1024;

const MAGIC: &[u8; 8] = b"OPRAFTT1";
const RPC_MAGIC: &[u8; 8] = b"OPRAFTR1";
pub(crate) const DIAL_TIMEOUT: Duration = Duration::from_secs(1);
/// A frame that cannot be written in this long means a stuck peer: drop the connection.
pub(crate) const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// The hello (and the handshake with a key) must be done in this long.
pub(crate) const HELLO_TIMEOUT: Duration = Duration::from_secs(5);
/// An RPC connection without a request for this long is closed by the server (agents
/// close theirs sooner: [`super::pool`]).
const RPC_IDLE: Duration = Duration::from_secs(300);

/// One raft message for a peer.
#[derive(Debug)]
pub struct Frame {
    pub bytes: Vec<u8>,
    /// Carries a snapshot: its fate is reported back.
    pub snapshot: bool,
}

/// What the transport tells the driver.
#[derive(Debug)]
pub enum TransportEvent {
    /// A frame arrived (from the peer that said hello with `from`).
    Message { from: u64, bytes: Vec<u8> },
    /// A frame to `peer` was dropped or its connection failed.
    Unreachable { peer: u64 },
    /// A snapshot frame to `peer` was written out (`delivered`) or dropped.
    SnapshotSent { peer: u64, delivered: bool },
}

/// Why a frame could not be read, or a connection not set up. The connection is closed.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("not an outpost Raft connection (bad hello)")]
    BadHello,
    #[error("frame of {0} bytes is over the {MAX_FRAME}-byte limit")]
    TooLarge(usize),
    #[error("the peer authenticates with a key, and this server has none configured")]
    Unexpected,
    #[error("the peer did not authenticate, and this server requires the cluster's key")]
    KeyMissing,
    #[error("the peer does not hold this cluster's key")]
    WrongKey,
    #[error("the server closed the connection in the handshake: {0}")]
    Refused(&'static str),
    #[error("a frame's tag is wrong (changed, replayed, or under another key)")]
    BadTag,
    #[error(transparent)]
    Rpc(#[from] RpcError),
    #[error("the system's random number generator failed")]
    Rng,
}

/// Connections refused and closed on the server port (and by a client's dials), since
/// start. Nothing else is kept about them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TransportStats {
    /// Handshakes that failed: junk or a wrong hello, no key or the wrong key (either end).
    pub rejected_handshakes: u64,
    /// Connections closed for a bad frame after the handshake: over the size limit, a wrong
    /// tag, an RPC frame that does not decode.
    pub bad_frames: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    rejected: Cell<u64>,
    bad_frames: Cell<u64>,
    last_warning: Cell<Option<std::time::Instant>>,
}

/// Refused handshakes are logged as warnings at most this often (a peer with the wrong key
/// redials every second); the others at debug.
const WARN_EVERY: Duration = Duration::from_secs(10);

impl Counters {
    /// Whether a refused handshake may be logged as a warning now.
    pub(crate) fn warn_now(&self) -> bool {
        let now = std::time::Instant::now();
        let due = self
            .last_warning
            .get()
            .is_none_or(|t| now.duration_since(t) >= WARN_EVERY);
        if due {
            self.last_warning.set(Some(now));
        }
        due
    }

    pub(crate) fn rejected(&self) {
        self.rejected.set(self.rejected.get() + 1);
    }

    pub(crate) fn bad_frame(&self) {
        self.bad_frames.set(self.bad_frames.get() + 1);
    }

    pub(crate) fn stats(&self) -> TransportStats {
        TransportStats {
            rejected_handshakes: self.rejected.get(),
            bad_frames: self.bad_frames.get(),
        }
    }
}

/// How the connections of one server (or client) are secured, and where they are counted.
#[derive(Clone, Debug, Default)]
pub(crate) struct Link {
    /// The keys: a dialer proves the first, an acceptor takes any (so a key rotation works
    /// as gossip's keyring does: install everywhere, use, remove). Empty: no key.
    keys: Rc<std::cell::RefCell<Vec<Auth>>>,
    pub counters: Rc<Counters>,
}

impl Link {
    pub(crate) fn new(key: Option<&[u8; auth::KEY_LEN]>) -> Link {
        let link = Link::default();
        link.set_keys(key.copied().as_slice());
        link
    }

    /// Replaces the keys for the connections set up from now on.
    pub(crate) fn set_keys(&self, keys: &[[u8; auth::KEY_LEN]]) {
        *self.keys.borrow_mut() = keys.iter().map(Auth::new).collect();
    }

    /// The keys now.
    pub(crate) fn keys(&self) -> Vec<Auth> {
        self.keys.borrow().clone()
    }
}

/// What the server does with an RPC request.
pub(crate) type RpcService = Rc<dyn Fn(rpc::Request) -> BoxedLocal<rpc::Reply>>;

/// What an accepted connection carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Raft { from: u64 },
    Rpc,
}

/// The tags of one connection, each way (none without a key).
#[derive(Default)]
pub(crate) struct Seals {
    pub send: Option<Seal>,
    pub recv: Option<Seal>,
}

fn hello(id: u64) -> [u8; 16] {
    let mut h = [0u8; 16];
    h[..8].copy_from_slice(MAGIC);
    h[8..].copy_from_slice(&id.to_le_bytes());
    h
}

pub(crate) fn rpc_hello() -> [u8; 16] {
    let mut h = [0u8; 16];
    h[..8].copy_from_slice(RPC_MAGIC);
    h
}

fn parse_hello(h: &[u8; 16]) -> Result<Kind, FrameError> {
    let mut id = [0u8; 8];
    id.copy_from_slice(&h[8..]);
    match &h[..8] {
        m if m == MAGIC => Ok(Kind::Raft {
            from: u64::from_le_bytes(id),
        }),
        m if m == RPC_MAGIC => Ok(Kind::Rpc),
        _ => Err(FrameError::BadHello),
    }
}

/// Reads the hello of a Raft connection: the peer's server ID.
pub async fn read_hello(s: &mut (impl AsyncReadExt + Unpin)) -> Result<u64, FrameError> {
    let mut h = [0u8; 16];
    s.read_exact(&mut h).await?;
    match parse_hello(&h)? {
        Kind::Raft { from } => Ok(from),
        Kind::Rpc => Err(FrameError::BadHello),
    }
}

/// Reads one frame (checking its length before allocating).
pub async fn read_frame(s: &mut (impl AsyncReadExt + Unpin)) -> Result<Vec<u8>, FrameError> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len).await?;
    let len = u32::from_le_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(FrameError::TooLarge(len));
    }
    let mut buf = vec![0u8; len];
    s.read_exact(&mut buf).await?;
    Ok(buf)
}

/// Reads one frame and, with a seal, checks its tag.
pub(crate) async fn read_sealed(
    s: &mut (impl AsyncReadExt + Unpin),
    seal: Option<&mut Seal>,
) -> Result<Vec<u8>, FrameError> {
    let buf = read_frame(s).await?;
    if let Some(seal) = seal {
        let mut tag = [0u8; TAG_LEN];
        s.read_exact(&mut tag).await?;
        if !seal.check(&buf, &tag) {
            return Err(FrameError::BadTag);
        }
    }
    Ok(buf)
}

#[cfg(test)]
fn encode_frame(bytes: &[u8]) -> Vec<u8> {
    encode_sealed(bytes, None)
}

/// A frame's bytes on the wire: length, payload and, with a seal, its tag.
pub(crate) fn encode_sealed(bytes: &[u8], seal: Option<&mut Seal>) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + bytes.len() + TAG_LEN);
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
    if let Some(seal) = seal {
        out.extend_from_slice(&seal.tag(bytes));
    }
    out
}

pub(crate) async fn timeout<T, E: From<std::io::Error>>(
    d: Duration,
    f: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, E> {
    f.or(async {
        Timer::after(d).await;
        Err(std::io::Error::from(std::io::ErrorKind::TimedOut).into())
    })
    .await
}

/// An end of stream where the server's answer was due means the server refused.
fn refused(why: &'static str) -> impl Fn(std::io::Error) -> FrameError {
    move |e| match e.kind() {
        std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset => {
            FrameError::Refused(why)
        }
        _ => FrameError::Io(e),
    }
}

/// The dialer's side of the hello (and of the handshake with a key): the seals of the
/// connection.
pub(crate) async fn handshake_dial(
    s: &mut TcpStream,
    keys: &[Auth],
    hello: [u8; 16],
) -> Result<Seals, FrameError> {
    let Some(auth) = keys.first() else {
        s.write_all(&hello).await?;
        if hello[..8] == RPC_MAGIC[..] {
            // Until the server says it took the connection, nothing is sent on it (so a
            // request is never lost to a server that refused the hello).
            let mut ack = [0u8; 8];
            s.read_exact(&mut ack)
                .await
                .map_err(refused("it may require a key, or not serve RPC"))?;
            if &ack != RPC_MAGIC {
                return Err(FrameError::BadHello);
            }
        }
        return Ok(Seals::default());
    };
    let mine = auth::nonce().ok_or(FrameError::Rng)?;
    let mut first = AUTH_MAGIC.to_vec();
    first.extend_from_slice(&mine);
    s.write_all(&first).await?;
    let mut theirs = [0u8; NONCE_LEN];
    s.read_exact(&mut theirs)
        .await
        .map_err(refused("it may have no key configured"))?;
    let mut second = hello.to_vec();
    second.extend_from_slice(&auth.dialer_proof(&mine, &theirs, &hello));
    s.write_all(&second).await?;
    let mut proof = [0u8; TAG_LEN];
    s.read_exact(&mut proof)
        .await
        .map_err(refused("it does not take this key"))?;
    if !auth::same(&auth.acceptor_proof(&mine, &theirs, &hello), &proof) {
        return Err(FrameError::WrongKey);
    }
    let (send, recv) = auth.seals(&mine, &theirs);
    Ok(Seals {
        send: Some(send),
        recv: Some(recv),
    })
}

/// The acceptor's side: what the connection carries, and its seals.
async fn handshake_accept(s: &mut TcpStream, keys: &[Auth]) -> Result<(Kind, Seals), FrameError> {
    let mut magic = [0u8; 8];
    s.read_exact(&mut magic).await?;
    let authenticating = &magic == AUTH_MAGIC;
    match (keys.is_empty(), authenticating) {
        (true, false) => {
            let mut h = [0u8; 16];
            h[..8].copy_from_slice(&magic);
            s.read_exact(&mut h[8..]).await?;
            let kind = parse_hello(&h)?;
            if kind == Kind::Rpc {
                s.write_all(RPC_MAGIC).await?;
            }
            return Ok((kind, Seals::default()));
        }
        (true, true) => return Err(FrameError::Unexpected),
        (false, false) if &magic == MAGIC || &magic == RPC_MAGIC => {
            return Err(FrameError::KeyMissing);
        }
        (false, false) => return Err(FrameError::BadHello),
        (false, true) => {}
    }
    let mut theirs = [0u8; NONCE_LEN];
    s.read_exact(&mut theirs).await?;
    let mine = auth::nonce().ok_or(FrameError::Rng)?;
    s.write_all(&mine).await?;
    let mut second = [0u8; 16 + TAG_LEN];
    s.read_exact(&mut second).await?;
    let (h, proof) = second.split_at(16);
    let mut hello = [0u8; 16];
    hello.copy_from_slice(h);
    let auth = keys
        .iter()
        .find(|a| auth::same(&a.dialer_proof(&theirs, &mine, &hello), proof))
        .ok_or(FrameError::WrongKey)?;
    let kind = parse_hello(&hello)?;
    s.write_all(&auth.acceptor_proof(&theirs, &mine, &hello))
        .await?;
    let (recv, send) = auth.seals(&theirs, &mine);
    Ok((
        kind,
        Seals {
            send: Some(send),
            recv: Some(recv),
        },
    ))
}

/// Accepts connections and forwards their frames to `events` until the listener fails.
/// Each connection is read by a task owned here, so dropping this future closes them all.
/// (Without a key, and refusing RPC: a server's listener also answers RPC and checks the
/// key.)
pub async fn serve(
    listener: TcpListener,
    events: async_channel::Sender<TransportEvent>,
    ex: Rc<smol::LocalExecutor<'static>>,
) {
    serve_with(listener, events, ex, Link::default(), None).await
}

/// Accepts connections: Raft connections feed `events`, RPC connections are answered by
/// `rpc` (closed without it), all secured and counted by `link`.
pub(crate) async fn serve_with(
    listener: TcpListener,
    events: async_channel::Sender<TransportEvent>,
    ex: Rc<smol::LocalExecutor<'static>>,
    link: Link,
    rpc: Option<RpcService>,
) {
    let mut conns: Vec<smol::Task<()>> = Vec::new();
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("raft: accept failed: {e}");
                Timer::after(Duration::from_millis(100)).await;
                continue;
            }
        };
        conns.retain(|t| !t.is_finished());
        if conns.len() >= MAX_INBOUND {
            tracing::debug!("raft: refusing {peer}: {MAX_INBOUND} connections open");
            continue;
        }
        let events = events.clone();
        let link = link.clone();
        let rpc = rpc.clone();
        let ex2 = ex.clone();
        conns.push(ex.spawn(async move {
            if let Err(e) = accept_conn(stream, events, link, rpc, ex2).await {
                tracing::debug!("raft: connection from {peer} closed: {e}");
            }
        }));
    }
}

async fn accept_conn(
    mut stream: TcpStream,
    events: async_channel::Sender<TransportEvent>,
    link: Link,
    rpc: Option<RpcService>,
    ex: Rc<smol::LocalExecutor<'static>>,
) -> Result<(), FrameError> {
    let _ = stream.set_nodelay(true);
    let (kind, seals) =
        match timeout(HELLO_TIMEOUT, handshake_accept(&mut stream, &link.keys())).await {
            Ok(k) => k,
            Err(e) => {
                link.counters.rejected();
                if matches!(
                    e,
                    FrameError::WrongKey | FrameError::KeyMissing | FrameError::Unexpected
                ) && link.counters.warn_now()
                {
                    tracing::warn!(
                        "raft: refused a connection from {}: {e}",
                        stream
                            .peer_addr()
                            .map_or_else(|_| "?".into(), |a| a.to_string())
                    );
                }
                return Err(e);
            }
        };
    let result = match (kind, rpc) {
        (Kind::Raft { from }, _) => read_raft(stream, from, seals.recv, events).await,
        (Kind::Rpc, Some(service)) => serve_rpc(stream, seals, service, ex).await,
        (Kind::Rpc, None) => Ok(()),
    };
    if let Err(e) = &result
        && !matches!(e, FrameError::Io(_))
    {
        link.counters.bad_frame();
    }
    result
}

async fn read_raft(
    mut stream: TcpStream,
    from: u64,
    mut seal: Option<Seal>,
    events: async_channel::Sender<TransportEvent>,
) -> Result<(), FrameError> {
    loop {
        let bytes = read_sealed(&mut stream, seal.as_mut()).await?;
        // The driver is busy: drop (raft retransmits) rather than stall the socket.
        if let Err(async_channel::TrySendError::Closed(_)) =
            events.try_send(TransportEvent::Message { from, bytes })
        {
            return Ok(());
        }
    }
}

/// Answers the requests of one RPC connection, at most [`MAX_IN_FLIGHT`] at once (then it
/// stops reading), each in a task of its own owned here.
async fn serve_rpc(
    stream: TcpStream,
    seals: Seals,
    service: RpcService,
    ex: Rc<smol::LocalExecutor<'static>>,
) -> Result<(), FrameError> {
    let Seals {
        send: mut send_seal,
        recv: mut recv_seal,
    } = seals;
    let (mut reader, mut writer) = (stream.clone(), stream);
    let (tx, rx) = async_channel::bounded::<rpc::Reply>(MAX_IN_FLIGHT);
    let permits = Arc::new(smol::lock::Semaphore::new(MAX_IN_FLIGHT));
    let write = async move {
        while let Ok(reply) = rx.recv().await {
            let bytes = encode_sealed(&reply.encode(), send_seal.as_mut());
            timeout(WRITE_TIMEOUT, writer.write_all(&bytes)).await?;
        }
        Ok::<(), FrameError>(())
    };
    let read = async {
        let mut handlers: Vec<smol::Task<()>> = Vec::new();
        loop {
            let next = async { Some(read_sealed(&mut reader, recv_seal.as_mut()).await) };
            let idle = async {
                Timer::after(RPC_IDLE).await;
                None
            };
            let Some(bytes) = next.or(idle).await else {
                tracing::debug!("raft: closing an idle RPC connection");
                return Ok(());
            };
            let request = rpc::Request::decode(&bytes?)?;
            let permit = permits.acquire_arc().await;
            handlers.retain(|t| !t.is_finished());
            let tx = tx.clone();
            let service = service.clone();
            handlers.push(ex.spawn(async move {
                let reply = service(request).await;
                let _ = tx.send(reply).await;
                drop(permit);
            }));
        }
    };
    read.or(write).await
}

/// Sends the frames of `queue` to the server `peer` at `addr`, redialling as needed, until
/// the queue is closed. (Without a key: a server's senders use its key.)
pub async fn send_loop(
    me: u64,
    peer: u64,
    addr: String,
    queue: async_channel::Receiver<Frame>,
    events: async_channel::Sender<TransportEvent>,
) {
    send_loop_with(me, peer, addr, queue, events, Link::default()).await
}

/// [`send_loop`] over connections secured and counted by `link`.
pub(crate) async fn send_loop_with(
    me: u64,
    peer: u64,
    addr: String,
    queue: async_channel::Receiver<Frame>,
    events: async_channel::Sender<TransportEvent>,
    link: Link,
) {
    let mut backoff = Duration::from_millis(50);
    let mut conn: Option<(TcpStream, Option<Seal>)> = None;
    let mut warned = false;
    while let Ok(frame) = queue.recv().await {
        if conn.is_none() {
            match timeout(DIAL_TIMEOUT, TcpStream::connect(addr.as_str())).await {
                Ok(mut s) => {
                    let _ = s.set_nodelay(true);
                    match timeout(
                        HELLO_TIMEOUT,
                        handshake_dial(&mut s, &link.keys(), hello(me)),
                    )
                    .await
                    {
                        Ok(seals) => {
                            conn = Some((s, seals.send));
                            backoff = Duration::from_millis(50);
                            warned = false;
                        }
                        Err(e) => {
                            link.counters.rejected();
                            if !warned && !matches!(e, FrameError::Io(_)) {
                                tracing::warn!("raft: server {peer} at {addr}: {e}");
                                warned = true;
                            } else {
                                tracing::debug!("raft: server {peer} at {addr}: {e}");
                            }
                        }
                    }
                }
                Err(e) => tracing::debug!("raft: cannot reach server {peer} at {addr}: {e}"),
            }
        }
        let delivered = match conn.as_mut() {
            Some((s, seal)) => {
                let bytes = encode_sealed(&frame.bytes, seal.as_mut());
                timeout(WRITE_TIMEOUT, s.write_all(&bytes)).await.is_ok()
            }
            None => false,
        };
        if frame.snapshot {
            let _ = events.try_send(TransportEvent::SnapshotSent { peer, delivered });
        }
        if !delivered {
            conn = None;
            let _ = events.try_send(TransportEvent::Unreachable { peer });
            // Drop what queued up meanwhile, then wait before the next dial.
            while queue.try_recv().is_ok() {}
            Timer::after(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(1));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_and_hellos_round_trip_and_junk_is_refused() {
        smol::block_on(async {
            let mut bytes = hello(7).to_vec();
            bytes.extend(encode_frame(b"abc"));
            let mut r = futures_lite::io::Cursor::new(bytes);
            assert_eq!(read_hello(&mut r).await.unwrap(), 7);
            assert_eq!(read_frame(&mut r).await.unwrap(), b"abc");
            assert!(matches!(read_frame(&mut r).await, Err(FrameError::Io(_))));

            let mut r = futures_lite::io::Cursor::new(b"GET / HTTP/1.1\r\n\r\n".to_vec());
            assert!(matches!(
                read_hello(&mut r).await,
                Err(FrameError::BadHello)
            ));

            let mut r = futures_lite::io::Cursor::new(rpc_hello().to_vec());
            assert!(matches!(
                read_hello(&mut r).await,
                Err(FrameError::BadHello)
            ));

            let huge = ((MAX_FRAME + 1) as u32).to_le_bytes().to_vec();
            let mut r = futures_lite::io::Cursor::new(huge);
            assert!(matches!(
                read_frame(&mut r).await,
                Err(FrameError::TooLarge(_))
            ));
        });
    }

    #[test]
    fn a_sealed_frame_reads_back_once_and_a_changed_one_is_refused() {
        smol::block_on(async {
            let auth = Auth::new(&[3; auth::KEY_LEN]);
            let (n1, n2) = (auth::nonce().unwrap(), auth::nonce().unwrap());
            let (mut send, _) = auth.seals(&n1, &n2);
            let mut bytes = encode_sealed(b"one", Some(&mut send));
            bytes.extend(encode_sealed(b"two", Some(&mut send)));
            let (mut recv, _) = auth.seals(&n1, &n2);
            let mut r = futures_lite::io::Cursor::new(bytes.clone());
            assert_eq!(read_sealed(&mut r, Some(&mut recv)).await.unwrap(), b"one");
            assert_eq!(read_sealed(&mut r, Some(&mut recv)).await.unwrap(), b"two");

            let mut changed = bytes;
            changed[5] ^= 1;
            let (mut recv, _) = auth.seals(&n1, &n2);
            let mut r = futures_lite::io::Cursor::new(changed);
            assert!(matches!(
                read_sealed(&mut r, Some(&mut recv)).await,
                Err(FrameError::BadTag)
            ));
        });
    }
}
