//! outpost: a Consul-style service catalog with a Consul-compatible DNS interface, built
//! for small ARM edge boxes. One agent process (and, when streams are configured, its media
//! process), pure protocol cores, one thin I/O shell.
//!
//! # Where things happen
//!
//! - [`catalog`]: the data model and the deterministic state machine. Every change is a
//!   [`catalog::Command`]; queries are plain functions over [`catalog::Catalog`].
//! - [`config`]: the agent's flags and config dir (service definitions, agent settings),
//!   validated with `file:line:col` errors before anything is applied.
//! - [`dns`]: [`dns::responder`] turns query bytes and the catalog into answer bytes (pure);
//!   [`dns::server`] is the only file that touches the DNS sockets.
//! - [`http`]: [`http::routes`] answers Consul's API from the agent state (pure but for the
//!   commands writes commit); [`http::server`] is the only file that touches HTTP sockets
//!   and holds blocking queries on [`http::watch`]; [`http::client`] is the client the
//!   checks and the CLI use.
//! - [`checks`]: [`checks::runner`] decides which health check runs when and what a result
//!   means (pure); [`checks::probe`] runs the HTTP, TCP and script probes.
//! - [`tls`]: the one rustls server configuration builder, certificates (PEM files,
//!   self-signed, swapped on reload), and [`tls::HttpsServer`], an HTTPS file server to
//!   spawn in a test (with [`tls::testing`] making the certificates).
//! - `media` (feature `media`): `media::pipeline` runs the GStreamer pipelines that encode
//!   each stream once; `media::rtc` is the WebRTC gateway (str0m, ICE-lite, one UDP socket
//!   for every viewer, sans-IO with a thin smol shell); `media::whep` answers WHEP. All of
//!   it runs in the `outpost-media` process, which `media::process` starts, feeds and
//!   restarts; the agent itself links neither GStreamer nor str0m.
//! - `logging`: stderr logging for both executables, journal-aware.
//! - [`board`]: board profiles (camera, hardware encoders) built in from `board/`, chosen by
//!   `-board` or the device tree.
//! - [`cli`]: the commands that talk to a running agent, printing as Consul's CLI does.
//! - [`agent`]: wires it together on the smol executor: sockets, checks, reload on SIGHUP,
//!   shutdown.
//! - [`manual`]: the decisions and their reasons.

pub mod agent;
pub mod board;
pub mod catalog;
pub mod checks;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod dns;
pub mod http;
pub mod logging;
pub mod manual;
#[cfg(feature = "media")]
pub mod media;
pub mod tls;
