//! Live video runs in a process of its own, `outpost-media`, installed beside `outpost`;
//! this is the agent's side of it.
//!
//! The media process runs the [`MediaHub`](super::hub::MediaHub): every stream's GStreamer
//! pipeline and the WebRTC gateway. The agent starts it when the config has a stream, sends
//! it each config's streams and board ([`MediaProcess::apply`]), forwards WHEP requests
//! to it ([`MediaProcess::whep`]), and shows the streams' state it reports
//! ([`MediaProcess::status`]).
//!
//! Why a process:
//! - **Memory.** The agent itself never loads GStreamer or the WebRTC stack. A server that
//!   runs the catalog, DNS and Raft but no stream carries none of it: 9.3 MiB resident
//!   idle with the gateway linked in and 11.9 MiB with GStreamer loaded as well, against
//!   8.6 MiB without either (the same build, x86_64; see the README).
//! - **Isolation.** A crash in media (a vendor's hardware encoder plugin, a camera
//!   driver, or the WebRTC stack, which parses what browsers send) ends the media process,
//!   never DNS, the catalog or Raft. The agent restarts it with backoff (1 s doubling to
//!   30 s) and gives it the streams again; meanwhile every stream is `offline` with the
//!   reason and WHEP answers 503. Viewers of a crashed process reconnect (their WebRTC
//!   sessions were in it).
//!
//! The costs: one more process when streams are configured (about 6 MiB more RSS than the
//! same streams in the agent), 3.6 MB more on disk, and a WHEP request crosses a pipe.
//! Frames never cross it: the process encodes and sends them.
//!
//! Nobody watching for the idle timeout ([`MediaProcess::set_idle_timeout`], the config's
//! `media_idle_timeout`), the process is stopped as the agent stops it (stdin closed): not
//! a failure, so no restart follows. The streams show `idle` meanwhile (or `offline` for a
//! camera whose device node is missing), and the next command (a WHEP request, a new
//! config) starts it again: the config first, then the requests that waited.
//!
//! [`MediaProcess`] owns the process's runs: it restarts the process after it dies, keeps
//! what the process last said, and never waits on it.

pub mod child;
pub mod proto;

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::rc::Rc;
use std::time::{Duration, Instant};

use async_process::{Child, ChildStdin, ChildStdout, Command};
use futures_lite::io::BufReader;
use futures_lite::{AsyncWriteExt, FutureExt};
use smol::LocalExecutor;

use self::proto::{FromMedia, ToMedia, WhepRequest, WireReply};
use super::pipeline::HEALTHY_AFTER;
use super::pipeline::supervisor::{Backoff, BackoffSchedule};
use crate::agent::StreamStatus;
use crate::board::{EncoderPick, Selection};
use crate::config::StreamSpec;
use crate::media::whep::MAX_OFFER;

/// The media process's file name.
pub const PROGRAM: &str = "outpost-media";

/// How long a stopped media process gets to set its pipelines to NULL before it is killed.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// How often a running media process is checked for viewers (see
/// [`MediaProcess::set_idle_timeout`]).
const IDLE_CHECK: Duration = Duration::from_secs(1);

/// How long a WHEP request waits for the media process's answer.
const WHEP_TIMEOUT: Duration = Duration::from_secs(10);

/// How the agent starts its media process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MediaCommand {
    pub program: PathBuf,
    /// Where the WebRTC gateway's UDP socket goes (the agent's bind address).
    pub bind: IpAddr,
    /// The agent's `log_level`, for the process's own logging.
    pub log_level: String,
}

impl MediaCommand {
    /// `outpost-media` in the directory of the running executable.
    pub fn beside_this_executable(bind: IpAddr, log_level: &str) -> Result<MediaCommand, String> {
        let exe = std::env::current_exe()
            .map_err(|e| format!("cannot find this executable's path: {e}"))?;
        Ok(MediaCommand {
            program: exe.with_file_name(PROGRAM),
            bind,
            log_level: log_level.into(),
        })
    }
}

/// One run of the media process.
struct Spawned {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    started: Instant,
}

impl Spawned {
    /// Starts the process. Only fails if the program cannot be run.
    fn spawn(cmd: &MediaCommand) -> Result<Spawned, String> {
        let mut child = Command::new(&cmd.program)
            .arg("--bind")
            .arg(cmd.bind.to_string())
            .arg("--log-level")
            .arg(&cmd.log_level)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                format!(
                    "cannot start the media process {}: {e} (it is installed beside outpost)",
                    cmd.program.display()
                )
            })?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err("the media process has no pipes".into());
        };
        Ok(Spawned {
            child,
            stdin,
            stdout: BufReader::new(stdout),
            started: Instant::now(),
        })
    }

    /// Why the process's output ended: it exited, and how.
    async fn exit_reason(child: &mut Child) -> String {
        match exit_within(child, Duration::from_secs(1)).await {
            Some(status) => format!("the media process exited ({status})"),
            None => "the media process closed its output (no exit status within 1 s)".into(),
        }
    }

    /// Closes stdin (the process stops its streams and exits) and waits for the exit,
    /// killing it after [`CLOSE_GRACE`].
    async fn close(mut self) {
        let _ = self.stdin.close().await;
        drop(self.stdin);
        if exit_within(&mut self.child, CLOSE_GRACE).await.is_none() {
            tracing::warn!("the media process did not stop within {CLOSE_GRACE:?}; killed");
            let _ = self.child.kill();
            let _ = self.child.status().await;
        }
    }
}

/// How `child` exited, if it does within `limit` (`None` too if its status cannot be read).
async fn exit_within(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    async { child.status().await.ok() }
        .or(async {
            smol::Timer::after(limit).await;
            None
        })
        .await
}

/// Writes one message to the process; false when it cannot be written (the process died,
/// or, never in practice, the message is above [`proto::MAX_MESSAGE`]: said in the log).
async fn write(stdin: &mut ChildStdin, msg: &ToMedia) -> bool {
    let bytes = match proto::encode(msg) {
        Ok(b) => b,
        Err(e) => {
            // Offers are capped at 64 KiB before they get here; a config is far smaller.
            tracing::error!("media: a message for the media process is dropped: {e}");
            return true;
        }
    };
    stdin.write_all(&bytes).await.is_ok() && stdin.flush().await.is_ok()
}

/// The agent's media process: the streams' state as it last said, and the way to it.
pub struct MediaProcess {
    inner: Rc<Inner>,
    task: RefCell<Option<smol::Task<()>>>,
}

struct Inner {
    cmd: MediaCommand,
    commands: async_channel::Sender<ToMedia>,
    commands_rx: async_channel::Receiver<ToMedia>,
    mirror: RefCell<Mirror>,
    next_id: Cell<u64>,
}

#[derive(Default)]
struct Mirror {
    streams: BTreeMap<String, StreamStatus>,
    encoders: Vec<EncoderPick>,
    /// WHEP requests waiting for their answers, by id.
    pending: HashMap<u64, async_channel::Sender<WireReply>>,
    /// The last config (the streams, the board as JSON), given again to a restarted process.
    config: Option<(Vec<StreamSpec>, String)>,
    /// Why there is no media process now, if there is none.
    down: Option<String>,
    /// Stopped because nobody watched (not a failure): the next command starts it again.
    asleep: bool,
    /// How long the process runs while nobody watches before it is stopped (`None`: never).
    idle_timeout: Option<Duration>,
    /// When the process last had a viewer or a WHEP request (or started).
    active: Option<Instant>,
}

impl Mirror {
    /// The last config as the process takes it.
    fn apply(&self) -> Option<ToMedia> {
        let (streams, board) = self.config.clone()?;
        Some(ToMedia::Apply { streams, board })
    }

    fn configured(&self, stream: &str) -> bool {
        self.spec(stream).is_some()
    }

    fn spec(&self, stream: &str) -> Option<&StreamSpec> {
        let (streams, _) = self.config.as_ref()?;
        streams.iter().find(|s| s.name == stream)
    }

    /// Whether the process has been without a viewer and without a WHEP request for its
    /// idle timeout.
    fn idle(&self, now: Instant) -> bool {
        let (Some(limit), Some(active)) = (self.idle_timeout, self.active) else {
            return false;
        };
        self.pending.is_empty()
            && self.streams.values().all(|s| s.viewers == 0)
            && now.saturating_duration_since(active) >= limit
    }

    /// The process is stopped for want of viewers: the streams are idle (nothing runs),
    /// but for those that cannot run at all; what they encode with is kept.
    fn fall_asleep(&mut self) {
        self.asleep = true;
        for s in self.streams.values_mut() {
            if s.state != "unavailable" {
                *s = StreamStatus {
                    state: "idle",
                    encoder: std::mem::take(&mut s.encoder),
                    encoder_hardware: s.encoder_hardware,
                    encoder_reason: std::mem::take(&mut s.encoder_reason),
                    ..StreamStatus::initial()
                };
            }
        }
    }
}

impl MediaProcess {
    /// Starts the process (and restarts it whenever it dies, or when it is wanted again
    /// after an idle stop) on `ex`.
    pub fn start(cmd: MediaCommand, ex: &LocalExecutor<'static>) -> Rc<MediaProcess> {
        let (tx, rx) = async_channel::unbounded();
        let inner = Rc::new(Inner {
            cmd,
            commands: tx,
            commands_rx: rx,
            mirror: RefCell::new(Mirror {
                down: Some("the media process is starting".into()),
                ..Mirror::default()
            }),
            next_id: Cell::new(1),
        });
        let task = ex.spawn(inner.clone().run());
        Rc::new(MediaProcess {
            inner,
            task: RefCell::new(Some(task)),
        })
    }

    /// Runs `streams` with the encoders of `board` (see
    /// [`MediaHub::apply`](super::hub::MediaHub::apply)).
    pub fn apply(&self, streams: &[StreamSpec], board: &Selection) {
        let board = match serde_json::to_string(board) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!("media: the board cannot be written for the media process: {e}");
                return;
            }
        };
        let msg = {
            let mut m = self.inner.mirror.borrow_mut();
            m.config = Some((streams.to_vec(), board));
            m.apply()
        };
        if let Some(msg) = msg {
            let _ = self.inner.commands.try_send(msg);
        }
    }

    /// How long the process may run while no stream has a viewer: then it is stopped, and
    /// the next WHEP request (or config) starts it again. `None`: it keeps running.
    pub fn set_idle_timeout(&self, timeout: Option<Duration>) {
        self.inner.mirror.borrow_mut().idle_timeout = timeout;
    }

    /// The media process's answer to a WHEP request; `413` for an offer above
    /// [`MAX_OFFER`], `503` with the reason while there is no process, `504` if it does not
    /// answer within 10 s.
    pub fn whep(
        &self,
        request: WhepRequest,
    ) -> impl std::future::Future<Output = WireReply> + use<> {
        let inner = self.inner.clone();
        // An offer too big to read is refused here: it never crosses the pipe.
        let too_big = (request.body.len() > MAX_OFFER).then(|| {
            text_reply(
                413,
                &format!(
                    "the offer has {} bytes; at most {MAX_OFFER} are read",
                    request.body.len()
                ),
            )
        });
        let down = inner.mirror.borrow().down.clone();
        let (tx, rx) = async_channel::bounded(1);
        let id = inner.next_id.get();
        if down.is_none() && too_big.is_none() {
            inner.next_id.set(id + 1);
            inner.mirror.borrow_mut().pending.insert(id, tx);
            let _ = inner.commands.try_send(ToMedia::Whep { id, request });
        }
        async move {
            if let Some(r) = too_big {
                return r;
            }
            if let Some(reason) = down {
                return unavailable(&reason);
            }
            let reply = async { rx.recv().await.ok() }
                .or(async {
                    smol::Timer::after(WHEP_TIMEOUT).await;
                    None
                })
                .await;
            inner.mirror.borrow_mut().pending.remove(&id);
            match reply {
                Some(r) => r,
                None => match inner.mirror.borrow().down.clone() {
                    Some(reason) => unavailable(&reason),
                    None => text_reply(504, "the media process did not answer in time"),
                },
            }
        }
    }

    /// What `stream` is doing, as the media process last said: `offline` with the reason
    /// while the process is down, `starting` until the process has it, `idle` while it is
    /// stopped for want of viewers; `None` for a stream that is not configured.
    pub fn status(&self, stream: &str) -> Option<StreamStatus> {
        let m = self.inner.mirror.borrow();
        if let Some(s) = m.streams.get(stream) {
            let mut s = s.clone();
            // Asleep, nothing looks at the cameras: the device nodes tell.
            if m.asleep
                && s.state == "idle"
                && let Some(reason) = m.spec(stream).and_then(super::absent_camera)
            {
                s.state = "offline";
                s.reason = reason;
            }
            return Some(s);
        }
        if !m.configured(stream) {
            return None;
        }
        Some(match &m.down {
            Some(reason) => StreamStatus {
                state: "offline",
                reason: reason.clone(),
                ..StreamStatus::initial()
            },
            None => StreamStatus {
                state: "starting",
                ..StreamStatus::initial()
            },
        })
    }

    /// The encoder each codec gets on this board (empty until the media process built a
    /// stream).
    pub fn encoders(&self) -> Vec<EncoderPick> {
        self.inner.mirror.borrow().encoders.clone()
    }

    /// Stops the streams and the process, waiting for it without blocking the executor.
    pub async fn close(&self) {
        self.inner.commands.close();
        let task = self.task.borrow_mut().take();
        if let Some(t) = task {
            t.await;
        }
    }
}

/// `503` while there is no media process, and why.
fn unavailable(reason: &str) -> WireReply {
    text_reply(503, &format!("streams are unavailable: {reason}"))
}

fn text_reply(status: u16, message: &str) -> WireReply {
    WireReply {
        status,
        headers: vec![("content-type".into(), crate::media::whep::TEXT.to_string())],
        body: format!("{message}\n").into_bytes(),
    }
}

/// How one run ended.
enum End {
    /// The agent closed it.
    Closed,
    /// Nobody watched for the idle timeout.
    Idle,
    /// It died, for this reason.
    Died(String),
}

impl Inner {
    async fn run(self: Rc<Inner>) {
        let mut backoff = BackoffSchedule::new(Backoff::default());
        // The command that woke a sleeping process.
        let mut wake = None;
        loop {
            // A request that woke it is forwarded to this run or, if it cannot start,
            // refused with the others (the sender of each waiting request is dropped).
            let woken_by = wake.take();
            let reason = match Spawned::spawn(&self.cmd) {
                Ok(mut p) => {
                    // What waits in the queue is older than this process: configs the one
                    // below supersedes, and WHEP requests that came while it slept (while
                    // it is down they are refused instead), sent after it.
                    let requests: Vec<ToMedia> = woken_by
                        .into_iter()
                        .chain(std::iter::from_fn(|| self.commands_rx.try_recv().ok()))
                        .filter(|c| matches!(c, ToMedia::Whep { .. }))
                        .collect();
                    let apply = self.mirror.borrow().apply();
                    let mut sent = match apply {
                        Some(a) => write(&mut p.stdin, &a).await,
                        None => true,
                    };
                    for r in &requests {
                        sent = sent && write(&mut p.stdin, r).await;
                    }
                    {
                        let mut m = self.mirror.borrow_mut();
                        m.down = None;
                        m.asleep = false;
                        m.active = Some(Instant::now());
                    }
                    let end = if sent {
                        self.serve(&mut p).await
                    } else {
                        End::Died(Spawned::exit_reason(&mut p.child).await)
                    };
                    match end {
                        End::Closed => return p.close().await,
                        End::Idle => {
                            tracing::info!(
                                "media: no viewer for {:?}; the media process stops until the next one",
                                self.mirror.borrow().idle_timeout.unwrap_or_default()
                            );
                            self.mirror.borrow_mut().fall_asleep();
                            p.close().await;
                            backoff.reset();
                            match self.commands_rx.recv().await {
                                Ok(command) => wake = Some(command),
                                Err(_) => return,
                            }
                            tracing::info!("media: starting the media process again");
                            continue;
                        }
                        End::Died(reason) => {
                            if p.started.elapsed() >= HEALTHY_AFTER {
                                backoff.reset();
                            }
                            reason
                        }
                    }
                }
                Err(e) => e,
            };
            tracing::error!("media: {reason}");
            let delay = backoff.next_delay();
            {
                let mut m = self.mirror.borrow_mut();
                // Waiting requests get their 503 now (their senders are gone).
                m.pending.clear();
                m.streams.clear();
                m.down = Some(format!(
                    "{reason}; restarting it in {} s",
                    delay.as_secs_f32()
                ));
            }
            if !self.wait(delay).await {
                return;
            }
        }
    }

    /// Moves messages both ways until the process ends or the agent closes it.
    async fn serve(&self, p: &mut Spawned) -> End {
        let Spawned {
            stdin,
            stdout,
            child,
            ..
        } = p;
        let reader = async {
            loop {
                match proto::read_async::<FromMedia>(stdout).await {
                    Ok(Some(FromMedia::Whep { id, reply })) => {
                        let mut m = self.mirror.borrow_mut();
                        m.active = Some(Instant::now());
                        let waiting = m.pending.remove(&id);
                        if let Some(tx) = waiting {
                            let _ = tx.try_send(reply);
                        }
                    }
                    Ok(Some(FromMedia::Status { streams, encoders })) => {
                        let mut m = self.mirror.borrow_mut();
                        // Watched, or the last viewer just left: the idle time starts now.
                        let watched =
                            |s: &BTreeMap<String, StreamStatus>| s.values().any(|s| s.viewers > 0);
                        if watched(&streams) || watched(&m.streams) {
                            m.active = Some(Instant::now());
                        }
                        m.streams = streams;
                        m.encoders = encoders;
                    }
                    Ok(None) => return End::Died(Spawned::exit_reason(child).await),
                    Err(e) => {
                        return End::Died(format!("the media process sent a bad message ({e})"));
                    }
                }
            }
        };
        let writer = async {
            while let Ok(msg) = self.commands_rx.recv().await {
                if !write(stdin, &msg).await {
                    // It died: the reader sees its output end and says how.
                    std::future::pending::<()>().await;
                }
            }
            End::Closed
        };
        // Looked at every second; a config may change the timeout meanwhile. A request
        // waiting in the queue counts as activity.
        let idle = async {
            loop {
                smol::Timer::after(IDLE_CHECK).await;
                if self.commands_rx.is_empty() && self.mirror.borrow().idle(Instant::now()) {
                    return End::Idle;
                }
            }
        };
        reader.or(writer).or(idle).await
    }

    /// Sleeps `delay`, dropping the commands meanwhile (the config is kept in the mirror
    /// and given to the next process; WHEP requests were answered 503). False when the
    /// agent closed it.
    async fn wait(&self, delay: Duration) -> bool {
        let deadline = Instant::now() + delay;
        loop {
            let command = async { Some(self.commands_rx.recv().await.is_ok()) };
            let timer = async {
                smol::Timer::at(deadline).await;
                None
            };
            match command.or(timer).await {
                None => return true,
                Some(true) => continue,
                Some(false) => return false,
            }
        }
    }
}

#[cfg(test)]
mod tests;
