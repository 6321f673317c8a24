//! Cluster membership by SWIM gossip over UDP, as Consul's LAN pool: who is in the cluster,
//! alive, failed or left, with Consul's tags; packets sealed with the cluster key.
//!
//! - [`Gossip`] (`engine.rs`) is the sans-IO core: foca behind our envelope ([`wire`]), the
//!   rate and replay guards, the member table and named timers.
//! - [`udp`] is the thin smol shell: one UDP socket, the real clock and OS randomness, and a
//!   [`udp::GossipHandle`] for the agent.
//! - [`sim`] runs many cores over a simulated network on virtual time, from one seed.
//!
//! # Driver contract
//!
//! Like quinn-proto and str0m: feed one input, then drain the outputs.
//!
//! 1. Inputs: [`Gossip::handle_packet`]`(now, from, bytes)` for each datagram,
//!    [`Gossip::handle_timeout`]`(now)` when [`Gossip::poll_timeout`] is due, and the
//!    operations [`Gossip::join`], [`Gossip::leave`], [`Gossip::set_tags`] and the keyring
//!    calls.
//! 2. Outputs, after every input: send each [`Gossip::poll_transmit`], hand on each
//!    [`Gossip::poll_event`], then sleep until [`Gossip::poll_timeout`] or the next datagram.
//!
//! The core reads no clock, owns no socket and draws randomness only from the seed given to
//! [`Gossip::new`]. Both queues are bounded ([`MAX_TRANSMITS`], [`MAX_EVENTS`]);
//! what overflows is dropped and counted.
//!
//! # For the agent
//!
//! Start: [`udp::GossipHandle::bind`] with the bind address, the advertised [`Node`] (name,
//! address, generation = Unix time, [`Tags`]: role, dc, server port, build, bootstrap,
//! expect), the [`GossipConfig::lan`] profile (with `reap_after` from `reconnect_timeout`)
//! and a [`Keyring`] from `-encrypt` if given; spawn the returned driver future on the
//! executor. Then:
//!
//! - `-join` / `-retry-join`: [`udp::GossipHandle::join`] with the addresses (retrying is
//!   the agent's loop; it returns once a member answered or the timeout passed).
//! - `outpost members`, `/v1/agent/members`: [`udp::GossipHandle::members`]; each
//!   [`Member`] has the name, address, [`Tags::to_consul`] and
//!   [`MemberStatus::consul_code`] (1 alive, 3 left, 4 failed; a suspect member is alive
//!   with [`Member::suspect`] set).
//! - The catalog's `serfHealth`: [`udp::GossipHandle::subscribe`] and, per [`MemberEvent`]:
//!   `Joined`/`Alive`/`Updated` register the node (address, tags) with serfHealth passing;
//!   `Suspect` changes nothing (Consul keeps it passing); `Failed` sets serfHealth
//!   critical; `Left` and `Reaped` deregister the node. The event channel is bounded: a
//!   subscriber that falls behind loses events, so on start and after a lag the agent
//!   reconciles from `members()`.
//! - `outpost leave` and shutdown: [`udp::GossipHandle::leave`] (others show this node
//!   left at once), then stop the driver.
//! - `consul keyring` (`-install`, `-use`, `-remove`, `-list`):
//!   [`udp::GossipHandle::install_key`] and friends act on this member only; the agent
//!   applies them on every member, as Consul does through a serf query.
//! - `outpost keygen`: [`keygen_os`].

mod config;
mod engine;
pub mod fuzzing;
mod guard;
mod keyring;
mod members;
mod node;
pub mod sim;
pub mod udp;
pub mod wire;

#[cfg(test)]
mod sim_tests;
#[cfg(test)]
mod tests;

pub use self::config::{ConfigError, GossipConfig, MAX_PACKET_SIZE, MIN_PACKET_SIZE};
pub use self::engine::{
    Counters, Gossip, GossipError, LocalState, MAX_EVENTS, MAX_RATE_SOURCES, MAX_SEEDS,
    MAX_SESSIONS, MAX_TRANSMITS, Transmit, WakeReason,
};
pub use self::guard::{RateLimiter, ReplayGuard};
pub use self::keyring::{KEY_LEN, KeyError, Keyring, MAX_KEYS, keygen, keygen_os, parse_key};
pub use self::members::{EventKind, Member, MemberEvent, MemberStatus};
pub use self::node::{MAX_ENCODED_NODE, MAX_NAME, MAX_TAG, Node, Role, Tags};
