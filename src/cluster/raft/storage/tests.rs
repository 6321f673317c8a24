use super::*;
use crate::cluster::raft::wire::{WireConfState, WireEntryType};
use proptest::prelude::*;

fn entry(index: u64, term: u64) -> WireEntry {
    WireEntry {
        entry_type: WireEntryType::Normal,
        term,
        index,
        data: format!("cmd{index}@{term}").into_bytes(),
        context: vec![],
    }
}

fn entries(from: u64, to: u64, term: u64) -> Vec<WireEntry> {
    (from..=to).map(|i| entry(i, term)).collect()
}

fn append(log: &mut DiskLog, es: Vec<WireEntry>, commit: u64) {
    let term = es.last().map_or(1, |e| e.term);
    log.persist(&Persist {
        snapshot: None,
        entries: es,
        hard_state: Some(WireHardState {
            term,
            vote: 1,
            commit,
        }),
        must_sync: true,
        background: false,
    })
    .unwrap();
}

fn snapshot(index: u64, term: u64) -> WireSnapshot {
    WireSnapshot {
        index,
        term,
        conf_state: WireConfState {
            voters: vec![1, 2, 3],
            ..Default::default()
        },
        data: bytes::Bytes::from_static(b"catalog"),
    }
}

fn log_len(dir: &Path) -> u64 {
    fs::metadata(dir.join(LOG_FILE)).unwrap().len()
}

#[test]
fn a_fresh_dir_opens_empty_and_persisted_entries_come_back() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, rec) = DiskLog::open(dir.path()).unwrap();
    assert!(rec.is_empty());
    append(&mut log, entries(1, 3, 1), 2);
    append(&mut log, entries(4, 5, 2), 4);
    drop(log);
    let (_, rec) = DiskLog::open(dir.path()).unwrap();
    assert_eq!(rec.entries, [entries(1, 3, 1), entries(4, 5, 2)].concat());
    assert_eq!(
        rec.hard_state,
        WireHardState {
            term: 2,
            vote: 1,
            commit: 4
        }
    );
    assert!(rec.warnings.is_empty());
}

#[test]
fn a_batch_at_a_lower_index_replaces_the_tail_as_a_new_leader_does() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = DiskLog::open(dir.path()).unwrap();
    append(&mut log, entries(1, 5, 1), 2);
    append(&mut log, entries(3, 4, 2), 2);
    drop(log);
    let (_, rec) = DiskLog::open(dir.path()).unwrap();
    assert_eq!(rec.entries, [entries(1, 2, 1), entries(3, 4, 2)].concat());
}

#[test]
fn a_commit_only_change_is_not_written_and_the_next_record_carries_it() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = DiskLog::open(dir.path()).unwrap();
    append(&mut log, entries(1, 2, 1), 0);
    let len = log_len(dir.path());
    let hs = WireHardState {
        term: 1,
        vote: 1,
        commit: 2,
    };
    log.persist(&Persist {
        hard_state: Some(hs),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(log_len(dir.path()), len);
    log.persist(&Persist {
        entries: entries(3, 3, 1),
        must_sync: true,
        background: false,
        ..Default::default()
    })
    .unwrap();
    drop(log);
    let (_, rec) = DiskLog::open(dir.path()).unwrap();
    assert_eq!(rec.hard_state, hs);
    assert_eq!(rec.last_index(), 3);
}

/// A crash between write and fsync leaves the last record cut short or garbled: it is cut
/// off with a warning, every earlier (acknowledged) record survives, and the repaired log
/// opens cleanly afterwards.
#[test]
fn a_torn_last_record_is_cut_off_with_a_warning_and_acknowledged_entries_survive() {
    for damage in ["truncate", "flip", "zeros"] {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = DiskLog::open(dir.path()).unwrap();
        append(&mut log, entries(1, 3, 1), 3);
        let acked = log_len(dir.path());
        append(&mut log, entries(4, 6, 1), 5);
        drop(log);
        let path = dir.path().join(LOG_FILE);
        let mut bytes = fs::read(&path).unwrap();
        match damage {
            "truncate" => bytes.truncate(acked as usize + 7),
            "flip" => {
                let last = bytes.len() - 2;
                bytes[last] ^= 0x40;
            }
            _ => {
                let n = bytes.len();
                bytes[n - 10..].fill(0);
            }
        }
        fs::write(&path, &bytes).unwrap();
        let (_, rec) = DiskLog::open(dir.path()).unwrap();
        assert_eq!(rec.entries, entries(1, 3, 1), "{damage}");
        assert_eq!(rec.hard_state.commit, 3, "{damage}");
        assert_eq!(rec.warnings.len(), 1, "{damage}");
        assert!(rec.warnings[0].contains("torn"), "{}", rec.warnings[0]);
        let (_, again) = DiskLog::open(dir.path()).unwrap();
        assert!(
            again.warnings.is_empty(),
            "{damage}: repaired on the first open"
        );
        assert_eq!(again.entries, entries(1, 3, 1));
    }
}

#[test]
fn damage_in_the_middle_of_the_log_refuses_to_open() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = DiskLog::open(dir.path()).unwrap();
    append(&mut log, entries(1, 3, 1), 1);
    append(&mut log, entries(4, 6, 1), 2);
    drop(log);
    let path = dir.path().join(LOG_FILE);
    let mut bytes = fs::read(&path).unwrap();
    // Inside the first record (the rewrite at creation is record 0, empty; then 1..3).
    bytes[LOG_HEADER + 40] ^= 1;
    fs::write(&path, &bytes).unwrap();
    let e = DiskLog::open(dir.path()).unwrap_err().to_string();
    assert!(e.contains("corrupt in the middle"), "{e}");
    assert!(e.contains("raft.log"), "{e}");
    // Nothing was repaired behind the operator's back.
    assert_eq!(fs::read(&path).unwrap(), bytes);
}

#[test]
fn a_damaged_log_header_refuses_to_open() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = DiskLog::open(dir.path()).unwrap();
    append(&mut log, entries(1, 1, 1), 1);
    drop(log);
    let path = dir.path().join(LOG_FILE);
    let mut bytes = fs::read(&path).unwrap();
    bytes[9] ^= 1;
    fs::write(&path, &bytes).unwrap();
    let e = DiskLog::open(dir.path()).unwrap_err().to_string();
    assert!(e.contains("header"), "{e}");
    fs::write(&path, &bytes[..5]).unwrap();
    let e = DiskLog::open(dir.path()).unwrap_err().to_string();
    assert!(e.contains("cut short"), "{e}");
}

#[test]
fn a_snapshot_replaces_the_log_and_both_come_back() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = DiskLog::open(dir.path()).unwrap();
    append(&mut log, entries(1, 10, 2), 10);
    log.persist(&Persist {
        snapshot: Some(snapshot(8, 2)),
        entries: entries(9, 10, 2),
        hard_state: None,
        must_sync: true,
        background: false,
    })
    .unwrap();
    append(&mut log, entries(11, 11, 3), 11);
    drop(log);
    let (_, rec) = DiskLog::open(dir.path()).unwrap();
    assert_eq!(rec.snapshot, Some(snapshot(8, 2)));
    assert_eq!(
        rec.entries,
        [entries(9, 10, 2), entries(11, 11, 3)].concat()
    );
    assert_eq!(rec.hard_state.commit, 11);
}

#[test]
fn an_unreadable_snapshot_refuses_to_open() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = DiskLog::open(dir.path()).unwrap();
    log.persist(&Persist {
        snapshot: Some(snapshot(5, 1)),
        must_sync: true,
        background: false,
        ..Default::default()
    })
    .unwrap();
    drop(log);
    let path = dir.path().join(SNAP_FILE);
    let good = fs::read(&path).unwrap();
    for (what, bytes) in [
        ("checksum", {
            let mut b = good.clone();
            let n = b.len() - 1;
            b[n] ^= 1;
            b
        }),
        ("follow", good[..good.len() - 1].to_vec()),
        ("magic", b"garbage and more garbage".to_vec()),
    ] {
        fs::write(&path, &bytes).unwrap();
        let e = DiskLog::open(dir.path()).unwrap_err().to_string();
        assert!(
            e.contains("snapshot is unreadable") && e.contains(what),
            "{e}"
        );
    }
    fs::remove_file(&path).unwrap();
    let e = DiskLog::open(dir.path()).unwrap_err().to_string();
    assert!(e.contains("snapshot file is missing"), "{e}");
}

/// A crash after the snapshot's rename but before the log's: the old log still holds the
/// entries the snapshot covers. Entries after it are kept when the log agrees with the
/// snapshot at its index, and dropped when it does not (they were a deposed leader's).
#[test]
fn a_crash_between_snapshot_and_log_rewrite_is_reconciled() {
    for (term_at_5, kept) in [(1, entries(6, 7, 1)), (9, vec![])] {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = DiskLog::open(dir.path()).unwrap();
        append(&mut log, entries(1, 7, 1), 4);
        drop(log);
        write_snapshot(dir.path(), &snapshot(5, term_at_5)).unwrap();
        let (_, rec) = DiskLog::open(dir.path()).unwrap();
        assert_eq!(rec.snapshot.as_ref().unwrap().index, 5);
        assert_eq!(rec.entries, kept);
        assert_eq!(rec.hard_state.commit, 5);
        // The log was rewritten to continue the snapshot.
        let (_, again) = DiskLog::open(dir.path()).unwrap();
        assert_eq!(again, rec);
    }
}

/// A background compaction: the snapshot file is written while appends go on, then the
/// log is rewritten to start after it. Cut anywhere, every appended entry comes back.
#[test]
fn a_background_snapshot_beside_appends_loses_nothing_wherever_it_stops() {
    for stop in ["after the snapshot", "after the rewrite"] {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = DiskLog::open(dir.path()).unwrap();
        append(&mut log, entries(1, 7, 1), 7);
        write_snapshot(dir.path(), &snapshot(5, 1)).unwrap();
        append(&mut log, entries(8, 9, 1), 9);
        if stop == "after the rewrite" {
            log.rewrite_log((5, 1), &entries(6, 9, 1)).unwrap();
            append(&mut log, entries(10, 10, 1), 10);
        }
        let len_before = log_len(dir.path());
        drop(log);
        let (_, rec) = DiskLog::open(dir.path()).unwrap();
        assert_eq!(rec.snapshot.as_ref().unwrap().index, 5, "{stop}");
        let last = if stop == "after the rewrite" { 10 } else { 9 };
        assert_eq!(rec.entries, entries(6, last, 1), "{stop}");
        if stop == "after the rewrite" {
            // The rewritten log no longer holds what the snapshot covers.
            assert!(len_before < log_len_of(&entries(1, 10, 1)), "{stop}");
        }
    }
}

/// Bytes of a log holding just `es` (header and one record), to compare sizes.
fn log_len_of(es: &[WireEntry]) -> u64 {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = DiskLog::open(dir.path()).unwrap();
    append(&mut log, es.to_vec(), 0);
    drop(log);
    log_len(dir.path())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Whatever batches were acknowledged (persist returned), and wherever a crash cuts or
    /// garbles the one record being written, reopening gives back every acknowledged entry.
    #[test]
    fn acknowledged_entries_are_never_lost(
        batches in prop::collection::vec((1u64..4, 0u64..3, any::<bool>()), 1..8),
        cut in any::<prop::sample::Index>(),
        garble in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = DiskLog::open(dir.path()).unwrap();
        let mut model: Vec<WireEntry> = Vec::new();
        let mut term = 1;
        for (n, back, new_term) in batches {
            // Overwrite up to `back` entries of the tail, as a new leader may.
            let from = (model.len() as u64).saturating_sub(back) + 1;
            if new_term { term += 1; }
            let es = entries(from, from + n - 1, term);
            model.truncate(from as usize - 1);
            model.extend(es.iter().cloned());
            append(&mut log, es, 0);
        }
        let acked_len = log_len(dir.path()) as usize;
        // The record being written when the crash comes.
        let last = model.len() as u64;
        log.persist(&Persist { entries: entries(last + 1, last + 2, term), must_sync: true, ..Default::default() }).unwrap();
        drop(log);
        let path = dir.path().join(LOG_FILE);
        let mut bytes = fs::read(&path).unwrap();
        let torn_at = acked_len + cut.index(bytes.len() - acked_len);
        if garble {
            for b in &mut bytes[torn_at..] { *b = b.wrapping_mul(31).wrapping_add(7); }
        } else {
            bytes.truncate(torn_at);
        }
        fs::write(&path, &bytes).unwrap();
        let (_, rec) = DiskLog::open(dir.path()).unwrap();
        prop_assert!(rec.entries.len() >= model.len());
        prop_assert_eq!(&rec.entries[..model.len()], &model[..]);
    }
}
