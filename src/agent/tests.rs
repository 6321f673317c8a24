use super::*;
use crate::catalog::HealthFilter;
use crate::config::{Source, build};

fn host() -> HostInfo {
    HostInfo {
        hostname: "box1".into(),
        addresses: vec!["10.1.2.3".parse().unwrap()],
        ..HostInfo::default()
    }
}

fn config(text: &str) -> AgentConfig {
    let flags = AgentFlags {
        data_dir: Some("/tmp/x".into()),
        server: true,
        bootstrap: true,
        ..AgentFlags::default()
    };
    let mut c = build(
        &flags,
        &[Source {
            name: "a.json".into(),
            text: text.into(),
            scope: 0,
        }],
        &host(),
    )
    .unwrap();
    // No data dir once built: the catalog applies locally (no Raft), as these tests of the
    // config sync expect.
    c.data_dir = None;
    c
}

fn services(s: &State) -> Vec<String> {
    let mut v: Vec<String> = s.catalog.service_names().map(String::from).collect();
    v.sort();
    v
}

#[test]
fn initial_state_registers_node_services_and_the_consul_service() {
    let s = initial_state(config(r#"{"service": {"name": "web", "port": 80}}"#), 1).unwrap();
    assert_eq!(services(&s), ["consul", "web"]);
    let web: Vec<_> = s
        .catalog
        .instances("web", None, HealthFilter::All)
        .collect();
    assert_eq!(web[0].node.node.name, "box1");
    assert_eq!(web[0].address(), "10.1.2.3");
    assert_eq!(s.catalog.index(), 1, "the whole config is one command");
}

#[test]
fn applying_a_new_config_adds_and_removes_exactly_the_difference() {
    let mut s = initial_state(
        config(r#"{"services": [{"name": "web"}, {"name": "db", "check": {"ttl": "10s"}}]}"#),
        1,
    )
    .unwrap();
    let new = config(r#"{"services": [{"name": "web", "port": 81}, {"name": "cache"}]}"#);
    let desired = sync::Desired::from_config(&new);
    let cmd = desired.command(&s.desired, &s.catalog);
    s.commit(&cmd).unwrap();
    assert_eq!(services(&s), ["cache", "consul", "web"]);
    let node = s.catalog.node("box1").unwrap();
    assert_eq!(
        node.checks.keys().collect::<Vec<_>>(),
        ["serfHealth"],
        "db's check left with db"
    );
    assert_eq!(s.catalog.service("box1", "web").unwrap().service.port, 81);
}

#[test]
fn reapplying_keeps_check_status_set_since() {
    let cfg = config(r#"{"service": {"name": "db", "check": {"ttl": "10s"}}}"#);
    let mut s = initial_state(cfg.clone(), 1).unwrap();
    // Something (the TTL endpoint, later) marks the check passing.
    let mut c = s.catalog.node("box1").unwrap().checks["service:db"]
        .check
        .clone();
    c.status = crate::catalog::Health::Passing;
    let node = s.catalog.node("box1").unwrap().node.clone();
    s.commit(&Command::one(crate::catalog::Change::Register(
        crate::catalog::Registration {
            node,
            service: None,
            checks: vec![c],
        },
    )))
    .unwrap();
    let desired = sync::Desired::from_config(&cfg);
    let cmd = desired.command(&s.desired, &s.catalog);
    s.commit(&cmd).unwrap();
    assert_eq!(
        s.catalog
            .instances("db", None, HealthFilter::Passing)
            .count(),
        1
    );
}

#[test]
fn anti_entropy_sees_what_the_catalog_lacks_of_the_config() {
    let mut s = initial_state(
        config(r#"{"service": {"name": "db", "check": {"ttl": "10s"}}}"#),
        1,
    )
    .unwrap();
    assert!(!s.desired.missing_from(&s.catalog));
    // Someone removed the service's check, then the service: both are noticed.
    let cut = |check: Option<&str>, service: Option<&str>| {
        Command::one(Change::Deregister(crate::catalog::Deregistration {
            node: "box1".into(),
            service_id: service.map(Into::into),
            check_id: check.map(Into::into),
        }))
    };
    s.commit(&cut(Some("service:db"), None)).unwrap();
    assert!(s.desired.missing_from(&s.catalog));
    s.commit(&cut(None, Some("db"))).unwrap();
    assert!(s.desired.missing_from(&s.catalog));
    // Registering the config again makes it whole.
    let cmd = s.desired.command(&Default::default(), &s.catalog);
    s.commit(&cmd).unwrap();
    assert!(!s.desired.missing_from(&s.catalog));
}
