//! The real binary answering real `dig` queries, as an operator on the LAN would ask.

mod common;

use std::net::UdpSocket;
use std::time::Duration;

use common::{Agent, dig, eventually, require_dig, write};

/// An agent serving `conf` (with its data dir `data`), on a kernel-chosen DNS port.
fn start(data: &std::path::Path, conf: &std::path::Path, extra: &[&str]) -> Agent {
    Agent::start_box1(data, conf, extra)
}

/// The walk-through of the README, flag for flag, on the default port 8600: a service file,
/// `outpost agent -server -bootstrap -data-dir ... -config-dir ...`, and the four digs.
#[test]
fn consul_walkthrough_on_default_port() {
    require_dig();
    let tmp = tempfile::tempdir().unwrap();
    let conf = tmp.path().join("outpost.d");
    write(
        &conf,
        "web.json",
        r#"{"service": {"name": "web", "tags": ["rails"], "port": 80}}"#,
    );
    let data = tmp.path().join("data");
    let agent = Agent::start(&[
        "-server",
        "-bootstrap",
        "-data-dir",
        data.to_str().unwrap(),
        "-config-dir",
        conf.to_str().unwrap(),
    ]);
    // A server replicates through Raft: its config is in the catalog once written there.
    agent.wait_log("this agent's config is in the catalog");
    assert_eq!(agent.port(), 8600);
    let host = outpost::agent::host_info().hostname;
    let node = dig(8600, &[&format!("{host}.node.consul")]);
    assert_eq!(node.status, "NOERROR", "{}", node.raw);
    let node_ip = node.answers("A");
    assert_eq!(node_ip.len(), 1, "{}", node.raw);

    let a = dig(8600, &["web.service.consul"]);
    assert_eq!(a.status, "NOERROR");
    assert!(a.has_flag("aa"), "authoritative: {}", a.raw);
    assert_eq!(a.answers("A"), node_ip, "A of the node running web");

    let srv = dig(8600, &["web.service.consul", "SRV"]);
    assert_eq!(
        srv.answers("SRV"),
        vec![format!(
            "1 1 80 {}.node.dc1.consul.",
            host.to_ascii_lowercase()
        )],
        "{}",
        srv.raw
    );
    assert_eq!(
        srv.additional("A"),
        vec![(
            format!("{}.node.dc1.consul.", host.to_ascii_lowercase()),
            node_ip[0].clone()
        )]
    );

    let tag = dig(8600, &["rails.web.service.consul"]);
    assert_eq!(tag.answers("A"), node_ip);
    let badtag = dig(8600, &["nosuch.web.service.consul"]);
    assert_eq!(badtag.status, "NXDOMAIN");
}

/// `dir/conf` holding one service, `web` on port 80.
fn web_conf(dir: &std::path::Path) -> std::path::PathBuf {
    let conf = dir.join("conf");
    write(
        &conf,
        "web.json",
        r#"{"service": {"name": "web", "port": 80}}"#,
    );
    conf
}

fn catalog_dir(tmp: &std::path::Path) -> std::path::PathBuf {
    let conf = tmp.join("conf");
    write(
        &conf,
        "web.json",
        r#"{"service": {"name": "web", "tags": ["rails"], "port": 80}}"#,
    );
    write(
        &conf,
        "api.json",
        r#"{"service": {"id": "api1", "name": "api", "address": "127.0.0.9", "port": 8080}}"#,
    );
    write(
        &conf,
        "down.json",
        r#"{"service": {"name": "down", "port": 1, "check": {"ttl": "10s"}}}"#,
    );
    // 40 external nodes each running `big`: more answers than fit in 512 bytes.
    for i in 0..40 {
        write(
            &conf,
            &format!("n{i:02}/node.json"),
            &format!(
                r#"{{"node": {{"name": "n{i:02}", "address": "127.66.0.{}", "meta": {{"rack": "r{i}"}}}}}}"#,
                i + 1
            ),
        );
        write(
            &conf,
            &format!("n{i:02}/big.json"),
            r#"{"service": {"name": "big", "tags": ["x"], "port": 9000}}"#,
        );
    }
    conf
}

#[test]
fn service_node_addr_ptr_and_negative_answers() {
    require_dig();
    let tmp = tempfile::tempdir().unwrap();
    let conf = catalog_dir(tmp.path());
    let agent = start(&tmp.path().join("d"), &conf, &[]);
    let p = agent.port();

    // Case-insensitive, the question's case echoed back.
    let a = dig(p, &["WeB.Service.CONSUL"]);
    assert_eq!(a.answers("A"), ["127.0.0.1"]);
    assert_eq!(a.answer[0].name, "WeB.Service.CONSUL.");

    // RFC 2782 forms and the datacenter form.
    assert_eq!(
        dig(p, &["_web._tcp.service.consul", "SRV"]).answers("SRV"),
        ["1 1 80 box1.node.dc1.consul."]
    );
    assert_eq!(
        dig(p, &["_web._rails.service.consul", "SRV"]).answers("SRV"),
        ["1 1 80 box1.node.dc1.consul."]
    );
    assert_eq!(
        dig(p, &["web.service.dc1.consul"]).answers("A"),
        ["127.0.0.1"]
    );
    assert_eq!(dig(p, &["web.service.dc2.consul"]).status, "NXDOMAIN");

    // A service address that differs from its node's: an .addr. target with its glue.
    let srv = dig(p, &["api.service.consul", "SRV"]);
    assert_eq!(
        srv.answers("SRV"),
        ["1 1 8080 7f000009.addr.dc1.consul."],
        "{}",
        srv.raw
    );
    assert_eq!(
        srv.additional("A"),
        [(
            "7f000009.addr.dc1.consul.".to_string(),
            "127.0.0.9".to_string()
        )]
    );
    assert_eq!(
        dig(p, &["7f000009.addr.dc1.consul"]).answers("A"),
        ["127.0.0.9"]
    );

    // Node TXT from meta, PTR of node and of service addresses.
    assert_eq!(
        dig(p, &["n07.node.consul", "TXT"]).answers("TXT"),
        ["\"rack=r7\""]
    );
    assert_eq!(
        dig(p, &["-x", "127.66.0.8"]).answers("PTR"),
        ["n07.node.dc1.consul."]
    );
    assert_eq!(
        dig(p, &["-x", "127.0.0.9"]).answers("PTR"),
        ["api.service.dc1.consul."]
    );

    // A critical instance (TTL checks start critical, as Consul's) is left out.
    let down = dig(p, &["down.service.consul"]);
    assert_eq!(down.status, "NXDOMAIN", "{}", down.raw);

    // Unknown names: NXDOMAIN with the SOA; known name, other type: NOERROR, no data, SOA.
    let nx = dig(p, &["nosuch.service.consul"]);
    assert_eq!(nx.status, "NXDOMAIN");
    assert_eq!(
        nx.authority.first().map(|r| r.rtype.as_str()),
        Some("SOA"),
        "{}",
        nx.raw
    );
    let nodata = dig(p, &["web.service.consul", "AAAA"]);
    assert_eq!(nodata.status, "NOERROR");
    assert!(nodata.answer.is_empty());
    assert_eq!(
        nodata.authority.first().map(|r| r.rtype.as_str()),
        Some("SOA")
    );

    // Apex SOA and NS; names elsewhere refused without recursors.
    assert_eq!(
        dig(p, &["consul", "SOA"])
            .answer
            .first()
            .map(|r| r.rtype.clone()),
        Some("SOA".into())
    );
    assert_eq!(
        dig(p, &["consul", "NS"]).answers("NS"),
        ["box1.node.dc1.consul."]
    );
    assert_eq!(dig(p, &["example.org"]).status, "REFUSED");
}

/// Over-size UDP answers are cut to what fits with TC set; TCP and a larger EDNS buffer
/// get them all; queries without EDNS get `udp_answer_limit` answers.
#[test]
fn truncation_edns_and_tcp() {
    require_dig();
    let tmp = tempfile::tempdir().unwrap();
    let conf = catalog_dir(tmp.path());
    let agent = start(&tmp.path().join("d"), &conf, &[]);
    let p = agent.port();

    let small = dig(
        p,
        &["+bufsize=1000", "+ignore", "big.service.consul", "SRV"],
    );
    assert!(small.has_flag("tc"), "{}", small.raw);
    assert!(
        !small.answers("SRV").is_empty() && small.answers("SRV").len() < 40,
        "{}",
        small.raw
    );

    let tcp = dig(p, &["+tcp", "big.service.consul", "SRV"]);
    assert!(!tcp.has_flag("tc"));
    assert_eq!(tcp.answers("SRV").len(), 40);
    assert_eq!(tcp.additional("A").len(), 40, "glue for every target");

    let big = dig(p, &["+bufsize=4096", "big.service.consul", "SRV"]);
    assert!(!big.has_flag("tc"), "{}", big.raw);
    assert_eq!(big.answers("SRV").len(), 40);

    // Consul's udp_answer_limit applies to 512-byte UDP: no EDNS, or EDNS asking for 512.
    let plain = dig(p, &["+noedns", "+ignore", "big.service.consul"]);
    assert_eq!(
        plain.answers("A").len(),
        3,
        "Consul's default udp_answer_limit: {}",
        plain.raw
    );
    assert!(!plain.has_flag("tc"), "enable_truncate is off by default");
    let e512 = dig(p, &["+bufsize=512", "+ignore", "big.service.consul", "SRV"]);
    assert_eq!(e512.answers("SRV").len(), 3, "{}", e512.raw);

    // Shuffled per query: the first answer is not always the same.
    let firsts: std::collections::BTreeSet<String> = (0..20)
        .map(|_| {
            dig(p, &["+tcp", "big.service.consul"]).answer[0]
                .data
                .clone()
        })
        .collect();
    assert!(firsts.len() > 1, "answers are shuffled: {firsts:?}");
}

#[test]
fn garbage_packets_do_not_stop_the_responder() {
    require_dig();
    let tmp = tempfile::tempdir().unwrap();
    let conf = catalog_dir(tmp.path());
    let mut agent = start(&tmp.path().join("d"), &conf, &[]);
    let p = agent.port();
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let drain = UdpSocket::bind("127.0.0.1:0").unwrap();
    drain.set_nonblocking(true).unwrap();
    let mut seed = 0x9e3779b97f4a7c15u64;
    for i in 0..500 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let len = (seed % 300) as usize;
        let pkt: Vec<u8> = (0..len)
            .map(|j| (seed >> (j % 56)) as u8 ^ i as u8)
            .collect();
        // From another socket, drained as we go: replies to garbage must not fill the
        // buffer of the socket that waits for the FORMERR below.
        drain.send_to(&pkt, ("127.0.0.1", p)).unwrap();
        let mut sink = [0u8; 1500];
        while drain.recv(&mut sink).is_ok() {}
    }
    // A header with QDCOUNT=2 gets FORMERR with its ID echoed.
    let mut q = vec![0xab, 0xcd, 0x01, 0x00, 0x00, 0x02, 0, 0, 0, 0, 0, 0];
    q.extend_from_slice(b"\x03web\x07service\x06consul\x00\x00\x01\x00\x01");
    q.extend_from_slice(b"\x03web\x07service\x06consul\x00\x00\x01\x00\x01");
    // The flood may still fill the agent's receive buffer, where the kernel drops what does
    // not fit: like any DNS client, retry over UDP until the deadline.
    let mut buf = [0u8; 1500];
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut formerr = false;
    'probe: while std::time::Instant::now() < deadline {
        sock.send_to(&q, ("127.0.0.1", p)).unwrap();
        while let Ok(n) = sock.recv(&mut buf) {
            if n >= 4 && buf[..2] == [0xab, 0xcd] {
                formerr = buf[3] & 0x0f == 1;
                break 'probe;
            }
        }
    }
    assert!(
        formerr,
        "QDCOUNT=2 gets FORMERR; agent log:\n{}",
        agent.log()
    );
    // Junk on TCP: the connection is dropped, the server keeps serving.
    use std::io::Write;
    let mut t = std::net::TcpStream::connect(("127.0.0.1", p)).unwrap();
    let _ = t.write_all(&[0x00, 0x05, 1, 2, 3, 4, 5, 0xff, 0xff, 1]);
    drop(t);
    assert_eq!(dig(p, &["web.service.consul"]).answers("A"), ["127.0.0.1"]);
    assert_eq!(
        dig(p, &["+tcp", "web.service.consul"]).answers("A"),
        ["127.0.0.1"]
    );
    assert!(
        agent.child.try_wait().unwrap().is_none(),
        "agent still running"
    );
}

/// SIGHUP applies a good change; a broken change is logged and the old config keeps
/// answering, entirely.
#[test]
fn reload_applies_good_changes_and_keeps_old_config_on_errors() {
    require_dig();
    let tmp = tempfile::tempdir().unwrap();
    let conf = web_conf(tmp.path());
    let agent = start(&tmp.path().join("d"), &conf, &[]);
    let p = agent.port();
    assert_eq!(dig(p, &["db.service.consul"]).status, "NXDOMAIN");

    write(
        &conf,
        "db.json",
        r#"{"service": {"name": "db", "port": 5432}}"#,
    );
    std::fs::remove_file(conf.join("web.json")).unwrap();
    agent.signal("HUP");
    eventually("db appears after SIGHUP", || {
        dig(p, &["db.service.consul", "SRV"]).answers("SRV") == ["1 1 5432 box1.node.dc1.consul."]
    });
    assert_eq!(
        dig(p, &["web.service.consul"]).status,
        "NXDOMAIN",
        "removed file removes its service"
    );

    // A broken change: a new service in one file and a bad port in another.
    write(
        &conf,
        "cache.json",
        r#"{"service": {"name": "cache", "port": 6379}}"#,
    );
    write(
        &conf,
        "db.json",
        "{\"service\": {\"name\": \"db\",\n \"port\": 99999}}",
    );
    agent.signal("HUP");
    agent.wait_log("config reload failed");
    let log = agent.log();
    assert!(
        log.contains("db.json:2:10: service.port: port 99999 is out of range"),
        "{log}"
    );
    assert_eq!(
        dig(p, &["db.service.consul", "SRV"]).answers("SRV"),
        ["1 1 5432 box1.node.dc1.consul."]
    );
    assert_eq!(
        dig(p, &["cache.service.consul"]).status,
        "NXDOMAIN",
        "nothing of the broken config applied"
    );
}

#[test]
fn broken_config_at_start_exits_nonzero_with_file_line_column() {
    let tmp = tempfile::tempdir().unwrap();
    let conf = tmp.path().join("conf");
    write(
        &conf,
        "web.json",
        "{\"service\": {\"name\": \"web\",\n  \"tags\": \"rails\"}}",
    );
    let out = std::process::Command::new(common::bin())
        .args([
            "agent",
            "-data-dir",
            tmp.path().to_str().unwrap(),
            "-config-dir",
            conf.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let want = format!(
        "{}:2:17: service.tags: invalid type: string \"rails\", expected a sequence",
        conf.join("web.json").display()
    );
    assert!(err.contains(&want), "{err}");
    // `outpost validate` says the same without starting anything.
    let out = std::process::Command::new(common::bin())
        .args(["validate", conf.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains(&want));
}

/// Names outside the domain go to the recursor (here a second outpost serving `example.`);
/// a recursor that never answers gives SERVFAIL after the timeout.
#[test]
fn recursor_forwarding_and_servfail() {
    require_dig();
    let tmp = tempfile::tempdir().unwrap();
    let up_conf = tmp.path().join("up");
    write(
        &up_conf,
        "svc.json",
        r#"{"service": {"name": "far", "port": 1}}"#,
    );
    let upstream = Agent::start(&[
        "-dev",
        "-config-dir",
        up_conf.to_str().unwrap(),
        "-domain",
        "example.",
        "-dns-port",
        "0",
        "-http-port",
        "-1",
        "-https-port",
        "-1",
        "-node",
        "up",
    ]);
    let rec = format!("127.0.0.1:{}", upstream.port());
    let conf = web_conf(tmp.path());
    write(
        &conf,
        "t.json",
        r#"{"dns_config": {"recursor_timeout": "300ms"}}"#,
    );
    let agent = start(&tmp.path().join("d"), &conf, &["-recursor", &rec]);
    let p = agent.port();
    let fwd = dig(p, &["far.service.example"]);
    assert_eq!(fwd.answers("A"), ["127.0.0.1"], "{}", fwd.raw);
    assert!(fwd.has_flag("ra"));
    assert_eq!(
        dig(p, &["+tcp", "far.service.example"]).answers("A"),
        ["127.0.0.1"]
    );
    assert_eq!(
        dig(p, &["web.service.consul"]).answers("A"),
        ["127.0.0.1"],
        "own domain still answered locally"
    );

    // A recursor that swallows queries.
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let silent_addr = silent.local_addr().unwrap().to_string();
    let agent2 = start(&tmp.path().join("d2"), &conf, &["-recursor", &silent_addr]);
    let t0 = std::time::Instant::now();
    let r = dig(agent2.port(), &["example.org"]);
    assert_eq!(r.status, "SERVFAIL", "{}", r.raw);
    assert!(t0.elapsed() < Duration::from_secs(3));
}

/// `outpost agent -dev` needs no other flag (here only ports, so tests can run side by side).
#[test]
fn dev_mode_serves_example_services() {
    require_dig();
    let agent = Agent::start(&[
        "-dev",
        "-dns-port",
        "0",
        "-http-port",
        "-1",
        "-https-port",
        "0",
    ]);
    let p = agent.port();
    assert_eq!(dig(p, &["web.service.consul"]).answers("A"), ["127.0.0.1"]);
    assert_eq!(
        dig(p, &["rails.web.service.consul"]).answers("A"),
        ["127.0.0.1"]
    );
    assert_eq!(
        dig(p, &["consul.service.consul", "SRV"])
            .answers("SRV")
            .len(),
        1,
        "the server lists itself"
    );
    agent.signal("TERM");
}

/// More idle TCP clients than the server keeps: the quietest are closed to make room, and
/// real clients (TCP and UDP) are still answered.
#[test]
fn idle_tcp_clients_cannot_lock_out_real_ones() {
    require_dig();
    let tmp = tempfile::tempdir().unwrap();
    let conf = web_conf(tmp.path());
    let agent = start(&tmp.path().join("d"), &conf, &[]);
    let p = agent.port();
    let idle: Vec<std::net::TcpStream> = (0..300)
        .map(|_| std::net::TcpStream::connect(("127.0.0.1", p)).unwrap())
        .collect();
    // A slow client: half a length prefix, then nothing.
    use std::io::Write;
    let mut slow = std::net::TcpStream::connect(("127.0.0.1", p)).unwrap();
    slow.write_all(&[0x00]).unwrap();
    assert_eq!(
        dig(p, &["+tcp", "web.service.consul"]).answers("A"),
        ["127.0.0.1"]
    );
    assert_eq!(dig(p, &["web.service.consul"]).answers("A"), ["127.0.0.1"]);
    // The oldest idle clients were closed by the server (a read sees EOF).
    use std::io::Read;
    let mut first = &idle[0];
    first
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut b = [0u8; 1];
    match first.read(&mut b) {
        Ok(0) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("the quietest client should have been closed, got {other:?}"),
    }
    drop(idle);
}

#[test]
fn unusable_data_dir_is_reported_at_start() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("not-a-dir");
    std::fs::write(&file, "x").unwrap();
    let out = std::process::Command::new(common::bin())
        .args([
            "agent",
            "-data-dir",
            file.to_str().unwrap(),
            "-dns-port",
            "0",
            "-http-port",
            "-1",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("data dir {}", file.display())),
        "{err}"
    );
}
