//! The media process's side (`outpost-media --bind IP`): the [`MediaHub`] (every stream's
//! GStreamer pipeline and the WebRTC gateway) on a single-threaded executor, driven by the
//! messages on stdin, answering on stdout. It ends when stdin closes (the agent stopped, or
//! died): the pipelines are set to NULL, the cameras released. SIGTERM and SIGINT are
//! ignored: they are the agent's to act on.

use std::collections::BTreeMap;
use std::io;
use std::net::IpAddr;
use std::process::ExitCode;
use std::rc::Rc;

use futures_lite::{AsyncWriteExt, FutureExt};
use nix::sys::signal::{SigHandler, Signal, signal};
use smol::{LocalExecutor, Unblock};

use super::proto::{self, FromMedia, STATUS_EVERY, ToMedia, WhepRequest};
use crate::agent::StreamStatus;
use crate::board::Selection;
use crate::config::StreamSpec;
use crate::media::hub::MediaHub;
use crate::media::whep::WhepReply;

const USAGE: &str = "usage: outpost-media --bind IP [--log-level LEVEL] (the agent starts it; it reads its orders on stdin)";

/// The media process's `main`.
pub fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let mut level = String::from("info");
    let mut bind = None;
    while let Some(a) = args.next() {
        match (a.as_str(), args.next()) {
            ("--log-level", Some(l)) => level = l,
            ("--bind", Some(ip)) => match ip.parse::<IpAddr>() {
                Ok(ip) => bind = Some(ip),
                Err(e) => {
                    eprintln!("outpost-media: --bind {ip:?}: {e}; {USAGE}");
                    return ExitCode::from(2);
                }
            },
            _ => {
                eprintln!("outpost-media: unexpected argument {a:?}; {USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    let Some(bind) = bind else {
        eprintln!("outpost-media: no --bind; {USAGE}");
        return ExitCode::from(2);
    };
    crate::logging::init(&level);
    // The agent stops this process by closing its stdin, after which the pipelines are torn
    // down cleanly. The service manager's SIGTERM (sent to the whole unit) and a terminal's
    // Ctrl-C (to the whole process group) are for the agent: ignored here, so that the agent
    // does not see its media process die first and restart it while it stops.
    for sig in [Signal::SIGTERM, Signal::SIGINT] {
        // SAFETY: SIG_IGN installs no handler code; nothing else sets these dispositions.
        if let Err(e) = unsafe { signal(sig, SigHandler::SigIgn) } {
            tracing::warn!("media process: cannot ignore {sig}: {e}");
        }
    }
    let ex = Rc::new(LocalExecutor::new());
    match smol::block_on(ex.run(serve(bind, ex.clone()))) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("media process: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The streams' hub, or why there is none (then every stream is unavailable for that).
type Hub = Result<Rc<MediaHub>, String>;

async fn serve(bind: IpAddr, ex: Rc<LocalExecutor<'static>>) -> Result<(), String> {
    let mut key = [0u8; 32];
    let hub: Hub = match crate::agent::os_random(&mut key) {
        Ok(()) => MediaHub::start(bind, key, &ex).await,
        Err(e) => Err(format!("no random bytes for WHEP session IDs: {e}")),
    };
    if let Err(e) = &hub {
        tracing::error!("media: {e}; streams are unavailable");
    }
    let (out_tx, out_rx) = async_channel::bounded::<FromMedia>(64);
    // One writer, so that messages never interleave.
    let writer = ex.spawn(async move {
        let mut out = Unblock::new(io::stdout());
        while let Ok(msg) = out_rx.recv().await {
            let Ok(bytes) = proto::encode(&msg) else {
                tracing::warn!("media process: a message cannot be encoded; dropped");
                continue;
            };
            if out.write_all(&bytes).await.is_err() || out.flush().await.is_err() {
                break;
            }
        }
    });
    let configured: Rc<std::cell::RefCell<Vec<StreamSpec>>> = Rc::default();
    let status = {
        let (hub, out, configured) = (hub.clone(), out_tx.clone(), configured.clone());
        ex.spawn(async move {
            let mut last = None;
            loop {
                let now = status_of(&hub, &configured.borrow());
                if last.as_ref() != Some(&now) {
                    if out.send(now.clone()).await.is_err() {
                        break;
                    }
                    last = Some(now);
                }
                smol::Timer::after(STATUS_EVERY).await;
            }
        })
    };
    let mut input = Unblock::new(io::stdin());
    let result = loop {
        let msg = match proto::read_async::<ToMedia>(&mut input).await {
            Ok(Some(m)) => m,
            Ok(None) => break Ok(()),
            Err(e) => break Err(format!("the agent sent a bad message ({e}); stopping")),
        };
        // One message at a time: a WHEP request that follows a config sees it applied.
        match msg {
            ToMedia::Apply { streams, board } => {
                let board = match serde_json::from_str::<Selection>(&board) {
                    Ok(b) => b,
                    Err(e) => break Err(format!("the agent sent a board that does not read: {e}")),
                };
                *configured.borrow_mut() = streams.clone();
                if let Ok(h) = &hub {
                    h.apply(&streams, &board).await;
                }
                let now = status_of(&hub, &configured.borrow());
                let _ = out_tx.send(now).await;
            }
            ToMedia::Whep { id, request } => {
                let reply = whep(&hub, &request);
                // The state first, so that the agent shows the new viewer (or the one that
                // left) by the time it answers.
                let now = status_of(&hub, &configured.borrow());
                let _ = out_tx.send(now).await;
                let _ = out_tx
                    .send(FromMedia::Whep {
                        id,
                        reply: reply.into(),
                    })
                    .await;
            }
        }
    };
    // Stdin closed: stop the streams (pipelines to NULL, threads joined) before leaving.
    status.cancel().await;
    if let Ok(h) = &hub {
        h.close().await;
    }
    drop(out_tx);
    let _ = writer
        .or(async {
            smol::Timer::after(std::time::Duration::from_secs(1)).await;
        })
        .await;
    result
}

fn whep(hub: &Hub, r: &WhepRequest) -> WhepReply {
    match hub {
        Ok(h) => match http::Method::from_bytes(r.method.as_bytes()) {
            Ok(method) => h.whep(&method, &r.path, r.content_type.as_deref(), &r.body),
            Err(_) => WhepReply::error(http::StatusCode::METHOD_NOT_ALLOWED, "no such method"),
        },
        Err(e) => WhepReply::error(
            http::StatusCode::SERVICE_UNAVAILABLE,
            format!("this stream is unavailable: {e}"),
        ),
    }
}

/// What the agent is told: every configured stream's state, and the encoders.
fn status_of(hub: &Hub, configured: &[StreamSpec]) -> FromMedia {
    match hub {
        Ok(h) => FromMedia::Status {
            streams: h.statuses(),
            encoders: h.encoders(),
        },
        Err(e) => FromMedia::Status {
            streams: configured
                .iter()
                .map(|s| {
                    let status = StreamStatus {
                        state: "unavailable",
                        reason: e.clone(),
                        ..StreamStatus::initial()
                    };
                    (s.name.clone(), status)
                })
                .collect::<BTreeMap<_, _>>(),
            encoders: Vec::new(),
        },
    }
}
