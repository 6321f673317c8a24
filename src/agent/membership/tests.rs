use std::net::SocketAddr;
use std::time::Instant;

use super::*;
use crate::catalog::Catalog;

fn member(name: &str, ip: &str, status: MemberStatus) -> Member {
    let addr: SocketAddr = format!("{ip}:8301").parse().unwrap();
    Member {
        node: gossip::Node::new(name, addr, 1, Tags::client("dc1")),
        status,
        suspect: false,
        since: Instant::now(),
    }
}

fn event(kind: EventKind, m: &Member) -> MemberEvent {
    MemberEvent {
        kind,
        member: m.clone(),
    }
}

fn apply(catalog: &mut Catalog, cmd: &Command) {
    let index = catalog.index() + 1;
    catalog.apply(index, cmd).unwrap();
}

fn serf_health(catalog: &Catalog, node: &str) -> Option<(Health, String)> {
    let n = catalog.node(node)?;
    n.checks
        .values()
        .map(|c| &c.check)
        .find(|c| c.id == SERF_HEALTH)
        .map(|c| (c.status, c.output.clone()))
}

#[test]
fn a_member_is_a_node_passing_then_critical_then_gone() {
    let mut catalog = Catalog::new();
    let m = member("s2", "127.0.1.3", MemberStatus::Alive);
    apply(
        &mut catalog,
        &event_command("s1", "dc1", &event(EventKind::Joined, &m)).unwrap(),
    );
    let n = catalog.node("s2").unwrap();
    assert_eq!(n.node.address, "127.0.1.3");
    assert_eq!(n.node.datacenter, "dc1");
    assert_eq!(
        serf_health(&catalog, "s2"),
        Some((Health::Passing, ALIVE_OUTPUT.into()))
    );

    // A suspicion shows nothing; a failure turns serfHealth critical.
    assert_eq!(
        event_command("s1", "dc1", &event(EventKind::Suspect, &m)),
        None
    );
    let failed_m = member("s2", "127.0.1.3", MemberStatus::Failed);
    apply(
        &mut catalog,
        &event_command("s1", "dc1", &event(EventKind::Failed, &failed_m)).unwrap(),
    );
    assert_eq!(
        serf_health(&catalog, "s2"),
        Some((Health::Critical, FAILED_OUTPUT.into()))
    );

    // Back alive: passing again.
    apply(
        &mut catalog,
        &event_command("s1", "dc1", &event(EventKind::Joined, &m)).unwrap(),
    );
    assert_eq!(serf_health(&catalog, "s2").unwrap().0, Health::Passing);

    // Left: the node goes.
    let left = member("s2", "127.0.1.3", MemberStatus::Left);
    apply(
        &mut catalog,
        &event_command("s1", "dc1", &event(EventKind::Left, &left)).unwrap(),
    );
    assert!(catalog.node("s2").is_none());
}

#[test]
fn this_nodes_own_events_leave_the_catalog_to_the_config() {
    let m = member("s1", "127.0.1.2", MemberStatus::Failed);
    for kind in [EventKind::Joined, EventKind::Failed, EventKind::Left] {
        assert_eq!(event_command("s1", "dc1", &event(kind, &m)), None);
    }
}

#[test]
fn reconcile_registers_the_live_marks_the_failed_and_drops_the_left() {
    let mut catalog = Catalog::new();
    // s4 was known and has left since; s5 left before we ever saw it.
    let s4 = member("s4", "127.0.1.5", MemberStatus::Alive);
    apply(
        &mut catalog,
        &event_command("s1", "dc1", &event(EventKind::Joined, &s4)).unwrap(),
    );
    let members = [
        member("s1", "127.0.1.2", MemberStatus::Alive),
        member("s2", "127.0.1.3", MemberStatus::Alive),
        member("s3", "127.0.1.4", MemberStatus::Failed),
        member("s4", "127.0.1.5", MemberStatus::Left),
        member("s5", "127.0.1.6", MemberStatus::Left),
    ];
    let cmd = reconcile_command("s1", "dc1", &members, &catalog);
    apply(&mut catalog, &cmd);
    assert!(
        catalog.node("s1").is_none(),
        "the local node is the config's"
    );
    assert_eq!(serf_health(&catalog, "s2").unwrap().0, Health::Passing);
    assert_eq!(
        serf_health(&catalog, "s3"),
        Some((Health::Critical, FAILED_OUTPUT.into()))
    );
    assert!(catalog.node("s4").is_none());
    assert!(catalog.node("s5").is_none());
    // Nothing to do once the catalog agrees.
    let again = reconcile_command("s1", "dc1", &members, &catalog);
    assert_eq!(again.changes, []);
    // A member that moved is registered at its new address.
    let moved = [member("s2", "127.0.1.9", MemberStatus::Alive)];
    let cmd = reconcile_command("s1", "dc1", &moved, &catalog);
    assert_eq!(cmd.changes.len(), 1);
    apply(&mut catalog, &cmd);
    assert_eq!(catalog.node("s2").unwrap().node.address, "127.0.1.9");
}

#[test]
fn addresses_resolve_with_consuls_default_port() {
    let r = |a: &str| smol::block_on(resolve(a));
    assert_eq!(r("127.0.1.3").unwrap(), ["127.0.1.3:8301".parse().unwrap()]);
    assert_eq!(
        r("127.0.1.3:9301").unwrap(),
        ["127.0.1.3:9301".parse().unwrap()]
    );
    assert_eq!(r("[::1]:9301").unwrap(), ["[::1]:9301".parse().unwrap()]);
    assert_eq!(r("::1").unwrap(), ["[::1]:8301".parse().unwrap()]);
    assert!(r("localhost").unwrap().iter().all(|a| a.port() == 8301));
    let e = r("no-such-host.invalid").unwrap_err();
    assert!(e.contains("no-such-host.invalid"), "{e}");
}

#[test]
fn the_keyring_is_kept_and_wins_over_encrypt() {
    let dir = tempfile::tempdir().unwrap();
    let key = gossip::keygen_os().unwrap();
    let other = gossip::keygen_os().unwrap();
    use base64::Engine;
    let flags = crate::config::AgentFlags {
        data_dir: Some(dir.path().to_path_buf()),
        ..Default::default()
    };
    let host = crate::config::HostInfo {
        hostname: "box1".into(),
        addresses: vec!["127.0.0.1".parse().unwrap()],
        ..crate::config::HostInfo::default()
    };
    let mut c = crate::config::build(&flags, &[], &host).unwrap();
    c.encrypt = Some(
        base64::engine::general_purpose::STANDARD
            .decode(&key)
            .unwrap(),
    );
    let ring = initial_keyring(&c).unwrap().unwrap();
    assert_eq!(ring.list(), std::slice::from_ref(&key));
    let file = keyring_file(&c).unwrap();
    // Installed while running, kept across a restart; -encrypt no longer matters.
    save_keyring(&file, &[other.clone(), key.clone()]).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let ring = initial_keyring(&c).unwrap().unwrap();
    assert_eq!(ring.list(), [other.clone(), key.clone()]);
    // A damaged file is an error that names it, never a silent fallback.
    std::fs::write(&file, "not json").unwrap();
    let e = initial_keyring(&c).unwrap_err();
    assert!(e.contains("local.keyring"), "{e}");
    std::fs::write(&file, "[]").unwrap();
    assert!(initial_keyring(&c).unwrap_err().contains("empty"));
}
