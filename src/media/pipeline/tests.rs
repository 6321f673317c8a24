//! The pipelines against real GStreamer: the test source in VP8 and H.264, keyframes on
//! request, RTP from the Janus demo sender (and a PLI it answers), faults and restarts, stop,
//! start and drop. Every wait has a deadline; `gst-launch-1.0` senders are killed on drop.

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_lite::future;
use gstreamer as gst;
use gstreamer::prelude::*;

use super::shell::{fault_reason, testing};
use super::*;
use crate::config::stream::{StreamSource, VideoCodec};

const MS: Duration = Duration::from_millis(1);
const S: Duration = Duration::from_secs(1);

type Rx = async_channel::Receiver<MediaFrame>;

/// A frame and when the test received it.
struct Got {
    frame: MediaFrame,
    at: Instant,
}

fn test_spec(name: &str, codec: VideoCodec) -> StreamSpec {
    StreamSpec {
        name: name.into(),
        source: StreamSource::Test {
            pattern: "smpte".into(),
        },
        codec,
        width: 320,
        height: 240,
        fps: 15,
        bitrate_kbps: 300,
        audio: false,
        max_viewers: 4,
        keyframe_interval_s: 1,
    }
}

fn rtp_spec(name: &str, video_port: u16, audio_port: u16, video_rtcp_port: u16) -> StreamSpec {
    StreamSpec {
        name: name.into(),
        source: StreamSource::Rtp {
            video_port,
            video_pt: 100,
            video_codec: VideoCodec::Vp8,
            audio_port,
            audio_pt: 111,
            video_rtcp_port,
        },
        codec: VideoCodec::Vp8,
        width: 640,
        height: 480,
        fps: 30,
        bitrate_kbps: 1000,
        audio: audio_port != 0,
        max_viewers: 4,
        keyframe_interval_s: 1,
    }
}

fn start(spec: &StreamSpec, capacity: usize) -> (PipelineHandle, Rx) {
    let (tx, rx) = async_channel::bounded(capacity);
    let handle = Pipeline::new(spec, &EncoderChoice::software(spec.codec))
        .unwrap()
        .start(tx)
        .unwrap();
    (handle, rx)
}

/// The next frame, or `None` at `deadline` (or when the channel is closed and empty).
fn recv_until(rx: &Rx, deadline: Instant) -> Option<Got> {
    future::block_on(future::or(async { rx.recv().await.ok() }, async {
        async_io::Timer::at(deadline).await;
        None
    }))
    .map(|frame| Got {
        frame,
        at: Instant::now(),
    })
}

/// Every frame received for `how_long`.
fn collect(rx: &Rx, how_long: Duration) -> Vec<Got> {
    let deadline = Instant::now() + how_long;
    std::iter::from_fn(|| recv_until(rx, deadline)).collect()
}

/// The next frame that satisfies `want`, skipping others, before `deadline`.
fn next_where(rx: &Rx, deadline: Instant, want: impl Fn(&MediaFrame) -> bool) -> Option<Got> {
    std::iter::from_fn(|| recv_until(rx, deadline)).find(|g| want(&g.frame))
}

fn is_video(f: &MediaFrame) -> bool {
    f.kind == MediaKind::Video
}

fn is_video_keyframe(f: &MediaFrame) -> bool {
    f.kind == MediaKind::Video && f.keyframe
}

/// Polls `cond` every 5 ms until it holds or `within` has passed.
fn wait_for(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(5 * MS);
    }
}

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn free_udp_ports() -> (u16, u16) {
    let a = UdpSocket::bind("127.0.0.1:0").unwrap();
    let b = UdpSocket::bind("127.0.0.1:0").unwrap();
    (
        a.local_addr().unwrap().port(),
        b.local_addr().unwrap().port(),
    )
}

/// A `gst-launch-1.0` child process, killed and reaped on drop.
struct Sender(Child);

impl Drop for Sender {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn gst_launch(args: &[String]) -> Sender {
    Sender(
        Command::new("gst-launch-1.0")
            .arg("-q")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("gst-launch-1.0 runs (package gstreamer1.0-tools)"),
    )
}

/// The Janus streaming demo's sender pipeline (VP8 pt 100, Opus pt 111) with its default knobs, sending to
/// the given ports; `ssrc`, if given, is added to `rtpvp8pay`.
fn janus_demo_sender(video_port: u16, audio_port: u16, ssrc: Option<u32>) -> Sender {
    let mut args: Vec<String> = "videotestsrc is-live=true pattern=smpte horizontal-speed=4 ! \
         video/x-raw,width=640,height=480,framerate=30/1 ! \
         videoconvert ! queue max-size-buffers=2 leaky=downstream ! \
         vp8enc deadline=1 cpu-used=8 lag-in-frames=0 end-usage=cbr \
         target-bitrate=1000000 keyframe-max-dist=30 \
         error-resilient=default threads=1 buffer-size=500 buffer-initial-size=300 \
         buffer-optimal-size=400 ! \
         rtpvp8pay pt=100 mtu=1200 picture-id-mode=15-bit"
        .split_whitespace()
        .map(String::from)
        .collect();
    if let Some(ssrc) = ssrc {
        args.push(format!("ssrc={ssrc}"));
    }
    args.extend(
        format!(
            "! udpsink host=127.0.0.1 port={video_port} sync=false async=false \
             audiotestsrc is-live=true wave=sine freq=440 volume=0.2 ! \
             audioconvert ! audioresample ! audio/x-raw,rate=48000,channels=2 ! \
             opusenc bitrate=64000 frame-size=20 audio-type=generic ! \
             rtpopuspay pt=111 ! \
             udpsink host=127.0.0.1 port={audio_port} sync=false async=false"
        )
        .split_whitespace()
        .map(String::from),
    );
    gst_launch(&args)
}

/// A VP8 keyframe of the given size (RFC 6386 §9.1), checked byte by byte.
fn assert_vp8_keyframe(f: &MediaFrame, width: u32, height: u32) {
    assert!(f.data.len() > 10, "keyframe of {} bytes", f.data.len());
    assert_eq!(f.data[0] & 1, 0, "frame tag says keyframe");
    assert_eq!(f.data[3..6], [0x9d, 0x01, 0x2a], "start code");
    assert_eq!(wire::vp8_keyframe_size(&f.data), Some((width, height)));
}

/// The flag and the bitstream agree.
fn assert_vp8_frame(f: &MediaFrame, width: u32, height: u32) {
    if f.keyframe {
        assert_vp8_keyframe(f, width, height);
    } else {
        assert_eq!(f.data[0] & 1, 1, "a delta frame's tag says interframe");
    }
}

/// NAL units of an Annex-B access unit (ITU-T H.264 Annex B): split at start codes.
fn nal_units(data: &[u8]) -> Vec<&[u8]> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= data.len() {
        if data[i..i + 3] == [0, 0, 1] {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    starts
        .iter()
        .enumerate()
        .map(|(k, &s)| {
            let end = starts.get(k + 1).map_or(data.len(), |&next| next - 3);
            let mut unit = &data[s..end];
            while let [rest @ .., 0] = unit {
                unit = rest;
            }
            unit
        })
        .collect()
}

/// Duration of an Opus packet from its TOC byte (RFC 6716 §3.1), in ms.
fn opus_packet_ms(packet: &[u8]) -> f64 {
    let toc = packet[0];
    let config = toc >> 3;
    let frame = match config {
        0..=11 => [10.0, 20.0, 40.0, 60.0][usize::from(config % 4)],
        12..=15 => [10.0, 20.0][usize::from(config % 2)],
        _ => [2.5, 5.0, 10.0, 20.0][usize::from(config % 4)],
    };
    let frames = match toc & 3 {
        0 => 1.0,
        1 | 2 => 2.0,
        _ => f64::from(packet.get(1).map_or(1, |c| c & 0x3f)),
    };
    frame * frames
}

fn thread_names() -> Vec<String> {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("comm")).ok())
        .map(|s| s.trim().to_string())
        .collect()
}

#[test]
fn the_test_source_in_vp8_delivers_keyframes_on_schedule_at_the_configured_rate_with_opus() {
    let mut spec = test_spec("vp8", VideoCodec::Vp8);
    spec.audio = true;
    let started = Instant::now();
    let (handle, rx) = start(&spec, 256);
    let first = next_where(&rx, started + 3 * S, is_video).expect("video within 3 s");
    assert!(first.frame.keyframe, "the first video frame is a keyframe");
    assert_eq!(first.frame.seq, 0);
    assert_vp8_keyframe(&first.frame, 320, 240);

    let mut got = vec![first];
    got.extend(collect(&rx, 3100 * MS));
    let video: Vec<&MediaFrame> = got
        .iter()
        .map(|g| &g.frame)
        .filter(|f| is_video(f))
        .collect();
    let audio: Vec<&MediaFrame> = got
        .iter()
        .map(|g| &g.frame)
        .filter(|f| f.kind == MediaKind::Audio)
        .collect();

    for (i, f) in video.iter().enumerate() {
        assert_eq!(f.seq, i as u64, "no frame dropped or lost");
        assert_vp8_frame(f, 320, 240);
    }
    assert!(
        video.windows(2).all(|w| w[0].pts < w[1].pts),
        "pts increase"
    );

    // keyframe_interval_s = 1 at 15 fps: a keyframe every 15 frames, 1 s apart.
    let keys: Vec<&&MediaFrame> = video.iter().filter(|f| f.keyframe).collect();
    assert!(keys.len() >= 3, "{} keyframes in 3 s", keys.len());
    for w in keys.windows(2) {
        let frames = w[1].seq - w[0].seq;
        assert!(
            (14..=16).contains(&frames),
            "keyframes {frames} frames apart"
        );
        let secs = (w[1].pts - w[0].pts).as_secs_f64();
        assert!((secs - 1.0).abs() < 0.1, "keyframes {secs} s apart");
    }

    let last = video.last().unwrap();
    let fps_by_pts = (video.len() - 1) as f64 / (last.pts - video[0].pts).as_secs_f64();
    assert!((fps_by_pts - 15.0).abs() < 1.5, "{fps_by_pts} fps by pts");
    let stats = handle.stats();
    assert!((stats.fps - 15.0).abs() < 3.0, "{} fps measured", stats.fps);
    assert!(
        (36..=56).contains(&video.len()),
        "{} frames in ~3.1 s at 15 fps",
        video.len()
    );
    assert!(stats.video_bitrate > 0.0);

    // Opus: 20 ms packets, about 50 a second.
    assert!(audio.len() >= 110, "{} Opus packets in ~3 s", audio.len());
    for a in &audio {
        assert!(a.keyframe);
        assert_eq!(opus_packet_ms(&a.data), 20.0, "TOC {:#04x}", a.data[0]);
        if a.seq == 0 {
            // opusenc trims its look-ahead (pre-skip) from the first packet's duration.
            assert!(a.duration.is_some_and(|d| d > 10 * MS && d <= 20 * MS));
        } else {
            assert_eq!(a.duration, Some(20 * MS), "packet {}", a.seq);
        }
    }
    assert!(audio.windows(2).all(|w| w[0].pts < w[1].pts));

    assert_eq!(stats.state, StreamState::Playing);
    assert_eq!((stats.width, stats.height), (Some(320), Some(240)));
    assert_eq!(stats.starts, 1);
    assert_eq!(stats.video.dropped, 0);
    assert!(stats.video.keyframes >= keys.len() as u64);
    assert!(stats.audio.frames >= audio.len() as u64);
}

#[test]
fn the_test_source_in_h264_is_constrained_baseline_annex_b_with_sps_and_pps_at_every_idr() {
    let spec = test_spec("h264", VideoCodec::H264);
    let started = Instant::now();
    let (handle, rx) = start(&spec, 256);
    let first = next_where(&rx, started + 3 * S, is_video).expect("video within 3 s");
    assert!(first.frame.keyframe, "the first video frame is a keyframe");
    let mut got = vec![first];
    got.extend(collect(&rx, 1200 * MS));
    let keys = got.iter().filter(|g| g.frame.keyframe).count();
    assert!(keys >= 2, "{keys} keyframes in 1.2 s with a 1 s interval");
    for g in &got {
        let data = &g.frame.data;
        assert!(
            data.starts_with(&[0, 0, 0, 1]) || data.starts_with(&[0, 0, 1]),
            "Annex-B start code"
        );
        let units = nal_units(data);
        let types: Vec<u8> = units.iter().map(|u| u[0] & 0x1f).collect();
        if g.frame.keyframe {
            for t in [7, 8, 5] {
                assert!(types.contains(&t), "keyframe NAL types {types:?} lack {t}");
            }
            let sps = units.iter().find(|u| u[0] & 0x1f == 7).unwrap();
            assert_eq!(sps[1], 66, "profile_idc: baseline");
            assert_ne!(
                sps[2] & 0x40,
                0,
                "constraint_set1_flag: constrained baseline"
            );
        } else {
            assert!(types.contains(&1), "delta NAL types {types:?}");
            assert!(!types.contains(&5), "an IDR in a delta frame");
        }
    }
    let stats = handle.stats();
    assert_eq!((stats.width, stats.height), (Some(320), Some(240)));
}

#[test]
fn an_h264_encoder_makes_a_keyframe_on_request_too() {
    let mut spec = test_spec("kf-h264", VideoCodec::H264);
    spec.fps = 30;
    spec.keyframe_interval_s = 60;
    let (handle, rx) = start(&spec, 256);
    next_where(&rx, Instant::now() + 3 * S, is_video_keyframe).expect("the first keyframe");
    let warm = collect(&rx, 300 * MS);
    assert!(warm.iter().all(|g| !g.frame.keyframe));
    let t0 = Instant::now();
    assert_eq!(handle.request_keyframe(), KeyframeRequest::Sent);
    let forced = next_where(&rx, t0 + S, is_video_keyframe).expect("a keyframe on request");
    assert!(forced.at - t0 < 500 * MS, "took {:?}", forced.at - t0);
    let types: Vec<u8> = nal_units(&forced.frame.data)
        .iter()
        .map(|u| u[0] & 0x1f)
        .collect();
    assert!(
        [7, 8, 5].iter().all(|t| types.contains(t)),
        "SPS, PPS and IDR: {types:?}"
    );
}

#[test]
fn request_keyframe_gets_one_at_once_and_a_second_within_a_second_is_deferred() {
    let mut spec = test_spec("kf-request", VideoCodec::Vp8);
    spec.fps = 30;
    spec.keyframe_interval_s = 60;
    let started = Instant::now();
    let (handle, rx) = start(&spec, 256);
    next_where(&rx, started + 3 * S, is_video_keyframe).expect("the first keyframe");
    let warm = collect(&rx, 500 * MS);
    assert!(warm.len() >= 10);
    assert!(
        warm.iter().all(|g| !g.frame.keyframe),
        "no keyframe of its own for 60 s"
    );

    let t0 = Instant::now();
    assert_eq!(handle.request_keyframe(), KeyframeRequest::Sent);
    let forced = next_where(&rx, t0 + S, is_video_keyframe).expect("a keyframe on request");
    assert!(forced.at - t0 < 500 * MS, "took {:?}", forced.at - t0);
    assert_vp8_keyframe(&forced.frame, 320, 240);

    assert_eq!(handle.request_keyframe(), KeyframeRequest::Deferred);
    assert_eq!(handle.request_keyframe(), KeyframeRequest::Deferred);
    let later: Vec<Instant> = collect(&rx, (t0 + 1700 * MS) - Instant::now())
        .into_iter()
        .filter(|g| g.frame.keyframe)
        .map(|g| g.at)
        .collect();
    assert_eq!(
        later.len(),
        1,
        "the two deferred requests became one keyframe"
    );
    let after = later[0] - t0;
    assert!(
        after >= 950 * MS,
        "throttled: keyframe {after:?} after the first request"
    );
    assert!(
        after < 1500 * MS,
        "the deferred request went out: {after:?}"
    );
    assert_eq!(handle.stats().keyframe_requests, 2);
}

#[test]
fn rtp_from_the_janus_demo_sender_is_forwarded_without_reencoding() {
    let (video_port, audio_port) = free_udp_ports();
    let spec = rtp_spec("janus-demo", video_port, audio_port, 0);
    let (handle, rx) = start(&spec, 512);
    assert!(
        !handle.launch_line().contains("enc "),
        "{}",
        handle.launch_line()
    );
    let _sender = janus_demo_sender(video_port, audio_port, None);

    let deadline = Instant::now() + 6 * S;
    let mut got = Vec::new();
    while let Some(g) = recv_until(&rx, deadline) {
        got.push(g.frame);
        let keys = got.iter().filter(|f| is_video_keyframe(f)).count();
        let audio = got.iter().filter(|f| f.kind == MediaKind::Audio).count();
        if keys >= 2 && audio >= 50 {
            break;
        }
    }
    let video: Vec<&MediaFrame> = got.iter().filter(|f| is_video(f)).collect();
    let keys: Vec<&&MediaFrame> = video.iter().filter(|f| f.keyframe).collect();
    assert!(
        keys.len() >= 2,
        "{} keyframes, {} video frames",
        keys.len(),
        video.len()
    );
    assert!(video.len() > keys.len(), "delta frames too");
    for f in &video {
        assert_vp8_frame(f, 640, 480);
    }
    // KEYINT=30 at 30 fps.
    for w in keys.windows(2) {
        let secs = (w[1].pts - w[0].pts).as_secs_f64();
        assert!((secs - 1.0).abs() < 0.2, "keyframes {secs} s apart");
    }
    let audio: Vec<&MediaFrame> = got.iter().filter(|f| f.kind == MediaKind::Audio).collect();
    assert!(audio.len() >= 50);
    for a in &audio {
        assert_eq!(opus_packet_ms(&a.data), 20.0);
    }

    let cached = handle.last_keyframe().expect("the last keyframe is kept");
    assert!(cached.keyframe && cached.seq >= keys.last().unwrap().seq);
    assert_vp8_keyframe(&cached, 640, 480);
    let gop = handle.gop();
    assert_eq!(gop[0], cached);
    assert!(
        gop.windows(2)
            .all(|w| w[1].seq == w[0].seq + 1 && !w[1].keyframe)
    );
    assert_eq!(
        handle.request_keyframe(),
        KeyframeRequest::Unavailable,
        "no RTCP port: nobody to ask"
    );
    let stats = handle.stats();
    assert_eq!(stats.state, StreamState::Playing);
    assert_eq!((stats.width, stats.height), (Some(640), Some(480)));
}

#[test]
fn rtp_with_an_rtcp_port_sends_a_pli_that_a_gstreamer_sender_answers_with_a_keyframe() {
    const SSRC: u32 = 0x1122_3344;
    let (video_port, sender_rtcp_port) = free_udp_ports();
    // The test stands between the two: it reads the PLI, then passes it on to the sender.
    let listener = UdpSocket::bind("127.0.0.1:0").unwrap();
    listener.set_read_timeout(Some(2 * S)).unwrap();
    let rtcp_port = listener.local_addr().unwrap().port();
    let spec = rtp_spec("pli", video_port, 0, rtcp_port);
    let (handle, rx) = start(&spec, 512);
    // A sender that only makes a keyframe at its start and when asked (rtpbin takes the PLI).
    let _sender = gst_launch(
        &format!(
            "rtpbin name=rb \
             videotestsrc is-live=true ! video/x-raw,width=320,height=240,framerate=30/1 ! \
             vp8enc deadline=1 cpu-used=8 lag-in-frames=0 keyframe-max-dist=100000 threads=1 ! \
             rtpvp8pay pt=100 ssrc={SSRC} ! rb.send_rtp_sink_0 \
             rb.send_rtp_src_0 ! udpsink host=127.0.0.1 port={video_port} sync=false async=false \
             udpsrc address=127.0.0.1 port={sender_rtcp_port} ! rb.recv_rtcp_sink_0"
        )
        .split_whitespace()
        .map(String::from)
        .collect::<Vec<_>>(),
    );
    next_where(&rx, Instant::now() + 5 * S, is_video).expect("RTP video within 5 s");
    let quiet = collect(&rx, 300 * MS);
    assert!(
        quiet.iter().all(|g| !g.frame.keyframe),
        "no keyframe unasked"
    );
    assert_eq!(testing::video_ssrc(&handle), Some(SSRC));

    let t0 = Instant::now();
    assert_eq!(handle.request_keyframe(), KeyframeRequest::Sent);
    let mut buf = [0u8; 1500];
    let (len, from) = listener.recv_from(&mut buf).expect("a PLI within 2 s");
    let pli = &buf[..len];
    assert_eq!(len, 12, "{pli:02x?}");
    assert_eq!(
        pli[..4],
        [0x81, 206, 0x00, 0x02],
        "V=2 FMT=1 PT=PSFB length=2"
    );
    assert_eq!(pli[4..8], testing::sender_ssrc_of("pli").to_be_bytes());
    assert_eq!(
        pli[8..12],
        SSRC.to_be_bytes(),
        "media SSRC: the one in the RTP"
    );
    assert!(from.ip().is_loopback());
    listener
        .send_to(pli, SocketAddr::from(([127, 0, 0, 1], sender_rtcp_port)))
        .unwrap();
    let keyframe = next_where(&rx, t0 + 2 * S, is_video_keyframe).expect("the sender answers");
    assert!(keyframe.at - t0 < S, "took {:?}", keyframe.at - t0);
    assert_vp8_keyframe(&keyframe.frame, 320, 240);

    // A second request inside the second is deferred, then sent once.
    assert_eq!(handle.request_keyframe(), KeyframeRequest::Deferred);
    assert_eq!(handle.request_keyframe(), KeyframeRequest::Deferred);
    let (len, _) = listener.recv_from(&mut buf).expect("the deferred PLI");
    assert_eq!(len, 12);
    let after = t0.elapsed();
    assert!(
        after >= 950 * MS && after < 1600 * MS,
        "deferred PLI after {after:?}"
    );
    listener.set_read_timeout(Some(700 * MS)).unwrap();
    assert!(listener.recv_from(&mut buf).is_err(), "merged into one PLI");
    assert_eq!(handle.stats().keyframe_requests, 2);
}

#[test]
fn a_missing_camera_goes_offline_naming_the_device_and_is_retried_with_growing_backoff() {
    let device = "/dev/video99";
    assert!(!Path::new(device).exists());
    let spec = StreamSpec {
        source: StreamSource::V4l2 {
            device: device.into(),
        },
        ..test_spec("missing-cam", VideoCodec::Vp8)
    };
    let (tx, rx) = async_channel::bounded(16);
    let started = Instant::now();
    let handle = Pipeline::new(&spec, &EncoderChoice::software(VideoCodec::Vp8))
        .unwrap()
        .with_backoff(Backoff {
            initial: 200 * MS,
            max: 2 * S,
        })
        .start(tx)
        .unwrap();
    assert!(
        wait_for(2 * S, || matches!(
            handle.state(),
            StreamState::Offline { .. }
        )),
        "Offline within 2 s, not {:?}",
        handle.state()
    );
    let StreamState::Offline { reason } = handle.state() else {
        unreachable!()
    };
    assert!(
        reason.contains(device),
        "the reason names the device: {reason}"
    );

    // When each pipeline was built.
    let mut builds: Vec<Instant> = vec![started];
    let mut seen = 1;
    wait_for(4 * S, || {
        let starts = handle.stats().starts;
        if starts > seen {
            seen = starts;
            builds.push(Instant::now());
        }
        starts >= 4
    });
    assert!(builds.len() >= 4, "{} attempts in 4 s", builds.len());
    let gaps: Vec<Duration> = builds.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(gaps[0] >= 150 * MS, "first retry after {:?}", gaps[0]);
    assert!(gaps[1] > gaps[0] + 100 * MS, "growing: {gaps:?}");
    assert!(gaps[2] > gaps[1] + 200 * MS, "growing: {gaps:?}");
    assert!(matches!(handle.state(), StreamState::Offline { .. }));
    assert!(rx.try_recv().is_err(), "no frames from nowhere");
    assert!(handle.stats().last_error.unwrap().contains(device));
}

#[test]
fn a_source_that_comes_back_plays_again_by_itself() {
    // The port is taken, so udpsrc cannot bind: a fault, like a camera that is unplugged.
    let blocker = UdpSocket::bind("127.0.0.1:0").unwrap();
    let video_port = blocker.local_addr().unwrap().port();
    let spec = rtp_spec("comes-back", video_port, 0, 0);
    let (tx, rx) = async_channel::bounded(512);
    let handle = Pipeline::new(&spec, &EncoderChoice::software(VideoCodec::Vp8))
        .unwrap()
        .with_backoff(Backoff {
            initial: 200 * MS,
            max: 400 * MS,
        })
        .start(tx)
        .unwrap();
    let _sender = janus_demo_sender(video_port, free_udp_port(), None);
    assert!(
        wait_for(2 * S, || matches!(
            handle.state(),
            StreamState::Offline { .. }
        )),
        "{:?}",
        handle.state()
    );
    let StreamState::Offline { reason } = handle.state() else {
        unreachable!()
    };
    assert!(reason.contains(RTP_VIDEO_SRC_NAME), "{reason}");
    drop(blocker);
    assert!(
        wait_for(3 * S, || handle.state() == StreamState::Playing),
        "Playing again, not {:?}",
        handle.state()
    );
    next_where(&rx, Instant::now() + S, is_video).expect("frames again");
    let stats = handle.stats();
    assert!(stats.starts >= 2);
    assert_eq!(stats.last_error, Some(reason));
}

const RTP_VIDEO_SRC_NAME: &str = describe::RTP_VIDEO_SRC;

#[test]
fn a_quiet_rtp_sender_is_offline_until_it_sends_and_the_pipeline_keeps_listening() {
    let (video_port, audio_port) = free_udp_ports();
    let spec = rtp_spec("quiet", video_port, 0, 0);
    let (tx, rx) = async_channel::bounded(512);
    let handle = Pipeline::new(&spec, &EncoderChoice::software(VideoCodec::Vp8))
        .unwrap()
        .with_quiet_after(300 * MS)
        .start(tx)
        .unwrap();
    assert_eq!(handle.state(), StreamState::Starting);
    assert!(wait_for(2 * S, || matches!(
        handle.state(),
        StreamState::Offline { .. }
    )));
    let StreamState::Offline { reason } = handle.state() else {
        unreachable!()
    };
    assert_eq!(
        reason,
        format!("no RTP video on port {video_port} for 0.3 s")
    );
    let _sender = janus_demo_sender(video_port, audio_port, None);
    next_where(&rx, Instant::now() + 5 * S, is_video).expect("video once the sender runs");
    assert!(wait_for(S, || handle.state() == StreamState::Playing));
    assert_eq!(handle.stats().starts, 1, "not rebuilt: only waiting");
}

#[test]
fn a_stopped_stream_runs_nothing_until_started_and_resumes_with_a_keyframe() {
    let spec = test_spec("stop-start", VideoCodec::Vp8);
    let (tx, rx) = async_channel::bounded(256);
    let handle = Pipeline::new(&spec, &EncoderChoice::software(VideoCodec::Vp8))
        .unwrap()
        .start_stopped(tx)
        .unwrap();
    assert!(recv_until(&rx, Instant::now() + 300 * MS).is_none());
    assert_eq!(handle.state(), StreamState::Stopped);
    assert_eq!(handle.stats().starts, 0);
    assert!(testing::pipeline(&handle).is_none());
    assert_eq!(handle.request_keyframe(), KeyframeRequest::Unavailable);

    handle.start();
    let first = next_where(&rx, Instant::now() + 3 * S, is_video).expect("frames after start");
    assert!(first.frame.keyframe);
    assert!(wait_for(S, || handle.state() == StreamState::Playing));
    let before = collect(&rx, 300 * MS).pop().expect("more frames").frame;

    handle.stop();
    assert!(wait_for(2 * S, || handle.state() == StreamState::Stopped));
    assert!(testing::pipeline(&handle).is_none(), "torn down");
    let mut last = before;
    while let Ok(f) = rx.try_recv() {
        last = f;
    }
    assert!(
        recv_until(&rx, Instant::now() + 500 * MS).is_none(),
        "no frames while stopped"
    );

    handle.start();
    let again = next_where(&rx, Instant::now() + 3 * S, is_video).expect("frames after restart");
    assert!(
        again.frame.keyframe,
        "a new pipeline starts with a keyframe"
    );
    assert!(
        again.frame.pts > last.pts,
        "pts keep increasing across restarts"
    );
    assert_eq!(
        again.frame.seq,
        last.seq + 1,
        "seq continues, nothing dropped"
    );
    assert_eq!(handle.stats().starts, 2);
}

#[test]
fn dropping_the_handle_stops_the_pipeline_and_its_threads() {
    let spec = test_spec("drop-me", VideoCodec::Vp8);
    let (handle, rx) = start(&spec, 256);
    next_where(&rx, Instant::now() + 3 * S, is_video).expect("frames");
    let pipeline = testing::pipeline(&handle).expect("a running pipeline");
    assert_eq!(pipeline.current_state(), gst::State::Playing);
    assert!(thread_names().iter().any(|n| n == "pipe:drop-me"));

    drop(handle);
    assert_eq!(pipeline.current_state(), gst::State::Null);
    assert!(!thread_names().iter().any(|n| n == "pipe:drop-me"));
    drop(pipeline);
    // Nothing holds the stream any more: the appsink callbacks, the only other senders,
    // are gone with the pipeline, so the channel closes once drained.
    let mut after = 0;
    while recv_until(&rx, Instant::now() + S).is_some() {
        after += 1;
        assert!(after <= 256, "frames keep coming after drop");
    }
    assert!(
        rx.is_closed(),
        "the channel closed: no sender left anywhere"
    );
}

#[test]
fn close_tears_down_without_blocking_the_executor() {
    let spec = test_spec("close-me", VideoCodec::Vp8);
    let (handle, rx) = start(&spec, 256);
    next_where(&rx, Instant::now() + 3 * S, is_video).expect("frames");
    let pipeline = testing::pipeline(&handle).unwrap();
    future::block_on(handle.close());
    assert_eq!(pipeline.current_state(), gst::State::Null);
}

#[test]
fn a_full_channel_drops_frames_and_counts_them_without_stalling_the_pipeline() {
    let mut spec = test_spec("full", VideoCodec::Vp8);
    spec.fps = 30;
    let (handle, rx) = start(&spec, 2);
    assert!(wait_for(3 * S, || handle.stats().video.frames >= 30));
    let stats = handle.stats();
    assert!(stats.video.dropped >= 20, "{:?}", stats.video);
    // Two frames wait in the channel; a third may be between its count and its drop.
    let kept = stats.video.frames - stats.video.dropped;
    assert!((2..=3).contains(&kept), "{:?}", stats.video);
    let queued: Vec<MediaFrame> = std::iter::from_fn(|| rx.try_recv().ok()).collect();
    assert_eq!(queued.len(), 2);
    let next = recv_until(&rx, Instant::now() + S)
        .expect("frames still flow")
        .frame;
    assert!(
        next.seq > queued[1].seq + 1,
        "the gap in seq shows the drops"
    );
}

#[test]
fn a_pipeline_that_can_never_run_is_an_error_and_starts_nothing() {
    let spec = test_spec("bad", VideoCodec::Vp8);
    let (tx, _rx) = async_channel::unbounded();
    let err = Pipeline::new(&spec, &EncoderChoice::software(VideoCodec::Vp8))
        .unwrap()
        .start(tx)
        .unwrap_err();
    assert!(
        matches!(err, PipelineError::UnboundedChannel { .. }),
        "{err}"
    );

    let (tx, _rx) = async_channel::bounded(4);
    let missing = EncoderChoice {
        element: "outpostnosuchenc".into(),
        properties: vec![],
        ..EncoderChoice::software(VideoCodec::Vp8)
    };
    let err = Pipeline::new(&spec, &missing)
        .unwrap()
        .start(tx.clone())
        .unwrap_err();
    assert!(
        matches!(&err, PipelineError::MissingElement { element, .. } if element == "outpostnosuchenc"),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("gst-inspect-1.0 outpostnosuchenc"),
        "{err}"
    );

    let mut bad_value = EncoderChoice::software(VideoCodec::Vp8);
    bad_value
        .properties
        .push(("deadline".into(), "soon".into()));
    let err = Pipeline::new(&spec, &bad_value)
        .unwrap()
        .start(tx)
        .unwrap_err();
    assert!(
        matches!(&err, PipelineError::Launch { message, .. } if message.contains("deadline")),
        "{err:?}"
    );
    assert!(!thread_names().iter().any(|n| n == "pipe:bad"));
}

#[test]
fn gstreamer_reads_a_quoted_value_back_unchanged() {
    gst::init().unwrap();
    let device = r#"/dev/x" ! fakesink name=evil \" y"#;
    let spec = StreamSpec {
        source: StreamSource::V4l2 {
            device: device.into(),
        },
        ..test_spec("quoted", VideoCodec::Vp8)
    };
    let description = Pipeline::new(&spec, &EncoderChoice::software(VideoCodec::Vp8))
        .unwrap()
        .describe()
        .unwrap();
    let bin = gst::parse::launch(&description.launch)
        .unwrap()
        .downcast::<gst::Bin>()
        .unwrap();
    assert!(bin.by_name("evil").is_none(), "no element smuggled in");
    let src = bin
        .iterate_all_by_element_factory_name("v4l2src")
        .next()
        .unwrap()
        .unwrap();
    assert_eq!(src.property::<String>("device"), device);
}

#[test]
fn fault_reasons_name_the_element_and_keep_the_human_part_of_the_debug_text() {
    assert_eq!(
        fault_reason(
            Some("v4l2src0"),
            "Cannot identify device '/dev/video99'.",
            Some(
                "../sys/v4l2/v4l2_calls.c(608): gst_v4l2_open (): /GstPipeline:pipeline0/GstV4l2Src:v4l2src0:\n\
                 system error: No such file or directory"
            ),
        ),
        "v4l2src0: Cannot identify device '/dev/video99'. (system error: No such file or directory)"
    );
    assert_eq!(
        fault_reason(None, "Internal data stream error.", Some("one line only")),
        "Internal data stream error."
    );
    assert_eq!(fault_reason(Some("x"), "m", None), "x: m");
}

/// No V4L2 device can exist here (the kernel has no modules, so no v4l2loopback): the
/// camera pipeline runs with a test source standing in for `v4l2src`, offering raw video or
/// MJPEG, and must negotiate the configured mode, decode, encode.
#[test]
fn the_camera_chain_takes_raw_or_decodes_mjpeg_at_the_configured_mode() {
    gst::init().unwrap();
    let spec = StreamSpec {
        source: StreamSource::V4l2 {
            device: "/dev/video0".into(),
        },
        ..test_spec("cam-chain", VideoCodec::Vp8)
    };
    let description = Pipeline::new(&spec, &EncoderChoice::software(VideoCodec::Vp8))
        .unwrap()
        .describe()
        .unwrap();
    for (camera, decoder) in [
        ("videotestsrc is-live=true", None),
        ("videotestsrc is-live=true ! jpegenc", Some("jpegdec")),
    ] {
        let launch = description
            .launch
            .replace("v4l2src device=\"/dev/video0\"", camera);
        assert_ne!(launch, description.launch);
        let pipeline = gst::parse::launch(&launch)
            .unwrap()
            .downcast::<gst::Pipeline>()
            .unwrap();
        let sink = pipeline
            .by_name(describe::VIDEO_SINK)
            .unwrap()
            .downcast::<gstreamer_app::AppSink>()
            .unwrap();
        pipeline.set_state(gst::State::Playing).unwrap();
        let sample = sink.try_pull_sample(gst::ClockTime::from_seconds(3));
        let decoders = pipeline
            .iterate_all_by_element_factory_name("jpegdec")
            .into_iter()
            .count();
        pipeline.set_state(gst::State::Null).unwrap();
        let sample = sample.unwrap_or_else(|| panic!("no frame from {camera}"));
        let map = sample.buffer().unwrap().map_readable().unwrap();
        assert_eq!(wire::vp8_keyframe_size(&map), Some((320, 240)), "{camera}");
        assert_eq!(decoders, usize::from(decoder.is_some()), "{camera}");
    }
}
