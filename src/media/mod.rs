//! Live video: GStreamer pipelines that encode each stream once ([`pipeline`]), and WebRTC
//! out to many browsers over one UDP socket ([`rtc`]), signalled by WHEP ([`whep`]), glued by
//! the [`hub`]. All of it runs in the media process, `outpost-media`, which the agent starts,
//! feeds and restarts ([`process`]).

pub mod hub;
pub mod pipeline;
pub mod process;
pub mod rtc;
pub mod whep;
