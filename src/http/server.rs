//! The HTTP shell: the only code that touches HTTP sockets. hyper parses and writes HTTP/1.1;
//! each request is read whole (bounded), answered by [`routes::handle`], and a blocking read
//! waits on the [`WatchHub`](super::watch::WatchHub) until its data changes or its time ends.
//!
//! Bounds: at most [`MAX_CONNECTIONS`] connections (further ones are closed at once),
//! headers of at most [`MAX_HEADER_BYTES`], bodies of at most [`MAX_BODY`] read within
//! [`BODY_TIMEOUT`]; a connection that does not complete a request head within
//! [`HEADER_TIMEOUT`] (a new one, or an idle keep-alive one) is closed.

use std::cell::{Cell, RefCell};
use std::convert::Infallible;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use async_io::Timer;
use async_net::{TcpListener, TcpStream};
use bytes::Bytes;
use futures_lite::{AsyncRead, AsyncWrite, FutureExt};
use http::header::{ALLOW, CONTENT_TYPE, HeaderValue};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use smol::LocalExecutor;
use smol_hyper::rt::{FuturesIo, SmolTimer};

use super::request::{Blocking, Reply, Request};
use super::routes::{self, Handled};
use crate::agent::State;

pub type Shared = Rc<RefCell<State>>;

/// Open connections; blocking queries each hold one, so this is also the watcher bound.
pub const MAX_CONNECTIONS: usize = 16_384;
/// Request line and headers.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;
/// Request bodies: a KV value (512 KiB) with room to spare; larger gets 413.
pub const MAX_BODY: usize = 1024 * 1024;
/// Also the idle timeout: hyper starts this timer whenever it waits for a request head.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
pub const BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// A TLS handshake must finish within this, or the connection is closed.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Plain HTTP, or HTTPS with the agent's current TLS configuration (read at each accept, so
/// a reload applies to new connections while open ones keep theirs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

/// Accepts connections on `listener` forever, serving each on `ex`.
pub async fn serve(
    listener: TcpListener,
    scheme: Scheme,
    state: Shared,
    ex: Rc<LocalExecutor<'static>>,
) {
    let open = Rc::new(Cell::new(0usize));
    let limit = MAX_CONNECTIONS.min(fd_budget());
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                // Out of descriptors or a transient error: pause rather than spin.
                tracing::warn!("HTTP accept failed: {e}");
                Timer::after(Duration::from_millis(100)).await;
                continue;
            }
        };
        if open.get() >= limit {
            tracing::debug!("HTTP: {limit} connections open, closing the one from {peer}");
            drop(stream);
            continue;
        }
        let _ = stream.set_nodelay(true);
        let tls = match scheme {
            Scheme::Http => None,
            Scheme::Https => match state.borrow().https_config() {
                Some(c) => Some(futures_rustls::TlsAcceptor::from(c)),
                None => {
                    tracing::warn!("HTTPS connection from {peer} closed: no TLS configuration");
                    continue;
                }
            },
        };
        open.set(open.get() + 1);
        let open = open.clone();
        let state = state.clone();
        ex.spawn(async move {
            match tls {
                None => serve_connection(stream.clone(), stream, state).await,
                Some(acceptor) => {
                    let handshake =
                        async { Some(acceptor.accept(stream.clone()).await) }.or(async {
                            Timer::after(HANDSHAKE_TIMEOUT).await;
                            None
                        });
                    match handshake.await {
                        Some(Ok(tls)) => serve_connection(tls, stream, state).await,
                        Some(Err(e)) => tracing::debug!("TLS handshake with {peer} failed: {e}"),
                        None => tracing::debug!("TLS handshake with {peer} timed out"),
                    }
                }
            }
            open.set(open.get() - 1);
        })
        .detach();
    }
}

/// How many connections the descriptor limit leaves room for (raised to the hard limit at
/// start, as Go raises it for Consul).
fn fd_budget() -> usize {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return MAX_CONNECTIONS;
    };
    let want = hard.min(MAX_CONNECTIONS as u64 + 1024);
    let soft = if soft < want && setrlimit(Resource::RLIMIT_NOFILE, want, hard).is_ok() {
        want
    } else {
        soft
    };
    (soft.saturating_sub(256) as usize).max(16)
}

/// Most request bytes a connection keeps aside to replay a parked request; a longer request
/// is held inside hyper instead.
pub const MAX_PARKED_REQUEST: usize = 4096;

/// What a connection's driver and the service hyper calls share.
#[derive(Default)]
struct Conn {
    /// The bytes hyper read since it last wrote: the request being served, if it fits.
    tee: RefCell<Vec<u8>>,
    /// Whether hyper wrote since its last read (the next read starts a new request).
    wrote: Cell<bool>,
    /// The request did not fit in [`MAX_PARKED_REQUEST`].
    overflow: Cell<bool>,
    /// Set by the service to park its request; the driver then drops hyper's connection.
    park: RefCell<Option<Parked>>,
    parked: event_listener::Event,
    /// Set by the driver when it replays a parked request: the wait's original end.
    resumed: Cell<Option<Instant>>,
}

/// A blocking query waiting outside hyper: the connection holds only this, the socket and
/// one listener, not hyper's buffers (about 16 KiB per connection).
struct Parked {
    req: Request,
    blocking: Blocking,
    deadline: Instant,
    /// The request's bytes, to replay into a new hyper connection when it is answered.
    bytes: Vec<u8>,
}

/// The connection as hyper sees it: replayed bytes first, and every byte read is also kept
/// in [`Conn::tee`] (up to [`MAX_PARKED_REQUEST`]). `S` is the TCP stream or the TLS stream
/// over it, shared with the driver, which keeps it while a request is parked.
struct TeeIo<S> {
    stream: Rc<RefCell<S>>,
    replay: Vec<u8>,
    at: usize,
    conn: Rc<Conn>,
}

impl<S: AsyncRead + Unpin> AsyncRead for TeeIo<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = &mut *self;
        let n = if this.at < this.replay.len() {
            let n = buf.len().min(this.replay.len() - this.at);
            buf[..n].copy_from_slice(&this.replay[this.at..this.at + n]);
            this.at += n;
            if this.at == this.replay.len() {
                this.replay = Vec::new();
                this.at = 0;
            }
            n
        } else {
            match Pin::new(&mut *this.stream.borrow_mut()).poll_read(cx, buf) {
                Poll::Ready(Ok(n)) => n,
                other => return other,
            }
        };
        let conn = &this.conn;
        let mut tee = conn.tee.borrow_mut();
        if conn.wrote.replace(false) {
            tee.clear();
            conn.overflow.set(false);
        }
        if tee.len() + n <= MAX_PARKED_REQUEST {
            tee.extend_from_slice(&buf[..n]);
        } else {
            conn.overflow.set(true);
        }
        Poll::Ready(Ok(n))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for TeeIo<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.conn.wrote.set(true);
        Pin::new(&mut *self.stream.borrow_mut()).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut *self.stream.borrow_mut()).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut *self.stream.borrow_mut()).poll_close(cx)
    }
}

/// Serves one connection until the client closes it, it breaks, or it sits idle. A blocking
/// query that has to wait is parked: hyper's connection is dropped, the request waits with
/// just its bytes, and when it can be answered the bytes are replayed into a new hyper
/// connection on the same socket.
///
/// `socket` is the TCP socket under `stream` (the same one for plain HTTP): while parked,
/// the driver watches it for the client going away.
async fn serve_connection<S>(stream: S, socket: TcpStream, state: Shared)
where
    S: AsyncRead + AsyncWrite + Unpin + 'static,
{
    let stream = Rc::new(RefCell::new(stream));
    let conn = Rc::new(Conn::default());
    // The first request's head is read here, so that a blocking query that has to wait
    // parks before hyper's connection (and its buffers) is ever built.
    let Some(mut replay) = read_first_head(&stream).await else {
        return;
    };
    if let Some(p) = parkable(&state, &replay) {
        match hold(&state, &socket, p).await {
            Some((bytes, deadline)) => {
                conn.resumed.set(Some(deadline));
                replay = bytes;
            }
            None => return,
        }
    }
    loop {
        let parked = conn.parked.listen();
        let io = TeeIo {
            stream: stream.clone(),
            replay: std::mem::take(&mut replay),
            at: 0,
            conn: conn.clone(),
        };
        let service = {
            let (state, conn) = (state.clone(), conn.clone());
            service_fn(move |req: hyper::Request<Incoming>| {
                let (state, conn) = (state.clone(), conn.clone());
                async move { Ok::<_, Infallible>(to_hyper(respond(&state, &conn, req).await)) }
            })
        };
        // Boxed: while a request is parked, nothing of hyper's connection stays allocated.
        let http = Box::pin(
            hyper::server::conn::http1::Builder::new()
                .timer(SmolTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .max_header_size(MAX_HEADER_BYTES)
                .max_buf_size(MAX_HEADER_BYTES.max(8192))
                .keep_alive(true)
                .serve_connection(FuturesIo::new(io), service),
        );
        let outcome = async {
            if let Err(e) = http.await {
                tracing::debug!("HTTP connection ended: {e}");
            }
            None
        }
        .or(async {
            parked.await;
            conn.park.borrow_mut().take()
        })
        .await;
        let Some(p) = outcome else { return };
        *conn.tee.borrow_mut() = Vec::new();
        let Some((bytes, deadline)) = hold(&state, &socket, p).await else {
            return;
        };
        conn.resumed.set(Some(deadline));
        replay = bytes;
    }
}

/// Reads a connection's first request head (and whatever came with it), up to
/// [`MAX_PARKED_REQUEST`] bytes or until [`HEADER_TIMEOUT`]; None if the client closed or
/// stalled.
async fn read_first_head<S: AsyncRead + Unpin>(stream: &Rc<RefCell<S>>) -> Option<Vec<u8>> {
    let mut got = Vec::new();
    let mut chunk = [0u8; 1024];
    let read = async {
        loop {
            let n = futures_lite::future::poll_fn(|cx| {
                Pin::new(&mut *stream.borrow_mut()).poll_read(cx, &mut chunk)
            })
            .await
            .ok()?;
            if n == 0 {
                return None;
            }
            got.extend_from_slice(&chunk[..n]);
            let head_done = got.windows(4).any(|w| w == b"\r\n\r\n");
            if head_done || got.len() >= MAX_PARKED_REQUEST {
                return Some(());
            }
        }
    };
    let done = read
        .or(async {
            Timer::after(HEADER_TIMEOUT).await;
            None
        })
        .await;
    done.map(|()| got)
}

/// A connection's first request, if it is a blocking query (a GET or HEAD, no body) whose
/// data has not passed the client's index yet: parked as it is.
fn parkable(state: &Shared, bytes: &[u8]) -> Option<Parked> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut parsed = httparse::Request::new(&mut headers);
    let len = match parsed.parse(bytes) {
        Ok(httparse::Status::Complete(len)) => len,
        _ => return None,
    };
    let method = match parsed.method? {
        "GET" => http::Method::GET,
        "HEAD" => http::Method::HEAD,
        _ => return None,
    };
    if len != bytes.len() || has_body(parsed.headers) {
        return None;
    }
    let (path, query) = match parsed.path?.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (parsed.path?, None),
    };
    let req = Request::new(method, path, query, Vec::new())
        .with_token_headers(parsed.headers.iter().map(|h| (h.name, h.value)));
    let blocking = req.blocking().ok()??;
    let deadline = deadline_of(blocking);
    let mut s = state.borrow_mut();
    match routes::handle_cached(&mut s, &req) {
        Handled::Read { index, .. } if index <= blocking.index => Some(Parked {
            req,
            blocking,
            deadline,
            bytes: bytes.to_vec(),
        }),
        _ => None,
    }
}

fn has_body(headers: &[httparse::Header<'_>]) -> bool {
    headers.iter().any(|h| {
        h.name.eq_ignore_ascii_case("transfer-encoding")
            || (h.name.eq_ignore_ascii_case("content-length") && h.value != b"0")
    })
}

/// When a blocking query that starts now ends: its wait plus up to wait/16 of jitter, as
/// Consul adds, so that many watchers do not return together.
fn deadline_of(b: Blocking) -> Instant {
    let jitter = b.wait.as_millis() as u64 / 16;
    Instant::now() + b.wait + Duration::from_millis(fastrand::u64(0..=jitter))
}

/// Holds a parked request until it can be answered: its bytes and the end of its wait, to
/// replay; None if the client went away.
async fn hold(state: &Shared, stream: &TcpStream, p: Parked) -> Option<(Vec<u8>, Instant)> {
    state.borrow_mut().metrics.http_parked += 1;
    let answer = wait_parked(state, stream, &p).await;
    state.borrow_mut().metrics.http_parked -= 1;
    answer.then_some((p.bytes, p.deadline))
}

/// Waits until the parked request can be answered (its data passed the client's index, or
/// its time is up): true. False if the client went away meanwhile.
async fn wait_parked(state: &Shared, stream: &TcpStream, p: &Parked) -> bool {
    loop {
        let listener = {
            let mut s = state.borrow_mut();
            match routes::handle_cached(&mut s, &p.req) {
                Handled::Read { index, watch, .. }
                    if index <= p.blocking.index && Instant::now() < p.deadline =>
                {
                    s.watch.listen(watch)
                }
                _ => return true,
            }
        };
        let mut byte = [0u8; 1];
        // Readable while parked: the client closed (0 bytes) or failed, and the wait ends;
        // bytes it sent early are left for hyper, after the answer.
        let peer = async {
            match stream.peek(&mut byte).await {
                Ok(0) | Err(_) => Wake::Gone,
                Ok(_) => Wake::Early,
            }
        };
        let wake = async {
            listener.await;
            Wake::Changed
        }
        .or(async {
            Timer::at(p.deadline).await;
            Wake::Changed
        })
        .or(peer)
        .await;
        match wake {
            Wake::Gone => return false,
            // Pipelined bytes: answer now rather than poll the socket in a loop.
            Wake::Early => return true,
            Wake::Changed => {}
        }
    }
}

enum Wake {
    Changed,
    Early,
    Gone,
}

/// Whether the bytes in `tee` are exactly one request head without a body, for `req`: then
/// replaying them gives hyper the same request again.
fn replayable(tee: &[u8], req: &http::request::Parts) -> bool {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut parsed = httparse::Request::new(&mut headers);
    let Ok(httparse::Status::Complete(len)) = parsed.parse(tee) else {
        return false;
    };
    let target = req.uri.path_and_query().map_or("/", |p| p.as_str());
    len == tee.len()
        && !has_body(parsed.headers)
        && parsed.method == Some(req.method.as_str())
        && parsed.path == Some(target)
}

/// Reads the body (bounded in size and time), routes the request, and holds a blocking
/// read until its data passes the client's index or its wait ends: parked outside hyper
/// when its bytes can be replayed, else waiting here.
/// Answers one request; on a Raft server, reads of replicated data are made consistent
/// first where asked (`?consistent`) or where Consul would ask the leader (a default read on
/// a follower), and say whether a leader is known.
async fn respond(state: &Shared, conn: &Conn, req: hyper::Request<Incoming>) -> Reply {
    let raft = state.borrow().raft.as_ref().and_then(|w| w.handle());
    let Some(raft) = raft else {
        return answer(state, conn, req).await;
    };
    let confirmed = read_consistency(&raft, req.method(), req.uri());
    if let Some(why) = confirmed
        && let Err(e) = raft.read_index().await
    {
        return Reply::error(
            http::StatusCode::INTERNAL_SERVER_ERROR,
            format!("{why} read not possible now: {e}"),
        );
    }
    let mut reply = answer(state, conn, req).await;
    if reply.index.is_some() {
        let status = raft.status();
        let known = status.leader.is_some();
        reply.headers.push((
            "x-consul-knownleader",
            if known { "true" } else { "false" }.into(),
        ));
        // How stale the replica may be: none after a ReadIndex (the leader confirmed it),
        // else the time since this server last heard from its leader.
        let contact = match (confirmed, raft.last_contact()) {
            (Some(_), _) => Some(0),
            (None, c) => c.map(|d| d.as_millis()),
        };
        if let Some(ms) = contact {
            reply.headers.push(("x-consul-lastcontact", ms.to_string()));
        }
    }
    reply
}

/// Whether a request must wait for a ReadIndex: `?consistent` reads of the replicated
/// catalog and KV, and default reads on a follower (Consul sends those to the leader);
/// `?stale` never (it reads this server's replica, as DNS does).
fn read_consistency(
    raft: &crate::cluster::raft::RaftHandle,
    method: &http::Method,
    uri: &http::Uri,
) -> Option<&'static str> {
    if !(method == http::Method::GET || method == http::Method::HEAD) {
        return None;
    }
    let path = uri.path();
    if !["/v1/catalog/", "/v1/health/", "/v1/kv/"]
        .iter()
        .any(|p| path.starts_with(p))
    {
        return None;
    }
    let has = |name: &str| {
        uri.query()
            .is_some_and(|q| form_urlencoded::parse(q.as_bytes()).any(|(k, _)| k == name))
    };
    if has("stale") {
        None
    } else if has("consistent") {
        Some("a consistent")
    } else if !raft.status().is_leader {
        Some("a default (leader)")
    } else {
        None
    }
}

async fn answer(state: &Shared, conn: &Conn, req: hyper::Request<Incoming>) -> Reply {
    let (parts, body) = req.into_parts();
    let too_large = || {
        Reply::error(
            http::StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body over the {MAX_BODY}-byte limit"),
        )
    };
    // A declared length over the limit is refused before the body is invited (no
    // `100 Continue`, nothing read).
    let declared = parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY as u64) {
        return too_large();
    }
    let body = async {
        Limited::new(body, MAX_BODY)
            .collect()
            .await
            .map(|b| b.to_bytes())
    }
    .or(async {
        Timer::after(BODY_TIMEOUT).await;
        Err("timeout".into())
    })
    .await;
    let body: Bytes = match body {
        Ok(b) => b,
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            return too_large();
        }
        Err(e) => {
            return Reply::error(
                http::StatusCode::BAD_REQUEST,
                format!("cannot read the request body: {e}"),
            );
        }
    };
    let req = Request::new(
        parts.method.clone(),
        parts.uri.path(),
        parts.uri.query(),
        body.to_vec(),
    )
    .with_token_headers(
        parts
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_bytes())),
    );
    let blocking = match req.blocking() {
        Ok(b) => b,
        Err(r) => return r,
    };
    state.borrow_mut().metrics.http_requests += 1;
    // A replayed request keeps the end of its wait.
    let deadline = conn.resumed.take().or_else(|| blocking.map(deadline_of));
    loop {
        let handled = routes::handle_cached(&mut state.borrow_mut(), &req);
        let (listener, b, d) = {
            match handled {
                Handled::Reply(r) => return r,
                Handled::Async(f) => return f.await,
                Handled::Read {
                    reply,
                    index,
                    watch,
                } => match (blocking, deadline) {
                    (Some(b), Some(d)) if index <= b.index && Instant::now() < d => {
                        (state.borrow_mut().watch.listen(watch), b, d)
                    }
                    _ => return reply,
                },
            }
        };
        if !conn.overflow.get() && replayable(&conn.tee.borrow(), &parts) {
            let bytes = std::mem::take(&mut *conn.tee.borrow_mut());
            *conn.park.borrow_mut() = Some(Parked {
                req,
                blocking: b,
                deadline: d,
                bytes,
            });
            conn.parked.notify(usize::MAX);
            // The driver drops this future with hyper's connection.
            return std::future::pending().await;
        }
        let timed_out = async {
            listener.await;
            false
        }
        .or(async {
            Timer::at(d).await;
            true
        })
        .await;
        if timed_out {
            // The loop answers with the current data: the deadline has passed.
            continue;
        }
    }
}

fn to_hyper(r: Reply) -> hyper::Response<Full<Bytes>> {
    let mut resp = hyper::Response::new(Full::new(r.body));
    *resp.status_mut() = r.status;
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(r.content_type));
    if let Some(i) = r.index {
        h.insert("x-consul-index", HeaderValue::from(i));
        if !r.headers.iter().any(|(n, _)| *n == "x-consul-knownleader") {
            h.insert("x-consul-knownleader", HeaderValue::from_static("true"));
        }
        if !r.headers.iter().any(|(n, _)| *n == "x-consul-lastcontact") {
            h.insert("x-consul-lastcontact", HeaderValue::from_static("0"));
        }
    }
    if let Some(a) = r.allow {
        h.insert(ALLOW, HeaderValue::from_static(a));
    }
    for (name, value) in r.headers {
        // A value that is not a valid header (it came from our own code) is left out.
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.append(name, v);
        }
    }
    resp
}
