//! The gateway's shell: the only code that touches its UDP socket. It reads the clock,
//! moves datagrams between the socket and the [`Gateway`], feeds it frames and sleeps until
//! its next deadline.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use async_io::Timer;
use async_net::UdpSocket;
use event_listener::Event;
use futures_lite::FutureExt;

use super::{Frame, Gateway, GatewayEvent};

/// Largest datagram read: above any path MTU a browser uses.
const RECV_BUFFER: usize = 2048;

/// A frame of a named stream, as it travels from the pipeline's threads to the shell
/// (over a bounded channel the pipeline fills with `try_send`, dropping when full).
#[derive(Clone, Debug)]
pub struct StreamFrame {
    pub stream: Arc<str>,
    pub frame: Frame,
}

/// The gateway, shared on the agent's single-threaded executor between the shell and the
/// HTTP handlers. Every change goes through [`SharedGateway::with`], which wakes the shell
/// so that what the change produced (an answer's first datagrams, a closed viewer's BYE)
/// leaves at once.
pub struct SharedGateway {
    gateway: RefCell<Gateway>,
    changed: Event,
}

impl SharedGateway {
    pub fn new(gateway: Gateway) -> Rc<SharedGateway> {
        Rc::new(SharedGateway {
            gateway: RefCell::new(gateway),
            changed: Event::new(),
        })
    }

    /// Runs `f` on the gateway, then wakes the shell.
    pub fn with<R>(&self, f: impl FnOnce(&mut Gateway) -> R) -> R {
        let r = f(&mut self.gateway.borrow_mut());
        self.changed.notify(usize::MAX);
        r
    }

    /// Reads the gateway (counters, viewer counts) without waking the shell.
    pub fn read<R>(&self, f: impl FnOnce(&Gateway) -> R) -> R {
        f(&self.gateway.borrow())
    }
}

/// Drives `shared` on `socket` forever: sends what the gateway has to send, hands each
/// datagram and frame in, calls its timeouts, and passes its events to `on_event` (which
/// may use `shared`, e.g. to throttle `KeyframeWanted` and ask the encoder).
///
/// `frames` closing (the pipeline stopped) is not an error: viewers stay until they leave.
pub async fn drive(
    socket: UdpSocket,
    shared: Rc<SharedGateway>,
    frames: async_channel::Receiver<StreamFrame>,
    mut on_event: impl FnMut(GatewayEvent),
) {
    let mut buf = vec![0u8; RECV_BUFFER];
    let mut frames_open = true;
    loop {
        // Listen before draining, so that a change made while we drain is not missed.
        let changed = shared.changed.listen();
        loop {
            let t = shared.gateway.borrow_mut().poll_transmit(Instant::now());
            let Some(t) = t else { break };
            if let Err(e) = socket.send_to(&t.contents, t.destination).await {
                tracing::debug!("WebRTC: sending to {} failed: {e}", t.destination);
            }
        }
        loop {
            let e = shared.gateway.borrow_mut().poll_event();
            let Some(e) = e else { break };
            on_event(e);
        }
        let deadline = shared.gateway.borrow().poll_timeout();

        enum Wake {
            Datagram(usize, std::net::SocketAddr),
            Frame(Option<StreamFrame>),
            Timeout,
            Changed,
        }
        let recv = async {
            match socket.recv_from(&mut buf).await {
                Ok((n, from)) => Wake::Datagram(n, from),
                Err(e) => {
                    // ICMP errors surface here on some systems; nothing to do but go on.
                    tracing::debug!("WebRTC socket: {e}");
                    Wake::Changed
                }
            }
        };
        let frame = async {
            if frames_open {
                Wake::Frame(frames.recv().await.ok())
            } else {
                std::future::pending().await
            }
        };
        let timer = async {
            match deadline {
                Some(at) => Timer::at(at).await,
                None => Timer::never().await,
            };
            Wake::Timeout
        };
        let changed = async {
            changed.await;
            Wake::Changed
        };
        // Frames first: datagrams can be ready back to back under load, frames cannot.
        match frame.or(timer).or(changed).or(recv).await {
            Wake::Datagram(n, from) => {
                shared
                    .gateway
                    .borrow_mut()
                    .handle_packet(Instant::now(), from, &buf[..n]);
            }
            Wake::Frame(Some(f)) => {
                let mut gw = shared.gateway.borrow_mut();
                let now = Instant::now();
                gw.push_frame(now, &f.stream, &f.frame);
                // Take whatever else is waiting, without sleeping in between.
                while let Ok(f) = frames.try_recv() {
                    gw.push_frame(now, &f.stream, &f.frame);
                }
            }
            Wake::Frame(None) => frames_open = false,
            Wake::Timeout => shared.gateway.borrow_mut().handle_timeout(Instant::now()),
            Wake::Changed => {}
        }
    }
}
