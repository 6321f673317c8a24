//! The member table as Consul shows it: one entry per node name with its status (alive,
//! left or failed, suspicion as a flag on alive), built from foca's notifications, and the
//! events each change makes. Failed and left members are reaped after their timeouts.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::node::{Node, Tags};

/// A member's status as Consul reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MemberStatus {
    /// Reachable, or suspected but not yet declared failed (see [`Member::suspect`]).
    Alive,
    /// Left gracefully.
    Left,
    /// Declared failed: it stopped answering probes, direct and indirect, and did not
    /// refute the suspicion in time.
    Failed,
}

impl MemberStatus {
    /// Consul's `Status` number in `/v1/agent/members`: 1 alive, 3 left, 4 failed.
    pub fn consul_code(self) -> u8 {
        match self {
            MemberStatus::Alive => 1,
            MemberStatus::Left => 3,
            MemberStatus::Failed => 4,
        }
    }

    /// The word `consul members` prints: `alive`, `left`, `failed`.
    pub fn as_str(self) -> &'static str {
        match self {
            MemberStatus::Alive => "alive",
            MemberStatus::Left => "left",
            MemberStatus::Failed => "failed",
        }
    }
}

/// A member as this node sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// Its current identity (name, address, generation, tags).
    pub node: Node,
    /// Alive, left or failed.
    pub status: MemberStatus,
    /// Alive but suspected: some member's probe failed and it has not refuted yet. Consul
    /// shows such a member as alive.
    pub suspect: bool,
    /// When `status` last changed, on the core's clock.
    pub since: Instant,
}

impl Member {
    /// Node name.
    pub fn name(&self) -> &str {
        &self.node.name
    }

    /// Gossip address.
    pub fn addr(&self) -> SocketAddr {
        self.node.addr
    }

    /// Tags.
    pub fn tags(&self) -> &Tags {
        &self.node.tags
    }
}

/// What happened to a member.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// Became alive: first seen, or back after it failed or left (serf's member-join).
    Joined,
    /// Suspected: a probe of it failed; still alive until declared failed.
    Suspect,
    /// Refuted a suspicion: alive and no longer suspect.
    Alive,
    /// Declared failed (serf's member-failed).
    Failed,
    /// Left gracefully (serf's member-leave).
    Left,
    /// Its tags or address changed while alive (serf's member-update).
    Updated,
    /// Forgotten after `reap_after` (failed) or `tombstone_after` (left) (serf's
    /// member-reap).
    Reaped,
}

/// A change to one member, with the member as it is after the change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberEvent {
    /// What happened.
    pub kind: EventKind,
    /// The member after it happened (for `Reaped`, as it was when forgotten).
    pub member: Member,
}

/// The remote members, by name. Bounded by the members foca knows; entries of failed and
/// left members go after their reap timeouts.
#[derive(Debug, Default)]
pub(crate) struct MemberTable {
    entries: BTreeMap<String, Entry>,
    /// (reap deadline, name) of every failed or left entry.
    reaps: BTreeSet<(Instant, String)>,
    /// Names claimed by a second live address, refused (as Consul does).
    pub(crate) name_conflicts: u64,
}

#[derive(Debug)]
struct Entry {
    member: Member,
    /// When a failed or left member is to be forgotten.
    reap_at: Option<Instant>,
    /// Since when this member has been suspect, as far as this member knows.
    suspect_since: Option<Instant>,
}

impl MemberTable {
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Member> {
        self.entries.values().map(|e| &e.member)
    }

    pub(crate) fn get(&self, name: &str) -> Option<&Member> {
        self.entries.get(name).map(|e| &e.member)
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Members whose status is `status`.
    pub(crate) fn with_status(&self, status: MemberStatus) -> impl Iterator<Item = &Member> {
        self.iter().filter(move |m| m.status == status)
    }

    /// `node` is active (alive or suspect) in foca.
    pub(crate) fn up(&mut self, node: &Node, now: Instant, out: &mut Vec<MemberEvent>) {
        let Some(e) = self.entries.get_mut(&node.name) else {
            let member = Member {
                node: node.clone(),
                status: MemberStatus::Alive,
                suspect: false,
                since: now,
            };
            out.push(MemberEvent {
                kind: EventKind::Joined,
                member: member.clone(),
            });
            self.entries.insert(
                node.name.clone(),
                Entry {
                    member,
                    reap_at: None,
                    suspect_since: None,
                },
            );
            return;
        };
        let m = &mut e.member;
        if m.status == MemberStatus::Alive && m.node.addr != node.addr {
            // A second live node claims the name: the first keeps it.
            self.name_conflicts += 1;
            tracing::warn!(
                "gossip: node name {:?} claimed by {} while {} has it; ignored",
                node.name,
                node.addr,
                m.node.addr
            );
            return;
        }
        let changed = identity_changed(&m.node, node);
        m.node = node.clone();
        if m.status != MemberStatus::Alive {
            m.status = MemberStatus::Alive;
            m.suspect = false;
            e.suspect_since = None;
            m.since = now;
            let member = m.clone();
            if let Some(at) = e.reap_at.take() {
                self.reaps.remove(&(at, node.name.clone()));
            }
            out.push(MemberEvent {
                kind: EventKind::Joined,
                member,
            });
        } else if changed {
            out.push(MemberEvent {
                kind: EventKind::Updated,
                member: m.clone(),
            });
        }
    }

    /// `node` went down in foca: failed, or left if it was leaving.
    pub(crate) fn down(
        &mut self,
        node: &Node,
        now: Instant,
        (reap_after, tombstone_after): (Duration, Duration),
        out: &mut Vec<MemberEvent>,
    ) {
        let Some(e) = self.entries.get_mut(&node.name) else {
            return;
        };
        let m = &mut e.member;
        if m.node.addr != node.addr {
            return; // Another address holds the name now.
        }
        let (status, kind, after) = if node.leaving {
            (MemberStatus::Left, EventKind::Left, tombstone_after)
        } else {
            (MemberStatus::Failed, EventKind::Failed, reap_after)
        };
        m.node = node.clone();
        m.suspect = false;
        e.suspect_since = None;
        if m.status == status {
            return;
        }
        m.status = status;
        m.since = now;
        let member = m.clone();
        if let Some(at) = e.reap_at.take() {
            self.reaps.remove(&(at, node.name.clone()));
        }
        let at = now.checked_add(after).unwrap_or(now);
        e.reap_at = Some(at);
        self.reaps.insert((at, node.name.clone()));
        out.push(MemberEvent { kind, member });
    }

    /// foca replaced identity `old` with `new` (same address). Same name: the entry takes
    /// the new identity (an `Updated` event if alive and its tags or address changed). A new
    /// name: the old name's node is gone (failed), the new name takes over.
    pub(crate) fn rename(
        &mut self,
        old: &Node,
        new: &Node,
        now: Instant,
        reap: (Duration, Duration),
        out: &mut Vec<MemberEvent>,
    ) {
        if old.name == new.name {
            if let Some(e) = self.entries.get_mut(&new.name)
                && e.member.node.addr == old.addr
            {
                let m = &mut e.member;
                let changed = identity_changed(&m.node, new);
                m.node = new.clone();
                if changed && m.status == MemberStatus::Alive {
                    out.push(MemberEvent {
                        kind: EventKind::Updated,
                        member: m.clone(),
                    });
                }
            }
            return;
        }
        let was_alive = self
            .get(&old.name)
            .is_some_and(|m| m.node.addr == old.addr && m.status == MemberStatus::Alive);
        if was_alive {
            let mut gone = old.clone();
            gone.leaving = false;
            self.down(&gone, now, reap, out);
            self.up(new, now, out);
        }
    }

    /// Sets the suspect flag of the entry holding `node`'s identity; an event when it flips.
    pub(crate) fn set_suspect(
        &mut self,
        node: &Node,
        suspect: bool,
        now: Instant,
        out: &mut Vec<MemberEvent>,
    ) {
        let Some(e) = self.entries.get_mut(&node.name) else {
            return;
        };
        let m = &mut e.member;
        if m.node != *node || m.status != MemberStatus::Alive || m.suspect == suspect {
            return;
        }
        m.suspect = suspect;
        e.suspect_since = suspect.then_some(now);
        out.push(MemberEvent {
            kind: if suspect {
                EventKind::Suspect
            } else {
                EventKind::Alive
            },
            member: m.clone(),
        });
    }

    /// Since when the member holding `node`'s identity has been suspect.
    pub(crate) fn suspect_since(&self, node: &Node) -> Option<Instant> {
        let e = self.entries.get(&node.name)?;
        if e.member.node == *node && e.member.suspect {
            e.suspect_since
        } else {
            None
        }
    }

    /// Forgets failed and left members whose time is up; returns the next deadline.
    pub(crate) fn reap(&mut self, now: Instant, out: &mut Vec<MemberEvent>) -> Option<Instant> {
        while let Some((deadline, name)) = self.reaps.first().cloned() {
            if deadline > now {
                return Some(deadline);
            }
            self.reaps.pop_first();
            if let Some(e) = self.entries.remove(&name) {
                out.push(MemberEvent {
                    kind: EventKind::Reaped,
                    member: e.member,
                });
            }
        }
        None
    }
}

/// Whether a member's visible identity changed: tags or address (not the generation alone).
fn identity_changed(old: &Node, new: &Node) -> bool {
    old.tags != new.tags || old.addr != new.addr
}
