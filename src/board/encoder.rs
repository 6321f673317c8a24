//! Which encoder a stream's codec gets on this board: the profile's hardware encoder when
//! this GStreamer has it, else its software fallback, with the reason. Pure: whether an
//! element exists is asked of the caller.

use super::profile::{CodecEncoders, EncoderEntry};
use super::select::Selection;
use crate::config::VideoCodec;

/// The video encoder of encoded sources (`test`, `v4l2`): a GStreamer element, its
/// properties in order, and the elements around it.
///
/// Values may use placeholders that are replaced from the stream spec: `{bitrate}` (bit/s),
/// `{bitrate_kbps}`, `{fps}` and `{keyframe_frames}` (`fps * keyframe_interval_s`). Other
/// text, including GStreamer's `{ a, b }` lists, is left alone. For example
/// `("extra-controls", "controls,video_bitrate={bitrate},h264_i_frame_period={keyframe_frames}")`
/// for `v4l2h264enc`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EncoderChoice {
    pub element: String,
    pub properties: Vec<(String, String)>,
    /// Converts raw video for the encoder (`videoconvert`; `nvvidconv` on a Jetson).
    pub convert: String,
    /// Caps between the converter and the encoder, if the encoder needs them said.
    pub input_caps: Option<String>,
    /// Caps the encoder's output must have.
    pub caps: String,
}

/// The converter every GStreamer has.
pub const DEFAULT_CONVERT: &str = "videoconvert";

/// The encoder's output caps unless a profile says otherwise: VP8, or H.264 in the
/// constrained baseline every browser decodes.
pub fn default_caps(codec: VideoCodec) -> &'static str {
    match codec {
        VideoCodec::Vp8 => "video/x-vp8",
        VideoCodec::H264 => "video/x-h264,profile=constrained-baseline",
    }
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
            convert: DEFAULT_CONVERT.into(),
            input_caps: None,
            caps: default_caps(codec).into(),
        }
    }

    /// A profile's encoder entry as a choice for `codec`.
    fn from_entry(e: &EncoderEntry, codec: VideoCodec) -> EncoderChoice {
        EncoderChoice {
            element: e.element.clone(),
            properties: e.properties.clone(),
            convert: e.convert.clone().unwrap_or_else(|| DEFAULT_CONVERT.into()),
            input_caps: e.input_caps.clone(),
            caps: e
                .output_caps
                .clone()
                .unwrap_or_else(|| default_caps(codec).into()),
        }
    }

    /// The software fallback of a profile's codec: the built-in encoder, with the profile's
    /// properties laid over it (same key: replaced in place; new key: added), or another
    /// element taken as the profile writes it.
    pub fn fallback(encs: &CodecEncoders, codec: VideoCodec) -> EncoderChoice {
        let mut out = EncoderChoice::software(codec);
        let Some(e) = &encs.software else {
            return out;
        };
        if !e.element.is_empty() && e.element != out.element {
            return EncoderChoice::from_entry(e, codec);
        }
        for (k, v) in &e.properties {
            match out.properties.iter_mut().find(|(key, _)| key == k) {
                Some(slot) => slot.1 = v.clone(),
                None => out.properties.push((k.clone(), v.clone())),
            }
        }
        if let Some(c) = &e.convert {
            out.convert = c.clone();
        }
        if e.input_caps.is_some() {
            out.input_caps = e.input_caps.clone();
        }
        if let Some(c) = &e.output_caps {
            out.caps = c.clone();
        }
        out
    }

    /// Every element this choice puts in a pipeline.
    pub fn elements(&self) -> [&str; 2] {
        [self.convert.as_str(), self.element.as_str()]
    }
}

/// The encoder one codec gets on this board, and why.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EncoderPick {
    pub codec: VideoCodec,
    pub choice: EncoderChoice,
    /// A hardware encoder of the profile (else the software fallback).
    pub hardware: bool,
    pub reason: String,
}

/// The encoder for `codec` on the selected board. `exists` says whether this GStreamer has
/// an element (`gst::ElementFactory::find`): the first hardware encoder of the profile
/// whose elements all exist is used, unless the device tree names a variant without the
/// hardware; otherwise the software fallback, with the reason.
pub fn pick(board: &Selection, codec: VideoCodec, exists: impl Fn(&str) -> bool) -> EncoderPick {
    let p = &board.profile;
    let encs = p.encoders.of(codec);
    let codec_name = match codec {
        VideoCodec::H264 => "H.264",
        VideoCodec::Vp8 => "VP8",
    };
    let software = |reason: String| EncoderPick {
        codec,
        choice: EncoderChoice::fallback(encs, codec),
        hardware: false,
        reason,
    };
    if encs.hardware.is_empty() {
        return software(format!(
            "board {} has no hardware {codec_name} encoder: software",
            p.name
        ));
    }
    if let Some(no) = &p.no_hardware_encoder
        && let Some(c) = board
            .device_tree
            .compatible
            .iter()
            .find(|c| no.compatible.iter().any(|n| n.eq_ignore_ascii_case(c)))
    {
        return software(format!(
            "{} (device tree compatible {c:?}): software fallback",
            no.reason
        ));
    }
    let mut missing = Vec::new();
    for e in &encs.hardware {
        let choice = EncoderChoice::from_entry(e, codec);
        let absent: Vec<&str> = choice
            .elements()
            .into_iter()
            .filter(|el| !exists(el))
            .collect();
        if absent.is_empty() {
            return EncoderPick {
                codec,
                reason: format!(
                    "hardware encoder {} of board {} is in this GStreamer",
                    choice.element, p.name
                ),
                choice,
                hardware: true,
            };
        }
        missing.extend(absent.into_iter().map(String::from));
    }
    missing.dedup();
    software(format!(
        "{} not in this GStreamer (gst-inspect-1.0 finds no {}): software fallback",
        if missing.len() == 1 {
            format!("hardware encoder element {} is", missing[0])
        } else {
            format!("elements {} are", missing.join(", "))
        },
        missing.join(" or ")
    ))
}
