//! Raft's messages, entries, hard state and snapshots as our own serde structs, postcard
//! encoded: what crosses the wire between servers and what lies on disk.
//!
//! raft-rs's own types are rust-protobuf 2 structs, and that parser is not safe on untrusted
//! input (deep recursion through unknown groups). So no protobuf byte ever leaves a process:
//! [`encode_message`] mirrors a message field by field, [`decode_message`] builds it back
//! after postcard has checked every length and enum tag, and conf changes travel as our own
//! record in the entry's context (see [`ConfChangeRecord`]).

use raft::eraftpb::{
    ConfState, Entry, EntryType, HardState, Message, MessageType, Snapshot, SnapshotMetadata,
};
use serde::{Deserialize, Serialize};

/// Upper bound on one encoded message: a snapshot travels in one message, so this is also
/// the largest catalog a follower can be sent (see [`super::tcp::MAX_FRAME`]).
pub const MAX_MESSAGE: usize = 64 << 20;

/// Why bytes from a peer were not a raft message. Nothing was stepped into the node.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("raft message of {0} bytes is over the {MAX_MESSAGE}-byte limit")]
    TooLarge(usize),
    #[error("malformed raft message: {0}")]
    Malformed(#[from] postcard::Error),
    #[error("raft message from {from} to {to} is not for this server")]
    Misdirected { from: u64, to: u64 },
    #[error("raft message is malformed: {0}")]
    Shape(&'static str),
}

/// [`EntryType`], as a closed serde enum.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum WireEntryType {
    /// A command (or the empty entry a new leader appends).
    Normal,
    /// A membership change (raft-rs's v1 form, which outpost proposes).
    ConfChange,
    /// A membership change in raft-rs's v2 form (only its automatic leave-joint entry).
    ConfChangeV2,
}

/// One log entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireEntry {
    pub entry_type: WireEntryType,
    pub term: u64,
    pub index: u64,
    /// A [`crate::catalog::Command`] for a normal entry; raft-rs's own bytes of a conf change
    /// (never parsed by us: [`WireEntry::context`] carries the change).
    #[serde(with = "serde_bytes")]
    pub data: Vec<u8>,
    #[serde(with = "serde_bytes")]
    pub context: Vec<u8>,
}

/// Term, vote and commit index: what a server must remember across restarts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireHardState {
    pub term: u64,
    pub vote: u64,
    pub commit: u64,
}

/// The cluster's membership at a point of the log.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireConfState {
    pub voters: Vec<u64>,
    pub learners: Vec<u64>,
    pub voters_outgoing: Vec<u64>,
    pub learners_next: Vec<u64>,
    pub auto_leave: bool,
}

/// A snapshot: the state after applying the log up to `index` (whose entry has `term`), the
/// membership then, and the state bytes (see `SnapshotData` in the core).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireSnapshot {
    pub index: u64,
    pub term: u64,
    pub conf_state: WireConfState,
    /// Shared with raft-rs's copy (its `Snapshot::data` is `Bytes` too): a snapshot of the
    /// whole state is never copied to be handed over. Encoded as `serde_bytes` encodes a
    /// `Vec<u8>` (tested).
    pub data: bytes::Bytes,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
enum WireMessageType {
    Append,
    AppendResponse,
    RequestVote,
    RequestVoteResponse,
    Snapshot,
    Heartbeat,
    HeartbeatResponse,
    TransferLeader,
    TimeoutNow,
    ReadIndex,
    ReadIndexResp,
    RequestPreVote,
    RequestPreVoteResponse,
}

#[derive(Debug, Serialize, Deserialize)]
struct WireMessage {
    msg_type: WireMessageType,
    to: u64,
    from: u64,
    term: u64,
    log_term: u64,
    index: u64,
    entries: Vec<WireEntry>,
    commit: u64,
    commit_term: u64,
    snapshot: Option<WireSnapshot>,
    request_snapshot: u64,
    reject: bool,
    reject_hint: u64,
    #[serde(with = "serde_bytes")]
    context: Vec<u8>,
    priority: i64,
}

/// A membership change as it travels in a conf-change entry's context: which server, and
/// where it listens (so every server learns the addresses from the log itself).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConfChangeRecord {
    /// Add a voting server (or update its address; promotes a learner).
    AddVoter { id: u64, addr: String },
    /// Add a non-voting member (a client agent keeping a read-only replica): it receives
    /// the log, never votes and never counts towards a quorum.
    AddLearner { id: u64, addr: String },
    /// Remove a server or a learner.
    Remove { id: u64 },
}

impl ConfChangeRecord {
    /// Postcard bytes.
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_allocvec(self).expect("plain structs always serialize")
    }

    /// The record in `bytes`, or `None` for bytes that are not one.
    pub fn decode(bytes: &[u8]) -> Option<ConfChangeRecord> {
        postcard::from_bytes(bytes).ok()
    }
}

fn msg_type_to_wire(t: MessageType) -> Option<WireMessageType> {
    use MessageType as M;
    use WireMessageType as W;
    Some(match t {
        M::MsgAppend => W::Append,
        M::MsgAppendResponse => W::AppendResponse,
        M::MsgRequestVote => W::RequestVote,
        M::MsgRequestVoteResponse => W::RequestVoteResponse,
        M::MsgSnapshot => W::Snapshot,
        M::MsgHeartbeat => W::Heartbeat,
        M::MsgHeartbeatResponse => W::HeartbeatResponse,
        M::MsgTransferLeader => W::TransferLeader,
        M::MsgTimeoutNow => W::TimeoutNow,
        M::MsgReadIndex => W::ReadIndex,
        M::MsgReadIndexResp => W::ReadIndexResp,
        M::MsgRequestPreVote => W::RequestPreVote,
        M::MsgRequestPreVoteResponse => W::RequestPreVoteResponse,
        M::MsgHup
        | M::MsgBeat
        | M::MsgPropose
        | M::MsgUnreachable
        | M::MsgSnapStatus
        | M::MsgCheckQuorum => return None,
    })
}

fn msg_type_from_wire(t: WireMessageType) -> MessageType {
    use MessageType as M;
    use WireMessageType as W;
    match t {
        W::Append => M::MsgAppend,
        W::AppendResponse => M::MsgAppendResponse,
        W::RequestVote => M::MsgRequestVote,
        W::RequestVoteResponse => M::MsgRequestVoteResponse,
        W::Snapshot => M::MsgSnapshot,
        W::Heartbeat => M::MsgHeartbeat,
        W::HeartbeatResponse => M::MsgHeartbeatResponse,
        W::TransferLeader => M::MsgTransferLeader,
        W::TimeoutNow => M::MsgTimeoutNow,
        W::ReadIndex => M::MsgReadIndex,
        W::ReadIndexResp => M::MsgReadIndexResp,
        W::RequestPreVote => M::MsgRequestPreVote,
        W::RequestPreVoteResponse => M::MsgRequestPreVoteResponse,
    }
}

impl WireEntry {
    /// The mirror of a raft-rs entry.
    pub fn from_raft(e: &Entry) -> WireEntry {
        WireEntry {
            entry_type: match e.get_entry_type() {
                EntryType::EntryNormal => WireEntryType::Normal,
                EntryType::EntryConfChange => WireEntryType::ConfChange,
                EntryType::EntryConfChangeV2 => WireEntryType::ConfChangeV2,
            },
            term: e.term,
            index: e.index,
            data: e.data.to_vec(),
            context: e.context.to_vec(),
        }
    }

    /// The raft-rs entry.
    pub fn to_raft(&self) -> Entry {
        let mut e = Entry::default();
        e.set_entry_type(match self.entry_type {
            WireEntryType::Normal => EntryType::EntryNormal,
            WireEntryType::ConfChange => EntryType::EntryConfChange,
            WireEntryType::ConfChangeV2 => EntryType::EntryConfChangeV2,
        });
        e.term = self.term;
        e.index = self.index;
        e.data = self.data.clone().into();
        e.context = self.context.clone().into();
        e
    }

    /// Bytes this entry takes in memory, roughly (for size limits).
    pub fn size(&self) -> usize {
        self.data.len() + self.context.len() + 32
    }
}

impl WireHardState {
    /// The mirror of raft-rs's hard state.
    pub fn from_raft(hs: &HardState) -> WireHardState {
        WireHardState {
            term: hs.term,
            vote: hs.vote,
            commit: hs.commit,
        }
    }

    /// raft-rs's hard state.
    pub fn to_raft(self) -> HardState {
        HardState {
            term: self.term,
            vote: self.vote,
            commit: self.commit,
            ..Default::default()
        }
    }
}

impl WireConfState {
    /// The mirror of raft-rs's membership.
    pub fn from_raft(cs: &ConfState) -> WireConfState {
        WireConfState {
            voters: cs.voters.clone(),
            learners: cs.learners.clone(),
            voters_outgoing: cs.voters_outgoing.clone(),
            learners_next: cs.learners_next.clone(),
            auto_leave: cs.auto_leave,
        }
    }

    /// raft-rs's membership.
    pub fn to_raft(&self) -> ConfState {
        ConfState {
            voters: self.voters.clone(),
            learners: self.learners.clone(),
            voters_outgoing: self.voters_outgoing.clone(),
            learners_next: self.learners_next.clone(),
            auto_leave: self.auto_leave,
            ..Default::default()
        }
    }
}

impl WireSnapshot {
    /// The mirror of a raft-rs snapshot.
    pub fn from_raft(s: &Snapshot) -> WireSnapshot {
        let m = s.get_metadata();
        WireSnapshot {
            index: m.index,
            term: m.term,
            conf_state: WireConfState::from_raft(m.get_conf_state()),
            data: s.data.clone(),
        }
    }

    /// The raft-rs snapshot.
    pub fn to_raft(&self) -> Snapshot {
        let mut meta = SnapshotMetadata {
            index: self.index,
            term: self.term,
            ..Default::default()
        };
        meta.set_conf_state(self.conf_state.to_raft());
        let mut s = Snapshot::default();
        s.set_metadata(meta);
        s.data = self.data.clone();
        s
    }
}

/// A message for a peer as bytes, or `None` for a message raft-rs keeps to itself (never
/// produced by a `Ready`) or a proposal (this core never forwards one: see `RaftNode::propose`).
pub fn encode_message(m: &Message) -> Option<Vec<u8>> {
    let w = WireMessage {
        msg_type: msg_type_to_wire(m.get_msg_type())?,
        to: m.to,
        from: m.from,
        term: m.term,
        log_term: m.log_term,
        index: m.index,
        entries: m.entries.iter().map(WireEntry::from_raft).collect(),
        commit: m.commit,
        commit_term: m.commit_term,
        snapshot: m.snapshot.as_ref().map(WireSnapshot::from_raft),
        request_snapshot: m.request_snapshot,
        reject: m.reject,
        reject_hint: m.reject_hint,
        context: m.context.to_vec(),
        priority: m.priority,
    };
    Some(postcard::to_allocvec(&w).expect("plain structs always serialize"))
}

/// The message in `bytes`, checked: a known network type, every length within `bytes`.
pub fn decode_message(bytes: &[u8]) -> Result<Message, WireError> {
    if bytes.len() > MAX_MESSAGE {
        return Err(WireError::TooLarge(bytes.len()));
    }
    let w: WireMessage = postcard::from_bytes(bytes)?;
    let mut m = Message::default();
    m.set_msg_type(msg_type_from_wire(w.msg_type));
    m.to = w.to;
    m.from = w.from;
    m.term = w.term;
    m.log_term = w.log_term;
    m.index = w.index;
    m.set_entries(
        w.entries
            .iter()
            .map(WireEntry::to_raft)
            .collect::<Vec<_>>()
            .into(),
    );
    m.commit = w.commit;
    m.commit_term = w.commit_term;
    if let Some(s) = &w.snapshot {
        m.set_snapshot(s.to_raft());
    }
    m.request_snapshot = w.request_snapshot;
    m.reject = w.reject;
    m.reject_hint = w.reject_hint;
    m.context = w.context.into();
    m.priority = w.priority;
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Byte fields are written as byte strings (one length, one copy), which in postcard is
    /// the very encoding serde's default gives a `Vec<u8>` (a length, then each byte): logs,
    /// snapshots and messages written before stay readable, and the other way round.
    #[test]
    fn byte_fields_keep_postcards_encoding_of_a_byte_vector() {
        #[derive(Serialize, Deserialize, PartialEq, Debug)]
        struct Plain {
            entry_type: WireEntryType,
            term: u64,
            index: u64,
            data: Vec<u8>,
            context: Vec<u8>,
        }
        let data: Vec<u8> = (0..=255).chain(0..300).map(|b| b as u8).collect();
        let e = WireEntry {
            entry_type: WireEntryType::Normal,
            term: 3,
            index: 9,
            data: data.clone(),
            context: b"ctx".to_vec(),
        };
        let plain = Plain {
            entry_type: WireEntryType::Normal,
            term: 3,
            index: 9,
            data,
            context: b"ctx".to_vec(),
        };
        let bytes = postcard::to_allocvec(&e).unwrap();
        assert_eq!(bytes, postcard::to_allocvec(&plain).unwrap());
        assert_eq!(postcard::from_bytes::<Plain>(&bytes).unwrap(), plain);
        assert_eq!(postcard::from_bytes::<WireEntry>(&bytes).unwrap(), e);
        // A snapshot's data (Bytes) as a plain byte vector.
        #[derive(Serialize, Deserialize, PartialEq, Debug)]
        struct PlainSnapshot {
            index: u64,
            term: u64,
            conf_state: WireConfState,
            data: Vec<u8>,
        }
        let snap = WireSnapshot {
            index: 7,
            term: 2,
            conf_state: WireConfState {
                voters: vec![1, 2, 3],
                ..Default::default()
            },
            data: plain.data.clone().into(),
        };
        let plain_snap = PlainSnapshot {
            index: 7,
            term: 2,
            conf_state: snap.conf_state.clone(),
            data: plain.data.clone(),
        };
        let bytes = postcard::to_allocvec(&snap).unwrap();
        assert_eq!(bytes, postcard::to_allocvec(&plain_snap).unwrap());
        assert_eq!(postcard::from_bytes::<WireSnapshot>(&bytes).unwrap(), snap);
        // Handed to raft-rs and back without a copy.
        let raft = snap.to_raft();
        assert_eq!(raft.data.as_ptr(), snap.data.as_ptr());
        assert_eq!(
            WireSnapshot::from_raft(&raft).data.as_ptr(),
            snap.data.as_ptr()
        );
        let kv = crate::catalog::KvEntry {
            key: "k".into(),
            value: vec![0, 1, 255],
            flags: 1,
            create_index: 2,
            modify_index: 3,
            lock_index: 0,
        };
        assert_eq!(
            postcard::to_allocvec(&kv).unwrap(),
            [1, b'k', 3, 0, 1, 255, 1, 2, 3, 0]
        );
    }

    fn sample() -> Message {
        let mut m = Message::default();
        m.set_msg_type(MessageType::MsgAppend);
        m.to = 2;
        m.from = 1;
        m.term = 7;
        m.log_term = 6;
        m.index = 41;
        m.commit = 40;
        let e = WireEntry {
            entry_type: WireEntryType::Normal,
            term: 7,
            index: 42,
            data: b"cmd".to_vec(),
            context: vec![],
        };
        m.set_entries(vec![e.to_raft()].into());
        m.set_snapshot(
            WireSnapshot {
                index: 3,
                term: 2,
                conf_state: WireConfState {
                    voters: vec![1, 2, 3],
                    ..Default::default()
                },
                data: bytes::Bytes::from_static(b"state"),
            }
            .to_raft(),
        );
        m
    }

    #[test]
    fn a_message_survives_encode_and_decode() {
        let m = sample();
        let back = decode_message(&encode_message(&m).unwrap()).unwrap();
        assert_eq!(back, m);
    }

    #[test]
    fn proposals_and_local_messages_are_never_encoded() {
        let mut m = Message::default();
        for t in [
            MessageType::MsgPropose,
            MessageType::MsgHup,
            MessageType::MsgBeat,
        ] {
            m.set_msg_type(t);
            assert!(encode_message(&m).is_none(), "{t:?}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        /// Random and mutated bytes decode to an error or a message, never a panic.
        #[test]
        fn damaged_bytes_never_panic(
            flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
            cut in any::<prop::sample::Index>(),
            junk in prop::collection::vec(any::<u8>(), 0..64),
        ) {
            let mut bytes = encode_message(&sample()).unwrap();
            for (at, x) in flips {
                let i = at.index(bytes.len());
                bytes[i] ^= x;
            }
            let _ = decode_message(&bytes);
            let _ = decode_message(&bytes[..cut.index(bytes.len())]);
            let _ = decode_message(&junk);
        }
    }
}
