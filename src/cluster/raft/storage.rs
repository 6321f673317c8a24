//! A server's Raft state on disk, in its data dir: `raft.log`, one append-only file of
//! checksummed records (entries and hard state), and `raft.snap`, the latest snapshot.
//!
//! The contract with the core is *persist, then acknowledge*: [`DiskLog::persist`] returns
//! only after the bytes are fsynced, and only then may the core send the messages that
//! promise them ([`super::RaftNode::persisted`]).
//!
//! Crash safety. Every [`Persist`] is one record (`marker, length, CRC-32C, postcard`)
//! written with one `write` and one fsync, so a crash tears at most the last record: on open
//! a damaged last record is cut off with a warning (it was never acknowledged). A damaged
//! record with an intact one after it is corruption in the middle, and a snapshot or log
//! header that does not check out is unreadable: both refuse to open rather than start with
//! wrong data. Snapshots and log rewrites go to a temporary file, fsync, rename, fsync the
//! dir; the log header names the snapshot it continues, and a log left behind by a crash
//! between the two renames is reconciled on open.
//!
//! Bounds: a record is at most [`MAX_RECORD`] bytes; the log holds the entries since the
//! last snapshot (the core snapshots after about `snapshot_every` applied entries once they
//! hold half to all of the last snapshot's size; the driver writes that snapshot in the
//! background).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::wire::{MAX_MESSAGE, WireEntry, WireHardState, WireSnapshot};

/// Largest record accepted when reading the log back (a batch of entries of at most one
/// message, plus slack).
pub const MAX_RECORD: usize = MAX_MESSAGE + (1 << 20);

const LOG_FILE: &str = "raft.log";
const SNAP_FILE: &str = "raft.snap";
const LOG_MAGIC: &[u8; 8] = b"OPRAFTL1";
const SNAP_MAGIC: &[u8; 8] = b"OPRAFTS1";
/// Starts every record, so that after a damaged record the reader can look for a later
/// intact one (which tells corruption in the middle from a torn tail).
const RECORD_MARKER: u32 = 0x7261_6674;
const RECORD_HEADER: usize = 12;
/// magic, base index, base term, CRC of those.
const LOG_HEADER: usize = 8 + 8 + 8 + 4;

const CRC: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISCSI);

/// What to make durable, from one `Ready` of the core (or a compaction).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Persist {
    /// When set, the log is *replaced*: this snapshot, then `entries`.
    pub snapshot: Option<WireSnapshot>,
    /// Without a snapshot: appended; the first one's index may be at or below the last
    /// index already stored, which replaces that entry and every later one (a new leader
    /// overwrote them).
    pub entries: Vec<WireEntry>,
    /// The new term, vote and commit index, if they changed.
    pub hard_state: Option<WireHardState>,
    /// Whether this must reach the disk before the caller goes on (false when only the
    /// commit index moved: that one is re-learnt from the leader after a crash).
    pub must_sync: bool,
    /// The snapshot is this server's own compaction, which nothing waits for: a driver
    /// may write it with [`write_snapshot`] in the background while the log goes on
    /// growing, and then start the log after it with [`DiskLog::rewrite_log`] (a crash in
    /// between leaves a log that continues an older snapshot; [`DiskLog::open`]
    /// reconciles it). Applied at once, the `Persist` means the same.
    pub background: bool,
}

impl Persist {
    /// Nothing to write.
    pub fn is_empty(&self) -> bool {
        self.snapshot.is_none() && self.entries.is_empty() && self.hard_state.is_none()
    }
}

/// What [`DiskLog::open`] found: the state to start the core from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recovered {
    /// Term, vote and commit index (the commit at least the snapshot's index).
    pub hard_state: WireHardState,
    /// The latest snapshot, if any.
    pub snapshot: Option<WireSnapshot>,
    /// The entries after the snapshot, contiguous.
    pub entries: Vec<WireEntry>,
    /// What was repaired (a torn tail cut off), for the log.
    pub warnings: Vec<String>,
}

impl Recovered {
    /// Whether this server has never been part of a cluster (no state at all).
    pub fn is_empty(&self) -> bool {
        self.snapshot.is_none() && self.entries.is_empty() && self.hard_state == Default::default()
    }

    /// What [`DiskLog::open`] gives after `p` was persisted on top of this state: the
    /// in-memory model of the disk, which the simulator uses as its disk.
    pub fn apply_persist(&mut self, p: &Persist) {
        if let Some(hs) = p.hard_state
            && (p.must_sync || p.snapshot.is_some() || !p.entries.is_empty())
        {
            self.hard_state = hs;
        }
        if let Some(s) = &p.snapshot {
            self.hard_state.commit = self.hard_state.commit.max(s.index);
            self.hard_state.term = self.hard_state.term.max(s.term);
            self.snapshot = Some(s.clone());
            self.entries = p.entries.clone();
            return;
        }
        if let Some(first) = p.entries.first() {
            let base = self.snapshot.as_ref().map_or(0, |s| s.index);
            self.entries
                .truncate(first.index.saturating_sub(base + 1) as usize);
            self.entries.extend(p.entries.iter().cloned());
        }
    }

    /// Index of the last entry (or of the snapshot).
    pub fn last_index(&self) -> u64 {
        self.entries
            .last()
            .map(|e| e.index)
            .or(self.snapshot.as_ref().map(|s| s.index))
            .unwrap_or(0)
    }
}

/// Why the Raft state could not be read or written. On a read error nothing was changed on
/// disk; on a write error the last persist may or may not be durable, and the server must
/// stop (the core must not go on as if it were).
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error(
        "{path}: {what}; refusing to start with possibly wrong Raft state (restore the file from a backup, or remove the data dir and rejoin as a new server)"
    )]
    Corrupt { path: PathBuf, what: String },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StorageError + '_ {
    move |source| StorageError::Io {
        path: path.to_path_buf(),
        source,
    }
}

#[derive(Serialize, Deserialize)]
struct Record {
    entries: Vec<WireEntry>,
    hard_state: Option<WireHardState>,
}

/// The open log and snapshot files of one data dir.
pub struct DiskLog {
    dir: PathBuf,
    log: File,
    /// Last hard state written, for rewrites.
    hard_state: WireHardState,
}

impl std::fmt::Debug for DiskLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiskLog").field("dir", &self.dir).finish()
    }
}

impl DiskLog {
    /// Opens (or creates) the Raft state in `dir`, repairing a torn tail (reported in
    /// [`Recovered::warnings`]) and refusing anything else that does not check out.
    pub fn open(dir: &Path) -> Result<(DiskLog, Recovered), StorageError> {
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        let log_path = dir.join(LOG_FILE);
        let snap_path = dir.join(SNAP_FILE);
        let snapshot = read_snapshot(&snap_path)?;
        let (base, records, mut warnings, rewrite) = match fs::read(&log_path) {
            Ok(bytes) => {
                let (base, records, warnings) = read_log(&log_path, &bytes)?;
                let torn = !warnings.is_empty();
                (base, records, warnings, torn)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => ((0, 0), Vec::new(), Vec::new(), true),
            Err(e) => return Err(io_err(&log_path)(e)),
        };
        let corrupt = |what: String| StorageError::Corrupt {
            path: log_path.clone(),
            what,
        };

        // Replay: a batch replaces everything from its first index on.
        let mut entries: Vec<WireEntry> = Vec::new();
        let mut hard_state = WireHardState::default();
        for r in records {
            if let Some(first) = r.entries.first().map(|e| e.index) {
                let last = entries.last().map_or(base.0, |e| e.index);
                if first <= base.0 || first > last + 1 {
                    return Err(corrupt(format!(
                        "a record appends entries from index {first} to a log that ends at {last} (starting after {})",
                        base.0
                    )));
                }
                entries.truncate((first - base.0 - 1) as usize);
                for (i, e) in r.entries.into_iter().enumerate() {
                    if e.index != first + i as u64 {
                        return Err(corrupt(format!(
                            "a record's entries are not contiguous at index {}",
                            e.index
                        )));
                    }
                    entries.push(e);
                }
            }
            if let Some(hs) = r.hard_state {
                hard_state = hs;
            }
        }

        // Reconcile the log with the snapshot it continues.
        let mut rewrite = rewrite;
        match &snapshot {
            None if base.0 != 0 => {
                return Err(StorageError::Corrupt {
                    path: snap_path,
                    what: format!(
                        "the log continues a snapshot at index {} but the snapshot file is missing",
                        base.0
                    ),
                });
            }
            None => {}
            Some(s) if (s.index, s.term) == base => {}
            Some(s) if s.index > base.0 => {
                // A crash came between writing the snapshot and rewriting the log: keep the
                // entries after it only if this log holds the snapshot's own entry.
                let at = entries.iter().position(|e| e.index == s.index);
                match at {
                    Some(i) if entries[i].term == s.term => {
                        entries.drain(..=i);
                    }
                    _ => entries.clear(),
                }
                rewrite = true;
            }
            Some(s) => {
                return Err(corrupt(format!(
                    "the log continues a snapshot at index {} term {}, but the snapshot file is at index {} term {}",
                    base.0, base.1, s.index, s.term
                )));
            }
        }
        if let Some(s) = &snapshot {
            hard_state.commit = hard_state.commit.max(s.index);
            hard_state.term = hard_state.term.max(s.term);
        }
        let last = entries
            .last()
            .map(|e| e.index)
            .or(snapshot.as_ref().map(|s| s.index))
            .unwrap_or(0);
        if hard_state.commit > last {
            return Err(corrupt(format!(
                "the hard state says entries up to {} are committed, but the log ends at {last}",
                hard_state.commit
            )));
        }
        for w in &warnings {
            tracing::warn!("{}: {w}", log_path.display());
        }
        let recovered = Recovered {
            hard_state,
            snapshot,
            entries,
            warnings: std::mem::take(&mut warnings),
        };
        let log = if rewrite {
            let base = recovered
                .snapshot
                .as_ref()
                .map_or((0, 0), |s| (s.index, s.term));
            write_log(dir, base, &recovered.entries, hard_state)?
        } else {
            OpenOptions::new()
                .append(true)
                .open(&log_path)
                .map_err(io_err(&log_path))?
        };
        Ok((
            DiskLog {
                dir: dir.to_path_buf(),
                log,
                hard_state,
            },
            recovered,
        ))
    }

    /// The data dir.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Replaces the log with one that continues the snapshot at `base` (index, term) with
    /// `entries` (after [`write_snapshot`] of a background compaction made it durable).
    pub fn rewrite_log(
        &mut self,
        base: (u64, u64),
        entries: &[WireEntry],
    ) -> Result<(), StorageError> {
        self.log = write_log(&self.dir, base, entries, self.hard_state)?;
        Ok(())
    }

    /// Makes `p` durable before returning: every write is fsynced. A `p` that only moves
    /// the commit index (`must_sync` false) is not written at all (the commit index is
    /// re-learnt from the leader after a restart; the next record carries it anyway), so that
    /// no unsynced record can precede a synced one and look like damage in the middle.
    pub fn persist(&mut self, p: &Persist) -> Result<(), StorageError> {
        if let Some(hs) = p.hard_state {
            self.hard_state = hs;
        }
        if let Some(s) = &p.snapshot {
            write_snapshot(&self.dir, s)?;
            self.log = write_log(&self.dir, (s.index, s.term), &p.entries, self.hard_state)?;
            return Ok(());
        }
        if !p.must_sync && p.entries.is_empty() {
            return Ok(());
        }
        let path = self.dir.join(LOG_FILE);
        let rec = encode_record(&Record {
            entries: p.entries.clone(),
            hard_state: Some(self.hard_state),
        });
        self.log.write_all(&rec).map_err(io_err(&path))?;
        self.log.sync_data().map_err(io_err(&path))?;
        Ok(())
    }
}

fn encode_record(r: &Record) -> Vec<u8> {
    let payload = postcard::to_allocvec(r).expect("plain structs always serialize");
    let len = payload.len() as u32;
    let mut digest = CRC.digest();
    digest.update(&len.to_le_bytes());
    digest.update(&payload);
    let mut out = Vec::with_capacity(RECORD_HEADER + payload.len());
    out.extend_from_slice(&RECORD_MARKER.to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&digest.finalize().to_le_bytes());
    out.extend_from_slice(&payload);
    out
}

/// The record at the start of `bytes` and its length, or `None` if there is no intact one.
fn decode_record(bytes: &[u8]) -> Option<(Record, usize)> {
    let header = bytes.get(..RECORD_HEADER)?;
    let word =
        |i: usize| u32::from_le_bytes([header[i], header[i + 1], header[i + 2], header[i + 3]]);
    if word(0) != RECORD_MARKER {
        return None;
    }
    let len = word(4) as usize;
    if len > MAX_RECORD {
        return None;
    }
    let payload = bytes.get(RECORD_HEADER..RECORD_HEADER + len)?;
    let mut digest = CRC.digest();
    digest.update(&header[4..8]);
    digest.update(payload);
    if digest.finalize() != word(8) {
        return None;
    }
    let record = postcard::from_bytes(payload).ok()?;
    Some((record, RECORD_HEADER + len))
}

type Base = (u64, u64);

fn log_header(base: Base) -> Vec<u8> {
    let mut h = Vec::with_capacity(LOG_HEADER);
    h.extend_from_slice(LOG_MAGIC);
    h.extend_from_slice(&base.0.to_le_bytes());
    h.extend_from_slice(&base.1.to_le_bytes());
    let crc = CRC.checksum(&h);
    h.extend_from_slice(&crc.to_le_bytes());
    h
}

fn read_log(path: &Path, bytes: &[u8]) -> Result<(Base, Vec<Record>, Vec<String>), StorageError> {
    let corrupt = |what: String| StorageError::Corrupt {
        path: path.to_path_buf(),
        what,
    };
    let Some(h) = bytes.get(..LOG_HEADER) else {
        return Err(corrupt(format!(
            "the log header is cut short ({} of {LOG_HEADER} bytes)",
            bytes.len()
        )));
    };
    let u64_at = |i: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&h[i..i + 8]);
        u64::from_le_bytes(b)
    };
    let crc = u32::from_le_bytes([h[24], h[25], h[26], h[27]]);
    if &h[..8] != LOG_MAGIC || CRC.checksum(&h[..24]) != crc {
        return Err(corrupt(
            "the log header is not an outpost Raft log header (bad magic or checksum)".into(),
        ));
    }
    let base = (u64_at(8), u64_at(16));
    let mut records = Vec::new();
    let mut warnings = Vec::new();
    let mut at = LOG_HEADER;
    while at < bytes.len() {
        match decode_record(&bytes[at..]) {
            Some((r, n)) => {
                records.push(r);
                at += n;
            }
            None => {
                // Torn tail, or damage in the middle? Only the latter leaves an intact record
                // after it.
                let later = (at + 1..bytes.len()).find(|&i| {
                    bytes[i..].starts_with(&RECORD_MARKER.to_le_bytes())
                        && decode_record(&bytes[i..]).is_some()
                });
                if let Some(i) = later {
                    return Err(corrupt(format!(
                        "the record at byte {at} is damaged but an intact record follows at byte {i}: the log is corrupt in the middle"
                    )));
                }
                warnings.push(format!(
                    "cut off a torn last record at byte {at} ({} bytes; never acknowledged)",
                    bytes.len() - at
                ));
                break;
            }
        }
    }
    Ok((base, records, warnings))
}

/// Writes `bytes` to `dir/name` atomically: temporary file, fsync, rename, fsync the dir.
fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> Result<File, StorageError> {
    let tmp = dir.join(format!("{name}.tmp"));
    let path = dir.join(name);
    let mut f = File::create(&tmp).map_err(io_err(&tmp))?;
    f.write_all(bytes).map_err(io_err(&tmp))?;
    f.sync_all().map_err(io_err(&tmp))?;
    fs::rename(&tmp, &path).map_err(io_err(&path))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))?;
    OpenOptions::new()
        .append(true)
        .open(&path)
        .map_err(io_err(&path))
}

fn write_log(
    dir: &Path,
    base: Base,
    entries: &[WireEntry],
    hard_state: WireHardState,
) -> Result<File, StorageError> {
    let mut bytes = log_header(base);
    bytes.extend_from_slice(&encode_record(&Record {
        entries: entries.to_vec(),
        hard_state: Some(hard_state),
    }));
    write_atomically(dir, LOG_FILE, &bytes)
}

/// Writes `s` as the data dir's snapshot file (a temporary file, fsync, rename, fsync the
/// dir). Touches nothing else, so it may run beside [`DiskLog::persist`] appends (never
/// beside a persist that carries a snapshot).
pub fn write_snapshot(dir: &Path, s: &WireSnapshot) -> Result<(), StorageError> {
    let payload = postcard::to_allocvec(s).expect("plain structs always serialize");
    let mut bytes = Vec::with_capacity(payload.len() + 20);
    bytes.extend_from_slice(SNAP_MAGIC);
    bytes.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    bytes.extend_from_slice(&CRC.checksum(&payload).to_le_bytes());
    bytes.extend_from_slice(&payload);
    write_atomically(dir, SNAP_FILE, &bytes).map(drop)
}

fn read_snapshot(path: &Path) -> Result<Option<WireSnapshot>, StorageError> {
    let mut f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(path)(e)),
    };
    let mut bytes = Vec::new();
    f.read_to_end(&mut bytes).map_err(io_err(path))?;
    let corrupt = |what: &str| StorageError::Corrupt {
        path: path.to_path_buf(),
        what: format!("the snapshot is unreadable: {what}"),
    };
    if bytes.len() < 20 || &bytes[..8] != SNAP_MAGIC {
        return Err(corrupt(
            "not an outpost Raft snapshot (bad magic or cut short)",
        ));
    }
    let mut len = [0u8; 8];
    len.copy_from_slice(&bytes[8..16]);
    let len = u64::from_le_bytes(len);
    let crc = u32::from_le_bytes([bytes[16], bytes[17], bytes[18], bytes[19]]);
    let payload = &bytes[20..];
    if payload.len() as u64 != len {
        return Err(corrupt(&format!(
            "its header says {len} bytes but {} follow",
            payload.len()
        )));
    }
    if CRC.checksum(payload) != crc {
        return Err(corrupt("checksum mismatch"));
    }
    postcard::from_bytes(payload)
        .map(Some)
        .map_err(|e| corrupt(&e.to_string()))
}

#[cfg(test)]
mod tests;
