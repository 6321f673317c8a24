//! Live video: GStreamer pipelines that encode each stream once ([`pipeline`]), and WebRTC
//! out to many browsers over one UDP socket ([`rtc`]), signalled by WHEP ([`whep`]).

pub mod hub;
pub mod pipeline;
pub mod rtc;
pub mod whep;
