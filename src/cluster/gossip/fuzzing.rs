//! Fuzz entry points (STYLE.md item 10): any bytes into a core, in the clear and sealed. A
//! bug shows as a panic or a broken counter invariant; proptest drives them in `cargo test`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::wire::{self, FLAG_KEYRING, FrameHeader};
use super::{Gossip, GossipConfig, Keyring, KeyringOp, Node, Tags};

/// The key the sealed fuzz core uses (fixed: fuzzing needs no secrecy).
pub const FUZZ_KEY: &str = "Ym9vdHN0cmFwLWtleS1mb3ItZnV6emluZy0zMmJ5dGU=";

fn addr(i: u8) -> SocketAddr {
    SocketAddr::from(([192, 0, 2, i], 8301))
}

/// A core named `name` at 192.0.2.`i`, sealed with [`FUZZ_KEY`] or in the clear.
pub fn core(i: u8, sealed: bool, now: Instant) -> Gossip {
    let node = Node::new(&format!("fuzz{i}"), addr(i), 1, Tags::client("dc1"));
    let keyring = sealed.then(|| {
        Keyring::new(FUZZ_KEY).unwrap_or_else(|e| unreachable!("the fuzz key parses: {e}"))
    });
    Gossip::new(GossipConfig::lan(), node, keyring, [i; 32], now)
        .unwrap_or_else(|e| unreachable!("the fuzz core's config is valid: {e}"))
}

/// Feeds `data` to a joined core pair's receiver, in the clear and sealed, then runs the
/// core for a while; checks that every datagram was counted exactly once.
pub fn packet(data: &[u8]) {
    for sealed in [false, true] {
        let now = Instant::now();
        let mut b = core(2, sealed, now);
        b.handle_packet(now, addr(1), data);
        b.handle_timeout(now + Duration::from_secs(1));
        while b.poll_transmit().is_some() {}
        while b.poll_event().is_some() {}
        check_counted(&b);
    }
}

/// Feeds `data` as a keyring message to a sealed core: sealed with [`FUZZ_KEY`], the
/// keyring flag set, so it reaches the message decoder; checks that it was counted once.
pub fn keyring_message(data: &[u8]) {
    let now = Instant::now();
    let mut b = core(2, true, now);
    let ring = Keyring::new(FUZZ_KEY).unwrap_or_else(|e| unreachable!("the fuzz key parses: {e}"));
    let header = FrameHeader {
        flags: FLAG_KEYRING,
        session: 1,
        seq: 0,
    };
    let mut packet = Vec::new();
    if wire::seal(Some(&ring), [3; 12], header, data, &mut packet) {
        b.handle_packet(now, addr(1), &packet);
    }
    b.handle_timeout(now + Duration::from_secs(1));
    while b.poll_transmit().is_some() {}
    check_counted(&b);
}

/// Valid datagrams from a short exchange of two cores (a join and its answer, probes),
/// in the clear or sealed, and sealed a keyring query and its answer: material for mutation.
pub fn valid_packets(sealed: bool) -> Vec<Vec<u8>> {
    let start = Instant::now();
    let mut a = core(1, sealed, start);
    let mut b = core(2, sealed, start);
    let mut out = Vec::new();
    if a.join(start, addr(2)).is_err() {
        return out;
    }
    for step in 0..40u64 {
        let now = start + Duration::from_millis(50 * step);
        if sealed && step == 20 {
            let _ = a.start_keyring_query(now, KeyringOp::List, None, Duration::from_secs(1));
        }
        a.handle_timeout(now);
        b.handle_timeout(now);
        while let Some(t) = a.poll_transmit() {
            b.handle_packet(now, addr(1), &t.contents);
            out.push(t.contents);
        }
        while let Some(t) = b.poll_transmit() {
            a.handle_packet(now, addr(2), &t.contents);
            out.push(t.contents);
        }
    }
    out
}

/// Every datagram a core received is counted once: accepted or dropped for one reason.
pub fn check_counted(core: &Gossip) {
    let c = core.counters();
    let sorted = c.accepted
        + c.dropped_oversized
        + c.dropped_rate
        + c.dropped_malformed
        + c.dropped_decrypt
        + c.dropped_plaintext
        + c.dropped_replay
        + c.dropped_protocol
        + c.dropped_left
        + c.dropped_stale;
    assert_eq!(sorted, c.packets_in, "every datagram counted once: {c:?}");
}
