//! The service manager's side of the agent (sd_notify(3), sd_listen_fds(3)): READY,
//! RELOADING, STOPPING, STATUS and watchdog pings to systemd, and the DNS sockets it passes in.
//!
//! Without `NOTIFY_SOCKET` (not started by systemd) every notification is a no-op; without
//! `LISTEN_FDS` the agent binds its own sockets.

use std::net::SocketAddr;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use async_io::Async;
use async_net::TcpListener;
use nix::sys::socket::{SockType, getsockopt, sockopt};
use sd_notify::NotifyState;

/// The name a socket unit gives the DNS sockets (`FileDescriptorName=dns`).
pub const DNS_FD_NAME: &str = "dns";

/// Tells the service manager that start-up (or a reload) is complete; `status` is the line
/// `systemctl status` shows.
pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// Tells the service manager that a reload has begun. `MONOTONIC_USEC` lets it tell this
/// reload from an earlier one (sd_notify(3), for `Type=notify-reload`); READY follows when
/// the reload is done, whether or not it succeeded.
pub fn reloading() {
    let mut states = vec![NotifyState::Reloading];
    match NotifyState::monotonic_usec_now() {
        Ok(now) => states.push(now),
        Err(e) => tracing::warn!("service manager: no monotonic clock for MONOTONIC_USEC: {e}"),
    }
    states.push(NotifyState::Status("reloading the config"));
    send(&states);
}

/// Tells the service manager that the agent is shutting down.
pub fn stopping() {
    send(&[NotifyState::Stopping, NotifyState::Status("shutting down")]);
}

/// Sets the status line alone (a start-up that failed says why).
pub fn status(status: &str) {
    send(&[NotifyState::Status(status)]);
}

/// Sends `states`; a failure is logged once as a warning (then at debug level, so that a
/// broken `NOTIFY_SOCKET` does not fill the log with every watchdog ping).
fn send(states: &[NotifyState]) {
    use std::sync::atomic::{AtomicBool, Ordering};
    static WARNED: AtomicBool = AtomicBool::new(false);
    if let Err(e) = sd_notify::notify(states) {
        let socket = std::env::var("NOTIFY_SOCKET").unwrap_or_default();
        if WARNED.swap(true, Ordering::Relaxed) {
            tracing::debug!("service manager: cannot notify NOTIFY_SOCKET={socket:?}: {e}");
        } else {
            tracing::warn!("service manager: cannot notify NOTIFY_SOCKET={socket:?}: {e}");
        }
    }
}

/// How often to ping the watchdog, if the service manager runs one for this process: a
/// quarter of `WATCHDOG_USEC`, so that a ping delayed by a busy CPU still arrives in time
/// (sd_watchdog_enabled(3) asks for at least two per interval). A `WATCHDOG_USEC` that is not
/// a number is reported and ignored.
pub fn watchdog_period() -> Option<Duration> {
    let usec = std::env::var("WATCHDOG_USEC").ok()?;
    match sd_notify::watchdog_enabled() {
        Some(d) if !d.is_zero() => Some(d / 4),
        Some(_) => None,
        None => {
            if usec.parse::<u64>().is_err() {
                tracing::warn!(
                    "WATCHDOG_USEC={usec:?} is not a number of microseconds; no watchdog pings"
                );
            }
            // Otherwise WATCHDOG_PID names another process: its watchdog, not ours.
            None
        }
    }
}

/// Pings the watchdog every `period`, forever. Run on the agent's executor, it pings only
/// while that executor's one thread keeps turning: a task that blocks the thread stops the
/// pings, and the service manager restarts the agent.
pub async fn watchdog(period: Duration) {
    loop {
        send(&[NotifyState::Watchdog]);
        async_io::Timer::after(period).await;
    }
}

/// DNS sockets the service manager opened for the agent (`outpost-dns.socket`): they take
/// the place of the agent's own DNS listeners, so that port 53 needs no capability.
#[derive(Debug, Default)]
pub struct DnsSockets {
    pub udp: Vec<std::net::UdpSocket>,
    pub tcp: Vec<std::net::TcpListener>,
}

impl DnsSockets {
    pub fn is_empty(&self) -> bool {
        self.udp.is_empty() && self.tcp.is_empty()
    }

    /// The sockets, ready for the DNS servers, with their addresses.
    #[allow(clippy::type_complexity)]
    pub fn into_async(
        self,
    ) -> std::io::Result<(
        Vec<(SocketAddr, Async<std::net::UdpSocket>)>,
        Vec<(SocketAddr, TcpListener)>,
    )> {
        let udp = self
            .udp
            .into_iter()
            .map(|s| Ok((s.local_addr()?, Async::new(s)?)))
            .collect::<std::io::Result<_>>()?;
        let tcp = self
            .tcp
            .into_iter()
            .map(|s| Ok((s.local_addr()?, TcpListener::try_from(s)?)))
            .collect::<std::io::Result<_>>()?;
        Ok((udp, tcp))
    }
}

/// Takes the sockets passed by the service manager (`LISTEN_PID`, `LISTEN_FDS`,
/// `LISTEN_FDNAMES`). Every passed socket must be for DNS: named `dns` (or unnamed, or named
/// after its socket unit, as systemd names it without `FileDescriptorName=`), a UDP socket or
/// a listening TCP socket on IPv4 or IPv6. Anything else is refused with a message naming it,
/// so a wrong socket unit fails the start instead of leaving DNS silently unserved.
///
/// Call once, first thing at start-up, before anything else can hold descriptors 3 and up.
pub fn take_dns_sockets() -> Result<DnsSockets, String> {
    let fds = sd_notify::listen_fds_with_names()
        .map_err(|e| format!("socket activation: {e} (LISTEN_FDS, LISTEN_FDNAMES)"))?;
    let mut sockets = DnsSockets::default();
    for (raw, name) in fds {
        // SAFETY: descriptors 3 to 3+LISTEN_FDS-1 were opened by the service manager for this
        // process (LISTEN_PID is ours); nothing in the process owns them, and this runs once,
        // before anything else can open descriptors, so each is owned exactly once here.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        classify(fd, raw, &name, &mut sockets)?;
    }
    Ok(sockets)
}

fn classify(fd: OwnedFd, raw: RawFd, name: &str, into: &mut DnsSockets) -> Result<(), String> {
    let what = format!("socket activation: descriptor {raw} (named {name:?})");
    if !is_dns_name(name) {
        return Err(format!(
            "{what}: outpost takes only DNS sockets, named {DNS_FD_NAME:?} \
             (FileDescriptorName=dns)"
        ));
    }
    let kind = getsockopt(&fd, sockopt::SockType).map_err(|e| format!("{what}: {e}"))?;
    match kind {
        SockType::Datagram => {
            let s = std::net::UdpSocket::from(fd);
            s.local_addr().map_err(|e| {
                format!("{what}: not an IPv4 or IPv6 datagram socket ({e}): expected UDP")
            })?;
            into.udp.push(s);
        }
        SockType::Stream => {
            let listening =
                getsockopt(&fd, sockopt::AcceptConn).map_err(|e| format!("{what}: {e}"))?;
            if !listening {
                return Err(format!(
                    "{what}: a stream socket that is not listening (Accept=yes is not supported)"
                ));
            }
            let s = std::net::TcpListener::from(fd);
            s.local_addr().map_err(|e| {
                format!("{what}: not an IPv4 or IPv6 stream socket ({e}): expected TCP")
            })?;
            into.tcp.push(s);
        }
        other => {
            return Err(format!(
                "{what}: a {other:?} socket: expected UDP (ListenDatagram=) or TCP (ListenStream=)"
            ));
        }
    }
    Ok(())
}

/// Whether a descriptor with this name is for DNS: `dns`, systemd's default name (the socket
/// unit's, such as `outpost-dns.socket`), or no name given.
fn is_dns_name(name: &str) -> bool {
    name == DNS_FD_NAME
        || name == "unknown"
        || name.is_empty()
        || (name.ends_with(".socket") && name.contains("dns"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_sockets_are_recognised_by_name() {
        for ok in ["dns", "outpost-dns.socket", "unknown", ""] {
            assert!(is_dns_name(ok), "{ok}");
        }
        for bad in ["http", "outpost.socket", "DNS "] {
            assert!(!is_dns_name(bad), "{bad}");
        }
    }

    #[test]
    fn udp_and_listening_tcp_sockets_are_taken_others_refused() {
        let mut got = DnsSockets::default();
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let udp_addr = udp.local_addr().unwrap();
        classify(OwnedFd::from(udp), 3, "dns", &mut got).unwrap();
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let tcp_addr = tcp.local_addr().unwrap();
        classify(OwnedFd::from(tcp), 4, "dns", &mut got).unwrap();
        assert_eq!(got.udp[0].local_addr().unwrap(), udp_addr);
        assert_eq!(got.tcp[0].local_addr().unwrap(), tcp_addr);

        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let e = classify(OwnedFd::from(udp), 5, "http", &mut got).unwrap_err();
        assert!(e.contains("descriptor 5") && e.contains("\"http\""), "{e}");

        let (a, _b) = std::os::unix::net::UnixDatagram::pair().unwrap();
        let e = classify(OwnedFd::from(a), 6, "dns", &mut got).unwrap_err();
        assert!(e.contains("expected UDP"), "{e}");

        // A connected TCP stream is not a listener.
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let e = classify(OwnedFd::from(c), 7, "dns", &mut got).unwrap_err();
        assert!(e.contains("not listening"), "{e}");

        let (s, _t) = std::os::unix::net::UnixStream::pair().unwrap();
        let e = classify(OwnedFd::from(s), 8, "dns", &mut got).unwrap_err();
        assert!(
            e.contains("not listening") || e.contains("expected TCP"),
            "{e}"
        );
        assert_eq!((got.udp.len(), got.tcp.len()), (1, 1));
    }
}
