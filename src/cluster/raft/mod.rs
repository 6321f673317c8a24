//! Raft.

mod cache;
pub mod driver;
mod logger;
pub mod node;
pub mod sim;
pub mod storage;
pub mod tcp;
pub mod wire;

pub use driver::{HandleError, RaftHandle, RaftServer, ServerConfig, StartError};
pub use node::{
    Event, Outcome, RaftConfig, RaftError, RaftNode, ReadFailure, StateMachine, Status, Transmit,
};
pub use storage::{DiskLog, Persist, Recovered, StorageError};
pub use wire::ConfChangeRecord;
