//! The Raft-replicated catalog among the servers: tikv `raft` (`RawNode`) as a sans-IO core,
//! a checksummed log on disk, a TCP transport, and a deterministic simulator.
//!
//! # Layers
//!
//! - [`wire`]: raft's messages, entries and snapshots as our own postcard structs (no
//!   protobuf is ever parsed from a socket or a file).
//! - [`storage`]: `raft.log` + `raft.snap` in the data dir; [`DiskLog::persist`] returns
//!   after fsync. Torn tails are cut with a warning; anything else damaged refuses to open.
//! - [`node`]: [`RaftNode`], the pure core: no socket, no file, no clock, no thread RNG.
//! - [`tcp`] and [`driver`]: the smol shell; [`RaftServer`] runs one server, [`RaftHandle`]
//!   is what the agent calls. The server port also carries RPC ([`rpc`]: forwarded writes
//!   and status questions), and with a key every connection on it is authenticated
//!   ([`auth`]).
//! - [`client`]: [`RaftClient`], the way in for an agent that is not a server.
//! - [`sim`]: many [`RaftNode`]s on a virtual clock with a hostile network, and the checkers.
//!
//! # Driving the core (what [`driver`] does, and [`sim`] does the same way)
//!
//! Feed one input, then run the ready cycle, then drain the outputs:
//!
//! 1. Inputs: [`RaftNode::handle_message`] (bytes from a peer), [`RaftNode::handle_timeout`]
//!    (when [`RaftNode::poll_timeout`] is due), [`RaftNode::propose`],
//!    [`RaftNode::change_membership`], [`RaftNode::read_index`], and the transport's
//!    reports [`RaftNode::peer_unreachable`] and [`RaftNode::snapshot_sent`].
//! 2. Ready cycle, *persist then acknowledge*: while [`RaftNode::ready`] gives a
//!    [`Persist`], send what [`RaftNode::poll_transmit`] holds already (a leader's appends,
//!    which need not wait for its disk), make the `Persist` durable ([`DiskLog::persist`],
//!    which fsyncs) and only then call [`RaftNode::persisted`] with the state machine.
//!    Nothing else may be called in between.
//!    `persisted` applies committed commands to the [`StateMachine`] (and restores it from
//!    a leader's snapshot), and snapshots + compacts after about `snapshot_every` entries
//!    (the compaction is itself the next `Persist`).
//! 3. Outputs: send every [`RaftNode::poll_transmit`] to its peer (drop it if the peer's
//!    queue is full; raft retransmits), and hand out every [`RaftNode::poll_event`].
//!
//! # Time
//!
//! One tick every 100 ms ([`RaftConfig::new`]): heartbeats every tick, elections after a
//! random 5 to 9 ticks of silence, pre-vote and check-quorum on, the leader's lease a tick
//! shorter than the shortest election timeout. A dead leader is replaced 0.5 to 1.1 s
//! later on a LAN (the simulator's clean-LAN test asserts under 1.5 s over 100 seeds; the
//! loopback test measured about 0.5 s). Election jitter comes from the seeded RNG of
//! [`RaftConfig::seed`], never from raft-rs's thread RNG, so a simulation replays exactly.
//!
//! # For the agent
//!
//! - Start: bind the `-server-port` listener, then [`RaftServer::start`] with a
//!   [`ServerConfig`]: the server's ID (non-zero, stable across restarts: persist it beside
//!   the data dir), the data dir, and `bootstrap`: `Some(voters)` for `-bootstrap` (just
//!   this server) or once `-bootstrap-expect` servers are known (the same list, sorted, on
//!   each of them), `None` for a server that will be added by a leader; and the `key`
//!   (below). [`ServerConfig::new`] fills in the defaults. Bootstrapping an already used
//!   data dir is a no-op. Keep the [`RaftServer`]; dropping it stops raft.
//! - The state machine: wrap the agent's state so that `apply` calls `Catalog::apply` and
//!   then wakes blocking queries and syncs the checks (what `State::commit` does now), and
//!   `snapshot`/`restore` call [`crate::catalog::Catalog::snapshot`] and
//!   [`crate::catalog::Catalog::restore`] (empty bytes: an empty catalog).
//!   `Rc<RefCell<T>>` of a [`StateMachine`] is one.
//! - Writes: [`RaftHandle::write`] on any server. On the leader it proposes; on a follower
//!   it forwards the command to the leader over the server port (an RPC, as Consul does
//!   on 8300), and while no leader is known (an election) it waits and retries, within
//!   the request timeout. [`Outcome::Applied`] comes once the write is committed *and
//!   applied on this server*, so the HTTP reply can carry the new index and a read of
//!   the local catalog right after sees the write (read your writes), wherever the leader
//!   is. [`Outcome::Refused`] is the catalog's deterministic refusal (a failed CAS is
//!   `false` in Consul's KV API, other refusals a 400). [`Outcome::Dropped`] is certainly
//!   not applied and safe to retry; [`Outcome::Unknown`] and [`HandleError::TimedOut`]
//!   may or may not have applied (the answer is 500 and the writer decides). `write` never
//!   reports a write that may have applied as dropped. [`RaftHandle::propose`] is the
//!   local step alone (it answers [`Outcome::NotLeader`] on a follower).
//! - Client agents (no `-server`) keep a read-only replica as *learners*: they run a
//!   [`RaftServer`] with `bootstrap: None`, and the leader adds each with
//!   [`ConfChangeRecord::AddLearner`] (it gets the log, never votes, never counts for a
//!   quorum; [`Status::learners`]). Their writes forward to the leader as a follower's
//!   do, and their DNS answers from the replica. A member the leader adds learns the
//!   others' addresses from the snapshot it is sent; before that it answers the leader
//!   through [`RaftHandle::set_hints`] (the servers gossip shows). Each server snapshots
//!   right after applying an added member, so that the snapshot names it (raft-rs refuses
//!   one that does not). [`RaftClient`] is the lighter way in for a process that keeps no
//!   replica: [`RaftClient::write`] sends the write to one server (the next one when it
//!   cannot be reached), which writes it as above; outcomes mean the same.
//! - The key: pass the gossip encryption key as [`ServerConfig::key`] and
//!   [`ClientConfig::key`] (`None` without `-encrypt`), the same on every agent of the
//!   cluster. Every connection on the server port then proves it (HMAC-SHA256 over fresh
//!   nonces, under a key derived from it) and every frame carries a tag; a peer without
//!   it is disconnected and counted ([`RaftHandle::transport_stats`]). When the gossip
//!   keyring changes, pass its keys, primary first, to [`RaftHandle::set_keys`] /
//!   [`RaftClient::set_keys`]: a dialer proves the primary key, an acceptor takes any, so
//!   install, use, remove works here as it does for gossip. Connections already set up
//!   stay up under their key.
//! - `?consistent` reads: `RaftHandle::read_index().await`, then read the local catalog.
//!   It works on followers too (the leader confirms its leadership with a quorum); a
//!   [`HandleError::Read`] is safe to retry. Default reads just read the local catalog;
//!   `?stale` too.
//! - `/v1/status/leader` and `/v1/status/peers`: [`RaftHandle::status`] /
//!   [`RaftHandle::leader`] (IDs and the Raft addresses learnt from the log) on a server,
//!   [`RaftClient::status`] on a client agent (a server's view: [`ClusterStatus`]).
//! - Membership: after bootstrap, the leader adds a server with
//!   [`RaftHandle::change_membership`]`(`[`ConfChangeRecord::AddVoter`]`)` (the new
//!   server starts with `bootstrap: None` and gets a snapshot); `operator raft
//!   remove-peer` and a graceful leave propose [`ConfChangeRecord::Remove`] on the leader
//!   (a leaving leader first hands over with [`RaftHandle::transfer_leader`]). One change
//!   at a time: a second one while the first applies is [`Outcome::Dropped`]. A removed
//!   server's driver keeps running outside the configuration (it elects no one) until a
//!   leader adds it again; the agent's leader adds every live server gossip shows.
//!
//! # Limits
//!
//! A snapshot travels in one message, so a catalog must encode within
//! [`tcp::MAX_FRAME`] (64 MiB). raft-rs trusts its peers: a member that sends
//! semantically inconsistent messages can make it panic (bytes that do not decode are
//! refused). With a key, only holders of the key get a message to raft-rs; without one,
//! anyone who reaches the server port can, so a cluster without `-encrypt` must keep its
//! server port to a trusted network. Frames are authenticated, not encrypted. RPC
//! connections carry [`rpc::MAX_IN_FLIGHT`] requests at once each, and a server accepts
//! [`tcp::MAX_INBOUND`] connections.

pub mod auth;
mod cache;
pub mod client;
pub mod driver;
mod logger;
pub mod node;
mod pool;
pub mod rpc;
pub mod sim;
pub mod storage;
pub mod tcp;
pub mod wire;

pub use client::{ClientConfig, ClusterStatus, RaftClient};
pub use driver::{HandleError, RaftHandle, RaftServer, ServerConfig, StartError};
pub use node::{
    Event, Outcome, RaftConfig, RaftError, RaftNode, ReadFailure, StateMachine, Status, Transmit,
};
pub use storage::{DiskLog, Persist, Recovered, StorageError};
pub use tcp::TransportStats;
pub use wire::ConfChangeRecord;
