//! Raft.

mod cache;
mod logger;
pub mod node;
pub mod sim;
pub mod storage;
pub mod wire;

pub use node::{
    Event, Outcome, RaftConfig, RaftError, RaftNode, ReadFailure, StateMachine, Status, Transmit,
};
pub use storage::{DiskLog, Persist, Recovered, StorageError};
pub use wire::ConfChangeRecord;
