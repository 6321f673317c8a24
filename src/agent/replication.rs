//! The agent's side of Raft: a server (`-server` with a data dir) replicates every catalog
//! and KV write through [`crate::cluster::raft`] over TCP on `-server-port`. This module
//! starts the Raft server with the agent's state as its state machine, decides when to
//! bootstrap (`-bootstrap`: at once; `-bootstrap-expect N`: once N servers that expect N
//! have met by gossip and no cluster exists), lets the leader add the servers gossip finds
//! and remove those that left, and re-registers the agent's own config (anti-entropy)
//! whenever this server's catalog lacks it.
//!
//! A client agent with a data dir, gossip and a `-server-port` keeps a replica as a Raft
//! learner once it meets a server: the leader adds it, its writes (its own config, by
//! anti-entropy) go to the leader, its DNS answers from the replica; until then it applies
//! its config locally. A `-dev` agent and an agent without a data dir apply writes locally
//! (a single dev server behaves as a one-server cluster would).

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use async_net::TcpListener;
use smol::LocalExecutor;

use crate::catalog::{ApplyError, Catalog, Command, SnapshotError};
use crate::cluster::gossip::{MemberStatus, Role};
use crate::cluster::raft::{
    ClientConfig, ConfChangeRecord, HandleError, Outcome, RaftClient, RaftConfig, RaftHandle,
    RaftServer, ServerConfig, StateMachine,
};

use super::State;

/// How long a write waits for Raft before the writer hears "no answer".
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the bootstrap, membership and anti-entropy loop looks around.
const LOOK_EVERY: Duration = Duration::from_millis(250);
/// How long a leader waits before it removes a learner gossip does not show at all: a new
/// leader may not have heard of every member yet; later, such a client was reaped.
const REAP_GRACE: Duration = Duration::from_secs(60);

/// A server's Raft ID: stable for a node name (FNV-1a, never 0), so a restarted server is
/// the same member and no ID has to be gossiped or stored.
pub fn server_id(node_name: &str) -> u64 {
    let h = node_name
        .to_ascii_lowercase()
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
    h.max(1)
}

/// Where writes go on a server: proposals to Raft, answered once applied here. Until the
/// Raft server runs (a `-bootstrap-expect` server waiting for its peers), writes are
/// refused: nothing is applied outside the log.
#[derive(Clone)]
pub struct Writer {
    handle: Rc<RefCell<Option<RaftHandle>>>,
    ex: Rc<LocalExecutor<'static>>,
}

/// Why a write has no outcome (the command was valid, the cluster did not answer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unavailable(pub String);

impl Writer {
    pub fn new(ex: Rc<LocalExecutor<'static>>) -> Writer {
        Writer {
            handle: Rc::default(),
            ex,
        }
    }

    /// The Raft handle (status, leader, reads), once Raft runs.
    pub fn handle(&self) -> Option<RaftHandle> {
        self.handle.borrow().clone()
    }

    /// Proposes `command`: `Ok(Ok(index))` applied at `index`, `Ok(Err(_))` refused by the
    /// catalog (on every server alike), `Err(_)` no outcome (no leader, a timeout).
    pub async fn write(&self, command: Command) -> Result<Result<u64, ApplyError>, Unavailable> {
        let Some(handle) = self.handle() else {
            return Err(Unavailable(
                "No cluster leader (waiting for the servers of -bootstrap-expect)".into(),
            ));
        };
        // On a follower, forwarded to the leader; answered once applied here too.
        match handle.write(command).await {
            Ok(Outcome::Applied { index }) => Ok(Ok(index)),
            Ok(Outcome::Refused { error, .. }) => Ok(Err(error)),
            // `write` forwards; it says NotLeader only when no leader was found in time.
            Ok(Outcome::NotLeader { .. }) => Err(Unavailable("No cluster leader".into())),
            Ok(Outcome::Dropped { reason }) => Err(Unavailable(format!(
                "the write was dropped ({reason}); retry"
            ))),
            Ok(Outcome::Unknown) => Err(Unavailable(
                "the write may or may not have been applied (leadership changed)".into(),
            )),
            Err(HandleError::TimedOut) => Err(Unavailable(
                "no answer from the cluster in time (the write may or may not be applied)".into(),
            )),
            Err(e) => Err(Unavailable(e.to_string())),
        }
    }

    /// Proposes `command` in the background; a refusal or no outcome is logged.
    pub fn submit(&self, command: Command, what: &'static str) {
        let w = self.clone();
        self.ex
            .spawn(async move {
                match w.write(command).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => tracing::warn!("{what} refused: {e}"),
                    Err(Unavailable(e)) => tracing::warn!("{what} not written: {e}"),
                }
            })
            .detach();
    }
}

impl StateMachine for State {
    fn apply(&mut self, index: u64, command: &Command) -> Result<(), ApplyError> {
        self.apply_at(index, command)
    }

    fn snapshot(&self, size_hint: usize) -> Vec<u8> {
        self.catalog.snapshot_with_capacity(size_hint)
    }

    fn restore(&mut self, state: &[u8]) -> Result<(), SnapshotError> {
        self.catalog = if state.is_empty() {
            Catalog::new()
        } else {
            Catalog::restore(state)?
        };
        self.http_cache.clear();
        self.watch.notify_all();
        self.sync_checks();
        Ok(())
    }
}

/// Whether this agent replicates through Raft: a server with a data dir, not in dev mode.
pub fn replicates(c: &crate::config::AgentConfig) -> bool {
    c.server && !c.dev && c.data_dir.is_some() && c.ports.server.is_some()
}

/// Whether this agent keeps a replica as a Raft learner: a client (no `-server`) with a
/// data dir, gossip and a `-server-port` to receive the log on. Until it meets a server by
/// gossip it applies its config locally, standing alone; from then on its catalog is the
/// cluster's, its writes go to the leader and its DNS answers from the replica.
pub fn learns(c: &crate::config::AgentConfig) -> bool {
    !c.server
        && !c.dev
        && c.data_dir.is_some()
        && c.ports.server.is_some()
        && c.ports.serf_lan.is_some()
}

/// Binds `-server-port`, then runs the Raft server on `state` for as long as the agent
/// runs: at once with `-bootstrap` or a data dir that holds a cluster already; with
/// `-bootstrap-expect N` once N servers expecting N have met by gossip (the same sorted
/// voter list on each); otherwise (a new server for a running cluster) at once, waiting to
/// be added by the leader. Also runs the membership and anti-entropy loop.
/// Opens the Raft data dir once at start, so that damage (a log corrupted in the middle, an
/// unreadable snapshot) stops the agent with the reason instead of serving a wrong catalog;
/// a torn tail from a crash is cut (with a warning). True when the dir holds no cluster yet.
pub fn check_data_dir(c: &crate::config::AgentConfig) -> Result<bool, String> {
    let Some(dir) = c.data_dir.as_ref().map(|d| d.join("raft")) else {
        return Ok(true);
    };
    let fresh = !dir.join("raft.log").exists() && !dir.join("raft.snap").exists();
    crate::cluster::raft::DiskLog::open(&dir).map_err(|e| {
        format!(
            "the Raft data in {} cannot be used: {e} (move it away to start this server afresh; it will catch up from the others)",
            dir.display()
        )
    })?;
    Ok(fresh)
}

pub async fn run(
    state: Rc<RefCell<State>>,
    ex: Rc<LocalExecutor<'static>>,
    listener: TcpListener,
    writer: Writer,
    fresh: bool,
) {
    let (c, name) = {
        let s = state.borrow();
        (s.config.clone(), s.config.node_name.clone())
    };
    let Some(dir) = c.data_dir.clone().map(|d| d.join("raft")) else {
        return;
    };
    let local = match listener.local_addr() {
        Ok(a) => a,
        Err(e) => {
            tracing::error!("raft listener: {e}");
            return;
        }
    };
    let advertised = SocketAddr::new(c.advertise_addr, local.port()).to_string();
    let id = server_id(&name);
    if !c.server && fresh {
        // A client stands alone until a server shows up (one that has been a learner
        // before goes on from its data dir at once).
        wait_for_a_server(&state).await;
    }
    let bootstrap = match (c.bootstrap, c.bootstrap_expect) {
        _ if !fresh || !c.server => None,
        (true, _) => Some(vec![(id, advertised.clone())]),
        (false, Some(n)) => {
            tracing::info!("bootstrap-expect {n}: waiting for {n} servers to meet by gossip");
            wait_for_servers(&state, &ex, n, id).await
        }
        (false, None) => None,
    };
    let mut seed = [0u8; 8];
    if let Err(e) = super::os_random(&mut seed) {
        tracing::error!("raft: no random seed: {e}");
        return;
    }
    // The gossip key also guards the server port: only members talk Raft.
    let key = raft_keys(&state.borrow()).first().copied();
    let server = RaftServer::start(
        ex.clone(),
        ServerConfig {
            bootstrap,
            request_timeout: WRITE_TIMEOUT,
            key,
            ..ServerConfig::new(RaftConfig::new(id, u64::from_le_bytes(seed)), dir.clone())
        },
        listener,
        state.clone(),
    );
    let server = match server {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(
                "raft cannot start on {}: {e}; writes are refused",
                dir.display()
            );
            return;
        }
    };
    if c.server {
        tracing::info!(
            "raft on {local} (server id {id:016x}), data in {}",
            dir.display()
        );
    } else {
        tracing::info!(
            "raft replica on {local} (learner id {id:016x}; the leader adds it), data in {}",
            dir.display()
        );
    }
    let handle = server.handle();
    let keys = raft_keys(&state.borrow());
    handle.set_keys(&keys);
    *writer.handle.borrow_mut() = Some(handle.clone());
    if !c.server {
        // From here writes go to the leader and the catalog is the cluster's.
        state.borrow_mut().raft = Some(writer);
    }
    look_around(state, handle, id).await;
    drop(server);
}

/// Waits until `n` live servers expecting `n` are known by gossip; the voters are the
/// first `n` by ID (a server not among them waits for the others' cluster). If
/// one of them already belongs to a cluster (one of us formed it, or this is a new server
/// beside a running cluster, which sees more than `n` servers), this server starts with
/// that cluster's voters once they include it (its leader adds every live server gossip
/// shows). Never two clusters.
async fn wait_for_servers(
    state: &Rc<RefCell<State>>,
    ex: &Rc<LocalExecutor<'static>>,
    n: u32,
    id: u64,
) -> Option<Vec<(u64, String)>> {
    let (mut told, mut joining) = (false, false);
    loop {
        let mut ready: Vec<(u64, String)> = raft_members(&state.borrow(), Role::Server)
            .into_iter()
            .filter(|m| m.alive() && u32::from(m.expect) == n)
            .map(|m| (m.id, m.addr))
            .collect();
        if ready.len() >= n as usize {
            let key = raft_keys(&state.borrow()).first().copied();
            for (other, addr) in ready.iter().filter(|(i, _)| *i != id) {
                match cluster_of(ex, addr, key).await {
                    // One of us formed it already: the same voters, this server among them.
                    Some(peers) if peers.contains_key(&id) => {
                        return Some(peers.into_iter().collect());
                    }
                    // A running cluster without this server: its leader adds every live
                    // server gossip shows; wait for that, then start with its voters.
                    Some(_) => {
                        if !told {
                            tracing::info!(
                                "bootstrap-expect {n}: server {other:016x} at {addr} is in a cluster already; waiting to be added to it"
                            );
                            told = true;
                        }
                        joining = true;
                        break;
                    }
                    None => {}
                }
            }
            if joining {
                joining = false;
                async_io::Timer::after(LOOK_EVERY).await;
                continue;
            }
            ready.sort();
            ready.truncate(n as usize);
            if ready.iter().any(|(i, _)| *i == id) {
                tracing::info!("bootstrap-expect {n}: forming the cluster with {ready:?}");
                return Some(ready);
            }
            // Not among the first n: the others form it, and its leader adds this one.
        }
        async_io::Timer::after(LOOK_EVERY).await;
    }
}

/// Waits until gossip shows a live server of this datacenter.
async fn wait_for_a_server(state: &Rc<RefCell<State>>) {
    let mut told = false;
    loop {
        if raft_members(&state.borrow(), Role::Server)
            .iter()
            .any(RaftMember::alive)
        {
            return;
        }
        if !told {
            tracing::info!(
                "no server known yet: this agent's catalog stands alone until one joins"
            );
            told = true;
        }
        async_io::Timer::after(LOOK_EVERY).await;
    }
}

/// The voters of the cluster the server at `addr` belongs to, if it belongs to one. A
/// server still waiting for its peers does not answer on its Raft port yet: none.
async fn cluster_of(
    ex: &Rc<LocalExecutor<'static>>,
    addr: &str,
    key: Option<[u8; 32]>,
) -> Option<std::collections::BTreeMap<u64, String>> {
    let client = RaftClient::new(
        ex.clone(),
        [addr],
        ClientConfig {
            key,
            request_timeout: Duration::from_millis(500),
        },
    );
    client
        .status()
        .await
        .ok()
        .map(|s| s.peers)
        .filter(|p| !p.is_empty())
}

/// The keys that guard the server port: the gossip keyring's, primary first (none without
/// gossip encryption).
pub fn raft_keys(state: &State) -> Vec<[u8; 32]> {
    let keys = state
        .gossip
        .as_ref()
        .and_then(|g| g.list_keys().ok())
        .unwrap_or_default();
    keys.iter()
        .filter_map(|k| crate::cluster::gossip::parse_key(k).ok())
        .collect()
}

/// A member of this datacenter that gossip shows running Raft with the given role: its
/// Raft ID and address, its gossip status, the `-bootstrap-expect` it announced.
struct RaftMember {
    id: u64,
    addr: String,
    status: MemberStatus,
    expect: u16,
}

impl RaftMember {
    fn alive(&self) -> bool {
        self.status == MemberStatus::Alive
    }
}

/// The members of `role` gossip knows in this datacenter that announce a Raft port (servers
/// always; clients when they keep a replica).
fn raft_members(state: &State, role: Role) -> Vec<RaftMember> {
    let Some(g) = &state.gossip else {
        return Vec::new();
    };
    g.members()
        .into_iter()
        .filter(|m| {
            m.tags().role == role && m.tags().port != 0 && m.tags().dc == state.config.datacenter
        })
        .map(|m| RaftMember {
            id: server_id(m.name()),
            addr: SocketAddr::new(m.addr().ip(), m.tags().port).to_string(),
            status: m.status,
            expect: m.tags().expect,
        })
        .collect()
}

/// Bootstraps with `-bootstrap-expect`, adds and removes servers as the leader, and
/// re-registers this agent's config when the catalog lacks it (after a bootstrap, a restore
/// or a leader change).
async fn look_around(state: Rc<RefCell<State>>, handle: RaftHandle, id: u64) {
    // Soon after start (a single server elects itself at once), then every LOOK_EVERY.
    let mut wait = Duration::from_millis(20);
    let mut announced = false;
    let mut led_since = None;
    loop {
        async_io::Timer::after(wait).await;
        wait = LOOK_EVERY;
        let status = handle.status();
        // Servers' addresses from gossip, for a member the leader added that has not yet
        // had the snapshot naming them (it must answer the leader before that).
        if status.leader.is_none() || !status.peers.contains_key(&id) {
            handle.set_hints(
                raft_members(&state.borrow(), Role::Server)
                    .into_iter()
                    .filter(|m| m.alive() && m.id != id)
                    .map(|m| (m.id, m.addr))
                    .collect(),
            );
        }
        if !status.is_leader {
            led_since = None;
        } else if led_since.is_none() {
            led_since = Some(std::time::Instant::now());
        }
        if status.is_leader {
            let servers = raft_members(&state.borrow(), Role::Server);
            // One membership change at a time: add a live server raft does not have, or
            // remove a voter that left gossip.
            let missing = servers
                .iter()
                .find(|m| m.alive() && !status.peers.contains_key(&m.id));
            if let Some(m) = missing {
                tracing::info!("adding server {} (id {:016x}) to raft", m.addr, m.id);
                let _ = handle
                    .change_membership(ConfChangeRecord::AddVoter {
                        id: m.id,
                        addr: m.addr.clone(),
                    })
                    .await;
                continue;
            }
            let left = |p: &u64| {
                servers
                    .iter()
                    .any(|m| m.id == *p && m.status == MemberStatus::Left)
            };
            if let Some(i) = status.peers.keys().find(|p| **p != id && left(p)) {
                tracing::info!("removing server id {i:016x} that left");
                let _ = handle
                    .change_membership(ConfChangeRecord::Remove { id: *i })
                    .await;
                continue;
            }
            // Client agents with a replica port follow as learners; one that left or
            // whose failed member was reaped stops being one.
            let clients = raft_members(&state.borrow(), Role::Client);
            let missing = clients.iter().find(|m| {
                m.alive()
                    && !status.peers.contains_key(&m.id)
                    && !status.learners.contains_key(&m.id)
            });
            if let Some(m) = missing {
                tracing::info!(
                    "adding client {} (id {:016x}) to raft as a learner",
                    m.addr,
                    m.id
                );
                let _ = handle
                    .change_membership(ConfChangeRecord::AddLearner {
                        id: m.id,
                        addr: m.addr.clone(),
                    })
                    .await;
                continue;
            }
            let gone = status.learners.keys().find(|l| {
                match clients.iter().find(|m| m.id == **l) {
                    Some(m) => m.status == MemberStatus::Left,
                    // Not in gossip at all: reaped, or not seen yet by a new leader.
                    None => led_since.is_some_and(|t| t.elapsed() > REAP_GRACE),
                }
            });
            if let Some(i) = gone {
                tracing::info!("removing learner id {i:016x}: its client left");
                let _ = handle
                    .change_membership(ConfChangeRecord::Remove { id: *i })
                    .await;
                continue;
            }
        }
        // The leader writes the members into the catalog (nodes with serfHealth).
        if status.is_leader {
            let (cmd, w) = {
                let s = state.borrow();
                let members = s.gossip.as_ref().map(|g| g.members()).unwrap_or_default();
                (
                    super::membership::reconcile_command(
                        &s.config.node_name,
                        &s.config.datacenter,
                        &members,
                        &s.catalog,
                    ),
                    s.raft.clone(),
                )
            };
            if !cmd.changes.is_empty()
                && let Some(w) = w
            {
                match w.write(cmd).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => tracing::warn!("members into the catalog refused: {e}"),
                    Err(Unavailable(e)) => tracing::warn!("members into the catalog: {e}"),
                }
            }
        }
        // Anti-entropy: once a leader exists, this agent's own config must be in the
        // catalog it replicates.
        if status.leader.is_some() {
            // Cheap while nothing is missing: the command is built only when something is.
            let (mut missing, w) = {
                let s = state.borrow();
                (s.desired.missing_from(&s.catalog), s.raft.clone())
            };
            if missing && let Some(w) = w {
                let cmd = {
                    let s = state.borrow();
                    s.desired.command(&Default::default(), &s.catalog)
                };
                match w.write(cmd).await {
                    Ok(Ok(i)) => {
                        tracing::debug!("this agent's config registered at index {i}");
                        let s = state.borrow();
                        missing = s.desired.missing_from(&s.catalog);
                    }
                    Ok(Err(e)) => tracing::warn!("this agent's config refused: {e}"),
                    Err(Unavailable(e)) => tracing::debug!("config not yet registered: {e}"),
                }
            }
            if !missing && !announced {
                // Once per start: from here the agent answers with its own config.
                let index = state.borrow().catalog.index();
                tracing::info!("this agent's config is in the catalog (index {index})");
                announced = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_ids_are_stable_nonzero_and_case_blind() {
        assert_eq!(server_id("s1"), server_id("S1"));
        assert_ne!(server_id("s1"), server_id("s2"));
        assert_ne!(server_id(""), 0);
    }
}
