//! The Raft transport between servers: TCP on the server port, the only file that touches
//! those sockets.
//!
//! A connection carries one direction: the dialer sends a hello (magic and its server ID)
//! and then frames, each a 4-byte little-endian length and that many bytes of one raft
//! message ([`super::wire`]). The accepting side only reads. Junk, a wrong magic or a frame
//! over [`MAX_FRAME`] closes the connection (logged at debug), never a panic.
//!
//! Each peer has one sender task with a bounded queue ([`QUEUE`] frames): when the peer is
//! down the queue fills and new frames are dropped (raft retransmits), and the core is told
//! the peer is unreachable. A lost connection is redialled with backoff (50 ms doubling to
//! 1 s); dials and writes are bounded by timeouts.

use std::time::Duration;

use async_io::Timer;
use async_net::{TcpListener, TcpStream};
use futures_lite::{AsyncReadExt, AsyncWriteExt, FutureExt};

use super::wire::MAX_MESSAGE;

/// Largest frame accepted: one raft message (a snapshot travels in one).
pub const MAX_FRAME: usize = MAX_MESSAGE;
/// Frames queued for one peer, at most.
pub const QUEUE: usize = 512;
/// Connections accepted at once, at most (a cluster has a handful of servers).
pub const MAX_INBOUND: usize = 64;

const MAGIC: &[u8; 8] = b"OPRAFTT1";
const DIAL_TIMEOUT: Duration = Duration::from_secs(1);
/// A frame that cannot be written in this long means a stuck peer: drop the connection.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
const HELLO_TIMEOUT: Duration = Duration::from_secs(5);

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

/// Why a frame could not be read. The connection is closed.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("not an outpost Raft connection (bad hello)")]
    BadHello,
    #[error("frame of {0} bytes is over the {MAX_FRAME}-byte limit")]
    TooLarge(usize),
}

fn hello(id: u64) -> [u8; 16] {
    let mut h = [0u8; 16];
    h[..8].copy_from_slice(MAGIC);
    h[8..].copy_from_slice(&id.to_le_bytes());
    h
}

/// Reads the hello: the peer's server ID.
pub async fn read_hello(s: &mut (impl AsyncReadExt + Unpin)) -> Result<u64, FrameError> {
    let mut h = [0u8; 16];
    s.read_exact(&mut h).await?;
    if &h[..8] != MAGIC {
        return Err(FrameError::BadHello);
    }
    let mut id = [0u8; 8];
    id.copy_from_slice(&h[8..]);
    Ok(u64::from_le_bytes(id))
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

fn encode_frame(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + bytes.len());
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
    out
}

async fn timeout<T>(
    d: Duration,
    f: impl std::future::Future<Output = std::io::Result<T>>,
) -> std::io::Result<T> {
    f.or(async {
        Timer::after(d).await;
        Err(std::io::ErrorKind::TimedOut.into())
    })
    .await
}

/// Accepts connections and forwards their frames to `events` until the listener fails.
/// Each connection is read by a task owned here, so dropping this future closes them all.
pub async fn serve(
    listener: TcpListener,
    events: async_channel::Sender<TransportEvent>,
    ex: std::rc::Rc<smol::LocalExecutor<'static>>,
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
        conns.push(ex.spawn(async move {
            if let Err(e) = read_conn(stream, events).await {
                tracing::debug!("raft: connection from {peer} closed: {e}");
            }
        }));
    }
}

async fn read_conn(
    mut stream: TcpStream,
    events: async_channel::Sender<TransportEvent>,
) -> Result<(), FrameError> {
    let from = read_hello(&mut stream)
        .or(async {
            Timer::after(HELLO_TIMEOUT).await;
            Err(FrameError::BadHello)
        })
        .await?;
    loop {
        let bytes = read_frame(&mut stream).await?;
        // The driver is busy: drop (raft retransmits) rather than stall the socket.
        if let Err(async_channel::TrySendError::Closed(_)) =
            events.try_send(TransportEvent::Message { from, bytes })
        {
            return Ok(());
        }
    }
}

/// Sends the frames of `queue` to the server `peer` at `addr`, redialling as needed, until
/// the queue is closed.
pub async fn send_loop(
    me: u64,
    peer: u64,
    addr: String,
    queue: async_channel::Receiver<Frame>,
    events: async_channel::Sender<TransportEvent>,
) {
    let mut backoff = Duration::from_millis(50);
    let mut conn: Option<TcpStream> = None;
    while let Ok(frame) = queue.recv().await {
        if conn.is_none() {
            match timeout(DIAL_TIMEOUT, TcpStream::connect(addr.as_str())).await {
                Ok(mut s) => {
                    let _ = s.set_nodelay(true);
                    if timeout(WRITE_TIMEOUT, s.write_all(&hello(me)))
                        .await
                        .is_ok()
                    {
                        conn = Some(s);
                        backoff = Duration::from_millis(50);
                    }
                }
                Err(e) => tracing::debug!("raft: cannot reach server {peer} at {addr}: {e}"),
            }
        }
        let delivered = match conn.as_mut() {
            Some(s) => timeout(WRITE_TIMEOUT, s.write_all(&encode_frame(&frame.bytes)))
                .await
                .is_ok(),
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

            let huge = ((MAX_FRAME + 1) as u32).to_le_bytes().to_vec();
            let mut r = futures_lite::io::Cursor::new(huge);
            assert!(matches!(
                read_frame(&mut r).await,
                Err(FrameError::TooLarge(_))
            ));
        });
    }
}
