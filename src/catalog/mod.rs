//! The service catalog: nodes, services and checks as a deterministic state machine.
//! Every change is a [`Command`]; queries are pure reads over [`Catalog`].

pub mod command;
pub mod model;
pub mod state;

pub use command::{Change, Command, Deregistration, Registration};
pub use model::{Check, CheckDefinition, Health, Node, Service, Weights};
pub use state::{ApplyError, Catalog, HealthFilter, Instance, NodeEntry};

#[cfg(test)]
mod tests;
