//! Fuzz entry point for the responder (STYLE.md item 10): any bytes, over UDP and TCP, against
//! a small fixed catalog. A bug shows up as a panic; proptest drives it inside `cargo test`.

use std::sync::OnceLock;

use super::{Outcome, Responder, Transport, servfail};
use crate::catalog::{Catalog, Change, Check, Command, Health, Node, Registration, Service};
use crate::dns::DnsSettings;

/// Runs `data` as a query through [`Responder::handle_query`] (UDP without recursion, TCP with
/// it) and through [`servfail`], and checks what any reply must satisfy: at least a header,
/// the query's ID, QR set, and within the transport's size limit. Panics only on a bug.
pub fn fuzz_query(data: &[u8]) {
    let catalog = fixture();
    let mut out = Vec::new();
    for (transport, recursion) in [(Transport::Udp, false), (Transport::Tcp, true)] {
        let mut responder = Responder::new(fixture_settings(recursion), 0x5eed);
        let outcome = responder.handle_query(catalog, data, transport, &mut out);
        match outcome {
            Outcome::Drop | Outcome::Forward => {
                assert!(out.is_empty(), "{outcome:?} must leave the buffer empty")
            }
            Outcome::Reply => {
                check_header(data, &out);
                let limit = match transport {
                    Transport::Udp => udp_limit(data),
                    Transport::Tcp => usize::from(u16::MAX),
                };
                assert!(
                    out.len() <= limit,
                    "{} byte reply over the {limit} byte limit",
                    out.len()
                );
            }
        }
        if outcome == Outcome::Forward {
            assert!(recursion, "forwarded without recursion");
        }
    }
    if servfail(data, &mut out) {
        check_header(data, &out);
        assert_eq!(out.get(3).map(|b| b & 0xf), Some(2), "servfail has RCODE 2");
    } else {
        assert!(out.is_empty());
    }
}

fn check_header(query: &[u8], reply: &[u8]) {
    assert!(reply.len() >= 12, "a reply has a header");
    assert_eq!(reply.get(..2), query.get(..2), "a reply echoes the ID");
    assert_eq!(
        reply.get(2).map(|b| b & 0x80),
        Some(0x80),
        "a reply has QR set"
    );
}

/// The most a UDP reply to `query` may hold: 512 bytes, or the EDNS size if larger.
fn udp_limit(query: &[u8]) -> usize {
    match simple_dns::Packet::parse(query) {
        Ok(p) => p.opt().map_or(512, |o| {
            usize::from(o.udp_packet_size).clamp(512, 65535 - 68)
        }),
        // Parsed through the QTYPE/QCLASS workaround, whose EDNS size we do not know here.
        Err(_) => 65535 - 68,
    }
}

pub(super) fn node(name: &str, addr: &str) -> Node {
    Node::new(name, addr, "dc1")
}

pub(super) fn service(id: &str, name: &str, tags: &[&str], port: u16) -> Service {
    Service::new(id, name, tags, port)
}

pub(super) fn check(id: &str, service_id: &str, status: Health) -> Check {
    Check::new(id, service_id, status)
}

/// Applies one registration as the next log entry.
pub(super) fn register(
    catalog: &mut Catalog,
    node: Node,
    service: Option<Service>,
    checks: Vec<Check>,
) {
    let cmd = Command::one(Change::Register(Registration {
        node,
        service,
        checks,
    }));
    let index = catalog.index() + 1;
    if let Err(e) = catalog.apply(index, &cmd) {
        panic!("fixture registration refused: {e}");
    }
}

pub(super) fn fixture_settings(recursion: bool) -> DnsSettings {
    DnsSettings {
        node_name: "agent-1".into(),
        node_address: "10.0.0.1".parse().ok(),
        recursion,
        ..DnsSettings::default()
    }
}

/// Nodes with IPv4, IPv6 and host-name addresses; `web` in every health state, with tags,
/// a service address and node meta; `big` with 40 instances to exercise truncation.
pub(super) fn fixture() -> &'static Catalog {
    static CATALOG: OnceLock<Catalog> = OnceLock::new();
    CATALOG.get_or_init(|| {
        let mut c = Catalog::new();
        let mut n1 = node("n1", "10.0.0.1");
        n1.meta.insert("rack".into(), "r1".into());
        n1.meta.insert("rfc1035-raw".into(), "x=y".into());
        register(
            &mut c,
            n1.clone(),
            Some(service("web", "web", &["rails", "v1"], 80)),
            vec![],
        );
        let mut api = service("api", "api", &[], 8080);
        api.address = "10.9.0.1".into();
        register(&mut c, n1, Some(api), vec![]);
        register(
            &mut c,
            node("n2", "10.0.0.2"),
            Some(service("web", "web", &["rails"], 80)),
            vec![check("w", "web", Health::Warning)],
        );
        register(
            &mut c,
            node("n3", "2001:db8::3"),
            Some(service("web", "web", &[], 81)),
            vec![],
        );
        register(
            &mut c,
            node("n4", "10.0.0.4"),
            Some(service("web", "web", &[], 80)),
            vec![check("c", "web", Health::Critical)],
        );
        register(
            &mut c,
            node("n5", "host.example.com"),
            Some(service("web", "web", &[], 82)),
            vec![],
        );
        for i in 0..40 {
            let name = format!("b{i}");
            register(
                &mut c,
                node(&name, &format!("127.77.0.{i}")),
                Some(service("big", "big", &[], 9000)),
                vec![],
            );
        }
        c
    })
}

/// A query in wire format: one question, and an OPT record when `edns` gives a UDP size.
#[cfg(test)]
pub(super) fn build_query(
    id: u16,
    rd: bool,
    name: &str,
    qtype: u16,
    qclass: u16,
    edns: Option<u16>,
) -> Vec<u8> {
    let mut q = Vec::with_capacity(64);
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&(if rd { 0x0100u16 } else { 0 }).to_be_bytes());
    q.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, u8::from(edns.is_some())]);
    for label in name.split('.').filter(|l| !l.is_empty()) {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.push(0);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&qclass.to_be_bytes());
    if let Some(size) = edns {
        q.extend_from_slice(&[0, 0, 41]);
        q.extend_from_slice(&size.to_be_bytes());
        q.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    }
    q
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use simple_dns::Packet;

    const NAMES: &[&str] = &[
        "web.service.consul",
        "WEB.Service.dc1.CONSUL",
        "rails.web.service.consul",
        "_web._tcp.service.consul",
        "_web._rails.service.dc1.dc.consul",
        "_big._tcp.consul",
        "big.service.consul",
        "api.service.consul",
        "nosuch.service.consul",
        "n1.node.consul",
        "n5.node.dc1.consul",
        "0a000001.addr.dc1.consul",
        "20010db8000000000000000000000003.addr.consul",
        "consul",
        "dc1.consul",
        "example.com",
        "1.0.0.10.in-addr.arpa",
        "1.0.9.10.in-addr.arpa",
        "3.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa",
        "9.9.9.9.in-addr.arpa",
    ];
    const TYPES: &[u16] = &[1, 28, 33, 16, 255, 2, 6, 12, 15, 52, 252, 251, 41, 0, 65535];
    const CLASSES: &[u16] = &[1, 1, 1, 255, 3, 4, 254, 0x8001, 12345];
    const EDNS: &[Option<u16>] = &[
        None,
        None,
        Some(0),
        Some(512),
        Some(1232),
        Some(4096),
        Some(65535),
    ];

    fn valid_query() -> impl Strategy<Value = Vec<u8>> {
        (
            any::<u16>(),
            any::<bool>(),
            prop::sample::select(NAMES),
            prop::sample::select(TYPES),
            prop::sample::select(CLASSES),
            prop::sample::select(EDNS),
        )
            .prop_map(|(id, rd, name, qtype, qclass, edns)| {
                build_query(id, rd, name, qtype, qclass, edns)
            })
    }

    #[derive(Clone, Debug)]
    enum Mutation {
        FlipBit(usize, u8),
        Truncate(usize),
        Splice(usize, Vec<u8>),
        SetByte(usize, u8),
        Duplicate(usize, usize),
    }

    fn mutation() -> impl Strategy<Value = Mutation> {
        prop_oneof![
            (any::<usize>(), 0u8..8).prop_map(|(i, b)| Mutation::FlipBit(i, b)),
            any::<usize>().prop_map(Mutation::Truncate),
            (any::<usize>(), prop::collection::vec(any::<u8>(), 0..16))
                .prop_map(|(i, v)| Mutation::Splice(i, v)),
            (
                any::<usize>(),
                prop::sample::select(vec![0u8, 0x3f, 0x40, 0xc0, 0xc0 | 12, 0xff, 1, 63, 64])
            )
                .prop_map(|(i, b)| Mutation::SetByte(i, b)),
            (any::<usize>(), any::<usize>()).prop_map(|(i, n)| Mutation::Duplicate(i, n)),
        ]
    }

    fn apply(q: &mut Vec<u8>, m: &Mutation) {
        if q.is_empty() {
            return;
        }
        let at = |i: usize| i % q.len();
        match m {
            Mutation::FlipBit(i, b) => {
                let i = at(*i);
                q[i] ^= 1 << b;
            }
            Mutation::Truncate(i) => q.truncate(at(*i)),
            Mutation::Splice(i, v) => {
                let i = at(*i);
                q.splice(i..i, v.iter().copied());
            }
            Mutation::SetByte(i, b) => {
                let i = at(*i);
                q[i] = *b;
            }
            Mutation::Duplicate(i, n) => {
                let i = at(*i);
                let end = (i + n % 64).min(q.len());
                let seg = q[i..end].to_vec();
                q.extend_from_slice(&seg);
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        #[test]
        fn random_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..600)) {
            fuzz_query(&data);
        }

        /// Random bytes behind a plausible header (QDCOUNT 1), to get past the header checks.
        #[test]
        fn random_bodies_behind_a_query_header_never_panic(
            id in any::<u16>(),
            arcount in 0u8..3,
            body in prop::collection::vec(any::<u8>(), 0..300),
        ) {
            let mut data = id.to_be_bytes().to_vec();
            data.extend_from_slice(&[1, 0, 0, 1, 0, 0, 0, 0, 0, arcount]);
            data.extend_from_slice(&body);
            fuzz_query(&data);
        }

        #[test]
        fn mutated_queries_never_panic(q in valid_query(), ms in prop::collection::vec(mutation(), 1..6)) {
            let mut q = q;
            for m in &ms {
                apply(&mut q, m);
            }
            fuzz_query(&q);
        }

        /// `parse_query` hands simple-dns an EDNS query with ARCOUNT 0 when `lone_opt` has
        /// checked the OPT record itself; simple-dns's verdict on the whole query must be the
        /// same as on that copy.
        #[test]
        fn the_lone_opt_shortcut_keeps_simple_dns_verdict(
            q in valid_query(),
            ms in prop::collection::vec(mutation(), 0..4),
        ) {
            let mut q = q;
            for m in &ms {
                apply(&mut q, m);
            }
            let header_fits = q.len() >= 12 && q[4..12] == [0, 1, 0, 0, 0, 0, 0, 1];
            let Some((tail, qtype, qclass)) = super::super::question_tail(&q) else {
                return Ok(());
            };
            if header_fits && super::super::plain_name(&q, 12) && super::super::lone_opt(&q, tail + 4) {
                // Both as `parse_query` gives them to simple-dns: QTYPE and QCLASS it can
                // represent.
                if simple_dns::QTYPE::try_from(qtype).is_err()
                    || simple_dns::QCLASS::try_from(qclass & 0x7fff).is_err()
                {
                    q[tail..tail + 4].copy_from_slice(&[0, 1, 0, 1]);
                }
                let mut copy = q.clone();
                copy[10..12].copy_from_slice(&[0, 0]);
                prop_assert_eq!(Packet::parse(&q).is_ok(), Packet::parse(&copy).is_ok());
            }
        }

        /// simple-dns itself must not panic on hostile packets (we hand it whatever passes the
        /// header checks).
        #[test]
        fn simple_dns_parse_never_panics(data in prop::collection::vec(any::<u8>(), 0..400)) {
            let _ = Packet::parse(&data);
        }

        /// Every reply to a well-formed query parses back with simple-dns and echoes the ID,
        /// the question and RD (hickory-style parse -> emit -> parse round trip).
        #[test]
        fn replies_to_valid_queries_parse_back_and_echo_the_question(
            q in valid_query(),
            tcp in any::<bool>(),
            recursion in any::<bool>(),
            seed in any::<u64>(),
        ) {
            let transport = if tcp { Transport::Tcp } else { Transport::Udp };
            let mut responder = Responder::new(fixture_settings(recursion), seed);
            let mut out = Vec::new();
            let outcome = responder.handle_query(fixture(), &q, transport, &mut out);
            if outcome == Outcome::Forward {
                prop_assert!(recursion);
                prop_assert!(servfail(&q, &mut out));
            } else {
                prop_assert_eq!(outcome, Outcome::Reply);
            }
            // The question section is echoed byte for byte (name, QTYPE, QCLASS).
            let qlen = q.len() - if q[11] == 1 { 11 } else { 0 };
            prop_assert_eq!(&out[..2], &q[..2]);
            prop_assert_eq!(&out[12..qlen], &q[12..qlen]);
            prop_assert_eq!(out[2] & 0x01, q[2] & 0x01, "RD copied");
            let qtype = u16::from_be_bytes([q[qlen - 4], q[qlen - 3]]);
            let qclass = u16::from_be_bytes([q[qlen - 2], q[qlen - 1]]);
            let representable = !matches!(qtype, 52 | 0 | 65535) && matches!(qclass, 1 | 3 | 4 | 254 | 255 | 0x8001);
            if representable {
                let reply = Packet::parse(&out);
                prop_assert!(reply.is_ok(), "reply does not parse: {:?}", reply.err());
                let reply = reply.unwrap();
                prop_assert_eq!(reply.id(), u16::from_be_bytes([q[0], q[1]]));
                prop_assert_eq!(reply.questions.len(), 1);
                prop_assert!(reply.has_flags(simple_dns::PacketFlag::RESPONSE));
                prop_assert_eq!(reply.opt().is_some(), q[11] == 1);
            }
            if !tcp {
                let edns = if q[11] == 1 { u16::from_be_bytes([q[qlen + 3], q[qlen + 4]]) } else { 0 };
                prop_assert!(out.len() <= usize::from(edns).max(512));
            }
        }
    }

    /// A reply as compared across responders: everything but the ID, with the answer and
    /// additional sections in sorted order (round-robin may order them differently).
    fn normalized(reply: &[u8]) -> String {
        match Packet::parse(reply) {
            Ok(mut p) => {
                let mut answers: Vec<String> = p.answers.iter().map(|r| format!("{r:?}")).collect();
                let mut additional: Vec<String> = p
                    .additional_records
                    .iter()
                    .map(|r| format!("{r:?}"))
                    .collect();
                answers.sort();
                additional.sort();
                p.answers.clear();
                p.additional_records.clear();
                p.set_id(0);
                format!("{p:?} {answers:?} {additional:?}")
            }
            Err(_) => format!("{:?}", reply.get(2..)),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

        /// Whatever the questions and their order, a responder that keeps replies answers as a
        /// fresh one (empty cache) would, up to the ID and the round-robin order.
        #[test]
        fn cached_replies_equal_fresh_ones(
            qs in prop::collection::vec((valid_query(), prop::collection::vec(mutation(), 0..2), any::<bool>()), 1..12),
            repeats in 2usize..4,
            seed in any::<u64>(),
        ) {
            let mut kept = Responder::new(fixture_settings(false), seed);
            let mut out = Vec::new();
            let mut fresh_out = Vec::new();
            for round in 0..repeats {
                for (i, (q, ms, tcp)) in qs.iter().enumerate() {
                    let mut q = q.clone();
                    for m in ms {
                        apply(&mut q, m);
                    }
                    if q.len() >= 2 {
                        q[..2].copy_from_slice(&((round * 100 + i) as u16).to_be_bytes());
                    }
                    let transport = if *tcp { Transport::Tcp } else { Transport::Udp };
                    let a = kept.handle_query(fixture(), &q, transport, &mut out);
                    let b = Responder::new(fixture_settings(false), seed ^ 1)
                        .handle_query(fixture(), &q, transport, &mut fresh_out);
                    prop_assert_eq!(a, b);
                    prop_assert_eq!(out.get(..2), fresh_out.get(..2));
                    // Where a cut picks a random subset of instances, fresh responders differ
                    // too; elsewhere the answer is one set and must be the same. Sixteen fresh
                    // seeds agree on a random 3-of-4 cut with odds of 4^-15, so agreement
                    // means the answer is one set.
                    let want = normalized(&fresh_out);
                    let mut other = Vec::new();
                    let one_set = (2..=16).all(|k| {
                        Responder::new(fixture_settings(false), seed ^ k)
                            .handle_query(fixture(), &q, transport, &mut other);
                        normalized(&other) == want
                    });
                    if one_set {
                        prop_assert_eq!(normalized(&out), want);
                    }
                }
            }
        }
    }

    #[test]
    fn fixture_queries_never_panic_in_any_combination() {
        for name in NAMES {
            for &qtype in TYPES {
                for &edns in EDNS {
                    fuzz_query(&build_query(1, true, name, qtype, 1, edns));
                }
            }
        }
    }
}
