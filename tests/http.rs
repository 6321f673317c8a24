//! The real binary's Consul HTTP API driven with `curl`, as a script or an operator would:
//! JSON fields and headers as Consul's documentation gives them.

mod common;

use std::time::{Duration, Instant};

use common::{Agent, HttpReply, curl, dig, read_response, require_curl, require_dig, write};

/// An agent with `web` (tagged `rails`) and `db` from a config dir, named `box1`, DNS and HTTP
/// on kernel-chosen ports.
fn start(tmp: &std::path::Path, extra: &[&str]) -> (Agent, String) {
    let conf = tmp.join("conf");
    write(
        &conf,
        "services.json",
        r#"{"services": [
            {"name": "web", "tags": ["rails"], "port": 80, "meta": {"v": "1"}},
            {"id": "db1", "name": "db", "port": 5432,
             "check": {"id": "db-ttl", "ttl": "30s", "status": "passing"}}
        ]}"#,
    );
    let agent = Agent::start_box1(&tmp.join("data"), &conf, extra);
    let base = format!("http://{}", agent.http.expect("HTTP listener"));
    (agent, base)
}

fn get(base: &str, path: &str) -> HttpReply {
    curl(&[&format!("{base}{path}")])
}

fn put(base: &str, path: &str, body: &str) -> HttpReply {
    curl(&["-X", "PUT", "--data-binary", body, &format!("{base}{path}")])
}

#[test]
fn catalog_health_and_status_answer_with_consuls_fields_and_headers() {
    require_curl();
    let tmp = tempfile::tempdir().unwrap();
    let (agent, base) = start(tmp.path(), &[]);

    let r = get(&base, "/v1/catalog/services");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("x-consul-knownleader"), Some("true"));
    assert_eq!(r.header("x-consul-lastcontact"), Some("0"));
    assert!(r.index() >= 1);
    assert_eq!(
        r.json(),
        serde_json::json!({"consul": [], "db": [], "web": ["rails"]})
    );

    let r = get(&base, "/v1/catalog/service/web");
    let v = r.json();
    let e = &v[0];
    assert_eq!(e["Node"], "box1");
    assert_eq!(e["Address"], "127.0.0.1");
    assert_eq!(e["Datacenter"], "dc1");
    assert_eq!(e["ServiceID"], "web");
    assert_eq!(e["ServiceName"], "web");
    assert_eq!(e["ServiceTags"], serde_json::json!(["rails"]));
    assert_eq!(e["ServicePort"], 80);
    assert_eq!(e["ServiceAddress"], "");
    assert_eq!(e["ServiceMeta"], serde_json::json!({"v": "1"}));
    assert_eq!(
        e["ServiceWeights"],
        serde_json::json!({"Passing": 1, "Warning": 1})
    );
    assert_eq!(e["ServiceEnableTagOverride"], false);
    assert_eq!(e["ID"].as_str().unwrap().len(), 36, "a UUID node ID");
    assert!(e["CreateIndex"].as_u64().unwrap() >= 1);
    assert_eq!(get(&base, "/v1/catalog/service/web?tag=rails").json(), v);
    assert_eq!(
        get(&base, "/v1/catalog/service/web?tag=nope").json(),
        serde_json::json!([])
    );
    assert_eq!(
        get(&base, "/v1/catalog/service/nosuch").json(),
        serde_json::json!([])
    );

    let nodes = get(&base, "/v1/catalog/nodes").json();
    assert_eq!(nodes.as_array().unwrap().len(), 1);
    assert_eq!(nodes[0]["Node"], "box1");
    assert_eq!(nodes[0]["TaggedAddresses"]["lan"], "127.0.0.1");
    assert_eq!(
        get(&base, "/v1/catalog/datacenters").json(),
        serde_json::json!(["dc1"])
    );

    let node = get(&base, "/v1/catalog/node/box1").json();
    assert_eq!(node["Node"]["Node"], "box1");
    assert_eq!(node["Services"]["db1"]["Service"], "db");
    assert_eq!(node["Services"]["db1"]["Port"], 5432);
    assert_eq!(get(&base, "/v1/catalog/node/nosuch").body, "null");
    let ns = get(&base, "/v1/catalog/node-services/box1").json();
    assert_eq!(ns["Services"].as_array().unwrap().len(), 3);
    assert_eq!(get(&base, "/v1/catalog/node-services/nosuch").status, 404);

    let h = get(&base, "/v1/health/service/db").json();
    assert_eq!(h[0]["Node"]["Node"], "box1");
    assert_eq!(h[0]["Service"]["ID"], "db1");
    let check = &h[0]["Checks"][0];
    assert_eq!(check["CheckID"], "db-ttl");
    assert_eq!(check["Status"], "passing");
    assert_eq!(check["ServiceID"], "db1");
    assert_eq!(check["ServiceName"], "db");
    assert_eq!(check["Type"], "ttl");
    assert_eq!(check["Node"], "box1");
    assert_eq!(
        get(&base, "/v1/health/checks/db").json()[0]["CheckID"],
        "db-ttl"
    );
    assert_eq!(
        get(&base, "/v1/health/node/box1").json()[0]["CheckID"],
        "db-ttl"
    );
    assert_eq!(
        get(&base, "/v1/health/state/passing").json()[0]["CheckID"],
        "db-ttl"
    );
    assert_eq!(
        get(&base, "/v1/health/state/critical").json(),
        serde_json::json!([])
    );
    assert_eq!(get(&base, "/v1/health/state/bogus").status, 400);

    // The Raft address this single server leads with.
    let raft = agent.raft.expect("raft address").to_string();
    assert_eq!(get(&base, "/v1/status/leader").json(), raft.as_str());
    assert_eq!(
        get(&base, "/v1/status/peers").json(),
        serde_json::json!([raft])
    );
    // ?pretty indents, as Consul's does.
    assert!(
        get(&base, "/v1/catalog/services?pretty")
            .body
            .contains("\n  ")
    );
}

#[test]
fn catalog_register_and_deregister_an_external_node_visible_in_dns() {
    require_curl();
    require_dig();
    let tmp = tempfile::tempdir().unwrap();
    let (agent, base) = start(tmp.path(), &[]);
    let dns = agent.dns.unwrap().port();
    let r = put(
        &base,
        "/v1/catalog/register",
        r#"{"Node": "printer", "Address": "127.0.0.9", "NodeMeta": {"room": "2"},
            "Service": {"Service": "ipp", "Port": 631, "Tags": ["color"]},
            "Check": {"CheckID": "ipp-alive", "Name": "ipp", "Status": "passing", "ServiceID": "ipp"}}"#,
    );
    assert_eq!((r.status, r.body.as_str()), (200, "true"), "{r:?}");
    assert_eq!(
        dig(dns, &["ipp.service.consul"]).answers("A"),
        ["127.0.0.9"]
    );
    assert_eq!(
        dig(dns, &["color.ipp.service.consul"]).answers("A"),
        ["127.0.0.9"]
    );
    let node = get(&base, "/v1/catalog/node/printer").json();
    assert_eq!(node["Node"]["Meta"]["room"], "2");
    assert_eq!(
        node["Services"]["ipp"]["Tags"],
        serde_json::json!(["color"])
    );
    // A critical check takes the instance out of DNS and out of ?passing.
    let r = put(
        &base,
        "/v1/catalog/register",
        r#"{"Node": "printer", "Address": "127.0.0.9",
            "Check": {"CheckID": "ipp-alive", "Name": "ipp", "Status": "critical", "ServiceID": "ipp"}}"#,
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(dig(dns, &["ipp.service.consul"]).status, "NXDOMAIN");
    assert_eq!(
        get(&base, "/v1/health/service/ipp?passing").json(),
        serde_json::json!([])
    );
    assert_eq!(
        get(&base, "/v1/health/service/ipp")
            .json()
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let r = put(&base, "/v1/catalog/deregister", r#"{"Node": "printer"}"#);
    assert_eq!(r.body, "true");
    assert_eq!(get(&base, "/v1/catalog/node/printer").body, "null");
    // A check naming a service that is not on the node: refused, nothing applied.
    let r = put(
        &base,
        "/v1/catalog/register",
        r#"{"Node": "cam", "Address": "127.0.0.10",
            "Check": {"CheckID": "c", "Name": "c", "ServiceID": "nosuch"}}"#,
    );
    assert_eq!(r.status, 400);
    assert!(r.body.contains("nosuch"), "{}", r.body);
    assert_eq!(
        get(&base, "/v1/catalog/node/cam").body,
        "null",
        "nothing half-applied"
    );
}

#[test]
fn agent_services_ttl_checks_and_maintenance_drive_health_and_dns() {
    require_curl();
    require_dig();
    let tmp = tempfile::tempdir().unwrap();
    let (agent, base) = start(tmp.path(), &[]);
    let dns = agent.dns.unwrap().port();
    let r = put(
        &base,
        "/v1/agent/service/register",
        r#"{"Name": "api", "ID": "api1", "Port": 8080, "Tags": ["v2"],
            "Check": {"TTL": "30s", "Notes": "heartbeat"}}"#,
    );
    assert_eq!(r.status, 200, "{r:?}");
    let s = get(&base, "/v1/agent/services").json();
    assert_eq!(s["api1"]["Service"], "api");
    assert_eq!(s["api1"]["Port"], 8080);
    assert_eq!(s["api1"]["Datacenter"], "dc1");
    assert_eq!(
        get(&base, "/v1/agent/service/api1").json()["Tags"],
        serde_json::json!(["v2"])
    );
    assert_eq!(get(&base, "/v1/agent/service/nosuch").status, 404);
    // A new TTL check starts critical: not in DNS, not passing.
    let checks = get(&base, "/v1/agent/checks").json();
    assert_eq!(checks["service:api1"]["Status"], "critical");
    assert_eq!(checks["service:api1"]["Notes"], "heartbeat");
    assert_eq!(dig(dns, &["api.service.consul"]).status, "NXDOMAIN");
    let r = put(&base, "/v1/agent/check/pass/service:api1?note=all+good", "");
    assert_eq!(r.status, 200, "{r:?}");
    let h = get(&base, "/v1/health/service/api?passing").json();
    let checks = h[0]["Checks"].as_array().unwrap();
    let ids: Vec<&str> = checks
        .iter()
        .map(|c| c["CheckID"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        ["serfHealth", "service:api1"],
        "the node's check and the service's"
    );
    assert_eq!(checks[1]["Output"], "all good");
    assert_eq!(checks[0]["Name"], "Serf Health Status");
    assert_eq!(
        dig(dns, &["api.service.consul"]).answers("A"),
        ["127.0.0.1"]
    );
    let r = put(
        &base,
        "/v1/agent/check/update/service:api1",
        r#"{"Status": "warning", "Output": "slow"}"#,
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        get(&base, "/v1/health/service/api?passing").json(),
        serde_json::json!([])
    );
    assert_eq!(
        dig(dns, &["api.service.consul"]).answers("A"),
        ["127.0.0.1"],
        "warning is not critical"
    );
    put(&base, "/v1/agent/check/pass/service:api1", "");
    // Maintenance: a critical check with the reason; off again removes it.
    let r = put(
        &base,
        "/v1/agent/service/maintenance/api1?enable=true&reason=upgrade",
        "",
    );
    assert_eq!(r.status, 200, "{r:?}");
    let checks = get(&base, "/v1/agent/checks").json();
    assert_eq!(checks["_service_maintenance:api1"]["Status"], "critical");
    assert_eq!(checks["_service_maintenance:api1"]["Notes"], "upgrade");
    assert_eq!(dig(dns, &["api.service.consul"]).status, "NXDOMAIN");
    put(&base, "/v1/agent/service/maintenance/api1?enable=false", "");
    assert_eq!(
        dig(dns, &["api.service.consul"]).answers("A"),
        ["127.0.0.1"]
    );
    assert_eq!(
        put(&base, "/v1/agent/service/maintenance/api1", "").status,
        400
    );
    // Non-TTL checks cannot be set from outside; unknown ones are 404.
    let r = put(
        &base,
        "/v1/agent/check/register",
        r#"{"Name": "port", "TCP": "127.0.0.1:1", "Interval": "10s", "ServiceID": "api1"}"#,
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(put(&base, "/v1/agent/check/pass/port", "").status, 500);
    assert_eq!(put(&base, "/v1/agent/check/pass/nosuch", "").status, 404);
    assert_eq!(
        put(&base, "/v1/agent/check/deregister/port", "").status,
        200
    );
    // Script checks need enable_script_checks.
    let r = put(
        &base,
        "/v1/agent/check/register",
        r#"{"Name": "s", "Args": ["/bin/true"], "Interval": "10s"}"#,
    );
    assert_eq!(r.status, 400);
    assert!(r.body.contains("enable_script_checks"), "{}", r.body);
    let r = put(&base, "/v1/agent/service/deregister/api1", "");
    assert_eq!(r.status, 200);
    assert!(
        get(&base, "/v1/agent/services")
            .json()
            .get("api1")
            .is_none()
    );
    assert_eq!(
        get(&base, "/v1/agent/checks").json().get("service:api1"),
        None
    );
    assert_eq!(
        put(&base, "/v1/agent/service/deregister/api1", "").status,
        404
    );

    let me = get(&base, "/v1/agent/self").json();
    assert_eq!(me["Config"]["NodeName"], "box1");
    assert_eq!(me["Config"]["Datacenter"], "dc1");
    assert_eq!(me["Config"]["Server"], true);
    let members = get(&base, "/v1/agent/members").json();
    assert_eq!(members[0]["Name"], "box1");
    assert_eq!(members[0]["Status"], 1);
    assert_eq!(members[0]["Tags"]["role"], "consul");
    let m = get(&base, "/v1/agent/metrics").json();
    assert!(
        m["Gauges"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["Name"] == "outpost.catalog.services")
    );
    let p = get(&base, "/v1/agent/metrics?format=prometheus");
    assert!(
        p.body
            .contains("# TYPE outpost_http_requests_total counter"),
        "{}",
        p.body
    );
}

#[test]
fn kv_get_put_delete_cas_flags_keys_and_raw() {
    require_curl();
    let tmp = tempfile::tempdir().unwrap();
    let (_agent, base) = start(tmp.path(), &[]);
    assert_eq!(get(&base, "/v1/kv/app/config").status, 404);
    assert_eq!(
        put(&base, "/v1/kv/app/config?flags=42", "hello").body,
        "true"
    );
    let r = get(&base, "/v1/kv/app/config");
    let e = &r.json()[0];
    assert_eq!(e["Key"], "app/config");
    assert_eq!(e["Value"], "aGVsbG8=");
    assert_eq!(e["Flags"], 42);
    assert_eq!(e["LockIndex"], 0);
    let idx = e["ModifyIndex"].as_u64().unwrap();
    assert_eq!(r.index(), idx);
    assert_eq!(get(&base, "/v1/kv/app/config?raw").body, "hello");
    // Check-and-set: a stale index loses, the current one wins; cas=0 only creates.
    assert_eq!(
        put(&base, &format!("/v1/kv/app/config?cas={}", idx + 100), "x").body,
        "false"
    );
    assert_eq!(
        put(&base, &format!("/v1/kv/app/config?cas={idx}"), "v2").body,
        "true"
    );
    assert_eq!(put(&base, "/v1/kv/app/config?cas=0", "v3").body, "false");
    assert_eq!(get(&base, "/v1/kv/app/config?raw").body, "v2");
    put(&base, "/v1/kv/app/db/url", "pg://");
    put(&base, "/v1/kv/app/db/user", "u");
    put(&base, "/v1/kv/other", "o");
    assert_eq!(
        get(&base, "/v1/kv/app/?keys&separator=/").json(),
        serde_json::json!(["app/config", "app/db/"])
    );
    assert_eq!(
        get(&base, "/v1/kv/app?recurse")
            .json()
            .as_array()
            .unwrap()
            .len(),
        3
    );
    assert_eq!(
        get(&base, "/v1/kv/?recurse")
            .json()
            .as_array()
            .unwrap()
            .len(),
        4
    );
    // Empty value: null, as Consul writes it.
    put(&base, "/v1/kv/empty", "");
    assert_eq!(
        get(&base, "/v1/kv/empty").json()[0]["Value"],
        serde_json::Value::Null
    );
    assert_eq!(
        curl(&["-X", "DELETE", &format!("{base}/v1/kv/app/db?recurse")]).body,
        "true"
    );
    assert_eq!(
        get(&base, "/v1/kv/app/?keys").json(),
        serde_json::json!(["app/config"])
    );
    assert_eq!(
        curl(&["-X", "DELETE", &format!("{base}/v1/kv/app/config?cas=1")]).body,
        "false"
    );
    assert_eq!(
        curl(&["-X", "DELETE", &format!("{base}/v1/kv/app/config")]).body,
        "true"
    );
    assert_eq!(get(&base, "/v1/kv/app/config").status, 404);
    // Limits: a value over 512 KiB is 413 and nothing is stored.
    let big = tmp.path().join("big");
    std::fs::write(&big, vec![b'x'; 512 * 1024 + 1]).unwrap();
    let r = curl(&[
        "-X",
        "PUT",
        "--data-binary",
        &format!("@{}", big.display()),
        &format!("{base}/v1/kv/big"),
    ]);
    assert_eq!(r.status, 413, "{}", r.body);
    assert_eq!(get(&base, "/v1/kv/big").status, 404);
    assert_eq!(put(&base, "/v1/kv/", "x").status, 400, "missing key name");
    assert_eq!(put(&base, "/v1/kv/k?flags=x", "x").status, 400);
}

/// Reference: Consul's "Blocking Queries" documentation: a request with `?index=N` waits
/// until the index passes N or `wait` elapses, and then answers with the current data.
#[test]
fn blocking_queries_wake_on_their_change_only_and_time_out_at_wait() {
    require_curl();
    let tmp = tempfile::tempdir().unwrap();
    let (_agent, base) = start(tmp.path(), &[]);
    put(&base, "/v1/kv/watched", "1");
    let idx = get(&base, "/v1/kv/watched").index();

    // No change: answers at `wait` with the same index.
    let t = Instant::now();
    let r = get(&base, &format!("/v1/kv/watched?index={idx}&wait=1s"));
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(950) && took < Duration::from_secs(3),
        "{took:?}"
    );
    assert_eq!(r.index(), idx);

    // An unrelated key changes: still waiting, and the answer is unchanged.
    let b2 = base.clone();
    let unrelated = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        put(&b2, "/v1/kv/unrelated", "x");
    });
    let t = Instant::now();
    let r = get(&base, &format!("/v1/kv/watched?index={idx}&wait=1500ms"));
    assert!(
        t.elapsed() >= Duration::from_millis(1400),
        "woke early: {:?}",
        t.elapsed()
    );
    assert_eq!(r.index(), idx);
    unrelated.join().unwrap();

    // Its own key changes: answers at once with the new value and index.
    let b2 = base.clone();
    let writer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        put(&b2, "/v1/kv/watched", "2");
    });
    let t = Instant::now();
    let r = get(&base, &format!("/v1/kv/watched?index={idx}&wait=10s"));
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    assert!(r.index() > idx);
    assert_eq!(r.json()[0]["Value"], "Mg==");
    writer.join().unwrap();

    // A service watcher wakes when the service's health changes, not on KV writes.
    let idx = get(&base, "/v1/health/service/db").index();
    let b2 = base.clone();
    let writer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        put(&b2, "/v1/kv/noise", "x");
        std::thread::sleep(Duration::from_millis(300));
        put(&b2, "/v1/agent/check/fail/db-ttl", "");
    });
    let t = Instant::now();
    let r = get(
        &base,
        &format!("/v1/health/service/db?index={idx}&wait=10s"),
    );
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(550) && took < Duration::from_secs(3),
        "{took:?}"
    );
    assert_eq!(r.json()[0]["Checks"][0]["Status"], "critical");
    writer.join().unwrap();

    // A prefix watcher wakes for a new key under it.
    let idx = get(&base, "/v1/kv/dir/?recurse").index();
    let b2 = base.clone();
    let writer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        put(&b2, "/v1/kv/dir/new", "x");
    });
    let r = get(&base, &format!("/v1/kv/dir/?recurse&index={idx}&wait=10s"));
    assert_eq!(r.status, 200);
    assert_eq!(r.json()[0]["Key"], "dir/new");
    writer.join().unwrap();
}

#[test]
fn bad_requests_get_clear_errors_and_change_nothing() {
    require_curl();
    let tmp = tempfile::tempdir().unwrap();
    let (agent, base) = start(tmp.path(), &[]);
    let before = get(&base, "/v1/catalog/services");

    let r = put(
        &base,
        "/v1/agent/service/register",
        r#"{"Name": "x", "Port": "eighty"}"#,
    );
    assert_eq!(r.status, 400);
    assert!(
        r.body.contains("Port") && r.body.contains("eighty"),
        "{}",
        r.body
    );
    let r = put(&base, "/v1/agent/service/register", r#"{"Name": "x", "#);
    assert_eq!(r.status, 400);
    assert!(r.body.contains("decode"), "{}", r.body);
    let r = put(
        &base,
        "/v1/agent/service/register",
        r#"{"Name": "x", "Check": {"TTL": "soon"}}"#,
    );
    assert_eq!(r.status, 400);
    assert!(r.body.contains("TTL"), "{}", r.body);
    assert_eq!(
        put(&base, "/v1/catalog/register", r#"{"Address": "1.2.3.4"}"#).status,
        400
    );

    let r = get(&base, "/v1/nope");
    assert_eq!(r.status, 404);
    assert_eq!(get(&base, "/v1/catalog/nope").status, 404);
    assert_eq!(get(&base, "/nope").status, 404);
    let r = curl(&["-X", "DELETE", &format!("{base}/v1/catalog/services")]);
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET"));
    assert_eq!(get(&base, "/v1/agent/service/register").status, 405);
    assert_eq!(get(&base, "/v1/kv/x?index=abc").status, 400);
    assert_eq!(get(&base, "/v1/kv/x?index=1&wait=forever").status, 400);

    // Oversized body (over 1 MiB): 413.
    let big = tmp.path().join("big.json");
    std::fs::write(&big, vec![b' '; 2 << 20]).unwrap();
    let r = curl(&[
        "-X",
        "PUT",
        "--data-binary",
        &format!("@{}", big.display()),
        &format!("{base}/v1/agent/service/register"),
    ]);
    assert_eq!(r.status, 413);
    // Oversized headers: hyper refuses them (431) and the server keeps serving.
    let huge = format!("X-Big: {}", "a".repeat(20_000));
    let r = curl(&["-H", &huge, &format!("{base}/v1/catalog/services")]);
    assert_eq!(r.status, 431);

    assert_eq!(
        get(&base, "/v1/catalog/services").body,
        before.body,
        "nothing changed"
    );
    assert!(agent.log().lines().all(|l| !l.contains("panicked")));
}

/// Half-open and junk connections do not stop the server: a raw TCP client that sends
/// garbage is answered 400 and closed, a real request gets through while 50 clients sit
/// silent, and those are closed after the header timeout.
#[test]
fn junk_and_stalled_connections_do_not_block_others() {
    use std::io::{Read, Write};
    require_curl();
    let tmp = tempfile::tempdir().unwrap();
    let (agent, base) = start(tmp.path(), &[]);
    let addr = agent.http.unwrap();
    let mut junk = std::net::TcpStream::connect(addr).unwrap();
    junk.write_all(b"\x16\x03\x01\x02\x00garbage\r\n\r\n")
        .unwrap();
    junk.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = Vec::new();
    let _ = junk.read_to_end(&mut buf);
    assert!(
        String::from_utf8_lossy(&buf).starts_with("HTTP/1.1 400"),
        "{buf:?}"
    );
    let stalled: Vec<_> = (0..50)
        .map(|_| std::net::TcpStream::connect(addr).unwrap())
        .collect();
    let t = Instant::now();
    assert_eq!(get(&base, "/v1/status/leader").status, 200);
    assert!(t.elapsed() < Duration::from_secs(2));
    // Silent connections are closed after the 10 s header timeout, freeing their slots.
    let t = Instant::now();
    for mut s in stalled {
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut b = [0u8; 16];
        assert_eq!(s.read(&mut b).unwrap_or(0), 0, "closed without a reply");
    }
    let took = t.elapsed();
    assert!(
        took > Duration::from_secs(8) && took < Duration::from_secs(15),
        "{took:?}"
    );
}

/// A tiny HTTP server in a thread answering every request with the status in `status`
/// (0: close the connection without answering).
fn status_server(status: std::sync::Arc<std::sync::atomic::AtomicU16>) -> std::net::SocketAddr {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut buf = [0u8; 4096];
            let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
            let _ = conn.read(&mut buf);
            let code = status.load(std::sync::atomic::Ordering::SeqCst);
            if code == 0 {
                continue;
            }
            let body = format!("status {code}");
            let _ = write!(
                conn,
                "HTTP/1.1 {code} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    addr
}

fn passing_ids(base: &str, service: &str) -> Vec<String> {
    get(base, &format!("/v1/health/service/{service}?passing"))
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["Service"]["ID"].as_str().unwrap().to_string())
        .collect()
}

/// Reference: Consul's check documentation: HTTP 2xx is passing, 429 warning, anything else
/// critical; a TCP connect that succeeds is passing. DNS and `?passing` follow.
#[test]
fn http_and_tcp_checks_follow_real_servers_up_and_down() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU16, Ordering};
    require_curl();
    require_dig();
    let tmp = tempfile::tempdir().unwrap();
    let (agent, base) = start(tmp.path(), &[]);
    let dns = agent.dns.unwrap().port();
    let status = Arc::new(AtomicU16::new(200));
    let web = status_server(status.clone());
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let tcp_addr = tcp.local_addr().unwrap();
    let r = put(
        &base,
        "/v1/agent/service/register",
        &format!(
            r#"{{"Name": "shop", "ID": "shop1", "Port": {},
                "Check": {{"HTTP": "http://{web}/health", "Interval": "1s", "Timeout": "1s"}}}}"#,
            web.port()
        ),
    );
    assert_eq!(r.status, 200, "{r:?}");
    let r = put(
        &base,
        "/v1/agent/service/register",
        &format!(
            r#"{{"Name": "cache", "ID": "cache1", "Port": {},
                "Check": {{"TCP": "{tcp_addr}", "Interval": "1s", "Timeout": "1s"}}}}"#,
            tcp_addr.port()
        ),
    );
    assert_eq!(r.status, 200, "{r:?}");

    common::eventually("the HTTP check passes", || {
        passing_ids(&base, "shop") == ["shop1"]
    });
    let check = &get(&base, "/v1/agent/checks").json()["service:shop1"];
    assert_eq!(check["Type"], "http");
    let out = check["Output"].as_str().unwrap();
    assert!(
        out.starts_with(&format!("HTTP GET http://{web}/health: 200")),
        "{out}"
    );
    assert!(out.contains("status 200"), "{out}");
    assert_eq!(
        dig(dns, &["shop.service.consul"]).answers("A"),
        ["127.0.0.1"]
    );

    status.store(429, Ordering::SeqCst);
    common::eventually("429 is a warning", || {
        get(&base, "/v1/agent/checks").json()["service:shop1"]["Status"] == "warning"
    });
    assert!(passing_ids(&base, "shop").is_empty());
    assert_eq!(
        dig(dns, &["shop.service.consul"]).answers("A"),
        ["127.0.0.1"]
    );

    status.store(500, Ordering::SeqCst);
    common::eventually("500 is critical and leaves DNS", || {
        dig(dns, &["shop.service.consul"]).status == "NXDOMAIN"
    });
    status.store(200, Ordering::SeqCst);
    common::eventually("back up", || passing_ids(&base, "shop") == ["shop1"]);

    common::eventually("the TCP check passes", || {
        passing_ids(&base, "cache") == ["cache1"]
    });
    drop(tcp);
    common::eventually("a closed port is critical", || {
        dig(dns, &["cache.service.consul"]).status == "NXDOMAIN"
    });
    let out = get(&base, "/v1/agent/checks").json()["service:cache1"]["Output"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(out.contains(&tcp_addr.to_string()), "{out}");
}

/// TTL checks expire to critical; a service whose check stays critical past
/// `deregister_critical_service_after` is removed; script checks run where enabled.
#[test]
fn ttl_expiry_deregistration_and_script_checks() {
    require_curl();
    let tmp = tempfile::tempdir().unwrap();
    write(
        &tmp.path().join("conf"),
        "scripts.json",
        r#"{"enable_script_checks": true}"#,
    );
    let (_agent, base) = start(tmp.path(), &[]);
    let r = put(
        &base,
        "/v1/agent/service/register",
        r#"{"Name": "job", "ID": "job1", "Check": {"TTL": "1s", "Status": "passing"}}"#,
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(passing_ids(&base, "job"), ["job1"]);
    common::eventually("the TTL expires", || {
        let c = &get(&base, "/v1/agent/checks").json()["service:job1"];
        c["Status"] == "critical" && c["Output"].as_str().unwrap().starts_with("TTL expired")
    });
    put(&base, "/v1/agent/check/pass/service:job1", "");
    // The check's new status reaches the catalog (which /v1/health reads) on the agent's
    // next turn, as Consul's anti-entropy brings it to the servers: soon, not at once.
    common::eventually("the passing check shows in the catalog", || {
        passing_ids(&base, "job") == ["job1"]
    });

    let r = put(
        &base,
        "/v1/agent/service/register",
        r#"{"Name": "gone", "ID": "gone1",
            "Check": {"TCP": "127.0.0.1:1", "Interval": "1s", "Timeout": "500ms",
                      "DeregisterCriticalServiceAfter": "1s"}}"#,
    );
    assert_eq!(r.status, 200, "{r:?}");
    common::eventually("the critical service is deregistered", || {
        get(&base, "/v1/agent/service/gone1").status == 404
    });

    let r = put(
        &base,
        "/v1/agent/service/register",
        r#"{"Name": "scripted", "ID": "s1",
            "Checks": [{"ID": "ok", "Args": ["/bin/sh", "-c", "echo fine"], "Interval": "1s"},
                       {"ID": "meh", "Args": ["/bin/sh", "-c", "echo slow; exit 1"], "Interval": "1s"}]}"#,
    );
    assert_eq!(r.status, 200, "{r:?}");
    common::eventually("both scripts ran", || {
        let c = get(&base, "/v1/agent/checks").json();
        c["ok"]["Status"] == "passing" && c["meh"]["Status"] == "warning"
    });
    let c = get(&base, "/v1/agent/checks").json();
    assert_eq!(c["ok"]["Output"], "fine\n");
    assert_eq!(c["meh"]["Output"], "slow\n");
}

/// The `outpost.http.parked` gauge: blocking queries waiting outside hyper.
fn parked(base: &str) -> u64 {
    let m = get(base, "/v1/agent/metrics").json();
    m["Gauges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["Name"] == "outpost.http.parked")
        .and_then(|g| g["Value"].as_f64())
        .unwrap() as u64
}

/// Waiting blocking queries are parked outside hyper (their connections keep no HTTP
/// buffers) and answered on the same keep-alive connection when their data changes; a
/// client that goes away while parked frees its slot; pipelined requests are still answered
/// in order.
#[test]
fn waiting_queries_are_parked_and_answered_on_their_own_connections() {
    use std::io::{BufReader, Write};
    require_curl();
    let tmp = tempfile::tempdir().unwrap();
    let (agent, base) = start(tmp.path(), &[]);
    let addr = agent.http.unwrap();
    put(&base, "/v1/kv/p", "0");
    let idx = get(&base, "/v1/kv/p").index();
    let req = format!("GET /v1/kv/p?index={idx}&wait=30s HTTP/1.1\r\nHost: x\r\n\r\n");
    let mut conns: Vec<std::net::TcpStream> = (0..100)
        .map(|_| {
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            s.write_all(req.as_bytes()).unwrap();
            s
        })
        .collect();
    common::eventually("100 parked", || parked(&base) == 100);
    // One client leaves: its slot is freed without an answer.
    drop(conns.pop());
    common::eventually("99 parked", || parked(&base) == 99);
    put(&base, "/v1/kv/p", "1");
    for s in &mut conns {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let (head, body) = read_response(&mut BufReader::new(&*s));
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert!(
            head.to_ascii_lowercase()
                .contains(&format!("x-consul-index: {}", idx + 1)),
            "{head}"
        );
        assert!(body.contains("\"Value\":\"MQ==\""), "{body}");
    }
    assert_eq!(parked(&base), 0);
    // The same connection, kept alive, parks its next blocking query too.
    let s = &mut conns[0];
    let next = format!(
        "GET /v1/kv/p?index={}&wait=30s HTTP/1.1\r\nHost: x\r\n\r\n",
        idx + 1
    );
    s.write_all(next.as_bytes()).unwrap();
    common::eventually("parked again", || parked(&base) == 1);
    put(&base, "/v1/kv/p", "2");
    let (head, _) = read_response(&mut BufReader::new(&*s));
    assert!(
        head.to_ascii_lowercase()
            .contains(&format!("x-consul-index: {}", idx + 2)),
        "{head}"
    );
    // Two requests in one write (pipelined): both answered, in order.
    let two = format!(
        "GET /v1/kv/p?index={}&wait=1s HTTP/1.1\r\nHost: x\r\n\r\nGET /v1/status/leader HTTP/1.1\r\nHost: x\r\n\r\n",
        idx + 2
    );
    let t = Instant::now();
    let mut r = BufReader::new(s.try_clone().unwrap());
    s.write_all(two.as_bytes()).unwrap();
    let (h1, b1) = read_response(&mut r);
    let (h2, b2) = read_response(&mut r);
    assert!(
        h1.starts_with("HTTP/1.1 200") && b1.contains("Mg=="),
        "{h1}{b1}"
    );
    assert!(
        h2.starts_with("HTTP/1.1 200") && b2.contains("127.0.0.1:"),
        "{h2}{b2}"
    );
    assert!(
        t.elapsed() >= Duration::from_millis(900),
        "the first waited its second"
    );
}

/// Consul's ACL basics: with `acl.enabled`, writes need the management token (header or
/// bearer); with `default_policy = "deny"` reads do too; a wrong token is refused; the status
/// endpoints and the status page stay open.
#[test]
fn acl_tokens_guard_writes_and_with_deny_reads() {
    require_curl();
    let tmp = tempfile::tempdir().unwrap();
    write(
        &tmp.path().join("conf"),
        "acl.json",
        r#"{"acl": {"enabled": true, "default_policy": "allow", "tokens": {"initial_management": "root-token"}}}"#,
    );
    let (agent, base) = start(tmp.path(), &[]);
    let url = |p: &str| format!("{base}{p}");
    let r = put(&base, "/v1/kv/a", "1");
    assert_eq!(r.status, 403);
    assert!(r.body.contains("Permission denied"), "{}", r.body);
    let r = curl(&[
        "-X",
        "PUT",
        "-H",
        "X-Consul-Token: nope",
        "--data-binary",
        "1",
        &url("/v1/kv/a"),
    ]);
    assert_eq!((r.status, r.body.trim()), (403, "ACL not found"));
    let r = curl(&[
        "-X",
        "PUT",
        "-H",
        "X-Consul-Token: root-token",
        "--data-binary",
        "1",
        &url("/v1/kv/a"),
    ]);
    assert_eq!((r.status, r.body.as_str()), (200, "true"));
    let r = curl(&[
        "-X",
        "PUT",
        "-H",
        "Authorization: Bearer root-token",
        "--data-binary",
        "2",
        &url("/v1/kv/a"),
    ]);
    assert_eq!((r.status, r.body.as_str()), (200, "true"));
    assert_eq!(
        get(&base, "/v1/kv/a?raw").body,
        "2",
        "reads are open under allow"
    );
    assert_eq!(
        put(&base, "/v1/agent/service/register", r#"{"Name": "x"}"#).status,
        403
    );
    drop(agent);

    // default_policy deny: reads need the token too; status and the page do not.
    let tmp = tempfile::tempdir().unwrap();
    write(
        &tmp.path().join("conf"),
        "acl.json",
        r#"{"acl": {"enabled": true, "default_policy": "deny", "tokens": {"initial_management": "root-token"}}}"#,
    );
    let (_agent, base) = start(tmp.path(), &[]);
    assert_eq!(get(&base, "/v1/catalog/services").status, 403);
    assert_eq!(get(&base, "/v1/catalog/services?token=nope").status, 403);
    assert_eq!(
        get(&base, "/v1/catalog/services?token=root-token").status,
        200
    );
    let r = curl(&[
        "-H",
        "X-Consul-Token: root-token",
        &format!("{base}/v1/health/service/web"),
    ]);
    assert_eq!(r.status, 200);
    assert_eq!(get(&base, "/v1/status/leader").status, 200);
    assert_eq!(get(&base, "/").status, 200);
    // A blocking query with the token still waits and answers.
    let r = curl(&[
        "-H",
        "X-Consul-Token: root-token",
        &format!("{base}/v1/kv/nothing?index=1&wait=300ms"),
    ]);
    assert_eq!(r.status, 404);
}

#[test]
fn streams_are_listed_with_their_settings_and_state() {
    require_curl();
    let tmp = tempfile::tempdir().unwrap();
    write(
        &tmp.path().join("conf"),
        "streams.json",
        r#"{"streams": [{"name": "yard", "source": "v4l2", "device": "/dev/video7", "codec": "h264"},
                        {"name": "demo", "source": "rtp", "video_port": 5004, "audio_port": 5002}]}"#,
    );
    let (_agent, base) = start(tmp.path(), &[]);
    let v = get(&base, "/v1/streams").json();
    let list = v.as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["Name"], "yard");
    assert_eq!(list[0]["Source"], "v4l2");
    assert_eq!(list[0]["Codec"], "h264");
    assert_eq!(
        (list[0]["Width"].as_u64(), list[0]["Height"].as_u64()),
        (Some(640), Some(480))
    );
    assert_eq!(list[0]["Viewer"], "/streams/yard");
    assert_eq!(list[1]["Audio"], true);
    let state = list[0]["State"].as_str().unwrap();
    let expected = if cfg!(feature = "media") {
        ["idle", "starting", "playing", "offline"].as_slice()
    } else {
        ["unavailable"].as_slice()
    };
    assert!(expected.contains(&state), "{state}");
    assert_eq!(get(&base, "/v1/streams/demo").json()["Source"], "rtp");
    assert_eq!(get(&base, "/v1/streams/nope").status, 404);
    // Each stream's viewer page: a WHEP player, under the page's content security policy.
    let page = get(&base, "/streams/yard");
    assert_eq!(page.status, 200);
    assert!(page.body.contains("RTCPeerConnection") && page.body.contains("whep/"));
    assert!(
        page.header("content-security-policy")
            .is_some_and(|v| v.contains("connect-src 'self'"))
    );
    assert_eq!(get(&base, "/streams/nope").status, 404);
}
