//! The HTTP benchmark's peer: the least an HTTP/1.1 server on outpost's stack can do (hyper 1
//! over smol-hyper on one thread's `LocalExecutor`, `TCP_NODELAY`, keep-alive), answering every
//! request with fixed bytes, so `benches/http/bench.sh` can say what outpost's routes, catalog
//! queries and JSON cost on top of the stack itself.
//!
//! ```text
//! hyper_peer --listen 127.0.0.1:18501 --body FILE [--body /v1/some/path=FILE ...]
//! ```
//!
//! `--body FILE` is the answer to any path; `--body PATH=FILE` the answer to that path (the
//! query is ignored). The bench captures outpost's real replies with curl first, so both servers
//! send bodies of the same size, with the same `Content-Type` and `X-Consul-*` headers.
//! A request whose query has `index=` is held, as a Consul blocking query is, for
//! [`HOLD`] before it is answered: the watcher measurement parks its connections there.
//! Prints `peer listening on ADDR` on stderr once it accepts.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use async_io::Timer;
use async_net::TcpListener;
use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderValue};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use smol::LocalExecutor;
use smol_hyper::rt::{FuturesIo, SmolTimer};

/// How long a request with `?index=` is held: Consul's longest blocking wait.
const HOLD: Duration = Duration::from_secs(600);

/// What to answer: per path, else the default.
struct Bodies {
    by_path: HashMap<String, Bytes>,
    default: Bytes,
}

impl Bodies {
    fn for_path(&self, path: &str) -> Bytes {
        self.by_path
            .get(path)
            .cloned()
            .unwrap_or_else(|| self.default.clone())
    }
}

fn usage(problem: &str) -> ! {
    eprintln!(
        "hyper_peer: {problem}\nusage: hyper_peer --listen ADDR --body FILE [--body PATH=FILE ...]"
    );
    std::process::exit(2);
}

fn read(file: &str) -> Bytes {
    match std::fs::read(file) {
        Ok(b) => Bytes::from(b),
        Err(e) => usage(&format!("cannot read body file {file}: {e}")),
    }
}

fn parse_args() -> (SocketAddr, Bodies) {
    let mut listen: Option<SocketAddr> = None;
    let mut bodies = Bodies {
        by_path: HashMap::new(),
        default: Bytes::from_static(b"[]"),
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .unwrap_or_else(|| usage(&format!("{name} needs a value")))
        };
        match a.as_str() {
            "--listen" => {
                let v = value("--listen");
                listen =
                    Some(v.parse().unwrap_or_else(|e| {
                        usage(&format!("--listen {v:?}: {e}: expected IP:PORT"))
                    }));
            }
            "--body" => {
                let v = value("--body");
                match v.split_once('=') {
                    Some((path, file)) if path.starts_with('/') => {
                        bodies.by_path.insert(path.to_string(), read(file));
                    }
                    _ => bodies.default = read(&v),
                }
            }
            other => usage(&format!("unknown argument {other:?}")),
        }
    }
    let listen = listen.unwrap_or_else(|| usage("--listen is required"));
    (listen, bodies)
}

/// Raises the descriptor limit to its hard limit, as outpost does for its watchers.
fn raise_fd_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE)
        && soft < hard
    {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
}

fn main() {
    let (addr, bodies) = parse_args();
    raise_fd_limit();
    let bodies = Rc::new(bodies);
    let ex: Rc<LocalExecutor<'static>> = Rc::new(LocalExecutor::new());
    smol::block_on(ex.run(async {
        let listener = TcpListener::bind(addr)
            .await
            .unwrap_or_else(|e| usage(&format!("cannot listen on {addr}: {e}")));
        let local = listener.local_addr().unwrap_or(addr);
        eprintln!("peer listening on {local}");
        loop {
            let stream = match listener.accept().await {
                Ok((s, _)) => s,
                Err(e) => {
                    eprintln!("accept: {e}");
                    Timer::after(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let bodies = bodies.clone();
            ex.spawn(async move {
                let service = service_fn(move |req: hyper::Request<Incoming>| {
                    let bodies = bodies.clone();
                    async move {
                        let hold = req
                            .uri()
                            .query()
                            .is_some_and(|q| q.split('&').any(|p| p.starts_with("index=")));
                        if hold {
                            Timer::after(HOLD).await;
                        }
                        let mut resp =
                            hyper::Response::new(Full::new(bodies.for_path(req.uri().path())));
                        let h = resp.headers_mut();
                        h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                        h.insert("x-consul-index", HeaderValue::from_static("12"));
                        h.insert("x-consul-knownleader", HeaderValue::from_static("true"));
                        h.insert("x-consul-lastcontact", HeaderValue::from_static("0"));
                        Ok::<_, Infallible>(resp)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .timer(SmolTimer::new())
                    .keep_alive(true)
                    .serve_connection(FuturesIo::new(stream), service)
                    .await;
            })
            .detach();
        }
    }));
}
