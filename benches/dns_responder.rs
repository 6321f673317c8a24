//! CPU cost of one DNS answer in the pure responder (no sockets): 500 services × 5 instances
//! on 100 nodes. Run with `cargo bench --bench dns_responder`; prints ns/query per kind.
//!
//! Each row answers a rotating set of names (so the catalog's hash maps see different keys),
//! repeats the timed loop and reports the median and the best run. The last column is the
//! part of that no responder built on simple-dns can avoid: simple-dns parsing the same queries
//! (as the responder hands them over: a lone OPT record is read by the responder itself) and
//! writing the same replies from ready-made packets, best run. To profile
//! one row, set `DNS_BENCH_ONLY` to a part of its label (`DNS_BENCH_ONLY=SRV`).

use std::hint::black_box;
use std::io::Cursor;
use std::time::Instant;

use simple_dns::Packet;

use outpost::catalog::{Catalog, Change, Command, Node, Registration, Service};
use outpost::dns::DnsSettings;
use outpost::dns::responder::{Outcome, Responder, Transport};

const SERVICES: usize = 500;
const INSTANCES: usize = 5;
const NODES: usize = 100;
const ROUNDS: usize = 7;
const QUERIES_PER_ROUND: usize = 100_000;

/// Rounds and queries per round. `cargo bench` passes `--bench`; `cargo test --all-targets`
/// runs this binary unoptimized and without it, as a smoke test: one short round.
fn rounds() -> (usize, usize) {
    if std::env::args().any(|a| a == "--bench") {
        (ROUNDS, QUERIES_PER_ROUND)
    } else {
        (1, 2_000)
    }
}

fn catalog() -> Catalog {
    let mut c = Catalog::new();
    let mut index = 0;
    let node = |n: usize| Node {
        name: format!("node-{n:03}"),
        address: format!("127.77.{}.{}", n / 250, n % 250 + 1),
        datacenter: "dc1".into(),
        tagged_addresses: Default::default(),
        meta: [("rack".to_string(), format!("r{}", n % 4))]
            .into_iter()
            .collect(),
    };
    for s in 0..SERVICES {
        for i in 0..INSTANCES {
            let n = (s * INSTANCES + i) % NODES;
            let name = format!("svc-{s:03}");
            let service = Service::new(&name, &name, &["v1"], 8000 + i as u16);
            index += 1;
            let cmd = Command::one(Change::Register(Registration {
                node: node(n),
                service: Some(service),
                checks: vec![],
            }));
            c.apply(index, &cmd).expect("registration");
        }
    }
    c
}

/// A query as `dig` sends it (RD, and EDNS with a 1232-byte UDP size unless `edns` is None).
fn query(id: u16, name: &str, qtype: u16, edns: Option<u16>) -> Vec<u8> {
    let mut q = Vec::new();
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, u8::from(edns.is_some())]);
    for label in name.split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.push(0);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&1u16.to_be_bytes());
    if let Some(size) = edns {
        q.extend_from_slice(&[0, 0, 41]);
        q.extend_from_slice(&size.to_be_bytes());
        q.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    }
    q
}

fn bench(
    label: &str,
    responder: &mut Responder,
    catalog: &Catalog,
    queries: &[Vec<u8>],
    transport: Transport,
) {
    if std::env::var("DNS_BENCH_ONLY").is_ok_and(|only| !label.contains(only.as_str())) {
        return;
    }
    let mut out = Vec::with_capacity(4096);
    // Warm up, and check that the queries are answered.
    let mut bytes = 0;
    for q in queries {
        assert_eq!(
            responder.handle_query(catalog, q, transport, &mut out),
            Outcome::Reply
        );
        bytes += out.len();
    }
    let (rounds, per_round) = rounds();
    let mut per_query = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let start = Instant::now();
        for i in 0..per_round {
            let q = &queries[i % queries.len()];
            black_box(responder.handle_query(catalog, black_box(q), transport, &mut out));
        }
        per_query.push(start.elapsed().as_nanos() as f64 / per_round as f64);
    }
    per_query.sort_by(f64::total_cmp);
    println!(
        "{label:<34} {:>8.0} {:>8.0} {:>8} {:>10.0}",
        per_query[rounds / 2],
        per_query[0],
        bytes / queries.len(),
        simple_dns_floor(responder, catalog, queries, transport)
    );
}

/// ns per query that simple-dns alone spends: `Packet::parse` on the queries without their OPT
/// record (ARCOUNT 0, as the responder parses these) and `write_compressed_to` of packets
/// parsed from the replies (best run).
fn simple_dns_floor(
    responder: &mut Responder,
    catalog: &Catalog,
    queries: &[Vec<u8>],
    transport: Transport,
) -> f64 {
    let mut replies = Vec::with_capacity(queries.len());
    for q in queries {
        let mut out = Vec::new();
        responder.handle_query(catalog, q, transport, &mut out);
        replies.push(out);
    }
    let packets: Vec<Packet<'_>> = replies
        .iter()
        .map(|r| Packet::parse(r).expect("replies parse"))
        .collect();
    let parsed: Vec<Vec<u8>> = queries
        .iter()
        .map(|q| {
            let mut q = q.clone();
            q[10..12].copy_from_slice(&[0, 0]);
            q
        })
        .collect();
    let mut buf = Vec::with_capacity(4096);
    let mut best = f64::MAX;
    let (rounds, per_round) = rounds();
    for _ in 0..rounds {
        let start = Instant::now();
        for i in 0..per_round / 2 {
            let q = &parsed[i % parsed.len()];
            black_box(Packet::parse(black_box(q)).is_ok());
            buf.clear();
            let written =
                packets[i % packets.len()].write_compressed_to(&mut Cursor::new(&mut buf));
            black_box((written.is_ok(), &buf));
        }
        best = best.min(start.elapsed().as_nanos() as f64 / (per_round / 2) as f64);
    }
    best
}

fn main() {
    let build = Instant::now();
    let catalog = catalog();
    println!(
        "catalog: {SERVICES} services x {INSTANCES} instances on {NODES} nodes, built in {:?}",
        build.elapsed()
    );
    let settings = DnsSettings {
        node_name: "node-000".into(),
        node_address: "127.77.0.1".parse().ok(),
        ..DnsSettings::default()
    };
    let mut r = Responder::new(settings, 1);
    let names = |f: &dyn Fn(usize) -> String, qtype: u16, edns: Option<u16>| -> Vec<Vec<u8>> {
        (0..256)
            .map(|i| query(i as u16, &f(i), qtype, edns))
            .collect()
    };
    let svc = |i: usize| format!("svc-{:03}.service.consul", (i * 7) % SERVICES);
    let node = |i: usize| format!("node-{:03}.node.consul", (i * 3) % NODES);
    let nx = |i: usize| format!("nosuch-{i:03}.service.consul");
    let edns = Some(1232);

    println!(
        "{:<34} {:>8} {:>8} {:>8} {:>10}",
        "query (UDP unless noted)", "median", "best", "bytes", "simple-dns"
    );
    println!(
        "{:<34} {:>8} {:>8} {:>8} {:>10}",
        "", "ns/q", "ns/q", "", "ns/q"
    );
    bench(
        "A svc (EDNS 1232, 5 answers)",
        &mut r,
        &catalog,
        &names(&svc, 1, edns),
        Transport::Udp,
    );
    bench(
        "A svc (no EDNS, cut to 3)",
        &mut r,
        &catalog,
        &names(&svc, 1, None),
        Transport::Udp,
    );
    bench(
        "SRV svc (EDNS 1232, 5 + glue)",
        &mut r,
        &catalog,
        &names(&svc, 33, edns),
        Transport::Udp,
    );
    bench(
        "SRV svc (TCP)",
        &mut r,
        &catalog,
        &names(&svc, 33, None),
        Transport::Tcp,
    );
    bench(
        "A node (EDNS 1232)",
        &mut r,
        &catalog,
        &names(&node, 1, edns),
        Transport::Udp,
    );
    bench(
        "NXDOMAIN svc (EDNS 1232)",
        &mut r,
        &catalog,
        &names(&nx, 1, edns),
        Transport::Udp,
    );
}
