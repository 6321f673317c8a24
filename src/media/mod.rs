//! Live video: GStreamer pipelines that encode each stream once ([`pipeline`]), and WebRTC
//! out to many browsers over one UDP socket ([`rtc`]), signalled by WHEP ([`whep`]), glued by
//! the [`hub`]. All of it runs in the media process, `outpost-media`, which the agent starts,
//! feeds and restarts ([`process`]).

pub mod hub;
pub mod pipeline;
pub mod process;
pub mod rtc;
pub mod whep;

use crate::config::{StreamSource, StreamSpec};

/// An unwatched camera is not opened; its absence is still worth showing: a camera stream
/// whose device node is missing.
pub fn absent_camera(spec: &StreamSpec) -> Option<String> {
    match &spec.source {
        StreamSource::V4l2 { device } if !std::path::Path::new(device).exists() => {
            Some(format!("camera {device} is absent"))
        }
        _ => None,
    }
}
