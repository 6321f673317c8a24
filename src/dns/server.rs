//! The DNS shell: the only code that touches DNS sockets. It reads a query, asks the
//! responder, and writes the reply; names outside the domain go to a recursor.
//!
//! Bounds: `UDP_BATCH` receive buffers of `MAX_UDP_QUERY` bytes for UDP; at most [`MAX_TCP_CONNECTIONS`] TCP clients,
//! each holding at most one 64 KiB message and dropped after [`TCP_IDLE`] without a query;
//! at most [`MAX_FORWARDS`] forwarded queries in flight (more get SERVFAIL at once).

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::AsRawFd;

use async_io::{Async, Timer};
use async_net::{TcpListener, TcpStream, UdpSocket};
use futures_lite::{AsyncReadExt, AsyncWriteExt, FutureExt};
use nix::errno::Errno;
use nix::sys::socket::{MsgFlags, MultiHeaders, SockaddrStorage, recvmmsg, sendmmsg};
use smol::LocalExecutor;

use crate::agent::State;
use crate::config::AgentConfig;
use crate::dns::responder::{Outcome, Transport, servfail};

/// The agent state as the DNS tasks see it.
pub type DnsShared = Rc<RefCell<State>>;
type Spawner = Rc<LocalExecutor<'static>>;

pub const MAX_TCP_CONNECTIONS: usize = 256;
pub const TCP_IDLE: Duration = Duration::from_secs(10);
/// Time to receive the rest of a message once its length has arrived.
pub const TCP_READ: Duration = Duration::from_secs(2);
pub const MAX_FORWARDS: usize = 256;

thread_local! {
    static FORWARDS: Cell<usize> = const { Cell::new(0) };
}

/// Queries read (and replies sent) per system call: `recvmmsg`/`sendmmsg` batch them so
/// that under load a query costs a fraction of a syscall each way.
pub const UDP_BATCH: usize = 32;
/// Largest UDP query read; longer datagrams are cut and answered FORMERR.
pub const MAX_UDP_QUERY: usize = 4096;

/// Answers queries on one UDP socket, forever. Memory: `UDP_BATCH` receive buffers of
/// `MAX_UDP_QUERY` bytes and as many reply buffers, reused.
pub async fn serve_udp(socket: Async<std::net::UdpSocket>, state: DnsShared, ex: Spawner) {
    let socket = Rc::new(socket);
    let fd = socket.get_ref().as_raw_fd();
    let mut bufs = vec![[0u8; MAX_UDP_QUERY]; UDP_BATCH];
    let mut outs: Vec<Vec<u8>> = (0..UDP_BATCH).map(|_| Vec::with_capacity(1232)).collect();
    let mut recv_hdrs = MultiHeaders::<SockaddrStorage>::preallocate(UDP_BATCH, None);
    let mut send_hdrs = MultiHeaders::<SockaddrStorage>::preallocate(UDP_BATCH, None);
    // (buffer slot, query length, peer) of the batch just read.
    let mut got: Vec<(usize, usize, SockaddrStorage)> = Vec::with_capacity(UDP_BATCH);
    // (index into `outs`, peer) of the replies to send.
    let mut replies: Vec<(usize, SockaddrStorage)> = Vec::with_capacity(UDP_BATCH);
    loop {
        got.clear();
        {
            let mut iovs: Vec<[IoSliceMut<'_>; 1]> = bufs
                .iter_mut()
                .map(|b| [IoSliceMut::new(&mut b[..])])
                .collect();
            match recvmmsg(
                fd,
                &mut recv_hdrs,
                iovs.iter_mut(),
                MsgFlags::MSG_DONTWAIT,
                None,
            ) {
                Ok(msgs) => {
                    for (slot, m) in msgs.enumerate() {
                        if let Some(peer) = m.address {
                            got.push((slot, m.bytes, peer));
                        }
                    }
                }
                Err(Errno::EAGAIN) => {}
                // ICMP errors from earlier sends surface here on Linux; keep serving.
                Err(e) => tracing::debug!("DNS UDP receive error: {e}"),
            }
        }
        if got.is_empty() {
            if let Err(e) = socket.readable().await {
                tracing::warn!("DNS UDP socket failed: {e}");
                Timer::after(Duration::from_millis(100)).await;
            }
            continue;
        }
        replies.clear();
        {
            let mut s = state.borrow_mut();
            let s = &mut *s;
            s.metrics.dns_queries += got.len() as u64;
            for &(i, len, ref peer) in &got {
                let query = &bufs[i][..len];
                match s
                    .responder
                    .handle_query(&s.catalog, query, Transport::Udp, &mut outs[i])
                {
                    Outcome::Reply => replies.push((i, *peer)),
                    Outcome::Drop => {}
                    Outcome::Forward => {
                        let Some(peer) = to_std(peer) else { continue };
                        let socket = socket.clone();
                        spawn_forward(
                            &ex,
                            query.to_vec(),
                            Transport::Udp,
                            &s.config,
                            move |reply| async move {
                                if let Err(e) = socket.send_to(&reply, peer).await {
                                    tracing::debug!("DNS UDP send to {peer} failed: {e}");
                                }
                            },
                        );
                    }
                }
            }
        }
        let mut sent = 0;
        while sent < replies.len() {
            let pending = &replies[sent..];
            let iovs: Vec<[IoSlice<'_>; 1]> = pending
                .iter()
                .map(|(i, _)| [IoSlice::new(&outs[*i])])
                .collect();
            let addrs: Vec<Option<SockaddrStorage>> =
                pending.iter().map(|(_, a)| Some(*a)).collect();
            match sendmmsg(
                fd,
                &mut send_hdrs,
                iovs.iter(),
                addrs,
                [],
                MsgFlags::MSG_DONTWAIT,
            ) {
                Ok(r) => {
                    let n = r.count();
                    if n == 0 {
                        break;
                    }
                    sent += n;
                }
                Err(Errno::EAGAIN) => {
                    // The send buffer is full: wait for room, bounded, then carry on.
                    let _ = with_timeout(Duration::from_millis(200), socket.writable()).await;
                }
                Err(e) => {
                    // One bad destination must not hold up the rest of the batch.
                    tracing::debug!("DNS UDP send failed: {e}");
                    sent += 1;
                }
            }
        }
        // A batch short of full emptied the queue: sleep until more arrive instead of asking
        // the kernel again (one system call per wake-up saved at moderate rates).
        if got.len() < UDP_BATCH
            && let Err(e) = socket.readable().await
        {
            tracing::warn!("DNS UDP socket failed: {e}");
        }
    }
}

fn to_std(a: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = a.as_sockaddr_in() {
        return Some(SocketAddr::V4((*v4).into()));
    }
    a.as_sockaddr_in6().map(|v6| SocketAddr::V6((*v6).into()))
}

/// Open TCP clients: a handle to shut each one down, and when it last finished a query.
type Clients = Rc<RefCell<slab::Slab<(TcpStream, Rc<Cell<Instant>>)>>>;

/// Accepts TCP clients forever. At `MAX_TCP_CONNECTIONS`, the client that has been quiet
/// longest is closed to make room, so idle connections cannot lock real clients out.
pub async fn serve_tcp(listener: TcpListener, state: DnsShared, ex: Spawner) {
    let clients: Clients = Rc::new(RefCell::new(slab::Slab::new()));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!("DNS TCP accept failed: {e}");
                Timer::after(Duration::from_millis(100)).await;
                continue;
            }
        };
        {
            let c = clients.borrow();
            if c.len() >= MAX_TCP_CONNECTIONS
                && let Some((_, (oldest, _))) = c.iter().min_by_key(|(_, (_, last))| last.get())
            {
                tracing::debug!(
                    "DNS TCP: {MAX_TCP_CONNECTIONS} clients open, closing the quietest"
                );
                let _ = oldest.shutdown(std::net::Shutdown::Both);
            }
        }
        let last = Rc::new(Cell::new(Instant::now()));
        let key = clients.borrow_mut().insert((stream.clone(), last.clone()));
        let clients = clients.clone();
        let state = state.clone();
        let ex2 = ex.clone();
        ex.spawn(async move {
            if let Err(e) = serve_tcp_conn(stream, state, ex2, &last).await {
                tracing::debug!("DNS TCP client {peer}: {e}");
            }
            clients.borrow_mut().try_remove(key);
        })
        .detach();
    }
}

async fn serve_tcp_conn(
    mut stream: TcpStream,
    state: DnsShared,
    ex: Spawner,
    last: &Cell<Instant>,
) -> std::io::Result<()> {
    let mut buf = Vec::new();
    let mut out = Vec::with_capacity(4096);
    loop {
        let mut len = [0u8; 2];
        with_timeout(TCP_IDLE, stream.read_exact(&mut len)).await?;
        let len = u16::from_be_bytes(len) as usize;
        buf.resize(len, 0);
        with_timeout(TCP_READ, stream.read_exact(&mut buf)).await?;
        let outcome = {
            let mut s = state.borrow_mut();
            let s = &mut *s;
            s.metrics.dns_queries += 1;
            s.responder
                .handle_query(&s.catalog, &buf, Transport::Tcp, &mut out)
        };
        match outcome {
            Outcome::Reply => write_framed(&mut stream, &out).await?,
            Outcome::Drop => return Ok(()),
            Outcome::Forward => {
                let (tx, rx) = async_channel::bounded(1);
                spawn_forward(
                    &ex,
                    buf.clone(),
                    Transport::Tcp,
                    &state.borrow().config,
                    move |reply| async move {
                        let _ = tx.send(reply).await;
                    },
                );
                if let Ok(reply) = rx.recv().await {
                    write_framed(&mut stream, &reply).await?;
                }
            }
        }
        last.set(Instant::now());
    }
}

async fn write_framed(stream: &mut TcpStream, msg: &[u8]) -> std::io::Result<()> {
    let len = u16::try_from(msg.len()).map_err(|_| std::io::Error::other("reply over 64 KiB"))?;
    let mut framed = Vec::with_capacity(msg.len() + 2);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(msg);
    with_timeout(TCP_READ, stream.write_all(&framed)).await
}

async fn with_timeout<T>(
    d: Duration,
    f: impl std::future::Future<Output = std::io::Result<T>>,
) -> std::io::Result<T> {
    f.or(async {
        Timer::after(d).await;
        Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "timed out",
        ))
    })
    .await
}

/// Forwards `query` to the recursors in order, each with the configured timeout, and hands
/// the first reply (or a SERVFAIL) to `reply`.
fn spawn_forward<F, Fut>(
    ex: &Spawner,
    query: Vec<u8>,
    transport: Transport,
    config: &AgentConfig,
    reply: F,
) where
    F: FnOnce(Vec<u8>) -> Fut + 'static,
    Fut: std::future::Future<Output = ()> + 'static,
{
    let recursors = config.recursors.clone();
    let timeout = Duration::from_millis(config.dns.recursor_timeout_ms);
    if FORWARDS.get() >= MAX_FORWARDS {
        let mut out = Vec::new();
        if servfail(&query, &mut out) {
            ex.spawn(reply(out)).detach();
        }
        return;
    }
    FORWARDS.set(FORWARDS.get() + 1);
    ex.spawn(async move {
        let mut answer = None;
        for r in &recursors {
            match with_timeout(timeout, forward_once(*r, &query, transport)).await {
                Ok(a) => {
                    answer = Some(a);
                    break;
                }
                Err(e) => tracing::debug!("recursor {r} failed: {e}"),
            }
        }
        FORWARDS.set(FORWARDS.get() - 1);
        let out = match answer {
            // We recurse on the client's behalf, whatever the upstream says of itself.
            Some(mut a) if a.len() >= 4 => {
                a[3] |= 0x80;
                a
            }
            Some(a) => a,
            None => {
                let mut out = Vec::new();
                if !servfail(&query, &mut out) {
                    return;
                }
                out
            }
        };
        reply(out).await;
    })
    .detach();
}

async fn forward_once(
    recursor: SocketAddr,
    query: &[u8],
    transport: Transport,
) -> std::io::Result<Vec<u8>> {
    match transport {
        Transport::Udp => {
            let local: SocketAddr = if recursor.is_ipv4() {
                ([0, 0, 0, 0], 0).into()
            } else {
                ([0u16; 8], 0).into()
            };
            let sock = UdpSocket::bind(local).await?;
            sock.connect(recursor).await?;
            sock.send(query).await?;
            let mut buf = vec![0u8; 65535];
            loop {
                let n = sock.recv(&mut buf).await?;
                // Only a reply with our query's ID counts.
                if n >= 2 && query.len() >= 2 && buf[..2] == query[..2] {
                    buf.truncate(n);
                    return Ok(buf);
                }
            }
        }
        Transport::Tcp => {
            let mut s = TcpStream::connect(recursor).await?;
            write_framed(&mut s, query).await?;
            let mut len = [0u8; 2];
            s.read_exact(&mut len).await?;
            let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
            s.read_exact(&mut buf).await?;
            Ok(buf)
        }
    }
}
