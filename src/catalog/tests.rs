use super::state::Topic;
use super::*;

fn node(name: &str, addr: &str) -> Node {
    Node::new(name, addr, "dc1")
}

fn service(id: &str, name: &str, tags: &[&str], port: u16) -> Service {
    Service::new(id, name, tags, port)
}

fn check(id: &str, service_id: &str, status: Health) -> Check {
    Check::new(id, service_id, status)
}

fn reg(n: Node, s: Option<Service>, checks: Vec<Check>) -> Command {
    Command::one(Change::Register(Registration {
        node: n,
        service: s,
        checks,
    }))
}

fn names(cat: &Catalog, svc: &str, tag: Option<&str>, f: HealthFilter) -> Vec<String> {
    let mut v: Vec<String> = cat
        .instances(svc, tag, f)
        .map(|i| format!("{}/{}", i.node.node.name, i.service.service.id))
        .collect();
    v.sort();
    v
}

#[test]
fn register_service_is_found_by_name_case_insensitively() {
    let mut c = Catalog::new();
    c.apply(
        1,
        &reg(
            node("n1", "10.0.0.1"),
            Some(service("web", "Web", &["rails"], 80)),
            vec![],
        ),
    )
    .unwrap();
    assert_eq!(names(&c, "web", None, HealthFilter::All), ["n1/web"]);
    assert_eq!(names(&c, "WEB", None, HealthFilter::All), ["n1/web"]);
    assert_eq!(
        names(&c, "web", Some("RAILS"), HealthFilter::All),
        ["n1/web"]
    );
    assert!(names(&c, "web", Some("other"), HealthFilter::All).is_empty());
    assert_eq!(c.index(), 1);
    assert_eq!(c.service_index("web"), 1);
    assert!(c.node("N1").is_some());
}

#[test]
fn empty_service_id_defaults_to_name() {
    let mut c = Catalog::new();
    c.apply(
        1,
        &reg(
            node("n1", "10.0.0.1"),
            Some(service("", "db", &[], 5432)),
            vec![],
        ),
    )
    .unwrap();
    assert_eq!(names(&c, "db", None, HealthFilter::All), ["n1/db"]);
}

#[test]
fn critical_check_hides_instance_unless_all_requested() {
    let mut c = Catalog::new();
    c.apply(
        1,
        &reg(
            node("n1", "10.0.0.1"),
            Some(service("web1", "web", &[], 80)),
            vec![],
        ),
    )
    .unwrap();
    c.apply(
        2,
        &reg(
            node("n2", "10.0.0.2"),
            Some(service("web2", "web", &[], 80)),
            vec![],
        ),
    )
    .unwrap();
    c.apply(
        3,
        &reg(
            node("n2", "10.0.0.2"),
            None,
            vec![check("c", "web2", Health::Critical)],
        ),
    )
    .unwrap();
    assert_eq!(
        names(&c, "web", None, HealthFilter::NotCritical),
        ["n1/web1"]
    );
    assert_eq!(
        names(&c, "web", None, HealthFilter::All),
        ["n1/web1", "n2/web2"]
    );
    assert_eq!(
        c.service_index("web"),
        3,
        "a check change bumps its service's index"
    );
}

#[test]
fn node_check_affects_every_service_on_the_node_and_warning_only_drops_with_passing_filter() {
    let mut c = Catalog::new();
    c.apply(
        1,
        &reg(
            node("n1", "10.0.0.1"),
            Some(service("a", "a", &[], 1)),
            vec![],
        ),
    )
    .unwrap();
    c.apply(
        2,
        &reg(
            node("n1", "10.0.0.1"),
            Some(service("b", "b", &[], 2)),
            vec![],
        ),
    )
    .unwrap();
    c.apply(
        3,
        &reg(
            node("n1", "10.0.0.1"),
            None,
            vec![check("serfHealth", "", Health::Warning)],
        ),
    )
    .unwrap();
    assert_eq!(names(&c, "a", None, HealthFilter::NotCritical), ["n1/a"]);
    assert!(names(&c, "a", None, HealthFilter::Passing).is_empty());
    assert!(names(&c, "b", None, HealthFilter::Passing).is_empty());
}

#[test]
fn check_for_unknown_service_is_refused_and_changes_nothing() {
    let mut c = Catalog::new();
    let cmd = Command {
        changes: vec![
            Change::Register(Registration {
                node: node("n1", "10.0.0.1"),
                service: None,
                checks: vec![],
            }),
            Change::Register(Registration {
                node: node("n1", "10.0.0.1"),
                service: None,
                checks: vec![check("c", "nosuch", Health::Passing)],
            }),
        ],
    };
    let err = c.apply(1, &cmd).unwrap_err();
    assert!(matches!(err, ApplyError::UnknownService { .. }), "{err}");
    assert!(
        c.node("n1").is_none(),
        "the first change of a refused command is not applied"
    );
}

#[test]
fn check_may_refer_to_service_registered_earlier_in_the_same_command() {
    let mut c = Catalog::new();
    let cmd = Command {
        changes: vec![
            Change::Register(Registration {
                node: node("n1", "10.0.0.1"),
                service: Some(service("web", "web", &[], 80)),
                checks: vec![],
            }),
            Change::Register(Registration {
                node: node("n1", "10.0.0.1"),
                service: None,
                checks: vec![check("c", "web", Health::Critical)],
            }),
        ],
    };
    c.apply(1, &cmd).unwrap();
    assert!(names(&c, "web", None, HealthFilter::NotCritical).is_empty());
}

#[test]
fn deregistering_service_removes_its_checks_and_index_entry() {
    let mut c = Catalog::new();
    c.apply(
        1,
        &reg(
            node("n1", "10.0.0.1"),
            Some(service("web", "web", &[], 80)),
            vec![check("c", "web", Health::Critical)],
        ),
    )
    .unwrap();
    let d = Deregistration {
        node: "n1".into(),
        service_id: Some("web".into()),
        check_id: None,
    };
    c.apply(2, &Command::one(Change::Deregister(d))).unwrap();
    assert!(!c.has_service("web"));
    assert!(c.node("n1").unwrap().checks.is_empty());
    assert_eq!(c.service_names().count(), 0);
}

#[test]
fn deregistering_node_removes_everything_and_ptr_entries() {
    let mut c = Catalog::new();
    let mut s = service("web", "web", &[], 80);
    s.address = "10.9.9.9".into();
    c.apply(1, &reg(node("n1", "10.0.0.1"), Some(s), vec![]))
        .unwrap();
    assert_eq!(c.nodes_by_address("10.0.0.1".parse().unwrap()).count(), 1);
    assert_eq!(
        c.services_by_address("10.9.9.9".parse().unwrap()).count(),
        1
    );
    let d = Deregistration {
        node: "N1".into(),
        service_id: None,
        check_id: None,
    };
    c.apply(2, &Command::one(Change::Deregister(d))).unwrap();
    assert!(c.node("n1").is_none());
    assert!(!c.has_service("web"));
    assert_eq!(c.nodes_by_address("10.0.0.1".parse().unwrap()).count(), 0);
    assert_eq!(
        c.services_by_address("10.9.9.9".parse().unwrap()).count(),
        0
    );
}

#[test]
fn renaming_a_service_moves_it_between_names() {
    let mut c = Catalog::new();
    c.apply(
        1,
        &reg(
            node("n1", "10.0.0.1"),
            Some(service("x", "old", &[], 80)),
            vec![],
        ),
    )
    .unwrap();
    c.apply(
        2,
        &reg(
            node("n1", "10.0.0.1"),
            Some(service("x", "new", &[], 80)),
            vec![],
        ),
    )
    .unwrap();
    assert!(!c.has_service("old"));
    assert_eq!(names(&c, "new", None, HealthFilter::All), ["n1/x"]);
}

#[test]
fn changing_node_address_updates_ptr_index() {
    let mut c = Catalog::new();
    c.apply(1, &reg(node("n1", "10.0.0.1"), None, vec![]))
        .unwrap();
    c.apply(2, &reg(node("n1", "10.0.0.2"), None, vec![]))
        .unwrap();
    assert_eq!(c.nodes_by_address("10.0.0.1".parse().unwrap()).count(), 0);
    assert_eq!(c.nodes_by_address("10.0.0.2".parse().unwrap()).count(), 1);
    assert_eq!(c.node("n1").unwrap().modify_index, 2);
    assert_eq!(c.node("n1").unwrap().create_index, 1);
}

#[test]
fn reapplying_an_identical_registration_keeps_modify_indexes() {
    let mut c = Catalog::new();
    let cmd = reg(
        node("n1", "10.0.0.1"),
        Some(service("web", "web", &[], 80)),
        vec![],
    );
    c.apply(1, &cmd).unwrap();
    c.apply(2, &cmd).unwrap();
    assert_eq!(c.service_index("web"), 1);
    assert_eq!(c.index(), 2, "the catalog index still follows the log");
}

#[test]
fn commands_round_trip_through_postcard() {
    let cmd = reg(
        node("n1", "10.0.0.1"),
        Some(service("web", "web", &["a"], 80)),
        vec![check("c", "web", Health::Warning)],
    );
    assert_eq!(Command::decode(&cmd.encode()).unwrap(), cmd);
    assert!(Command::decode(&[0xff, 0xff, 0xff]).is_err());
}

mod props {
    use super::*;
    use proptest::prelude::*;

    fn arb_change() -> impl Strategy<Value = Change> {
        let name = prop::sample::select(vec!["a", "B", "c"]);
        let sid = prop::sample::select(vec!["", "s1", "S2", "s3"]);
        let health = prop::sample::select(vec![Health::Passing, Health::Warning, Health::Critical]);
        prop_oneof![
            (
                name.clone(),
                sid.clone(),
                prop::sample::select(vec!["web", "db"]),
                0u8..4,
                prop::option::of((health, any::<bool>(), 0u8..2))
            )
                .prop_map(|(n, id, svc, ip, h)| {
                    // A node-level check, or one on the service registered here.
                    let sid_for_check = if id.is_empty() { svc } else { id };
                    let checks = h
                        .map(|(h, on_service, k)| {
                            let cid = format!("chk{k}");
                            if on_service {
                                check(&cid, sid_for_check, h)
                            } else {
                                check(&cid, "", h)
                            }
                        })
                        .into_iter()
                        .collect();
                    Change::Register(Registration {
                        node: node(n, &format!("10.0.0.{ip}")),
                        service: Some(service(id, svc, &["t"], 80)),
                        checks,
                    })
                }),
            (name.clone(), prop::option::of(sid)).prop_map(|(n, s)| Change::Deregister(
                Deregistration {
                    node: n.into(),
                    service_id: s.map(|s| s.to_string()),
                    check_id: None,
                }
            )),
            (name, 0u8..2).prop_map(|(n, k)| Change::Deregister(Deregistration {
                node: n.into(),
                service_id: None,
                check_id: Some(format!("chk{k}")),
            })),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        /// Indices agree with a full scan after any sequence of commands, and replaying the
        /// same commands gives the same answers (determinism).
        #[test]
        fn indices_match_a_full_scan(cmds in prop::collection::vec(prop::collection::vec(arb_change(), 1..3), 0..30)) {
            let mut a = Catalog::new();
            let mut b = Catalog::new();
            for (i, changes) in cmds.iter().enumerate() {
                let cmd = Command { changes: changes.clone() };
                let ra = a.apply(i as u64 + 1, &cmd);
                let rb = b.apply(i as u64 + 1, &Command::decode(&cmd.encode()).unwrap());
                prop_assert_eq!(ra.is_ok(), rb.is_ok());
            }
            for svc in ["web", "db"] {
                let mut scan: Vec<String> = a.nodes()
                    .flat_map(|n| a.node_services(n)
                        .filter(|s| s.service.name.eq_ignore_ascii_case(svc))
                        .map(move |s| format!("{}/{}", n.node.name, s.service.id)))
                    .collect();
                scan.sort();
                prop_assert_eq!(names(&a, svc, None, HealthFilter::All), scan);
                prop_assert_eq!(names(&a, svc, None, HealthFilter::NotCritical), names(&b, svc, None, HealthFilter::NotCritical));
            }
            // The maintained health of every instance equals a scan of its checks.
            for n in a.nodes() {
                for s in a.node_services(n) {
                    let worst = n.checks.values()
                        .filter(|c| c.check.service_id.is_empty() || c.check.service_id == s.service.id)
                        .map(|c| c.check.status)
                        .max()
                        .unwrap_or(Health::Passing);
                    prop_assert_eq!(s.health, worst);
                }
            }
            for ip in 0..4 {
                let ip: std::net::IpAddr = format!("10.0.0.{ip}").parse().unwrap();
                let scan = a.nodes().filter(|n| n.node.address.parse() == Ok(ip)).count();
                prop_assert_eq!(a.nodes_by_address(ip).count(), scan);
            }
        }
    }
}

fn kv_set(key: &str, value: &str, cas: Option<u64>) -> Command {
    Command::one(Change::KvSet(KvSet {
        key: key.into(),
        value: value.as_bytes().to_vec(),
        flags: 0,
        cas,
    }))
}

fn kv_del(key: &str, recurse: bool, cas: Option<u64>) -> Command {
    Command::one(Change::KvDelete(KvDelete {
        key: key.into(),
        recurse,
        cas,
    }))
}

#[test]
fn kv_set_get_and_check_and_set_as_consul() {
    let mut c = Catalog::new();
    c.apply(1, &kv_set("a/b", "1", None)).unwrap();
    let e = c.kv().get("a/b").unwrap();
    assert_eq!(
        (e.value.as_slice(), e.create_index, e.modify_index),
        (&b"1"[..], 1, 1)
    );
    // cas=0: only if absent.
    assert_eq!(
        c.apply(2, &kv_set("a/b", "2", Some(0))),
        Err(ApplyError::CasFailed {
            key: "a/b".into(),
            cas: 0
        })
    );
    assert_eq!(c.kv().get("a/b").unwrap().value, b"1");
    c.apply(3, &kv_set("a/b", "3", Some(1))).unwrap();
    let e = c.kv().get("a/b").unwrap();
    assert_eq!((e.create_index, e.modify_index), (1, 3));
    assert!(
        c.apply(4, &kv_set("a/b", "4", Some(1))).is_err(),
        "stale cas"
    );
    assert!(
        c.apply(5, &kv_del("a/b", false, Some(1))).is_err(),
        "stale delete cas"
    );
    c.apply(6, &kv_del("a/b", false, Some(3))).unwrap();
    assert!(c.kv().get("a/b").is_none());
    // Deleting what is gone passes, with or without cas.
    c.apply(7, &kv_del("a/b", false, Some(3))).unwrap();
    assert_eq!(
        c.apply(8, &kv_set("", "x", None)),
        Err(ApplyError::EmptyKey)
    );
    let big = "x".repeat(kv::MAX_VALUE + 1);
    assert!(matches!(
        c.apply(9, &kv_set("k", &big, None)),
        Err(ApplyError::ValueTooLarge(_))
    ));
    assert_eq!(c.index(), 9, "refused entries still advance the index");
}

#[test]
fn kv_keys_cut_at_the_separator_and_recurse_deletes_a_prefix() {
    let mut c = Catalog::new();
    for (i, k) in ["web/a", "web/b/c", "web/b/d", "web2", "x"]
        .iter()
        .enumerate()
    {
        c.apply(i as u64 + 1, &kv_set(k, "v", None)).unwrap();
    }
    assert_eq!(
        c.kv().keys("web", None),
        ["web/a", "web/b/c", "web/b/d", "web2"]
    );
    assert_eq!(c.kv().keys("web/", Some("/")), ["web/a", "web/b/"]);
    assert_eq!(c.kv().keys("", Some("/")), ["web/", "web2", "x"]);
    let t = c.apply(10, &kv_del("web/", true, None)).unwrap();
    assert_eq!(
        t,
        [
            Topic::Key("web/a".into()),
            Topic::Key("web/b/c".into()),
            Topic::Key("web/b/d".into())
        ]
    );
    assert_eq!(
        c.kv().list("").map(|e| e.key.as_str()).collect::<Vec<_>>(),
        ["web2", "x"]
    );
}

#[test]
fn kv_index_of_a_prefix_moves_forward_on_delete_and_never_back() {
    let mut c = Catalog::new();
    c.apply(1, &kv_set("p/a", "v", None)).unwrap();
    c.apply(2, &kv_set("p/b", "v", None)).unwrap();
    c.apply(3, &kv_set("q", "v", None)).unwrap();
    assert_eq!(c.kv().index_of("p/", false), 2);
    assert_eq!(c.kv().index_of("p/a", true), 1);
    c.apply(4, &kv_del("p/b", false, None)).unwrap();
    assert_eq!(c.kv().index_of("p/", false), 4, "a delete under the prefix");
    assert_eq!(c.kv().index_of("p/b", true), 4);
    assert_eq!(
        c.kv().index_of("p/a", true),
        1,
        "a sibling's delete is not this key's change"
    );
    // Past the tombstone bound, indices fold into a floor rather than go back.
    let mut i = 5;
    for n in 0..=kv::MAX_TOMBSTONES {
        c.apply(i, &kv_set(&format!("t/{n}"), "v", None)).unwrap();
        c.apply(i + 1, &kv_del(&format!("t/{n}"), false, None))
            .unwrap();
        i += 2;
    }
    assert!(c.kv().index_of("p/", false) >= 4);
    assert!(c.kv().index_of("p/b", true) >= 4);
}

#[test]
fn update_check_changes_health_and_names_what_changed() {
    let mut c = Catalog::new();
    c.apply(
        1,
        &reg(
            node("n1", "10.0.0.1"),
            Some(service("web1", "Web", &[], 80)),
            vec![check("http", "web1", Health::Critical)],
        ),
    )
    .unwrap();
    assert!(names(&c, "web", None, HealthFilter::NotCritical).is_empty());
    let up = |status| {
        Command::one(Change::UpdateCheck(CheckUpdate {
            node: "N1".into(),
            check_id: "http".into(),
            status,
            output: "ok".into(),
        }))
    };
    let t = c.apply(2, &up(Health::Passing)).unwrap();
    assert_eq!(
        t,
        [
            Topic::Checks,
            Topic::Node("n1".into()),
            Topic::Service("web".into())
        ]
    );
    assert_eq!(names(&c, "web", None, HealthFilter::Passing), ["n1/web1"]);
    assert_eq!(c.service_index("web"), 2);
    assert_eq!(c.checks_index(), 2);
    assert_eq!(c.node("n1").unwrap().data_index, 2);
    assert_eq!(
        c.services_index(),
        1,
        "health is not a change of the service table"
    );
    // The same status and output again: nothing changed, nothing to wake.
    assert_eq!(c.apply(3, &up(Health::Passing)).unwrap(), []);
    assert_eq!(c.service_index("web"), 2);
    // A check that is gone is skipped.
    let gone = Command::one(Change::UpdateCheck(CheckUpdate {
        node: "n1".into(),
        check_id: "nope".into(),
        status: Health::Critical,
        output: String::new(),
    }));
    assert_eq!(c.apply(4, &gone).unwrap(), []);
}

#[test]
fn topics_of_registration_and_deregistration() {
    let mut c = Catalog::new();
    let t = c
        .apply(
            1,
            &reg(
                node("n1", "10.0.0.1"),
                Some(service("a", "A", &[], 1)),
                vec![],
            ),
        )
        .unwrap();
    assert_eq!(
        t,
        [
            Topic::Nodes,
            Topic::Services,
            Topic::Node("n1".into()),
            Topic::Service("a".into())
        ]
    );
    // A KV write touches no catalog topic and no catalog index.
    assert_eq!(
        c.apply(2, &kv_set("k", "v", None)).unwrap(),
        [Topic::Key("k".into())]
    );
    assert_eq!(c.nodes_index(), 1);
    // Moving the node changes its instances' answers too.
    let t = c
        .apply(3, &reg(node("n1", "10.0.0.2"), None, vec![]))
        .unwrap();
    assert!(t.contains(&Topic::Service("a".into())) && t.contains(&Topic::Nodes));
    assert_eq!(c.service_index("a"), 3);
    let t = c
        .apply(
            4,
            &Command::one(Change::Deregister(Deregistration {
                node: "n1".into(),
                service_id: None,
                check_id: None,
            })),
        )
        .unwrap();
    assert!(t.contains(&Topic::Service("a".into())) && t.contains(&Topic::Nodes));
    assert_eq!((c.services_index(), c.nodes_index()), (4, 4));
}

/// `Meta` is a map on every wire: the same JSON and the same postcard bytes as the
/// `BTreeMap` it replaced (logs and snapshots written before read back unchanged).
#[test]
fn meta_reads_and_writes_as_the_map_it_replaced() {
    let map: std::collections::BTreeMap<String, String> = [("b", "2"), ("a", "1"), ("c", "")]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let mut meta = Meta::default();
    for (k, v) in [("b", "x"), ("c", ""), ("a", "1"), ("b", "2")] {
        meta.insert(k.into(), v.into());
    }
    assert_eq!(meta, Meta::from(map.clone()));
    assert_eq!(meta.get("b").map(String::as_str), Some("2"));
    assert_eq!(meta.get("z"), None);
    assert_eq!(meta.len(), 3);
    assert_eq!(
        serde_json::to_string(&meta).unwrap(),
        serde_json::to_string(&map).unwrap()
    );
    assert_eq!(
        postcard::to_allocvec(&meta).unwrap(),
        postcard::to_allocvec(&map).unwrap()
    );
    let back: Meta = postcard::from_bytes(&postcard::to_allocvec(&map).unwrap()).unwrap();
    assert_eq!(back, meta);
    let from_json: Meta = serde_json::from_str(r#"{"z": "1", "a": "2"}"#).unwrap();
    assert_eq!(
        from_json
            .iter()
            .map(|(k, _)| k.as_str())
            .collect::<Vec<_>>(),
        ["a", "z"]
    );
}
