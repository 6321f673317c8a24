//! The only file that calls GStreamer: the supervisor thread that runs the [`Supervisor`]
//! core against real pipelines, the appsink callbacks, the handle the caller holds.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_video as gst_video;

use super::describe::{AUDIO_SINK, Description, RTP_VIDEO_SRC, VIDEO_SINK};
use super::gop::Gop;
use super::meter::RateMeter;
use super::supervisor::{Action, Quiet, Supervisor, SupervisorConfig};
use super::throttle::{KeyframeThrottle, Throttled};
use super::wire;
use super::{
    HEALTHY_AFTER, KeyframeRequest, MediaCounters, MediaFrame, MediaKind, Pipeline, PipelineError,
    PipelineStats, StreamState,
};
use crate::config::stream::{StreamSource, VideoCodec};

/// Window of the fps and bitrate figures.
const RATE_WINDOW: Duration = Duration::from_secs(2);

/// A running stream. Dropping it stops the stream: the pipeline goes to NULL, the supervisor
/// thread ends and is joined (see the module's "Threads").
#[derive(Debug)]
pub struct PipelineHandle {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    /// Closed when the supervisor thread has torn everything down.
    done: async_channel::Receiver<()>,
    launch: String,
}

/// What the caller's thread, the supervisor and the streaming threads share.
#[derive(Debug)]
struct Shared {
    name: String,
    codec: VideoCodec,
    /// Time zero of [`MediaFrame::pts`].
    origin: Instant,
    frames: async_channel::Sender<MediaFrame>,
    /// One token: wakes the supervisor after a flag in `Inner::signals` was set.
    wake: SyncSender<()>,
    /// Report the next video frame to the supervisor (`Signals::frame_seen`).
    watch_frames: AtomicBool,
    /// Frames dropped at the channel, per kind (video, audio).
    dropped: [AtomicU64; 2],
    /// The SSRC of the RTP video, with bit 32 set once known.
    video_ssrc: AtomicU64,
    /// Where PLIs go (RTP sources with a `video_rtcp_port`).
    rtcp: Option<Rtcp>,
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Rtcp {
    socket: UdpSocket,
    destination: SocketAddr,
    sender_ssrc: u32,
}

/// Flags for the supervisor, set by the caller and the streaming threads.
#[derive(Debug, Default)]
struct Signals {
    shutdown: bool,
    want_running: bool,
    /// The first fault reported for a pipeline generation.
    fault: Option<(u64, String)>,
    frame_seen: Option<u64>,
}

#[derive(Debug)]
struct Inner {
    signals: Signals,
    state: StreamState,
    /// Generation of the pipeline whose frames count; 0 while none runs.
    generation: u64,
    /// `pts` of that pipeline's running time 0.
    gen_offset: Duration,
    counters: [MediaCounters; 2],
    meters: [RateMeter; 2],
    last_pts: [Duration; 2],
    last_video_at: Option<Instant>,
    size: Option<(u32, u32)>,
    gop: Gop,
    throttle: KeyframeThrottle,
    /// The video appsink of the running pipeline, when it encodes (keyframe requests go
    /// upstream from it). Cleared at teardown, which breaks the appsink → callback →
    /// `Shared` → appsink cycle.
    encoder_sink: Option<gst::Element>,
    /// The running pipeline, for tests that check it reached NULL.
    pipeline: Option<gst::glib::WeakRef<gst::Pipeline>>,
    starts: u64,
    keyframe_requests: u64,
    last_error: Option<String>,
}

/// Where a keyframe request goes.
enum KeyframeTarget {
    Encoder(gst::Element),
    Pli { media_ssrc: u32 },
}

fn index(kind: MediaKind) -> usize {
    match kind {
        MediaKind::Video => 0,
        MediaKind::Audio => 1,
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic elsewhere while holding the lock leaves plain counters behind: go on.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wake(&self) {
        // Full: a wake-up is already pending. Disconnected: the supervisor is gone.
        let _ = self.wake.try_send(());
    }

    fn report_fault(&self, generation: u64, reason: String) {
        {
            let mut inner = self.lock();
            // The first fault of the newest pipeline wins: later ones are consequences, and
            // one from an older pipeline (torn down meanwhile) must not hide it.
            if inner
                .signals
                .fault
                .as_ref()
                .is_none_or(|(g, _)| *g < generation)
            {
                inner.signals.fault = Some((generation, reason));
            }
        }
        self.wake();
    }

    fn keyframe_target(&self, inner: &Inner) -> Option<KeyframeTarget> {
        if inner.generation == 0 {
            return None;
        }
        if let Some(sink) = &inner.encoder_sink {
            return Some(KeyframeTarget::Encoder(sink.clone()));
        }
        self.rtcp.as_ref()?;
        let ssrc = self.video_ssrc.load(Ordering::Relaxed);
        (ssrc >> 32 == 1).then_some(KeyframeTarget::Pli {
            media_ssrc: ssrc as u32,
        })
    }

    /// Sends a keyframe request; called without the lock held.
    fn send_keyframe_request(&self, target: KeyframeTarget) {
        match target {
            KeyframeTarget::Encoder(sink) => {
                let event = gst_video::UpstreamForceKeyUnitEvent::builder()
                    .all_headers(true)
                    .build();
                if !sink.send_event(event) {
                    tracing::debug!(stream = %self.name, "the encoder did not take the keyframe request");
                }
            }
            KeyframeTarget::Pli { media_ssrc } => {
                if let Some(rtcp) = &self.rtcp {
                    let packet = wire::pli(rtcp.sender_ssrc, media_ssrc);
                    if let Err(e) = rtcp.socket.send_to(&packet, rtcp.destination) {
                        tracing::debug!(stream = %self.name, destination = %rtcp.destination, "PLI not sent: {e}");
                    }
                }
            }
        }
    }

    /// A sample from an appsink of pipeline `generation`; runs on a streaming thread.
    fn on_sample(&self, generation: u64, kind: MediaKind, sample: &gst::Sample) {
        let Some(buffer) = sample.buffer() else {
            return;
        };
        let Ok(map) = buffer.map_readable() else {
            return;
        };
        let data: Arc<[u8]> = Arc::from(map.as_slice());
        drop(map);
        let keyframe = !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT);
        let running_time = sample
            .segment()
            .and_then(|s| s.downcast_ref::<gst::ClockTime>())
            .zip(buffer.pts())
            .and_then(|(segment, pts)| segment.to_running_time(pts));
        let duration = buffer
            .duration()
            .map(|d| Duration::from_nanos(d.nseconds()));
        let now = Instant::now();
        let i = index(kind);
        let frame = {
            let mut inner = self.lock();
            if inner.generation != generation {
                return;
            }
            let pts = match running_time {
                Some(t) => inner.gen_offset + Duration::from_nanos(t.nseconds()),
                None => now.saturating_duration_since(self.origin),
            }
            .max(inner.last_pts[i]);
            inner.last_pts[i] = pts;
            let counters = &mut inner.counters[i];
            let seq = counters.frames;
            counters.frames += 1;
            counters.bytes += data.len() as u64;
            counters.keyframes += u64::from(keyframe);
            inner.meters[i].record(now, data.len());
            let frame = MediaFrame {
                kind,
                data,
                keyframe,
                pts,
                duration,
                seq,
            };
            if kind == MediaKind::Video {
                inner.last_video_at = Some(now);
                if keyframe {
                    let size = match self.codec {
                        VideoCodec::Vp8 => wire::vp8_keyframe_size(&frame.data),
                        VideoCodec::H264 => None,
                    };
                    if let Some(size) = size.or_else(|| caps_size(sample)) {
                        inner.size = Some(size);
                    }
                }
                inner.gop.push(&frame);
                if self.watch_frames.swap(false, Ordering::AcqRel) {
                    inner.signals.frame_seen = Some(generation);
                    drop(inner);
                    self.wake();
                }
            }
            frame
        };
        if self.frames.try_send(frame).is_err() {
            self.dropped[i].fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Width and height from a sample's caps.
fn caps_size(sample: &gst::Sample) -> Option<(u32, u32)> {
    let s = sample.caps()?.structure(0)?;
    let w = s.get::<i32>("width").ok()?;
    let h = s.get::<i32>("height").ok()?;
    Some((u32::try_from(w).ok()?, u32::try_from(h).ok()?))
}

/// The `Offline` reason for a GStreamer error: the element and its message, plus the
/// human part of the debug text (its first line is only the source file and function), such
/// as "system error: No such file or directory" or "streaming stopped, reason
/// not-negotiated (-4)".
pub(super) fn fault_reason(source: Option<&str>, message: &str, debug: Option<&str>) -> String {
    let mut reason = match source {
        Some(source) => format!("{source}: {message}"),
        None => message.to_string(),
    };
    let detail = debug
        .unwrap_or_default()
        .lines()
        .skip(1)
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    if !detail.is_empty() {
        reason.push_str(" (");
        reason.push_str(&detail);
        reason.push(')');
    }
    reason
}

/// A PLI sender SSRC for a stream: fixed per stream name (FNV-1a), so logs and packet
/// captures are reproducible.
fn sender_ssrc(name: &str) -> u32 {
    name.bytes().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

fn parse(launch: &str) -> Result<gst::Pipeline, gst::glib::Error> {
    let element = gst::parse::launch_full(launch, None, gst::ParseFlags::FATAL_ERRORS)?;
    element.downcast::<gst::Pipeline>().map_err(|_| {
        gst::glib::Error::new(
            gst::CoreError::Failed,
            "the description is not a pipeline of linked elements",
        )
    })
}

pub(super) fn spawn(
    pipeline: Pipeline,
    frames: async_channel::Sender<MediaFrame>,
    running: bool,
) -> Result<PipelineHandle, PipelineError> {
    let name = pipeline.spec.name.clone();
    if frames.capacity().is_none() {
        return Err(PipelineError::UnboundedChannel { stream: name });
    }
    let description = pipeline.describe()?;
    gst::init().map_err(|e| PipelineError::Init(e.to_string()))?;
    // Parse once here, so a pipeline that can never run is the caller's error, not an
    // Offline stream retried forever. Parsing opens no device.
    if let Err(e) = parse(&description.launch) {
        return Err(match e.kind::<gst::ParseError>() {
            Some(gst::ParseError::NoSuchElement) => PipelineError::MissingElement {
                stream: name,
                element: missing_element(e.message()),
            },
            _ => PipelineError::Launch {
                stream: name,
                message: e.message().to_string(),
                launch: description.launch,
            },
        });
    }
    let rtcp = match &pipeline.spec.source {
        StreamSource::Rtp {
            video_rtcp_port, ..
        } if *video_rtcp_port != 0 => {
            let destination = SocketAddr::new(pipeline.rtcp_host, *video_rtcp_port);
            let bind = SocketAddr::new(
                match destination {
                    SocketAddr::V4(_) => std::net::Ipv4Addr::UNSPECIFIED.into(),
                    SocketAddr::V6(_) => std::net::Ipv6Addr::UNSPECIFIED.into(),
                },
                0,
            );
            let socket = UdpSocket::bind(bind)
                .and_then(|s| s.set_nonblocking(true).map(|()| s))
                .map_err(|source| PipelineError::Io {
                    stream: name.clone(),
                    what: "cannot open the UDP socket for RTCP",
                    source,
                })?;
            Some(Rtcp {
                socket,
                destination,
                sender_ssrc: sender_ssrc(&name),
            })
        }
        _ => None,
    };
    let quiet_secs = pipeline.quiet_after.as_secs_f64();
    let (on_quiet, quiet_reason) = match &pipeline.spec.source {
        StreamSource::Rtp { video_port, .. } => (
            Quiet::Report,
            format!("no RTP video on port {video_port} for {quiet_secs} s"),
        ),
        _ => (Quiet::Restart, format!("no video frame for {quiet_secs} s")),
    };
    let config = SupervisorConfig {
        backoff: pipeline.backoff,
        quiet_after: pipeline.quiet_after,
        on_quiet,
        quiet_reason,
        healthy_after: HEALTHY_AFTER,
    };
    let (wake, woken) = mpsc::sync_channel(1);
    let shared = Arc::new(Shared {
        name: name.clone(),
        codec: match &pipeline.spec.source {
            StreamSource::Rtp { video_codec, .. } => *video_codec,
            _ => pipeline.spec.codec,
        },
        origin: Instant::now(),
        frames,
        wake,
        watch_frames: AtomicBool::new(false),
        dropped: [AtomicU64::new(0), AtomicU64::new(0)],
        video_ssrc: AtomicU64::new(0),
        rtcp,
        inner: Mutex::new(Inner {
            signals: Signals {
                want_running: running,
                ..Signals::default()
            },
            // What the supervisor's first step will publish, already true for the caller.
            state: if running {
                StreamState::Starting
            } else {
                StreamState::Stopped
            },
            generation: 0,
            gen_offset: Duration::ZERO,
            counters: [MediaCounters::default(); 2],
            meters: [RateMeter::new(RATE_WINDOW), RateMeter::new(RATE_WINDOW)],
            last_pts: [Duration::ZERO; 2],
            last_video_at: None,
            size: None,
            gop: Gop::default(),
            throttle: KeyframeThrottle::new(pipeline.keyframe_min_interval),
            encoder_sink: None,
            pipeline: None,
            starts: 0,
            keyframe_requests: 0,
            last_error: None,
        }),
    });
    let (done_tx, done) = async_channel::bounded(1);
    let launch = description.launch.clone();
    let thread = std::thread::Builder::new()
        // Linux shows the first 15 bytes in `top -H` and /proc; a NUL would panic.
        .name(format!("pipe:{name}").replace('\0', ""))
        .spawn({
            let shared = shared.clone();
            move || {
                let mut runner = Runner {
                    shared,
                    description,
                    core: Supervisor::new(config),
                    want_running: false,
                    pipeline: None,
                };
                runner.run(&woken);
                drop(done_tx);
            }
        })
        .map_err(|source| PipelineError::Io {
            stream: name,
            what: "cannot spawn the supervisor thread",
            source,
        })?;
    shared.wake();
    Ok(PipelineHandle {
        shared,
        thread: Some(thread),
        done,
        launch,
    })
}

/// The element name in GStreamer's "no element \"x\"" message.
fn missing_element(message: &str) -> String {
    message.split('"').nth(1).unwrap_or(message).to_string()
}

/// The supervisor thread's state.
struct Runner {
    shared: Arc<Shared>,
    description: Description,
    core: Supervisor,
    want_running: bool,
    pipeline: Option<gst::Pipeline>,
}

impl Runner {
    fn run(&mut self, woken: &Receiver<()>) {
        loop {
            let now = Instant::now();
            let (signals, last_video_at, keyframe_due) = {
                let mut inner = self.shared.lock();
                let signals = std::mem::take(&mut inner.signals);
                // Flags persist; events are taken.
                inner.signals.want_running = signals.want_running;
                inner.signals.shutdown = signals.shutdown;
                let due = inner.throttle.handle_timeout(now);
                let target = if due {
                    self.shared.keyframe_target(&inner)
                } else {
                    None
                };
                if target.is_some() {
                    inner.keyframe_requests += 1;
                }
                (signals, inner.last_video_at, target)
            };
            if let Some(target) = keyframe_due {
                self.shared.send_keyframe_request(target);
            }
            if signals.shutdown {
                break;
            }
            if signals.want_running != self.want_running {
                self.want_running = signals.want_running;
                if self.want_running {
                    self.core.start(now);
                } else {
                    self.core.stop(now);
                }
            }
            if let Some((generation, reason)) = signals.fault {
                self.core.fault(now, generation, reason);
            }
            if let Some(generation) = signals.frame_seen {
                self.core.frame_seen(now, generation);
            }
            self.core.handle_timeout(now, last_video_at);
            while let Some(action) = self.core.poll_action() {
                self.execute(action);
            }
            let deadline = {
                let inner = self.shared.lock();
                [self.core.poll_timeout(), inner.throttle.poll_timeout()]
                    .into_iter()
                    .flatten()
                    .min()
            };
            let received = match deadline {
                Some(at) => woken.recv_timeout(at.saturating_duration_since(Instant::now())),
                None => woken.recv().map_err(|_| RecvTimeoutError::Disconnected),
            };
            if received == Err(RecvTimeoutError::Disconnected) {
                break;
            }
        }
        self.teardown();
    }

    fn execute(&mut self, action: Action) {
        match action {
            Action::Build { generation } => self.build(generation),
            Action::Teardown => self.teardown(),
            Action::WatchFrames => self.shared.watch_frames.store(true, Ordering::Release),
            Action::State(state) => {
                match &state {
                    StreamState::Offline { reason } => {
                        tracing::warn!(stream = %self.shared.name, "stream offline: {reason}");
                    }
                    state => tracing::info!(stream = %self.shared.name, "stream {state:?}"),
                }
                let mut inner = self.shared.lock();
                if let StreamState::Offline { reason } = &state {
                    inner.last_error = Some(reason.clone());
                }
                inner.state = state;
            }
        }
    }

    fn build(&mut self, generation: u64) {
        tracing::debug!(stream = %self.shared.name, generation, launch = %self.description.launch, "building the pipeline");
        let pipeline = match parse(&self.description.launch) {
            Ok(p) => p,
            Err(e) => {
                self.shared.lock().starts += 1;
                self.shared
                    .report_fault(generation, e.message().to_string());
                return;
            }
        };
        let video = pipeline
            .by_name(VIDEO_SINK)
            .and_then(|e| e.downcast::<gst_app::AppSink>().ok());
        let Some(video) = video else {
            self.shared
                .report_fault(generation, "the pipeline has no video appsink".into());
            return;
        };
        self.connect(&video, generation, MediaKind::Video);
        if self.description.audio
            && let Some(audio) = pipeline
                .by_name(AUDIO_SINK)
                .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
        {
            self.connect(&audio, generation, MediaKind::Audio);
        }
        if self.shared.rtcp.is_some()
            && let Some(pad) = pipeline
                .by_name(RTP_VIDEO_SRC)
                .and_then(|e| e.static_pad("src"))
        {
            let shared = self.shared.clone();
            pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
                if let Some(buffer) = info.buffer()
                    && let Ok(map) = buffer.map_readable()
                    && let Some(ssrc) = wire::rtp_ssrc(&map)
                {
                    shared
                        .video_ssrc
                        .store((1 << 32) | u64::from(ssrc), Ordering::Relaxed);
                }
                gst::PadProbeReturn::Ok
            });
        }
        if let Some(bus) = pipeline.bus() {
            let shared = self.shared.clone();
            bus.set_sync_handler(move |_, message| {
                use gst::MessageView;
                let source = message.src().map(|s| s.name().to_string());
                match message.view() {
                    MessageView::Error(e) => {
                        let debug = e.debug();
                        let reason = fault_reason(
                            source.as_deref(),
                            e.error().message(),
                            debug.as_deref(),
                        );
                        shared.report_fault(generation, reason);
                    }
                    MessageView::Eos(_) => shared.report_fault(generation, "end of stream".into()),
                    MessageView::Warning(w) => {
                        tracing::warn!(stream = %shared.name, "{}: {}", source.unwrap_or_default(), w.error());
                    }
                    _ => {}
                }
                // Nobody pops this bus: drop everything so nothing piles up on it.
                gst::BusSyncReply::Drop
            });
        }
        {
            let mut inner = self.shared.lock();
            inner.generation = generation;
            inner.gen_offset = Instant::now().saturating_duration_since(self.shared.origin);
            inner.starts += 1;
            inner.gop.clear();
            inner.size = None;
            inner.meters.iter_mut().for_each(RateMeter::reset);
            inner.encoder_sink = self
                .description
                .encodes
                .then(|| video.clone().upcast::<gst::Element>());
            inner.pipeline = Some(pipeline.downgrade());
        }
        self.shared.watch_frames.store(true, Ordering::Release);
        let started = pipeline.set_state(gst::State::Playing);
        self.pipeline = Some(pipeline);
        if started.is_err() {
            // Normally an error message on the bus already says why; this is the fallback.
            self.shared.report_fault(
                generation,
                "the pipeline could not be set to PLAYING".into(),
            );
        }
    }

    fn connect(&self, sink: &gst_app::AppSink, generation: u64, kind: MediaKind) {
        let shared = self.shared.clone();
        sink.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |sink| {
                    let sample = sink.pull_sample().map_err(|_| gst::FlowError::Flushing)?;
                    shared.on_sample(generation, kind, &sample);
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        );
    }

    fn teardown(&mut self) {
        {
            let mut inner = self.shared.lock();
            inner.generation = 0;
            inner.encoder_sink = None;
            inner.pipeline = None;
            inner.throttle.cancel();
        }
        self.shared.watch_frames.store(false, Ordering::Release);
        if let Some(pipeline) = self.pipeline.take() {
            if pipeline.set_state(gst::State::Null).is_err() {
                tracing::warn!(stream = %self.shared.name, "the pipeline did not stop cleanly");
            }
            if let Some(bus) = pipeline.bus() {
                bus.unset_sync_handler();
            }
        }
    }
}

impl PipelineHandle {
    /// The stream's name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// The pipeline, in `gst-launch-1.0` syntax.
    pub fn launch_line(&self) -> &str {
        &self.launch
    }

    /// Where the stream is.
    pub fn state(&self) -> StreamState {
        self.shared.lock().state.clone()
    }

    /// Asks for a keyframe: from the encoder (`test`, `v4l2`) with a
    /// `GstForceKeyUnit` event, or from the RTP sender with a PLI to `video_rtcp_port`.
    /// Callers may call it freely (each new viewer, each `KeyframeRequest` from a browser,
    /// each gap in [`MediaFrame::seq`]): requests are throttled per stream to one per
    /// [`super::KEYFRAME_MIN_INTERVAL`] (Janus's rule), and the ones inside an interval are
    /// merged into one sent when it ends. Never blocks.
    pub fn request_keyframe(&self) -> KeyframeRequest {
        let now = Instant::now();
        let mut inner = self.shared.lock();
        let Some(target) = self.shared.keyframe_target(&inner) else {
            return KeyframeRequest::Unavailable;
        };
        match inner.throttle.request(now) {
            Throttled::SendNow => {
                inner.keyframe_requests += 1;
                drop(inner);
                self.shared.send_keyframe_request(target);
                KeyframeRequest::Sent
            }
            Throttled::Deferred { newly, .. } => {
                drop(inner);
                if newly {
                    self.shared.wake();
                }
                KeyframeRequest::Deferred
            }
        }
    }

    /// The last video keyframe since the pipeline (re)started, for a new viewer of a source
    /// that cannot be asked for one.
    pub fn last_keyframe(&self) -> Option<MediaFrame> {
        self.shared.lock().gop.keyframe()
    }

    /// The last keyframe and the video frames after it (see [`super::gop`] for the bounds):
    /// sent to a new viewer first, they give a clean picture at once.
    pub fn gop(&self) -> Vec<MediaFrame> {
        self.shared.lock().gop.frames()
    }

    /// Counters, rates and size.
    pub fn stats(&self) -> PipelineStats {
        let now = Instant::now();
        let inner = self.shared.lock();
        let mut counters = inner.counters;
        for (c, dropped) in counters.iter_mut().zip(&self.shared.dropped) {
            c.dropped = dropped.load(Ordering::Relaxed);
        }
        let video = inner.meters[0].rate(now);
        let audio = inner.meters[1].rate(now);
        PipelineStats {
            state: inner.state.clone(),
            video: counters[0],
            audio: counters[1],
            fps: video.per_second,
            video_bitrate: video.bits_per_second,
            audio_bitrate: audio.bits_per_second,
            width: inner.size.map(|(w, _)| w),
            height: inner.size.map(|(_, h)| h),
            starts: inner.starts,
            keyframe_requests: inner.keyframe_requests,
            last_error: inner.last_error.clone(),
        }
    }

    /// Runs the pipeline (after [`PipelineHandle::stop`] or
    /// [`Pipeline::start_stopped`]); a no-op if it runs.
    pub fn start(&self) {
        self.shared.lock().signals.want_running = true;
        self.shared.wake();
    }

    /// Stops the pipeline (NULL: camera closed, encoder idle, no CPU) until
    /// [`PipelineHandle::start`]. The state becomes [`StreamState::Stopped`] shortly after.
    pub fn stop(&self) {
        self.shared.lock().signals.want_running = false;
        self.shared.wake();
    }

    /// Stops everything like dropping the handle does, but waits for the teardown without
    /// blocking the executor.
    pub async fn close(self) {
        self.shared.shutdown();
        let _ = self.done.recv().await;
        // Drop joins a thread that has finished.
    }

    #[cfg(test)]
    fn pipeline(&self) -> Option<gst::Pipeline> {
        self.shared.lock().pipeline.as_ref()?.upgrade()
    }
}

impl Shared {
    fn shutdown(&self) {
        self.lock().signals.shutdown = true;
        self.wake();
    }
}

impl Drop for PipelineHandle {
    fn drop(&mut self) {
        self.shared.shutdown();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
pub(super) mod testing {
    //! Access for the GStreamer tests in `super::super::tests`.
    use super::*;

    pub fn pipeline(handle: &PipelineHandle) -> Option<gst::Pipeline> {
        handle.pipeline()
    }

    pub fn sender_ssrc_of(name: &str) -> u32 {
        sender_ssrc(name)
    }

    pub fn video_ssrc(handle: &PipelineHandle) -> Option<u32> {
        let v = handle.shared.video_ssrc.load(Ordering::Relaxed);
        (v >> 32 == 1).then_some(v as u32)
    }
}
