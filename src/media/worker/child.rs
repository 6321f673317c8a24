//! The worker's side (`outpost-media STREAM`): one stream's GStreamer pipeline, driven by the
//! messages on stdin, its frames and numbers written to stdout. It ends when stdin closes
//! (the agent closed the stream, or died): the pipeline is set to NULL, the camera released.
//!
//! Three threads write to stdout, one message at a time under a mutex: the main thread
//! (answers), the frame thread (every frame as the pipeline gives it; a full pipe blocks it,
//! so the pipeline's own bounded channel drops and counts frames, as it does in-process) and
//! the stats thread (the numbers when they changed, every [`STATS_EVERY`]).

use std::io::{self, Write};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

use gstreamer as gst;

use super::proto::{self, FromWorker, STATS_EVERY, ToWorker};
use crate::media::pipeline::{KeyframeRequest, MediaFrame, Pipeline, PipelineHandle};

/// Frames the pipeline may hold for the frame thread (about a second of 30 fps with Opus).
const PIPELINE_CHANNEL: usize = 64;

/// The worker's `main`: `outpost-media [--log-level LEVEL] STREAM` (the stream's name is
/// for `ps` and the logs).
pub fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let mut level = String::from("info");
    let mut stream = None;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--log-level" => level = args.next().unwrap_or(level),
            _ if stream.is_none() && !a.starts_with('-') => stream = Some(a),
            _ => {
                eprintln!(
                    "outpost-media: unexpected argument {a:?}; usage: outpost-media [--log-level LEVEL] STREAM (the agent starts it; it reads its orders on stdin)"
                );
                return ExitCode::from(2);
            }
        }
    }
    let Some(stream) = stream else {
        eprintln!(
            "outpost-media: no stream named; usage: outpost-media [--log-level LEVEL] STREAM (the agent starts it)"
        );
        return ExitCode::from(2);
    };
    crate::logging::init(&level);
    let out = Arc::new(Mutex::new(io::stdout()));
    match serve(&stream, &mut io::stdin().lock(), &out) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("media worker of stream {stream:?}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Writes one message; false when the agent is gone (the main thread then sees stdin end).
fn send(out: &Mutex<io::Stdout>, msg: &FromWorker) -> bool {
    let bytes = match proto::encode(msg) {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!("media worker: a message cannot be encoded ({e}); dropped");
            return true;
        }
    };
    let mut out = match out.lock() {
        Ok(o) => o,
        Err(poisoned) => poisoned.into_inner(),
    };
    out.write_all(&bytes).and_then(|()| out.flush()).is_ok()
}

/// The stream while it is open.
struct Open {
    handle: Arc<PipelineHandle>,
    stop_stats: Arc<AtomicBool>,
    stats: Option<thread::JoinHandle<()>>,
    forward: Option<thread::JoinHandle<()>>,
}

fn serve(
    stream: &str,
    input: &mut impl io::Read,
    out: &Arc<Mutex<io::Stdout>>,
) -> Result<(), String> {
    let mut open: Option<Open> = None;
    let result = loop {
        let msg = match proto::read::<ToWorker>(input) {
            Ok(Some(m)) => m,
            Ok(None) => break Ok(()),
            Err(e) => break Err(format!("the agent sent a bad message ({e}); stopping")),
        };
        match msg {
            ToWorker::Probe(names) => {
                let ready = gst::init().is_ok();
                let exists = names
                    .iter()
                    .map(|n| ready && gst::ElementFactory::find(n).is_some())
                    .collect();
                send(out, &FromWorker::Exists(exists));
            }
            ToWorker::Open { spec, encoder } => {
                if open.is_some() {
                    send(
                        out,
                        &FromWorker::Opened(Err(format!("stream {stream:?} is open already"))),
                    );
                    continue;
                }
                let (tx, rx) = async_channel::bounded(PIPELINE_CHANNEL);
                match Pipeline::new(&spec, &encoder).and_then(|p| p.start_stopped(tx)) {
                    Ok(handle) => {
                        send(out, &FromWorker::Opened(Ok(())));
                        open = Some(run(handle, rx, out));
                    }
                    Err(e) => {
                        send(out, &FromWorker::Opened(Err(e.to_string())));
                    }
                }
            }
            ToWorker::Start => open.iter().for_each(|o| o.handle.start()),
            ToWorker::Stop => open.iter().for_each(|o| o.handle.stop()),
            ToWorker::KeyframeWanted => {
                if let Some(o) = &open
                    && o.handle.request_keyframe() == KeyframeRequest::Unavailable
                {
                    // An RTP source without a way to ask for a keyframe: the last one kept.
                    for f in o.handle.gop() {
                        send(out, &FromWorker::Frame((&f).into()));
                    }
                }
            }
        }
    };
    if let Some(o) = open {
        o.stop_stats.store(true, Ordering::Relaxed);
        // The stats thread holds the other reference until it sees the flag.
        if let Some(t) = o.stats {
            let _ = t.join();
        }
        // Dropping the last handle sets the pipeline to NULL and joins its supervisor,
        // which closes the frame channel and so ends the frame thread.
        drop(o.handle);
        if let Some(t) = o.forward {
            let _ = t.join();
        }
    }
    result
}

/// Starts the stats and frame threads of a freshly built pipeline.
fn run(
    handle: PipelineHandle,
    frames: async_channel::Receiver<MediaFrame>,
    out: &Arc<Mutex<io::Stdout>>,
) -> Open {
    let handle = Arc::new(handle);
    let stop_stats = Arc::new(AtomicBool::new(false));
    let stats = {
        let (handle, stop, out) = (handle.clone(), stop_stats.clone(), out.clone());
        thread::Builder::new().name("stats".into()).spawn(move || {
            let mut last = None;
            while !stop.load(Ordering::Relaxed) {
                let now = handle.stats();
                if last.as_ref() != Some(&now) {
                    if !send(&out, &FromWorker::Stats(now.clone())) {
                        break;
                    }
                    last = Some(now);
                }
                thread::sleep(STATS_EVERY);
            }
        })
    };
    let forward = {
        let out = out.clone();
        thread::Builder::new().name("frames".into()).spawn(move || {
            while let Ok(f) = frames.recv_blocking() {
                if !send(&out, &FromWorker::Frame((&f).into())) {
                    break;
                }
            }
        })
    };
    let spawned = |t: io::Result<thread::JoinHandle<()>>| {
        t.map_err(|e| tracing::error!("media worker: no thread: {e}"))
            .ok()
    };
    Open {
        handle,
        stop_stats,
        stats: spawned(stats),
        forward: spawned(forward),
    }
}
