//! The agent's media shell: one pipeline per stream (encoding only while watched), the
//! WebRTC gateway on one UDP socket, and the glue between them: frames to the gateway,
//! keyframe requests to the encoder, the streams' state for `/v1/streams`. Streams change
//! live: [`MediaHub::apply`] adds, rebuilds and removes pipelines as a reloaded config says.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use async_net::UdpSocket;
use smol::LocalExecutor;

use super::pipeline::{
    EncoderChoice, KeyframeRequest, MediaFrame, MediaKind, Pipeline, PipelineHandle, StreamState,
};
use super::rtc::udp::{SharedGateway, StreamFrame, drive};
use super::rtc::{Frame, Gateway, GatewayConfig, GatewayEvent};
use super::whep::WhepReply;
use crate::board::{EncoderPick, Selection};
use crate::config::StreamSpec;
use crate::config::stream::{StreamSource, VideoCodec};

/// Frames on their way from the pipelines to the gateway (per stream, the pipeline's own
/// channel is bounded too and drops when full).
const FRAMES_IN_FLIGHT: usize = 256;
const PIPELINE_CHANNEL: usize = 64;

/// The streams' pipelines and the gateway, on the agent's executor.
pub struct MediaHub {
    pub gateway: Rc<SharedGateway>,
    streams: RefCell<BTreeMap<String, Entry>>,
    /// Every pipeline's frames, to the gateway's shell.
    frames: async_channel::Sender<StreamFrame>,
    ex: Rc<LocalExecutor<'static>>,
    /// The board the pipelines were built for, and the encoder each codec gets on it.
    board: RefCell<Option<Selection>>,
    encoders: RefCell<Vec<EncoderPick>>,
}

/// A configured stream and its pipeline, or why it has none.
struct Entry {
    spec: StreamSpec,
    pipeline: Result<PipelineHandle, String>,
    /// The encoder it runs with (none for `rtp`, which arrives encoded).
    encoder: Option<EncoderPick>,
}

impl MediaHub {
    /// Binds the gateway's UDP socket on `ip` and spawns the task that moves its datagrams,
    /// frames and events. No stream yet: [`MediaHub::apply`] adds them.
    pub async fn start(
        ip: std::net::IpAddr,
        session_key: [u8; 32],
        ex: &Rc<LocalExecutor<'static>>,
    ) -> Result<Rc<MediaHub>, String> {
        let socket = UdpSocket::bind(SocketAddr::new(ip, 0))
            .await
            .map_err(|e| format!("cannot bind the WebRTC socket on {ip}: {e}"))?;
        let addr = socket
            .local_addr()
            .map_err(|e| format!("WebRTC socket: {e}"))?;
        let shared = SharedGateway::new(Gateway::new(GatewayConfig::new(addr, session_key))?);
        let (tx, rx) = async_channel::bounded::<StreamFrame>(FRAMES_IN_FLIGHT);
        tracing::info!("WebRTC (WHEP) on udp {addr}");
        let hub = Rc::new(MediaHub {
            gateway: shared.clone(),
            streams: RefCell::default(),
            frames: tx,
            ex: ex.clone(),
            board: RefCell::default(),
            encoders: RefCell::default(),
        });
        let weak = Rc::downgrade(&hub);
        ex.spawn(drive(socket, shared, rx, move |e| {
            if let Some(hub) = weak.upgrade() {
                hub.on_event(e);
            }
        }))
        .detach();
        Ok(hub)
    }

    /// Makes the running streams those of `specs`: a stream whose definition is unchanged
    /// keeps its pipeline and viewers; a removed one is closed and its viewers are ended; a
    /// new or changed one gets a new pipeline (viewers of a changed stream stay when its
    /// codec and audio did not change, and get the new pipeline's pictures). A stream whose
    /// pipeline cannot be built is `unavailable` with the reason; the others run. Encoded
    /// streams (`test`, `v4l2`) use the encoder `board` gives their codec here; a new board
    /// rebuilds them.
    pub async fn apply(&self, specs: &[StreamSpec], board: &Selection) {
        let new_board = self.board.borrow().as_ref() != Some(board);
        let old: Vec<Entry> = {
            let mut streams = self.streams.borrow_mut();
            let gone: Vec<String> = streams
                .iter()
                .filter(|(_, e)| !specs.contains(&e.spec) || (new_board && e.encoder.is_some()))
                .map(|(n, _)| n.clone())
                .collect();
            gone.iter().filter_map(|n| streams.remove(n)).collect()
        };
        for e in old {
            if let Ok(p) = e.pipeline {
                // The thread's teardown, awaited without blocking the executor.
                p.close().await;
            }
        }
        let new: Vec<StreamSpec> = {
            let streams = self.streams.borrow();
            specs
                .iter()
                .filter(|s| !streams.contains_key(&s.name))
                .cloned()
                .collect()
        };
        let mut senders = Vec::new();
        for spec in &new {
            let (ptx, prx) = async_channel::bounded(PIPELINE_CHANNEL);
            senders.push((spec.clone(), ptx));
            self.forward(&spec.name, prx);
        }
        // GStreamer's initialisation (its plugin registry) and the pipelines' parsing take
        // tens of milliseconds: off the executor, so DNS and HTTP keep answering meanwhile.
        let board_now = board.clone();
        let (encoders, built) = smol::unblock(move || {
            let encoders = pick_encoders(&board_now);
            let built = senders
                .into_iter()
                .map(|(spec, ptx)| build(spec, ptx, &encoders))
                .collect::<Vec<_>>();
            (encoders, built)
        })
        .await;
        *self.board.borrow_mut() = Some(board.clone());
        *self.encoders.borrow_mut() = encoders;
        let now = Instant::now();
        let mut streams = self.streams.borrow_mut();
        for e in built {
            streams.insert(e.spec.name.clone(), e);
        }
        // The gateway takes viewers for the streams that have a pipeline.
        let playable: Vec<StreamSpec> = streams
            .values()
            .filter(|e| e.pipeline.is_ok())
            .map(|e| e.spec.clone())
            .collect();
        self.gateway.with(|gw| gw.set_streams(now, &playable));
        for (name, e) in streams.iter() {
            if let Ok(p) = &e.pipeline
                && self.gateway.read(|gw| gw.viewers(name)).unwrap_or(0) > 0
            {
                p.start();
            }
        }
        tracing::info!("streams: {} ({} new or changed)", streams.len(), new.len());
    }

    /// Moves `stream`'s frames from its pipeline to the gateway until the pipeline closes.
    fn forward(&self, stream: &str, frames: async_channel::Receiver<MediaFrame>) {
        let name: Arc<str> = stream.into();
        let tx = self.frames.clone();
        self.ex
            .spawn(async move {
                while let Ok(f) = frames.recv().await {
                    let frame = to_frame(f);
                    let stream = name.clone();
                    if tx.send(StreamFrame { stream, frame }).await.is_err() {
                        break;
                    }
                }
            })
            .detach();
    }

    /// Closes every stream, waiting for their pipelines' teardown.
    pub async fn close(&self) {
        let all = std::mem::take(&mut *self.streams.borrow_mut());
        for e in all.into_values() {
            if let Ok(p) = e.pipeline {
                p.close().await;
            }
        }
    }

    /// The encoder each codec gets on this board (empty until streams were applied).
    pub fn encoders(&self) -> Vec<EncoderPick> {
        self.encoders.borrow().clone()
    }

    /// Why `stream` takes no viewers though it is configured (its pipeline could not be
    /// built), if so.
    pub fn unavailable(&self, stream: &str) -> Option<String> {
        let streams = self.streams.borrow();
        streams.get(stream)?.pipeline.as_ref().err().cloned()
    }

    /// A viewer joined `stream` over WHEP: make sure its encoder runs.
    pub fn watched(&self, stream: &str) {
        if let Some(Entry {
            pipeline: Ok(p), ..
        }) = self.streams.borrow().get(stream)
            && p.state() == StreamState::Stopped
        {
            p.start();
        }
    }

    fn on_event(&self, e: GatewayEvent) {
        match e {
            GatewayEvent::KeyframeWanted { stream } => {
                let gop = {
                    let streams = self.streams.borrow();
                    let Some(Entry {
                        pipeline: Ok(p), ..
                    }) = streams.get(&*stream)
                    else {
                        return;
                    };
                    // An RTP source without a way to ask for a keyframe: the last one kept.
                    match p.request_keyframe() {
                        KeyframeRequest::Unavailable => p.gop(),
                        _ => return,
                    }
                };
                let now = Instant::now();
                for f in gop {
                    let frame = to_frame(f);
                    self.gateway.with(|gw| gw.push_frame(now, &stream, &frame));
                }
            }
            GatewayEvent::ViewerConnected { stream, .. } => self.watched(&stream),
            GatewayEvent::ViewerGone { stream, .. } => {
                let left = self.gateway.read(|gw| gw.viewers(&stream)).unwrap_or(0);
                if left == 0
                    && let Some(Entry {
                        pipeline: Ok(p), ..
                    }) = self.streams.borrow().get(&*stream)
                {
                    p.stop();
                }
            }
        }
    }

    /// Answers a WHEP request (see [`super::whep`]). A stream whose pipeline could not be
    /// built refuses new viewers (`503` with the reason); a new viewer starts its stream's
    /// encoder.
    pub fn whep(
        &self,
        method: &http::Method,
        path: &str,
        content_type: Option<&str>,
        body: &[u8],
    ) -> WhepReply {
        let stream = path
            .strip_prefix(super::whep::PREFIX)
            .map(|s| s.trim_end_matches('/'));
        if method == http::Method::POST
            && let Some(reason) = stream.and_then(|s| self.unavailable(s))
        {
            return WhepReply::error(
                http::StatusCode::SERVICE_UNAVAILABLE,
                format!("this stream is unavailable: {reason}"),
            );
        }
        let now = Instant::now();
        let r = self
            .gateway
            .with(|gw| super::whep::handle(gw, now, method, path, content_type, body));
        if r.status == http::StatusCode::CREATED
            && let Some(stream) = stream
        {
            self.watched(stream);
        }
        r
    }

    /// Every stream's [`MediaHub::status`].
    pub fn statuses(&self) -> BTreeMap<String, crate::agent::StreamStatus> {
        let names: Vec<String> = self.streams.borrow().keys().cloned().collect();
        names
            .into_iter()
            .filter_map(|n| Some((n.clone(), self.status(&n)?)))
            .collect()
    }

    /// What `stream` is doing now: state, reason, viewers, measured size, fps, kbit/s.
    pub fn status(&self, stream: &str) -> Option<crate::agent::StreamStatus> {
        let streams = self.streams.borrow();
        let entry = streams.get(stream)?;
        let (encoder, encoder_hardware, encoder_reason) = match &entry.encoder {
            Some(e) => (e.choice.element.clone(), e.hardware, e.reason.clone()),
            None => Default::default(),
        };
        let p = match &entry.pipeline {
            Ok(p) => p,
            Err(reason) => {
                return Some(crate::agent::StreamStatus {
                    state: "unavailable",
                    reason: reason.clone(),
                    encoder,
                    encoder_hardware,
                    encoder_reason,
                    ..crate::agent::StreamStatus::initial()
                });
            }
        };
        let stats = p.stats();
        let (state, reason) = match &stats.state {
            StreamState::Stopped => match super::absent_camera(&entry.spec) {
                Some(reason) => ("offline", reason),
                None => ("idle", String::new()),
            },
            StreamState::Starting => ("starting", String::new()),
            StreamState::Playing => ("playing", String::new()),
            StreamState::Offline { reason } => ("offline", reason.clone()),
        };
        Some(crate::agent::StreamStatus {
            state,
            reason,
            viewers: self.gateway.read(|gw| gw.viewers(stream)).unwrap_or(0),
            width: stats.width.unwrap_or(0),
            height: stats.height.unwrap_or(0),
            fps: (stats.fps * 10.0).round() / 10.0,
            bitrate_kbps: (stats.video_bitrate / 100.0).round() / 10.0,
            encoder,
            encoder_hardware,
            encoder_reason,
        })
    }
}

/// The encoder of each codec on `board`, given the elements this GStreamer has.
fn pick_encoders(board: &Selection) -> Vec<EncoderPick> {
    // Without GStreamer nothing exists: the software fallback, whose pipeline then reports
    // why GStreamer is unusable.
    let ready = gstreamer::init().is_ok();
    let exists = |element: &str| ready && gstreamer::ElementFactory::find(element).is_some();
    [VideoCodec::H264, VideoCodec::Vp8]
        .into_iter()
        .map(|codec| crate::board::encoder::pick(board, codec, exists))
        .collect()
}

/// A stream's pipeline, with its codec's encoder from `encoders` if it encodes. A hardware
/// encoder GStreamer refuses (a property it lacks, a value it rejects) gives way to the
/// software fallback, and the reason says so.
fn build(
    spec: StreamSpec,
    frames: async_channel::Sender<MediaFrame>,
    encoders: &[EncoderPick],
) -> Entry {
    let start = |choice: &EncoderChoice| {
        Pipeline::new(&spec, choice)
            .and_then(|p| p.start_stopped(frames.clone()))
            .map_err(|e| e.to_string())
    };
    let mut encoder = match spec.source {
        StreamSource::Rtp { .. } => None,
        _ => encoders.iter().find(|e| e.codec == spec.codec).cloned(),
    };
    let mut pipeline = match &encoder {
        Some(e) => start(&e.choice),
        None => start(&EncoderChoice::software(spec.codec)),
    };
    if let (Err(why), Some(e)) = (&pipeline, &mut encoder)
        && e.hardware
    {
        let choice = EncoderChoice::software(spec.codec);
        tracing::warn!(
            "stream {:?}: hardware encoder {} refused ({why}); trying software",
            spec.name,
            e.choice.element
        );
        e.reason = format!(
            "hardware encoder {} was refused by GStreamer ({why}): software fallback",
            e.choice.element
        );
        e.hardware = false;
        e.choice = choice;
        pipeline = start(&e.choice);
    }
    match (&pipeline, &encoder) {
        (Err(e), _) => tracing::error!("stream {:?} is unavailable: {e}", spec.name),
        (Ok(_), Some(e)) => tracing::info!(
            "stream {:?}: {} encoder {} ({})",
            spec.name,
            if e.hardware { "hardware" } else { "software" },
            e.choice.element,
            e.reason
        ),
        (Ok(_), None) => {}
    }
    Entry {
        spec,
        pipeline,
        encoder,
    }
}

/// A pipeline's frame as the gateway takes it (the data is shared, not copied).
fn to_frame(f: MediaFrame) -> Frame {
    Frame {
        video: f.kind == MediaKind::Video,
        data: f.data,
        keyframe: f.keyframe,
        pts: f.pts,
    }
}
