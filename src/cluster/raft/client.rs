//! [`RaftClient`]: how an agent without `-server` writes to the catalog and asks who leads,
//! over RPC on the servers' port (Consul's client agents do the same on 8300).

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use smol::LocalExecutor;

use super::driver::{HandleError, budget, pause};
use super::node::Outcome;
use super::pool::{CallError, Pool};
use super::rpc::{self, WriteResult};
use super::tcp::{Link, TransportStats};
use crate::catalog::Command;

/// How a [`RaftClient`] talks to the servers.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// The cluster's shared secret, as in [`super::ServerConfig::key`] (the same on every
    /// agent). `None`: no authentication.
    pub key: Option<[u8; 32]>,
    /// How long a call waits for an answer, retries included.
    pub request_timeout: Duration,
}

impl Default for ClientConfig {
    /// No key, 5 s.
    fn default() -> ClientConfig {
        ClientConfig {
            key: None,
            request_timeout: Duration::from_secs(5),
        }
    }
}

/// The cluster as a server sees it, for `/v1/status/leader` and `/v1/status/peers` on an
/// agent that is no server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterStatus {
    /// The address of the server that answered.
    pub server: String,
    /// That server's ID.
    pub server_id: u64,
    /// Its current term.
    pub term: u64,
    /// The leader's ID and Raft address, if it knows one (not during an election).
    pub leader: Option<(u64, String)>,
    /// The voters and their Raft addresses.
    pub peers: BTreeMap<u64, String>,
}

/// An agent's way to the Raft servers when it is not one: writes and status questions go
/// to one server at a time over RPC, moving on to the next when it cannot be reached. It
/// takes no part in Raft (no ID, no vote). Cheap to clone; single-threaded (`!Send`).
///
/// Keeps at most one connection per server (at most [`rpc::MAX_IN_FLIGHT`] calls on it at
/// once; more wait), closed when unused for a minute.
#[derive(Clone)]
pub struct RaftClient {
    inner: Rc<Inner>,
}

struct Inner {
    servers: RefCell<Vec<String>>,
    /// Which server is asked first next time.
    next: Cell<usize>,
    pool: Pool,
    timeout: Duration,
}

impl RaftClient {
    /// A client of the servers at `servers` (their Raft addresses, `host:port` or socket
    /// addresses; [`RaftClient::set_servers`] replaces them as gossip learns of servers).
    /// Dials nothing yet; its connections' tasks run on `ex`.
    pub fn new<A: ToString>(
        ex: Rc<LocalExecutor<'static>>,
        servers: impl IntoIterator<Item = A>,
        cfg: ClientConfig,
    ) -> RaftClient {
        RaftClient {
            inner: Rc::new(Inner {
                servers: RefCell::new(servers.into_iter().map(|a| a.to_string()).collect()),
                next: Cell::new(0),
                pool: Pool::new(Link::new(cfg.key.as_ref()), ex),
                timeout: cfg.request_timeout,
            }),
        }
    }

    /// Replaces the servers (connections to servers no longer listed are closed).
    pub fn set_servers<A: ToString>(&self, servers: impl IntoIterator<Item = A>) {
        let servers: Vec<String> = servers.into_iter().map(|a| a.to_string()).collect();
        self.inner.pool.retain(|a| servers.iter().any(|s| s == a));
        *self.inner.servers.borrow_mut() = servers;
    }

    /// The servers it asks.
    pub fn servers(&self) -> Vec<String> {
        self.inner.servers.borrow().clone()
    }

    /// Replaces the keys, as [`super::RaftHandle::set_keys`] does for a server (the first
    /// is proved; connections already set up stay up).
    pub fn set_keys(&self, keys: &[[u8; 32]]) {
        self.inner.pool.link().set_keys(keys);
    }

    /// Counts of handshakes refused and connections closed for bad frames.
    pub fn transport_stats(&self) -> TransportStats {
        self.inner.pool.link().counters.stats()
    }

    /// Writes `command` through a server, which proposes it if it leads and forwards it to
    /// its leader otherwise (see [`super::RaftHandle::write`]; the answer comes once the
    /// write is applied on the server that answers).
    ///
    /// A server that cannot be reached is skipped for the next one ([`RETRY_PAUSE`] after
    /// each round of them all), until the request timeout. [`Outcome::Applied`],
    /// [`Outcome::Refused`] and [`Outcome::Dropped`] are certain; [`Outcome::Unknown`]
    /// (the connection closed after the write went out) and [`HandleError::TimedOut`]
    /// (also when no server could be reached at all) may or may not have applied.
    ///
    /// [`RETRY_PAUSE`]: super::driver::RETRY_PAUSE
    pub async fn write(&self, command: Command) -> Result<Outcome, HandleError> {
        let deadline = Instant::now() + self.inner.timeout;
        let encoded = command.encode();
        let mut failed_in_round = 0;
        loop {
            let Some(addr) = self.current() else {
                pause(deadline).await?;
                continue;
            };
            let budget = budget(deadline);
            let reply = self
                .inner
                .pool
                .call(
                    &addr,
                    |id| rpc::Request::Forward {
                        id,
                        command: encoded.clone(),
                        relay: true,
                        budget_ms: budget,
                    },
                    deadline,
                )
                .await;
            match reply {
                Ok(rpc::Reply::Forward {
                    result: WriteResult::NotLeader { .. },
                    ..
                }) => {
                    // Not proposed: a server of another version that does not relay.
                    self.failed(&mut failed_in_round, deadline).await?;
                }
                Ok(rpc::Reply::Forward { result, .. }) => return result.into_result(),
                Ok(rpc::Reply::Status { .. }) | Err(CallError::Lost) => {
                    self.rotate();
                    return Ok(Outcome::Unknown);
                }
                Err(CallError::TimedOut) => return Err(HandleError::TimedOut),
                Err(CallError::NotSent(why)) => {
                    tracing::debug!("raft client: {why}");
                    self.failed(&mut failed_in_round, deadline).await?;
                }
            }
        }
    }

    /// Asks a server who leads and who the voters are (the next server when one cannot be
    /// reached, until the request timeout: then [`HandleError::TimedOut`]).
    pub async fn status(&self) -> Result<ClusterStatus, HandleError> {
        let deadline = Instant::now() + self.inner.timeout;
        let mut failed_in_round = 0;
        loop {
            let Some(addr) = self.current() else {
                pause(deadline).await?;
                continue;
            };
            let reply = self
                .inner
                .pool
                .call(&addr, |id| rpc::Request::Status { id }, deadline)
                .await;
            match reply {
                Ok(rpc::Reply::Status { status, .. }) => {
                    let peers: BTreeMap<u64, String> = status.peers.into_iter().collect();
                    let leader = status
                        .leader
                        .map(|l| (l, peers.get(&l).cloned().unwrap_or_default()));
                    return Ok(ClusterStatus {
                        server: addr,
                        server_id: status.id,
                        term: status.term,
                        leader,
                        peers,
                    });
                }
                Err(CallError::TimedOut) => return Err(HandleError::TimedOut),
                Ok(rpc::Reply::Forward { .. }) | Err(CallError::Lost | CallError::NotSent(_)) => {
                    self.failed(&mut failed_in_round, deadline).await?;
                }
            }
        }
    }

    fn current(&self) -> Option<String> {
        let servers = self.inner.servers.borrow();
        if servers.is_empty() {
            return None;
        }
        Some(servers[self.inner.next.get() % servers.len()].clone())
    }

    fn rotate(&self) {
        self.inner.next.set(self.inner.next.get().wrapping_add(1));
    }

    /// The current server failed: the next one, after a pause once all were tried.
    async fn failed(&self, in_round: &mut usize, deadline: Instant) -> Result<(), HandleError> {
        self.rotate();
        *in_round += 1;
        if *in_round >= self.inner.servers.borrow().len() {
            *in_round = 0;
            pause(deadline).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
