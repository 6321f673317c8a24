//! The WebRTC side of the video gateway: every viewer's peer connection (str0m, ICE-lite,
//! DTLS-SRTP) over one UDP socket, and the fan-out of each stream's encoded frames to them.
//!
//! [`Gateway`] is a sans-IO core; [`udp`] is the only code that touches the socket.
//!
//! # Driver contract
//!
//! Like str0m's `Rtc` and quinn-proto's `Connection`, the gateway never reads a clock, owns no
//! socket and spawns nothing. There are three kinds of methods:
//!
//! - **inputs**, each taking `now`: [`Gateway::add_viewer`], [`Gateway::remove_viewer`],
//!   [`Gateway::set_streams`], [`Gateway::push_frame`], [`Gateway::handle_packet`] (one
//!   datagram from the socket) and [`Gateway::handle_timeout`] (the deadline
//!   [`Gateway::poll_timeout`] gave has passed);
//! - **outputs**: [`Gateway::poll_transmit`] (a datagram to send; it also moves queued frames
//!   into the viewers' connections, so it takes `now`), [`Gateway::poll_event`] and
//!   [`Gateway::poll_timeout`];
//! - **queries**: [`Gateway::viewers`], [`Gateway::session`], [`Gateway::stats`].
//!
//! After any input the shell drains `poll_transmit` until `None` (sending each datagram),
//! then `poll_event` until `None`, then sleeps until `poll_timeout`, a datagram or the next
//! input. Every viewer's str0m `Rtc` is drained inside the gateway after each of its own
//! mutations, so str0m's single-mutation rule holds whatever the shell does.
//!
//! # Fan-out and its bounds
//!
//! A frame pushed for a stream is shared (an `Arc`), not copied, into the bounded queue of
//! each connected viewer ([`MAX_QUEUED_VIDEO`], [`MAX_QUEUED_AUDIO`]). Frames
//! leave the queues round-robin, one frame of one viewer at a time, only while fewer than
//! [`OUT_REFILL`] datagrams wait for the shell: if the shell cannot send fast enough, the
//! queues fill, and a viewer whose video queue overflows drops it and waits for the next
//! keyframe ([`GatewayEvent::KeyframeWanted`]) instead of stalling the others or growing.
//! Frames are never re-encoded: str0m only packetizes and encrypts them per viewer.
//!
//! # Memory per viewer
//!
//! About 160 KB of heap once a ~1 Mbit/s stream flows (`tests/whep.rs` counts it and keeps it
//! under 256 KiB): str0m's connection state (~70 KB once DTLS is up), its buffer of sent
//! packets for NACK resends ([`SEND_BUFFER_VIDEO`] video and [`SEND_BUFFER_AUDIO`] audio
//! packets, ~65 KB; str0m's defaults of 1000 and 50 held ~450 KB at 1 Mbit/s), the frame
//! queue (references only) and the routing entries. The transport-cc RTP extension is not
//! negotiated: nothing here would read its feedback, and its register cost ~80 KB more.

mod offer;
mod queue;
#[cfg(test)]
mod tests;
pub mod udp;
mod viewer;

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lc_rs::hmac;
use str0m::change::SdpOffer;
use str0m::config::{CryptoProvider, DtlsCert};
use str0m::net::{Protocol, Receive};
use str0m::rtp::Extension;
use str0m::{Candidate, Input, Rtc, RtcConfig};

use crate::config::stream::{StreamSpec, VideoCodec};
use queue::{FrameQueue, Pushed};
pub use queue::{MAX_QUEUED_AUDIO, MAX_QUEUED_VIDEO};
use viewer::{PeerEvent, Viewer};

/// One encoded frame of a stream, as the pipeline hands it over: a whole VP8 frame or H.264
/// access unit (Annex B, with SPS/PPS before each IDR), or one Opus packet. Its data is
/// shared by every viewer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    pub video: bool,
    pub data: Arc<[u8]>,
    /// A frame a decoder can start from (always true for audio).
    pub keyframe: bool,
    /// Presentation time on the stream's clock; only differences matter.
    pub pts: Duration,
}

/// A viewer, unique for the gateway's lifetime (never reused).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ViewerId(pub u64);

impl fmt::Display for ViewerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "viewer {}", self.0)
    }
}

/// A datagram for the shell to send from the gateway's socket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    pub destination: SocketAddr,
    pub contents: Vec<u8>,
}

/// What the gateway tells its owner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GatewayEvent {
    /// ICE, DTLS and SRTP are up; frames flow from the next keyframe.
    ViewerConnected { id: ViewerId, stream: Arc<str> },
    /// A viewer waits for a keyframe: it just connected, sent PLI/FIR, fell behind, or still
    /// waits [`KEYFRAME_RETRY`] after the last one. At most one is pending per stream; the
    /// owner throttles (deferring, not dropping, is kindest) and asks the encoder.
    KeyframeWanted { stream: Arc<str> },
    /// The viewer is gone and its memory freed; exactly once per viewer.
    ViewerGone {
        id: ViewerId,
        stream: Arc<str>,
        reason: GoneReason,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GoneReason {
    /// [`Gateway::remove_viewer`] (a WHEP DELETE).
    Removed,
    /// ICE-lite saw no connectivity check for 15 s, or the browser closed DTLS.
    Disconnected,
    /// Nothing at all arrived for [`GatewayConfig::silence_timeout`].
    Silent,
    /// Not connected within [`GatewayConfig::connect_timeout`] of the offer.
    NeverConnected,
    /// The stream was removed or its codec changed ([`Gateway::set_streams`]).
    StreamChanged,
    /// str0m failed on this viewer's input; the message says how.
    Failed(String),
}

/// Why a viewer could not join; [`crate::media::whep`] maps each to an HTTP status. The
/// gateway is unchanged by any of them.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum JoinError {
    #[error("no stream named {0:?}")]
    UnknownStream(String),
    /// The SDP does not parse, or str0m refuses it; the message quotes the reason.
    #[error("bad SDP offer: {0}")]
    BadOffer(String),
    /// The offer parses but cannot receive what the stream sends.
    #[error("{0}")]
    NoCommonCodec(String),
    #[error("stream {stream:?} has its maximum of {max} viewers")]
    Full { stream: String, max: usize },
}

/// Settings of a gateway.
#[derive(Clone, Debug)]
pub struct GatewayConfig {
    /// The socket address browsers reach the gateway at: its one ICE host candidate, and the
    /// destination of every datagram the shell hands in.
    pub addr: SocketAddr,
    /// Key that makes session URLs unguessable (32 random bytes from the shell; tests pass
    /// a fixed one).
    pub session_key: [u8; 32],
    /// A viewer from which nothing arrives this long is dropped (browsers send RTCP every
    /// second and ICE consent checks every few seconds).
    pub silence_timeout: Duration,
    /// A viewer not connected this long after its offer is dropped.
    pub connect_timeout: Duration,
}

impl GatewayConfig {
    pub fn new(addr: SocketAddr, session_key: [u8; 32]) -> GatewayConfig {
        GatewayConfig {
            addr,
            session_key,
            silence_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// Counters for the status page and the logs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GatewayStats {
    pub viewers: usize,
    pub datagrams_in: u64,
    /// Datagrams no viewer accepted (stray, late, or from a viewer already gone).
    pub datagrams_unroutable: u64,
    pub datagrams_out: u64,
    /// Frames not sent to some viewer: waiting for a keyframe, or queue overflow.
    pub frames_dropped: u64,
}

/// Video packets str0m keeps per viewer to answer NACKs: ~0.4 s at 1 Mbit/s (about 65 KB,
/// filled as packets are sent), a keyframe and more, and far longer than a LAN round trip.
/// str0m's default (1000, kept up to 3 s) held ~450 KB per viewer at 1 Mbit/s.
pub const SEND_BUFFER_VIDEO: usize = 48;
/// Audio packets kept per viewer (str0m sends Opus without NACK, so these only bridge a
/// write and its drain).
pub const SEND_BUFFER_AUDIO: usize = 4;
/// The pump moves queued frames into the viewers' connections only while fewer datagrams
/// than this wait for the shell, which bounds the gateway's output (~80 KB).
pub const OUT_REFILL: usize = 64;
/// A viewer still waiting for a keyframe this long after the last `KeyframeWanted` of its
/// stream makes the gateway ask again.
pub const KEYFRAME_RETRY: Duration = Duration::from_secs(1);
/// Source addresses remembered per viewer for routing (each browser uses one or two).
pub const MAX_ADDRS_PER_VIEWER: usize = 4;

struct StreamState {
    codec: VideoCodec,
    audio: bool,
    max_viewers: usize,
    viewers: Vec<ViewerId>,
    /// A `KeyframeWanted` for this stream is queued and not yet polled.
    keyframe_pending: bool,
    /// When the last `KeyframeWanted` was queued, to ask again after [`KEYFRAME_RETRY`].
    keyframe_asked: Option<Instant>,
}

/// All viewers of all streams, on one UDP socket. See the module docs for the contract.
pub struct Gateway {
    config: GatewayConfig,
    /// Made once: generating one costs 80-200 ms of CPU on a small board.
    cert: DtlsCert,
    crypto: Arc<CryptoProvider>,
    session_key: hmac::Key,
    streams: HashMap<Arc<str>, StreamState>,
    viewers: HashMap<ViewerId, Viewer>,
    sessions: HashMap<String, ViewerId>,
    by_addr: HashMap<SocketAddr, ViewerId>,
    /// Viewers with queued frames, served round-robin.
    ready: VecDeque<ViewerId>,
    out: VecDeque<Transmit>,
    events: VecDeque<GatewayEvent>,
    /// Reused for every drain.
    peer_events: Vec<PeerEvent>,
    next_id: u64,
    stats: GatewayStats,
}

impl Gateway {
    /// Makes the gateway's DTLS certificate (the one slow step); fails only if the crypto
    /// provider cannot make one.
    pub fn new(config: GatewayConfig) -> Result<Gateway, String> {
        let crypto = Arc::new(str0m::crypto::from_feature_flags());
        let cert = crypto
            .dtls_provider
            .generate_certificate()
            .ok_or("the crypto provider (aws-lc-rs) could not make a DTLS certificate")?;
        let session_key = hmac::Key::new(hmac::HMAC_SHA256, &config.session_key);
        Ok(Gateway {
            config,
            cert,
            crypto,
            session_key,
            streams: HashMap::new(),
            viewers: HashMap::new(),
            sessions: HashMap::new(),
            by_addr: HashMap::new(),
            ready: VecDeque::new(),
            out: VecDeque::new(),
            events: VecDeque::new(),
            peer_events: Vec::new(),
            next_id: 1,
            stats: GatewayStats::default(),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.config.addr
    }

    /// Sets the streams viewers may join (at start and on every reload). Viewers of a
    /// stream that is gone, or whose codec or audio changed, are dropped
    /// ([`GoneReason::StreamChanged`]); a lower `max_viewers` refuses new viewers only.
    pub fn set_streams(&mut self, now: Instant, specs: &[StreamSpec]) {
        let mut drop = Vec::new();
        self.streams.retain(|name, s| {
            let keep = specs
                .iter()
                .any(|n| *n.name == **name && n.codec == s.codec && n.audio == s.audio);
            if !keep {
                drop.extend(s.viewers.iter().copied());
            }
            keep
        });
        for id in drop {
            self.remove(now, id, GoneReason::StreamChanged);
        }
        for spec in specs {
            match self.streams.get_mut(spec.name.as_str()) {
                Some(s) => s.max_viewers = spec.max_viewers,
                None => {
                    self.streams.insert(
                        spec.name.as_str().into(),
                        StreamState {
                            codec: spec.codec,
                            audio: spec.audio,
                            max_viewers: spec.max_viewers,
                            viewers: Vec::new(),
                            keyframe_pending: false,
                            keyframe_asked: None,
                        },
                    );
                }
            }
        }
    }

    /// Viewers of `stream` now (`None`: no such stream).
    pub fn viewers(&self, stream: &str) -> Option<usize> {
        self.streams.get(stream).map(|s| s.viewers.len())
    }

    /// The viewer and stream a WHEP session id names.
    pub fn session(&self, session: &str) -> Option<(ViewerId, &str)> {
        let id = *self.sessions.get(session)?;
        Some((id, &*self.viewers.get(&id)?.stream))
    }

    pub fn stats(&self) -> GatewayStats {
        let dropped: u64 = self.viewers.values().map(|v| v.queue.dropped).sum();
        GatewayStats {
            viewers: self.viewers.len(),
            frames_dropped: self.stats.frames_dropped + dropped,
            ..self.stats
        }
    }

    /// Answers a viewer's SDP offer: a peer connection that sends `stream` (its video codec,
    /// and Opus if the stream has audio and the offer takes it), ICE-lite with the
    /// gateway's address as the only candidate, so the answer is complete (no trickle).
    pub fn add_viewer(
        &mut self,
        now: Instant,
        stream: &str,
        offer_sdp: &str,
    ) -> Result<Joined, JoinError> {
        let Some((name, s)) = self.streams.get_key_value(stream) else {
            return Err(JoinError::UnknownStream(stream.into()));
        };
        let (name, codec, audio) = (name.clone(), s.codec, s.audio);
        if s.viewers.len() >= s.max_viewers {
            return Err(JoinError::Full {
                stream: stream.into(),
                max: s.max_viewers,
            });
        }
        let offer = SdpOffer::from_sdp_string(offer_sdp)
            .map_err(|e| JoinError::BadOffer(parse_reason(&e.to_string())))?;
        let offered = offer::check(offer_sdp, stream, codec).map_err(JoinError::NoCommonCodec)?;

        let mut rtc = self.rtc_config(codec, audio && offered.opus).build(now);
        let candidate = Candidate::host(self.config.addr, "udp").map_err(|e| {
            JoinError::BadOffer(format!("host candidate {}: {e}", self.config.addr))
        })?;
        rtc.add_local_candidate(candidate);
        let answer = rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| JoinError::BadOffer(e.to_string()))?
            .to_sdp_string();
        if !offer::answer_has_video(&answer) {
            return Err(JoinError::NoCommonCodec(format!(
                "no video codec of the offer matches stream {stream:?}'s {}",
                codec.as_str()
            )));
        }

        let id = ViewerId(self.next_id);
        self.next_id += 1;
        let session = self.session_id(id);
        let mut v = Viewer {
            id,
            stream: name.clone(),
            session: session.clone(),
            rtc,
            codec,
            wants_audio: audio && offered.opus,
            connected: false,
            video: None,
            audio: None,
            queue: FrameQueue::default(),
            in_ready: false,
            next_timeout: now,
            created: now,
            last_rx: now,
            addrs: Vec::new(),
        };
        self.peer_events.clear();
        if let Err(e) = v.drain(now, &mut self.out, &mut self.peer_events) {
            return Err(JoinError::BadOffer(e.to_string()));
        }
        tracing::debug!(%id, stream = %name, "viewer added");
        self.sessions.insert(session.clone(), id);
        self.viewers.insert(id, v);
        if let Some(s) = self.streams.get_mut(&name) {
            s.viewers.push(id);
        }
        Ok(Joined {
            id,
            session,
            answer,
        })
    }

    /// Drops a viewer at once, sending it a DTLS close and an RTCP BYE. `false`: no such
    /// viewer (already gone).
    pub fn remove_viewer(&mut self, now: Instant, id: ViewerId) -> bool {
        self.remove(now, id, GoneReason::Removed)
    }

    /// Hands a frame of `stream` to every connected viewer's queue. `false`: no such stream.
    pub fn push_frame(&mut self, now: Instant, stream: &str, frame: &Frame) -> bool {
        let Some(s) = self.streams.get_mut(stream) else {
            return false;
        };
        let mut want_keyframe = false;
        let mut waiting = false;
        for id in &s.viewers {
            let Some(v) = self.viewers.get_mut(id) else {
                continue;
            };
            let track = if frame.video { &v.video } else { &v.audio };
            if !v.connected || track.is_none() {
                continue;
            }
            match v.queue.push(frame, now) {
                Pushed::Queued => {
                    if !v.in_ready {
                        v.in_ready = true;
                        self.ready.push_back(*id);
                    }
                }
                Pushed::Overflow => {
                    tracing::debug!(id = %v.id, "viewer fell behind; waiting for a keyframe");
                    want_keyframe = true;
                }
                Pushed::WaitingForKeyframe => waiting = true,
            }
        }
        // A viewer still waiting a while after the last request: the owner's throttle may
        // have eaten it, or the keyframe was lost on the way; ask again.
        if waiting && s.keyframe_asked.is_none_or(|t| now >= t + KEYFRAME_RETRY) {
            want_keyframe = true;
        }
        if want_keyframe {
            let name = self.streams.get_key_value(stream).map(|(k, _)| k.clone());
            if let Some(name) = name {
                self.want_keyframe(now, &name);
            }
        }
        true
    }

    /// One datagram that arrived on the gateway's socket from `from`. Datagrams no viewer
    /// accepts are counted and dropped.
    pub fn handle_packet(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        self.stats.datagrams_in += 1;
        let Ok(receive) = Receive::new(Protocol::Udp, from, self.config.addr, data) else {
            self.stats.datagrams_unroutable += 1;
            return;
        };
        let input = Input::Receive(now, receive);
        let known = self
            .by_addr
            .get(&from)
            .copied()
            .filter(|id| self.viewers.get(id).is_some_and(|v| v.rtc.accepts(&input)));
        let id = known.or_else(|| {
            self.viewers
                .values()
                .find(|v| v.rtc.accepts(&input))
                .map(|v| v.id)
        });
        let Some(id) = id else {
            self.stats.datagrams_unroutable += 1;
            return;
        };
        let Some(v) = self.viewers.get_mut(&id) else {
            return;
        };
        v.last_rx = now;
        if known.is_none() {
            if v.addrs.len() >= MAX_ADDRS_PER_VIEWER {
                let old = v.addrs.remove(0);
                self.by_addr.remove(&old);
            }
            v.addrs.push(from);
            if let Some(previous) = self.by_addr.insert(from, id)
                && let Some(p) = self.viewers.get_mut(&previous)
            {
                p.addrs.retain(|a| *a != from);
            }
        }
        let v = self.viewers.get_mut(&id).expect("the viewer routed to");
        let result = v
            .rtc
            .handle_input(input)
            .and_then(|()| v.drain(now, &mut self.out, &mut self.peer_events));
        self.after_mutation(now, id, result);
    }

    /// Advances every viewer whose deadline has passed, and drops the viewers that went
    /// silent or never connected.
    pub fn handle_timeout(&mut self, now: Instant) {
        let due: Vec<ViewerId> = self
            .viewers
            .values()
            .filter(|v| v.next_timeout <= now)
            .map(|v| v.id)
            .collect();
        for id in due {
            let Some(v) = self.viewers.get_mut(&id) else {
                continue;
            };
            let result = v
                .rtc
                .handle_input(Input::Timeout(now))
                .and_then(|()| v.drain(now, &mut self.out, &mut self.peer_events));
            self.after_mutation(now, id, result);
        }
        let (silence, connect) = (self.config.silence_timeout, self.config.connect_timeout);
        let reap: Vec<(ViewerId, GoneReason)> = self
            .viewers
            .values()
            .filter_map(|v| {
                if !v.connected && now >= v.created + connect {
                    Some((v.id, GoneReason::NeverConnected))
                } else if now >= v.last_rx + silence {
                    Some((v.id, GoneReason::Silent))
                } else {
                    None
                }
            })
            .collect();
        for (id, reason) in reap {
            self.remove(now, id, reason);
        }
    }

    /// The next datagram to send. When none waits, it first moves queued frames into the
    /// viewers' connections (round-robin, up to [`OUT_REFILL`] datagrams), so the gateway's
    /// output never holds more than that plus one frame.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Transmit> {
        if self.out.is_empty() {
            self.pump(now);
        }
        let t = self.out.pop_front()?;
        self.stats.datagrams_out += 1;
        Some(t)
    }

    pub fn poll_event(&mut self) -> Option<GatewayEvent> {
        let e = self.events.pop_front()?;
        if let GatewayEvent::KeyframeWanted { stream } = &e
            && let Some(s) = self.streams.get_mut(stream)
        {
            s.keyframe_pending = false;
        }
        Some(e)
    }

    /// When to call [`Gateway::handle_timeout`] next (`None`: no viewer, no deadline).
    pub fn poll_timeout(&self) -> Option<Instant> {
        let (silence, connect) = (self.config.silence_timeout, self.config.connect_timeout);
        self.viewers
            .values()
            .map(|v| {
                let reap = if v.connected {
                    v.last_rx + silence
                } else {
                    (v.created + connect).min(v.last_rx + silence)
                };
                v.next_timeout.min(reap)
            })
            .min()
    }

    fn pump(&mut self, now: Instant) {
        while self.out.len() < OUT_REFILL {
            let Some(id) = self.ready.pop_front() else {
                break;
            };
            let Some(v) = self.viewers.get_mut(&id) else {
                continue;
            };
            v.in_ready = false;
            let Some(q) = v.queue.pop() else { continue };
            if !v.queue.is_empty() {
                v.in_ready = true;
                self.ready.push_back(id);
            }
            let result = v
                .write(q)
                .and_then(|()| v.drain(now, &mut self.out, &mut self.peer_events));
            self.after_mutation(now, id, result);
        }
    }

    /// Acts on what a viewer's drain reported.
    fn after_mutation(&mut self, now: Instant, id: ViewerId, result: Result<(), str0m::RtcError>) {
        let events = std::mem::take(&mut self.peer_events);
        let stream = self.viewers.get(&id).map(|v| v.stream.clone());
        let mut gone = match result {
            Ok(()) => None,
            Err(e) => Some(GoneReason::Failed(e.to_string())),
        };
        if let Some(stream) = stream {
            for e in &events {
                match e {
                    PeerEvent::Connected => {
                        tracing::debug!(%id, %stream, "viewer connected");
                        self.events.push_back(GatewayEvent::ViewerConnected {
                            id,
                            stream: stream.clone(),
                        });
                        self.want_keyframe(now, &stream);
                    }
                    PeerEvent::KeyframeRequest => self.want_keyframe(now, &stream),
                    PeerEvent::Disconnected => {
                        gone.get_or_insert(GoneReason::Disconnected);
                    }
                }
            }
        }
        self.peer_events = events;
        self.peer_events.clear();
        if let Some(reason) = gone {
            self.remove(now, id, reason);
        }
    }

    fn want_keyframe(&mut self, now: Instant, stream: &Arc<str>) {
        if let Some(s) = self.streams.get_mut(stream)
            && !s.keyframe_pending
        {
            s.keyframe_pending = true;
            s.keyframe_asked = Some(now);
            self.events.push_back(GatewayEvent::KeyframeWanted {
                stream: stream.clone(),
            });
        }
    }

    fn remove(&mut self, now: Instant, id: ViewerId, reason: GoneReason) -> bool {
        let Some(mut v) = self.viewers.remove(&id) else {
            return false;
        };
        if v.rtc.is_alive() && matches!(reason, GoneReason::Removed | GoneReason::StreamChanged) {
            // Tell the browser (DTLS close_notify, RTCP BYE) rather than let it time out.
            let mut ignored = Vec::new();
            if v.rtc.close().is_ok() {
                let _ = v.drain(now, &mut self.out, &mut ignored);
            }
        }
        for a in &v.addrs {
            self.by_addr.remove(a);
        }
        self.sessions.remove(&v.session);
        if let Some(s) = self.streams.get_mut(&v.stream) {
            s.viewers.retain(|x| *x != id);
        }
        self.stats.frames_dropped += v.queue.dropped;
        tracing::debug!(%id, stream = %v.stream, ?reason, "viewer gone");
        self.events.push_back(GatewayEvent::ViewerGone {
            id,
            stream: v.stream.clone(),
            reason,
        });
        true
    }

    fn rtc_config(&self, codec: VideoCodec, audio: bool) -> RtcConfig {
        let mut c = Rtc::builder()
            .set_ice_lite(true)
            .set_crypto_provider(self.crypto.clone())
            .set_dtls_cert(self.cert.clone())
            .clear_codecs()
            .set_send_buffer_video(SEND_BUFFER_VIDEO)
            .set_send_buffer_audio(SEND_BUFFER_AUDIO)
            .set_stats_interval(None)
            // Only what a receiver needs: the mid for BUNDLE, and abs-send-time for the
            // browser's own estimate. No transport-cc: without str0m's bandwidth estimator
            // nothing reads its feedback, and its send register alone held ~80 KB per viewer
            // (1000 records) while the browser sent feedback every ~50 ms.
            .clear_extension_map()
            .set_extension(2, Extension::AbsoluteSendTime)
            .set_extension(4, Extension::RtpMid);
        match codec {
            VideoCodec::Vp8 => c = c.enable_vp8(true),
            VideoCodec::H264 => {
                // Constrained baseline and baseline, packetization mode 1, each with RTX:
                // what the encoder makes, under the profile ids browsers offer.
                let cc = c.codec_config();
                cc.add_h264(108.into(), Some(109.into()), true, 0x42e01f);
                cc.add_h264(127.into(), Some(121.into()), true, 0x42001f);
            }
        }
        if audio {
            c = c.enable_opus(true, false);
        }
        c
    }

    /// The WHEP session id of `id`: a MAC of the id under the gateway's key, so that a
    /// session URL cannot be guessed from another.
    fn session_id(&self, id: ViewerId) -> String {
        let tag = hmac::sign(&self.session_key, &id.0.to_be_bytes());
        let mut s = String::with_capacity(32);
        for b in &tag.as_ref()[..16] {
            s.push_str(&format!("{b:02x}"));
        }
        s
    }
}

/// A viewer that joined: its id, the WHEP session id for its URL, and the SDP answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Joined {
    pub id: ViewerId,
    pub session: String,
    pub answer: String,
}

/// The SDP parser's message without the memory address it names the position by (a
/// `PointerOffset(0x...)` says nothing to the client and shows an address of this process).
fn parse_reason(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(i) = rest.find("at PointerOffset(") {
        out.push_str(rest[..i].trim_end());
        rest = rest[i..].find(')').map_or("", |j| &rest[i + j + 1..]);
    }
    out.push_str(rest);
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}
