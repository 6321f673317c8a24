//! outpost: a Consul-style service catalog with a Consul-compatible DNS interface, built
//! for small ARM edge boxes. One process, pure protocol cores, one thin I/O shell.
//!
//! # Where things happen
//!
//! - [`catalog`]: the data model and the deterministic state machine. Every change is a
//!   [`catalog::Command`]; queries are plain functions over [`catalog::Catalog`].
//! - [`config`]: the agent's flags and config dir (service definitions, agent settings),
//!   validated with `file:line:col` errors before anything is applied.
//! - [`dns`]: [`dns::responder`] turns query bytes and the catalog into answer bytes (pure);
//!   [`dns::server`] is the only file that touches the DNS sockets.
//! - [`agent`]: wires it together on the smol executor: sockets, reload on SIGHUP, shutdown.
//! - [`manual`]: the decisions and their reasons.

pub mod agent;
pub mod catalog;
pub mod checks;
pub mod cli;
pub mod config;
pub mod dns;
pub mod http;
pub mod manual;
