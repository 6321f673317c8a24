//! Unit tests of the gossip core's parts (keyring, envelope, guards, config, identity, the
//! Consul views) and of the core by hand; property tests feed it any bytes.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand::rngs::StdRng;

use super::fuzzing::{self, FUZZ_KEY};
use super::sim::{Sim, SimConfig};
use super::wire::{self, FrameHeader, OpenError};
use super::*;

const K1: &str = "Ym9vdHN0cmFwLWtleS1mb3ItZnV6emluZy0zMmJ5dGU=";
const K2: &str = "c2Vjb25kLWtleS1mb3ItdGhlLXJvdGF0aW9uLXRlc3Q=";

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

// ---- keyring (consul keyring) ----

#[test]
fn the_keyring_follows_consul_keyring() {
    let mut ring = Keyring::new(K1).unwrap();
    assert_eq!(ring.list(), vec![K1]);
    assert_eq!(
        ring.use_key(K2).unwrap_err().to_string(),
        format!("key {K2} is not installed; install it first")
    );
    ring.install(K2).unwrap();
    ring.install(K2).unwrap(); // installing twice changes nothing
    assert_eq!(ring.list(), vec![K1, K2]);
    ring.use_key(K2).unwrap();
    assert_eq!(ring.primary(), K2);
    assert_eq!(ring.list(), vec![K2, K1]);
    assert_eq!(
        ring.remove(K2).unwrap_err().to_string(),
        format!("key {K2} is the primary key; make another key primary before removing it")
    );
    ring.remove(K1).unwrap();
    ring.remove(K1).unwrap(); // not installed: nothing to do, as Consul
    assert_eq!(ring.list(), vec![K2]);
    assert_eq!(
        format!("{ring:?}"),
        "Keyring(1 keys)",
        "Debug never shows keys"
    );
}

#[test]
fn keys_must_be_32_bytes_of_base64() {
    assert_eq!(
        parse_key("not base64!").unwrap_err().to_string(),
        "encryption key is not valid base64 (make one with `outpost keygen`)"
    );
    assert_eq!(
        parse_key("c2hvcnQ=").unwrap_err().to_string(),
        "encryption key must be 32 bytes in base64 (make one with `outpost keygen`), got 5 bytes"
    );
    let mut ring = Keyring::new(K1).unwrap();
    let mut rng = StdRng::seed_from_u64(1);
    for _ in 1..MAX_KEYS {
        ring.install(&keygen(&mut rng)).unwrap();
    }
    assert_eq!(ring.install(&keygen(&mut rng)), Err(KeyError::Full));
}

#[test]
fn keygen_makes_keys_that_parse() {
    let mut a = StdRng::seed_from_u64(7);
    let mut b = StdRng::seed_from_u64(7);
    let k = keygen(&mut a);
    assert_eq!(k, keygen(&mut b), "a seeded key replays");
    assert_eq!(k.len(), 44);
    assert_eq!(parse_key(&k).unwrap().len(), KEY_LEN);
    let os1 = keygen_os().unwrap();
    let os2 = keygen_os().unwrap();
    assert_ne!(os1, os2);
    assert!(Keyring::new(&os1).is_ok());
}

// ---- envelope ----

fn sealed_with(key: &str, payload: &[u8]) -> Vec<u8> {
    let ring = Keyring::new(key).unwrap();
    let header = FrameHeader {
        flags: 0,
        session: 42,
        seq: 7,
    };
    let mut out = Vec::new();
    assert!(wire::seal(Some(&ring), [9; 12], header, payload, &mut out));
    assert_eq!(out.len(), payload.len() + wire::SEALED_OVERHEAD);
    out
}

#[test]
fn sealed_packets_open_with_any_installed_key_and_nothing_else() {
    let packet = sealed_with(K1, b"foca bytes");
    let mut scratch = Vec::new();
    let k1 = Keyring::new(K1).unwrap();
    let h = wire::open(Some(&k1), &packet, &mut scratch).unwrap();
    assert_eq!((h.session, h.seq), (42, 7));
    assert_eq!(&scratch[wire::FRAME_HEADER..], b"foca bytes");

    let k2 = Keyring::new(K2).unwrap();
    assert_eq!(
        wire::open(Some(&k2), &packet, &mut scratch),
        Err(OpenError::Decrypt)
    );
    let mut rotating = Keyring::new(K2).unwrap();
    rotating.install(K1).unwrap();
    assert!(wire::open(Some(&rotating), &packet, &mut scratch).is_ok());
    assert_eq!(
        wire::open(None, &packet, &mut scratch),
        Err(OpenError::Decrypt)
    );

    for i in 1..packet.len() {
        let mut tampered = packet.clone();
        tampered[i] ^= 0x01;
        assert_eq!(
            wire::open(Some(&k1), &tampered, &mut scratch),
            Err(OpenError::Decrypt),
            "byte {i} flipped"
        );
    }
    let mut other_version = packet.clone();
    other_version[0] = 7;
    assert_eq!(
        wire::open(Some(&k1), &other_version, &mut scratch),
        Err(OpenError::Malformed)
    );
    assert_eq!(
        wire::open(Some(&k1), &packet[..20], &mut scratch),
        Err(OpenError::Malformed)
    );
    assert_eq!(
        wire::open(Some(&k1), &[], &mut scratch),
        Err(OpenError::Malformed)
    );
}

#[test]
fn plain_packets_are_refused_by_an_encrypted_member() {
    let header = FrameHeader {
        flags: 0,
        session: 1,
        seq: 0,
    };
    let mut plain = Vec::new();
    assert!(wire::seal(None, [0; 12], header, b"hello", &mut plain));
    assert_eq!(plain.len(), 5 + wire::PLAIN_OVERHEAD);
    let mut scratch = Vec::new();
    let ring = Keyring::new(K1).unwrap();
    assert_eq!(
        wire::open(Some(&ring), &plain, &mut scratch),
        Err(OpenError::Plaintext)
    );
    assert!(wire::open(None, &plain, &mut scratch).is_ok());
    let mut flagged = plain.clone();
    flagged[1] = 0x80;
    assert_eq!(
        wire::open(None, &flagged, &mut scratch),
        Err(OpenError::Malformed)
    );
}

// ---- guards ----

#[test]
fn the_replay_window_takes_each_packet_once_in_any_order() {
    let now = Instant::now();
    let mut g = ReplayGuard::new(2);
    assert!(g.check(1, 10, now));
    assert!(!g.check(1, 10, now), "a repeat");
    assert!(g.check(1, 12, now));
    assert!(g.check(1, 11, now), "late but new");
    assert!(!g.check(1, 11, now));
    assert!(g.check(1, 200, now));
    assert!(!g.check(1, 12, now), "older than the 128-packet window");
    assert!(g.check(1, 73, now), "inside the window and unseen");
    assert!(g.check(2, 0, now), "another session");
    assert!(
        g.check(3, 0, now + Duration::from_secs(1)),
        "a third evicts the quietest"
    );
    assert_eq!(g.tracked(), 2);
}

#[test]
fn a_source_gets_its_burst_then_its_rate() {
    let t0 = Instant::now();
    let mut rl = RateLimiter::new(10, 5, 2);
    let a = addr("192.0.2.1:8301");
    let passed = (0..20).filter(|_| rl.allow(a, t0)).count();
    assert_eq!(passed, 5, "the burst");
    assert!(!rl.allow(a, t0 + Duration::from_millis(50)));
    assert!(
        rl.allow(a, t0 + Duration::from_millis(100)),
        "one token per 100 ms"
    );
    assert!(
        rl.allow(addr("192.0.2.2:8301"), t0),
        "others have their own bucket"
    );
    assert!(rl.allow(addr("192.0.2.3:8301"), t0));
    assert_eq!(rl.tracked(), 2, "bounded");
}

// ---- configuration and identity ----

#[test]
fn config_errors_name_the_field_and_the_values() {
    let mut c = GossipConfig::lan();
    c.validate().unwrap();
    c.probe_timeout = Duration::from_secs(1);
    assert_eq!(
        c.validate().unwrap_err().to_string(),
        "gossip config: probe_timeout (1s) must be shorter than probe_interval (300ms)"
    );
    let mut c = GossipConfig::lan();
    c.max_packet_size = 100;
    assert_eq!(
        c.validate().unwrap_err().to_string(),
        "gossip config: max_packet_size (100) must be 576 to 65507 bytes"
    );
    let mut c = GossipConfig::lan();
    c.reap_after = Duration::ZERO;
    assert_eq!(
        c.validate().unwrap_err().to_string(),
        "gossip config: reap_after must be more than 0"
    );
}

#[test]
fn suspicion_and_retransmits_grow_with_log_n_as_memberlist() {
    let c = GossipConfig::lan();
    assert_eq!(c.suspicion_timeout(5), Duration::from_millis(600));
    assert_eq!(c.suspicion_timeout(100), Duration::from_millis(1200));
    assert_eq!(c.suspicion_timeout(1000), Duration::from_millis(1800));
    assert_eq!(c.retransmits(5), 4);
    assert_eq!(c.retransmits(100), 12);
    assert_eq!(c.retransmits(1000), 16);
    assert_eq!(GossipConfig::default(), c);
    assert_eq!(
        c.reap_after,
        Duration::from_secs(72 * 3600),
        "Consul's reconnect_timeout"
    );
}

#[test]
fn identities_are_checked_field_by_field() {
    let tags = Tags::client("dc1");
    let ok = Node::new("web-1", addr("192.0.2.1:8301"), 1, tags.clone());
    ok.validate().unwrap();
    assert!(
        postcard::to_allocvec(&ok).unwrap().len() < 64,
        "compact on the wire"
    );
    let err = |n: Node| n.validate().unwrap_err();
    assert_eq!(
        err(Node::new("", ok.addr, 1, tags.clone())),
        "node name \"\" must be 1 to 128 bytes long"
    );
    assert!(
        err(Node::new("web", addr("0.0.0.0:8301"), 1, tags.clone()))
            .starts_with("gossip address 0.0.0.0:8301 must be a specific address")
    );
    let mut long = ok.clone();
    long.tags.dc = "x".repeat(65);
    assert!(err(long).starts_with("tag dc \"xxx"));
}

#[test]
fn a_newer_generation_wins_and_a_leaver_does_not_come_back() {
    use foca::Identity;
    let a1 = Node::new("a", addr("192.0.2.1:8301"), 1, Tags::client("dc1"));
    let a2 = a1.next_generation().unwrap();
    assert!(a2.win_addr_conflict(&a1));
    assert!(!a1.win_addr_conflict(&a2));
    assert_eq!(a1.renew(), Some(a2.clone()));
    let mut leaving = a2.clone();
    leaving.leaving = true;
    assert_eq!(leaving.renew(), None);
}

#[test]
fn statuses_and_tags_read_as_consul_shows_them() {
    assert_eq!(MemberStatus::Alive.consul_code(), 1);
    assert_eq!(MemberStatus::Left.consul_code(), 3);
    assert_eq!(MemberStatus::Failed.consul_code(), 4);
    assert_eq!(MemberStatus::Failed.as_str(), "failed");
    let mut server = Tags::server("dc1", 8300);
    server.bootstrap = true;
    server.expect = 3;
    let m = server.to_consul();
    let get = |k: &str| m.get(k).map(String::as_str);
    assert_eq!(get("role"), Some("consul"));
    assert_eq!(get("dc"), Some("dc1"));
    assert_eq!(get("port"), Some("8300"));
    assert_eq!(get("vsn"), Some("2"));
    assert_eq!(get("bootstrap"), Some("1"));
    assert_eq!(get("expect"), Some("3"));
    assert_eq!(get("build"), Some(env!("CARGO_PKG_VERSION")));
    let client = Tags::client("dc2").to_consul();
    assert_eq!(client.get("role").map(String::as_str), Some("node"));
    assert!(!client.contains_key("port") && !client.contains_key("bootstrap"));
}

// ---- the member table ----

#[test]
fn the_table_turns_foca_changes_into_consuls_events() {
    use super::members::MemberTable;
    let now = Instant::now();
    let reap = (Duration::from_secs(10), Duration::from_secs(5));
    let mut t = MemberTable::default();
    let mut ev = Vec::new();
    let a1 = Node::new("a", addr("192.0.2.1:8301"), 1, Tags::client("dc1"));
    t.up(&a1, now, &mut ev);
    t.set_suspect(&a1, true, now, &mut ev);
    t.set_suspect(&a1, false, now, &mut ev);
    let mut a2 = a1.next_generation().unwrap();
    a2.tags.expect = 3;
    t.rename(&a1, &a2, now, reap, &mut ev);
    t.down(&a2, now, reap, &mut ev);
    t.up(&a2, now, &mut ev); // back, as after a rejoin
    // Another node takes the address under another name: the old name failed.
    let b = Node::new("b", a1.addr, 5, Tags::client("dc1"));
    t.rename(&a2, &b, now, reap, &mut ev);
    let kinds: Vec<(EventKind, &str)> = ev.iter().map(|e| (e.kind, e.member.name())).collect();
    assert_eq!(
        kinds,
        [
            (EventKind::Joined, "a"),
            (EventKind::Suspect, "a"),
            (EventKind::Alive, "a"),
            (EventKind::Updated, "a"),
            (EventKind::Failed, "a"),
            (EventKind::Joined, "a"),
            (EventKind::Failed, "a"),
            (EventKind::Joined, "b"),
        ]
    );
    // A second live address claiming a name is refused and counted, as Consul does.
    let impostor = Node::new("b", addr("192.0.2.9:8301"), 9, Tags::client("dc1"));
    ev.clear();
    t.up(&impostor, now, &mut ev);
    assert!(ev.is_empty());
    assert_eq!(t.name_conflicts, 1);
    assert_eq!(t.get("b").map(Member::addr), Some(a1.addr));
    // Failed members go after reap_after, left ones after tombstone_after.
    let mut leaving = b.next_generation().unwrap();
    leaving.leaving = true;
    t.down(&leaving, now, reap, &mut ev);
    assert_eq!(t.get("b").map(|m| m.status), Some(MemberStatus::Left));
    assert_eq!(
        t.reap(now + Duration::from_secs(6), &mut ev),
        Some(now + Duration::from_secs(10))
    );
    assert!(t.get("b").is_none(), "left: tombstone after 5 s");
    assert_eq!(t.get("a").map(|m| m.status), Some(MemberStatus::Failed));
    assert_eq!(t.reap(now + Duration::from_secs(10), &mut ev), None);
    assert!(t.get("a").is_none(), "failed: reaped after 10 s");
    let reaped: Vec<&str> = ev
        .iter()
        .filter(|e| e.kind == EventKind::Reaped)
        .map(|e| e.member.name())
        .collect();
    assert_eq!(reaped, ["b", "a"]);
}

// ---- the core by hand ----

fn core(name: &str, at: &str, key: Option<&str>, seed: u8) -> Gossip {
    let node = Node::new(name, addr(at), 1, Tags::client("dc1"));
    let ring = key.map(|k| Keyring::new(k).unwrap());
    Gossip::new(GossipConfig::lan(), node, ring, [seed; 32], Instant::now()).unwrap()
}

/// Moves datagrams between two cores (whatever address they were sent to) until quiet.
fn exchange(a: &mut Gossip, b: &mut Gossip, now: Instant) {
    for _ in 0..20 {
        let mut moved = false;
        while let Some(t) = a.poll_transmit() {
            b.handle_packet(now, a.local().addr(), &t.contents);
            moved = true;
        }
        while let Some(t) = b.poll_transmit() {
            a.handle_packet(now, b.local().addr(), &t.contents);
            moved = true;
        }
        if !moved {
            return;
        }
    }
}

#[test]
fn a_join_to_any_address_of_a_member_is_answered() {
    let now = Instant::now();
    let mut a = core("a", "192.0.2.1:8301", None, 1);
    let mut b = core("b", "192.0.2.2:8301", None, 2);
    // b advertises 192.0.2.2, but a knows it by another address (a name, a NAT).
    a.join(now, addr("203.0.113.9:8301")).unwrap();
    exchange(&mut a, &mut b, now);
    assert_eq!(a.state(), LocalState::Active);
    assert_eq!(b.state(), LocalState::Active);
    assert_eq!(a.member("b").map(|m| m.status), Some(MemberStatus::Alive));
    assert_eq!(b.member("a").map(|m| m.status), Some(MemberStatus::Alive));
    let e = b.poll_event().unwrap();
    assert_eq!((e.kind, e.member.name()), (EventKind::Joined, "a"));
    assert_eq!(a.members().count(), 2);
    assert_eq!(
        a.members().next().map(Member::name),
        Some("a"),
        "self first"
    );
}

#[test]
fn joining_ones_own_address_is_refused_by_name() {
    let mut a = core("a", "192.0.2.1:8301", None, 1);
    assert_eq!(
        a.join(Instant::now(), addr("192.0.2.1:8301"))
            .unwrap_err()
            .to_string(),
        "cannot join 192.0.2.1:8301: it is this agent's own gossip address"
    );
}

#[test]
fn keyring_calls_on_an_unencrypted_member_say_so() {
    let mut a = core("a", "192.0.2.1:8301", None, 1);
    let err = a.install_key(K2).unwrap_err();
    assert_eq!(
        err.to_string(),
        "gossip encryption is not enabled (start the agent with -encrypt)"
    );
    let mut b = core("b", "192.0.2.2:8301", Some(K1), 2);
    b.install_key(K2).unwrap();
    b.use_key(K2).unwrap();
    assert_eq!(b.list_keys().unwrap(), vec![K2, K1]);
    assert!(matches!(
        b.remove_key(K2),
        Err(GossipError::Key(KeyError::RemovePrimary(_)))
    ));
}

#[test]
fn a_replayed_datagram_is_dropped_and_counted() {
    let now = Instant::now();
    let mut a = core("a", "192.0.2.1:8301", Some(K1), 1);
    let mut b = core("b", "192.0.2.2:8301", Some(K1), 2);
    a.join(now, b.local().addr()).unwrap();
    let announce = a.poll_transmit().unwrap();
    b.handle_packet(now, a.local().addr(), &announce.contents);
    let answers = std::iter::from_fn(|| b.poll_transmit()).count();
    assert!(answers > 0, "the join is answered");
    b.handle_packet(now, a.local().addr(), &announce.contents);
    assert_eq!(b.counters().dropped_replay, 1);
    assert_eq!(b.poll_transmit(), None, "a replay gets no answer");
    fuzzing::check_counted(&b);
}

#[test]
fn junk_oversized_and_wrongly_keyed_datagrams_are_dropped_and_counted() {
    let now = Instant::now();
    let mut b = core("b", "192.0.2.2:8301", Some(K1), 2);
    let from = addr("192.0.2.9:8301");
    b.handle_packet(now, from, &[0xff; 40]);
    b.handle_packet(now, from, &vec![1u8; 1401]);
    b.handle_packet(now, from, &sealed_with(K2, b"x"));
    let mut plain = Vec::new();
    wire::seal(
        None,
        [0; 12],
        FrameHeader {
            flags: 0,
            session: 5,
            seq: 0,
        },
        b"x",
        &mut plain,
    );
    b.handle_packet(now, from, &plain);
    b.handle_packet(now, from, &sealed_with(K1, b"not foca"));
    let c = b.counters();
    assert_eq!(
        (
            c.dropped_malformed,
            c.dropped_oversized,
            c.dropped_decrypt,
            c.dropped_plaintext
        ),
        (2, 1, 1, 1),
        "{c:?}"
    );
    assert_eq!(c.accepted, 0);
    assert_eq!(b.poll_transmit(), None);
    fuzzing::check_counted(&b);
}

// ---- keyring queries ----

/// A keyring message datagram, sealed with `key` (in the clear without one).
fn keyring_packet(key: Option<&str>, seq: u64, msg: &KeyringMessage) -> Vec<u8> {
    let ring = key.map(|k| Keyring::new(k).unwrap());
    let header = FrameHeader {
        flags: wire::FLAG_KEYRING,
        session: 77,
        seq,
    };
    let mut out = Vec::new();
    assert!(wire::seal(
        ring.as_ref(),
        [5; 12],
        header,
        &msg.encode().unwrap(),
        &mut out
    ));
    out
}

fn install(id: u64, key: &str) -> KeyringMessage {
    KeyringMessage::Query {
        id,
        op: KeyringOp::Install,
        key: Some(parse_key(key).unwrap()),
    }
}

#[test]
fn only_a_query_sealed_with_a_held_key_is_applied_and_answered() {
    let now = Instant::now();
    let from = addr("192.0.2.9:8301");
    let mut b = core("b", "192.0.2.2:8301", Some(K1), 2);
    // Forged with another key, in the clear, sealed junk: dropped, counted, unanswered.
    b.handle_packet(now, from, &keyring_packet(Some(K2), 0, &install(1, K2)));
    b.handle_packet(now, from, &keyring_packet(None, 1, &install(1, K2)));
    b.handle_packet(now, from, &sealed_junk());
    let c = b.counters().clone();
    assert_eq!(
        (c.dropped_decrypt, c.dropped_plaintext, c.dropped_malformed),
        (1, 1, 1),
        "{c:?}"
    );
    assert_eq!(b.poll_transmit(), None);
    assert_eq!(b.list_keys().unwrap(), vec![K1]);
    assert_eq!(b.keyring_version(), 0);

    // Sealed with the cluster key: applied and answered to the sender with the keys.
    b.handle_packet(now, from, &keyring_packet(Some(K1), 3, &install(4, K2)));
    assert_eq!(b.list_keys().unwrap(), vec![K1, K2]);
    assert_eq!(b.keyring_version(), 1);
    let t = b.poll_transmit().unwrap();
    assert_eq!(t.destination, from);
    let mut scratch = Vec::new();
    let ring = Keyring::new(K1).unwrap();
    let h = wire::open(Some(&ring), &t.contents, &mut scratch).unwrap();
    assert_eq!(h.flags, wire::FLAG_KEYRING);
    let KeyringMessage::Reply {
        id,
        name,
        error,
        keys,
        ..
    } = KeyringMessage::decode(&scratch[wire::FRAME_HEADER..]).unwrap()
    else {
        panic!("not a reply");
    };
    assert_eq!((id, name.as_str(), error), (4, "b", None));
    assert_eq!(keys, vec![parse_key(K1).unwrap(), parse_key(K2).unwrap()]);
    // Repeated (its initiator asks until answered): answered again, nothing changes.
    b.handle_packet(now, from, &keyring_packet(Some(K1), 4, &install(4, K2)));
    assert!(b.poll_transmit().is_some());
    assert_eq!(b.keyring_version(), 1);
    // Older than one answered (a late copy), or a reply nobody asked for: stale.
    b.handle_packet(now, from, &keyring_packet(Some(K1), 5, &install(3, K2)));
    let reply = KeyringMessage::Reply {
        id: 1,
        name: "x".into(),
        error: None,
        part: 0,
        parts: 1,
        keys: vec![],
    };
    b.handle_packet(now, from, &keyring_packet(Some(K1), 6, &reply));
    assert_eq!(b.counters().dropped_stale, 2);
    assert_eq!(b.poll_transmit(), None);
    assert_eq!(b.counters().keyring_queries, 2);
    fuzzing::check_counted(&b);

    // A member without encryption acts on no keyring message.
    let mut p = core("p", "192.0.2.3:8301", None, 3);
    p.handle_packet(now, from, &keyring_packet(None, 0, &install(1, K2)));
    assert_eq!(p.counters().dropped_protocol, 1);
    assert_eq!(p.poll_transmit(), None);
    assert!(matches!(
        p.start_keyring_query(now, KeyringOp::List, None, Duration::from_secs(1)),
        Err(GossipError::NotEncrypted)
    ));
}

fn sealed_junk() -> Vec<u8> {
    let ring = Keyring::new(K1).unwrap();
    let header = FrameHeader {
        flags: wire::FLAG_KEYRING,
        session: 78,
        seq: 0,
    };
    let mut out = Vec::new();
    assert!(wire::seal(
        Some(&ring),
        [6; 12],
        header,
        &[9, 9, 9],
        &mut out
    ));
    out
}

/// At the smallest packet size a full keyring does not fit one reply: it comes in parts,
/// each within the packet, and the initiator puts them together.
#[test]
fn a_full_keyring_is_answered_in_parts_that_each_fit_a_packet() {
    let now = Instant::now();
    let config = GossipConfig {
        max_packet_size: MIN_PACKET_SIZE,
        ..GossipConfig::lan()
    };
    let mk = |name: &str, at: &str, seed: u8| {
        let node = Node::new(name, addr(at), 1, Tags::client("dc1"));
        Gossip::new(
            config.clone(),
            node,
            Some(Keyring::new(K1).unwrap()),
            [seed; 32],
            now,
        )
        .unwrap()
    };
    let mut a = mk("a", "192.0.2.1:8301", 1);
    let mut b = mk(&"b".repeat(MAX_NAME), "192.0.2.2:8301", 2);
    a.join(now, b.local().addr()).unwrap();
    exchange(&mut a, &mut b, now);
    let mut rng = StdRng::seed_from_u64(3);
    let mut keys = vec![K1.to_string()];
    while keys.len() < MAX_KEYS {
        let k = keygen(&mut rng);
        b.install_key(&k).unwrap();
        keys.push(k);
    }
    let id = a
        .start_keyring_query(now, KeyringOp::List, None, Duration::from_secs(2))
        .unwrap();
    assert_eq!(
        a.start_keyring_query(now, KeyringOp::List, None, Duration::from_secs(2)),
        Err(GossipError::QueryBusy),
        "one query at a time"
    );
    let query = a.poll_transmit().unwrap();
    b.handle_packet(now, a.local().addr(), &query.contents);
    let parts: Vec<Transmit> = std::iter::from_fn(|| b.poll_transmit()).collect();
    assert_eq!(
        parts.len(),
        MAX_KEYS.div_ceil(keys_per_part(MIN_PACKET_SIZE))
    );
    for p in parts.iter().rev() {
        assert!(p.contents.len() <= MIN_PACKET_SIZE, "{}", p.contents.len());
        a.handle_packet(now, b.local().addr(), &p.contents);
    }
    assert!(a.keyring_query_done(id));
    let r = a.take_keyring_report(id).unwrap();
    assert!(r.ok(), "{r:?}");
    assert_eq!(r.answers[&"b".repeat(MAX_NAME)].keys, keys);
    assert_eq!(r.keys()[K1], 2);
    assert_eq!(r.primary_keys().len(), 1);
    assert_eq!(r.num_nodes(), 2);
    // The query is over: a part arriving again is stale.
    a.handle_packet(now, b.local().addr(), &parts[0].contents);
    assert_eq!(a.counters().dropped_replay + a.counters().dropped_stale, 1);
    fuzzing::check_counted(&a);
}

#[test]
fn timers_say_why_the_core_woke() {
    let now = Instant::now();
    let mut a = core("a", "192.0.2.1:8301", None, 1);
    let t = a.poll_timeout().unwrap();
    assert!(t > now);
    a.handle_timeout(t);
    assert_eq!(a.last_wake_reason(), Some(WakeReason::Scan));
    a.join(t, addr("192.0.2.2:8301")).unwrap();
    let retry = t + GossipConfig::lan().probe_interval;
    a.handle_timeout(retry);
    assert_eq!(a.last_wake_reason(), Some(WakeReason::JoinRetry));
    assert!(a.poll_transmit().is_some(), "the first announce");
    assert!(a.poll_transmit().is_some(), "the retry");
}

// ---- behaviour through the simulator ----

#[test]
fn a_tag_change_reaches_the_others_as_an_update() {
    let mut sim = Sim::new(SimConfig::new(11, 4));
    sim.join_all(Duration::from_millis(300));
    assert!(sim.run_until(Duration::from_secs(5), Sim::converged));
    let mut tags = Tags::server("dc1", 8300);
    tags.expect = 3;
    sim.with_core(2, |c, now| c.set_tags(now, tags.clone()))
        .unwrap()
        .unwrap();
    sim.run_for(Duration::from_secs(2));
    for o in [0, 1, 3] {
        let m = sim.core(o).unwrap().member("n2").unwrap();
        assert_eq!(m.tags(), &tags, "as n{o} sees n2");
        assert_eq!(m.status, MemberStatus::Alive);
    }
    let updates = sim
        .events()
        .iter()
        .filter(|e| e.subject == 2 && e.kind == EventKind::Updated)
        .count();
    assert_eq!(updates, 3, "one update event on each other member");
    assert!(
        !sim.events()
            .iter()
            .any(|e| e.subject == 2 && e.kind == EventKind::Failed),
        "a tag change is not a failure"
    );
    assert!(sim.converged());
}

#[test]
fn a_member_restarted_with_its_clock_set_back_rejoins_at_once() {
    let mut sim = Sim::new(SimConfig::new(12, 5));
    sim.join_all(Duration::from_millis(300));
    assert!(sim.run_until(Duration::from_secs(5), Sim::converged));
    // n3 ran at generation 1,000,000 (the Unix time then) and comes back at 2.
    sim.restart_at(3, 0, 1_000_000);
    assert!(sim.run_until(sim.elapsed() + Duration::from_secs(5), Sim::converged));
    sim.crash(3);
    sim.run_for(Duration::from_secs(2));
    let t0 = sim.elapsed();
    sim.restart_at(3, 1, 2);
    assert!(
        sim.run_until(t0 + Duration::from_secs(3), Sim::converged),
        "not back in 3 s"
    );
    let local = sim.core(3).unwrap().local().node.generation;
    assert!(
        local > 1_000_000,
        "took a generation above the old one: {local}"
    );
}

#[test]
fn five_members_converge_and_detect_a_crash() {
    let mut sim = Sim::new(SimConfig::new(1, 5));
    sim.join_all(Duration::from_millis(500));
    assert!(
        sim.run_until(Duration::from_secs(10), Sim::converged),
        "no convergence"
    );
    let t0 = sim.elapsed();
    sim.crash(3);
    assert!(sim.run_until(t0 + Duration::from_secs(3), |s| {
        s.all_see(3, MemberStatus::Failed)
    }));
    let kinds: Vec<EventKind> = sim
        .events()
        .iter()
        .filter(|e| e.subject == 3 && e.observer == 0)
        .map(|e| e.kind)
        .collect();
    assert_eq!(kinds.first(), Some(&EventKind::Joined));
    assert_eq!(kinds.last(), Some(&EventKind::Failed));
}

// ---- fuzzing ----

mod props {
    use proptest::prelude::*;

    use super::*;

    /// Real datagrams: (in the clear, sealed).
    type Samples = (Vec<Vec<u8>>, Vec<Vec<u8>>);

    fn valid() -> &'static Samples {
        static VALID: std::sync::OnceLock<Samples> = std::sync::OnceLock::new();
        VALID.get_or_init(|| (fuzzing::valid_packets(false), fuzzing::valid_packets(true)))
    }

    #[derive(Clone, Debug)]
    enum Mutation {
        Flip(usize, u8),
        Truncate(usize),
        Append(Vec<u8>),
        Splice(usize, Vec<u8>),
    }

    fn mutation() -> impl Strategy<Value = Mutation> {
        prop_oneof![
            (any::<usize>(), 1..=255u8).prop_map(|(i, x)| Mutation::Flip(i, x)),
            any::<usize>().prop_map(Mutation::Truncate),
            proptest::collection::vec(any::<u8>(), 1..64).prop_map(Mutation::Append),
            (
                any::<usize>(),
                proptest::collection::vec(any::<u8>(), 1..32)
            )
                .prop_map(|(i, v)| Mutation::Splice(i, v)),
        ]
    }

    fn apply(mut p: Vec<u8>, ms: &[Mutation]) -> Vec<u8> {
        for m in ms {
            match m {
                Mutation::Flip(i, x) if !p.is_empty() => {
                    let i = i % p.len();
                    p[i] ^= x;
                }
                Mutation::Truncate(n) if !p.is_empty() => p.truncate(n % p.len()),
                Mutation::Append(v) => p.extend_from_slice(v),
                Mutation::Splice(i, v) if !p.is_empty() => {
                    let i = i % p.len();
                    let end = (i + v.len()).min(p.len());
                    p.splice(i..end, v.iter().copied());
                }
                _ => {}
            }
        }
        p
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        /// Any bytes, in the clear or for a sealed member: no panic, each counted once.
        #[test]
        fn any_bytes_are_handled(data in proptest::collection::vec(any::<u8>(), 0..1500)) {
            fuzzing::packet(&data);
        }

        /// A plain envelope around any bytes reaches foca's decoder, the deepest parser.
        #[test]
        fn any_foca_payload_is_handled(
            session in any::<u64>(),
            payload in proptest::collection::vec(any::<u8>(), 0..1200),
        ) {
            let mut p = vec![wire::VERSION_PLAIN, 0];
            p.extend_from_slice(&session.to_le_bytes());
            p.extend_from_slice(&0u64.to_le_bytes());
            p.extend_from_slice(&payload);
            fuzzing::packet(&p);
        }

        /// Any bytes as a sealed keyring message: no panic, each counted once.
        #[test]
        fn any_keyring_message_is_handled(
            data in proptest::collection::vec(any::<u8>(), 0..700),
        ) {
            fuzzing::keyring_message(&data);
        }

        /// Real packets, mutated: in the clear they reach foca's decoder half-valid; sealed,
        /// every mutation must be refused by the AEAD.
        #[test]
        fn mutated_packets_are_handled(
            pick in any::<usize>(),
            sealed in any::<bool>(),
            ms in proptest::collection::vec(mutation(), 1..4),
        ) {
            let (plain, sealed_set) = valid();
            let set = if sealed { sealed_set } else { plain };
            prop_assume!(!set.is_empty());
            let original = &set[pick % set.len()];
            let mutated = apply(original.clone(), &ms);
            let now = Instant::now();
            let mut b = fuzzing::core(2, sealed, now);
            b.handle_packet(now, SocketAddr::from(([192, 0, 2, 1], 8301)), &mutated);
            b.handle_timeout(now + Duration::from_secs(2));
            fuzzing::check_counted(&b);
            if sealed && mutated != *original {
                prop_assert_eq!(b.counters().accepted, 0);
            }
        }

        /// Sealing then opening gives back the frame, for any payload and header.
        #[test]
        fn seal_then_open_round_trips(
            session in any::<u64>(),
            seq in any::<u64>(),
            nonce in any::<[u8; 12]>(),
            payload in proptest::collection::vec(any::<u8>(), 0..1400),
            sealed in any::<bool>(),
        ) {
            let ring = Keyring::new(FUZZ_KEY).unwrap();
            let ring = sealed.then_some(&ring);
            let header = FrameHeader { flags: 0, session, seq };
            let mut out = Vec::new();
            prop_assert!(wire::seal(ring, nonce, header, &payload, &mut out));
            let mut scratch = Vec::new();
            prop_assert_eq!(wire::open(ring, &out, &mut scratch), Ok(header));
            prop_assert_eq!(&scratch[wire::FRAME_HEADER..], &payload[..]);
        }
    }
}
