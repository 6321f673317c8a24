//! The service catalog: nodes, services and checks as a deterministic state machine.
//! Every change is a [`Command`]; queries are pure reads over [`Catalog`].

pub mod command;
pub mod kv;
pub mod model;
pub mod snapshot;
pub mod state;

pub use command::{Change, CheckUpdate, Command, Deregistration, KvDelete, KvSet, Registration};
pub use kv::{Kv, KvEntry};
pub use model::{Check, CheckDefinition, Health, Meta, Node, Service, Weights};
pub use snapshot::SnapshotError;
pub use state::{
    ApplyError, Catalog, CheckEntry, HealthFilter, Instance, NodeEntry, ServiceEntry, Topic,
};

#[cfg(test)]
mod tests;
