//! Each stream's GStreamer pipeline runs in a worker process of its own, `outpost-media`,
//! installed beside `outpost`; this is the agent's side of it.
//!
//! Why a process: the agent itself never loads GStreamer. A box that serves the catalog
//! and DNS but no stream carries none of GStreamer's libraries (2.4 MiB of its resident
//! memory before, with no stream at all), and a plugin that crashes (a vendor's hardware
//! encoder, a camera driver) takes down its stream's worker, not DNS, the catalog or Raft.
//! The worker is restarted with backoff (1 s doubling to 30 s), the stream `offline` with
//! the reason meanwhile, its viewers kept. The cost is one copy of each encoded frame
//! through a pipe (a few hundred KiB/s) and GStreamer's start-up in the worker (its plugin
//! registry) when a stream is configured.
//!
//! [`Spawned`] is a worker before its pipeline runs: the agent asks it which encoder
//! elements this GStreamer has ([`Spawned::probe`]), then has it build the pipeline
//! ([`Spawned::open`]), and [`Spawned::run`] turns it into a [`Worker`], whose methods
//! mirror the in-process [`PipelineHandle`](super::pipeline::PipelineHandle) without ever
//! waiting on the worker.

pub mod child;
pub mod proto;

use std::cell::RefCell;
use std::path::PathBuf;
use std::process::Stdio;
use std::rc::Rc;
use std::time::{Duration, Instant};

use async_process::{Child, ChildStdin, ChildStdout, Command};
use futures_lite::io::BufReader;
use futures_lite::{AsyncWriteExt, FutureExt};
use smol::LocalExecutor;

use self::proto::{FromWorker, ToWorker};
use super::pipeline::supervisor::{Backoff, BackoffSchedule};
use super::pipeline::{HEALTHY_AFTER, MediaCounters, MediaFrame, PipelineStats, StreamState};
use crate::board::EncoderChoice;
use crate::config::StreamSpec;

/// The worker executable's file name.
pub const PROGRAM: &str = "outpost-media";

/// How long a closed worker gets to set its pipeline to NULL before it is killed.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// How the agent starts workers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkerCommand {
    pub program: PathBuf,
    /// The agent's `log_level`, for the worker's own logging.
    pub log_level: String,
}

impl WorkerCommand {
    /// `outpost-media` in the directory of the running executable.
    pub fn beside_this_executable(log_level: &str) -> Result<WorkerCommand, String> {
        let exe = std::env::current_exe()
            .map_err(|e| format!("cannot find this executable's path: {e}"))?;
        Ok(WorkerCommand {
            program: exe.with_file_name(PROGRAM),
            log_level: log_level.into(),
        })
    }
}

/// A worker process whose pipeline does not run yet.
pub struct Spawned {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    started: Instant,
}

/// Why [`Spawned::open`] failed.
#[derive(Debug, PartialEq, Eq)]
pub enum OpenError {
    /// GStreamer refused the pipeline: another encoder may do.
    Refused(String),
    /// The worker failed (exited, or said something it should not).
    Worker(String),
}

impl Spawned {
    /// Starts a worker for `stream`. Only fails if the program cannot be run.
    pub fn spawn(cmd: &WorkerCommand, stream: &str) -> Result<Spawned, String> {
        let mut child = Command::new(&cmd.program)
            .arg("--log-level")
            .arg(&cmd.log_level)
            .arg(stream)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                format!(
                    "cannot start the media worker {}: {e} (it is installed beside outpost)",
                    cmd.program.display()
                )
            })?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err("the media worker has no pipes".into());
        };
        Ok(Spawned {
            child,
            stdin,
            stdout: BufReader::new(stdout),
            started: Instant::now(),
        })
    }

    async fn send(&mut self, msg: &ToWorker) -> Result<(), String> {
        let bytes = proto::encode(msg).map_err(|e| format!("cannot encode {msg:?}: {e}"))?;
        match self.stdin.write_all(&bytes).await {
            Ok(()) => self.stdin.flush().await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        }
    }

    /// The next message, or why there is none (the worker's exit status if it ended).
    async fn next(&mut self) -> Result<FromWorker, String> {
        match proto::read_async::<FromWorker>(&mut self.stdout).await {
            Ok(Some(m)) => Ok(m),
            Ok(None) => Err(self.exit_reason().await),
            Err(e) => Err(format!("the media worker sent a bad message ({e})")),
        }
    }

    /// Why the worker's stdout ended: it exited, and how.
    async fn exit_reason(&mut self) -> String {
        match self
            .child
            .status()
            .or(async {
                smol::Timer::after(Duration::from_secs(1)).await;
                Err(std::io::Error::other("still running with stdout closed"))
            })
            .await
        {
            Ok(status) => format!("the media worker exited ({status})"),
            Err(e) => format!("the media worker closed its output ({e})"),
        }
    }

    /// A request and its answer, the answer being the next message.
    async fn call(&mut self, msg: &ToWorker) -> Result<FromWorker, String> {
        if let Err(e) = self.send(msg).await {
            // A failed write means it died: say how.
            let reason = self.exit_reason().await;
            return Err(format!("{reason}; writing to it failed: {e}"));
        }
        self.next().await
    }

    /// Which of `names` this GStreamer has (all false where it cannot be initialised).
    pub async fn probe(&mut self, names: &[String]) -> Result<Vec<bool>, String> {
        if names.is_empty() {
            return Ok(Vec::new());
        }
        match self.call(&ToWorker::Probe(names.to_vec())).await? {
            FromWorker::Exists(v) if v.len() == names.len() => Ok(v),
            other => Err(format!(
                "the media worker answered a probe with {}",
                name(&other)
            )),
        }
    }

    /// Builds the pipeline (stopped).
    pub async fn open(
        &mut self,
        spec: &StreamSpec,
        encoder: &EncoderChoice,
    ) -> Result<(), OpenError> {
        let msg = ToWorker::Open {
            spec: spec.clone(),
            encoder: encoder.clone(),
        };
        match self.call(&msg).await.map_err(OpenError::Worker)? {
            FromWorker::Opened(Ok(())) => Ok(()),
            FromWorker::Opened(Err(e)) => Err(OpenError::Refused(e)),
            other => Err(OpenError::Worker(format!(
                "the media worker answered open with {}",
                name(&other)
            ))),
        }
    }

    /// Runs the opened stream on `ex`: frames go to `frames`; a worker that dies is
    /// restarted with `encoder` after backoff.
    pub fn run(
        self,
        cmd: WorkerCommand,
        spec: StreamSpec,
        encoder: EncoderChoice,
        frames: async_channel::Sender<MediaFrame>,
        ex: &LocalExecutor<'static>,
    ) -> Worker {
        let mirror = Rc::new(RefCell::new(Mirror::default()));
        let (tx, rx) = async_channel::unbounded();
        let pump = Pump {
            cmd,
            spec,
            encoder,
            frames,
            mirror: mirror.clone(),
            commands: rx,
            backoff: BackoffSchedule::new(Backoff::default()),
            carried: Carried::default(),
        };
        Worker {
            mirror,
            commands: tx,
            task: ex.spawn(pump.run(self)),
        }
    }

    /// Closes stdin (the worker tears its pipeline down and exits) and waits for the exit,
    /// killing it after [`CLOSE_GRACE`].
    async fn close(mut self) {
        let _ = self.stdin.close().await;
        drop(self.stdin);
        let exited = self
            .child
            .status()
            .or(async {
                smol::Timer::after(CLOSE_GRACE).await;
                Err(std::io::Error::other("timed out"))
            })
            .await;
        if exited.is_err() {
            tracing::warn!("a media worker did not stop within {CLOSE_GRACE:?}; killed");
            let _ = self.child.kill();
            let _ = self.child.status().await;
        }
    }
}

fn name(m: &FromWorker) -> &'static str {
    match m {
        FromWorker::Exists(_) => "Exists",
        FromWorker::Opened(_) => "Opened",
        FromWorker::Frame(_) => "a frame",
        FromWorker::Stats(_) => "Stats",
    }
}

/// A running stream in its worker, seen from the agent.
pub struct Worker {
    mirror: Rc<RefCell<Mirror>>,
    commands: async_channel::Sender<ToWorker>,
    task: smol::Task<()>,
}

/// What the agent knows of a worker's stream: its last numbers, and whether it should run.
#[derive(Default)]
struct Mirror {
    stats: Option<PipelineStats>,
    want_running: bool,
    /// The newest timestamp of a frame forwarded (with [`Carried::pts`] added).
    last_pts: Duration,
}

impl Worker {
    /// Where the stream is (`Stopped` until the worker's first numbers arrive).
    pub fn state(&self) -> StreamState {
        self.stats().state
    }

    /// The stream's numbers, as the worker last sent them (at most [`proto::STATS_EVERY`]
    /// old), counted across worker restarts.
    pub fn stats(&self) -> PipelineStats {
        self.mirror
            .borrow()
            .stats
            .clone()
            .unwrap_or_else(Worker::empty_stats)
    }

    fn empty_stats() -> PipelineStats {
        PipelineStats {
            state: StreamState::Stopped,
            video: MediaCounters::default(),
            audio: MediaCounters::default(),
            fps: 0.0,
            video_bitrate: 0.0,
            audio_bitrate: 0.0,
            width: None,
            height: None,
            starts: 0,
            keyframe_requests: 0,
            last_error: None,
        }
    }

    /// Runs the encoder; a no-op if it runs.
    pub fn start(&self) {
        self.want(true, ToWorker::Start);
    }

    /// Stops the encoder until [`Worker::start`].
    pub fn stop(&self) {
        self.want(false, ToWorker::Stop);
    }

    fn want(&self, running: bool, msg: ToWorker) {
        let mut m = self.mirror.borrow_mut();
        if m.want_running != running {
            m.want_running = running;
            let _ = self.commands.try_send(msg);
        }
    }

    /// A viewer needs a keyframe: the worker asks the encoder or the RTP sender (throttled
    /// to one a second), or sends the frames since the last keyframe again.
    pub fn keyframe_wanted(&self) {
        let _ = self.commands.try_send(ToWorker::KeyframeWanted);
    }

    /// Stops the stream and waits for the worker to exit, without blocking the executor.
    pub async fn close(self) {
        self.commands.close();
        self.task.await;
    }
}

/// Counters of the worker processes before this one, added to its own.
#[derive(Clone, Copy, Debug, Default)]
struct Carried {
    video: MediaCounters,
    audio: MediaCounters,
    starts: u64,
    keyframe_requests: u64,
    /// Added to the new worker's timestamps, so that they go on from the last one.
    pts: Duration,
}

fn add(a: MediaCounters, b: MediaCounters) -> MediaCounters {
    MediaCounters {
        frames: a.frames + b.frames,
        bytes: a.bytes + b.bytes,
        keyframes: a.keyframes + b.keyframes,
        dropped: a.dropped + b.dropped,
    }
}

/// The task that owns the worker process: its messages to the mirror and the frame channel,
/// commands to it, and its restarts.
struct Pump {
    cmd: WorkerCommand,
    spec: StreamSpec,
    encoder: EncoderChoice,
    frames: async_channel::Sender<MediaFrame>,
    mirror: Rc<RefCell<Mirror>>,
    commands: async_channel::Receiver<ToWorker>,
    backoff: BackoffSchedule,
    carried: Carried,
}

/// How one worker process ended.
enum End {
    /// The agent closed the stream.
    Closed,
    /// It died, for this reason.
    Died(String),
}

impl Pump {
    async fn run(mut self, mut worker: Spawned) {
        loop {
            let reason = match self.serve(&mut worker).await {
                End::Closed => return worker.close().await,
                End::Died(reason) => reason,
            };
            tracing::error!("stream {:?}: {reason}", self.spec.name);
            if worker.started.elapsed() >= HEALTHY_AFTER {
                self.backoff.reset();
            }
            self.carry();
            let mut reason = reason;
            worker = loop {
                let delay = self.backoff.next_delay();
                self.offline(format!(
                    "{reason}; restarting it in {} s",
                    delay.as_secs_f32()
                ));
                if !self.wait(delay).await {
                    return;
                }
                match self.respawn().await {
                    Ok(w) => break w,
                    Err(e) => {
                        tracing::error!("stream {:?}: {e}", self.spec.name);
                        reason = e;
                    }
                }
            };
        }
    }

    /// Moves messages both ways until the worker ends or the stream is closed.
    async fn serve(&mut self, worker: &mut Spawned) -> End {
        let Spawned {
            stdin,
            stdout,
            child,
            ..
        } = worker;
        let mirror = &self.mirror;
        let frames = &self.frames;
        let carried = self.carried;
        let mut last_pts = carried.pts;
        let reader = async {
            loop {
                match proto::read_async::<FromWorker>(stdout).await {
                    Ok(Some(FromWorker::Frame(f))) => {
                        let mut f = MediaFrame::from(f);
                        f.pts += carried.pts;
                        last_pts = last_pts.max(f.pts);
                        mirror.borrow_mut().last_pts = last_pts;
                        // A full channel waits: the worker's pipe fills, its pipeline drops.
                        if frames.send(f).await.is_err() {
                            return End::Closed;
                        }
                    }
                    Ok(Some(FromWorker::Stats(s))) => {
                        mirror.borrow_mut().stats = Some(PipelineStats {
                            video: add(carried.video, s.video),
                            audio: add(carried.audio, s.audio),
                            starts: carried.starts + s.starts,
                            keyframe_requests: carried.keyframe_requests + s.keyframe_requests,
                            ..s
                        });
                    }
                    Ok(Some(other)) => {
                        return End::Died(format!(
                            "the media worker sent {} unasked",
                            name(&other)
                        ));
                    }
                    Ok(None) => {
                        let status = child.status().or(async {
                            smol::Timer::after(Duration::from_secs(1)).await;
                            Err(std::io::Error::other("still running with stdout closed"))
                        });
                        return End::Died(match status.await {
                            Ok(s) => format!("the media worker exited ({s})"),
                            Err(e) => format!("the media worker closed its output ({e})"),
                        });
                    }
                    Err(e) => {
                        return End::Died(format!("the media worker sent a bad message ({e})"));
                    }
                }
            }
        };
        let commands = &self.commands;
        let writer = async {
            while let Ok(msg) = commands.recv().await {
                let Ok(bytes) = proto::encode(&msg) else {
                    continue;
                };
                if stdin.write_all(&bytes).await.is_err() || stdin.flush().await.is_err() {
                    // It died: the reader sees its output end and says how.
                    std::future::pending::<()>().await;
                }
            }
            End::Closed
        };
        reader.or(writer).await
    }

    /// Keeps the totals of the worker that ended, for its successor's numbers to go on.
    fn carry(&mut self) {
        let m = self.mirror.borrow();
        if let Some(s) = &m.stats {
            self.carried.video = s.video;
            self.carried.audio = s.audio;
            self.carried.starts = s.starts;
            self.carried.keyframe_requests = s.keyframe_requests;
        }
        // A second's gap: the new pipeline's first frame follows the last one.
        self.carried.pts = m.last_pts + Duration::from_secs(1);
    }

    /// The stream is offline for `reason` (no numbers until a worker sends them).
    fn offline(&self, reason: String) {
        let mut m = self.mirror.borrow_mut();
        let before = m.stats.take();
        let mut s = Worker::empty_stats();
        if let Some(b) = before {
            s = PipelineStats {
                fps: 0.0,
                video_bitrate: 0.0,
                audio_bitrate: 0.0,
                ..b
            };
        }
        s.state = StreamState::Offline {
            reason: reason.clone(),
        };
        s.last_error = Some(reason);
        m.stats = Some(s);
    }

    /// Sleeps `delay`, taking the commands meanwhile (start and stop are in the mirror
    /// already; a keyframe has nobody to ask). False when the stream was closed.
    async fn wait(&self, delay: Duration) -> bool {
        let deadline = Instant::now() + delay;
        loop {
            let command = async { Some(self.commands.recv().await.is_ok()) };
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

    /// A new worker with the stream's pipeline, running if a viewer waits.
    async fn respawn(&self) -> Result<Spawned, String> {
        let mut w = Spawned::spawn(&self.cmd, &self.spec.name)?;
        w.open(&self.spec, &self.encoder)
            .await
            .map_err(|e| match e {
                OpenError::Refused(why) | OpenError::Worker(why) => why,
            })?;
        if self.mirror.borrow().want_running {
            w.send(&ToWorker::Start).await?;
        }
        tracing::info!("stream {:?}: media worker restarted", self.spec.name);
        Ok(w)
    }
}

#[cfg(test)]
mod tests;
