//! Fuzz entry point for the API (STYLE.md item 10): any method, path, query and body against
//! an agent state. A bug shows up as a panic or a broken promise: a refused request
//! (4xx) changes nothing, a kept read equals a fresh one, and no request is a 500 unless
//! the route says why.

use http::Method;

use super::request::Request;
use super::routes::{self, Handled};
use crate::agent::{State, initial_state};
use crate::config::{AgentFlags, HostInfo, Source, build};

/// An agent state with two services, one with a TTL check, and a KV key.
pub fn fixture() -> State {
    let flags = AgentFlags {
        dev: true,
        ..AgentFlags::default()
    };
    let host = HostInfo {
        hostname: "box1".into(),
        addresses: vec!["127.0.0.1".parse().expect("literal")],
        ..HostInfo::default()
    };
    let text = r#"{"services": [{"name": "web", "tags": ["rails"], "port": 80},
        {"id": "db1", "name": "db", "port": 5432, "check": {"id": "t", "ttl": "30s"}}]}"#;
    let source = Source {
        name: "fixture.json".into(),
        text: text.into(),
        scope: 0,
    };
    let config = build(&flags, &[source], &host).expect("fixture config is valid");
    let mut s = initial_state(config, 1).expect("fixture applies");
    let put = Request::new(Method::PUT, "/v1/kv/app/x", None, b"v".to_vec());
    routes::handle(&mut s, &put);
    s
}

/// Runs one request and checks the promises every answer keeps. Returns the status.
pub fn fuzz_request(
    state: &mut State,
    method: Method,
    path: &str,
    query: &str,
    body: &[u8],
) -> u16 {
    let generation = state.catalog.generation();
    let req = Request::new(method, path, Some(query), body.to_vec());
    let reply = match routes::handle_cached(state, &req) {
        Handled::Reply(r) => r,
        // Only a join waits outside the state; the state used here has no gossip.
        Handled::Async(f) => smol::block_on(f),
        Handled::Read { reply, index, .. } => {
            assert!(index >= 1, "a read's index is never 0");
            assert_eq!(reply.index, Some(index));
            // A kept reply is the one a fresh read gives.
            let Handled::Read { reply: fresh, .. } = routes::handle(state, &req) else {
                panic!("a read became a reply: {path}?{query}");
            };
            assert_eq!(
                reply, fresh,
                "kept and fresh replies differ: {path}?{query}"
            );
            reply
        }
    };
    let status = reply.status.as_u16();
    if (400..500).contains(&status) {
        assert_eq!(
            state.catalog.generation(),
            generation,
            "a refused request ({status}) changed the catalog: {path}?{query}"
        );
        assert!(!reply.body.is_empty(), "an error says why");
    }
    if status == 405 {
        assert!(reply.allow.is_some(), "405 names the allowed methods");
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const PATHS: &[&str] = &[
        "/v1/catalog/register",
        "/v1/catalog/deregister",
        "/v1/catalog/services",
        "/v1/catalog/service/web",
        "/v1/catalog/node/box1",
        "/v1/catalog/node-services/box1",
        "/v1/health/service/db",
        "/v1/health/state/any",
        "/v1/agent/service/register",
        "/v1/agent/service/deregister/web",
        "/v1/agent/service/maintenance/db1",
        "/v1/agent/check/register",
        "/v1/agent/check/update/t",
        "/v1/agent/check/pass/t",
        "/v1/agent/checks",
        "/v1/agent/metrics",
        "/v1/kv/app/x",
        "/v1/kv/",
        "/v1/status/leader",
    ];

    const BODIES: &[&str] = &[
        r#"{"Node": "n", "Address": "10.0.0.1", "Service": {"Service": "s", "Port": 1, "Tags": ["a"]}, "Check": {"CheckID": "c", "Name": "c", "Status": "passing", "ServiceID": "s"}}"#,
        r#"{"Node": "box1", "ServiceID": "web"}"#,
        r#"{"Name": "api", "ID": "a1", "Port": 8080, "Meta": {"k": "v"}, "Weights": {"Passing": 3, "Warning": 1}, "Checks": [{"TTL": "10s"}, {"HTTP": "http://127.0.0.1:1/", "Interval": "5s", "Header": {"X": ["y"]}}]}"#,
        r#"{"Name": "tcp", "TCP": "127.0.0.1:1", "Interval": "10s", "ServiceID": "db1"}"#,
        r#"{"Status": "warning", "Output": "slow"}"#,
    ];

    fn method() -> impl Strategy<Value = Method> {
        prop::sample::select(vec![
            Method::GET,
            Method::PUT,
            Method::POST,
            Method::DELETE,
            Method::HEAD,
            Method::PATCH,
        ])
    }

    fn query() -> impl Strategy<Value = String> {
        prop::sample::select(vec![
            "",
            "pretty",
            "recurse",
            "keys&separator=/",
            "raw",
            "cas=0",
            "cas=1",
            "cas=x",
            "flags=7",
            "index=1&wait=1ms",
            "index=zz",
            "passing",
            "tag=rails",
            "enable=true",
            "enable=maybe",
            "note=%FF%00",
            "replace-existing-checks",
        ])
        .prop_map(String::from)
    }

    /// A valid body with a few bytes changed, cut or inserted.
    fn mutated_body() -> impl Strategy<Value = Vec<u8>> {
        (
            prop::sample::select(BODIES.to_vec()),
            prop::collection::vec((any::<usize>(), any::<u8>(), 0u8..3), 0..4),
        )
            .prop_map(|(b, muts)| {
                let mut b = b.as_bytes().to_vec();
                for (i, byte, kind) in muts {
                    if b.is_empty() {
                        break;
                    }
                    let i = i % b.len();
                    match kind {
                        0 => b[i] = byte,
                        1 => b.truncate(i),
                        _ => b.insert(i, byte),
                    }
                }
                b
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

        /// Any request: no panic, refused ones change nothing, every error says why.
        #[test]
        fn any_request_keeps_the_promises(
            reqs in prop::collection::vec((
                method(),
                prop::sample::select(PATHS.to_vec()),
                query(),
                prop_oneof![mutated_body(), prop::collection::vec(any::<u8>(), 0..64)],
            ), 1..6),
        ) {
            let mut state = fixture();
            for (m, p, q, b) in reqs {
                let status = fuzz_request(&mut state, m, p, &q, &b);
                prop_assert!(status != 500 || p.contains("/check/"), "500 from {p}?{q}");
            }
        }

        /// Random paths (with encoded bytes) are 404 or 405, never a panic.
        #[test]
        fn random_paths_are_refused_cleanly(tail in "[a-z/%0-9A-F.\\-]{0,40}", m in method()) {
            let mut state = fixture();
            fuzz_request(&mut state, m, &format!("/v1/{tail}"), "", b"");
        }

        /// A registered service reads back as it was written.
        #[test]
        fn agent_registration_round_trips(
            name in "[a-z][a-z0-9-]{0,20}",
            port in any::<u16>(),
            tags in prop::collection::vec("[a-z0-9]{1,8}", 0..4),
            meta in prop::collection::btree_map("[a-z]{1,8}", "[ -~]{0,16}", 0..4),
        ) {
            let mut state = fixture();
            let body = serde_json::json!({"Name": name, "ID": format!("{name}-1"), "Port": port,
                                          "Tags": tags, "Meta": meta});
            let status = fuzz_request(&mut state, Method::PUT, "/v1/agent/service/register", "",
                                      body.to_string().as_bytes());
            prop_assert_eq!(status, 200);
            let req = Request::new(Method::GET, &format!("/v1/agent/service/{name}-1"), None, vec![]);
            let Handled::Reply(r) = routes::handle(&mut state, &req) else {
                panic!("agent/service is not a blocking read")
            };
            let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
            prop_assert_eq!(&v["Service"], &serde_json::json!(name));
            prop_assert_eq!(&v["Port"], &serde_json::json!(port));
            prop_assert_eq!(&v["Tags"], &serde_json::json!(tags));
            prop_assert_eq!(&v["Meta"], &serde_json::json!(meta));
        }
    }
}
