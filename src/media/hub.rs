//! The agent's media shell: one pipeline per stream, each in its worker process (encoding
//! only while watched), the WebRTC gateway on one UDP socket, and the glue between them:
//! frames to the gateway, keyframe requests to the encoder, the streams' state for
//! `/v1/streams`. Streams change live: [`MediaHub::apply`] adds, rebuilds and removes
//! pipelines as a reloaded config says.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use async_net::UdpSocket;
use smol::LocalExecutor;

use super::pipeline::{EncoderChoice, MediaFrame, MediaKind, StreamState};
use super::rtc::udp::{SharedGateway, StreamFrame, drive};
use super::rtc::{Frame, Gateway, GatewayConfig, GatewayEvent};
use super::worker::{OpenError, Spawned, Worker, WorkerCommand};
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
    worker: WorkerCommand,
}

/// A configured stream and its pipeline, or why it has none.
struct Entry {
    spec: StreamSpec,
    pipeline: Result<Worker, String>,
    /// The encoder it runs with (none for `rtp`, which arrives encoded).
    encoder: Option<EncoderPick>,
}

impl MediaHub {
    /// Binds the gateway's UDP socket on `ip` and spawns the task that moves its datagrams,
    /// frames and events. No stream yet: [`MediaHub::apply`] adds them, each in a worker
    /// `worker` starts.
    pub async fn start(
        ip: std::net::IpAddr,
        session_key: [u8; 32],
        ex: &Rc<LocalExecutor<'static>>,
        worker: WorkerCommand,
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
            worker,
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
                // The worker's teardown, awaited without blocking the executor.
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
        // Each worker starts GStreamer (its plugin registry) and parses the pipeline in its
        // own process: DNS and HTTP keep answering meanwhile.
        let mut built = Vec::new();
        for spec in new.iter().cloned() {
            let (ptx, prx) = async_channel::bounded(PIPELINE_CHANNEL);
            self.forward(&spec.name, prx);
            let (entry, picks) = self.open(spec, ptx, board).await;
            if let Some(picks) = picks {
                *self.encoders.borrow_mut() = picks;
            }
            built.push(entry);
        }
        *self.board.borrow_mut() = Some(board.clone());
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
                {
                    let streams = self.streams.borrow();
                    let Some(Entry {
                        pipeline: Ok(p), ..
                    }) = streams.get(&*stream)
                    else {
                        return;
                    };
                    // The encoder or the RTP sender is asked; an RTP source without a way
                    // to ask gets the frames since its last keyframe again.
                    p.keyframe_wanted();
                };
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

    /// A worker with `spec`'s pipeline, with its codec's encoder on `board` if it encodes,
    /// and the encoder every codec gets on this board (when it encodes: the worker said
    /// which elements its GStreamer has). A hardware encoder GStreamer refuses (a property
    /// it lacks, a value it rejects) gives way to the software fallback, and the reason
    /// says so.
    async fn open(
        &self,
        spec: StreamSpec,
        frames: async_channel::Sender<MediaFrame>,
        board: &Selection,
    ) -> (Entry, Option<Vec<EncoderPick>>) {
        let unavailable = |spec: StreamSpec, why: String| {
            tracing::error!("stream {:?} is unavailable: {why}", spec.name);
            Entry {
                spec,
                pipeline: Err(why),
                encoder: None,
            }
        };
        let mut worker = match Spawned::spawn(&self.worker, &spec.name) {
            Ok(w) => w,
            Err(why) => return (unavailable(spec, why), None),
        };
        let (mut encoder, picks) = match spec.source {
            StreamSource::Rtp { .. } => (None, None),
            _ => match pick_encoders(&mut worker, board).await {
                Ok(picks) => (
                    picks.iter().find(|e| e.codec == spec.codec).cloned(),
                    Some(picks),
                ),
                Err(why) => return (unavailable(spec, why), None),
            },
        };
        let mut choice = match &encoder {
            Some(e) => e.choice.clone(),
            None => EncoderChoice::software(spec.codec),
        };
        let mut opened = worker.open(&spec, &choice).await;
        if let (Err(OpenError::Refused(why)), Some(e)) = (&opened, &mut encoder)
            && e.hardware
        {
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
            e.choice = EncoderChoice::software(spec.codec);
            choice = e.choice.clone();
            opened = worker.open(&spec, &choice).await;
        }
        if let Err(OpenError::Refused(why) | OpenError::Worker(why)) = opened {
            return (unavailable(spec, why), picks);
        }
        if let Some(e) = &encoder {
            tracing::info!(
                "stream {:?}: {} encoder {} ({})",
                spec.name,
                if e.hardware { "hardware" } else { "software" },
                e.choice.element,
                e.reason
            );
        }
        let pipeline = worker.run(self.worker.clone(), spec.clone(), choice, frames, &self.ex);
        let entry = Entry {
            spec,
            pipeline: Ok(pipeline),
            encoder,
        };
        (entry, picks)
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
            StreamState::Stopped => match absent_camera(&entry.spec) {
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

/// The encoder of each codec on `board`, given the elements the worker's GStreamer has.
async fn pick_encoders(
    worker: &mut Spawned,
    board: &Selection,
) -> Result<Vec<EncoderPick>, String> {
    const CODECS: [VideoCodec; 2] = [VideoCodec::H264, VideoCodec::Vp8];
    // Every element a pick may ask about: with none present, it asks about all of them.
    let asked = RefCell::new(Vec::<String>::new());
    for codec in CODECS {
        crate::board::encoder::pick(board, codec, |el| {
            let mut asked = asked.borrow_mut();
            if !asked.iter().any(|a| a == el) {
                asked.push(el.to_string());
            }
            false
        });
    }
    let names = asked.into_inner();
    let exists = worker.probe(&names).await?;
    let has = |el: &str| names.iter().zip(&exists).any(|(n, &e)| e && n == el);
    Ok(CODECS
        .into_iter()
        .map(|codec| crate::board::encoder::pick(board, codec, has))
        .collect())
}

/// An unwatched camera is not opened; its absence is still worth showing: a camera stream
/// whose device node is missing.
fn absent_camera(spec: &StreamSpec) -> Option<String> {
    match &spec.source {
        StreamSource::V4l2 { device } if !std::path::Path::new(device).exists() => {
            Some(format!("camera {device} is absent"))
        }
        _ => None,
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
