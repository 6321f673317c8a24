//! Consul's HTTP API on hyper 1 over smol: the client the checks and the CLI use, and (with
//! the API issue) the server.

pub mod client;
