//! The keyring query, as serf's `_serf_*-key` queries: its two messages (encode and decode),
//! the initiator's bookkeeping of one query and the report it ends in. Pure: the engine
//! sends, times and applies.

use std::collections::BTreeMap;
use std::time::Instant;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};

use super::keyring::{KEY_LEN, MAX_KEYS};
use super::node::MAX_NAME;
use super::wire::SEALED_OVERHEAD;

/// Longest error text a reply carries, in bytes (longer ones are cut at a character).
pub const MAX_ERROR_TEXT: usize = 128;
/// Most bytes a reply takes besides its keys: the enum tag, the query id (a varint), the
/// name and error text with their lengths, part numbers and the key count.
pub const REPLY_OVERHEAD: usize = 1 + 10 + (2 + MAX_NAME) + (1 + 2 + MAX_ERROR_TEXT) + 1 + 1 + 1;
/// Members asked in one round of a query at most; the others are asked in the next rounds
/// (every `probe_interval` until the deadline), which also paces a large cluster.
pub const MAX_QUERY_TARGETS: usize = 512;

/// The operations of `consul keyring`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum KeyringOp {
    /// `-list`: each member answers with its keys.
    List,
    /// `-install KEY`.
    Install,
    /// `-use KEY`: make the installed key the primary.
    Use,
    /// `-remove KEY` (not the primary).
    Remove,
}

impl KeyringOp {
    /// Whether the operation takes a key.
    pub fn takes_key(self) -> bool {
        self != KeyringOp::List
    }
}

/// The payload of a packet whose frame carries [`super::wire::FLAG_KEYRING`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyringMessage {
    /// From the initiator to each live member.
    Query {
        /// Grows with each query of the initiator's session; a member ignores a query older
        /// than the last it saw from that session.
        id: u64,
        /// What to do.
        op: KeyringOp,
        /// The key, for every operation but `List`.
        key: Option<[u8; KEY_LEN]>,
    },
    /// A member's answer, in `parts` datagrams when its keys do not fit one.
    Reply {
        /// The query's id.
        id: u64,
        /// The member answering.
        name: String,
        /// Why the operation failed there; none when it was applied.
        error: Option<String>,
        /// This datagram's number, from 0.
        part: u8,
        /// Datagrams in the answer, 1 to [`MAX_KEYS`].
        parts: u8,
        /// Its keys after the operation (the primary first), this part's share.
        keys: Vec<[u8; KEY_LEN]>,
    },
}

impl KeyringMessage {
    /// Decodes a message; `None` for anything malformed or out of bounds.
    pub fn decode(bytes: &[u8]) -> Option<KeyringMessage> {
        let m: KeyringMessage = postcard::from_bytes(bytes).ok()?;
        match &m {
            KeyringMessage::Query { op, key, .. } => (op.takes_key() == key.is_some()).then_some(m),
            KeyringMessage::Reply {
                name,
                error,
                part,
                parts,
                keys,
                ..
            } => {
                let ok = !name.is_empty()
                    && name.len() <= MAX_NAME
                    && error.as_ref().is_none_or(|e| e.len() <= MAX_ERROR_TEXT)
                    && *parts >= 1
                    && usize::from(*parts) <= MAX_KEYS
                    && part < parts
                    && keys.len() <= MAX_KEYS;
                ok.then_some(m)
            }
        }
    }

    /// The message's bytes.
    pub fn encode(&self) -> Option<Vec<u8>> {
        postcard::to_allocvec(self).ok()
    }
}

/// Keys one reply datagram carries for a `max_packet_size`: at least one (a
/// [`super::MIN_PACKET_SIZE`] packet holds 7), so [`MAX_KEYS`] keys fit in [`MAX_KEYS`] parts.
pub fn keys_per_part(max_packet_size: usize) -> usize {
    (max_packet_size.saturating_sub(SEALED_OVERHEAD + REPLY_OVERHEAD) / KEY_LEN).max(1)
}

/// `text` cut to [`MAX_ERROR_TEXT`] bytes at a character boundary.
pub fn error_text(text: &str) -> String {
    let mut end = text.len().min(MAX_ERROR_TEXT);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

/// How one member answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberAnswer {
    /// Why the operation failed there; none when it was applied.
    pub error: Option<String>,
    /// Its keys in base64, the primary first.
    pub keys: Vec<String>,
}

/// What a keyring query found, Consul's `KeyringResponse` with the names kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyringReport {
    /// The query's id.
    pub id: u64,
    /// What was asked.
    pub op: KeyringOp,
    /// Each member asked (this one included) that answered, by name.
    pub answers: BTreeMap<String, MemberAnswer>,
    /// Members asked that did not answer (in full) before the deadline.
    pub missing: Vec<String>,
    /// Members known failed, not asked (they will need the keys when they come back).
    pub failed: Vec<String>,
}

impl KeyringReport {
    /// Members asked: Consul's `NumNodes`.
    pub fn num_nodes(&self) -> usize {
        self.answers.len() + self.missing.len()
    }

    /// Whether every member asked answered and applied the operation.
    pub fn ok(&self) -> bool {
        self.missing.is_empty() && self.answers.values().all(|a| a.error.is_none())
    }

    /// Each member's error, and "did not answer" for those missing: Consul's `Messages`.
    pub fn messages(&self) -> BTreeMap<String, String> {
        let mut out: BTreeMap<String, String> = self
            .answers
            .iter()
            .filter_map(|(n, a)| Some((n.clone(), a.error.clone()?)))
            .collect();
        for n in &self.missing {
            out.insert(n.clone(), "did not answer in time".into());
        }
        out
    }

    /// Each key with the number of members that hold it: Consul's `Keys`.
    pub fn keys(&self) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for a in self.answers.values() {
            for k in &a.keys {
                *out.entry(k.clone()).or_insert(0) += 1;
            }
        }
        out
    }

    /// Each primary key with the number of members sealing with it: Consul's `PrimaryKeys`.
    pub fn primary_keys(&self) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for a in self.answers.values() {
            if let Some(k) = a.keys.first() {
                *out.entry(k.clone()).or_insert(0) += 1;
            }
        }
        out
    }
}

/// A member's answer being put together from its parts.
#[derive(Default)]
struct Partial {
    error: Option<String>,
    /// One slot per part.
    parts: Vec<Option<Vec<[u8; KEY_LEN]>>>,
}

/// Whether a reply was taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Taken {
    /// A new part of an answer expected.
    Yes,
    /// Not for this query, from a member not asked, a part already had, or inconsistent.
    Stale,
}

/// The initiator's query under way: who was asked, what came back.
pub struct Pending {
    /// The query's id.
    pub id: u64,
    /// What is asked.
    pub op: KeyringOp,
    /// The key, for every operation but `List`.
    pub key: Option<[u8; KEY_LEN]>,
    /// When unanswered members stop being waited for.
    pub deadline: Instant,
    /// Each member asked, by name, with its gossip address.
    pub targets: BTreeMap<String, std::net::SocketAddr>,
    partial: BTreeMap<String, Partial>,
    done: BTreeMap<String, MemberAnswer>,
    /// Members known failed.
    pub failed: Vec<String>,
}

impl Pending {
    /// A query of `targets`; nobody answered yet.
    pub fn new(
        id: u64,
        op: KeyringOp,
        key: Option<[u8; KEY_LEN]>,
        deadline: Instant,
        targets: BTreeMap<String, std::net::SocketAddr>,
        failed: Vec<String>,
    ) -> Pending {
        Pending {
            id,
            op,
            key,
            deadline,
            targets,
            partial: BTreeMap::new(),
            done: BTreeMap::new(),
            failed,
        }
    }

    /// Records the initiator's own answer.
    pub fn answer(&mut self, name: &str, answer: MemberAnswer) {
        self.done.insert(name.to_string(), answer);
    }

    /// Takes one reply datagram.
    pub fn take(
        &mut self,
        id: u64,
        name: &str,
        error: Option<String>,
        part: u8,
        parts: u8,
        keys: Vec<[u8; KEY_LEN]>,
    ) -> Taken {
        if id != self.id || !self.targets.contains_key(name) || self.done.contains_key(name) {
            return Taken::Stale;
        }
        let p = self.partial.entry(name.to_string()).or_default();
        if p.parts.is_empty() {
            p.parts = vec![None; usize::from(parts)];
            p.error = error.clone();
        }
        if p.parts.len() != usize::from(parts) || p.error != error {
            return Taken::Stale;
        }
        let total: usize = p.parts.iter().flatten().map(Vec::len).sum();
        if total + keys.len() > MAX_KEYS {
            return Taken::Stale;
        }
        match p.parts.get_mut(usize::from(part)) {
            Some(slot @ None) => *slot = Some(keys),
            _ => return Taken::Stale,
        }
        if p.parts.iter().all(Option::is_some) {
            let p = self.partial.remove(name).unwrap_or_default();
            let keys = p
                .parts
                .into_iter()
                .flatten()
                .flatten()
                .map(|k| BASE64.encode(k))
                .collect();
            self.done.insert(
                name.to_string(),
                MemberAnswer {
                    error: p.error,
                    keys,
                },
            );
        }
        Taken::Yes
    }

    /// Members asked whose answer is not complete yet.
    pub fn unanswered(&self) -> impl Iterator<Item = (&String, &std::net::SocketAddr)> {
        self.targets
            .iter()
            .filter(|(n, _)| !self.done.contains_key(*n))
    }

    /// Whether every member asked answered in full.
    pub fn complete(&self) -> bool {
        self.unanswered().next().is_none()
    }

    /// The report, at the deadline or once complete.
    pub fn finish(self) -> KeyringReport {
        let missing = self
            .targets
            .keys()
            .filter(|n| !self.done.contains_key(*n))
            .cloned()
            .collect();
        KeyringReport {
            id: self.id,
            op: self.op,
            answers: self.done,
            missing,
            failed: self.failed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::gossip::MIN_PACKET_SIZE;

    /// The largest reply datagram, a whole keyring's worth of parts at the smallest packet
    /// size, each part within the packet.
    #[test]
    fn the_largest_reply_fits_the_smallest_packet_in_parts() {
        let per = keys_per_part(MIN_PACKET_SIZE);
        assert!(per >= 1);
        assert!(MAX_KEYS.div_ceil(per) <= MAX_KEYS);
        let reply = KeyringMessage::Reply {
            id: u64::MAX,
            name: "n".repeat(MAX_NAME),
            error: Some(error_text(&"é".repeat(MAX_ERROR_TEXT))),
            part: 0,
            parts: 16,
            keys: vec![[0xff; KEY_LEN]; per],
        };
        let bytes = reply.encode().unwrap();
        assert!(
            bytes.len() + SEALED_OVERHEAD <= MIN_PACKET_SIZE,
            "{} bytes",
            bytes.len()
        );
        assert!(bytes.len() <= REPLY_OVERHEAD + per * KEY_LEN);
        assert_eq!(KeyringMessage::decode(&bytes), Some(reply));
    }

    #[test]
    fn malformed_and_out_of_bounds_messages_do_not_decode() {
        let bad_parts = KeyringMessage::Reply {
            id: 1,
            name: "a".into(),
            error: None,
            part: 2,
            parts: 2,
            keys: vec![],
        };
        assert_eq!(KeyringMessage::decode(&bad_parts.encode().unwrap()), None);
        let no_key = KeyringMessage::Query {
            id: 1,
            op: KeyringOp::Use,
            key: None,
        };
        assert_eq!(KeyringMessage::decode(&no_key.encode().unwrap()), None);
        assert_eq!(KeyringMessage::decode(&[]), None);
        assert_eq!(KeyringMessage::decode(&[7, 1, 2]), None);
    }

    #[test]
    fn an_answer_in_parts_is_put_together_once_and_duplicates_are_stale() {
        let now = Instant::now();
        let targets = [("a".to_string(), "10.0.0.1:8301".parse().unwrap())].into();
        let mut p = Pending::new(5, KeyringOp::List, None, now, targets, vec![]);
        assert_eq!(p.take(4, "a", None, 0, 2, vec![[1; 32]]), Taken::Stale);
        assert_eq!(p.take(5, "b", None, 0, 2, vec![[1; 32]]), Taken::Stale);
        assert_eq!(p.take(5, "a", None, 1, 2, vec![[2; 32]]), Taken::Yes);
        assert_eq!(p.take(5, "a", None, 1, 2, vec![[2; 32]]), Taken::Stale);
        assert!(!p.complete());
        assert_eq!(p.take(5, "a", None, 0, 2, vec![[1; 32]]), Taken::Yes);
        assert!(p.complete());
        assert_eq!(p.take(5, "a", None, 0, 2, vec![[1; 32]]), Taken::Stale);
        let r = p.finish();
        assert!(r.ok());
        assert_eq!(
            r.answers["a"].keys,
            vec![BASE64.encode([1u8; 32]), BASE64.encode([2u8; 32])]
        );
        assert_eq!(r.num_nodes(), 1);
    }
}
