//! Live video: GStreamer pipelines that encode each stream once ([`pipeline`]), and (being
//! built) WebRTC out to many browsers over one UDP socket, signalled by WHEP.

pub mod pipeline;
