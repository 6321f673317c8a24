//! A stream's GStreamer pipeline: test pattern, camera or RTP in; whole encoded video frames
//! and Opus packets out, encoded once, rebuilt with backoff whenever it fails.
//!
//! ```no_run
//! # use outpost::config::stream::StreamSpec;
//! # use outpost::media::pipeline::{EncoderChoice, Pipeline};
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let spec = StreamSpec::dev_test();
//! let (tx, rx) = async_channel::bounded(64);
//! let handle = Pipeline::new(&spec, &EncoderChoice::software(spec.codec))?.start(tx)?;
//! while let Ok(frame) = rx.recv().await {
//!     // A viewer joined, or a frame went missing (`seq` gap): ask for a keyframe.
//!     # let joined = false;
//!     if joined { handle.request_keyframe(); }
//!     // ... write `frame.data` to the WebRTC sessions ...
//! }
//! # Ok(()) }
//! ```
//!
//! # Threads
//!
//! Three kinds of thread touch a stream, and only these ways:
//!
//! - **The caller** (the agent's single-threaded smol executor) calls [`Pipeline::start`],
//!   which initialises GStreamer and parses the pipeline once to report a bad one as an
//!   error (a few ms), then every [`PipelineHandle`] method. None of them waits on GStreamer:
//!   they take one short `std::sync::Mutex` (counters, caches, state) or set a flag and
//!   wake the supervisor. [`PipelineHandle::request_keyframe`] sends one GStreamer event
//!   upstream from the appsink (the encoder marks its next frame) or one UDP datagram.
//! - **The supervisor**, one thread per stream named `pipe:<stream>`, owns the
//!   `gst::Pipeline`: it builds it, sets its states, tears it down and rebuilds it after a
//!   fault, following the pure [`supervisor`] core. Every blocking GStreamer call (a state
//!   change waits for the streaming threads) happens here. It sleeps on a one-slot channel
//!   (a wake-up is a flag plus a token, so wake-ups coalesce and nothing queues up) or
//!   until its next timer.
//! - **GStreamer's streaming threads** call the appsink callbacks and the bus sync handler.
//!   They never block: a frame is copied once, counted under the mutex and offered to the
//!   caller's bounded channel with `try_send`; when it is full the frame is dropped and
//!   counted ([`MediaCounters::dropped`], a gap in [`MediaFrame::seq`]). A bus error is
//!   recorded under the mutex and wakes the supervisor.
//!
//! Frames reach the caller only through the channel; state only through the mutex (poll
//! [`PipelineHandle::state`]). Dropping the handle stops the supervisor, which sets the
//! pipeline to NULL (joining the streaming threads), and joins it: a few ms on the caller's
//! thread, which [`PipelineHandle::close`] spends off the executor instead.

pub mod describe;
pub mod gop;
pub mod meter;
mod shell;
pub mod supervisor;
pub mod throttle;
pub mod wire;

use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

pub use describe::{Description, EncoderChoice, RtpListen};
pub use shell::PipelineHandle;
pub use supervisor::Backoff;

use crate::config::stream::StreamSpec;

/// Audio or video.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MediaKind {
    Video,
    Audio,
}

/// One encoded frame, as WebRTC sends it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MediaFrame {
    pub kind: MediaKind,
    /// Video: one whole frame, VP8 or H.264 as an Annex-B access unit (SPS and PPS before
    /// every IDR). Audio: one Opus packet, 48 kHz, usually 20 ms.
    pub data: Arc<[u8]>,
    /// Decodable without earlier frames (GStreamer's buffer lacks `DELTA_UNIT`). Always true
    /// for Opus.
    pub keyframe: bool,
    /// Presentation time since the stream was started; never decreases within a kind, also
    /// across pipeline restarts.
    pub pts: Duration,
    pub duration: Option<Duration>,
    /// Number of this frame among all frames of its kind the stream produced, dropped ones
    /// included: a gap means frames were dropped (the channel was full), so video needs a
    /// keyframe before it decodes again.
    pub seq: u64,
}

/// Where a stream is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StreamState {
    /// Not running, because the caller stopped it (nobody watches).
    Stopped,
    /// The pipeline is built and starting; no video yet.
    Starting,
    /// Video frames arrive.
    Playing,
    /// Broken or silent, with GStreamer's reason (`v4l2src0: Cannot identify device
    /// '/dev/video99'.`) or ours (`no RTP video on port 5004 for 5 s`). A broken pipeline is
    /// being rebuilt with backoff; the state stays `Offline` until video arrives again.
    Offline { reason: String },
}

/// Counters of one media kind since the stream started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MediaCounters {
    /// Frames produced (sent or dropped).
    pub frames: u64,
    pub bytes: u64,
    pub keyframes: u64,
    /// Frames dropped because the caller's channel was full (or closed).
    pub dropped: u64,
}

/// A stream's numbers, for the status page and for tests.
#[derive(Clone, Debug, PartialEq)]
pub struct PipelineStats {
    pub state: StreamState,
    pub video: MediaCounters,
    pub audio: MediaCounters,
    /// Video frames per second over the last 2 s.
    pub fps: f64,
    /// Video and audio bit/s over the last 2 s.
    pub video_bitrate: f64,
    pub audio_bitrate: f64,
    /// Size of the video, from its caps or its last keyframe.
    pub width: Option<u32>,
    pub height: Option<u32>,
    /// Pipelines built: the first start, restarts after faults and starts after a stop.
    pub starts: u64,
    /// Keyframe requests that went to the encoder or, as PLIs, to the RTP sender.
    pub keyframe_requests: u64,
    /// The reason of the last fault, kept after the stream recovered.
    pub last_error: Option<String>,
}

/// What [`PipelineHandle::request_keyframe`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyframeRequest {
    /// Sent to the encoder (or as a PLI to the RTP sender).
    Sent,
    /// Another request went out less than the minimum interval ago; this one goes out when
    /// the interval ends, merged with any others that arrive meanwhile.
    Deferred,
    /// Nothing can make a keyframe now: the stream is not running, or it is RTP without an
    /// RTCP port (use [`PipelineHandle::gop`]), or no RTP has arrived yet.
    Unavailable,
}

/// Why a stream could not be started. Nothing was started, and no other stream is
/// affected. Faults after the start are not errors: they are [`StreamState::Offline`].
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(
        "stream {stream:?}: encoder {what} {value:?} cannot go into a pipeline (a name is a letter, then letters, digits, '-' or '_'; caps hold letters, digits and / , = . : _ ( ) - only); nothing was started"
    )]
    BadEncoder {
        stream: String,
        what: &'static str,
        value: String,
    },
    #[error(
        "stream {stream:?}: GStreamer element {element:?} is not installed (`gst-inspect-1.0 {element}` finds nothing; install the plugin package that provides it); nothing was started"
    )]
    MissingElement { stream: String, element: String },
    #[error(
        "stream {stream:?}: GStreamer rejected the pipeline: {message} (pipeline: {launch}); nothing was started"
    )]
    Launch {
        stream: String,
        message: String,
        launch: String,
    },
    #[error("GStreamer could not be initialised: {0}; no stream can run")]
    Init(String),
    #[error(
        "stream {stream:?}: the frame channel must be bounded (async_channel::bounded), so a slow reader drops frames instead of growing memory; nothing was started"
    )]
    UnboundedChannel { stream: String },
    #[error("stream {stream:?}: {what}: {source}; nothing was started")]
    Io {
        stream: String,
        what: &'static str,
        source: io::Error,
    },
}

/// Default minimum interval between two keyframe requests (Janus's: one PLI a second).
pub const KEYFRAME_MIN_INTERVAL: Duration = Duration::from_secs(1);
/// Default time without video after which a source is quiet (see [`Pipeline::with_quiet_after`]).
pub const QUIET_AFTER: Duration = Duration::from_secs(5);
/// A pipeline that played this long before failing starts the backoff afresh.
pub const HEALTHY_AFTER: Duration = Duration::from_secs(10);

/// A stream's pipeline, checked and ready to start.
#[derive(Clone, Debug)]
pub struct Pipeline {
    spec: StreamSpec,
    encoder: EncoderChoice,
    backoff: Backoff,
    quiet_after: Duration,
    keyframe_min_interval: Duration,
    rtp: RtpListen,
    rtcp_host: IpAddr,
}

impl Pipeline {
    /// The pipeline for `spec`; `encoder` is used by `test` and `v4l2` sources (see
    /// [`EncoderChoice::software`]). Pure: checks the encoder names, needs no GStreamer.
    pub fn new(spec: &StreamSpec, encoder: &EncoderChoice) -> Result<Pipeline, PipelineError> {
        let pipeline = Pipeline {
            spec: spec.clone(),
            encoder: encoder.clone(),
            backoff: Backoff::default(),
            quiet_after: QUIET_AFTER,
            keyframe_min_interval: KEYFRAME_MIN_INTERVAL,
            rtp: RtpListen {
                address: IpAddr::V4(Ipv4Addr::LOCALHOST),
            },
            rtcp_host: IpAddr::V4(Ipv4Addr::LOCALHOST),
        };
        pipeline.describe()?;
        Ok(pipeline)
    }

    /// Delays between rebuilds after faults (default 1 s doubling to 30 s).
    pub fn with_backoff(mut self, backoff: Backoff) -> Pipeline {
        self.backoff = backoff;
        self
    }

    /// How long without a video frame makes a source quiet (default 5 s). An encoded source
    /// (camera, test) that is quiet has hung: it is rebuilt as after a fault. A quiet RTP
    /// source is only reported `Offline` and plays again at its next frame.
    pub fn with_quiet_after(mut self, quiet_after: Duration) -> Pipeline {
        self.quiet_after = quiet_after;
        self
    }

    /// Minimum interval between keyframe requests (default 1 s).
    pub fn with_keyframe_min_interval(mut self, interval: Duration) -> Pipeline {
        self.keyframe_min_interval = interval;
        self
    }

    /// Address RTP sources listen on (default 127.0.0.1: the sender is a local
    /// `gst-launch-1.0`; `0.0.0.0` takes RTP from the network).
    pub fn with_rtp_address(mut self, address: IpAddr) -> Pipeline {
        self.rtp.address = address;
        self
    }

    /// Host the PLIs go to, at the stream's `video_rtcp_port` (default 127.0.0.1).
    pub fn with_rtcp_host(mut self, host: IpAddr) -> Pipeline {
        self.rtcp_host = host;
        self
    }

    /// The GStreamer pipeline, as `gst-launch-1.0` syntax.
    pub fn describe(&self) -> Result<Description, PipelineError> {
        describe::describe(&self.spec, &self.encoder, self.rtp)
    }

    /// Starts the stream: its supervisor thread builds the pipeline at once, and frames go to
    /// `frames`, which must be bounded (64 holds about a second of 30 fps video with Opus).
    /// Errors mean the pipeline can never run (a missing element, a bad property); faults
    /// while running (a missing camera) are [`StreamState::Offline`] and retried instead.
    pub fn start(
        self,
        frames: async_channel::Sender<MediaFrame>,
    ) -> Result<PipelineHandle, PipelineError> {
        shell::spawn(self, frames, true)
    }

    /// As [`Pipeline::start`], but stopped: nothing runs (no CPU spent) until
    /// [`PipelineHandle::start`], e.g. when the first viewer arrives.
    pub fn start_stopped(
        self,
        frames: async_channel::Sender<MediaFrame>,
    ) -> Result<PipelineHandle, PipelineError> {
        shell::spawn(self, frames, false)
    }
}

#[cfg(test)]
mod tests;
