//! Raft.

pub mod storage;
pub mod wire;
