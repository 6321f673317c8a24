use proptest::prelude::*;

use super::*;
use crate::catalog::{
    Change, CheckUpdate, Command, Deregistration, Health, HealthFilter, KvDelete, KvSet,
    Registration,
};

/// Everything a query can see, in a canonical order (plus the order of instances within a
/// service name, which DNS answers follow).
fn observable(c: &Catalog) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "index {} nodes {} services {} checks {} kv {}",
        c.index(),
        c.nodes_index(),
        c.services_index(),
        c.checks_index(),
        c.kv().index()
    );
    let mut nodes: Vec<_> = c.nodes().collect();
    nodes.sort_by(|a, b| a.node.name.cmp(&b.node.name));
    for n in nodes {
        let _ = writeln!(
            out,
            "node {:?} ip {:?} {}/{}/{}",
            n.node, n.ip, n.create_index, n.modify_index, n.data_index
        );
        for ch in n.checks.values() {
            let _ = writeln!(
                out,
                "  check {:?} {}/{}",
                ch.check, ch.create_index, ch.modify_index
            );
        }
        for s in c.node_services(n) {
            let _ = writeln!(
                out,
                "  service {:?} ip {:?} {:?} {}/{}",
                s.service, s.ip, s.health, s.create_index, s.modify_index
            );
        }
    }
    let mut names: Vec<&str> = c.service_name_keys().collect();
    names.sort();
    for name in names {
        let order: Vec<String> = c
            .instances(name, None, HealthFilter::All)
            .map(|i| format!("{}/{}", i.node.node.name, i.service.service.id))
            .collect();
        let _ = writeln!(out, "name {name} {} {order:?}", c.service_index(name));
    }
    for ip in 0..4u8 {
        let ip: IpAddr = format!("10.0.0.{ip}").parse().unwrap();
        let mut n: Vec<&str> = c
            .nodes_by_address(ip)
            .map(|n| n.node.name.as_str())
            .collect();
        n.sort();
        let mut s: Vec<&str> = c
            .services_by_address(ip)
            .map(|i| i.service.service.id.as_str())
            .collect();
        s.sort();
        let _ = writeln!(out, "ptr {ip} {n:?} {s:?}");
    }
    for e in c.kv().list("") {
        let _ = writeln!(out, "kv {e:?}");
    }
    for k in ["", "a", "a/", "a/x", "a/y", "b", "b/z"] {
        let _ = writeln!(
            out,
            "kv index {k:?} {} {}",
            c.kv().index_of(k, true),
            c.kv().index_of(k, false)
        );
    }
    out
}

fn arb_change() -> impl Strategy<Value = Change> {
    let node = prop::sample::select(vec!["n1", "N2", "n3"]);
    let sid = prop::sample::select(vec!["", "s1", "s2"]);
    let key = prop::sample::select(vec!["a/x", "a/y", "b/z", "a"]);
    let health = prop::sample::select(vec![Health::Passing, Health::Warning, Health::Critical]);
    prop_oneof![
        (
            node.clone(),
            sid.clone(),
            prop::sample::select(vec!["web", "Db"]),
            0u8..4,
            0u8..4,
            prop::option::of((health.clone(), any::<bool>(), 0u8..2))
        )
            .prop_map(|(n, id, svc, ip, sip, h)| {
                let sid_for_check = if id.is_empty() { svc } else { id };
                let checks = h
                    .map(|(h, on_service, k)| {
                        let owner = if on_service { sid_for_check } else { "" };
                        crate::catalog::Check::new(&format!("chk{k}"), owner, h)
                    })
                    .into_iter()
                    .collect();
                let mut s = Service::new(id, svc, &["t"], 80);
                if sip > 0 {
                    s.address = format!("10.0.0.{sip}");
                }
                Change::Register(Registration {
                    node: Node::new(n, &format!("10.0.0.{ip}"), "dc1"),
                    service: Some(s),
                    checks,
                })
            }),
        (node.clone(), prop::option::of(sid)).prop_map(|(n, s)| Change::Deregister(
            Deregistration {
                node: n.into(),
                service_id: s.map(|s| s.to_string()),
                check_id: None,
            }
        )),
        (node, 0u8..2, health).prop_map(|(n, k, h)| Change::UpdateCheck(CheckUpdate {
            node: n.into(),
            check_id: format!("chk{k}"),
            status: h,
            output: format!("{h:?}"),
        })),
        (key.clone(), 0u8..3, prop::option::of(0u64..6)).prop_map(|(k, v, cas)| {
            Change::KvSet(KvSet {
                key: k.into(),
                value: vec![v],
                flags: v as u64,
                cas,
            })
        }),
        (key, any::<bool>(), prop::option::of(0u64..6)).prop_map(|(k, recurse, cas)| {
            Change::KvDelete(KvDelete {
                key: k.into(),
                recurse,
                cas,
            })
        }),
    ]
}

fn arb_commands(max: usize) -> impl Strategy<Value = Vec<Command>> {
    prop::collection::vec(
        prop::collection::vec(arb_change(), 1..3).prop_map(|changes| Command { changes }),
        0..max,
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// A restored catalog shows exactly what the original shows, and the same later
    /// commands give the same results and the same state on both.
    #[test]
    fn restore_gives_the_same_catalog_now_and_after_later_commands(
        before in arb_commands(30),
        after in arb_commands(15),
    ) {
        let mut original = Catalog::new();
        let mut index = 0;
        for cmd in &before {
            index += 1;
            let _ = original.apply(index, cmd);
        }
        let bytes = original.snapshot();
        let mut restored = Catalog::restore(&bytes).unwrap();
        prop_assert_eq!(observable(&original), observable(&restored));
        // Equal catalogs give equal bytes.
        prop_assert_eq!(&restored.snapshot(), &bytes);
        for cmd in &after {
            index += 1;
            let a = original.apply(index, cmd);
            let b = restored.apply(index, cmd);
            prop_assert_eq!(a, b);
        }
        prop_assert_eq!(observable(&original), observable(&restored));
    }

    /// Random and mutated bytes are refused with an error, never a panic.
    #[test]
    fn restore_of_damaged_bytes_is_an_error_or_a_consistent_catalog(
        cmds in arb_commands(10),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut c = Catalog::new();
        for (i, cmd) in cmds.iter().enumerate() {
            let _ = c.apply(i as u64 + 1, cmd);
        }
        let mut bytes = c.snapshot();
        for (at, x) in flips {
            let i = at.index(bytes.len());
            bytes[i] ^= x;
        }
        if let Ok(r) = Catalog::restore(&bytes) {
            // Whatever was accepted can be queried and snapshotted again without a panic.
            let _ = observable(&r);
            let _ = r.snapshot();
        }
        let bytes = c.snapshot();
        let _ = Catalog::restore(&bytes[..cut.index(bytes.len())]);
    }
}

#[test]
fn restore_refuses_an_unknown_version_by_name() {
    let mut bytes = Catalog::new().snapshot();
    bytes[0] = 9;
    let e = Catalog::restore(&bytes).unwrap_err();
    assert!(matches!(e, SnapshotError::Version(9)), "{e}");
    assert!(e.to_string().contains("version 9"));
}

#[test]
fn restore_refuses_an_instance_listed_under_a_foreign_name() {
    let mut c = Catalog::new();
    let reg = |svc: &str| {
        Command::one(Change::Register(Registration {
            node: Node::new("n1", "10.0.0.1", "dc1"),
            service: Some(Service::new(svc, svc, &[], 80)),
            checks: vec![],
        }))
    };
    c.apply(1, &reg("web")).unwrap();
    c.apply(2, &reg("db")).unwrap();
    let mut snap: SnapshotV1 = postcard::from_bytes(&c.snapshot()).unwrap();
    snap.service_names[0].instances = snap.service_names[1].instances.clone();
    let bytes = postcard::to_allocvec(&snap).unwrap();
    let e = Catalog::restore(&bytes).unwrap_err();
    assert!(matches!(e, SnapshotError::Inconsistent(_)), "{e}");
}
