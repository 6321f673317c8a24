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

pub use crate::board::EncoderChoice;
pub use crate::board::profile::{is_caps_text, is_gst_name};

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

/// Raw video in, `! appsink name=video` out: the converter, a leaky queue (a slow encoder
/// drops raw frames, never stalls the camera), the encoder's input caps if it has any, the
/// encoder, its output caps.
fn encode(spec: &StreamSpec, encoder: &EncoderChoice) -> Result<String, PipelineError> {
    let bad = |what: &'static str, value: &str| PipelineError::BadEncoder {
        stream: spec.name.clone(),
        what,
        value: value.to_string(),
    };
    for (what, name) in [
        ("element", &encoder.element),
        ("converter", &encoder.convert),
    ] {
        if !is_gst_name(name) {
            return Err(bad(what, name));
        }
    }
    let mut out = format!(
        "{} ! queue max-size-buffers=2 max-size-bytes=0 max-size-time=0 leaky=downstream ! ",
        encoder.convert
    );
    if let Some(caps) = &encoder.input_caps {
        if !is_caps_text(caps) {
            return Err(bad("input caps", caps));
        }
        let _ = write!(out, "{caps} ! ");
    }
    out.push_str(&encoder.element);
    for (key, val) in &encoder.properties {
        if !is_gst_name(key) {
            return Err(bad("property", key));
        }
        let _ = write!(out, " {key}={}", value(&substitute(val, spec)));
    }
    if !is_caps_text(&encoder.caps) {
        return Err(bad("caps", &encoder.caps));
    }
    let _ = write!(out, " ! {}", encoder.caps);
    if spec.codec == VideoCodec::H264 {
        let _ = write!(out, " ! {H264_TAIL}");
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
