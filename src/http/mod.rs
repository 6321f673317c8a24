//! Consul's HTTP API on hyper 1 over smol: [`routes`] answers a [`request::Request`] from the
//! agent state (pure but for commits), [`server`] is the only file that touches HTTP sockets,
//! [`watch`] holds blocking queries, and [`client`] is the client the checks and the CLI use.

mod agent_routes;
pub mod cache;
pub mod client;
#[cfg(test)]
mod fuzzing;
pub mod json;
pub mod request;
pub mod routes;
pub mod server;
pub mod ui;
pub mod watch;
