//! Cluster membership: SWIM gossip among every agent ([`gossip`]); the Raft catalog among the
//! servers will live beside it.

pub mod gossip;
