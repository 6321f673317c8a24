//! The `outpost` client commands against a real agent, as an operator types them.

mod common;

use std::process::Command;

use common::{Agent, bin, write};

/// Runs `outpost ARGS` with `CONSUL_HTTP_ADDR` pointing at the agent: (exit ok, stdout,
/// stderr).
fn run(http: &str, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(bin())
        .args(args)
        .env_remove("OUTPOST_HTTP_ADDR")
        .env_remove("OUTPOST_HTTP_TOKEN")
        .env_remove("CONSUL_HTTP_TOKEN")
        .env("CONSUL_HTTP_ADDR", http)
        .output()
        .expect("run outpost");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn ok(http: &str, args: &[&str]) -> String {
    let (ok, out, err) = run(http, args);
    assert!(ok, "outpost {args:?} failed: {err}");
    out
}

#[test]
fn members_catalog_services_kv_info_reload_and_leave() {
    let tmp = tempfile::tempdir().unwrap();
    let conf = tmp.path().join("conf");
    write(
        &conf,
        "web.json",
        r#"{"service": {"name": "web", "tags": ["rails"], "port": 80}}"#,
    );
    let mut agent = Agent::start_box1(&tmp.path().join("data"), &conf, &[]);
    let http = agent.http.unwrap().to_string();
    let h = http.as_str();

    let m = ok(h, &["members"]);
    let lines: Vec<&str> = m.lines().collect();
    // Columns as Consul aligns them; gossip is on a kernel-chosen port in tests.
    let gossip = agent.gossip.expect("gossip address").to_string();
    let cols: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(
        cols,
        [
            "Node", "Address", "Status", "Type", "Build", "Protocol", "DC"
        ]
    );
    assert_eq!(
        lines[1].split_whitespace().collect::<Vec<_>>()[..4],
        ["box1", gossip.as_str(), "alive", "server"],
        "{m}"
    );
    assert_eq!(
        lines[0].find("Status"),
        lines[1].find("alive"),
        "aligned columns:\n{m}"
    );
    assert!(ok(h, &["members", "-detailed"]).contains("role=consul"));

    assert_eq!(ok(h, &["catalog", "services"]), "consul\nweb\n");
    assert_eq!(
        ok(h, &["catalog", "services", "-tags"]),
        "consul\nweb     rails\n"
    );
    let nodes = ok(h, &["catalog", "nodes"]);
    assert!(
        nodes.starts_with("Node  ID        Address    DC\nbox1  "),
        "{nodes}"
    );

    // A definition file, as `consul services register FILE` takes it.
    write(
        tmp.path(),
        "api.json",
        r#"{"service": {"name": "api", "id": "api1", "port": 8080}}"#,
    );
    let def = tmp.path().join("api.json");
    assert_eq!(
        ok(h, &["services", "register", def.to_str().unwrap()]),
        "Registered service: api\n"
    );
    assert_eq!(
        ok(
            h,
            &[
                "services", "register", "-name", "cache", "-port", "6379", "-tag", "a"
            ]
        ),
        "Registered service: cache\n"
    );
    assert_eq!(
        ok(h, &["catalog", "services", "-tags"]),
        "api\ncache   a\nconsul\nweb     rails\n"
    );
    assert_eq!(
        ok(h, &["services", "deregister", "-id", "api1"]),
        "Deregistered service: api1\n"
    );
    assert_eq!(
        ok(h, &["services", "deregister", "-id", "cache"]),
        "Deregistered service: cache\n"
    );
    assert_eq!(ok(h, &["catalog", "services"]), "consul\nweb\n");

    assert_eq!(
        ok(h, &["kv", "put", "app/name", "outpost"]),
        "Success! Data written to: app/name\n"
    );
    write(tmp.path(), "v.txt", "from a file");
    let at = format!("@{}", tmp.path().join("v.txt").display());
    ok(h, &["kv", "put", "app/file", &at]);
    assert_eq!(ok(h, &["kv", "get", "app/name"]), "outpost\n");
    assert_eq!(
        ok(h, &["kv", "get", "-recurse", "app"]),
        "app/file:from a file\napp/name:outpost\n"
    );
    let (good, _, err) = run(
        h,
        &["kv", "put", "-cas", "-modify-index", "1", "app/name", "x"],
    );
    assert!(!good);
    assert_eq!(err.trim(), "Error! Did not write to app/name: CAS failed");
    let (good, _, err) = run(h, &["kv", "get", "nosuch"]);
    assert!(!good);
    assert_eq!(err.trim(), "Error! No key exists at: nosuch");
    assert_eq!(
        ok(h, &["kv", "delete", "-recurse", "app"]),
        "Success! Deleted keys with prefix: app\n"
    );
    assert_eq!(ok(h, &["kv", "get", "-recurse", "app"]), "");

    let info = ok(h, &["info"]);
    assert!(
        info.contains("consul:\n") && info.contains("\tserver = true\n"),
        "{info}"
    );

    // Reload picks up a new service file.
    write(
        &conf,
        "db.json",
        r#"{"service": {"name": "db", "port": 5432}}"#,
    );
    assert_eq!(ok(h, &["reload"]), "Configuration reload triggered\n");
    assert_eq!(ok(h, &["catalog", "services"]), "consul\ndb\nweb\n");

    assert_eq!(ok(h, &["leave"]), "Graceful leave complete\n");
    let status = agent.child.wait().unwrap();
    assert!(status.success(), "the agent exits cleanly after leave");

    // No agent: one clear line and a non-zero exit.
    let (good, out, err) = run(h, &["members"]);
    assert!(!good && out.is_empty());
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("Error querying agent") && err.contains(h),
        "{err}"
    );
}

#[test]
fn the_token_comes_from_the_flag_or_consuls_environment_variable() {
    let tmp = tempfile::tempdir().unwrap();
    let conf = tmp.path().join("conf");
    write(
        &conf,
        "acl.json",
        r#"{"acl": {"enabled": true, "tokens": {"initial_management": "t0k"}}}"#,
    );
    let agent = Agent::start_box1(&tmp.path().join("data"), &conf, &[]);
    let http = agent.http.unwrap().to_string();
    let (good, _, err) = run(&http, &["kv", "put", "k", "v"]);
    assert!(!good);
    assert!(
        err.contains("403") && err.contains("Permission denied"),
        "{err}"
    );
    assert_eq!(
        ok(&http, &["kv", "put", "-token", "t0k", "k", "v"]),
        "Success! Data written to: k\n"
    );
    let out = Command::new(bin())
        .args(["kv", "put", "k", "w"])
        .env_remove("OUTPOST_HTTP_ADDR")
        .env_remove("OUTPOST_HTTP_TOKEN")
        .env("CONSUL_HTTP_ADDR", &http)
        .env("CONSUL_HTTP_TOKEN", "t0k")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(ok(&http, &["kv", "get", "k"]), "w\n");
}
