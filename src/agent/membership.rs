//! The agent's side of gossip: starts this node's member of the LAN pool, joins the
//! addresses of `-join` and `-retry-join`, keeps the keyring in the data dir, and turns
//! member events into catalog nodes with a `serfHealth` check (passing while alive,
//! critical once failed, removed when the member leaves or is reaped).
//!
//! The catalog changes are pure functions of the events ([`event_command`],
//! [`reconcile_command`]); the rest is the shell.

use std::cell::RefCell;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use crate::catalog::{Catalog, Change, CheckUpdate, Command, Health};
use crate::catalog::{Check, Deregistration, Node, Registration};
use crate::cluster::gossip::udp::{GossipHandle, generation_now};
use crate::cluster::gossip::{
    self, EventKind, GossipConfig, Keyring, Member, MemberEvent, MemberStatus, Tags,
};
use crate::config::AgentConfig;

use super::State;
use super::sync::SERF_HEALTH;

/// Consul's default gossip port.
pub const DEFAULT_PORT: u16 = 8301;
/// How long a `-join` (or `/v1/agent/join`) waits for a member to answer.
pub const JOIN_TIMEOUT: Duration = Duration::from_secs(10);
/// `-retry-join`'s first and longest wait between attempts.
const RETRY_FIRST: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(30);
/// How long a graceful leave waits for the leave to go out.
pub const LEAVE_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a keyring operation (`/v1/operator/keyring`) waits for every live member to
/// answer; a member that has not is named in the error.
pub const KEYRING_TIMEOUT: Duration = Duration::from_secs(3);

/// What serfHealth says while the member is alive, and once it failed (Consul's words).
const ALIVE_OUTPUT: &str = "Agent alive and reachable";
const FAILED_OUTPUT: &str = "Agent not live or unreachable";

/// This node as a member: its name, gossip address and Consul's tags. `raft_port` is the
/// port its Raft listener is bound to, if it has one (a server's RPC port; a client's
/// replica port, carried in the tags but not shown as Consul's `port`).
pub fn local_node(c: &AgentConfig, port: u16, raft_port: Option<u16>) -> gossip::Node {
    let raft_port = raft_port.or(c.ports.server).unwrap_or(8300);
    let mut tags = if c.server {
        Tags::server(&c.datacenter, raft_port)
    } else {
        Tags {
            port: if super::replication::learns(c) {
                raft_port
            } else {
                0
            },
            ..Tags::client(&c.datacenter)
        }
    };
    tags.bootstrap = c.server && (c.bootstrap || c.dev);
    tags.expect = c
        .bootstrap_expect
        .map_or(0, |n| u16::try_from(n).unwrap_or(u16::MAX));
    gossip::Node::new(
        &c.node_name,
        SocketAddr::new(c.advertise_addr, port),
        generation_now(),
        tags,
    )
}

/// Where the keyring is kept (Consul's `serf/local.keyring` in the data dir); none in dev
/// mode, which keeps nothing on disk.
pub fn keyring_file(c: &AgentConfig) -> Option<PathBuf> {
    let dir = c.data_dir.as_ref().filter(|_| !c.dev)?;
    Some(dir.join("serf").join("local.keyring"))
}

/// The keyring to start with: the kept one if there is one (it holds the keys installed
/// while running; `-encrypt` is then ignored, as in Consul), else `-encrypt`'s key, else
/// none (no encryption).
pub fn initial_keyring(c: &AgentConfig) -> Result<Option<Keyring>, String> {
    use base64::Engine;
    if let Some(path) = keyring_file(c)
        && path.exists()
    {
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read the keyring {}: {e}", path.display()))?;
        let keys: Vec<String> = serde_json::from_str(&text).map_err(|e| {
            format!(
                "the keyring {} is not a JSON list of keys: {e}",
                path.display()
            )
        })?;
        let Some((primary, rest)) = keys.split_first() else {
            return Err(format!("the keyring {} is empty", path.display()));
        };
        let mut ring =
            Keyring::new(primary).map_err(|e| format!("keyring {}: {e}", path.display()))?;
        for k in rest {
            ring.install(k)
                .map_err(|e| format!("keyring {}: {e}", path.display()))?;
        }
        if c.encrypt.is_some() {
            tracing::warn!(
                "-encrypt is ignored: the keyring kept in {} is used (manage it with `outpost keyring`)",
                path.display()
            );
        }
        return Ok(Some(ring));
    }
    let Some(key) = &c.encrypt else {
        return Ok(None);
    };
    let encoded = base64::engine::general_purpose::STANDARD.encode(key);
    let ring = Keyring::new(&encoded).map_err(|e| format!("-encrypt: {e}"))?;
    if let Some(path) = keyring_file(c) {
        save_keyring(&path, &ring.list())?;
    }
    Ok(Some(ring))
}

/// Writes the keyring (primary first) where the next start reads it: to a new file renamed
/// over the old, mode 0600.
pub fn save_keyring(path: &std::path::Path, keys: &[String]) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let fail = |e: std::io::Error| format!("cannot keep the keyring in {}: {e}", path.display());
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(fail)?;
    }
    let tmp = path.with_extension("keyring.new");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(fail)?;
    let text = serde_json::to_string(keys).unwrap_or_default();
    f.write_all(text.as_bytes()).map_err(fail)?;
    f.sync_all().map_err(fail)?;
    std::fs::rename(&tmp, path).map_err(fail)
}

/// Resolves `host`, `host:port`, `ip`, `ip:port` or `[ipv6]:port` (port 8301 when absent).
pub async fn resolve(addr: &str) -> Result<Vec<SocketAddr>, String> {
    let addr = addr.trim().to_string();
    if let Ok(a) = addr.parse::<SocketAddr>() {
        return Ok(vec![a]);
    }
    if let Ok(ip) = addr.parse::<std::net::IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, DEFAULT_PORT)]);
    }
    let with_port = if addr
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        addr.clone()
    } else {
        format!("{addr}:{DEFAULT_PORT}")
    };
    smol::unblock(move || {
        with_port
            .to_socket_addrs()
            .map(|a| a.collect::<Vec<_>>())
            .map_err(|e| format!("cannot resolve {addr}: {e}"))
    })
    .await
}

/// Joins through any of `addrs` (resolved first); the error says why none answered. The
/// number of addresses tried: 0 when they name only this agent (the others join it).
pub async fn join(handle: &GossipHandle, addrs: &[String]) -> Result<usize, String> {
    let mut resolved = Vec::new();
    let mut errors = Vec::new();
    for a in addrs {
        match resolve(a).await {
            Ok(v) => resolved.extend(v),
            Err(e) => errors.push(e),
        }
    }
    if resolved.is_empty() {
        return Err(errors.join("; "));
    }
    // Every server's -retry-join may name them all: this agent itself is skipped.
    let me = handle.local_addr();
    resolved.retain(|a| *a != me);
    if resolved.is_empty() {
        return Ok(0);
    }
    handle
        .join(&resolved, JOIN_TIMEOUT)
        .await
        .map(|()| resolved.len())
        .map_err(|e| e.to_string())
}

/// `-retry-join`: tries the addresses until one answers, waiting 1 s doubling to 30 s
/// between attempts.
pub async fn retry_join(handle: GossipHandle, addrs: Vec<String>) {
    let mut wait = RETRY_FIRST;
    let mut attempt = 1u32;
    loop {
        match join(&handle, &addrs).await {
            Ok(0) => {
                tracing::info!("-retry-join names only this agent: the others join it");
                return;
            }
            Ok(_) => {
                tracing::info!(
                    "joined the cluster through {} (attempt {attempt})",
                    addrs.join(", ")
                );
                return;
            }
            Err(e) => tracing::warn!("retry-join attempt {attempt} failed: {e}; again in {wait:?}"),
        }
        async_io::Timer::after(wait).await;
        wait = (wait * 2).min(RETRY_MAX);
        attempt += 1;
    }
}

/// The catalog change one member event makes (none for this node, which the config
/// keeps, and none for a suspicion, which Consul does not show).
pub fn event_command(local: &str, dc: &str, e: &MemberEvent) -> Option<Command> {
    if e.member.name() == local {
        return None;
    }
    let change = match e.kind {
        EventKind::Joined | EventKind::Alive | EventKind::Updated => register(dc, &e.member),
        EventKind::Suspect => return None,
        EventKind::Failed => failed(&e.member),
        EventKind::Left | EventKind::Reaped => deregister(&e.member),
    };
    Some(Command {
        changes: vec![change],
    })
}

/// What the catalog lacks for the members known now: every other live member a node with
/// serfHealth passing at its address, every failed one critical, none for those that left.
/// Empty when the catalog agrees, so a leader can run it often.
pub fn reconcile_command(local: &str, dc: &str, members: &[Member], catalog: &Catalog) -> Command {
    let serf = |name: &str| {
        let n = catalog.node(name)?;
        let c = n.checks.values().find(|c| c.check.id == SERF_HEALTH)?;
        Some((n.node.address.clone(), c.check.status))
    };
    let changes = members
        .iter()
        .filter(|m| m.name() != local)
        .filter_map(|m| {
            let ip = m.addr().ip().to_string();
            match (m.status, serf(m.name())) {
                (MemberStatus::Alive, Some((addr, Health::Passing))) if addr == ip => None,
                (MemberStatus::Alive, _) => Some(register(dc, m)),
                (MemberStatus::Failed, Some((_, Health::Critical))) => None,
                (MemberStatus::Failed, Some(_)) => Some(failed(m)),
                (MemberStatus::Failed, None) => {
                    // Never seen alive here: its node, critical from the start.
                    let mut reg = register(dc, m);
                    if let Change::Register(r) = &mut reg {
                        r.checks[0].status = Health::Critical;
                        r.checks[0].output = FAILED_OUTPUT.into();
                    }
                    Some(reg)
                }
                (MemberStatus::Left, _) => catalog.node(m.name()).map(|_| deregister(m)),
            }
        })
        .collect();
    Command { changes }
}

fn register(dc: &str, m: &Member) -> Change {
    let node = Node::new(m.name(), &m.addr().ip().to_string(), dc);
    Change::Register(Registration {
        node,
        service: None,
        checks: vec![Check {
            name: "Serf Health Status".into(),
            output: ALIVE_OUTPUT.into(),
            ..Check::new(SERF_HEALTH, "", Health::Passing)
        }],
    })
}

fn failed(m: &Member) -> Change {
    Change::UpdateCheck(CheckUpdate {
        node: m.name().to_string(),
        check_id: SERF_HEALTH.into(),
        status: Health::Critical,
        output: FAILED_OUTPUT.into(),
    })
}

fn deregister(m: &Member) -> Change {
    Change::Deregister(Deregistration {
        node: m.name().to_string(),
        service_id: None,
        check_id: None,
    })
}

/// Follows the member events into the catalog until gossip stops; reconciles from the
/// member list at start and whenever events were lost. Keeps the keyring in step beside
/// it ([`follow_keyring`]).
pub async fn follow(state: Rc<RefCell<State>>, handle: GossipHandle) {
    futures_lite::future::zip(
        follow_members(state.clone(), handle.clone()),
        follow_keyring(state, handle),
    )
    .await;
}

/// Whenever this member's keyring changes (a keyring operation sent to this agent or to
/// any other member): keeps it in the data dir and hands the keys to the Raft port, which
/// the same keys guard. Until gossip stops.
pub async fn follow_keyring(state: Rc<RefCell<State>>, handle: GossipHandle) {
    let mut version = handle.keyring_version();
    while let Some(v) = handle.keyring_changed(version).await {
        version = v;
        let Ok(keys) = handle.list_keys() else {
            continue;
        };
        tracing::info!("gossip keyring changed: {} keys", keys.len());
        let s = state.borrow();
        if let Some(h) = s.raft.as_ref().and_then(|w| w.handle()) {
            h.set_keys(&super::replication::raft_keys(&s));
        }
        if let Some(path) = keyring_file(&s.config)
            && let Err(e) = save_keyring(&path, &keys)
        {
            tracing::error!("{e}");
        }
    }
}

async fn follow_members(state: Rc<RefCell<State>>, handle: GossipHandle) {
    let events = handle.subscribe();
    let (local, dc) = {
        let s = state.borrow();
        (s.config.node_name.clone(), s.config.datacenter.clone())
    };
    let reconcile = |state: &Rc<RefCell<State>>| {
        let mut s = state.borrow_mut();
        let cmd = reconcile_command(&local, &dc, &handle.members(), &s.catalog);
        if !cmd.changes.is_empty()
            && let Err(e) = s.commit(&cmd)
        {
            tracing::error!("members into the catalog: {e}");
        }
    };
    if state.borrow().raft.is_none() {
        reconcile(&state);
    }
    let mut lagged = handle.lagged_events();
    while let Ok(e) = events.recv().await {
        tracing::info!(member = e.member.name(), addr = %e.member.addr(), "member {:?}", e.kind);
        // On a Raft server the leader reconciles the members into the replicated catalog
        // (see `replication`); nothing to write here.
        if state.borrow().raft.is_some() {
            continue;
        }
        if handle.lagged_events() != lagged {
            lagged = handle.lagged_events();
            reconcile(&state);
        }
        if let Some(cmd) = event_command(&local, &dc, &e)
            && let Err(err) = state.borrow_mut().commit(&cmd)
        {
            tracing::error!("member {} into the catalog: {err}", e.member.name());
        }
    }
}

/// The gossip settings: Consul's LAN profile, failed members reaped after
/// `reconnect_timeout`.
pub fn gossip_config(c: &AgentConfig) -> GossipConfig {
    GossipConfig {
        reap_after: c.reconnect_timeout,
        ..GossipConfig::lan()
    }
}

#[cfg(test)]
mod tests;
