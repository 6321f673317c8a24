use super::*;
use crate::catalog::{Change, KvSet};

fn set(key: &str, cas: Option<u64>) -> Command {
    Command::one(Change::KvSet(KvSet {
        key: key.into(),
        value: b"v".to_vec(),
        flags: 0,
        cas,
    }))
}

/// Runs the ready cycle with an in-memory disk until nothing is ready.
fn settle(node: &mut RaftNode, disk: &mut Recovered, sm: &mut Catalog) -> Vec<Event> {
    while let Some(p) = node.ready() {
        disk.apply_persist(&p);
        node.persisted(sm);
    }
    std::iter::from_fn(|| node.poll_event()).collect()
}

/// A single bootstrapped server: it elects itself after an election timeout.
fn single() -> (RaftNode, Recovered, Catalog) {
    let mut disk = RaftNode::bootstrap(&[(1, "127.0.0.1:8300".into())]);
    let mut sm = Catalog::new();
    let mut now = Instant::now();
    let mut node = RaftNode::new(RaftConfig::new(1, 7), &disk, &mut sm, now).unwrap();
    for _ in 0..30 {
        now += Duration::from_millis(100);
        node.handle_timeout(now);
        settle(&mut node, &mut disk, &mut sm);
        if node.is_leader() {
            break;
        }
    }
    assert!(node.is_leader());
    (node, disk, sm)
}

fn outcomes(events: &[Event]) -> Vec<&Outcome> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Completed { outcome, .. } => Some(outcome),
            _ => None,
        })
        .collect()
}

#[test]
fn a_single_server_leads_applies_and_reports_a_failed_cas_as_refused() {
    let (mut node, mut disk, mut sm) = single();
    node.propose(1, &set("a", None));
    node.propose(2, &set("a", Some(0)));
    let events = settle(&mut node, &mut disk, &mut sm);
    let outcomes = outcomes(&events);
    assert!(
        matches!(outcomes[0], Outcome::Applied { .. }),
        "{outcomes:?}"
    );
    assert!(
        matches!(
            outcomes[1],
            Outcome::Refused {
                error: ApplyError::CasFailed { .. },
                ..
            }
        ),
        "{outcomes:?}"
    );
    assert!(sm.kv().get("a").is_some());
}

#[test]
fn a_read_on_the_leader_is_ready_once_its_term_has_a_commit() {
    let (mut node, mut disk, mut sm) = single();
    node.read_index(9);
    let events = settle(&mut node, &mut disk, &mut sm);
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::ReadReady { request: 9, .. })),
        "{events:?}"
    );
}

#[test]
fn a_server_without_a_leader_refuses_writes_and_reads_at_once() {
    let disk = RaftNode::bootstrap(&[(1, "a".into()), (2, "b".into()), (3, "c".into())]);
    let mut sm = Catalog::new();
    let mut node = RaftNode::new(RaftConfig::new(2, 1), &disk, &mut sm, Instant::now()).unwrap();
    node.propose(1, &set("a", None));
    node.read_index(2);
    let events: Vec<Event> = std::iter::from_fn(|| node.poll_event()).collect();
    assert_eq!(
        events,
        [
            Event::Completed {
                request: 1,
                outcome: Outcome::NotLeader { leader: None }
            },
            Event::ReadFailed {
                request: 2,
                reason: ReadFailure::NoLeader
            }
        ]
    );
}

#[test]
fn junk_and_misdirected_messages_are_refused_without_effect() {
    let (mut node, _, _) = single();
    let term = node.term();
    assert!(node.handle_message(b"\xff\xff\xff\xff junk").is_err());
    assert!(node.handle_message(&[]).is_err());
    let mut m = Message::default();
    m.set_msg_type(MessageType::MsgHeartbeat);
    m.from = 3;
    m.to = 99;
    m.term = term + 5;
    let e = node
        .handle_message(&wire::encode_message(&m).unwrap())
        .unwrap_err();
    assert!(e.to_string().contains("not for this server"), "{e}");
    m.to = 1;
    m.set_msg_type(MessageType::MsgReadIndex);
    assert!(
        node.handle_message(&wire::encode_message(&m).unwrap())
            .is_err()
    );
    assert_eq!(node.term(), term);
    assert!(node.is_leader());
}

/// Membership changes carry the server's address in the log; a server learns it on apply.
#[test]
fn adding_a_voter_puts_its_address_in_the_peers() {
    let (mut node, mut disk, mut sm) = single();
    node.change_membership(
        1,
        &ConfChangeRecord::AddVoter {
            id: 2,
            addr: "10.0.0.2:8300".into(),
        },
    );
    let events = settle(&mut node, &mut disk, &mut sm);
    assert!(events.contains(&Event::PeersChanged), "{events:?}");
    assert_eq!(
        node.peers().get(&2).map(String::as_str),
        Some("10.0.0.2:8300")
    );
    assert!(
        matches!(outcomes(&events)[..], [Outcome::Applied { .. }]),
        "{events:?}"
    );
}

/// After `snapshot_every` entries the core snapshots and compacts; a restart from that
/// disk restores the state from the snapshot and the entries after it.
#[test]
fn snapshots_compact_the_log_and_a_restart_restores_from_them() {
    let mut disk = RaftNode::bootstrap(&[(1, "a".into())]);
    let mut sm = Catalog::new();
    let mut now = Instant::now();
    let mut cfg = RaftConfig::new(1, 3);
    cfg.snapshot_every = 5;
    let mut node = RaftNode::new(cfg.clone(), &disk, &mut sm, now).unwrap();
    // A cluster of one elects itself in `new`; the ready cycle makes it durable.
    settle(&mut node, &mut disk, &mut sm);
    while !node.is_leader() {
        now += Duration::from_millis(100);
        node.handle_timeout(now);
        settle(&mut node, &mut disk, &mut sm);
    }
    for i in 0..12 {
        node.propose(i, &set(&format!("k{i}"), None));
        settle(&mut node, &mut disk, &mut sm);
    }
    let snap = disk.snapshot.clone().unwrap();
    assert!(snap.index >= 10, "snapshot at {}", snap.index);
    assert!(
        disk.entries.len() < 5,
        "log not compacted: {}",
        disk.entries.len()
    );
    let mut restored = Catalog::new();
    let mut again = RaftNode::new(cfg, &disk, &mut restored, now).unwrap();
    settle(&mut again, &mut disk, &mut restored);
    while !again.is_leader() {
        now += Duration::from_millis(100);
        again.handle_timeout(now);
        settle(&mut again, &mut disk, &mut restored);
    }
    assert_eq!(restored.kv().len(), 12);
    assert_eq!(restored.snapshot(), sm.snapshot());
}

/// A leader (1) and a learner (2) on a perfect network, stepped together `rounds` ticks.
struct Pair {
    nodes: Vec<(RaftNode, Recovered, Catalog)>,
    now: Instant,
    /// The learner is cut off: messages to and from it are lost.
    cut: bool,
}

impl Pair {
    fn new() -> Pair {
        let (leader, disk, sm) = single();
        let learner_disk = Recovered::default();
        let mut learner_sm = Catalog::new();
        let now = Instant::now();
        let learner =
            RaftNode::new(RaftConfig::new(2, 9), &learner_disk, &mut learner_sm, now).unwrap();
        Pair {
            nodes: vec![(leader, disk, sm), (learner, learner_disk, learner_sm)],
            now,
            cut: false,
        }
    }

    /// Runs ready cycles and delivers messages until nothing moves; the events of each.
    fn settle(&mut self) -> [Vec<Event>; 2] {
        let mut events = [Vec::new(), Vec::new()];
        loop {
            let mut moved = false;
            for (i, mine) in events.iter_mut().enumerate() {
                let (node, disk, sm) = &mut self.nodes[i];
                mine.extend(settle(node, disk, sm));
                let mut out = Vec::new();
                while let Some(t) = node.poll_transmit() {
                    out.push(t);
                }
                for t in out {
                    let to = (t.to - 1) as usize;
                    if t.snapshot {
                        self.nodes[i].0.snapshot_sent(t.to, !self.cut);
                    }
                    if !self.cut {
                        self.nodes[to].0.handle_message(&t.bytes).unwrap();
                        moved = true;
                    }
                }
            }
            if !moved {
                return events;
            }
        }
    }

    /// The leader adds the second server as a learner, which catches up.
    fn add_learner(&mut self) {
        self.nodes[0].0.change_membership(
            2,
            &ConfChangeRecord::AddLearner {
                id: 2,
                addr: "10.0.0.2:8300".into(),
            },
        );
        self.settle();
        self.tick(3);
    }

    fn tick(&mut self, n: usize) {
        for _ in 0..n {
            self.now += Duration::from_millis(100);
            for i in 0..2 {
                self.nodes[i].0.handle_timeout(self.now);
            }
            self.settle();
        }
    }
}

#[test]
fn a_learner_replicates_never_votes_and_does_not_count_for_the_quorum() {
    let mut p = Pair::new();
    p.nodes[0].0.propose(1, &set("before", None));
    p.settle();
    p.add_learner();
    let status = p.nodes[0].0.status();
    assert_eq!(status.peers.keys().collect::<Vec<_>>(), [&1]);
    assert_eq!(
        status.learners.get(&2).map(String::as_str),
        Some("10.0.0.2:8300")
    );
    let learner = &p.nodes[1];
    assert!(learner.0.is_learner());
    assert_eq!(learner.0.status().leader, Some(1));
    // It got the state from before it was added (a snapshot or the log) and what follows.
    assert!(learner.2.kv().get("before").is_some());
    p.nodes[0].0.propose(3, &set("after", None));
    p.settle();
    assert!(p.nodes[1].2.kv().get("after").is_some());

    // Cut off, the learner does not stop the leader: one voter is the whole quorum.
    p.cut = true;
    p.nodes[0].0.propose(4, &set("alone", None));
    let [leader_events, _] = p.settle();
    assert!(
        matches!(outcomes(&leader_events)[..], [Outcome::Applied { .. }]),
        "{leader_events:?}"
    );
    // Nor does the learner ever campaign, however long it hears nothing.
    p.tick(50);
    assert!(!p.nodes[1].0.is_leader());
    assert!(p.nodes[0].0.is_leader());
    assert_eq!(p.nodes[1].0.status().term, p.nodes[0].0.status().term);

    // Reconnected, it catches up; promoted, it becomes a voter.
    p.cut = false;
    p.tick(3);
    assert!(p.nodes[1].2.kv().get("alone").is_some());
    p.nodes[0].0.change_membership(
        5,
        &ConfChangeRecord::AddVoter {
            id: 2,
            addr: "10.0.0.2:8300".into(),
        },
    );
    p.settle();
    p.tick(2);
    let status = p.nodes[0].0.status();
    assert_eq!(status.peers.keys().collect::<Vec<_>>(), [&1, &2]);
    assert!(status.learners.is_empty());
    assert!(!p.nodes[1].0.is_learner());
}

#[test]
fn a_leader_sends_its_appends_before_its_own_fsync() {
    let mut p = Pair::new();
    p.add_learner();
    p.nodes[0].0.propose(7, &set("early", None));
    let (leader, _, _) = &mut p.nodes[0];
    let persist = leader.ready().expect("the proposal is ready");
    let index = persist.entries.last().expect("one entry").index;
    // Before the leader's fsync, its append is already on its way to the member, which
    // stores it while the leader's disk works.
    let out: Vec<Transmit> = std::iter::from_fn(|| leader.poll_transmit()).collect();
    assert!(
        out.iter().any(|t| t.to == 2),
        "nothing to send before the fsync"
    );
    let (learner, learner_disk, learner_sm) = &mut p.nodes[1];
    for t in &out {
        learner.handle_message(&t.bytes).unwrap();
    }
    settle(learner, learner_disk, learner_sm);
    assert_eq!(learner_disk.last_index(), index);
    // The leader's own vote waits for its disk: the write completes after `persisted`.
    let (leader, disk, sm) = &mut p.nodes[0];
    assert!(sm.kv().get("early").is_none());
    disk.apply_persist(&persist);
    leader.persisted(sm);
    let events = settle(leader, disk, sm);
    assert!(
        matches!(outcomes(&events)[..], [Outcome::Applied { .. }]),
        "{events:?}"
    );
    assert!(sm.kv().get("early").is_some());
}

#[test]
fn servers_draw_their_own_compaction_points() {
    // The first compaction of a single server, as a function of its seed.
    let first_compaction = |seed: u64| {
        let mut disk = RaftNode::bootstrap(&[(1, "127.0.0.1:8300".into())]);
        let mut sm = Catalog::new();
        let mut now = Instant::now();
        let mut cfg = RaftConfig::new(1, seed);
        cfg.snapshot_every = 16;
        let mut node = RaftNode::new(cfg, &disk, &mut sm, now).unwrap();
        for _ in 0..30 {
            now += Duration::from_millis(100);
            node.handle_timeout(now);
            settle(&mut node, &mut disk, &mut sm);
        }
        assert!(node.is_leader());
        for i in 0..64u64 {
            node.propose(i, &set(&format!("k{i}"), None));
            while let Some(p) = node.ready() {
                if let (true, Some(s)) = (p.background, &p.snapshot) {
                    return s.index;
                }
                disk.apply_persist(&p);
                node.persisted(&mut sm);
            }
        }
        panic!("seed {seed}: no compaction after 64 writes");
    };
    let points: Vec<u64> = (1..=8).map(first_compaction).collect();
    // After the bootstrap snapshot at index 1: between 16 and 24 entries later.
    assert!(points.iter().all(|&i| (17..=25).contains(&i)), "{points:?}");
    let distinct: std::collections::BTreeSet<_> = points.iter().collect();
    assert!(distinct.len() >= 3, "servers compact in step: {points:?}");
    // A seed replays exactly.
    assert_eq!(first_compaction(3), points[2]);
}

#[test]
fn the_status_follows_the_log_and_only_what_is_beyond_it_wakes_waiters() {
    let (mut node, mut disk, mut sm) = single();
    let before = node.status();
    assert_eq!((before.state, before.is_leader), ("Leader", true));
    assert_eq!(before.last_log.0, before.applied);
    node.propose(1, &set("a", None));
    // Appended, not yet committed here: only the log moved.
    let appended = node.status();
    assert_eq!(appended.last_log, (before.last_log.0 + 1, before.term));
    assert!(!before.differs_beyond_the_log(&appended));
    settle(&mut node, &mut disk, &mut sm);
    let applied = node.status();
    assert_eq!(applied.applied, appended.last_log.0);
    assert!(appended.differs_beyond_the_log(&applied));
}
