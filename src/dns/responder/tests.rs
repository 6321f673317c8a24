//! Behaviour of the responder, case by case, against Consul 1.x (`agent/dns.go`) and the RFCs.
//! Replies are parsed back with simple-dns and compared in a dig-like text form.

use std::net::{Ipv4Addr, Ipv6Addr};

use simple_dns::rdata::RData;
use simple_dns::{Packet, PacketFlag, RCODE, ResourceRecord};

use super::fuzzing::{build_query, check, fixture, fixture_settings, node, register, service};
use super::*;
use crate::catalog::{Catalog, Health, Weights};

const A: u16 = 1;
const NS_: u16 = 2;
const SOA_: u16 = 6;
const PTR_: u16 = 12;
const TXT_: u16 = 16;
const AAAA_: u16 = 28;
const SRV_: u16 = 33;
const ANY: u16 = 255;
const IN: u16 = 1;

struct Got {
    outcome: Outcome,
    bytes: Vec<u8>,
}

impl Got {
    fn packet(&self) -> Packet<'_> {
        assert_eq!(self.outcome, Outcome::Reply);
        Packet::parse(&self.bytes).expect("reply parses")
    }
    fn rcode(&self) -> RCODE {
        self.packet().rcode()
    }
    fn flag(&self, f: PacketFlag) -> bool {
        self.packet().has_flags(f)
    }
    fn answers(&self) -> Vec<String> {
        self.packet().answers.iter().map(show).collect()
    }
    fn sorted_answers(&self) -> Vec<String> {
        let mut v = self.answers();
        v.sort();
        v
    }
    fn authority(&self) -> Vec<String> {
        self.packet().name_servers.iter().map(show).collect()
    }
    fn additional(&self) -> Vec<String> {
        self.packet().additional_records.iter().map(show).collect()
    }
    fn sorted_additional(&self) -> Vec<String> {
        let mut v = self.additional();
        v.sort();
        v
    }
}

/// One record as dig would print it (without class, names without the final dot).
fn show(rr: &ResourceRecord<'_>) -> String {
    let data = match &rr.rdata {
        RData::A(a) => format!("A {}", Ipv4Addr::from(a.address)),
        RData::AAAA(a) => format!("AAAA {}", Ipv6Addr::from(a.address)),
        RData::SRV(s) => format!("SRV {} {} {} {}", s.priority, s.weight, s.port, s.target),
        RData::TXT(t) => format!("TXT {}", String::try_from(t.clone()).unwrap()),
        RData::SOA(s) => {
            format!(
                "SOA {} {} {} {} {} {} {}",
                s.mname, s.rname, s.serial, s.refresh, s.retry, s.expire, s.minimum
            )
        }
        RData::NS(n) => format!("NS {}", n.0),
        RData::PTR(p) => format!("PTR {}", p.0),
        other => format!("{other:?}"),
    };
    format!("{} {} {}", rr.name, rr.ttl, data)
}

fn run(r: &mut Responder, catalog: &Catalog, query: &[u8], transport: Transport) -> Got {
    let mut out = Vec::new();
    let outcome = r.handle_query(catalog, query, transport, &mut out);
    Got {
        outcome,
        bytes: out,
    }
}

fn ask_in(r: &mut Responder, catalog: &Catalog, name: &str, qtype: u16) -> Got {
    run(
        r,
        catalog,
        &build_query(0x1234, true, name, qtype, IN, None),
        Transport::Udp,
    )
}

/// A UDP query without EDNS against the fixture catalog with default settings.
fn ask(name: &str, qtype: u16) -> Got {
    let mut r = Responder::new(fixture_settings(false), 1);
    ask_in(&mut r, fixture(), name, qtype)
}

fn ask_tcp(name: &str, qtype: u16) -> Got {
    let mut r = Responder::new(fixture_settings(false), 1);
    run(
        &mut r,
        fixture(),
        &build_query(7, false, name, qtype, IN, None),
        Transport::Tcp,
    )
}

fn ask_edns(name: &str, qtype: u16, size: u16) -> Got {
    let mut r = Responder::new(fixture_settings(false), 1);
    run(
        &mut r,
        fixture(),
        &build_query(7, false, name, qtype, IN, Some(size)),
        Transport::Udp,
    )
}

fn soa_line(serial: u64) -> String {
    format!("consul 0 SOA ns.consul hostmaster.consul {serial} 3600 600 86400 0")
}

fn fixture_soa() -> String {
    soa_line(fixture().index())
}

// ---- services ----

#[test]
fn a_query_returns_addresses_of_healthy_instances() {
    // n1 passing, n2 warning: kept; n3 is IPv6; n4 critical; n5 has a host name.
    let got = ask("web.service.consul", A);
    assert_eq!(got.rcode(), RCODE::NoError);
    assert_eq!(
        got.sorted_answers(),
        [
            "web.service.consul 0 A 10.0.0.1",
            "web.service.consul 0 A 10.0.0.2"
        ]
    );
    assert!(got.authority().is_empty());
    assert!(got.additional().is_empty());
}

#[test]
fn aaaa_query_returns_only_ipv6_addresses() {
    assert_eq!(
        ask("web.service.consul", AAAA_).answers(),
        ["web.service.consul 0 AAAA 2001:db8::3"]
    );
}

#[test]
fn any_query_returns_both_families() {
    let got = ask_tcp("web.service.consul", ANY);
    assert_eq!(
        got.sorted_answers(),
        [
            "web.service.consul 0 A 10.0.0.1",
            "web.service.consul 0 A 10.0.0.2",
            "web.service.consul 0 AAAA 2001:db8::3"
        ]
    );
}

#[test]
fn answers_keep_the_clients_spelling_of_the_name() {
    // RFC 4343 3: case is preserved in answers; 0x20-randomizing resolvers rely on it.
    let got = ask("WeB.SeRvIcE.CoNsUl", A);
    assert!(
        got.answers()
            .iter()
            .all(|a| a.starts_with("WeB.SeRvIcE.CoNsUl 0 A ")),
        "{:?}",
        got.answers()
    );
    let q = got.packet();
    assert_eq!(q.questions[0].qname.to_string(), "WeB.SeRvIcE.CoNsUl");
}

#[test]
fn srv_answer_has_node_target_and_glue() {
    let got = ask_tcp("web.service.consul", SRV_);
    assert_eq!(
        got.sorted_answers(),
        [
            "web.service.consul 0 SRV 1 1 80 n1.node.dc1.consul",
            "web.service.consul 0 SRV 1 1 80 n2.node.dc1.consul",
            "web.service.consul 0 SRV 1 1 81 n3.node.dc1.consul",
            "web.service.consul 0 SRV 1 1 82 host.example.com",
        ]
    );
    // Glue for every IP target; none for the host name (Consul would resolve it through
    // its recursors, which the pure core cannot).
    assert_eq!(
        got.sorted_additional(),
        [
            "n1.node.dc1.consul 0 A 10.0.0.1",
            "n2.node.dc1.consul 0 A 10.0.0.2",
            "n3.node.dc1.consul 0 AAAA 2001:db8::3"
        ]
    );
}

#[test]
fn srv_targets_use_the_clients_spelling_of_the_domain() {
    // Consul's getResponseDomain: the domain as it appears in the question.
    let got = ask_tcp("web.service.CONSUL", SRV_);
    assert!(
        got.answers()
            .iter()
            .any(|a| a.ends_with("80 n1.node.dc1.CONSUL")),
        "{:?}",
        got.answers()
    );
}

#[test]
fn additional_records_follow_the_order_of_answers() {
    let got = ask_tcp("big.service.consul", SRV_);
    let targets: Vec<String> = got
        .answers()
        .iter()
        .map(|a| a.rsplit(' ').next().unwrap().to_string())
        .collect();
    let owners: Vec<String> = got
        .additional()
        .iter()
        .map(|a| a.split(' ').next().unwrap().to_string())
        .collect();
    assert_eq!(targets, owners);
}

#[test]
fn srv_uses_addr_target_when_the_service_has_its_own_address() {
    let got = ask("api.service.consul", SRV_);
    assert_eq!(
        got.answers(),
        ["api.service.consul 0 SRV 1 1 8080 0a090001.addr.dc1.consul"]
    );
    assert_eq!(got.additional(), ["0a090001.addr.dc1.consul 0 A 10.9.0.1"]);
    assert_eq!(
        ask("api.service.consul", A).answers(),
        ["api.service.consul 0 A 10.9.0.1"]
    );
}

#[test]
fn srv_addr_target_for_ipv6_service_address_has_32_hex_digits() {
    let mut c = Catalog::new();
    let mut s = service("db", "db", &[], 5432);
    s.address = "2001:db8::a".into();
    register(&mut c, node("n1", "10.0.0.1"), Some(s), vec![]);
    let mut r = Responder::new(fixture_settings(false), 1);
    let got = ask_in(&mut r, &c, "db.service.consul", SRV_);
    assert_eq!(
        got.answers(),
        ["db.service.consul 0 SRV 1 1 5432 20010db800000000000000000000000a.addr.dc1.consul"]
    );
    assert_eq!(
        got.additional(),
        ["20010db800000000000000000000000a.addr.dc1.consul 0 AAAA 2001:db8::a"]
    );
}

#[test]
fn srv_weight_follows_instance_health() {
    // Consul's findWeight: Weights.Passing for passing instances, Weights.Warning for warning.
    let mut c = Catalog::new();
    let weights = Weights {
        passing: 10,
        warning: 3,
    };
    let mut s1 = service("w", "w", &[], 1);
    s1.weights = weights;
    let mut s2 = s1.clone();
    s2.port = 2;
    register(&mut c, node("a", "10.0.0.1"), Some(s1), vec![]);
    register(
        &mut c,
        node("b", "10.0.0.2"),
        Some(s2),
        vec![check("chk", "w", Health::Warning)],
    );
    let mut r = Responder::new(fixture_settings(false), 1);
    let got = ask_in(&mut r, &c, "w.service.consul", SRV_);
    assert_eq!(
        got.sorted_answers(),
        [
            "w.service.consul 0 SRV 1 10 1 a.node.dc1.consul",
            "w.service.consul 0 SRV 1 3 2 b.node.dc1.consul"
        ]
    );
}

#[test]
fn duplicate_addresses_give_one_a_record_and_one_glue() {
    let mut c = Catalog::new();
    register(
        &mut c,
        node("n1", "10.0.0.1"),
        Some(service("x1", "x", &[], 1)),
        vec![],
    );
    register(
        &mut c,
        node("n1", "10.0.0.1"),
        Some(service("x2", "x", &[], 2)),
        vec![],
    );
    let mut r = Responder::new(fixture_settings(false), 1);
    assert_eq!(
        ask_in(&mut r, &c, "x.service.consul", A).answers(),
        ["x.service.consul 0 A 10.0.0.1"]
    );
    let got = ask_in(&mut r, &c, "x.service.consul", SRV_);
    assert_eq!(
        got.sorted_answers(),
        [
            "x.service.consul 0 SRV 1 1 1 n1.node.dc1.consul",
            "x.service.consul 0 SRV 1 1 2 n1.node.dc1.consul"
        ]
    );
    assert_eq!(got.additional(), ["n1.node.dc1.consul 0 A 10.0.0.1"]);
}

#[test]
fn tag_filters_select_instances() {
    assert_eq!(
        ask("rails.web.service.consul", A).sorted_answers(),
        [
            "rails.web.service.consul 0 A 10.0.0.1",
            "rails.web.service.consul 0 A 10.0.0.2"
        ]
    );
    assert_eq!(
        ask("V1.web.service.consul", A).answers(),
        ["V1.web.service.consul 0 A 10.0.0.1"]
    );
    assert_eq!(
        ask("nosuchtag.web.service.consul", A).rcode(),
        RCODE::NameError
    );
}

#[test]
fn rfc2782_names_select_by_tag_and_tcp_means_no_tag() {
    // RFC 2782 `_Service._Proto.Name`; Consul reads `_proto` as a tag, except `_tcp`.
    assert_eq!(ask_tcp("_web._tcp.service.consul", SRV_).answers().len(), 4);
    assert_eq!(
        ask_tcp("_web._rails.service.consul", SRV_).answers().len(),
        2
    );
    assert_eq!(
        ask_tcp("_web._v1.service.dc1.consul", SRV_).answers(),
        ["_web._v1.service.dc1.consul 0 SRV 1 1 80 n1.node.dc1.consul"]
    );
    // `_udp` is just a tag nobody has.
    assert_eq!(
        ask_tcp("_web._udp.service.consul", SRV_).rcode(),
        RCODE::NameError
    );
}

#[test]
fn srv_shorthand_works_without_the_service_label() {
    // Consul: for SRV, a label starting with `_` stands in for `service`.
    assert_eq!(ask_tcp("_web._tcp.consul", SRV_).answers().len(), 4);
    assert_eq!(ask_tcp("_web._tcp.consul", A).rcode(), RCODE::NameError);
}

#[test]
fn dotted_tags_match_whole_tags() {
    let mut c = Catalog::new();
    register(
        &mut c,
        node("n1", "10.0.0.1"),
        Some(service("s", "s", &["a.b"], 1)),
        vec![],
    );
    let mut r = Responder::new(fixture_settings(false), 1);
    assert_eq!(
        ask_in(&mut r, &c, "a.b.s.service.consul", A).answers(),
        ["a.b.s.service.consul 0 A 10.0.0.1"]
    );
    assert_eq!(
        ask_in(&mut r, &c, "b.s.service.consul", A).rcode(),
        RCODE::NameError
    );
}

#[test]
fn critical_instances_are_left_out_and_all_critical_is_nxdomain() {
    let answers = ask("web.service.consul", A).answers();
    assert!(
        !answers.iter().any(|a| a.ends_with("10.0.0.4")),
        "{answers:?}"
    );
    let mut c = Catalog::new();
    register(
        &mut c,
        node("n1", "10.0.0.1"),
        Some(service("dead", "dead", &[], 1)),
        vec![check("c", "dead", Health::Critical)],
    );
    let mut r = Responder::new(fixture_settings(false), 1);
    let got = ask_in(&mut r, &c, "dead.service.consul", A);
    assert_eq!(got.rcode(), RCODE::NameError);
    assert_eq!(got.authority(), [soa_line(c.index())]);
}

#[test]
fn only_passing_leaves_out_warning_instances() {
    let mut settings = fixture_settings(false);
    settings.only_passing = true;
    let mut r = Responder::new(settings, 1);
    assert_eq!(
        ask_in(&mut r, fixture(), "web.service.consul", A).answers(),
        ["web.service.consul 0 A 10.0.0.1"]
    );
}

#[test]
fn unknown_service_is_nxdomain_with_soa() {
    let got = ask("nosuch.service.consul", A);
    assert_eq!(got.rcode(), RCODE::NameError);
    assert!(got.answers().is_empty());
    assert_eq!(got.authority(), [fixture_soa()]);
    assert!(got.flag(PacketFlag::AUTHORITATIVE_ANSWER));
}

#[test]
fn service_without_address_of_the_asked_family_is_nodata_with_soa() {
    // RFC 2308 2.2: NODATA is NOERROR, an empty answer and the SOA in authority.
    let mut c = Catalog::new();
    register(
        &mut c,
        node("n3", "2001:db8::3"),
        Some(service("v6", "v6", &[], 1)),
        vec![],
    );
    let mut r = Responder::new(fixture_settings(false), 1);
    let got = ask_in(&mut r, &c, "v6.service.consul", A);
    assert_eq!(got.rcode(), RCODE::NoError);
    assert!(got.answers().is_empty());
    assert_eq!(got.authority(), [soa_line(c.index())]);
    // Types a service has no records of are NODATA too.
    let got = ask("web.service.consul", TXT_);
    assert_eq!(
        (got.rcode(), got.answers().len(), got.authority().len()),
        (RCODE::NoError, 0, 1)
    );
}

#[test]
fn ttls_come_from_settings() {
    let mut settings = fixture_settings(false);
    settings.node_ttl = 60;
    settings.service_ttl.insert("web".into(), 30);
    settings.service_ttl.insert("b*".into(), 5);
    settings.service_ttl.insert("*".into(), 1);
    let mut r = Responder::new(settings, 1);
    let cat = fixture();
    assert!(
        ask_in(&mut r, cat, "WEB.service.consul", A)
            .answers()
            .iter()
            .all(|a| a.contains(" 30 A "))
    );
    assert!(
        ask_in(&mut r, cat, "big.service.consul", A)
            .answers()
            .iter()
            .all(|a| a.contains(" 5 A "))
    );
    assert_eq!(
        ask_in(&mut r, cat, "api.service.consul", A).answers(),
        ["api.service.consul 1 A 10.9.0.1"]
    );
    assert_eq!(
        ask_in(&mut r, cat, "n1.node.consul", A).answers(),
        ["n1.node.consul 60 A 10.0.0.1"]
    );
    let srv = ask_in(&mut r, cat, "api.service.consul", SRV_);
    assert_eq!(srv.additional(), ["0a090001.addr.dc1.consul 1 A 10.9.0.1"]);
}

#[test]
fn answers_are_shuffled_per_query_but_keep_the_same_set() {
    let cat = fixture();
    let mut orders = std::collections::HashSet::new();
    let mut reference: Option<Vec<String>> = None;
    for seed in 0..10 {
        let mut r = Responder::new(fixture_settings(false), seed);
        for _ in 0..3 {
            let got = run(
                &mut r,
                cat,
                &build_query(1, false, "big.service.consul", A, IN, None),
                Transport::Tcp,
            );
            let answers = got.answers();
            let mut set = answers.clone();
            set.sort();
            assert_eq!(set.len(), 40);
            match &reference {
                Some(r) => assert_eq!(&set, r),
                None => reference = Some(set),
            }
            orders.insert(answers);
        }
    }
    assert!(
        orders.len() > 20,
        "only {} distinct orders in 30 queries",
        orders.len()
    );
    // The same seed gives the same order: the core is deterministic.
    let a = run(
        &mut Responder::new(fixture_settings(false), 42),
        cat,
        &build_query(1, false, "big.service.consul", A, IN, None),
        Transport::Tcp,
    );
    let b = run(
        &mut Responder::new(fixture_settings(false), 42),
        cat,
        &build_query(1, false, "big.service.consul", A, IN, None),
        Transport::Tcp,
    );
    assert_eq!(a.bytes, b.bytes);
}

// ---- nodes ----

#[test]
fn node_a_txt_and_any() {
    assert_eq!(
        ask("n1.node.consul", A).answers(),
        ["n1.node.consul 0 A 10.0.0.1"]
    );
    assert_eq!(
        ask("N1.node.dc1.consul", A).answers(),
        ["N1.node.dc1.consul 0 A 10.0.0.1"]
    );
    // Node meta as RFC 1464 `key=value`; `rfc1035-` keys carry the raw value (Consul).
    assert_eq!(
        ask("n1.node.consul", TXT_).answers(),
        ["n1.node.consul 0 TXT rack=r1", "n1.node.consul 0 TXT x=y"]
    );
    assert_eq!(
        ask("n1.node.consul", ANY).answers(),
        [
            "n1.node.consul 0 A 10.0.0.1",
            "n1.node.consul 0 TXT rack=r1",
            "n1.node.consul 0 TXT x=y"
        ]
    );
    assert_eq!(
        ask("n3.node.consul", AAAA_).answers(),
        ["n3.node.consul 0 AAAA 2001:db8::3"]
    );
}

#[test]
fn node_without_matching_address_is_nodata() {
    for (name, qtype) in [
        ("n3.node.consul", A),
        ("n1.node.consul", AAAA_),
        ("n5.node.consul", A),
        ("n1.node.consul", SRV_),
    ] {
        let got = ask(name, qtype);
        assert_eq!(got.rcode(), RCODE::NoError, "{name} {qtype}");
        assert!(got.answers().is_empty(), "{name} {qtype}");
        assert_eq!(got.authority(), [fixture_soa()], "{name} {qtype}");
    }
}

#[test]
fn unknown_node_is_nxdomain() {
    let got = ask("nosuch.node.consul", A);
    assert_eq!(got.rcode(), RCODE::NameError);
    assert_eq!(got.authority(), [fixture_soa()]);
}

#[test]
fn node_names_with_dots_are_found() {
    let mut c = Catalog::new();
    register(&mut c, node("rack1.box", "10.1.1.1"), None, vec![]);
    let mut r = Responder::new(fixture_settings(false), 1);
    assert_eq!(
        ask_in(&mut r, &c, "rack1.box.node.consul", A).answers(),
        ["rack1.box.node.consul 0 A 10.1.1.1"]
    );
}

#[test]
fn rfc1464_escapes_keys_and_values_like_consul() {
    assert_eq!(rfc1464("a=b", "c`d"), "a`=b=c``d");
    assert_eq!(rfc1464(" k ", "v"), "` k` =v");
    assert_eq!(rfc1464("k", ""), "k=");
}

#[test]
fn long_txt_values_are_split_into_255_byte_strings() {
    let mut c = Catalog::new();
    let mut n = node("n1", "10.0.0.1");
    n.meta.insert("k".into(), "v".repeat(600));
    register(&mut c, n, None, vec![]);
    let mut r = Responder::new(fixture_settings(false), 1);
    let got = run(
        &mut r,
        &c,
        &build_query(1, false, "n1.node.consul", TXT_, IN, None),
        Transport::Tcp,
    );
    let p = got.packet();
    let RData::TXT(txt) = &p.answers[0].rdata else {
        panic!("not TXT")
    };
    assert_eq!(
        String::try_from(txt.clone()).unwrap(),
        format!("k={}", "v".repeat(600))
    );
}

// ---- addr, apex, datacenters ----

#[test]
fn addr_names_decode_hex_addresses() {
    assert_eq!(
        ask("0A000001.addr.dc1.consul", A).answers(),
        ["0A000001.addr.dc1.consul 0 A 10.0.0.1"]
    );
    assert_eq!(
        ask("7f000001.addr.consul", ANY).answers(),
        ["7f000001.addr.consul 0 A 127.0.0.1"]
    );
    assert_eq!(
        ask("20010db8000000000000000000000003.addr.consul", AAAA_).answers(),
        ["20010db8000000000000000000000003.addr.consul 0 AAAA 2001:db8::3"]
    );
    let wrong_type = ask("0a000001.addr.consul", AAAA_);
    assert_eq!(
        (wrong_type.rcode(), wrong_type.answers().len()),
        (RCODE::NoError, 0)
    );
    assert_eq!(wrong_type.authority(), [fixture_soa()]);
    assert_eq!(ask("0a00000g.addr.consul", A).rcode(), RCODE::NameError);
    assert_eq!(ask("0a0000011.addr.consul", A).rcode(), RCODE::NameError);
}

#[test]
fn apex_soa_has_ns_and_glue() {
    let got = ask("consul", SOA_);
    assert_eq!(got.rcode(), RCODE::NoError);
    // Serial = catalog index (deterministic; Consul uses the clock).
    assert_eq!(got.answers(), [fixture_soa()]);
    assert_eq!(got.authority(), ["consul 0 NS agent-1.node.dc1.consul"]);
    assert_eq!(got.additional(), ["agent-1.node.dc1.consul 0 A 10.0.0.1"]);
    assert!(got.flag(PacketFlag::AUTHORITATIVE_ANSWER));
}

#[test]
fn apex_ns_has_glue_and_other_types_are_nodata() {
    let got = ask("consul", NS_);
    assert_eq!(got.answers(), ["consul 0 NS agent-1.node.dc1.consul"]);
    assert_eq!(got.additional(), ["agent-1.node.dc1.consul 0 A 10.0.0.1"]);
    let got = ask("consul", ANY);
    assert_eq!(
        got.answers(),
        [fixture_soa(), "consul 0 NS agent-1.node.dc1.consul".into()]
    );
    let got = ask("consul", A);
    assert_eq!((got.rcode(), got.answers().len()), (RCODE::NoError, 0));
    assert_eq!(got.authority(), [fixture_soa()]);
}

#[test]
fn soa_timers_come_from_settings() {
    let mut settings = fixture_settings(false);
    settings.soa = [1, 2, 3, 4];
    let mut r = Responder::new(settings, 1);
    let got = ask_in(&mut r, fixture(), "nosuch.node.consul", A);
    assert_eq!(
        got.authority(),
        [format!(
            "consul 4 SOA ns.consul hostmaster.consul {} 1 2 3 4",
            fixture().index()
        )]
    );
}

#[test]
fn our_datacenter_is_optional_and_others_do_not_exist() {
    assert_eq!(ask("web.service.dc1.consul", A).answers().len(), 2);
    assert_eq!(ask("web.service.DC1.dc.consul", A).answers().len(), 2);
    for name in [
        "web.service.dc2.consul",
        "web.service.p.peer.consul",
        "dc1.consul",
        "service.consul",
        "foo.consul",
        "n1.node.dc2.consul",
    ] {
        let got = ask(name, A);
        assert_eq!(got.rcode(), RCODE::NameError, "{name}");
        assert_eq!(got.authority(), [fixture_soa()], "{name}");
        assert!(got.flag(PacketFlag::AUTHORITATIVE_ANSWER), "{name}");
    }
}

// ---- outside the domain, reverse lookups ----

#[test]
fn names_outside_the_domain_are_refused_without_recursion() {
    let got = ask("example.com", A);
    assert_eq!(got.rcode(), RCODE::Refused);
    assert!(!got.flag(PacketFlag::AUTHORITATIVE_ANSWER));
    assert!(!got.flag(PacketFlag::RECURSION_AVAILABLE));
    assert_eq!(got.packet().questions[0].qname.to_string(), "example.com");
}

#[test]
fn names_outside_the_domain_are_forwarded_with_recursion() {
    let mut r = Responder::new(fixture_settings(true), 1);
    let got = ask_in(&mut r, fixture(), "example.com", A);
    assert_eq!(got.outcome, Outcome::Forward);
    assert!(got.bytes.is_empty());
}

#[test]
fn ptr_finds_nodes_then_service_addresses() {
    assert_eq!(
        ask("1.0.0.10.in-addr.arpa", PTR_).answers(),
        ["1.0.0.10.in-addr.arpa 0 PTR n1.node.dc1.consul"]
    );
    assert_eq!(
        ask("1.0.9.10.in-addr.arpa", PTR_).answers(),
        ["1.0.9.10.in-addr.arpa 0 PTR api.service.dc1.consul"]
    );
    let v6 = "3.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.B.D.0.1.0.0.2.ip6.arpa";
    assert_eq!(
        ask(v6, PTR_).answers(),
        [format!("{v6} 0 PTR n3.node.dc1.consul")]
    );
    assert!(ask(v6, PTR_).flag(PacketFlag::AUTHORITATIVE_ANSWER));
}

#[test]
fn ptr_for_unknown_addresses_is_nxdomain_or_forwarded() {
    let got = ask("9.9.9.9.in-addr.arpa", PTR_);
    assert_eq!(got.rcode(), RCODE::NameError);
    assert_eq!(got.authority(), [fixture_soa()]);
    let mut r = Responder::new(fixture_settings(true), 1);
    assert_eq!(
        ask_in(&mut r, fixture(), "9.9.9.9.in-addr.arpa", PTR_).outcome,
        Outcome::Forward
    );
    assert_eq!(
        ask_in(&mut r, fixture(), "1.0.0.10.in-addr.arpa", PTR_)
            .answers()
            .len(),
        1
    );
}

#[test]
fn ptr_names_asked_for_other_types_are_nodata() {
    let got = ask("1.0.0.10.in-addr.arpa", A);
    assert_eq!(
        (got.rcode(), got.answers().len(), got.authority().len()),
        (RCODE::NoError, 0, 1)
    );
}

// ---- header flags ----

#[test]
fn rd_is_copied_and_ra_follows_recursion() {
    let mut r = Responder::new(fixture_settings(false), 1);
    let cat = fixture();
    let with_rd = run(
        &mut r,
        cat,
        &build_query(1, true, "web.service.consul", A, IN, None),
        Transport::Udp,
    );
    assert!(with_rd.flag(PacketFlag::RECURSION_DESIRED));
    assert!(!with_rd.flag(PacketFlag::RECURSION_AVAILABLE));
    let without_rd = run(
        &mut r,
        cat,
        &build_query(1, false, "web.service.consul", A, IN, None),
        Transport::Udp,
    );
    assert!(!without_rd.flag(PacketFlag::RECURSION_DESIRED));
    let mut r = Responder::new(fixture_settings(true), 1);
    assert!(ask_in(&mut r, cat, "web.service.consul", A).flag(PacketFlag::RECURSION_AVAILABLE));
}

#[test]
fn authoritative_answers_have_aa() {
    for (name, qtype) in [
        ("web.service.consul", A),
        ("nosuch.service.consul", A),
        ("consul", SOA_),
        ("n1.node.consul", TXT_),
    ] {
        let got = ask(name, qtype);
        assert!(got.flag(PacketFlag::AUTHORITATIVE_ANSWER), "{name}");
        assert!(got.flag(PacketFlag::RESPONSE), "{name}");
        assert_eq!(got.packet().id(), 0x1234);
    }
}

// ---- sizes, truncation, EDNS ----

#[test]
fn udp_without_edns_cuts_to_udp_answer_limit_without_tc() {
    // Consul's trimUDPResponse: at most udp_answer_limit (3) answers; TC only with
    // enable_truncate.
    let got = ask("big.service.consul", A);
    assert_eq!(got.answers().len(), 3);
    assert!(!got.flag(PacketFlag::TRUNCATION));
    let mut settings = fixture_settings(false);
    settings.enable_truncate = true;
    let mut r = Responder::new(settings, 1);
    let got = ask_in(&mut r, fixture(), "big.service.consul", A);
    assert_eq!(got.answers().len(), 3);
    assert!(got.flag(PacketFlag::TRUNCATION));
}

#[test]
fn udp_answer_limit_drops_glue_of_dropped_answers() {
    let got = ask("big.service.consul", SRV_);
    assert_eq!(got.answers().len(), 3);
    assert_eq!(got.additional().len(), 3);
    assert_glue_matches_targets(&got);
}

#[test]
fn udp_answer_limit_is_capped_at_eight() {
    let mut settings = fixture_settings(false);
    settings.udp_answer_limit = 100;
    let mut r = Responder::new(settings, 1);
    assert_eq!(
        ask_in(&mut r, fixture(), "big.service.consul", A)
            .answers()
            .len(),
        8
    );
}

fn assert_glue_matches_targets(got: &Got) {
    let p = got.packet();
    let targets: Vec<String> = p
        .answers
        .iter()
        .filter_map(|rr| match &rr.rdata {
            RData::SRV(s) => Some(s.target.to_string()),
            _ => None,
        })
        .collect();
    for extra in &p.additional_records {
        assert!(
            targets.contains(&extra.name.to_string()),
            "glue {} without answer",
            extra.name
        );
    }
    for t in &targets {
        assert!(
            p.additional_records
                .iter()
                .any(|e| &e.name.to_string() == t),
            "answer {t} without glue"
        );
    }
}

#[test]
fn udp_reply_too_big_for_512_bytes_is_cut_with_tc() {
    // 8 SRV records with glue are ~580 bytes: cut to fit even without enable_truncate.
    let mut settings = fixture_settings(false);
    settings.udp_answer_limit = 8;
    let mut r = Responder::new(settings, 1);
    let got = ask_in(&mut r, fixture(), "big.service.consul", SRV_);
    assert!(got.bytes.len() <= 512, "{} bytes", got.bytes.len());
    assert!(got.flag(PacketFlag::TRUNCATION));
    let n = got.answers().len();
    assert!((1..8).contains(&n), "{n} answers");
    assert_glue_matches_targets(&got);
}

#[test]
fn edns_raises_the_udp_limit_and_truncates_to_it() {
    let got = ask_edns("big.service.consul", SRV_, 4096);
    assert_eq!(got.answers().len(), 40);
    assert!(!got.flag(PacketFlag::TRUNCATION));
    let got = ask_edns("big.service.consul", SRV_, 1232);
    assert!(got.bytes.len() <= 1232, "{} bytes", got.bytes.len());
    let n = got.answers().len();
    assert!((10..40).contains(&n), "{n} answers");
    assert!(got.flag(PacketFlag::TRUNCATION));
    assert_glue_matches_targets(&got);
    // Binary search keeps the most that fit: one more answer would not.
    assert!(
        got.bytes.len() + 60 > 1232,
        "{} bytes for {n} answers",
        got.bytes.len()
    );
}

#[test]
fn edns_512_still_applies_the_answer_limit() {
    assert_eq!(ask_edns("big.service.consul", A, 512).answers().len(), 3);
    assert_eq!(ask_edns("big.service.consul", A, 100).answers().len(), 3);
}

#[test]
fn tcp_gets_every_answer() {
    let got = ask_tcp("big.service.consul", SRV_);
    assert_eq!((got.answers().len(), got.additional().len()), (40, 40));
    assert!(!got.flag(PacketFlag::TRUNCATION));
}

#[test]
fn tcp_replies_are_capped_at_64k() {
    let mut c = Catalog::new();
    for i in 0..5000u32 {
        let ip = Ipv4Addr::from(0x0a00_0000 + i);
        register(
            &mut c,
            node(&format!("h{i}"), &ip.to_string()),
            Some(service("s", "huge", &[], 1)),
            vec![],
        );
    }
    let mut r = Responder::new(fixture_settings(false), 1);
    let got = run(
        &mut r,
        &c,
        &build_query(1, false, "huge.service.consul", A, IN, None),
        Transport::Tcp,
    );
    assert!(got.bytes.len() <= 65535);
    assert!(got.flag(PacketFlag::TRUNCATION));
    assert!(got.answers().len() > 3000);
    let got = run(
        &mut r,
        &c,
        &build_query(1, false, "huge.service.consul", A, IN, Some(4096)),
        Transport::Udp,
    );
    assert!(got.bytes.len() <= 4096 && got.flag(PacketFlag::TRUNCATION));
}

#[test]
fn opt_is_echoed_with_our_udp_size() {
    assert!(ask("web.service.consul", A).packet().opt().is_none());
    for (client, ours) in [(1232, 1232), (100, 512), (65535, 4096)] {
        let got = ask_edns("web.service.consul", A, client);
        let p = got.packet();
        let opt = p.opt().expect("OPT echoed");
        assert_eq!(
            (opt.udp_packet_size, opt.version),
            (ours, 0),
            "client {client}"
        );
    }
    // NXDOMAIN and REFUSED carry it too (RFC 6891 7).
    assert!(
        ask_edns("nosuch.service.consul", A, 1232)
            .packet()
            .opt()
            .is_some()
    );
    assert!(ask_edns("example.com", A, 1232).packet().opt().is_some());
}

#[test]
fn edns_client_subnet_is_echoed_with_scope_zero() {
    // Consul's setEDNS echoes ECS; RFC 7871 7.2.1: scope 0 for answers valid for everyone.
    let mut q = build_query(9, false, "web.service.consul", A, IN, None);
    q[11] = 1;
    let ecs = [0u8, 1, 24, 5, 10, 0, 0];
    q.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0]);
    q.extend_from_slice(&((4 + ecs.len()) as u16).to_be_bytes());
    q.extend_from_slice(&8u16.to_be_bytes());
    q.extend_from_slice(&(ecs.len() as u16).to_be_bytes());
    q.extend_from_slice(&ecs);
    let mut r = Responder::new(fixture_settings(false), 1);
    let got = run(&mut r, fixture(), &q, Transport::Udp);
    let p = got.packet();
    let opt = p.opt().expect("OPT");
    assert_eq!(opt.opt_codes.len(), 1);
    assert_eq!(opt.opt_codes[0].code, 8);
    assert_eq!(&opt.opt_codes[0].data[..], &[0, 1, 24, 0, 10, 0, 0]);
}

/// The OPT TTL of a reply whose OPT has no options (the last 11 bytes): extended RCODE,
/// VERSION, flags. Read raw: simple-dns 0.13 reads these from the wrong half of the TTL.
fn opt_ttl(bytes: &[u8]) -> [u8; 3] {
    let n = bytes.len();
    assert_eq!(&bytes[n - 11..n - 8], &[0, 0, 41], "OPT last");
    [bytes[n - 6], bytes[n - 5], bytes[n - 4]]
}

#[test]
fn unsupported_edns_version_is_badvers() {
    // RFC 6891 6.1.3: BADVERS is extended RCODE 1 with header RCODE 0, and we say version 0.
    let mut q = build_query(9, false, "web.service.consul", A, IN, Some(1232));
    let n = q.len();
    q[n - 5] = 1; // VERSION, the second byte of the OPT TTL
    let mut r = Responder::new(fixture_settings(false), 1);
    let got = run(&mut r, fixture(), &q, Transport::Udp);
    assert_eq!(rcode_of(&got.bytes), 0);
    assert_eq!(opt_ttl(&got.bytes), [1, 0, 0]);
    assert!(got.answers().is_empty());
}

#[test]
fn dnssec_ok_queries_are_answered_and_do_is_copied() {
    // RFC 3225 3: the DO bit is copied into the response. (simple-dns alone would read DO as
    // EDNS version 128.)
    let mut q = build_query(9, false, "web.service.consul", A, IN, Some(1232));
    let n = q.len();
    q[n - 4] = 0x80;
    let mut r = Responder::new(fixture_settings(false), 1);
    let got = run(&mut r, fixture(), &q, Transport::Udp);
    assert_eq!(got.answers().len(), 2);
    assert_eq!(opt_ttl(&got.bytes), [0, 0, 0x80]);
    assert_eq!(
        opt_ttl(&ask_edns("web.service.consul", A, 1232).bytes),
        [0, 0, 0]
    );
}

#[test]
fn replies_are_compressed() {
    let got = ask_tcp("big.service.consul", SRV_);
    let uncompressed = got.packet().build_bytes_vec().unwrap();
    assert!(
        got.bytes.len() * 10 < uncompressed.len() * 8,
        "{} vs {} bytes",
        got.bytes.len(),
        uncompressed.len()
    );
}

// ---- malformed and unsupported queries ----

fn header(id: u16, flags: u16, counts: [u16; 4]) -> Vec<u8> {
    let mut h = id.to_be_bytes().to_vec();
    h.extend_from_slice(&flags.to_be_bytes());
    for c in counts {
        h.extend_from_slice(&c.to_be_bytes());
    }
    h
}

fn raw(query: &[u8]) -> Got {
    let mut r = Responder::new(fixture_settings(false), 1);
    run(&mut r, fixture(), query, Transport::Udp)
}

fn rcode_of(bytes: &[u8]) -> u8 {
    bytes[3] & 0xf
}

#[test]
fn short_packets_and_responses_are_dropped() {
    assert_eq!(raw(&[]).outcome, Outcome::Drop);
    assert_eq!(raw(&[0; 11]).outcome, Outcome::Drop);
    let mut resp = build_query(1, false, "web.service.consul", A, IN, None);
    resp[2] |= 0x80;
    let got = raw(&resp);
    assert_eq!(got.outcome, Outcome::Drop);
    assert!(got.bytes.is_empty());
}

#[test]
fn wrong_question_counts_are_formerr_with_the_id() {
    // miekg/dns's DefaultMsgAcceptFunc, which fronts Consul's DNS server.
    for counts in [
        [0, 0, 0, 0],
        [2, 0, 0, 0],
        [1, 1, 0, 0],
        [1, 0, 1, 0],
        [1, 0, 0, 3],
    ] {
        let mut q = header(0xbeef, 0x0100, counts);
        q.extend_from_slice(&build_query(0, false, "web.service.consul", A, IN, None)[12..]);
        let got = raw(&q);
        assert_eq!(got.bytes.len(), 12, "{counts:?}");
        assert_eq!(&got.bytes[..2], &[0xbe, 0xef]);
        assert_eq!(rcode_of(&got.bytes), 1, "{counts:?}");
        assert_eq!(got.bytes[2] & 0x81, 0x81, "QR and RD");
    }
}

#[test]
fn unparseable_packets_are_formerr_without_question() {
    let mut q = header(7, 0, [1, 0, 0, 0]);
    q.extend_from_slice(&[3, b'w', b'e']);
    let got = raw(&q);
    assert_eq!((got.bytes.len(), rcode_of(&got.bytes)), (12, 1));
    // The Z bit must be zero (RFC 1035 4.1.1).
    let mut q = build_query(7, false, "web.service.consul", A, IN, None);
    q[3] |= 0x40;
    assert_eq!(rcode_of(&raw(&q).bytes), 1);
}

#[test]
fn compression_loops_and_long_names_are_formerr() {
    let mut q = header(7, 0, [1, 0, 0, 0]);
    q.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
    assert_eq!(rcode_of(&raw(&q).bytes), 1);
    let long = vec!["a".repeat(63); 5].join(".");
    assert_eq!(
        rcode_of(&raw(&build_query(7, false, &long, A, IN, None)).bytes),
        1
    );
    let mut q = header(7, 0, [1, 0, 0, 0]);
    q.extend_from_slice(&[64]);
    q.extend_from_slice(&[b'a'; 64]);
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    assert_eq!(rcode_of(&raw(&q).bytes), 1);
}

#[test]
fn two_opt_records_are_formerr() {
    // RFC 6891 6.1.1.
    let mut q = build_query(7, false, "web.service.consul", A, IN, Some(1232));
    q[11] = 2;
    let opt = q[q.len() - 11..].to_vec();
    q.extend_from_slice(&opt);
    assert_eq!(rcode_of(&raw(&q).bytes), 1);
}

#[test]
fn other_opcodes_are_notimp() {
    let mut q = build_query(7, false, "web.service.consul", A, IN, None);
    q[2] |= 2 << 3; // STATUS
    let got = raw(&q);
    assert_eq!((got.bytes.len(), rcode_of(&got.bytes)), (12, 4));
    assert_eq!((got.bytes[2] >> 3) & 0xf, 2, "opcode echoed");
}

#[test]
fn zone_transfers_are_notimp() {
    // Consul: `case dns.TypeAXFR: m.SetRcode(req, dns.RcodeNotImplemented)`.
    for qtype in [252, 251] {
        let got = ask("consul", qtype);
        assert_eq!(got.rcode(), RCODE::NotImplemented);
        assert!(got.answers().is_empty());
    }
}

#[test]
fn other_classes_are_refused_and_echoed() {
    for class in [3u16, 4, 12345] {
        let q = build_query(7, false, "web.service.consul", A, class, None);
        let got = raw(&q);
        assert_eq!(rcode_of(&got.bytes), 5, "class {class}");
        assert_eq!(&got.bytes[12..q.len()], &q[12..], "question echoed");
    }
    // QCLASS ANY is served like IN.
    let got = raw(&build_query(7, false, "web.service.consul", A, 255, None));
    assert_eq!(got.answers().len(), 2);
}

#[test]
fn unknown_qtypes_are_nodata_and_echoed() {
    // simple-dns cannot parse QTYPE 52 (TLSA); the responder still answers it.
    let q = build_query(7, false, "web.service.consul", 52, IN, None);
    let got = raw(&q);
    assert_eq!(rcode_of(&got.bytes), 0);
    assert_eq!(&got.bytes[12..q.len()], &q[12..]);
    assert_eq!(
        u16::from_be_bytes([got.bytes[8], got.bytes[9]]),
        1,
        "SOA in authority"
    );
    let q = build_query(7, false, "nosuch.service.consul", 52, IN, None);
    assert_eq!(rcode_of(&raw(&q).bytes), 3);
}

#[test]
fn servfail_echoes_id_question_and_edns() {
    let q = build_query(0xabcd, true, "example.com", A, IN, Some(1232));
    let mut out = Vec::new();
    assert!(servfail(&q, &mut out));
    let p = Packet::parse(&out).unwrap();
    assert_eq!(p.id(), 0xabcd);
    assert_eq!(p.rcode(), RCODE::ServerFailure);
    assert_eq!(p.questions[0].qname.to_string(), "example.com");
    assert!(p.has_flags(
        PacketFlag::RECURSION_DESIRED | PacketFlag::RECURSION_AVAILABLE | PacketFlag::RESPONSE
    ));
    assert!(p.opt().is_some());
    assert!(!servfail(&q[..5], &mut out));
    assert!(out.is_empty());
    assert!(!servfail(&header(1, 0, [1, 0, 0, 0]), &mut out));
}

#[test]
fn reloaded_settings_take_effect() {
    let mut r = Responder::new(fixture_settings(false), 1);
    let mut s = r.settings().clone();
    s.domain = "edge.internal".into();
    s.datacenter = "site7".into();
    r.set_settings(s);
    assert_eq!(r.settings().domain, "edge.internal");
    let cat = fixture();
    assert_eq!(
        ask_in(&mut r, cat, "web.service.site7.edge.internal", A)
            .answers()
            .len(),
        2
    );
    assert_eq!(
        ask_in(&mut r, cat, "web.service.consul", A).rcode(),
        RCODE::Refused
    );
    let got = run(
        &mut r,
        cat,
        &build_query(1, false, "api.service.edge.internal", SRV_, IN, None),
        Transport::Tcp,
    );
    assert_eq!(
        got.answers(),
        ["api.service.edge.internal 0 SRV 1 1 8080 0a090001.addr.site7.edge.internal"]
    );
    let got = ask_in(&mut r, cat, "nosuch.service.edge.internal", A);
    assert_eq!(
        got.authority(),
        [format!(
            "edge.internal 0 SOA ns.edge.internal hostmaster.edge.internal {} 3600 600 86400 0",
            cat.index()
        )]
    );
}

#[test]
fn invalid_names_in_the_catalog_are_skipped_not_emitted() {
    // A host name with a 64-byte label cannot be an SRV target.
    let mut c = Catalog::new();
    register(
        &mut c,
        node("n1", &format!("{}.example.com", "x".repeat(64))),
        Some(service("s", "s", &[], 1)),
        vec![],
    );
    register(
        &mut c,
        node("n2", "10.0.0.2"),
        Some(service("s", "s", &[], 2)),
        vec![],
    );
    let mut r = Responder::new(fixture_settings(false), 1);
    assert_eq!(
        ask_in(&mut r, &c, "s.service.consul", SRV_).answers(),
        ["s.service.consul 0 SRV 1 1 2 n2.node.dc1.consul"]
    );
}

// ---- reused buffers and derived settings ----

#[test]
fn the_responder_can_move_between_threads() {
    fn send<T: Send>() {}
    send::<Responder>();
}

#[test]
fn emptied_vectors_keep_their_allocation_across_lifetimes() {
    let name = Name::new_unchecked("web.service.consul");
    let mut v = Vec::with_capacity(8);
    v.push(ResourceRecord::new(
        name.clone(),
        CLASS::IN,
        0,
        RData::A(simple_dns::rdata::A { address: 1 }),
    ));
    let ptr = v.as_ptr().cast::<u8>();
    let w: Vec<ResourceRecord<'static>> = recycle(v);
    assert!(w.is_empty());
    assert_eq!((w.as_ptr().cast::<u8>(), w.capacity()), (ptr, 8));
    // A vector that grew past the bound is freed rather than kept.
    let big: Vec<ResourceRecord<'static>> =
        recycle(Vec::<ResourceRecord<'_>>::with_capacity(SPARE_MAX + 1));
    assert_eq!(big.capacity(), 0);
}

/// One responder answering a mix of queries in turn gives, for each, the bytes a fresh
/// responder gives: nothing built for one query shows up in the next.
#[test]
fn reused_buffers_leave_no_trace_between_queries() {
    let queries = [
        ("big.service.consul", SRV_, None),
        ("n1.node.consul", TXT_, None),
        ("nosuch.service.consul", A, Some(1232)),
        ("consul", SOA_, Some(4096)),
        ("web.service.consul", AAAA_, None),
        ("1.0.0.10.in-addr.arpa", PTR_, None),
        ("consul", NS_, None),
        ("0a000001.addr.dc1.consul", A, Some(512)),
        ("api.service.consul", SRV_, Some(1232)),
        ("big.service.consul", ANY, Some(512)),
    ];
    let mut reused = Responder::new(fixture_settings(false), 3);
    for round in 0..2 {
        for (i, (name, qtype, edns)) in queries.iter().enumerate() {
            for transport in [Transport::Udp, Transport::Tcp] {
                let q = build_query(i as u16, true, name, *qtype, IN, *edns);
                // Service answers are shuffled: compare against a fresh responder whose RNG
                // is where the reused one's is.
                let mut fresh = Responder::new(fixture_settings(false), 0);
                fresh.rng = reused.rng.clone();
                // This is about the buffers: build every reply (the cache has its own tests).
                reused.cache.clear();
                let a = run(&mut reused, fixture(), &q, transport);
                let b = run(&mut fresh, fixture(), &q, transport);
                assert_eq!(a.outcome, b.outcome, "{name} {qtype} round {round}");
                assert_eq!(a.bytes, b.bytes, "{name} {qtype} round {round}");
            }
        }
    }
}

#[test]
fn service_ttl_table_agrees_with_the_settings() {
    let keys: &[&[(&str, u32)]] = &[
        &[],
        &[("*", 5)],
        &[("*", 5), ("db*", 7), ("db-*", 9), ("web", 11)],
        &[("web*", 3), ("we*", 4), ("web", 6), ("w*", 8)],
        &[("foo*", 13), ("foo**", 14), ("", 1)],
    ];
    let names = [
        "", "web", "web2", "we", "w", "db", "db-main", "dbx", "foo", "foo*", "foo**x", "x",
    ];
    for keys in keys {
        let settings = DnsSettings {
            service_ttl: keys.iter().map(|(k, t)| (k.to_string(), *t)).collect(),
            ..fixture_settings(false)
        };
        let zone = ZoneNames::new(&settings);
        for name in names {
            assert_eq!(
                zone.service_ttl(&settings, name),
                settings.service_ttl(name),
                "{keys:?} {name:?}"
            );
        }
    }
}

// ---- reply cache ----

#[test]
fn a_repeated_question_is_served_from_the_cache_with_its_own_id() {
    let mut r = Responder::new(fixture_settings(false), 1);
    let cat = fixture();
    let first = run(
        &mut r,
        cat,
        &build_query(1, true, "n1.node.consul", A, IN, None),
        Transport::Udp,
    );
    assert_eq!(r.cached_replies(), 1);
    let again = run(
        &mut r,
        cat,
        &build_query(2, true, "n1.node.consul", A, IN, None),
        Transport::Udp,
    );
    assert_eq!(again.packet().id(), 2);
    assert_eq!(first.bytes[2..], again.bytes[2..]);
    // The other transport and another spelling are other questions.
    run(
        &mut r,
        cat,
        &build_query(3, true, "n1.node.consul", A, IN, None),
        Transport::Tcp,
    );
    run(
        &mut r,
        cat,
        &build_query(4, true, "N1.node.consul", A, IN, None),
        Transport::Udp,
    );
    assert_eq!(r.cached_replies(), 3);
    let tcp = run(
        &mut r,
        cat,
        &build_query(5, true, "N1.node.consul", A, IN, None),
        Transport::Udp,
    );
    assert_eq!(tcp.answers(), ["N1.node.consul 0 A 10.0.0.1"]);
}

#[test]
fn a_catalog_change_is_answered_at_once() {
    let mut r = Responder::new(fixture_settings(false), 1);
    let mut cat = fixture().clone();
    assert_eq!(
        ask_in(&mut r, &cat, "n1.node.consul", A).answers(),
        ["n1.node.consul 0 A 10.0.0.1"]
    );
    assert_eq!(
        ask_in(&mut r, &cat, "new.service.consul", A).rcode(),
        RCODE::NameError
    );
    // A clone answers like the original; a change to either is a new generation.
    let before = cat.generation();
    register(
        &mut cat,
        node("n1", "10.0.0.100"),
        Some(service("new", "new", &[], 1)),
        vec![],
    );
    assert_ne!(cat.generation(), before);
    assert_ne!(cat.generation(), fixture().generation());
    assert_eq!(
        ask_in(&mut r, &cat, "n1.node.consul", A).answers(),
        ["n1.node.consul 0 A 10.0.0.100"]
    );
    assert_eq!(
        ask_in(&mut r, &cat, "new.service.consul", A).answers(),
        ["new.service.consul 0 A 10.0.0.100"]
    );
    // Going back to the other catalog does not serve the newer answers.
    assert_eq!(
        ask_in(&mut r, fixture(), "n1.node.consul", A).answers(),
        ["n1.node.consul 0 A 10.0.0.1"]
    );
}

#[test]
fn a_settings_change_empties_the_cache() {
    let mut r = Responder::new(fixture_settings(false), 1);
    let cat = fixture();
    assert_eq!(
        ask_in(&mut r, cat, "n1.node.consul", A).answers(),
        ["n1.node.consul 0 A 10.0.0.1"]
    );
    let mut s = fixture_settings(false);
    s.node_ttl = 30;
    r.set_settings(s);
    assert_eq!(r.cached_replies(), 0);
    assert_eq!(
        ask_in(&mut r, cat, "n1.node.consul", A).answers(),
        ["n1.node.consul 30 A 10.0.0.1"]
    );
}

#[test]
fn cached_round_robin_answers_are_shuffled_on_every_hit() {
    let mut r = Responder::new(fixture_settings(false), 3);
    let cat = fixture();
    let q = build_query(1, false, "big.service.consul", A, IN, None);
    let mut orders = std::collections::HashSet::new();
    let mut firsts = std::collections::HashSet::new();
    let mut reference: Option<Vec<String>> = None;
    for _ in 0..200 {
        let got = run(&mut r, cat, &q, Transport::Tcp);
        let answers = got.answers();
        firsts.insert(answers[0].clone());
        let mut set = answers.clone();
        set.sort();
        assert_eq!(set.len(), 40);
        match &reference {
            Some(r) => assert_eq!(&set, r),
            None => reference = Some(set),
        }
        orders.insert(answers);
    }
    assert_eq!(r.cached_replies(), 1, "the A answer is kept");
    assert!(orders.len() > 190, "only {} distinct orders", orders.len());
    assert!(
        firsts.len() > 30,
        "only {} distinct first answers",
        firsts.len()
    );
}

#[test]
fn replies_whose_order_cannot_be_shuffled_as_bytes_are_built_every_time() {
    let mut r = Responder::new(fixture_settings(false), 3);
    let cat = fixture();
    // SRV: targets and glue refer to each other by compression pointers.
    let mut orders = std::collections::HashSet::new();
    for _ in 0..40 {
        orders.insert(ask_in(&mut r, cat, "big.service.consul", SRV_).answers());
    }
    // A without EDNS: 3 of 40 instances are picked, so the set itself varies.
    let mut sets = std::collections::HashSet::new();
    for _ in 0..40 {
        sets.insert(ask_in(&mut r, cat, "big.service.consul", A).sorted_answers());
    }
    assert_eq!(r.cached_replies(), 0);
    assert!(orders.len() > 30);
    assert!(sets.len() > 30);
}
