//! The gateway against in-process str0m peers playing browsers, on virtual time: every
//! datagram is handed across by [`Sim`], which can also cut a viewer off or stop sending
//! (a blocked socket).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::change::{SdpAnswer, SdpPendingOffer};
use str0m::media::{Direction, KeyframeRequestKind, MediaKind, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc};

use super::*;
use crate::config::stream::StreamSpec;

const KEY: [u8; 32] = [7; 32];
const FRAME: Duration = Duration::from_millis(33);

fn gw_addr() -> SocketAddr {
    "10.0.0.1:5000".parse().unwrap()
}

fn spec(name: &str, max_viewers: usize) -> StreamSpec {
    StreamSpec {
        name: name.into(),
        max_viewers,
        ..StreamSpec::dev_test()
    }
}

/// A VP8-shaped frame: the frame tag's bit 0 is 0 on keyframes, and keyframes carry the
/// start code and size, as vp8enc's output does.
fn vp8(n: u64, keyframe: bool, len: usize) -> Frame {
    let mut data = vec![0u8; len];
    data[0] = if keyframe { 0x10 } else { 0x11 };
    if keyframe {
        data[3..6].copy_from_slice(&[0x9d, 0x01, 0x2a]);
        data[6..10].copy_from_slice(&[0x80, 0x02, 0xe0, 0x01]); // 640x480
    }
    data[len - 1] = n as u8;
    Frame {
        video: true,
        data: Arc::from(data),
        keyframe,
        pts: FRAME * n as u32,
    }
}

fn opus(n: u64) -> Frame {
    Frame {
        video: false,
        data: Arc::from(vec![0xfc, 0xff, 0xfe, n as u8]),
        keyframe: true,
        pts: Duration::from_millis(20 * n),
    }
}

/// A browser-like peer: full ICE, offers to receive video (and audio).
struct Browser {
    rtc: Rtc,
    addr: SocketAddr,
    video_mid: Mid,
    connected: bool,
    closed: bool,
    video_frames: Vec<(bool, usize)>,
    audio_frames: usize,
    /// Datagrams from this browser are lost (it went away without a word).
    cut: bool,
}

impl Browser {
    fn new(
        now: Instant,
        port: u16,
        builder: str0m::RtcConfig,
        audio: bool,
    ) -> (Browser, String, SdpPendingOffer) {
        let addr: SocketAddr = format!("10.0.0.2:{port}").parse().unwrap();
        let mut rtc = builder.build(now);
        rtc.add_local_candidate(Candidate::host(addr, "udp").unwrap());
        let mut api = rtc.sdp_api();
        let video_mid = api.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
        if audio {
            api.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
        }
        let (offer, pending) = api.apply().unwrap();
        let b = Browser {
            rtc,
            addr,
            video_mid,
            connected: false,
            closed: false,
            video_frames: Vec::new(),
            audio_frames: 0,
            cut: false,
        };
        (b, offer.to_sdp_string(), pending)
    }

    fn accept(&mut self, pending: SdpPendingOffer, answer: &str) {
        let answer = SdpAnswer::from_sdp_string(answer).unwrap();
        self.rtc.sdp_api().accept_answer(pending, answer).unwrap();
    }

    /// Drains the peer: its datagrams for the gateway, and the earliest deadline.
    fn drain(&mut self, out: &mut Vec<(SocketAddr, Vec<u8>)>) -> Instant {
        loop {
            match self.rtc.poll_output().unwrap() {
                Output::Timeout(t) => return t,
                Output::Transmit(t) => out.push((t.source, t.contents.into())),
                Output::Event(e) => match e {
                    Event::Connected => self.connected = true,
                    Event::Closed => self.closed = true,
                    Event::MediaData(m) if m.mid == self.video_mid => {
                        self.video_frames.push((m.is_keyframe(), m.data.len()))
                    }
                    Event::MediaData(_) => self.audio_frames += 1,
                    _ => {}
                },
            }
        }
    }
}

/// The gateway and its browsers on virtual time.
struct Sim {
    now: Instant,
    gw: Gateway,
    browsers: Vec<Browser>,
    events: Vec<GatewayEvent>,
    /// While false, the shell sends nothing (its socket is blocked).
    sending: bool,
    next_port: u16,
}

impl Sim {
    fn new(streams: &[StreamSpec]) -> Sim {
        let now = Instant::now();
        let mut gw = Gateway::new(GatewayConfig::new(gw_addr(), KEY)).unwrap();
        gw.set_streams(now, streams);
        Sim {
            now,
            gw,
            browsers: Vec::new(),
            events: Vec::new(),
            sending: true,
            next_port: 6000,
        }
    }

    /// A browser offering to receive VP8 and Opus joins `stream`: its index, or the error.
    fn join(&mut self, stream: &str) -> Result<(usize, Joined), JoinError> {
        self.join_with(stream, Rtc::builder(), true)
    }

    fn join_with(
        &mut self,
        stream: &str,
        builder: str0m::RtcConfig,
        audio: bool,
    ) -> Result<(usize, Joined), JoinError> {
        self.next_port += 1;
        let (mut b, offer, pending) = Browser::new(self.now, self.next_port, builder, audio);
        let joined = self.gw.add_viewer(self.now, stream, &offer)?;
        b.accept(pending, &joined.answer);
        self.browsers.push(b);
        Ok((self.browsers.len() - 1, joined))
    }

    /// Moves every datagram both ways and collects events, at the current time.
    fn exchange(&mut self) {
        for _ in 0..1000 {
            let mut moved = false;
            let mut from_browsers = Vec::new();
            for b in &mut self.browsers {
                b.rtc.handle_input(Input::Timeout(self.now)).unwrap();
                let mut out = Vec::new();
                b.drain(&mut out);
                if !b.cut {
                    from_browsers.extend(out.into_iter().map(|(_, d)| (b.addr, d)));
                }
            }
            for (from, d) in from_browsers {
                moved = true;
                self.gw.handle_packet(self.now, from, &d);
            }
            if self.sending {
                while let Some(t) = self.gw.poll_transmit(self.now) {
                    moved = true;
                    if let Some(b) = self.browsers.iter_mut().find(|b| b.addr == t.destination) {
                        let r =
                            Receive::new(Protocol::Udp, gw_addr(), b.addr, &t.contents).unwrap();
                        b.rtc.handle_input(Input::Receive(self.now, r)).unwrap();
                    }
                }
            }
            while let Some(e) = self.gw.poll_event() {
                self.events.push(e);
            }
            if !moved {
                return;
            }
        }
        panic!("the peers never settled");
    }

    /// Lets `d` pass in steps of at most 10 ms, running every deadline on the way.
    fn run(&mut self, d: Duration) {
        let end = self.now + d;
        while self.now < end {
            self.exchange();
            let mut next = self.now + Duration::from_millis(10);
            if let Some(t) = self.gw.poll_timeout() {
                next = next.min(t.max(self.now + Duration::from_millis(1)));
            }
            self.now = next.min(end);
            self.gw.handle_timeout(self.now);
        }
        self.exchange();
    }

    /// Runs until every browser is connected (at most 5 s).
    fn connect(&mut self) {
        let end = self.now + Duration::from_secs(5);
        while self.browsers.iter().any(|b| !b.connected && !b.cut) {
            assert!(self.now < end, "not connected within 5 s");
            self.run(Duration::from_millis(10));
        }
    }

    /// Pushes `n` frames of 30 fps video (a keyframe first if `key_first`) with audio.
    fn stream(&mut self, stream: &str, from: u64, n: u64, key_first: bool) {
        for i in from..from + n {
            let key = key_first && i == from;
            assert!(self.gw.push_frame(
                self.now,
                stream,
                &vp8(i, key, if key { 12_000 } else { 3_000 })
            ));
            assert!(self.gw.push_frame(self.now, stream, &opus(i)));
            self.run(FRAME);
        }
    }

    fn take_events(&mut self) -> Vec<GatewayEvent> {
        std::mem::take(&mut self.events)
    }

    fn keyframes_wanted(&self) -> usize {
        self.events
            .iter()
            .filter(|e| matches!(e, GatewayEvent::KeyframeWanted { .. }))
            .count()
    }
}

#[test]
fn a_viewer_connects_and_gets_every_frame_from_the_first_keyframe() {
    let mut sim = Sim::new(&[spec("cam", 4)]);
    let (b, joined) = sim.join("cam").unwrap();
    assert!(joined.answer.contains("a=ice-lite"), "{}", joined.answer);
    assert!(
        joined.answer.contains("10.0.0.1 5000 typ host"),
        "{}",
        joined.answer
    );
    assert!(joined.answer.contains("VP8/90000"), "{}", joined.answer);
    sim.connect();
    let events = sim.take_events();
    assert!(events.contains(&GatewayEvent::ViewerConnected {
        id: joined.id,
        stream: "cam".into()
    }));
    assert!(events.contains(&GatewayEvent::KeyframeWanted {
        stream: "cam".into()
    }));

    // Delta frames before the first keyframe are of no use to a decoder.
    sim.stream("cam", 0, 5, false);
    assert_eq!(sim.browsers[b].video_frames.len(), 0);
    sim.stream("cam", 5, 30, true);
    let got = &sim.browsers[b].video_frames;
    assert_eq!(got.len(), 30, "every frame from the keyframe on");
    assert!(got[0].0, "the first frame is the keyframe");
    assert_eq!(got[0].1, 12_000);
    assert!(got[1..].iter().all(|(key, len)| !key && *len == 3_000));
    assert!(
        sim.browsers[b].audio_frames >= 30,
        "audio flows from the start"
    );
    assert_eq!(sim.gw.viewers("cam"), Some(1));
}

#[test]
fn four_viewers_get_the_same_frames() {
    let mut sim = Sim::new(&[spec("cam", 4)]);
    for _ in 0..4 {
        sim.join("cam").unwrap();
    }
    sim.connect();
    sim.stream("cam", 0, 20, true);
    for b in &sim.browsers {
        assert_eq!(b.video_frames.len(), 20);
    }
}

#[test]
fn the_viewer_limit_refuses_the_next_viewer_and_leaves_the_others_alone() {
    let mut sim = Sim::new(&[spec("cam", 2)]);
    sim.join("cam").unwrap();
    sim.join("cam").unwrap();
    let e = sim.join("cam").unwrap_err();
    assert_eq!(
        e,
        JoinError::Full {
            stream: "cam".into(),
            max: 2
        }
    );
    assert_eq!(e.to_string(), "stream \"cam\" has its maximum of 2 viewers");
    assert_eq!(sim.gw.viewers("cam"), Some(2));
}

#[test]
fn an_unknown_stream_and_a_bad_sdp_are_refused_naming_the_culprit() {
    let mut sim = Sim::new(&[spec("cam", 2)]);
    let now = sim.now;
    assert_eq!(
        sim.gw.add_viewer(now, "nope", "v=0").unwrap_err(),
        JoinError::UnknownStream("nope".into())
    );
    match sim.gw.add_viewer(now, "cam", "this is not SDP") {
        Err(JoinError::BadOffer(m)) => {
            assert!(m.contains("SDP"), "{m}");
            assert!(!m.contains("0x"), "no process address in the reason: {m}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(sim.gw.stats().viewers, 0);
}

#[test]
fn an_offer_without_the_streams_codec_is_refused() {
    let mut sim = Sim::new(&[spec("cam", 2)]);
    let h264_only = Rtc::builder()
        .clear_codecs()
        .enable_h264(true)
        .enable_opus(true, false);
    match sim.join_with("cam", h264_only, true) {
        Err(JoinError::NoCommonCodec(m)) => {
            assert!(m.contains("do not include VP8"), "{m}");
            assert!(m.contains("H264"), "{m}");
        }
        other => panic!("{:?}", other.map(|(_, j)| j)),
    }
    assert_eq!(sim.gw.viewers("cam"), Some(0));
}

#[test]
fn an_h264_stream_negotiates_constrained_baseline_with_packetization_mode_1() {
    let mut h264 = spec("cam", 2);
    h264.codec = VideoCodec::H264;
    let mut sim = Sim::new(&[h264]);
    let (_, joined) = sim.join("cam").unwrap();
    assert!(joined.answer.contains("H264/90000"), "{}", joined.answer);
    assert!(!joined.answer.contains("VP8"), "{}", joined.answer);
    assert!(
        joined.answer.contains("packetization-mode=1"),
        "{}",
        joined.answer
    );
}

#[test]
fn a_stream_without_audio_answers_no_audio() {
    let mut silent = spec("cam", 2);
    silent.audio = false;
    let mut sim = Sim::new(&[silent]);
    let (b, joined) = sim.join("cam").unwrap();
    assert!(!joined.answer.contains("opus"), "{}", joined.answer);
    sim.connect();
    sim.stream("cam", 0, 5, true);
    assert_eq!(sim.browsers[b].video_frames.len(), 5);
    assert_eq!(sim.browsers[b].audio_frames, 0);
}

#[test]
fn a_video_only_viewer_of_a_stream_with_audio_gets_video() {
    let mut sim = Sim::new(&[spec("cam", 2)]);
    let (b, _) = sim.join_with("cam", Rtc::builder(), false).unwrap();
    sim.connect();
    sim.stream("cam", 0, 5, true);
    assert_eq!(sim.browsers[b].video_frames.len(), 5);
}

#[test]
fn a_pli_from_a_viewer_asks_for_a_keyframe_once_until_polled() {
    let mut sim = Sim::new(&[spec("cam", 2)]);
    let (b, _) = sim.join("cam").unwrap();
    sim.connect();
    sim.stream("cam", 0, 3, true);
    sim.take_events();
    let mid = sim.browsers[b].video_mid;
    for _ in 0..3 {
        let mut w = sim.browsers[b].rtc.writer(mid).unwrap();
        w.request_keyframe(None, KeyframeRequestKind::Pli).unwrap();
        // The peer sends the PLI on its next timeout, which the exchange runs.
        sim.run(Duration::from_millis(30));
    }
    assert!(sim.keyframes_wanted() >= 1, "{:?}", sim.events);
    assert!(sim.keyframes_wanted() <= 3, "{:?}", sim.events);
}

#[test]
fn a_viewer_still_waiting_for_a_keyframe_asks_again_each_second() {
    let mut sim = Sim::new(&[spec("cam", 2)]);
    let (b, _) = sim.join("cam").unwrap();
    sim.connect();
    assert_eq!(sim.keyframes_wanted(), 1);
    // The owner ignores it (say its throttle dropped it): only deltas come.
    sim.stream("cam", 0, 20, false);
    assert_eq!(sim.keyframes_wanted(), 1, "not again within a second");
    sim.stream("cam", 20, 25, false);
    assert_eq!(sim.keyframes_wanted(), 2, "again after a second");
    assert_eq!(sim.browsers[b].video_frames.len(), 0);
}

#[test]
fn a_pending_keyframe_request_is_not_repeated() {
    let mut sim = Sim::new(&[spec("cam", 4)]);
    for _ in 0..3 {
        sim.join("cam").unwrap();
    }
    // Three viewers connect, nobody polls in between: one request is enough.
    let end = sim.now + Duration::from_secs(5);
    while sim.browsers.iter().any(|b| !b.connected) && sim.now < end {
        for b in &mut sim.browsers {
            b.rtc.handle_input(Input::Timeout(sim.now)).unwrap();
        }
        let mut moved = Vec::new();
        for b in &mut sim.browsers {
            let mut out = Vec::new();
            b.drain(&mut out);
            moved.extend(out.into_iter().map(|(_, d)| (b.addr, d)));
        }
        for (from, d) in moved {
            sim.gw.handle_packet(sim.now, from, &d);
        }
        while let Some(t) = sim.gw.poll_transmit(sim.now) {
            if let Some(b) = sim.browsers.iter_mut().find(|b| b.addr == t.destination) {
                let r = Receive::new(Protocol::Udp, gw_addr(), b.addr, &t.contents).unwrap();
                b.rtc.handle_input(Input::Receive(sim.now, r)).unwrap();
            }
        }
        sim.now += Duration::from_millis(5);
        sim.gw.handle_timeout(sim.now);
    }
    let mut wanted = 0;
    let mut connected = 0;
    while let Some(e) = sim.gw.poll_event() {
        match e {
            GatewayEvent::KeyframeWanted { .. } => wanted += 1,
            GatewayEvent::ViewerConnected { .. } => connected += 1,
            _ => {}
        }
    }
    assert_eq!(connected, 3);
    assert_eq!(wanted, 1);
}

#[test]
fn removing_a_viewer_frees_it_and_tells_the_browser() {
    let mut sim = Sim::new(&[spec("cam", 2)]);
    let (b, joined) = sim.join("cam").unwrap();
    sim.connect();
    sim.stream("cam", 0, 3, true);
    assert_eq!(
        sim.gw
            .session(&joined.session)
            .map(|(id, s)| (id, s.to_owned())),
        Some((joined.id, "cam".into()))
    );
    let now = sim.now;
    assert!(sim.gw.remove_viewer(now, joined.id));
    assert!(!sim.gw.remove_viewer(now, joined.id), "removed once");
    sim.run(Duration::from_millis(50));
    assert!(
        sim.browsers[b].closed,
        "the browser was told (DTLS close_notify)"
    );
    assert_eq!(sim.gw.viewers("cam"), Some(0));
    assert_eq!(sim.gw.session(&joined.session), None);
    assert!(sim.events.contains(&GatewayEvent::ViewerGone {
        id: joined.id,
        stream: "cam".into(),
        reason: GoneReason::Removed
    }));
    // Its datagrams now go nowhere, and frames to nobody.
    let before = sim.gw.stats().datagrams_unroutable;
    sim.stream("cam", 3, 3, false);
    sim.run(Duration::from_secs(2));
    assert!(sim.gw.stats().datagrams_unroutable >= before);
    assert_eq!(sim.gw.stats().viewers, 0);
}

#[test]
fn a_viewer_that_goes_silent_is_reaped() {
    let mut sim = Sim::new(&[spec("cam", 2)]);
    let (b, joined) = sim.join("cam").unwrap();
    let (other, _) = sim.join("cam").unwrap();
    sim.connect();
    sim.stream("cam", 0, 3, true);
    sim.browsers[b].cut = true;
    sim.run(Duration::from_secs(16));
    let gone: Vec<&GatewayEvent> = sim
        .events
        .iter()
        .filter(|e| matches!(e, GatewayEvent::ViewerGone { .. }))
        .collect();
    assert_eq!(gone.len(), 1, "{gone:?}");
    match gone[0] {
        GatewayEvent::ViewerGone { id, reason, .. } => {
            assert_eq!(*id, joined.id);
            assert!(
                matches!(reason, GoneReason::Silent | GoneReason::Disconnected),
                "{reason:?}"
            );
        }
        _ => unreachable!(),
    }
    assert_eq!(sim.gw.viewers("cam"), Some(1));
    // The other one still gets video.
    let before = sim.browsers[other].video_frames.len();
    sim.stream("cam", 3, 5, true);
    assert_eq!(sim.browsers[other].video_frames.len(), before + 5);
}

#[test]
fn a_viewer_that_never_connects_is_reaped() {
    let mut sim = Sim::new(&[spec("cam", 2)]);
    let (b, joined) = sim.join("cam").unwrap();
    sim.browsers[b].cut = true;
    sim.run(Duration::from_secs(11));
    assert!(
        sim.events.contains(&GatewayEvent::ViewerGone {
            id: joined.id,
            stream: "cam".into(),
            reason: GoneReason::NeverConnected
        }),
        "{:?}",
        sim.events
    );
    assert_eq!(sim.gw.poll_timeout(), None, "no viewer, no deadline");
}

#[test]
fn a_blocked_socket_drops_frames_per_viewer_and_they_resume_at_the_next_keyframe() {
    let mut sim = Sim::new(&[spec("cam", 2)]);
    let (b, _) = sim.join("cam").unwrap();
    sim.connect();
    sim.stream("cam", 0, 5, true);
    assert_eq!(sim.browsers[b].video_frames.len(), 5);
    sim.take_events();

    // The shell sends nothing for a second: the gateway holds a bounded amount, then drops.
    sim.sending = false;
    sim.stream("cam", 5, 30, false);
    assert_eq!(sim.keyframes_wanted(), 1, "{:?}", sim.events);
    let queued = sim
        .gw
        .viewers
        .values()
        .map(|v| v.queue.len())
        .sum::<usize>();
    assert!(queued <= MAX_QUEUED_VIDEO + MAX_QUEUED_AUDIO, "{queued}");
    assert!(sim.gw.out.len() <= OUT_REFILL + 16, "{}", sim.gw.out.len());

    // Sending again: what was held goes out, deltas wait for a keyframe, then all flows.
    sim.sending = true;
    sim.run(Duration::from_millis(100));
    let after_block = sim.browsers[b].video_frames.len();
    sim.stream("cam", 35, 5, false);
    assert_eq!(
        sim.browsers[b].video_frames.len(),
        after_block,
        "no deltas before a keyframe"
    );
    sim.stream("cam", 40, 5, true);
    let got = &sim.browsers[b].video_frames[after_block..];
    assert_eq!(got.len(), 5);
    assert!(got[0].0);
    assert!(sim.gw.stats().frames_dropped >= 20);
}

#[test]
fn frames_of_one_stream_reach_only_its_viewers() {
    let mut sim = Sim::new(&[spec("a", 2), spec("b", 2)]);
    let (a, _) = sim.join("a").unwrap();
    let (b, _) = sim.join("b").unwrap();
    sim.connect();
    sim.stream("a", 0, 4, true);
    assert_eq!(sim.browsers[a].video_frames.len(), 4);
    assert_eq!(sim.browsers[b].video_frames.len(), 0);
    assert!(!sim.gw.push_frame(sim.now, "c", &vp8(0, true, 100)));
}

#[test]
fn a_reload_drops_the_viewers_of_removed_or_changed_streams_only() {
    let mut sim = Sim::new(&[spec("a", 2), spec("b", 2), spec("c", 2)]);
    let (_, ja) = sim.join("a").unwrap();
    let (_, jb) = sim.join("b").unwrap();
    let (_, jc) = sim.join("c").unwrap();
    sim.connect();
    let mut b = spec("b", 2);
    b.codec = VideoCodec::H264;
    let now = sim.now;
    sim.gw.set_streams(now, &[spec("a", 1), b]);
    sim.run(Duration::from_millis(10));
    let gone: Vec<ViewerId> = sim
        .events
        .iter()
        .filter_map(|e| match e {
            GatewayEvent::ViewerGone {
                id,
                reason: GoneReason::StreamChanged,
                ..
            } => Some(*id),
            _ => None,
        })
        .collect();
    assert_eq!(gone.len(), 2);
    assert!(gone.contains(&jb.id) && gone.contains(&jc.id));
    assert_eq!(sim.gw.viewers("a"), Some(1));
    assert_eq!(sim.gw.session(&ja.session).map(|(id, _)| id), Some(ja.id));
    assert_eq!(sim.gw.viewers("c"), None);
    // "a" now takes one viewer, and has one.
    assert!(matches!(sim.join("a"), Err(JoinError::Full { max: 1, .. })));
}

#[test]
fn session_ids_are_long_distinct_and_depend_on_the_key() {
    let mut sim = Sim::new(&[spec("cam", 4)]);
    let (_, a) = sim.join("cam").unwrap();
    let (_, b) = sim.join("cam").unwrap();
    assert_eq!(a.session.len(), 32);
    assert_ne!(a.session, b.session);
    assert!(
        a.session.bytes().all(|c| c.is_ascii_hexdigit()),
        "{}",
        a.session
    );
    // Another key, other ids.
    let mut other = Gateway::new(GatewayConfig::new(gw_addr(), [8; 32])).unwrap();
    assert_ne!(other.session_id(a.id), a.session);
    other.set_streams(sim.now, &[]);
}

mod fuzz {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        /// Stray datagrams, connected viewer or not, are dropped without harm.
        #[test]
        fn any_datagram_is_handled_without_panic(
            data in proptest::collection::vec(any::<u8>(), 0..1500),
            first in prop::sample::select(vec![0u8, 1, 20, 23, 64, 128, 0x80, 0x90, 200, 255]),
        ) {
            let mut sim = Sim::new(&[spec("cam", 2)]);
            sim.join("cam").unwrap();
            let mut d = data.clone();
            if !d.is_empty() { d[0] = first; }
            let now = sim.now;
            sim.gw.handle_packet(now, "10.0.0.9:1".parse().unwrap(), &d);
            sim.gw.handle_packet(now, sim.browsers[0].addr, &d);
            sim.gw.handle_timeout(now);
            while sim.gw.poll_transmit(now).is_some() {}
        }

        /// Any text as an offer is an answer or an error, never a panic.
        #[test]
        fn any_offer_text_is_answered_or_refused(
            cut in 0usize..4000,
            junk in "[ -~\r\n]{0,64}",
        ) {
            let mut sim = Sim::new(&[spec("cam", 2)]);
            let (_, offer, _) = Browser::new(sim.now, 7000, Rtc::builder(), true);
            let cut = cut.min(offer.len());
            let mutated = format!("{}{}{}", &offer[..cut], junk, &offer[cut..]);
            let now = sim.now;
            let _ = sim.gw.add_viewer(now, "cam", &mutated);
        }
    }
}
