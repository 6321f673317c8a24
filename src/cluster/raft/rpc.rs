//! The RPC frames of the server port: a write forwarded to the leader (by a follower or a
//! client agent) and a status question (by a client agent), with their replies. Pure:
//! postcard encode and decode only; [`super::tcp`] moves the bytes.
//!
//! RPC travels on connections of its own (their hello says so), never on a member's Raft
//! connection, so nothing a client sends is ever stepped into raft-rs.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::driver::HandleError;
use super::node::{DROP_REASONS, Outcome, Status};
use crate::catalog::ApplyError;

/// Requests a connection carries at once, at most, each way: the dialer waits for a reply
/// before it sends more, the acceptor stops reading.
pub const MAX_IN_FLIGHT: usize = 64;

/// What a dialer asks. `id` is the dialer's, echoed by the reply.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Propose `command` (a postcard [`crate::catalog::Command`]). With `relay` (a client
    /// agent asks) a follower forwards it on to its leader; without (a server forwarded
    /// it) only a leader proposes it, and a follower answers [`WriteResult::NotLeader`].
    /// The answer is due within `budget_ms`, the time the asker still waits.
    Forward {
        id: u64,
        command: Vec<u8>,
        relay: bool,
        budget_ms: u32,
    },
    /// The leader and the voters, as this server knows them.
    Status { id: u64 },
}

/// What the acceptor answers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reply {
    /// The end of a [`Request::Forward`].
    Forward { id: u64, result: WriteResult },
    /// The answer to a [`Request::Status`].
    Status { id: u64, status: WireStatus },
}

/// [`Outcome`] and [`HandleError`] as they travel.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum WriteResult {
    /// [`Outcome::Applied`].
    Applied { index: u64 },
    /// [`Outcome::Refused`].
    Refused { index: u64, error: WireApplyError },
    /// Not proposed: the answering server does not lead; `leader` is its best hint and
    /// `addr` that leader's Raft address.
    NotLeader {
        leader: Option<u64>,
        addr: Option<String>,
    },
    /// [`Outcome::Dropped`], its reason by name.
    Dropped { reason: String },
    /// [`Outcome::Unknown`].
    Unknown,
    /// [`HandleError::TimedOut`].
    TimedOut,
    /// [`HandleError::Stopped`]: read as [`Outcome::Unknown`] by the writer (the server may
    /// have proposed it before it stopped).
    Stopped,
}

/// [`ApplyError`] as it travels (the catalog's type has no serde), variant for variant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum WireApplyError {
    EmptyNodeName,
    EmptyServiceName {
        node: String,
    },
    EmptyCheckId {
        node: String,
    },
    UnknownService {
        node: String,
        check: String,
        service: String,
    },
    EmptyKey,
    KeyTooLong(u64),
    ValueTooLarge(u64),
    CasFailed {
        key: String,
        cas: u64,
    },
}

/// A server's view of the cluster, as it travels.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireStatus {
    /// The answering server.
    pub id: u64,
    /// Its current term.
    pub term: u64,
    /// The leader it knows of.
    pub leader: Option<u64>,
    /// The voters and their Raft addresses.
    pub peers: Vec<(u64, String)>,
}

/// Why bytes were not an RPC frame. The connection is closed.
#[derive(Debug, thiserror::Error)]
#[error("malformed RPC frame: {0}")]
pub struct RpcError(#[from] postcard::Error);

/// What a forwarded command that does not decode on the server becomes (it is not
/// proposed).
pub const DROP_UNDECODABLE: &str = "the server could not decode the command";
/// A reason from a server of another version, which this one does not know.
pub const DROP_OTHER: &str = "the leader dropped it";

fn encode<T: Serialize>(t: &T) -> Vec<u8> {
    postcard::to_allocvec(t).expect("plain enums always serialize")
}

impl Request {
    /// Postcard bytes.
    pub fn encode(&self) -> Vec<u8> {
        encode(self)
    }

    /// The request in `bytes`.
    pub fn decode(bytes: &[u8]) -> Result<Request, RpcError> {
        Ok(postcard::from_bytes(bytes)?)
    }
}

impl Reply {
    /// Postcard bytes.
    pub fn encode(&self) -> Vec<u8> {
        encode(self)
    }

    /// The reply in `bytes`.
    pub fn decode(bytes: &[u8]) -> Result<Reply, RpcError> {
        Ok(postcard::from_bytes(bytes)?)
    }

    /// The request it answers.
    pub fn id(&self) -> u64 {
        match self {
            Reply::Forward { id, .. } | Reply::Status { id, .. } => *id,
        }
    }
}

impl WriteResult {
    /// What a server answers for the outcome of a write; `peers` gives a leader's address.
    pub fn from_result(
        r: Result<Outcome, HandleError>,
        peers: &BTreeMap<u64, String>,
    ) -> WriteResult {
        match r {
            Ok(Outcome::Applied { index }) => WriteResult::Applied { index },
            Ok(Outcome::Refused { index, error }) => WriteResult::Refused {
                index,
                error: WireApplyError::from(&error),
            },
            Ok(Outcome::NotLeader { leader }) => WriteResult::NotLeader {
                leader,
                addr: leader.and_then(|l| peers.get(&l).cloned()),
            },
            Ok(Outcome::Dropped { reason }) => WriteResult::Dropped {
                reason: reason.to_owned(),
            },
            Ok(Outcome::Unknown) => WriteResult::Unknown,
            Err(HandleError::TimedOut) | Err(HandleError::Read(_)) => WriteResult::TimedOut,
            Err(HandleError::Stopped) => WriteResult::Stopped,
        }
    }

    /// The outcome for the writer. A server that stopped while it had the write may have
    /// proposed it: [`Outcome::Unknown`].
    pub fn into_result(self) -> Result<Outcome, HandleError> {
        Ok(match self {
            WriteResult::Applied { index } => Outcome::Applied { index },
            WriteResult::Refused { index, error } => Outcome::Refused {
                index,
                error: error.into(),
            },
            WriteResult::NotLeader { leader, .. } => Outcome::NotLeader { leader },
            WriteResult::Dropped { reason } => Outcome::Dropped {
                reason: static_reason(&reason),
            },
            WriteResult::Unknown | WriteResult::Stopped => Outcome::Unknown,
            WriteResult::TimedOut => return Err(HandleError::TimedOut),
        })
    }
}

/// `reason` as one of the known static reasons ([`Outcome::Dropped`] holds a `&'static
/// str`, and a reason from the wire is not leaked into one).
fn static_reason(reason: &str) -> &'static str {
    DROP_REASONS
        .iter()
        .chain([&DROP_UNDECODABLE])
        .find(|r| **r == reason)
        .copied()
        .unwrap_or(DROP_OTHER)
}

impl From<&ApplyError> for WireApplyError {
    fn from(e: &ApplyError) -> WireApplyError {
        match e.clone() {
            ApplyError::EmptyNodeName => WireApplyError::EmptyNodeName,
            ApplyError::EmptyServiceName { node } => WireApplyError::EmptyServiceName { node },
            ApplyError::EmptyCheckId { node } => WireApplyError::EmptyCheckId { node },
            ApplyError::UnknownService {
                node,
                check,
                service,
            } => WireApplyError::UnknownService {
                node,
                check,
                service,
            },
            ApplyError::EmptyKey => WireApplyError::EmptyKey,
            ApplyError::KeyTooLong(n) => WireApplyError::KeyTooLong(n as u64),
            ApplyError::ValueTooLarge(n) => WireApplyError::ValueTooLarge(n as u64),
            ApplyError::CasFailed { key, cas } => WireApplyError::CasFailed { key, cas },
        }
    }
}

impl From<WireApplyError> for ApplyError {
    fn from(e: WireApplyError) -> ApplyError {
        let size = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
        match e {
            WireApplyError::EmptyNodeName => ApplyError::EmptyNodeName,
            WireApplyError::EmptyServiceName { node } => ApplyError::EmptyServiceName { node },
            WireApplyError::EmptyCheckId { node } => ApplyError::EmptyCheckId { node },
            WireApplyError::UnknownService {
                node,
                check,
                service,
            } => ApplyError::UnknownService {
                node,
                check,
                service,
            },
            WireApplyError::EmptyKey => ApplyError::EmptyKey,
            WireApplyError::KeyTooLong(n) => ApplyError::KeyTooLong(size(n)),
            WireApplyError::ValueTooLarge(n) => ApplyError::ValueTooLarge(size(n)),
            WireApplyError::CasFailed { key, cas } => ApplyError::CasFailed { key, cas },
        }
    }
}

impl WireStatus {
    /// What a server answers about itself.
    pub fn from_status(s: &Status) -> WireStatus {
        WireStatus {
            id: s.id,
            term: s.term,
            leader: s.leader,
            peers: s.peers.iter().map(|(&id, a)| (id, a.clone())).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn outcomes() -> Vec<Result<Outcome, HandleError>> {
        let errors = [
            ApplyError::EmptyNodeName,
            ApplyError::EmptyServiceName { node: "n".into() },
            ApplyError::EmptyCheckId { node: "n".into() },
            ApplyError::UnknownService {
                node: "n".into(),
                check: "c".into(),
                service: "s".into(),
            },
            ApplyError::EmptyKey,
            ApplyError::KeyTooLong(600),
            ApplyError::ValueTooLarge(1 << 20),
            ApplyError::CasFailed {
                key: "k".into(),
                cas: 3,
            },
        ];
        let mut all: Vec<Result<Outcome, HandleError>> = vec![
            Ok(Outcome::Applied { index: 9 }),
            Ok(Outcome::NotLeader { leader: Some(2) }),
            Ok(Outcome::NotLeader { leader: None }),
            Ok(Outcome::Unknown),
            Err(HandleError::TimedOut),
        ];
        all.extend(
            errors
                .into_iter()
                .map(|error| Ok(Outcome::Refused { index: 4, error })),
        );
        all.extend(
            DROP_REASONS
                .iter()
                .chain([&DROP_UNDECODABLE])
                .map(|&reason| Ok(Outcome::Dropped { reason })),
        );
        all
    }

    #[test]
    fn every_outcome_survives_the_trip_to_the_forwarder() {
        let peers = BTreeMap::from([(2, "10.0.0.2:8300".to_string())]);
        for o in outcomes() {
            let reply = Reply::Forward {
                id: 5,
                result: WriteResult::from_result(o.clone(), &peers),
            };
            let back = Reply::decode(&reply.encode()).unwrap();
            assert_eq!(back, reply);
            let Reply::Forward { id: 5, result } = back else {
                panic!("{back:?}");
            };
            if let Ok(Outcome::NotLeader { leader: Some(2) }) = o {
                assert_eq!(
                    result,
                    WriteResult::NotLeader {
                        leader: Some(2),
                        addr: Some("10.0.0.2:8300".into())
                    }
                );
            }
            assert_eq!(result.into_result(), o);
        }
    }

    #[test]
    fn a_stopped_server_or_an_unknown_reason_is_never_read_as_certainly_lost() {
        assert_eq!(WriteResult::Stopped.into_result(), Ok(Outcome::Unknown));
        assert_eq!(
            WriteResult::Dropped {
                reason: "something new".into()
            }
            .into_result(),
            Ok(Outcome::Dropped { reason: DROP_OTHER })
        );
    }

    #[test]
    fn requests_survive_encode_and_decode() {
        for r in [
            Request::Forward {
                id: u64::MAX,
                command: vec![1, 2, 3],
                relay: true,
                budget_ms: 5000,
            },
            Request::Status { id: 0 },
        ] {
            assert_eq!(Request::decode(&r.encode()).unwrap(), r);
        }
        let s = Reply::Status {
            id: 1,
            status: WireStatus {
                id: 3,
                term: 2,
                leader: Some(3),
                peers: vec![(3, "a:1".into())],
            },
        };
        assert_eq!(Reply::decode(&s.encode()).unwrap(), s);
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        /// Random and damaged frames decode to an error or a value, never a panic.
        #[test]
        fn damaged_frames_never_panic(
            flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
            cut in any::<prop::sample::Index>(),
            junk in prop::collection::vec(any::<u8>(), 0..64),
        ) {
            let mut bytes = Request::Forward {
                id: 7,
                command: vec![9; 20],
                relay: false,
                budget_ms: 100,
            }
            .encode();
            bytes.extend(
                Reply::Forward {
                    id: 7,
                    result: WriteResult::Refused {
                        index: 3,
                        error: WireApplyError::CasFailed { key: "k".into(), cas: 1 },
                    },
                }
                .encode(),
            );
            for (at, x) in flips {
                let i = at.index(bytes.len());
                bytes[i] ^= x;
            }
            let cut = &bytes[..cut.index(bytes.len())];
            for b in [&bytes[..], cut, &junk[..]] {
                let _ = Request::decode(b);
                let _ = Reply::decode(b);
                if let Ok(Reply::Forward { result, .. }) = Reply::decode(b) {
                    let _ = result.into_result();
                }
            }
        }
    }
}
