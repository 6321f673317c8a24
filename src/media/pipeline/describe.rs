//! A stream's pipeline as a `gst-launch-1.0` description, pure: which elements a stream spec
//! and an encoder choice need, with every configured value quoted so that it stays a value.

use std::fmt::Write as _;
use std::net::IpAddr;

use super::PipelineError;
use crate::config::stream::{StreamSource, StreamSpec, VideoCodec};

/// Name of the appsink that takes whole encoded video frames.
pub const VIDEO_SINK: &str = "video";
/// Name of the appsink that takes Opus packets.
pub const AUDIO_SINK: &str = "audio";
/// Name of the `udpsrc` that receives RTP video (the SSRC for a PLI is read from it).
pub const RTP_VIDEO_SRC: &str = "rtpvideo";

/// Latency of the RTP jitter buffers: enough to reorder packets from a sender on the LAN,
/// small next to a browser's own jitter buffer.
pub const RTP_LATENCY_MS: u32 = 50;
/// Bitrate of the Opus test tone, bit/s (the Janus demo sender's).
pub const OPUS_BITRATE: u32 = 64_000;

/// The video encoder of encoded sources (`test`, `v4l2`): a GStreamer element and its
/// properties, in order. Board profiles name their hardware encoder here.
///
/// Values may use placeholders that are replaced from the stream spec: `{bitrate}` (bit/s),
/// `{bitrate_kbps}`, `{fps}` and `{keyframe_frames}` (`fps * keyframe_interval_s`). Other
/// text, including GStreamer's `{ a, b }` lists, is left alone. For example
/// `("extra-controls", "controls,video_bitrate={bitrate},h264_i_frame_period={keyframe_frames}")`
/// for `v4l2h264enc`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncoderChoice {
    pub element: String,
    pub properties: Vec<(String, String)>,
}

impl EncoderChoice {
    /// The software encoder for `codec`, tuned for live video on one slow core (see the
    /// Janus demo sender): VP8 as `vp8enc` in realtime mode without look-ahead, CBR,
    /// error-resilient, one thread; H.264 as `x264enc` with zero latency at the fastest
    /// preset, one thread (the caps after it ask for constrained baseline).
    pub fn software(codec: VideoCodec) -> EncoderChoice {
        let props: &[(&str, &str)] = match codec {
            VideoCodec::Vp8 => &[
                ("deadline", "1"),
                ("cpu-used", "8"),
                ("lag-in-frames", "0"),
                ("end-usage", "cbr"),
                ("target-bitrate", "{bitrate}"),
                ("keyframe-max-dist", "{keyframe_frames}"),
                ("error-resilient", "default"),
                ("threads", "1"),
                ("buffer-size", "500"),
                ("buffer-initial-size", "300"),
                ("buffer-optimal-size", "400"),
            ],
            VideoCodec::H264 => &[
                ("tune", "zerolatency"),
                ("speed-preset", "ultrafast"),
                ("key-int-max", "{keyframe_frames}"),
                ("bitrate", "{bitrate_kbps}"),
                ("threads", "1"),
                ("byte-stream", "true"),
            ],
        };
        EncoderChoice {
            element: match codec {
                VideoCodec::Vp8 => "vp8enc",
                VideoCodec::H264 => "x264enc",
            }
            .into(),
            properties: props
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }
}

/// Where RTP is received (sources of kind `rtp` only).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RtpListen {
    /// Address the `udpsrc`s bind to.
    pub address: IpAddr,
}

/// A pipeline ready to hand to `gst::parse::launch`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Description {
    /// The `gst-launch-1.0` syntax.
    pub launch: String,
    /// The video is encoded in this pipeline (`test`, `v4l2`): a keyframe is asked of the
    /// encoder, upstream of [`VIDEO_SINK`]. Otherwise it arrives encoded (`rtp`).
    pub encodes: bool,
    /// There is an [`AUDIO_SINK`].
    pub audio: bool,
}

/// The pipeline for `spec`, encoding with `encoder` (ignored for `rtp`).
pub fn describe(
    spec: &StreamSpec,
    encoder: &EncoderChoice,
    rtp: RtpListen,
) -> Result<Description, PipelineError> {
    let (w, h, fps) = (spec.width, spec.height, spec.fps);
    let mut launch = String::new();
    let encodes;
    let mut audio = false;
    match &spec.source {
        StreamSource::Test { pattern } => {
            encodes = true;
            let _ = write!(
                launch,
                "videotestsrc is-live=true pattern={} ! video/x-raw,width={w},height={h},framerate={fps}/1 ! ",
                value(pattern)
            );
            launch.push_str(&encode(spec, encoder)?);
            if spec.audio {
                audio = true;
                let _ = write!(
                    launch,
                    " audiotestsrc is-live=true wave=sine freq=440 volume=0.2 ! audioconvert ! audioresample ! audio/x-raw,rate=48000,channels=2 ! opusenc bitrate={OPUS_BITRATE} frame-size=20 audio-type=generic ! {}",
                    appsink(AUDIO_SINK)
                );
            }
        }
        StreamSource::V4l2 { device } => {
            encodes = true;
            // Raw if the camera offers the mode, else MJPEG; decodebin passes raw through
            // and picks a JPEG decoder (a hardware one where the board has it).
            let modes = format!(
                "video/x-raw,width={w},height={h},framerate={fps}/1;image/jpeg,width={w},height={h},framerate={fps}/1"
            );
            let _ = write!(
                launch,
                "v4l2src device={} ! capsfilter caps={} ! decodebin ! videoscale ! video/x-raw,width={w},height={h} ! ",
                value(device),
                quote(&modes)
            );
            launch.push_str(&encode(spec, encoder)?);
        }
        StreamSource::Rtp {
            video_port,
            video_pt,
            video_codec,
            audio_port,
            audio_pt,
            ..
        } => {
            encodes = false;
            let address = rtp.address.to_string();
            let (name, depay) = match video_codec {
                VideoCodec::Vp8 => (
                    "VP8",
                    // After a loss, the frames up to the next keyframe cannot be decoded:
                    // do not forward them.
                    "rtpvp8depay wait-for-keyframe=true ! video/x-vp8".to_string(),
                ),
                VideoCodec::H264 => ("H264", format!("rtph264depay ! {}", H264_TAIL)),
            };
            let caps = format!(
                "application/x-rtp,media=video,encoding-name={name},payload={video_pt},clock-rate=90000"
            );
            let _ = write!(
                launch,
                "udpsrc name={RTP_VIDEO_SRC} address={} port={video_port} caps={} ! rtpjitterbuffer latency={RTP_LATENCY_MS} ! {depay} ! {}",
                value(&address),
                quote(&caps),
                appsink(VIDEO_SINK)
            );
            if spec.audio && *audio_port != 0 {
                audio = true;
                let caps = format!(
                    "application/x-rtp,media=audio,encoding-name=OPUS,payload={audio_pt},clock-rate=48000"
                );
                let _ = write!(
                    launch,
                    " udpsrc address={} port={audio_port} caps={} ! rtpjitterbuffer latency={RTP_LATENCY_MS} ! rtpopusdepay ! {}",
                    value(&address),
                    quote(&caps),
                    appsink(AUDIO_SINK)
                );
            }
        }
    }
    Ok(Description {
        launch,
        encodes,
        audio,
    })
}

/// H.264 as browsers take it over WebRTC: Annex-B access units, SPS and PPS before every
/// IDR (`config-interval=-1`), whatever the encoder or sender put in.
const H264_TAIL: &str =
    "h264parse config-interval=-1 ! video/x-h264,stream-format=byte-stream,alignment=au";

/// Raw video in, `! appsink name=video` out: a leaky queue (a slow encoder drops raw
/// frames, never stalls the camera), the encoder, the codec's caps.
fn encode(spec: &StreamSpec, encoder: &EncoderChoice) -> Result<String, PipelineError> {
    if !is_gst_name(&encoder.element) {
        return Err(PipelineError::BadEncoder {
            stream: spec.name.clone(),
            what: "element",
            value: encoder.element.clone(),
        });
    }
    let mut out = format!(
        "videoconvert ! queue max-size-buffers=2 max-size-bytes=0 max-size-time=0 leaky=downstream ! {}",
        encoder.element
    );
    for (key, val) in &encoder.properties {
        if !is_gst_name(key) {
            return Err(PipelineError::BadEncoder {
                stream: spec.name.clone(),
                what: "property",
                value: key.clone(),
            });
        }
        let _ = write!(out, " {key}={}", value(&substitute(val, spec)));
    }
    match spec.codec {
        VideoCodec::Vp8 => out.push_str(" ! video/x-vp8"),
        VideoCodec::H264 => {
            let _ = write!(
                out,
                " ! video/x-h264,profile=constrained-baseline ! {H264_TAIL}"
            );
        }
    }
    let _ = write!(out, " ! {}", appsink(VIDEO_SINK));
    Ok(out)
}

/// An appsink for live media: no clock sync (frames leave as soon as they are made), no
/// preroll, and a small queue that drops the oldest if the callback ever falls behind.
fn appsink(name: &str) -> String {
    format!(
        "appsink name={name} sync=false async=false max-buffers=8 drop=true enable-last-sample=false"
    )
}

/// Replaces the encoder placeholders (see [`EncoderChoice`]) with the spec's numbers.
pub fn substitute(template: &str, spec: &StreamSpec) -> String {
    let bitrate_kbps = u64::from(spec.bitrate_kbps);
    let keyframe_frames = u64::from(spec.fps)
        .saturating_mul(u64::from(spec.keyframe_interval_s))
        .max(1);
    template
        .replace("{bitrate}", &(bitrate_kbps * 1000).to_string())
        .replace("{bitrate_kbps}", &bitrate_kbps.to_string())
        .replace("{fps}", &spec.fps.to_string())
        .replace("{keyframe_frames}", &keyframe_frames.to_string())
}

/// An element or property name GStreamer accepts: a letter, then letters, digits, `-`, `_`.
pub fn is_gst_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// A property value: bare if it is a plain word or number, else quoted.
pub fn value(v: &str) -> String {
    let plain = !v.is_empty()
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '+'));
    if plain { v.to_string() } else { quote(v) }
}

/// A double-quoted value: GStreamer's parser takes everything between the quotes and then
/// drops each backslash, keeping the character after it (`gst_parse_unescape`).
pub fn quote(v: &str) -> String {
    let mut out = String::with_capacity(v.len() + 2);
    out.push('"');
    for c in v.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests;
