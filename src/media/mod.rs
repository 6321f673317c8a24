//! Live video: GStreamer pipelines that encode each stream once ([`pipeline`]), each in a
//! worker process of its own ([`worker`]), and WebRTC out to many browsers over one UDP
//! socket ([`rtc`]), signalled by WHEP ([`whep`]).

pub mod hub;
pub mod pipeline;
pub mod process;
pub mod rtc;
pub mod whep;
