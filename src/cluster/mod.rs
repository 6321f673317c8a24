//! Cluster membership and consensus among the servers.

pub mod raft;
