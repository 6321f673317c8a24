//! The log as raft-rs reads it: an in-memory copy of what [`super::storage`] made durable
//! (hard state, latest snapshot, entries after it), implementing [`raft::Storage`].
//!
//! The core writes to it only after the shell has persisted the same data, so raft-rs never
//! sees an entry here that a crash could take away.

use raft::eraftpb::{ConfState, Entry, HardState, Snapshot};
use raft::{GetEntriesContext, RaftState, StorageError};

use super::storage::Recovered;
use super::wire::{WireEntry, WireSnapshot};

/// The durable Raft state of one server, in memory.
#[derive(Default)]
pub struct LogCache {
    hard_state: HardState,
    /// The membership as of the snapshot (what raft-rs starts from; it re-applies the conf
    /// changes after it as they are committed again).
    conf_state: ConfState,
    snapshot: Snapshot,
    /// Entries after the snapshot, contiguous.
    entries: Vec<Entry>,
}

fn store_err(e: StorageError) -> raft::Error {
    raft::Error::Store(e)
}

impl LogCache {
    /// The cache of what [`super::storage::DiskLog::open`] recovered.
    pub fn from_recovered(r: &Recovered) -> LogCache {
        let snapshot = r
            .snapshot
            .as_ref()
            .map(WireSnapshot::to_raft)
            .unwrap_or_default();
        LogCache {
            hard_state: r.hard_state.to_raft(),
            conf_state: snapshot.get_metadata().get_conf_state().clone(),
            snapshot,
            entries: r.entries.iter().map(WireEntry::to_raft).collect(),
        }
    }

    pub fn hard_state(&self) -> &HardState {
        &self.hard_state
    }

    pub fn set_hard_state(&mut self, hs: HardState) {
        self.hard_state = hs;
    }

    pub fn set_commit(&mut self, commit: u64) {
        self.hard_state.commit = commit;
    }

    /// The latest snapshot's index and term.
    pub fn snapshot_base(&self) -> (u64, u64) {
        let m = self.snapshot.get_metadata();
        (m.index, m.term)
    }

    /// Entries after the snapshot.
    pub fn entries_after_snapshot(&self) -> &[Entry] {
        &self.entries
    }

    fn first(&self) -> u64 {
        self.snapshot.get_metadata().index + 1
    }

    fn last(&self) -> u64 {
        self.entries
            .last()
            .map_or(self.snapshot.get_metadata().index, |e| e.index)
    }

    /// Appends entries; the first may replace the tail from its index on (raft-rs never
    /// hands over an entry the snapshot covers, or a gap).
    pub fn append(&mut self, ents: &[Entry]) {
        let Some(first) = ents.first() else {
            return;
        };
        let keep = first.index.saturating_sub(self.first()) as usize;
        self.entries.truncate(keep);
        self.entries.extend_from_slice(ents);
    }

    /// Replaces the whole log by `snap` (a snapshot from the leader).
    pub fn apply_snapshot(&mut self, snap: Snapshot) {
        let meta = snap.get_metadata();
        self.hard_state.commit = self.hard_state.commit.max(meta.index);
        self.hard_state.term = self.hard_state.term.max(meta.term);
        self.conf_state = meta.get_conf_state().clone();
        self.entries.clear();
        self.snapshot = snap;
    }

    /// Installs `snap`, a snapshot of the applied state made here, and drops the entries it
    /// covers.
    pub fn compact_to(&mut self, snap: Snapshot) {
        let index = snap.get_metadata().index;
        let drop = index.saturating_sub(self.first() - 1) as usize;
        self.entries.drain(..drop.min(self.entries.len()));
        self.conf_state = snap.get_metadata().get_conf_state().clone();
        self.snapshot = snap;
    }
}

impl raft::Storage for LogCache {
    fn initial_state(&self) -> raft::Result<RaftState> {
        Ok(RaftState::new(
            self.hard_state.clone(),
            self.conf_state.clone(),
        ))
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        if low < self.first() {
            return Err(store_err(StorageError::Compacted));
        }
        if high > self.last() + 1 || low > high {
            return Err(store_err(StorageError::Unavailable));
        }
        let offset = self.first();
        let mut ents = self.entries[(low - offset) as usize..(high - offset) as usize].to_vec();
        raft::util::limit_size(&mut ents, max_size.into());
        Ok(ents)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        let meta = self.snapshot.get_metadata();
        if idx == meta.index {
            return Ok(meta.term);
        }
        if idx < self.first() {
            return Err(store_err(StorageError::Compacted));
        }
        if idx > self.last() {
            return Err(store_err(StorageError::Unavailable));
        }
        Ok(self.entries[(idx - self.first()) as usize].term)
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.first())
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.last())
    }

    fn snapshot(&self, request_index: u64, _to: u64) -> raft::Result<Snapshot> {
        if self.snapshot.get_metadata().index < request_index {
            return Err(store_err(StorageError::SnapshotTemporarilyUnavailable));
        }
        Ok(self.snapshot.clone())
    }
}
