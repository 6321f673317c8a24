//! The agent: loads the config, applies it to the catalog through the one write path, binds
//! the DNS sockets and runs everything on one thread (smol's local executor). SIGHUP
//! reloads the config; SIGTERM and SIGINT stop the agent; [`notify`] tells systemd.

pub mod membership;
pub mod notify;
pub mod replication;
pub mod sync;

use std::cell::RefCell;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use async_io::Async;
use async_net::TcpListener;
use async_signal::{Signal, Signals};
use futures_lite::{FutureExt, StreamExt};
use smol::LocalExecutor;

use crate::catalog::{ApplyError, Catalog, Change, CheckUpdate, Command, Health, Topic};
use crate::checks::{self, Checks};
use crate::config::{self, AgentConfig, AgentFlags, ConfigError, HostInfo};
use crate::dns::responder::Responder;
use crate::dns::server::{self, DnsShared};
use crate::http::cache::ReadCache;
use crate::http::server::{self as http_server, Scheme};
use crate::http::watch::WatchHub;

/// Why the agent could not start or had to stop.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("{0}")]
    Config(#[from] ConfigError),
    #[error("the config was refused by the catalog: {0}")]
    Apply(#[from] ApplyError),
    #[error("cannot listen for {what} on {addr}: {source}")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot watch signals: {0}")]
    Signals(std::io::Error),
    #[error("data dir {path}: {source}")]
    DataDir {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("TLS: {0}")]
    Tls(#[from] crate::tls::TlsError),
    #[error("gossip: {0}")]
    Gossip(String),
    #[error("raft: {0}")]
    Raft(String),
    #[error("{0}")]
    ServiceManager(String),
}

/// Everything the agent's tasks share. Single-threaded: borrowed only between awaits.
pub struct State {
    pub catalog: Catalog,
    pub responder: Responder,
    pub config: AgentConfig,
    /// Where blocking HTTP queries wait for their data to change.
    pub watch: WatchHub,
    /// HTTP reads already answered for the current catalog.
    pub http_cache: ReadCache,
    /// By stream name, for each stream of the config: what is known without the media
    /// process (when media is unavailable); the process answers for the streams it runs.
    pub stream_status: std::collections::BTreeMap<String, StreamStatus>,
    pub metrics: Metrics,
    /// What the applied config defined, to know what a reload removes.
    desired: sync::Desired,
    /// The flags and host the config was built from, for reloads.
    flags: AgentFlags,
    host: HostInfo,
    /// To the agent's main loop, for what the API asks of the whole agent.
    events: Option<async_channel::Sender<AgentEvent>>,
    /// The runner of this node's health checks (absent where nothing runs them, as in
    /// tests of the routes).
    checks: Option<Rc<Checks>>,
    /// The HTTPS listener's TLS configuration; replaced on reload, read at each accept.
    https: Option<Arc<rustls::ServerConfig>>,
    /// The streams' pipelines and the WebRTC gateway (none in tests of the routes).
    #[cfg(feature = "media")]
    pub media: Option<Rc<crate::media::process::MediaProcess>>,
    /// Notified when a reload changed the streams, for the media task to apply them.
    streams_changed: Rc<event_listener::Event>,
    /// This node's gossip member (none with `-serf-lan-port -1`, or in tests of the routes).
    pub gossip: Option<crate::cluster::gossip::udp::GossipHandle>,
    /// On a server: where writes go (the replicated log). None: writes apply locally.
    pub raft: Option<replication::Writer>,
}

/// What a stream is doing now, as `/v1/streams` and the status page show it. The media
/// process tells it live; without it (a build without the `media` feature) every stream
/// is `unavailable`.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct StreamStatus {
    /// `idle` (nobody watching, not encoding), `starting`, `playing`, `offline` (see
    /// `reason`) or `unavailable`.
    pub state: &'static str,
    pub reason: String,
    pub viewers: usize,
    /// Measured over the last seconds (0 while not playing).
    pub width: u32,
    pub height: u32,
    pub fps: f64,
    pub bitrate_kbps: f64,
    /// The encoder element (empty for `rtp`, which arrives encoded, and until the media
    /// hub built the stream), whether it is the board's hardware one, and why.
    pub encoder: String,
    pub encoder_hardware: bool,
    pub encoder_reason: String,
}

/// A [`StreamStatus`] as read back (from the media process): any state but the five is
/// `offline`.
#[derive(serde::Deserialize)]
struct StreamStatusRead {
    state: String,
    reason: String,
    viewers: usize,
    width: u32,
    height: u32,
    fps: f64,
    bitrate_kbps: f64,
    encoder: String,
    encoder_hardware: bool,
    encoder_reason: String,
}

impl<'de> serde::Deserialize<'de> for StreamStatus {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<StreamStatus, D::Error> {
        <StreamStatusRead as serde::Deserialize>::deserialize(d).map(StreamStatus::from)
    }
}

impl From<StreamStatusRead> for StreamStatus {
    fn from(r: StreamStatusRead) -> StreamStatus {
        let state = ["idle", "starting", "playing", "offline", "unavailable"]
            .into_iter()
            .find(|known| *known == r.state)
            .unwrap_or("offline");
        StreamStatus {
            state,
            reason: r.reason,
            viewers: r.viewers,
            width: r.width,
            height: r.height,
            fps: r.fps,
            bitrate_kbps: r.bitrate_kbps,
            encoder: r.encoder,
            encoder_hardware: r.encoder_hardware,
            encoder_reason: r.encoder_reason,
        }
    }
}

impl StreamStatus {
    pub fn initial() -> StreamStatus {
        let media = cfg!(feature = "media");
        StreamStatus {
            state: if media { "idle" } else { "unavailable" },
            reason: if media {
                String::new()
            } else {
                "this outpost was built without the media feature".into()
            },
            viewers: 0,
            width: 0,
            height: 0,
            fps: 0.0,
            bitrate_kbps: 0.0,
            encoder: String::new(),
            encoder_hardware: false,
            encoder_reason: String::new(),
        }
    }
}

/// Counters the metrics endpoint and the status page show.
#[derive(Clone, Copy, Debug, Default)]
pub struct Metrics {
    pub dns_queries: u64,
    pub http_requests: u64,
    /// Blocking queries waiting outside hyper now.
    pub http_parked: u64,
}

/// What the API asks of the agent as a whole.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AgentEvent {
    /// `/v1/agent/leave`: leave gracefully and stop.
    Leave,
}

impl State {
    /// The one write path: every catalog change goes through here (and, with Raft, through
    /// the replicated log first). Wakes the blocking queries whose data changed. Returns the
    /// index the command was applied at.
    pub fn commit(&mut self, command: &Command) -> Result<u64, ApplyError> {
        let index = self.catalog.index() + 1;
        self.apply_at(index, command)?;
        Ok(index)
    }

    /// Applies `command` at log `index` (the next index on an agent that applies locally,
    /// the Raft entry's index on a server), waking blocking queries and the check runner.
    fn apply_at(&mut self, index: u64, command: &Command) -> Result<(), ApplyError> {
        let topics = self.catalog.apply(index, command)?;
        self.watch.notify(&topics);
        let local = Topic::Node(self.config.node_name.to_ascii_lowercase());
        if topics.contains(&local) {
            self.sync_checks();
        }
        Ok(())
    }

    /// A write nobody waits for (the config's services, a check's result, a member's
    /// health): applied now on an agent that applies locally, proposed to Raft on a server
    /// (a refusal or a lost leader is logged; anti-entropy retries what matters).
    pub fn submit(&mut self, command: Command, what: &'static str) {
        match &self.raft {
            None => {
                if let Err(e) = self.commit(&command) {
                    tracing::warn!("{what} not applied: {e}");
                }
            }
            Some(w) => w.submit(command, what),
        }
    }

    /// Gives the check runner this node's checks as the catalog now has them.
    fn sync_checks(&self) {
        if let (Some(checks), Some(node)) = (&self.checks, self.local_node()) {
            checks.input(|r| r.set_checks(Instant::now(), node.checks.values().map(|c| &c.check)));
        }
    }

    /// What the check runner reports: a status for the catalog, or a service to remove.
    fn on_check_event(&mut self, e: checks::Event) {
        let node = self.config.node_name.clone();
        let cmd = match e {
            checks::Event::StatusChanged {
                check_id,
                status,
                output,
            } => Command::one(Change::UpdateCheck(CheckUpdate {
                node,
                check_id,
                status,
                output,
            })),
            checks::Event::DeregisterService { service_id } => {
                tracing::warn!(
                    "service {service_id}: a check was critical longer than its deregister_critical_service_after; deregistering the service"
                );
                Command::one(Change::Deregister(crate::catalog::Deregistration {
                    node,
                    service_id: Some(service_id),
                    check_id: None,
                }))
            }
        };
        self.submit(cmd, "check result");
    }

    /// This agent's own node in the catalog.
    pub fn local_node(&self) -> Option<&crate::catalog::NodeEntry> {
        self.catalog.node(&self.config.node_name)
    }

    /// The Raft leader's address and the servers' (Consul's `/v1/status/leader` and
    /// `peers`): from Raft on a replicating server; a server that applies locally (dev) is
    /// its own leader; a client knows none yet.
    pub fn leader_and_peers(&self) -> (Option<String>, Vec<String>) {
        if let Some(w) = &self.raft {
            let Some(h) = w.handle() else {
                return (None, Vec::new());
            };
            let status = h.status();
            let leader = h.leader().map(|(_, addr)| addr).filter(|a| !a.is_empty());
            return (leader, status.peers.into_values().collect());
        }
        let Some(port) = self.config.ports.server.filter(|_| self.config.server) else {
            return (None, Vec::new());
        };
        let me = SocketAddr::new(self.config.advertise_addr, port).to_string();
        (Some(me.clone()), vec![me])
    }

    /// Sets a TTL check's status, as its pass/warn/fail/update endpoints do: in the catalog
    /// at once (so the reply to the update reflects it), and in the runner, which restarts
    /// the TTL.
    pub fn ttl_update(&mut self, check_id: &str, status: Health, output: String) {
        if let Some(checks) = &self.checks {
            let _ = checks.input(|r| r.ttl_update(Instant::now(), check_id, status, &output));
        }
        let update = Command::one(Change::UpdateCheck(CheckUpdate {
            node: self.config.node_name.clone(),
            check_id: check_id.to_string(),
            status,
            output,
        }));
        // An update of an existing check is never refused.
        self.submit(update, "TTL check update");
    }

    /// Re-reads the config with the agent's flags and applies it, all or nothing.
    pub fn reload(&mut self) -> Result<(), AgentError> {
        let (flags, host) = (self.flags.clone(), self.host.clone());
        self.http_cache.clear();
        reload(self, &flags, &host)
    }

    /// The TLS configuration new HTTPS connections get.
    pub fn https_config(&self) -> Option<Arc<rustls::ServerConfig>> {
        self.https.clone()
    }

    pub fn send_event(&self, e: AgentEvent) {
        if let Some(tx) = &self.events {
            let _ = tx.try_send(e);
        }
    }
}

/// What the machine says about itself: host name, interface addresses, device tree.
pub fn host_info() -> HostInfo {
    let hostname = gethostname::gethostname().to_string_lossy().into_owned();
    // Only the first label: a DNS label is what a node name must be.
    let hostname = hostname.split('.').next().unwrap_or_default().to_string();
    let addresses = if_addrs::get_if_addrs()
        .map(|v| v.into_iter().map(|i| i.ip()).collect())
        .unwrap_or_default();
    HostInfo {
        hostname,
        addresses,
        device_tree: crate::board::devicetree::read(std::path::Path::new(
            crate::board::devicetree::DEFAULT_ROOT,
        )),
    }
}

/// Builds the initial state from a validated config: the catalog holds the config's nodes
/// and services.
pub fn initial_state(config: AgentConfig, seed: u64) -> Result<State, ApplyError> {
    let desired = sync::Desired::from_config(&config);
    let stream_status = config
        .streams
        .iter()
        .map(|s| (s.name.clone(), StreamStatus::initial()))
        .collect();
    let mut state = State {
        catalog: Catalog::new(),
        responder: Responder::new(config.dns_settings(), seed),
        config,
        watch: WatchHub::default(),
        http_cache: ReadCache::default(),
        stream_status,
        metrics: Metrics::default(),
        desired: sync::Desired::default(),
        flags: AgentFlags::default(),
        host: HostInfo::default(),
        events: None,
        checks: None,
        https: None,
        #[cfg(feature = "media")]
        media: None,
        streams_changed: Rc::default(),
        gossip: None,
        raft: None,
    };
    if replication::replicates(&state.config) {
        // A Raft server's catalog is the log's: the config goes in through Raft once a
        // leader exists (anti-entropy in `replication`); refuse a bad config now, though.
        state
            .catalog
            .validate(&desired.command(&state.desired, &state.catalog))?;
    } else {
        let cmd = desired.command(&state.desired, &state.catalog);
        state.commit(&cmd)?;
    }
    state.desired = desired;
    Ok(state)
}

/// Re-reads the config with the same flags and applies it, all or nothing. On any error the
/// running config stays in force and the error is returned for logging.
pub fn reload(state: &mut State, flags: &AgentFlags, host: &HostInfo) -> Result<(), AgentError> {
    let new = config::load(flags, host)?;
    // Everything that can fail is done before anything is applied: new certificates for new
    // connections (open ones keep theirs); a bad file leaves the running ones in force.
    let https = match state.https {
        Some(_) => Some(https_config(&new)?),
        None => None,
    };
    let desired = sync::Desired::from_config(&new);
    let cmd = desired.command(&state.desired, &state.catalog);
    if state.raft.is_some() {
        // Checked here, written through Raft (a refusal there is logged).
        state.catalog.validate(&cmd)?;
        if !cmd.changes.is_empty() {
            state.submit(cmd, "the reloaded config");
        }
    } else {
        state.commit(&cmd)?;
    }
    state.https = https;
    for (what, old, newv) in [
        ("dns port", state.config.ports.dns, new.ports.dns),
        ("http port", state.config.ports.http, new.ports.http),
    ] {
        if old != newv {
            tracing::warn!(
                "{what} changed from {old:?} to {newv:?}: takes effect at the next restart"
            );
        }
    }
    if state.config.dns_addrs != new.dns_addrs {
        tracing::warn!("DNS addresses changed: take effect at the next restart");
    }
    // The media task applies the new streams (pipelines are built off the executor); until
    // then they show as configured, idle.
    if state.config.streams != new.streams || state.config.board != new.board {
        state.streams_changed.notify(usize::MAX);
    }
    if state.config.board != new.board {
        crate::board::log_selection(&new.board);
    }
    state
        .stream_status
        .retain(|name, _| new.streams.iter().any(|s| s.name == *name));
    for s in &new.streams {
        state
            .stream_status
            .entry(s.name.clone())
            .or_insert_with(StreamStatus::initial);
    }
    state.responder.set_settings(new.dns_settings());
    if let Some(checks) = &state.checks {
        checks.input(|r| r.set_enable_script_checks(Instant::now(), new.enable_script_checks));
    }
    state.desired = desired;
    state.config = new;
    Ok(())
}

/// The HTTPS listener's TLS configuration: the configured certificate, or a self-signed one
/// made once and kept in the data dir (made anew at each start in dev mode, which keeps
/// nothing on disk); client certificates required with `verify_incoming`.
pub fn https_config(c: &AgentConfig) -> Result<Arc<rustls::ServerConfig>, AgentError> {
    use crate::tls;
    let identity = match (&c.tls.cert_file, &c.tls.key_file) {
        (Some(cert), Some(key)) => tls::load_identity(cert, key)?,
        _ => {
            let dir = c
                .data_dir
                .as_ref()
                .filter(|_| !c.dev)
                .map(|d| d.join("tls"));
            let names = vec![
                c.node_name.clone(),
                "localhost".into(),
                c.advertise_addr.to_string(),
                "127.0.0.1".into(),
                "::1".into(),
            ];
            match dir {
                None => self_signed_identity(&names)?,
                Some(dir) => {
                    let (cert, key) = (dir.join("agent.crt.pem"), dir.join("agent.key.pem"));
                    if !cert.exists() || !key.exists() {
                        let (cert_pem, key_pem) = tls::self_signed(&names)?;
                        write_private(&dir, &cert, cert_pem.as_bytes())?;
                        write_private(&dir, &key, key_pem.as_bytes())?;
                        tracing::info!("made a self-signed HTTPS certificate: {}", cert.display());
                    }
                    tls::load_identity(&cert, &key)?
                }
            }
        }
    };
    if let Some(cert) = identity.cert.first() {
        tracing::info!(
            "HTTPS certificate SHA-256 fingerprint {}",
            tls::fingerprint_sha256(cert)
        );
    }
    let client_ca = match (&c.tls.ca_file, c.tls.verify_incoming) {
        (Some(ca), true) => Some(tls::load_client_ca(ca)?),
        _ => None,
    };
    Ok(tls::server_config(tls::Identity::new(identity), client_ca)?)
}

fn self_signed_identity(names: &[String]) -> Result<Arc<rustls::sign::CertifiedKey>, AgentError> {
    use rustls_pki_types::pem::PemObject;
    let (cert_pem, key_pem) = crate::tls::self_signed(names)?;
    let cert = rustls_pki_types::CertificateDer::from_pem_slice(cert_pem.as_bytes());
    let key = rustls_pki_types::PrivateKeyDer::from_pem_slice(key_pem.as_bytes());
    match (cert, key) {
        (Ok(cert), Ok(key)) => crate::tls::identity_from_der(vec![cert], key).map_err(|m| {
            AgentError::Tls(crate::tls::TlsError {
                file: None,
                message: m,
            })
        }),
        _ => Err(AgentError::Tls(crate::tls::TlsError {
            file: None,
            message: "the self-signed certificate did not parse".into(),
        })),
    }
}

/// Writes a file only the agent's user can read (the private key lives here).
fn write_private(
    dir: &std::path::Path,
    path: &std::path::Path,
    data: &[u8],
) -> Result<(), AgentError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let err = |source| AgentError::DataDir {
        path: path.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(|source| AgentError::DataDir {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(err)?;
    f.write_all(data).map_err(err)?;
    f.sync_all().map_err(err)
}

/// Creates the data dir if needed and checks that the agent can write there, so that a
/// wrong path or permission is reported at start-up rather than at the first write.
fn prepare_data_dir(path: &std::path::Path) -> Result<(), AgentError> {
    let err = |source| AgentError::DataDir {
        path: path.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(path).map_err(err)?;
    let probe = path.join(".outpost-write-test");
    std::fs::write(&probe, b"").map_err(err)?;
    std::fs::remove_file(&probe).map_err(err)
}

/// Runs the agent until SIGTERM or SIGINT. DNS is served on `dns_sockets` when the service
/// manager passed any (socket activation), else on the config's addresses and port.
pub fn run(
    flags: AgentFlags,
    config: AgentConfig,
    host: HostInfo,
    dns_sockets: notify::DnsSockets,
) -> Result<(), AgentError> {
    crate::board::log_selection(&config.board);
    if let Some(dir) = config.data_dir.as_ref().filter(|_| !config.dev) {
        prepare_data_dir(dir)?;
    }
    let seed = seed_from_os();
    let (events_tx, events_rx) = async_channel::bounded::<AgentEvent>(8);
    let mut initial = initial_state(config, seed)?;
    initial.flags = flags.clone();
    initial.host = host.clone();
    initial.events = Some(events_tx);
    let runner = checks::Runner::new(checks::Settings {
        enable_script_checks: initial.config.enable_script_checks,
        ..checks::Settings::new(seed)
    });
    let check_runner = checks::Checks::new(runner);
    initial.checks = Some(check_runner.clone());
    initial.sync_checks();
    if initial.config.ports.https.is_some() {
        initial.https = Some(https_config(&initial.config)?);
    }
    let state = Rc::new(RefCell::new(initial));
    let ex: Rc<LocalExecutor<'static>> = Rc::new(LocalExecutor::new());
    smol::block_on(ex.run(async {
        let mut signals =
            Signals::new([Signal::Hup, Signal::Term, Signal::Int]).map_err(AgentError::Signals)?;
        let shared: DnsShared = state.clone();
        {
            let state = state.clone();
            ex.spawn(checks::drive(check_runner, move |e| {
                state.borrow_mut().on_check_event(e)
            }))
            .detach();
        }
        let cfg = state.borrow().config.clone();
        // What the service manager's status line says is served where.
        let mut serving: Vec<String> = Vec::new();

        if !dns_sockets.is_empty() {
            let (udp, tcp) = dns_sockets.into_async().map_err(|e| {
                AgentError::ServiceManager(format!("socket activation: DNS socket: {e}"))
            })?;
            for (local, udp) in udp {
                tracing::info!("DNS listening on {local} (UDP, from the service manager)");
                serving.push(format!("DNS {local}/udp"));
                ex.spawn(server::serve_udp(udp, shared.clone(), ex.clone())).detach();
            }
            for (local, tcp) in tcp {
                tracing::info!("DNS listening on {local} (TCP, from the service manager)");
                serving.push(format!("DNS {local}/tcp"));
                ex.spawn(server::serve_tcp(tcp, shared.clone(), ex.clone())).detach();
            }
        } else if let Some(port) = cfg.ports.dns {
            for ip in &cfg.dns_addrs {
                let (udp, tcp) = bind_dns(*ip, port).await?;
                let local = udp.get_ref().local_addr().map_err(|e| AgentError::Bind { what: "DNS", addr: (*ip, port).into(), source: e })?;
                tracing::info!("DNS listening on {local} (UDP and TCP)");
                serving.push(format!("DNS {local}"));
                ex.spawn(server::serve_udp(udp, shared.clone(), ex.clone())).detach();
                ex.spawn(server::serve_tcp(tcp, shared.clone(), ex.clone())).detach();
            }
        }
        for (what, scheme, port, addrs) in [
            ("HTTP", Scheme::Http, cfg.ports.http, &cfg.http_addrs),
            ("HTTPS", Scheme::Https, cfg.ports.https, &cfg.https_addrs),
        ] {
            let Some(port) = port else { continue };
            for ip in addrs {
                let addr = SocketAddr::new(*ip, port);
                let listener = TcpListener::bind(addr)
                    .await
                    .map_err(|source| AgentError::Bind { what, addr, source })?;
                let local = listener.local_addr().unwrap_or(addr);
                tracing::info!("{what} listening on {local}");
                serving.push(format!("{what} {local}"));
                ex.spawn(http_server::serve(listener, scheme, state.clone(), ex.clone()))
                    .detach();
            }
        }
        let mut raft_port = None;
        if replication::replicates(&cfg) || replication::learns(&cfg) {
            let fresh = replication::check_data_dir(&cfg).map_err(AgentError::Raft)?;
            let port = cfg.ports.server.unwrap_or(8300);
            let addr = SocketAddr::new(cfg.bind_addr, port);
            let listener = TcpListener::bind(addr)
                .await
                .map_err(|source| AgentError::Bind {
                    what: "Raft",
                    addr,
                    source,
                })?;
            raft_port = listener.local_addr().ok().map(|a| a.port());
            let writer = replication::Writer::new(ex.clone());
            if cfg.server {
                // A server's catalog is the log's from the start; a client's is its own
                // until it meets a server (see `replication::run`).
                state.borrow_mut().raft = Some(writer.clone());
            }
            ex.spawn(replication::run(
                state.clone(),
                ex.clone(),
                listener,
                writer,
                fresh,
            ))
            .detach();
        }
        if let Some(port) = cfg.ports.serf_lan {
            let (c, bind) = (&cfg, SocketAddr::new(cfg.bind_addr, port));
            let keyring = membership::initial_keyring(c).map_err(AgentError::Gossip)?;
            let (handle, driver) = crate::cluster::gossip::udp::GossipHandle::bind(
                bind,
                membership::local_node(c, port, raft_port),
                membership::gossip_config(c),
                keyring,
            )
            .await
            .map_err(|e| AgentError::Gossip(e.to_string()))?;
            serving.push(format!("gossip {}", handle.local_addr()));
            tracing::info!(
                "gossip (LAN) on {} ({})",
                handle.local_addr(),
                if handle.list_keys().is_ok() {
                    "encrypted"
                } else {
                    "not encrypted"
                }
            );
            ex.spawn(driver).detach();
            ex.spawn(membership::follow(state.clone(), handle.clone()))
                .detach();
            if !c.join.is_empty() {
                let (h, addrs) = (handle.clone(), c.join.clone());
                ex.spawn(async move {
                    match membership::join(&h, &addrs).await {
                        Ok(_) => tracing::info!("joined the cluster through {}", addrs.join(", ")),
                        Err(e) => tracing::error!("-join {}: {e}", addrs.join(", ")),
                    }
                })
                .detach();
            }
            if !c.retry_join.is_empty() {
                ex.spawn(membership::retry_join(handle.clone(), c.retry_join.clone()))
                    .detach();
            }
            state.borrow_mut().gossip = Some(handle);
        }
        // Media starts beside the rest, after the listeners: GStreamer's start-up (its plugin
        // registry) must not delay DNS, and a media failure leaves DNS and HTTP serving.
        #[cfg(feature = "media")]
        ex.spawn(run_media(state.clone(), ex.clone(), cfg.advertise_addr))
            .detach();
        {
            let s = state.borrow();
            tracing::info!(
                "outpost agent running: node {} ({}), datacenter {}, {} services, config from {} file(s)",
                s.config.node_name,
                s.config.advertise_addr,
                s.config.datacenter,
                s.catalog.service_names().count(),
                s.config.files.len()
            );
        }
        // Every listener is bound: the service manager may start what depends on the agent.
        // The watchdog pings come from this executor, so a stuck task stops them.
        if let Some(period) = notify::watchdog_period() {
            ex.spawn(notify::watchdog(period)).detach();
        }
        notify::ready(&format!(
            "serving {}; node {}",
            serving.join(", "),
            cfg.node_name
        ));
        let mut leave = false;
        loop {
            let next = async { signals.next().await.map(Some) }
                .or(async { events_rx.recv().await.ok().map(|_| None) });
            let Some(sig) = next.await else { break };
            let Some(sig) = sig else {
                tracing::info!("leaving on request of the API; shutting down");
                leave = true;
                break;
            };
            match sig {
                Ok(Signal::Hup) => {
                    notify::reloading();
                    let mut s = state.borrow_mut();
                    // READY=1 either way: the agent runs on, with the old config if need be.
                    let status = match s.reload() {
                        Ok(()) => {
                            let m = format!(
                                "config reloaded: catalog index {}, {} services",
                                s.catalog.index(),
                                s.catalog.service_names().count()
                            );
                            tracing::info!("{m}");
                            m
                        }
                        Err(e) => {
                            let m = format!(
                                "config reload failed, the previous config stays in force: {e}"
                            );
                            tracing::error!("{m}");
                            m
                        }
                    };
                    notify::ready(&status);
                }
                Ok(sig) => {
                    // As Consul: an interrupted client leaves, a server or a terminated
                    // agent just stops (the others see it fail, and it rejoins at start).
                    leave = sig == Signal::Int && !state.borrow().config.server;
                    tracing::info!("shutting down");
                    break;
                }
                Err(e) => tracing::warn!("signal error: {e}"),
            }
        }
        notify::stopping();
        let gossip = state.borrow().gossip.clone();
        if let Some(g) = gossip {
            if leave {
                match g.leave(membership::LEAVE_TIMEOUT).await {
                    Ok(()) => tracing::info!("left the cluster"),
                    Err(e) => tracing::warn!("leaving the cluster: {e}"),
                }
            }
            g.shutdown();
        }
        Ok(())
    }))
}

/// Binds UDP and TCP on the same port; port 0 takes the kernel's UDP choice for both.
async fn bind_dns(
    ip: IpAddr,
    port: u16,
) -> Result<(Async<std::net::UdpSocket>, TcpListener), AgentError> {
    let addr = SocketAddr::new(ip, port);
    let bind_err = |source| AgentError::Bind {
        what: "DNS",
        addr,
        source,
    };
    let mut last = None;
    for _ in 0..if port == 0 { 20 } else { 1 } {
        let udp = Async::<std::net::UdpSocket>::bind(addr).map_err(bind_err)?;
        let actual = udp.get_ref().local_addr().map_err(bind_err)?;
        match TcpListener::bind(actual).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) => {
                last = Some(AgentError::Bind {
                    what: "DNS (TCP)",
                    addr: actual,
                    source: e,
                })
            }
        }
    }
    Err(last.unwrap_or_else(|| bind_err(std::io::Error::other("no port"))))
}

/// The media task: starts the media process (every stream's pipeline and the WebRTC
/// gateway, see [`crate::media::process`]) when the config has streams, and gives it the
/// streams of each reloaded config. Without its program, the streams are `unavailable`
/// with the reason; everything else runs.
#[cfg(feature = "media")]
async fn run_media(state: Rc<RefCell<State>>, ex: Rc<LocalExecutor<'static>>, ip: IpAddr) {
    use crate::media::process::{MediaCommand, MediaProcess};
    let mut media: Option<Rc<MediaProcess>> = None;
    type Wanted = (
        Vec<crate::config::StreamSpec>,
        crate::board::Selection,
        Option<std::time::Duration>,
    );
    let mut applied: Option<Wanted> = None;
    let changed = state.borrow().streams_changed.clone();
    loop {
        // Listen before reading the config, so that a reload meanwhile is not missed.
        let listener = changed.listen();
        let wanted = {
            let s = state.borrow();
            let c = &s.config;
            (c.streams.clone(), c.board.clone(), c.media_idle_timeout)
        };
        if applied.as_ref() != Some(&wanted) {
            if media.is_none() && !wanted.0.is_empty() {
                let level = state.borrow().config.log_level.clone();
                match MediaCommand::beside_this_executable(ip, &level) {
                    Ok(cmd) => {
                        let m = MediaProcess::start(cmd, &ex);
                        state.borrow_mut().media = Some(m.clone());
                        media = Some(m);
                    }
                    Err(e) => {
                        tracing::error!(
                            "media: {e}; streams are unavailable, everything else runs"
                        );
                        let mut s = state.borrow_mut();
                        for st in s.stream_status.values_mut() {
                            st.state = "unavailable";
                            st.reason = e.clone();
                        }
                    }
                }
            }
            if let Some(m) = &media {
                m.set_idle_timeout(wanted.2);
                m.apply(&wanted.0, &wanted.1);
            }
            applied = Some(wanted);
            continue;
        }
        listener.await;
    }
}

/// Fills `buf` from the kernel's random source: the one place the process reads OS
/// randomness (the shuffle seed, gossip keys).
pub fn os_random(buf: &mut [u8]) -> std::io::Result<()> {
    use std::io::Read;
    std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(buf))
}

/// A seed for the responder's shuffle.
fn seed_from_os() -> u64 {
    let mut b = [0u8; 8];
    match os_random(&mut b) {
        Ok(()) => u64::from_le_bytes(b),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64),
    }
}

#[cfg(test)]
mod tests;
