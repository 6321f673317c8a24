//! One viewer: its str0m peer connection, the tracks frames go to, its frame queue and its
//! deadlines; and the one function that drains the connection after a mutation.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use str0m::format::Codec;
use str0m::media::{Frequency, MediaAdded, MediaKind, MediaTime, Mid, Pt};
use str0m::{Event, IceConnectionState, Input, Output, Rtc, RtcError};

use super::queue::{FrameQueue, Queued};
use super::{Transmit, ViewerId};
use crate::config::stream::VideoCodec;

/// Where a viewer's frames of one kind go.
#[derive(Clone, Copy, Debug)]
pub struct Track {
    pub mid: Mid,
    pub pt: Pt,
}

/// What a viewer's connection reported while it was drained, for the gateway to act on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerEvent {
    /// ICE, DTLS and SRTP are up: media may flow.
    Connected,
    /// The browser sent PLI or FIR.
    KeyframeRequest,
    /// ICE-lite saw no check from the browser for 15 s, or the connection closed.
    Disconnected,
}

/// How many times one drain feeds str0m a timeout that is already due before it leaves the
/// rest to the next [`Gateway::handle_timeout`](super::Gateway::handle_timeout); str0m
/// settles in one or two, this only guards against a loop.
const MAX_DUE_ROUNDS: usize = 8;

pub struct Viewer {
    pub id: ViewerId,
    pub stream: Arc<str>,
    pub session: String,
    pub rtc: Rtc,
    pub codec: VideoCodec,
    /// Whether the stream has audio and the offer takes Opus.
    pub wants_audio: bool,
    pub connected: bool,
    pub video: Option<Track>,
    pub audio: Option<Track>,
    pub queue: FrameQueue,
    /// In the gateway's round-robin of viewers with queued frames.
    pub in_ready: bool,
    /// str0m's next deadline.
    pub next_timeout: Instant,
    pub created: Instant,
    /// Last datagram this viewer accepted: silence beyond the gateway's limit reaps it.
    pub last_rx: Instant,
    /// Source addresses routed to this viewer in the gateway's address map (at most
    /// [`MAX_ADDRS_PER_VIEWER`](super::MAX_ADDRS_PER_VIEWER)).
    pub addrs: Vec<SocketAddr>,
}

impl Viewer {
    /// Drains the connection after one mutation, as str0m requires: datagrams go to `out`,
    /// events the gateway acts on to `events`, and str0m's next deadline is kept. A
    /// deadline already due is fed back at once.
    pub fn drain(
        &mut self,
        now: Instant,
        out: &mut VecDeque<Transmit>,
        events: &mut Vec<PeerEvent>,
    ) -> Result<(), RtcError> {
        let mut due_rounds = 0;
        loop {
            match self.rtc.poll_output()? {
                Output::Transmit(t) => out.push_back(Transmit {
                    destination: t.destination,
                    contents: t.contents.into(),
                }),
                Output::Event(e) => self.on_event(e, events),
                Output::Timeout(t) => {
                    if t <= now && due_rounds < MAX_DUE_ROUNDS && self.rtc.is_alive() {
                        due_rounds += 1;
                        self.rtc.handle_input(Input::Timeout(now))?;
                        continue;
                    }
                    self.next_timeout = t;
                    break;
                }
            }
        }
        if !self.rtc.is_alive() {
            events.push(PeerEvent::Disconnected);
        }
        Ok(())
    }

    fn on_event(&mut self, e: Event, events: &mut Vec<PeerEvent>) {
        match e {
            Event::Connected => {
                self.connected = true;
                events.push(PeerEvent::Connected);
            }
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) | Event::Closed => {
                events.push(PeerEvent::Disconnected)
            }
            Event::MediaAdded(m) => self.on_media_added(m),
            Event::KeyframeRequest(_) => events.push(PeerEvent::KeyframeRequest),
            _ => {}
        }
    }

    /// Picks the payload type frames of this media go out with; the first sending media of
    /// each kind is used, any further one stays silent.
    fn on_media_added(&mut self, m: MediaAdded) {
        if !m.direction.is_sending() {
            return;
        }
        let video = m.kind == MediaKind::Video;
        if (video && self.video.is_some())
            || (!video && (self.audio.is_some() || !self.wants_audio))
        {
            return;
        }
        let Some(writer) = self.rtc.writer(m.mid) else {
            return;
        };
        let codec = self.codec;
        let pt = writer
            .payload_params()
            .filter(|p| {
                let s = p.spec();
                match (video, codec) {
                    (false, _) => s.codec == Codec::Opus,
                    (true, VideoCodec::Vp8) => s.codec == Codec::Vp8,
                    (true, VideoCodec::H264) => {
                        s.codec == Codec::H264 && s.format.packetization_mode == Some(1)
                    }
                }
            })
            // Constrained baseline first: it is what the encoder makes.
            .max_by_key(|p| p.spec().format.profile_level_id == Some(0x42e01f))
            .map(|p| p.pt());
        let Some(pt) = pt else {
            tracing::debug!(viewer = %self.id, mid = %m.mid, "no payload type for {:?}", m.kind);
            return;
        };
        let track = Some(Track { mid: m.mid, pt });
        if video {
            self.video = track;
        } else {
            self.audio = track;
        }
    }

    /// Writes one frame to its track (a mutation: drain afterwards). Frames of a kind the
    /// viewer has no track for are dropped.
    pub fn write(&mut self, q: Queued) -> Result<(), RtcError> {
        let (track, rate) = if q.frame.video {
            (self.video, Frequency::NINETY_KHZ)
        } else {
            (self.audio, Frequency::FORTY_EIGHT_KHZ)
        };
        let Some(track) = track else { return Ok(()) };
        let Some(writer) = self.rtc.writer(track.mid) else {
            return Ok(());
        };
        let ticks = q.frame.pts.as_nanos() * u128::from(rate.get()) / 1_000_000_000;
        let time = MediaTime::new(ticks as u64, rate);
        writer.write(track.pt, q.at, time, q.frame.data)
    }
}
