//! Live video: GStreamer pipelines that encode each stream once ([`pipeline`]), and WebRTC
//! out to many browsers over one UDP socket, signalled by WHEP ([`rtc`], [`whep`]).
