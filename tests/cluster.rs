//! Cluster membership between real agents on loopback addresses (127.0.x.y, each test its
//! own range, gossip on Consul's port 8301): joins, `members`, a `kill -9` detected as
//! failed with the node's services leaving DNS, a graceful leave, an encrypted cluster with
//! key rotation while running and a node with the wrong key kept out, and a cluster in a
//! network namespace of its own that loses a tenth of its gossip packets (nftables, since
//! this kernel has no netem). Needs root for `ip netns` (the test command runs as root).

mod common;
#[path = "common/netns.rs"]
mod netns;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{Agent, bin, curl, curl_in, ok, outpost, require_curl, require_dig};
use netns::Netns;

/// An agent named `name` on `ip` (gossip on ip:8301, DNS and HTTP on kernel-chosen ports
/// of the same address), with `extra` flags.
fn start(name: &str, ip: &str, data: &std::path::Path, extra: &[&str]) -> Agent {
    start_in(None, name, ip, data, extra)
}

fn start_in(
    ns: Option<&str>,
    name: &str,
    ip: &str,
    data: &std::path::Path,
    extra: &[&str],
) -> Agent {
    let dir = data.join(name).display().to_string();
    let mut args = vec![
        "-node",
        name,
        "-bind",
        ip,
        "-client",
        ip,
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
    ];
    args.extend_from_slice(extra);
    Agent::start_in(ns, &args)
}

/// `/v1/agent/members` of `agent`: (name, status code) sorted by name.
fn members(agent: &Agent) -> Vec<(String, u64)> {
    members_in(None, agent)
}

fn members_in(ns: Option<&str>, agent: &Agent) -> Vec<(String, u64)> {
    let r = curl_in(
        ns,
        &[&format!("http://{}/v1/agent/members", agent.http.unwrap())],
    );
    assert_eq!(r.status, 200, "{r:?}");
    let mut v: Vec<(String, u64)> = r
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["Name"].as_str().unwrap().to_string(),
                m["Status"].as_u64().unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

/// Waits as [`common::wait_for`] does; how long it took.
fn wait_for(what: &str, within: Duration, f: impl FnMut() -> Result<(), String>) -> Duration {
    let start = Instant::now();
    common::wait_for(what, within, f);
    start.elapsed()
}

fn statuses(names: &[&str], code: u64) -> Vec<(String, u64)> {
    names.iter().map(|n| (n.to_string(), code)).collect()
}

/// Every agent of `agents` lists exactly `want`.
fn converged(agents: &[&Agent], want: &[(String, u64)]) -> Result<(), String> {
    converged_in(None, agents, want)
}

fn converged_in(ns: Option<&str>, agents: &[&Agent], want: &[(String, u64)]) -> Result<(), String> {
    for a in agents {
        let m = members_in(ns, a);
        if m != want {
            return Err(format!("{:?} sees {m:?}", a.gossip));
        }
    }
    Ok(())
}

#[test]
fn five_agents_join_detect_a_killed_one_and_see_a_leave() {
    require_curl();
    require_dig();
    let tmp = tempfile::tempdir().unwrap();
    let names = ["s1", "s2", "s3", "s4", "s5"];
    let ip = |i: usize| format!("127.0.1.{}", i + 2);
    let mut agents = vec![start(
        names[0],
        &ip(0),
        tmp.path(),
        &["-server", "-bootstrap"],
    )];
    for (i, n) in names.iter().enumerate().skip(1) {
        // Half join by -retry-join at start, half later with `outpost join`.
        let first = ip(0);
        let extra: Vec<&str> = if i % 2 == 1 {
            vec!["-retry-join", &first]
        } else {
            vec![]
        };
        agents.push(start(n, &ip(i), tmp.path(), &extra));
        if i % 2 == 0 {
            let out = ok(&agents[i], &["join", &format!("{}:8301", ip(0))]);
            assert_eq!(out, "Successfully joined cluster by contacting 1 nodes.\n");
        }
    }
    let all: Vec<&Agent> = agents.iter().collect();
    let t = wait_for(
        "five members alive everywhere",
        Duration::from_secs(15),
        || converged(&all, &statuses(&names, 1)),
    );
    eprintln!("five agents converged {t:?} after the last one started");

    // `members` as Consul prints it, with the tags of a server and of a client.
    let table = ok(&agents[1], &["members"]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 6, "{table}");
    assert!(lines[0].starts_with("Node"), "{table}");
    assert!(
        lines.iter().any(|l| l.starts_with("s1")
            && l.contains("127.0.1.2:8301")
            && l.contains("alive")
            && l.contains("server")),
        "{table}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("s3") && l.contains("127.0.1.4:8301") && l.contains("client")),
        "{table}"
    );
    let detailed = ok(&agents[2], &["members", "-detailed"]);
    assert!(
        detailed.lines().any(|l| l.starts_with("s1")
            && l.contains("role=consul")
            && l.contains("bootstrap=1")
            && l.contains("dc=dc1")),
        "{detailed}"
    );

    // A service on s5, as s1's catalog knows it (registered there; replication between
    // servers is the Raft catalog's job): in DNS while s5 is alive.
    let s1_http = agents[0].http.unwrap();
    let reg = curl(&[
        "-X",
        "PUT",
        "--data",
        r#"{"Node": "s5", "Address": "127.0.1.6", "Service": {"Service": "cam", "Port": 8554}}"#,
        &format!("http://{}/v1/catalog/register", s1_http),
    ]);
    assert_eq!(reg.status, 200, "{reg:?}");
    let dns = agents[0].dns.unwrap();
    let cam = || dig_at(&dns, "cam.service.consul");
    assert_eq!(cam(), ["127.0.1.6"]);

    // kill -9 of s5: failed everywhere, its serfHealth critical, its service out of DNS.
    let killed = Instant::now();
    agents[4].child.kill().unwrap();
    let _ = agents[4].child.wait();
    let rest: Vec<&Agent> = agents[..4].iter().collect();
    let mut want = statuses(&names, 1);
    want[4].1 = 4;
    wait_for("s5 failed everywhere", Duration::from_secs(10), || {
        converged(&rest, &want)
    });
    let detected = killed.elapsed();
    eprintln!("kill -9 of s5 seen as failed by all four others after {detected:?}");
    // The leader (s1) writes it into the catalog it replicates.
    wait_for("s5's serfHealth critical", Duration::from_secs(5), || {
        let checks = curl(&[&format!("http://{}/v1/health/node/s5", s1_http)]).json();
        let serf = checks
            .as_array()
            .and_then(|a| a.iter().find(|c| c["CheckID"] == "serfHealth"))
            .map(|c| c["Status"].clone());
        match serf {
            Some(s) if s == "critical" => Ok(()),
            other => Err(format!("serfHealth of s5: {other:?} in {checks}")),
        }
    });
    wait_for("cam out of DNS", Duration::from_secs(5), || {
        let a = cam();
        if a.is_empty() {
            Ok(())
        } else {
            Err(format!("{a:?}"))
        }
    });

    // A graceful leave of s4: left at once on the others, its node gone from the catalog.
    let out = ok(&agents[3], &["leave"]);
    assert_eq!(out, "Graceful leave complete\n");
    let rest: Vec<&Agent> = agents[..3].iter().collect();
    want[3].1 = 3;
    let t = wait_for("s4 left everywhere", Duration::from_secs(5), || {
        converged(&rest, &want)
    });
    eprintln!("leave of s4 seen by the other three after {t:?}");
    wait_for("s4 out of the catalog", Duration::from_secs(5), || {
        let s4 = curl(&[&format!("http://{}/v1/catalog/node/s4", s1_http)]);
        if s4.status == 404 || s4.body.trim() == "null" {
            Ok(())
        } else {
            Err(format!("{s4:?}"))
        }
    });
    // The node exited after leaving.
    let exited = wait_for(
        "s4's process exits",
        Duration::from_secs(10),
        || match agents[3].child.try_wait() {
            Ok(Some(_)) => Ok(()),
            other => Err(format!("{other:?}")),
        },
    );
    assert!(exited < Duration::from_secs(10));
    // Nobody alive was ever declared failed meanwhile.
    for a in &agents[..3] {
        assert!(
            !a.log().contains("member Failed") || a.log().matches("member Failed").count() == 1,
            "{}",
            a.log()
        );
    }
}

/// A records dig finds for `name` at `dns`.
fn dig_at(dns: &std::net::SocketAddr, name: &str) -> Vec<String> {
    let r = common::dig_at(&dns.ip().to_string(), dns.port(), &[name, "A"]);
    r.answers("A")
}

#[test]
fn an_encrypted_cluster_rotates_its_key_and_keeps_the_wrong_key_out() {
    require_curl();
    let tmp = tempfile::tempdir().unwrap();
    let keygen = || {
        let out = Command::new(bin()).arg("keygen").output().unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    let (k1, k2, k3) = (keygen(), keygen(), keygen());
    assert_ne!(k1, k2);
    let ip = |i: usize| format!("127.0.2.{}", i + 2);
    let first = format!("{}:8301", ip(0));
    let names = ["e1", "e2", "e3"];
    let agents: Vec<Agent> = names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let mut extra = vec!["-encrypt", k1.as_str()];
            if i > 0 {
                extra.extend(["-retry-join", first.as_str()]);
            }
            start(n, &ip(i), tmp.path(), &extra)
        })
        .collect();
    assert!(
        agents[0].log().contains("(encrypted)"),
        "{}",
        agents[0].log()
    );
    let all: Vec<&Agent> = agents.iter().collect();
    wait_for("three encrypted members", Duration::from_secs(15), || {
        converged(&all, &statuses(&names, 1))
    });

    // A node with another key hears nothing it can open, and is heard by nobody.
    let intruder = start("x1", &ip(5), tmp.path(), &["-encrypt", &k2]);
    let (joined, _, err) = outpost(&intruder, &["join", &first]);
    assert!(!joined, "joining with the wrong key must fail");
    assert!(err.contains("Error joining"), "{err}");
    assert_eq!(members(&intruder), statuses(&["x1"], 1));
    assert_eq!(members(&agents[0]), statuses(&names, 1));

    // Rotation while running, asking ONE agent as an operator does with Consul: each
    // operation reaches every member through e1's keyring query.
    let e1 = &agents[0];
    ok(e1, &["keyring", "-install", &k3]);
    let list = ok(&agents[1], &["keyring", "-list"]);
    assert!(list.contains(&format!("{k3}  [3/3]")), "{list}");
    assert!(
        list.lines()
            .any(|l| l.contains(&format!("{k1}  [3/3]")) && l.contains("(primary)")),
        "{list}"
    );
    ok(e1, &["keyring", "-use", &k3]);
    // The key in use cannot be removed: every member says so.
    let (removed, _, err) = outpost(e1, &["keyring", "-remove", &k3]);
    assert!(!removed, "removing the primary key must fail");
    assert!(err.contains("primary") && err.contains("3 of 3"), "{err}");
    ok(e1, &["keyring", "-remove", &k1]);
    let list = ok(&agents[2], &["keyring", "-list"]);
    assert!(!list.contains(&k1), "{list}");
    assert!(
        list.lines()
            .any(|l| l.contains(&format!("{k3}  [3/3]")) && l.contains("(primary)")),
        "{list}"
    );
    // Every member keeps the new keyring in its data dir.
    for n in names {
        let file = tmp.path().join(n).join("serf/local.keyring");
        wait_for("the keyring kept", Duration::from_secs(5), || {
            let kept = std::fs::read_to_string(&file).unwrap_or_default();
            if kept == format!("[\"{k3}\"]") {
                Ok(())
            } else {
                Err(format!("{n}: {kept}"))
            }
        });
    }
    // Still one cluster, nobody failed on the way.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(converged(&all, &statuses(&names, 1)), Ok(()));
    for a in &agents {
        assert!(!a.log().contains("member Failed"), "{}", a.log());
    }

    // k1 no longer opens anything; k3 does.
    let old = start("x2", &ip(6), tmp.path(), &["-encrypt", &k1]);
    assert!(!outpost(&old, &["join", &first]).0);
    let new = start("e4", &ip(3), tmp.path(), &["-encrypt", &k3]);
    ok(&new, &["join", &first]);
    let mut want = statuses(&names, 1);
    want.push(("e4".into(), 1));
    wait_for("e4 in", Duration::from_secs(10), || converged(&all, &want));

    // The new member counts in the next listing, asked of it.
    wait_for("e4 in the keyring counts", Duration::from_secs(10), || {
        let list = ok(&new, &["keyring", "-list"]);
        if list.contains(&format!("{k3}  [4/4]")) {
            Ok(())
        } else {
            Err(list)
        }
    });
}

#[test]
fn gossip_holds_together_through_packet_loss_and_still_detects_a_crash() {
    require_curl();
    let ns = Netns::new("outpost-loss");
    // A tenth of every gossip datagram is lost on arrival.
    ns.nft(
        "table inet loss {\n  chain input {\n    type filter hook input priority 0;\n    \
         udp dport 8301 numgen random mod 10 < 1 counter drop\n  }\n}\n",
    );
    let tmp = tempfile::tempdir().unwrap();
    let names = ["l1", "l2", "l3", "l4", "l5"];
    let ip = |i: usize| format!("127.0.3.{}", i + 2);
    let first = ip(0);
    let agents: Vec<Agent> = names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let extra: Vec<&str> = if i == 0 {
                vec![]
            } else {
                vec!["-retry-join", &first]
            };
            start_in(Some(&ns.0), n, &ip(i), tmp.path(), &extra)
        })
        .collect();
    let all: Vec<&Agent> = agents.iter().collect();
    let nsn = Some(ns.0.as_str());
    wait_for(
        "five members through 10% loss",
        Duration::from_secs(20),
        || converged_in(nsn, &all, &statuses(&names, 1)),
    );
    // Ten seconds of loss: nobody alive is declared failed.
    let until = Instant::now() + Duration::from_secs(10);
    while Instant::now() < until {
        assert_eq!(converged_in(nsn, &all, &statuses(&names, 1)), Ok(()));
        std::thread::sleep(Duration::from_millis(500));
    }
    for a in &agents {
        assert!(!a.log().contains("member Failed"), "{}", a.log());
    }
    // A crash is still found, by everyone.
    let mut agents = agents;
    let killed = Instant::now();
    agents[4].child.kill().unwrap();
    let _ = agents[4].child.wait();
    let rest: Vec<&Agent> = agents[..4].iter().collect();
    let mut want = statuses(&names, 1);
    want[4].1 = 4;
    wait_for("l5 failed everywhere", Duration::from_secs(10), || {
        converged_in(nsn, &rest, &want)
    });
    eprintln!(
        "with 10% loss ({} datagrams dropped), kill -9 seen by all four others after {:?}",
        ns.counted(),
        killed.elapsed()
    );
    assert!(
        ns.counted() > 20,
        "the loss rule dropped packets: {}",
        ns.counted()
    );
}
