//! The agent's media shell: one pipeline per stream (encoding only while watched), the
//! WebRTC gateway on one UDP socket, and the glue between them: frames to the gateway,
//! keyframe requests to the encoder, the streams' state for `/v1/streams`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_net::UdpSocket;
use smol::LocalExecutor;

use super::pipeline::{
    EncoderChoice, KeyframeRequest, MediaFrame, MediaKind, Pipeline, PipelineHandle, StreamState,
};
use super::rtc::udp::{SharedGateway, StreamFrame, drive};
use super::rtc::{Frame, Gateway, GatewayConfig, GatewayEvent};
use crate::config::StreamSpec;

/// Frames on their way from the pipelines to the gateway (per stream, the pipeline's own
/// channel is bounded too and drops when full).
const FRAMES_IN_FLIGHT: usize = 256;
const PIPELINE_CHANNEL: usize = 64;

/// The streams' pipelines and the gateway, on the agent's executor.
pub struct MediaHub {
    pub gateway: Rc<SharedGateway>,
    pipelines: BTreeMap<String, PipelineHandle>,
}

impl MediaHub {
    /// Binds the gateway's UDP socket on `ip`, builds every stream's pipeline (stopped until
    /// someone watches) and spawns the tasks that move frames and events.
    pub async fn start(
        ip: std::net::IpAddr,
        streams: &[StreamSpec],
        session_key: [u8; 32],
        ex: &Rc<LocalExecutor<'static>>,
    ) -> Result<Rc<MediaHub>, String> {
        let socket = UdpSocket::bind(SocketAddr::new(ip, 0))
            .await
            .map_err(|e| format!("cannot bind the WebRTC socket on {ip}: {e}"))?;
        let addr = socket
            .local_addr()
            .map_err(|e| format!("WebRTC socket: {e}"))?;
        let mut gateway = Gateway::new(GatewayConfig::new(addr, session_key))?;
        gateway.set_streams(Instant::now(), streams);
        let shared = SharedGateway::new(gateway);
        let (tx, rx) = async_channel::bounded::<StreamFrame>(FRAMES_IN_FLIGHT);
        let mut pipelines = BTreeMap::new();
        let mut receivers = Vec::new();
        let mut senders = Vec::new();
        for spec in streams {
            let (ptx, prx) = async_channel::bounded(PIPELINE_CHANNEL);
            senders.push((spec.clone(), ptx));
            receivers.push((spec.name.clone(), prx));
        }
        // GStreamer's initialisation (its plugin registry) and the pipelines' parsing take
        // tens of milliseconds: off the executor, so DNS and HTTP keep answering meanwhile.
        let built = smol::unblock(move || {
            senders
                .into_iter()
                .map(|(spec, ptx)| {
                    Pipeline::new(&spec, &EncoderChoice::software(spec.codec))
                        .and_then(|p| p.start_stopped(ptx))
                        .map(|h| (spec.name.clone(), h))
                        .map_err(|e| format!("stream {:?}: {e}", spec.name))
                })
                .collect::<Result<Vec<_>, String>>()
        })
        .await?;
        pipelines.extend(built);
        for (name, prx) in receivers {
            let name: Arc<str> = name.as_str().into();
            let tx = tx.clone();
            ex.spawn(async move {
                while let Ok(f) = prx.recv().await {
                    let frame = to_frame(f);
                    if tx
                        .send(StreamFrame {
                            stream: name.clone(),
                            frame,
                        })
                        .await
                        .is_err()
                    {
                        break;
                    }
                }
            })
            .detach();
        }
        tracing::info!("WebRTC (WHEP) on udp {addr}, {} stream(s)", streams.len());
        let hub = Rc::new(MediaHub {
            gateway: shared.clone(),
            pipelines,
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

    /// A viewer joined `stream` over WHEP: make sure its encoder runs.
    pub fn watched(&self, stream: &str) {
        if let Some(p) = self.pipelines.get(stream)
            && p.state() == StreamState::Stopped
        {
            p.start();
        }
    }

    fn on_event(&self, e: GatewayEvent) {
        match e {
            GatewayEvent::KeyframeWanted { stream } => {
                let Some(p) = self.pipelines.get(&*stream) else {
                    return;
                };
                // An RTP source without a way to ask for a keyframe: the last one kept.
                if p.request_keyframe() == KeyframeRequest::Unavailable {
                    let now = Instant::now();
                    for f in p.gop() {
                        let frame = to_frame(f);
                        self.gateway.with(|gw| gw.push_frame(now, &stream, &frame));
                    }
                }
            }
            GatewayEvent::ViewerConnected { stream, .. } => self.watched(&stream),
            GatewayEvent::ViewerGone { stream, .. } => {
                let left = self.gateway.read(|gw| gw.viewers(&stream)).unwrap_or(0);
                if left == 0
                    && let Some(p) = self.pipelines.get(&*stream)
                {
                    p.stop();
                }
            }
        }
    }

    /// What `stream` is doing now: state, reason, viewers, measured size, fps, kbit/s.
    pub fn status(&self, stream: &str) -> Option<crate::agent::StreamStatus> {
        let p = self.pipelines.get(stream)?;
        let stats = p.stats();
        let (state, reason) = match &stats.state {
            StreamState::Stopped => ("idle", String::new()),
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
        })
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

/// How often the streams' state is copied into the agent state.
pub const STATUS_EVERY: Duration = Duration::from_secs(1);
