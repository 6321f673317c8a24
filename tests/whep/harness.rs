//! What the agent will do, in miniature: a [`Gateway`] on a UDP socket driven by its shell on
//! a smol executor, a live GStreamer encoder (VP8 + Opus, encoded once) feeding it, keyframes
//! asked of the encoder on `KeyframeWanted` (throttled), and a hyper server with the player
//! page, WHEP and the gateway's counters.

use std::cell::Cell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use async_io::Timer;
use async_net::{TcpListener, UdpSocket};
use bytes::Bytes;
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use smol::LocalExecutor;
use smol_hyper::rt::FuturesIo;

use outpost::config::stream::StreamSpec;
use outpost::media::rtc::udp::{self, SharedGateway, StreamFrame};
use outpost::media::rtc::{Frame, Gateway, GatewayConfig, GatewayEvent};
use outpost::media::whep;

const PLAYER: &str = include_str!("player.html");
/// The encoder's own keyframe interval: 10 s, so that a viewer seeing a picture within a
/// second owes it to the keyframe it asked for.
pub const KEYFRAME_MAX_DIST: u32 = 300;
/// At most one keyframe asked of the encoder per this long (later requests wait their turn).
const KEYFRAME_THROTTLE: Duration = Duration::from_millis(250);
/// Frames in flight from GStreamer's threads to the shell; more are dropped.
const FRAME_CHANNEL: usize = 64;

/// The thread the gateway, its shell and the HTTP server run on (GStreamer has its own).
pub const GATEWAY_THREAD: &str = "gateway";

pub struct Harness {
    pub http: SocketAddr,
    pub udp: SocketAddr,
    stop: async_channel::Sender<()>,
    thread: Option<JoinHandle<()>>,
}

impl Harness {
    pub fn start(spec: StreamSpec) -> Harness {
        let (tx, rx) = std::sync::mpsc::channel();
        let (stop, stopped) = async_channel::bounded::<()>(1);
        // Named, so that a measurement can find its CPU time in /proc/self/task.
        let thread = std::thread::Builder::new()
            .name(GATEWAY_THREAD.into())
            .spawn(move || serve(spec, tx, stopped))
            .unwrap();
        let (http, udp) = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the harness did not start");
        Harness {
            http,
            udp,
            stop,
            thread: Some(thread),
        }
    }

    /// GET `path` from the harness's HTTP server: the status and the body.
    pub fn get(&self, path: &str) -> (u16, String) {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(self.http).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut reply = String::new();
        s.read_to_string(&mut reply).unwrap();
        let status = reply[9..12].parse().unwrap();
        let body = reply.split("\r\n\r\n").nth(1).unwrap_or("").to_owned();
        (status, body)
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        let _ = self.stop.try_send(());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Counters the test reads at `/stats`.
#[derive(Default)]
struct Counters {
    keyframes_wanted: Cell<u64>,
    keyframes_forced: Cell<u64>,
}

fn serve(
    spec: StreamSpec,
    started: std::sync::mpsc::Sender<(SocketAddr, SocketAddr)>,
    stop: async_channel::Receiver<()>,
) {
    let ex = Rc::new(LocalExecutor::new());
    smol::block_on(ex.run(async {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let udp_addr = socket.local_addr().unwrap();
        let mut gateway = Gateway::new(GatewayConfig::new(udp_addr, [42; 32])).unwrap();
        gateway.set_streams(Instant::now(), std::slice::from_ref(&spec));
        let shared = SharedGateway::new(gateway);

        let (frames_tx, frames) = async_channel::bounded(FRAME_CHANNEL);
        let encoder = Encoder::start(&spec, frames_tx);
        let counters = Rc::new(Counters::default());
        let keyframes = Rc::new(KeyframeThrottle::new(
            encoder.video.clone(),
            counters.clone(),
        ));
        {
            let ex2 = ex.clone();
            let counters = counters.clone();
            ex.spawn(udp::drive(socket, shared.clone(), frames, move |e| {
                if let GatewayEvent::KeyframeWanted { .. } = e {
                    counters
                        .keyframes_wanted
                        .set(counters.keyframes_wanted.get() + 1);
                    keyframes.clone().want(&ex2);
                }
            }))
            .detach();
        }

        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        started
            .send((listener.local_addr().unwrap(), udp_addr))
            .unwrap();
        // The accept loop is a task of its own: the future `ex.run` is given is polled at
        // every wake of the executor, and an accept there would cost a syscall each time.
        let ex2 = ex.clone();
        ex.spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (shared, counters) = (shared.clone(), counters.clone());
                ex2.spawn(async move {
                    let service = service_fn(move |req| {
                        let (shared, counters) = (shared.clone(), counters.clone());
                        async move {
                            Ok::<_, std::convert::Infallible>(
                                respond(req, &shared, &counters).await,
                            )
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(FuturesIo::new(stream), service)
                        .await;
                })
                .detach();
            }
        })
        .detach();
        let _ = stop.recv().await;
        let _ = encoder.pipeline.set_state(gst::State::Null);
    }));
}

async fn respond(
    req: hyper::Request<Incoming>,
    shared: &Rc<SharedGateway>,
    counters: &Counters,
) -> hyper::Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, 1 << 20).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => Bytes::new(),
    };
    let path = parts.uri.path().to_owned();
    let reply = |status: u16, ct: &str, body: Vec<u8>| {
        hyper::Response::builder()
            .status(status)
            .header("content-type", ct)
            .body(Full::new(Bytes::from(body)))
            .unwrap()
    };
    if whep::is_whep(&path) {
        let ct = parts
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok());
        let r = shared.with(|gw| whep::handle(gw, Instant::now(), &parts.method, &path, ct, &body));
        let mut b = hyper::Response::builder().status(r.status);
        for (name, value) in &r.headers {
            b = b.header(*name, value);
        }
        return b.body(Full::new(Bytes::from(r.body))).unwrap();
    }
    match path.as_str() {
        "/" => reply(200, "text/html; charset=utf-8", PLAYER.into()),
        "/stats" => {
            let s = shared.read(|gw| gw.stats());
            let json = format!(
                "{{\"viewers\":{},\"datagrams_in\":{},\"datagrams_unroutable\":{},\"datagrams_out\":{},\"frames_dropped\":{},\"keyframes_wanted\":{},\"keyframes_forced\":{}}}",
                s.viewers,
                s.datagrams_in,
                s.datagrams_unroutable,
                s.datagrams_out,
                s.frames_dropped,
                counters.keyframes_wanted.get(),
                counters.keyframes_forced.get()
            );
            reply(200, "application/json", json.into_bytes())
        }
        _ => reply(404, "text/plain", b"not found\n".to_vec()),
    }
}

/// Asks the encoder for a keyframe at most once per [`KEYFRAME_THROTTLE`]; a request inside
/// the window is served when it ends, never lost.
struct KeyframeThrottle {
    video: gst_app::AppSink,
    last: Cell<Option<Instant>>,
    deferred: Cell<bool>,
    counters: Rc<Counters>,
}

impl KeyframeThrottle {
    fn new(video: gst_app::AppSink, counters: Rc<Counters>) -> KeyframeThrottle {
        KeyframeThrottle {
            video,
            last: Cell::new(None),
            deferred: Cell::new(false),
            counters,
        }
    }

    fn want(self: Rc<Self>, ex: &Rc<LocalExecutor<'static>>) {
        if self.deferred.get() {
            return;
        }
        let next = self.last.get().map(|t| t + KEYFRAME_THROTTLE);
        match next {
            Some(at) if at > Instant::now() => {
                self.deferred.set(true);
                ex.spawn(async move {
                    Timer::at(at).await;
                    self.deferred.set(false);
                    self.force();
                })
                .detach();
            }
            _ => self.force(),
        }
    }

    fn force(&self) {
        self.last.set(Some(Instant::now()));
        self.counters
            .keyframes_forced
            .set(self.counters.keyframes_forced.get() + 1);
        let event = gstreamer_video::UpstreamForceKeyUnitEvent::builder()
            .all_headers(true)
            .build();
        self.video.send_event(event);
    }
}

/// The stream encoded once, live: test pattern to VP8 and test tone to Opus with the settings
/// of the Janus streaming demo's sender, into app sinks whose frames go to the shell.
struct Encoder {
    pipeline: gst::Pipeline,
    video: gst_app::AppSink,
}

impl Encoder {
    fn start(spec: &StreamSpec, frames: async_channel::Sender<StreamFrame>) -> Encoder {
        gst::init().expect("GStreamer init");
        let description = format!(
            "videotestsrc is-live=true pattern=smpte horizontal-speed=4 ! \
               video/x-raw,width={w},height={h},framerate={fps}/1 ! videoconvert ! \
               queue max-size-buffers=2 leaky=downstream ! \
               vp8enc deadline=1 cpu-used=8 lag-in-frames=0 end-usage=cbr \
                 target-bitrate={bps} keyframe-max-dist={KEYFRAME_MAX_DIST} error-resilient=default \
                 threads=1 buffer-size=500 buffer-initial-size=300 buffer-optimal-size=400 ! \
               appsink name=video sync=false max-buffers=8 drop=true \
             audiotestsrc is-live=true wave=sine freq=440 volume=0.2 ! audioconvert ! audioresample ! \
               audio/x-raw,rate=48000,channels=2 ! \
               opusenc bitrate=64000 frame-size=20 audio-type=generic ! \
               appsink name=audio sync=false max-buffers=16 drop=true",
            w = spec.width,
            h = spec.height,
            fps = spec.fps,
            bps = spec.bitrate_kbps * 1000,
        );
        let pipeline = gst::parse::launch(&description)
            .expect("the GStreamer pipeline (gstreamer1.0-plugins-base/-good)")
            .downcast::<gst::Pipeline>()
            .unwrap();
        let name: Arc<str> = spec.name.as_str().into();
        let sink = |which: &str| {
            pipeline
                .by_name(which)
                .unwrap()
                .downcast::<gst_app::AppSink>()
                .unwrap()
        };
        let (video, audio) = (sink("video"), sink("audio"));
        for (appsink, is_video) in [(&video, true), (&audio, false)] {
            let (frames, name) = (frames.clone(), name.clone());
            appsink.set_callbacks(
                gst_app::AppSinkCallbacks::builder()
                    .new_sample(move |s| {
                        let sample = s.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                        let Some(buffer) = sample.buffer() else {
                            return Ok(gst::FlowSuccess::Ok);
                        };
                        let Ok(map) = buffer.map_readable() else {
                            return Ok(gst::FlowSuccess::Ok);
                        };
                        let frame = Frame {
                            video: is_video,
                            data: Arc::from(map.as_slice()),
                            keyframe: !is_video
                                || !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT),
                            pts: Duration::from_nanos(buffer.pts().map_or(0, |t| t.nseconds())),
                        };
                        // Full: the shell is behind; dropping here is the pipeline's bound.
                        let _ = frames.try_send(StreamFrame {
                            stream: name.clone(),
                            frame,
                        });
                        Ok(gst::FlowSuccess::Ok)
                    })
                    .build(),
            );
        }
        pipeline
            .set_state(gst::State::Playing)
            .expect("the GStreamer pipeline did not start");
        Encoder { pipeline, video }
    }
}
