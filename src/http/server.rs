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
use std::rc::Rc;
use std::time::{Duration, Instant};

use async_io::Timer;
use async_net::{TcpListener, TcpStream};
use bytes::Bytes;
use futures_lite::FutureExt;
use http::header::{ALLOW, CONTENT_TYPE, HeaderValue};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use smol::LocalExecutor;
use smol_hyper::rt::{FuturesIo, SmolTimer};

use super::request::{Reply, Request};
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

/// Accepts connections on `listener` forever, serving each on `ex`.
pub async fn serve(listener: TcpListener, state: Shared, ex: Rc<LocalExecutor<'static>>) {
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
        open.set(open.get() + 1);
        let open = open.clone();
        let state = state.clone();
        ex.spawn(async move {
            serve_connection(stream, state).await;
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

/// Serves one connection until the client closes it, it breaks, or it sits idle.
async fn serve_connection(stream: TcpStream, state: Shared) {
    let service = service_fn(move |req: hyper::Request<Incoming>| {
        let state = state.clone();
        async move { Ok::<_, Infallible>(to_hyper(respond(&state, req).await)) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(SmolTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_header_size(MAX_HEADER_BYTES)
        .max_buf_size(MAX_HEADER_BYTES.max(8192))
        .keep_alive(true)
        .serve_connection(FuturesIo::new(stream), service);
    if let Err(e) = conn.await {
        tracing::debug!("HTTP connection ended: {e}");
    }
}

/// Reads the body (bounded in size and time), routes the request, and holds a blocking
/// read until its data passes the client's index or its wait ends.
async fn respond(state: &Shared, req: hyper::Request<Incoming>) -> Reply {
    let (parts, body) = req.into_parts();
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
            return Reply::error(
                http::StatusCode::PAYLOAD_TOO_LARGE,
                format!("request body over the {MAX_BODY}-byte limit"),
            );
        }
        Err(e) => {
            return Reply::error(
                http::StatusCode::BAD_REQUEST,
                format!("cannot read the request body: {e}"),
            );
        }
    };
    let req = Request::new(
        parts.method,
        parts.uri.path(),
        parts.uri.query(),
        body.to_vec(),
    );
    let blocking = match req.blocking() {
        Ok(b) => b,
        Err(r) => return r,
    };
    state.borrow_mut().metrics.http_requests += 1;
    // Consul adds up to wait/16 of jitter so that many watchers do not return together.
    let deadline = blocking.map(|b| {
        let jitter = b.wait.as_millis() as u64 / 16;
        Instant::now() + b.wait + Duration::from_millis(fastrand::u64(0..=jitter))
    });
    loop {
        let (listener, d) = {
            let mut s = state.borrow_mut();
            match routes::handle(&mut s, &req) {
                Handled::Reply(r) => return r,
                Handled::Read {
                    reply,
                    index,
                    watch,
                } => match (blocking, deadline) {
                    (Some(b), Some(d)) if index <= b.index && Instant::now() < d => {
                        (s.watch.listen(watch), d)
                    }
                    _ => return reply,
                },
            }
        };
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
    let mut resp = hyper::Response::new(Full::new(Bytes::from(r.body)));
    *resp.status_mut() = r.status;
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(r.content_type));
    if let Some(i) = r.index {
        h.insert("x-consul-index", HeaderValue::from(i));
        h.insert("x-consul-knownleader", HeaderValue::from_static("true"));
        h.insert("x-consul-lastcontact", HeaderValue::from_static("0"));
    }
    if let Some(a) = r.allow {
        h.insert(ALLOW, HeaderValue::from_static(a));
    }
    resp
}
