//! The Raft-replicated catalog between real server processes on loopback addresses
//! (127.0.4.x, Raft on 8300, gossip on 8301): `-bootstrap-expect 3` forms one cluster with
//! one leader, a write on the leader is read and answered by DNS on the others, a write on
//! a follower is forwarded, every server's own config reaches the catalog, a `kill -9`
//! of the leader gives a new leader and loses no acknowledged write, `operator raft
//! list-peers` shows the servers and `remove-peer` removes the dead one, and the killed
//! server, restarted on its data dir, is added back and catches up; in a network namespace
//! of the test's own, a server cut off from the two others cannot write while they can;
//! and a damaged log stops a server at start. Needs root for `ip netns` (the test command
//! runs as root) and nftables.

mod common;
#[path = "common/netns.rs"]
mod netns;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{Agent, curl_in, ok, require_curl, require_dig, wait_for};
use netns::Netns;

fn start(i: usize, data: &Path) -> Agent {
    start_in(None, "127.0.4", i, data)
}

/// Server `r<i>` on `<net>.<i+2>`, in the network namespace `ns` if given.
fn start_in(ns: Option<&str>, net: &str, i: usize, data: &Path) -> Agent {
    let name = format!("r{i}");
    let ip = format!("{net}.{}", i + 2);
    let dir = data.join(&name).display().to_string();
    let first = format!("{net}.2");
    Agent::start_in(
        ns,
        &[
            "-server",
            "-bootstrap-expect",
            "3",
            "-node",
            &name,
            "-bind",
            &ip,
            "-client",
            &ip,
            "-data-dir",
            &dir,
            "-dns-port",
            "0",
            "-http-port",
            "0",
            "-serf-lan-port",
            "8301",
            "-server-port",
            "8300",
            "-retry-join",
            &first,
        ],
    )
}

fn ip(i: usize) -> String {
    format!("127.0.4.{}", i + 2)
}

fn get(agent: &Agent, path: &str) -> common::HttpReply {
    curl_in(
        agent.netns.as_deref(),
        &[&format!("http://{}{path}", agent.http.unwrap())],
    )
}

/// The leader every agent of `agents` names, once they all name the same one and list
/// three peers.
fn agreed_leader(agents: &[&Agent]) -> Result<String, String> {
    let mut seen = Vec::new();
    for a in agents {
        let leader = get(a, "/v1/status/leader").json();
        let peers = get(a, "/v1/status/peers").json();
        let leader = leader.as_str().unwrap_or("").to_string();
        if leader.is_empty() || peers.as_array().map_or(0, Vec::len) != 3 {
            return Err(format!("{:?}: leader {leader:?}, peers {peers}", a.http));
        }
        seen.push(leader);
    }
    seen.dedup();
    match &seen[..] {
        [one] => Ok(one.clone()),
        _ => Err(format!("leaders disagree: {seen:?}")),
    }
}

fn kv_put(agent: &Agent, key: &str, value: &str) -> common::HttpReply {
    curl_in(
        agent.netns.as_deref(),
        &[
            "-X",
            "PUT",
            "--data",
            value,
            &format!("http://{}/v1/kv/{key}", agent.http.unwrap()),
        ],
    )
}

fn kv_get(agent: &Agent, key: &str) -> Option<String> {
    let r = get(agent, &format!("/v1/kv/{key}?raw"));
    (r.status == 200).then_some(r.body)
}

#[test]
fn three_servers_replicate_fail_over_and_catch_up() {
    require_curl();
    require_dig();
    let tmp = tempfile::tempdir().unwrap();
    let mut agents: Vec<Agent> = (0..3).map(|i| start(i, tmp.path())).collect();
    let all: Vec<&Agent> = agents.iter().collect();
    let leader = wait_for(
        "one leader for three servers",
        Duration::from_secs(20),
        || agreed_leader(&all),
    );
    let li = (0..3)
        .find(|i| leader.starts_with(&format!("{}:", ip(*i))))
        .unwrap_or_else(|| panic!("leader {leader} is none of ours"));
    eprintln!("leader: r{li} at {leader}");

    // A write on the leader: acknowledged once committed, then on every server.
    let w = kv_put(&agents[li], "app/mode", "live");
    assert_eq!((w.status, w.body.trim()), (200, "true"), "{w:?}");
    let reg = curl_in(
        None,
        &[
            "-X",
            "PUT",
            "--data",
            r#"{"Node": "cam-box", "Address": "127.0.4.99", "Service": {"Service": "cam", "Port": 8554}}"#,
            &format!("http://{}/v1/catalog/register", agents[li].http.unwrap()),
        ],
    );
    assert_eq!(reg.status, 200, "{reg:?}");
    let other = (li + 1) % 3;
    wait_for(
        "the write on a follower",
        Duration::from_secs(5),
        || match kv_get(&agents[other], "app/mode") {
            Some(v) if v == "live" => Ok(()),
            v => Err(format!("{v:?}")),
        },
    );
    // A write on a follower is forwarded to the leader, and readable there at once.
    let w = kv_put(&agents[other], "app/from", "follower");
    assert_eq!((w.status, w.body.trim()), (200, "true"), "{w:?}");
    assert_eq!(
        kv_get(&agents[other], "app/from").as_deref(),
        Some("follower")
    );
    // Consul's Stats.raft in /v1/agent/self, which `outpost info` prints: the leader and a
    // follower in one term, both with the writes in their logs.
    let (l, f) = (&agents[li], &agents[other]);
    assert_eq!(raft_stat(l, "state"), "Leader");
    assert_eq!(raft_stat(l, "last_contact"), "0");
    assert_eq!(raft_stat(l, "num_peers"), "2");
    assert_eq!(raft_stat(f, "state"), "Follower");
    assert_eq!(raft_stat(f, "term"), raft_stat(l, "term"));
    assert_ne!(raft_stat(f, "last_contact"), "never");
    let voters = raft_stat(f, "latest_configuration");
    assert_eq!(voters.matches("Suffrage:Voter").count(), 3, "{voters}");
    assert!(voters.contains(&leader), "{voters}");
    for (a, leads) in [(l, "true"), (f, "false")] {
        let consul = &get(a, "/v1/agent/self").json()["Stats"]["consul"];
        assert_eq!(consul["leader"], leads, "{consul}");
        assert_eq!(consul["leader_addr"], leader.as_str(), "{consul}");
    }
    let applied: u64 = raft_stat(f, "applied_index").parse().unwrap();
    let last: u64 = raft_stat(f, "last_log_index").parse().unwrap();
    assert!(
        applied >= 2 && last >= applied,
        "applied {applied}, last {last}"
    );
    // A consistent read on a follower (ReadIndex through the leader), and a stale one.
    for q in ["consistent", "stale"] {
        let r = get(&agents[other], &format!("/v1/kv/app/mode?raw&{q}"));
        assert_eq!((r.status, r.body.as_str()), (200, "live"), "?{q}: {r:?}");
        assert_eq!(r.header("x-consul-knownleader"), Some("true"), "{r:?}");
    }
    let dns = agents[other].dns.unwrap();
    wait_for("cam in a follower's DNS", Duration::from_secs(5), || {
        let r = common::dig_at(
            &dns.ip().to_string(),
            dns.port(),
            &["cam.service.consul", "A"],
        );
        let a = r.answers("A");
        if a == ["127.0.4.99"] {
            Ok(())
        } else {
            Err(r.raw)
        }
    });
    // Every server's own config is in the one catalog: its node and its `consul` service
    // (followers' anti-entropy writes are forwarded to the leader).
    wait_for(
        "the three servers' consul service",
        Duration::from_secs(10),
        || {
            let svc = get(&agents[other], "/v1/catalog/service/consul").json();
            let mut names: Vec<&str> = svc
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|n| n["Node"].as_str())
                .collect();
            names.sort();
            if names == ["r0", "r1", "r2"] {
                Ok(())
            } else {
                Err(format!("{names:?}"))
            }
        },
    );

    // kill -9 of the leader: a new leader among the two others, the write kept.
    let killed = Instant::now();
    agents[li].child.kill().unwrap();
    let _ = agents[li].child.wait();
    let rest: Vec<&Agent> = (0..3).filter(|i| *i != li).map(|i| &agents[i]).collect();
    let new_leader = wait_for("a new leader", Duration::from_secs(10), || {
        let l = agreed_leader(&rest)?;
        if l == leader {
            Err("the dead leader is still named".into())
        } else {
            Ok(l)
        }
    });
    eprintln!(
        "new leader {new_leader} {:?} after the kill",
        killed.elapsed()
    );
    let ni = (0..3)
        .find(|i| new_leader.starts_with(&format!("{}:", ip(*i))))
        .unwrap();
    for a in &rest {
        assert_eq!(kv_get(a, "app/mode").as_deref(), Some("live"));
    }
    let w = kv_put(&agents[ni], "app/after", "yes");
    assert_eq!((w.status, w.body.trim()), (200, "true"), "{w:?}");

    // The operator sees the servers, and removes the dead one once gossip has found it
    // failed (as Consul's leader does, outpost's adds a server gossip still calls alive
    // back to the configuration).
    let dead = format!("r{li}");
    wait_for(
        "gossip finds the killed server failed",
        Duration::from_secs(10),
        || {
            let members = get(&agents[ni], "/v1/agent/members").json();
            let status = members
                .as_array()
                .into_iter()
                .flatten()
                .find(|m| m["Name"] == dead.as_str())
                .map(|m| m["Status"].clone());
            // Serf's member status codes: 1 alive, 3 left, 4 failed.
            if status == Some(serde_json::json!(4)) {
                Ok(())
            } else {
                Err(format!("{status:?}"))
            }
        },
    );
    let peers = ok(&agents[ni], &["operator", "raft", "list-peers"]);
    let lines: Vec<&str> = peers.lines().collect();
    assert_eq!(lines.len(), 4, "{peers}");
    assert!(lines[0].starts_with("Node"), "{peers}");
    assert_eq!(
        lines.iter().filter(|l| l.contains("leader")).count(),
        1,
        "{peers}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains(&new_leader) && l.contains("leader")),
        "{peers}"
    );
    let out = ok(
        &agents[ni],
        &["operator", "raft", "remove-peer", "-address", &leader],
    );
    assert!(out.contains("Removed peer"), "{out}");
    wait_for("two servers left", Duration::from_secs(5), || {
        let p = get(&agents[ni], "/v1/status/peers").json();
        if p.as_array().map_or(0, Vec::len) == 2 {
            Ok(())
        } else {
            Err(p.to_string())
        }
    });

    // The killed server restarts on its data dir; alive in gossip again, the leader adds it
    // back, and it catches up.
    agents[li] = start(li, tmp.path());
    wait_for(
        "the restarted server catches up",
        Duration::from_secs(15),
        || match (
            kv_get(&agents[li], "app/mode"),
            kv_get(&agents[li], "app/after"),
        ) {
            (Some(a), Some(b)) if a == "live" && b == "yes" => Ok(()),
            other => Err(format!("{other:?}")),
        },
    );
    let all: Vec<&Agent> = agents.iter().collect();
    let l = wait_for("one leader again", Duration::from_secs(10), || {
        agreed_leader(&all)
    });
    assert_eq!(l, new_leader, "the restarted server follows the new leader");
}

/// A server's Raft data damaged in the middle (not a torn tail a crash leaves) stops the
/// agent with the reason, rather than serving a wrong catalog; intact, it restarts with
/// every acknowledged write.
#[test]
fn a_damaged_raft_log_is_refused_at_start_and_an_intact_one_keeps_every_write() {
    require_curl();
    let tmp = tempfile::tempdir().unwrap();
    let (data, conf) = (tmp.path().join("data"), tmp.path().join("conf"));
    std::fs::create_dir_all(&conf).unwrap();
    let agent = Agent::start_box1(&data, &conf, &[]);
    for i in 0..20 {
        let w = kv_put(&agent, &format!("k/{i}"), &format!("v{i}"));
        assert_eq!(w.body.trim(), "true", "{w:?}");
    }
    drop(agent);
    // Restarted: all twenty are there, from the log.
    let agent = Agent::start_box1(&data, &conf, &[]);
    for i in 0..20 {
        assert_eq!(
            kv_get(&agent, &format!("k/{i}")).as_deref(),
            Some(format!("v{i}").as_str())
        );
    }
    drop(agent);
    // Flip bytes in the middle of the log.
    let log = data.join("raft/raft.log");
    let mut bytes = std::fs::read(&log).unwrap();
    let mid = bytes.len() / 2;
    for b in &mut bytes[mid..mid + 8] {
        *b ^= 0xa5;
    }
    std::fs::write(&log, &bytes).unwrap();
    let out = std::process::Command::new(common::bin())
        .args([
            "agent",
            "-server",
            "-bootstrap",
            "-node",
            "box1",
            "-bind",
            "127.0.0.1",
        ])
        .args([
            "-data-dir",
            data.to_str().unwrap(),
            "-config-dir",
            conf.to_str().unwrap(),
        ])
        .args([
            "-dns-port",
            "0",
            "-http-port",
            "0",
            "-serf-lan-port",
            "0",
            "-server-port",
            "0",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success(), "started on a damaged log");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("raft.log") && err.contains("cannot be used"),
        "{err}"
    );
}

/// A partition in a network namespace of the test's own (nftables drops the Raft and gossip
/// traffic of one server): the two others elect a leader and take writes; the one alone
/// cannot write (no leader it can reach) nor read consistently; healed, it follows the
/// majority's leader and has its writes.
#[test]
fn a_partitioned_minority_refuses_writes_and_the_majority_carries_on() {
    require_curl();
    let ns = Netns::new("outpost-raft");
    let tmp = tempfile::tempdir().unwrap();
    let net = "127.0.7";
    let agents: Vec<Agent> = (0..3)
        .map(|i| start_in(Some(&ns.0), net, i, tmp.path()))
        .collect();
    let all: Vec<&Agent> = agents.iter().collect();
    let leader = wait_for("one leader", Duration::from_secs(20), || {
        agreed_leader(&all)
    });
    let li = (0..3)
        .find(|i| leader.starts_with(&format!("{net}.{}:", i + 2)))
        .unwrap();
    let w = kv_put(&agents[li], "before", "1");
    assert_eq!(w.body.trim(), "true", "{w:?}");
    let led_in = raft_stat(&agents[li], "term");

    // Cut the leader off: its Raft and gossip packets, both ways.
    let cut = format!("{net}.{}", li + 2);
    ns.nft(&format!(
        "table inet part {{\n  chain input {{\n    type filter hook input priority 0;\n    \
         ip saddr {cut} tcp dport 8300 drop\n    ip saddr {cut} tcp sport 8300 drop\n    \
         ip saddr {cut} udp dport 8301 drop\n    ip daddr {cut} tcp dport 8300 drop\n    \
         ip daddr {cut} tcp sport 8300 drop\n    ip daddr {cut} udp dport 8301 drop\n  }}\n}}\n"
    ));
    let majority: Vec<&Agent> = (0..3).filter(|i| *i != li).map(|i| &agents[i]).collect();
    let cut_at = Instant::now();
    let new_leader = wait_for("a leader in the majority", Duration::from_secs(10), || {
        let mut seen = Vec::new();
        for a in &majority {
            let l = get(a, "/v1/status/leader").json();
            seen.push(l.as_str().unwrap_or("").to_string());
        }
        seen.dedup();
        match &seen[..] {
            [one] if !one.is_empty() && *one != leader => Ok(one.clone()),
            _ => Err(format!("{seen:?}")),
        }
    });
    eprintln!(
        "majority elected {new_leader} {:?} after the cut",
        cut_at.elapsed()
    );
    let w = kv_put(majority[0], "during", "majority");
    assert_eq!((w.status, w.body.trim()), (200, "true"), "{w:?}");

    // The one alone: a consistent read and a write both fail (no quorum).
    let r = get(&agents[li], "/v1/kv/before?consistent");
    assert_eq!(r.status, 500, "a consistent read without a quorum: {r:?}");
    let w = kv_put(&agents[li], "during", "minority");
    assert_eq!(w.status, 500, "a write without a quorum: {w:?}");

    // Alone, it steps down and asks for pre-votes, which raise no term: once healed it
    // cannot depose the majority's leader with a higher term. Checked after three
    // election timeouts at least.
    wait_for(
        "the server cut off campaigns",
        Duration::from_secs(10),
        || match raft_stat(&agents[li], "state").as_str() {
            "Candidate" => Ok(()),
            other => Err(other.to_string()),
        },
    );
    while cut_at.elapsed() < Duration::from_secs(3) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let alone = (
        raft_stat(&agents[li], "state"),
        raft_stat(&agents[li], "term"),
    );
    assert_eq!(
        alone,
        ("Candidate".to_string(), led_in),
        "the server cut off, {:?} after the cut",
        cut_at.elapsed()
    );

    // Healed: the old leader follows and has the majority's write, not its own.
    ns.nft("delete table inet part\n");
    wait_for("the old leader caught up", Duration::from_secs(15), || {
        let r = get(&agents[li], "/v1/kv/during?raw&stale");
        if r.status == 200 && r.body == "majority" {
            Ok(())
        } else {
            Err(format!("{r:?}"))
        }
    });
    let l = wait_for("one leader again", Duration::from_secs(10), || {
        agreed_leader(&all)
    });
    // All in the leader's term. Usually the majority's leader still: it may have changed
    // if the majority's own election timers ran out meanwhile (a loaded or emulated
    // machine), which is no fault of the healed server.
    let terms: Vec<String> = agents.iter().map(|a| raft_stat(a, "term")).collect();
    assert!(terms.iter().all(|t| *t == terms[0]), "{terms:?}");
    if l != new_leader {
        eprintln!("leadership moved from {new_leader} to {l} after the heal: term {terms:?}");
    }
}

/// One of Raft's `Stats.raft` values in `/v1/agent/self`, as Consul names them.
fn raft_stat(agent: &Agent, name: &str) -> String {
    let s = get(agent, "/v1/agent/self").json();
    match s["Stats"]["raft"][name].as_str() {
        Some(v) => v.to_string(),
        None => panic!("no Stats.raft.{name} in {}", s["Stats"]),
    }
}

/// A fourth fresh server started with `-bootstrap-expect 3` next to a formed cluster sees
/// four servers expecting three: it must not form a cluster of its own with two of them,
/// but wait to be added by the running cluster's leader.
#[test]
fn a_new_server_joins_the_running_cluster_instead_of_forming_another() {
    require_curl();
    let tmp = tempfile::tempdir().unwrap();
    let net = "127.0.10";
    let mut agents: Vec<Agent> = (0..3).map(|i| start_in(None, net, i, tmp.path())).collect();
    let all: Vec<&Agent> = agents.iter().collect();
    let leader = wait_for("one leader", Duration::from_secs(20), || {
        agreed_leader(&all)
    });
    agents.push(start_in(None, net, 3, tmp.path()));
    wait_for("four servers, one leader", Duration::from_secs(20), || {
        for a in &agents {
            let l = get(a, "/v1/status/leader").json();
            let p = get(a, "/v1/status/peers").json();
            if l != leader.as_str() || p.as_array().map_or(0, Vec::len) != 4 {
                return Err(format!("{:?}: leader {l}, peers {p}", a.http));
            }
        }
        Ok(())
    });
    // And it holds the cluster's data.
    let w = kv_put(&agents[0], "x", "1");
    assert_eq!(w.body.trim(), "true", "{w:?}");
    wait_for(
        "the write on the new server",
        Duration::from_secs(5),
        || match kv_get(&agents[3], "x") {
            Some(v) if v == "1" => Ok(()),
            v => Err(format!("{v:?}")),
        },
    );
}

/// A client agent (no `-server`) with a data dir: alone, it answers for its own services;
/// once a server joins, it becomes a learner of the cluster (a read-only replica): its
/// services reach the servers' catalog through the leader, the servers' data reaches its
/// DNS, its writes are forwarded, and `/v1/status` names the real servers. It is listed as
/// a non-voter, and removed from the configuration when it leaves.
#[test]
fn a_client_agent_replicates_the_catalog_and_syncs_its_services() {
    require_curl();
    require_dig();
    let tmp = tempfile::tempdir().unwrap();
    let conf = tmp.path().join("c1.d");
    common::write(
        &conf,
        "cam.json",
        r#"{"service": {"name": "cam", "port": 8554}}"#,
    );
    let (client_ip, server_ip) = ("127.0.12.3", "127.0.12.2");
    let dir = |n: &str| tmp.path().join(n).display().to_string();
    let common_args = |name: &'static str, ip: &'static str| {
        vec![
            "-node",
            name,
            "-bind",
            ip,
            "-client",
            ip,
            "-dns-port",
            "0",
            "-http-port",
            "0",
            "-serf-lan-port",
            "8301",
            "-server-port",
            "8300",
        ]
    };
    let (c1_dir, r0_dir) = (dir("c1"), dir("r0"));
    let mut args = common_args("c1", client_ip);
    args.extend(["-data-dir", &c1_dir, "-config-dir", conf.to_str().unwrap()]);
    args.extend(["-retry-join", server_ip]);
    let mut client = Agent::start(&args);
    let dns = |a: &Agent, name: &str| {
        common::dig_at(&a.dns.unwrap().ip().to_string(), a.port(), &[name, "A"]).answers("A")
    };
    // Alone, it stands on its own config.
    client.wait_log("no server known yet");
    assert_eq!(dns(&client, "cam.service.consul"), [client_ip]);

    let mut args = common_args("r0", server_ip);
    args.extend(["-server", "-bootstrap", "-data-dir", &r0_dir]);
    let server = Agent::start(&args);
    client.wait_log("raft replica on");
    // The client's service reaches the server's catalog (written through the leader).
    wait_for("cam in the server's DNS", Duration::from_secs(20), || {
        let a = dns(&server, "cam.service.consul");
        (a == [client_ip]).then_some(()).ok_or(format!("{a:?}"))
    });
    // The server's data reaches the client's replica.
    let reg = curl_in(
        None,
        &[
            "-X",
            "PUT",
            "--data",
            r#"{"Node": "nvr1", "Address": "127.0.12.9", "Service": {"Service": "nvr", "Port": 80}}"#,
            &format!("http://{}/v1/catalog/register", server.http.unwrap()),
        ],
    );
    assert_eq!(reg.status, 200, "{reg:?}");
    wait_for("nvr in the client's DNS", Duration::from_secs(10), || {
        let a = dns(&client, "nvr.service.consul");
        (a == ["127.0.12.9"]).then_some(()).ok_or(format!("{a:?}"))
    });
    // And its own service is still answered, now from the replica.
    assert_eq!(dns(&client, "cam.service.consul"), [client_ip]);
    // A write on the client goes to the leader; both read it.
    let w = kv_put(&client, "from/client", "1");
    assert_eq!(w.body.trim(), "true", "{w:?}");
    assert_eq!(kv_get(&server, "from/client").as_deref(), Some("1"));
    assert_eq!(kv_get(&client, "from/client").as_deref(), Some("1"));
    // A stale read answers from the replica and says how long ago the leader was heard
    // (heartbeats every 100 ms); a default read went through the leader: 0.
    let stale = get(&client, "/v1/kv/from/client?stale");
    assert_eq!(stale.status, 200, "{stale:?}");
    assert_eq!(stale.header("x-consul-knownleader"), Some("true"));
    let contact: u64 = stale
        .header("x-consul-lastcontact")
        .and_then(|v| v.parse().ok())
        .unwrap_or(u64::MAX);
    assert!(contact < 1_000, "{stale:?}");
    let default = get(&client, "/v1/kv/from/client");
    assert_eq!(
        default.header("x-consul-lastcontact"),
        Some("0"),
        "{default:?}"
    );
    // The client names the real cluster.
    let raft_addr = format!("{server_ip}:8300");
    assert_eq!(get(&client, "/v1/status/leader").json(), raft_addr.as_str());
    assert_eq!(
        get(&client, "/v1/status/peers").json(),
        serde_json::json!([raft_addr])
    );
    // The server lists it as a non-voter.
    let peers = ok(&server, &["operator", "raft", "list-peers"]);
    let c1 = peers.lines().find(|l| l.starts_with("c1")).unwrap_or("");
    assert!(
        c1.contains(&format!("{client_ip}:8300")) && c1.contains("false"),
        "{peers}"
    );
    // A graceful leave removes it from the configuration.
    assert_eq!(ok(&client, &["leave"]), "Graceful leave complete\n");
    let _ = client.child.wait();
    wait_for(
        "c1 out of the configuration",
        Duration::from_secs(10),
        || {
            let peers = ok(&server, &["operator", "raft", "list-peers"]);
            (!peers.contains("c1")).then_some(()).ok_or(peers)
        },
    );
}
