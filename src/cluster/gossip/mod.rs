//! Cluster membership by SWIM gossip over UDP, as Consul's LAN pool: who is in the cluster,
//! alive, failed or left, with Consul's tags; every packet sealed with the cluster key.
//!
//! - [`Gossip`] (`engine.rs`) is the sans-IO core: foca behind our envelope ([`wire`]), the
//!   rate and replay guards (`guard.rs`), the member table (`members.rs`) and named timers.
//!   [`Node`] and [`Tags`] (`node.rs`) are the identity every packet carries; [`Keyring`]
//!   holds the keys; [`GossipConfig`] the timing.
//! - [`udp`] is the thin smol shell, the only code that touches the gossip socket: the real
//!   clock, OS randomness, and a [`udp::GossipHandle`] for the agent.
//! - [`sim`] runs many cores over a simulated network on virtual time, from one seed;
//!   `examples/gossip_sim.rs` uses it to measure detection time and traffic at scale.
//! - [`fuzzing`] holds the fuzz entry points the property tests drive.
//!
//! # Driver contract
//!
//! Like quinn-proto and str0m: feed one input, then drain the outputs.
//!
//! 1. Inputs: [`Gossip::handle_packet`]`(now, from, bytes)` for each datagram,
//!    [`Gossip::handle_timeout`]`(now)` when [`Gossip::poll_timeout`] is due, and the
//!    operations [`Gossip::join`], [`Gossip::leave`], [`Gossip::set_tags`],
//!    [`Gossip::start_keyring_query`] and the keyring calls.
//! 2. Outputs, after every input: send each [`Gossip::poll_transmit`], hand on each
//!    [`Gossip::poll_event`], then sleep until [`Gossip::poll_timeout`] or the next datagram.
//!    A finished keyring query waits in [`Gossip::take_keyring_report`]; a change of keys
//!    shows in [`Gossip::keyring_version`].
//!
//! The core reads no clock, owns no socket and draws randomness only from the seed given to
//! [`Gossip::new`]. Both queues are bounded ([`MAX_TRANSMITS`], [`MAX_EVENTS`]);
//! what overflows is dropped and counted. [`Gossip::last_wake_reason`] names the timer that
//! fired ([`WakeReason`]).
//!
//! # For the agent
//!
//! Start: [`udp::GossipHandle::bind`] with the bind address (`-bind`, port 8301), the
//! advertised [`Node`] (`-node` name, `-advertise` address, generation
//! [`udp::generation_now`], [`Tags`]: [`Tags::server`] or [`Tags::client`] with `-bootstrap`
//! and `-bootstrap-expect` set in `bootstrap` and `expect`), [`GossipConfig::lan`] (its
//! `reap_after` is Consul's `reconnect_timeout`) and a [`Keyring`] from `-encrypt` if given;
//! spawn the returned driver future on the executor. Then:
//!
//! - `-join` / `-retry-join`: [`udp::GossipHandle::join`] with the addresses; it returns
//!   once a member answered or the timeout passed, and the core keeps retrying the addresses
//!   while it is alone (`-retry-join`'s interval and attempts are the agent's loop).
//! - `outpost members`, `/v1/agent/members`: [`udp::GossipHandle::members`], this member
//!   first. Each [`Member`] has the name, address, [`Tags::to_consul`] (Consul's `Tags`
//!   map) and [`MemberStatus::consul_code`] (`Status`: 1 alive, 3 left, 4 failed). A
//!   suspect member is alive with [`Member::suspect`] set, as Consul shows it.
//! - The catalog's `serfHealth`, from [`udp::GossipHandle::subscribe`], per
//!   [`MemberEvent`]: `Joined`, `Alive` and `Updated` register the node (address, tags)
//!   with serfHealth passing; `Suspect` changes nothing (Consul keeps it passing); `Failed`
//!   sets serfHealth critical; `Left` and `Reaped` deregister the node. The channel is
//!   bounded: a subscriber that falls behind loses events
//!   ([`udp::GossipHandle::lagged_events`] counts them), so the agent reconciles from
//!   `members()` on start and after a lag.
//! - `outpost leave` and shutdown: [`udp::GossipHandle::leave`] (the others show this
//!   member left at once), then [`udp::GossipHandle::shutdown`].
//! - `consul keyring -list|-install|-use|-remove` and `/v1/operator/keyring`:
//!   [`udp::GossipHandle::keyring_query`] with a [`KeyringOp`] and a timeout of a few
//!   seconds applies the operation on every live member and this one, as Consul's serf
//!   query. Its [`KeyringReport`] gives Consul's answer: [`KeyringReport::keys`] and
//!   [`KeyringReport::primary_keys`] (key → members holding it), [`KeyringReport::num_nodes`]
//!   and [`KeyringReport::messages`] (member → error, or "did not answer"); a change
//!   succeeded when [`KeyringReport::ok`]. Members known failed are not asked
//!   ([`KeyringReport::failed`]): they need the new key before they come back. The
//!   operator still installs before `use` and uses before `remove`.
//! - Whenever this member's keys change, by a query from any member or a local call:
//!   [`udp::GossipHandle::keyring_changed`] returns (with the new
//!   [`udp::GossipHandle::keyring_version`]); the agent then saves the keyring
//!   ([`udp::GossipHandle::list_keys`], primary first) and rekeys the Raft port.
//!   [`udp::GossipHandle::install_key`], `use_key` and `remove_key` act on this member
//!   alone.
//! - `outpost keygen`: [`keygen_os`].
//! - Metrics: [`udp::GossipHandle::counters`] ([`Counters`]: every datagram received is
//!   accepted or dropped for one named reason).
//!
//! # How it works
//!
//! foca runs SWIM with suspicion (probe, indirect probes, suspect, down), piggybacked and
//! periodic gossip, and rejoin by identity renewal: an identity declared down cannot come
//! back, so a member that finds itself declared failed takes the next generation of its
//! identity ([`Node::generation`]), which wins over the old one. A leave is a down
//! declaration of an identity flagged `leaving`, so others show it as left, not failed.
//!
//! Around foca the core adds what Consul's memberlist and serf do and foca does not, each
//! found missing by the simulator: every member times suspicions it hears of (not only the
//! one whose probe failed), the suspect is told directly (Lifeguard's buddy system) and
//! answers whoever suspected it at once; a member learned from a third party gets a hello,
//! so the two know each other without waiting a probe round; failed members are retried
//! with probability failed/alive (serf's reconnect), which heals partitions; joins retry
//! until a member list arrives; packets to an older generation of a member are readdressed
//! (members that rejoin together, as after a partition, would fail each other's probes);
//! a member left alone forgets the changes it could not send, which would otherwise
//! declare live members failed when it comes back; a leave is told to every live member.
//!
//! The envelope ([`wire`]) is ours: ChaCha20-Poly1305 with a random nonce per packet (fast
//! in software on boards without AES instructions, such as the Raspberry Pi 4; from
//! aws-lc-rs, the crypto the binary already links), the version byte as associated data,
//! and inside it the sender's session and packet number for a 128-packet replay window.
//! Every bound is a constant here: [`MAX_RATE_SOURCES`], [`MAX_SESSIONS`],
//! [`MAX_SEEDS`], [`MAX_LEAVE_NOTICES`], [`MAX_KEYS`], the packet size in [`GossipConfig`],
//! and for keyring queries [`MAX_QUERY_TARGETS`], [`MAX_QUERY_SOURCES`], [`MAX_REPORTS`],
//! [`MAX_ERROR_TEXT`].
//!
//! A keyring query (`query.rs`) is a frame flagged [`wire::FLAG_KEYRING`], sealed like
//! every packet, so only a holder of an installed key can send one or have it acted on;
//! plain or foreign-keyed ones are dropped and counted. The initiator sends it directly to
//! each live member, then applies it itself (so a `use` goes out sealed with the key it
//! replaces), and asks again every `probe_interval` whoever has not answered, until the
//! deadline; one query at a time, ids growing, replies matched by id and name, late and
//! duplicate ones dropped (`dropped_stale`), queries older than one already seen from the
//! same sender ignored. Each member answers with its result and keys, primary first, in
//! as many datagrams as the packet size needs ([`keys_per_part`]: at least 7 at
//! [`MIN_PACKET_SIZE`]). A member that switched its primary still opens packets sealed
//! with the old one (every installed key is tried), so answers keep flowing.
//!
//! Limits: without `-encrypt` anyone who reaches the port can join or speak for others; the
//! rate limit is per source address, which a spoofer can vary; node names must be unique
//! (a second live node claiming a name is ignored and counted, as Consul refuses it).

mod config;
mod engine;
pub mod fuzzing;
mod guard;
mod keyring;
mod members;
mod node;
mod query;
pub mod sim;
pub mod udp;
pub mod wire;

#[cfg(test)]
mod sim_tests;
#[cfg(test)]
mod tests;

pub use self::config::{ConfigError, GossipConfig, MAX_PACKET_SIZE, MIN_PACKET_SIZE};
pub use self::engine::{
    Counters, Gossip, GossipError, LocalState, MAX_EVENTS, MAX_LEAVE_NOTICES, MAX_QUERY_SOURCES,
    MAX_RATE_SOURCES, MAX_REPORTS, MAX_SEEDS, MAX_SESSIONS, MAX_TRANSMITS, Transmit, WakeReason,
};
pub use self::guard::{RateLimiter, ReplayGuard};
pub use self::keyring::{KEY_LEN, KeyError, Keyring, MAX_KEYS, keygen, keygen_os, parse_key};
pub use self::members::{EventKind, Member, MemberEvent, MemberStatus};
pub use self::node::{MAX_ENCODED_NODE, MAX_NAME, MAX_TAG, Node, Role, Tags};
pub use self::query::{
    KeyringMessage, KeyringOp, KeyringReport, MAX_ERROR_TEXT, MAX_QUERY_TARGETS, MemberAnswer,
    keys_per_part,
};
