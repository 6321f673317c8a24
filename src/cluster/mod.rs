//! The cluster: SWIM gossip membership among every agent ([`gossip`]) and the Raft-replicated
//! catalog among the servers ([`raft`]).

pub mod gossip;
pub mod raft;
