//! Live video streams as the config dir defines them (`{"stream": {...}}`): where the
//! pictures come from, how they are encoded once, and how many may watch.

/// Video codecs browsers decode over WebRTC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum VideoCodec {
    Vp8,
    /// Constrained baseline (or main), which browsers decode.
    H264,
}

impl VideoCodec {
    pub fn as_str(self) -> &'static str {
        match self {
            VideoCodec::Vp8 => "vp8",
            VideoCodec::H264 => "h264",
        }
    }
}

/// Where a stream's media comes from.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum StreamSource {
    /// GStreamer's test pattern and test tone, encoded by the agent.
    Test {
        /// `videotestsrc` pattern name (default `smpte`).
        pattern: String,
    },
    /// A camera, encoded by the agent (the board's encoder, else software); MJPEG cameras
    /// are decoded first.
    V4l2 { device: String },
    /// RTP arriving over UDP, as Janus's rtp mountpoint takes it (e.g. from an external
    /// `gst-launch-1.0`); forwarded without re-encoding.
    Rtp {
        video_port: u16,
        /// RTP payload type of the video (Janus's demo sends VP8 as 100).
        video_pt: u8,
        video_codec: VideoCodec,
        /// 0: no audio.
        audio_port: u16,
        audio_pt: u8,
        /// Where to send RTCP (PLI) to ask the source for a keyframe; 0: none (the last
        /// keyframe is cached instead).
        video_rtcp_port: u16,
    },
}

impl StreamSource {
    pub fn kind(&self) -> &'static str {
        match self {
            StreamSource::Test { .. } => "test",
            StreamSource::V4l2 { .. } => "v4l2",
            StreamSource::Rtp { .. } => "rtp",
        }
    }
}

/// One stream, validated.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StreamSpec {
    /// Unique; a URL path segment (`/streams/<name>`, `/whep/<name>`).
    pub name: String,
    pub source: StreamSource,
    /// The video codec viewers get (for `rtp`, the one that arrives).
    pub codec: VideoCodec,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    /// Target video bitrate of the encoder (ignored for `rtp`).
    pub bitrate_kbps: u32,
    /// Opus audio with the video (the test tone, the RTP audio port, no audio for cameras).
    pub audio: bool,
    /// Most viewers at once; more get 503.
    pub max_viewers: usize,
    /// Longest time between keyframes the encoder makes on its own.
    pub keyframe_interval_s: u32,
}

impl StreamSpec {
    /// The stream `outpost agent -dev` shows a new user: test pattern and tone, VP8.
    pub fn dev_test() -> StreamSpec {
        StreamSpec {
            name: "test".into(),
            source: StreamSource::Test {
                pattern: "smpte".into(),
            },
            codec: VideoCodec::Vp8,
            width: 640,
            height: 480,
            fps: 30,
            bitrate_kbps: 1000,
            audio: true,
            max_viewers: 64,
            keyframe_interval_s: 2,
        }
    }
}
