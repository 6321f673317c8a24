//! Catalog commands: the only way the catalog changes. They are postcard-encoded so the
//! Raft log carries exactly these bytes; a single bootstrap server applies them the same way.

use serde::{Deserialize, Serialize};

use super::model::{Check, Health, Node, Service};

/// One entry of the replicated log: changes applied atomically, all of them or, if one is
/// invalid, none. Applying the same sequence of commands to an empty catalog always gives
/// the same state (no clock, no randomness inside). Flat on purpose: a command cannot nest,
/// so decoding untrusted bytes has no recursion to exhaust the stack.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Command {
    pub changes: Vec<Change>,
}

// Registrations are by far the common case; boxing them would cost an allocation each.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Change {
    /// Create or update a node, and optionally one service on it and checks (Consul's
    /// catalog `register`). Checks with a `service_id` need that service on the node.
    Register(Registration),
    /// Remove a check, a service (with its checks), or a whole node (with everything on it).
    /// Removing something absent is not an error, as in Consul.
    Deregister(Deregistration),
    /// Set the status and output of a check that exists (as a check runner or a TTL update
    /// reports them); a check that is gone by then is skipped, not an error.
    UpdateCheck(CheckUpdate),
    /// Write one KV key.
    KvSet(KvSet),
    /// Delete one KV key, or every key under a prefix.
    KvDelete(KvDelete),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckUpdate {
    pub node: String,
    pub check_id: String,
    pub status: Health,
    pub output: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvSet {
    pub key: String,
    #[serde(with = "serde_bytes")]
    pub value: Vec<u8>,
    pub flags: u64,
    /// Check-and-set: write only if the key's modify index is this (0: only if absent);
    /// otherwise the whole command is refused with [`ApplyError::CasFailed`].
    ///
    /// [`ApplyError::CasFailed`]: super::ApplyError::CasFailed
    pub cas: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvDelete {
    pub key: String,
    /// Delete every key that starts with `key`.
    pub recurse: bool,
    /// Delete only if the key's modify index is this (a key already gone passes).
    pub cas: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registration {
    pub node: Node,
    pub service: Option<Service>,
    pub checks: Vec<Check>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deregistration {
    pub node: String,
    pub service_id: Option<String>,
    pub check_id: Option<String>,
}

/// Upper bound on an encoded command accepted from the log (a registration is far smaller;
/// a batch of a few thousand services fits).
pub const MAX_ENCODED_COMMAND: usize = 16 << 20;

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("catalog command of {0} bytes is over the {MAX_ENCODED_COMMAND}-byte limit")]
    TooLarge(usize),
    #[error("malformed catalog command: {0}")]
    Malformed(#[from] postcard::Error),
}

impl Command {
    pub fn one(change: Change) -> Command {
        Command {
            changes: vec![change],
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        postcard::to_allocvec(self).expect("plain structs always serialize")
    }

    pub fn decode(bytes: &[u8]) -> Result<Command, DecodeError> {
        if bytes.len() > MAX_ENCODED_COMMAND {
            return Err(DecodeError::TooLarge(bytes.len()));
        }
        Ok(postcard::from_bytes(bytes)?)
    }
}
