//! The gateway's heap per viewer, counted exactly: an allocator that tags each allocation
//! with who made it (the gateway, or anything else on any thread), and in-process str0m
//! peers playing browsers on virtual time, so that only the gateway's bytes are counted.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::{Duration, Instant};

use outpost::config::stream::StreamSpec;
use outpost::media::rtc::{Frame, Gateway, GatewayConfig};
use str0m::change::{SdpAnswer, SdpPendingOffer};
use str0m::media::{Direction, MediaKind};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc};

/// Live bytes by tag: 0 anything else, 1 the gateway.
static LIVE: [AtomicIsize; 2] = [AtomicIsize::new(0), AtomicIsize::new(0)];

thread_local! {
    static TAG: Cell<u8> = const { Cell::new(0) };
}

/// Each allocation gets a header in front whose last byte is its tag, so that a free
/// (wherever it happens) is counted against whoever allocated.
pub struct Tagged;

fn header(l: Layout) -> usize {
    l.align().max(16)
}

unsafe impl GlobalAlloc for Tagged {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let h = header(l);
        let Ok(outer) = Layout::from_size_align(l.size() + h, l.align().max(16)) else {
            return std::ptr::null_mut();
        };
        // SAFETY: `outer` has a non-zero size.
        let base = unsafe { System.alloc(outer) };
        if base.is_null() {
            return base;
        }
        let tag = TAG.try_with(|t| t.get()).unwrap_or(0);
        LIVE[tag as usize].fetch_add(l.size() as isize, Ordering::Relaxed);
        // SAFETY: `base` has `h + size` bytes; the tag byte is inside the header.
        unsafe {
            *base.add(h - 1) = tag;
            base.add(h)
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, l: Layout) {
        let h = header(l);
        // SAFETY: `ptr` came from `alloc` above with the same layout.
        unsafe {
            let tag = *ptr.sub(1);
            LIVE[tag as usize].fetch_sub(l.size() as isize, Ordering::Relaxed);
            let outer = Layout::from_size_align_unchecked(l.size() + h, l.align().max(16));
            System.dealloc(ptr.sub(h), outer);
        }
    }
}

/// Runs `f` with allocations tagged as the gateway's.
fn gw<R>(f: impl FnOnce() -> R) -> R {
    TAG.with(|t| t.set(1));
    let r = f();
    TAG.with(|t| t.set(0));
    r
}

fn gateway_bytes() -> isize {
    LIVE[1].load(Ordering::Relaxed)
}

struct Peer {
    rtc: Rtc,
    addr: SocketAddr,
    frames: usize,
}

const GW: &str = "10.0.0.1:5000";

fn peer(now: Instant, port: u16) -> (Peer, String, SdpPendingOffer) {
    let addr: SocketAddr = format!("10.0.0.2:{port}").parse().unwrap();
    let mut rtc = Rtc::builder().build(now);
    rtc.add_local_candidate(Candidate::host(addr, "udp").unwrap());
    let mut api = rtc.sdp_api();
    api.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
    api.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
    let (offer, pending) = api.apply().unwrap();
    (
        Peer {
            rtc,
            addr,
            frames: 0,
        },
        offer.to_sdp_string(),
        pending,
    )
}

struct World {
    now: Instant,
    gateway: Gateway,
    peers: Vec<Peer>,
    frame: u64,
}

impl World {
    fn add_peer(&mut self) {
        let port = 6000 + self.peers.len() as u16;
        let (mut p, offer, pending) = peer(self.now, port);
        let now = self.now;
        let joined = gw(|| self.gateway.add_viewer(now, "test", &offer)).unwrap();
        let answer = SdpAnswer::from_sdp_string(&joined.answer).unwrap();
        p.rtc.sdp_api().accept_answer(pending, answer).unwrap();
        self.peers.push(p);
    }

    fn exchange(&mut self) {
        let gw_addr: SocketAddr = GW.parse().unwrap();
        for _ in 0..100 {
            let mut moved = false;
            let mut up = Vec::new();
            for p in &mut self.peers {
                p.rtc.handle_input(Input::Timeout(self.now)).unwrap();
                loop {
                    match p.rtc.poll_output().unwrap() {
                        Output::Timeout(_) => break,
                        Output::Transmit(t) => up.push((p.addr, Vec::from(t.contents))),
                        Output::Event(Event::MediaData(m)) if m.params.spec().codec.is_video() => {
                            p.frames += 1
                        }
                        Output::Event(_) => {}
                    }
                }
            }
            let now = self.now;
            for (from, d) in up {
                moved = true;
                gw(|| self.gateway.handle_packet(now, from, &d));
            }
            while let Some(t) = gw(|| self.gateway.poll_transmit(now)) {
                moved = true;
                if let Some(p) = self.peers.iter_mut().find(|p| p.addr == t.destination) {
                    let r = Receive::new(Protocol::Udp, gw_addr, p.addr, &t.contents).unwrap();
                    p.rtc.handle_input(Input::Receive(now, r)).unwrap();
                }
            }
            while gw(|| self.gateway.poll_event()).is_some() {}
            if !moved {
                return;
            }
        }
    }

    /// One frame period: a ~1 Mbit/s VP8-shaped frame (a keyframe each 2 s, as the dev
    /// stream's encoder makes), Opus, and everything it causes.
    fn tick(&mut self) {
        let n = self.frame;
        self.frame += 1;
        let key = n.is_multiple_of(60);
        let len = if key { 30_000 } else { 3_600 };
        let mut data = vec![0x5au8; len];
        data[0] = if key { 0x10 } else { 0x11 };
        let video = Frame {
            video: true,
            data: Arc::from(data),
            keyframe: key,
            pts: Duration::from_millis(33 * n),
        };
        let audio = Frame {
            video: false,
            data: Arc::from(vec![0xfcu8; 160]),
            keyframe: true,
            pts: Duration::from_millis(33 * n),
        };
        let now = self.now;
        gw(|| {
            self.gateway.push_frame(now, "test", &video);
            self.gateway.push_frame(now, "test", &audio);
        });
        drop((video, audio));
        self.exchange();
        self.now += Duration::from_millis(33);
        let now = self.now;
        gw(|| self.gateway.handle_timeout(now));
        self.exchange();
    }
}

/// The gateway's live heap with `n` viewers after `secs` of stream, in bytes.
pub fn heap_with(n: usize, secs: u64) -> (isize, usize) {
    let now = Instant::now();
    let spec = StreamSpec {
        max_viewers: 64,
        ..StreamSpec::dev_test()
    };
    let before = gateway_bytes();
    let mut gateway =
        gw(|| Gateway::new(GatewayConfig::new(GW.parse().unwrap(), [3; 32]))).unwrap();
    gw(|| gateway.set_streams(now, &[spec]));
    let mut w = World {
        now,
        gateway,
        peers: Vec::new(),
        frame: 0,
    };
    for _ in 0..n {
        w.add_peer();
    }
    for _ in 0..secs * 30 {
        w.tick();
    }
    let frames = w.peers.iter().map(|p| p.frames).min().unwrap_or(0);
    let bytes = gateway_bytes() - before;
    gw(|| drop(w.gateway));
    (bytes, frames)
}
