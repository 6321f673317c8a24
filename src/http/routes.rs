//! Consul's API routes: a request and the agent state in, a reply out (pure but for the
//! commands writes commit). Reads also say their index and what they watch, so the shell
//! can hold them as blocking queries.

use std::collections::{BTreeMap, BTreeSet};

use http::{Method, StatusCode};

use super::agent_routes;
use super::cache::{Kept, ReadCache};
use super::json::{
    InCatalogDeregistration, InCatalogRegistration, JsonCatalogService, JsonCheck, JsonKv,
    JsonNode, JsonService, JsonServiceHealth, parse_body,
};
use super::request::{Reply, Request, TEXT};
use super::watch::Watch;
use crate::agent::State;
use crate::catalog::{
    ApplyError, Change, Command, Deregistration, Health, HealthFilter, KvDelete, KvSet, Node,
    Registration, Topic, kv,
};

/// What a route gives: a reply, or a read that may be held until its data changes.
pub enum Handled {
    Reply(Reply),
    /// Answered once something outside the state is done (a join waits for a member to
    /// answer); the future holds no borrow of the state.
    Async(std::pin::Pin<Box<dyn std::future::Future<Output = Reply>>>),
    Read {
        reply: Reply,
        /// The data's index: a blocking query waits until it passes the client's.
        index: u64,
        watch: Watch,
    },
}

impl std::fmt::Debug for Handled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Handled::Reply(r) => f.debug_tuple("Reply").field(r).finish(),
            Handled::Async(_) => f.write_str("Async(..)"),
            Handled::Read { reply, index, .. } => f
                .debug_struct("Read")
                .field("reply", reply)
                .field("index", index)
                .finish_non_exhaustive(),
        }
    }
}

impl From<Reply> for Handled {
    fn from(r: Reply) -> Handled {
        Handled::Reply(r)
    }
}

fn read(reply: Reply, index: u64, watch: Watch) -> Handled {
    let index = index.max(1);
    Handled::Read {
        reply: reply.with_index(index),
        index,
        watch,
    }
}

pub fn not_found(what: impl Into<String>) -> Reply {
    Reply::error(StatusCode::NOT_FOUND, what)
}

pub fn bad_request(what: impl Into<String>) -> Reply {
    Reply::error(StatusCode::BAD_REQUEST, what)
}

fn method_not_allowed(req: &Request, allow: &'static str) -> Reply {
    let mut r = Reply::error(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("method {} not allowed: expected {allow}", req.method),
    );
    r.allow = Some(allow);
    r
}

/// `true`, as Consul answers successful catalog and KV writes.
fn json_bool(b: bool) -> Reply {
    Reply::json(&b, false)
}

/// An empty 200, as Consul answers agent writes.
pub fn ok_empty() -> Reply {
    Reply {
        status: StatusCode::OK,
        content_type: TEXT,
        body: bytes::Bytes::new(),
        index: None,
        allow: None,
        headers: Vec::new(),
    }
}

/// Writes `command` through the one write path and answers `done()`; a refused command
/// is a 400 naming why. At once on an agent that applies locally; on a Raft server once the
/// command is committed and applied here (a 500 when the cluster has no answer, as
/// Consul's "No cluster leader").
pub fn write(
    state: &mut State,
    command: Command,
    done: impl FnOnce() -> Reply + 'static,
) -> Handled {
    write_with(state, command, move |r| match r {
        Ok(_) => done(),
        Err(e) => bad_request(e.to_string()),
    })
}

/// As [`write()`], with the outcome (the index, or the catalog's refusal) to answer from.
pub fn write_with(
    state: &mut State,
    command: Command,
    answer: impl FnOnce(Result<u64, ApplyError>) -> Reply + 'static,
) -> Handled {
    match state.raft.clone() {
        None => answer(state.commit(&command)).into(),
        Some(w) => Handled::Async(Box::pin(async move {
            match w.write(command).await {
                Ok(r) => answer(r),
                Err(crate::agent::replication::Unavailable(e)) => {
                    Reply::error(StatusCode::INTERNAL_SERVER_ERROR, e)
                }
            }
        })),
    }
}

/// With ACLs enabled, a write needs the management token, and so does a read under
/// `default_policy = "deny"`; the status page's files and `/v1/status/` are open to all, as
/// in Consul. A wrong token is "ACL not found", a missing one "Permission denied"; both 403.
pub fn authorize(state: &State, req: &Request) -> Result<(), Reply> {
    let acl = &state.config.acl;
    if !acl.enabled || req.path.starts_with("/v1/status/") || !req.path.starts_with("/v1/") {
        return Ok(());
    }
    let read = req.method == Method::GET || req.method == Method::HEAD;
    let token = req.token.as_deref().filter(|t| !t.is_empty());
    match token {
        Some(t) if t == acl.management_token => Ok(()),
        Some(_) => Err(Reply::error(StatusCode::FORBIDDEN, "ACL not found")),
        None if read && !acl.deny_by_default => Ok(()),
        None => Err(Reply::error(
            StatusCode::FORBIDDEN,
            "Permission denied: this request needs a token (X-Consul-Token or Authorization: Bearer)",
        )),
    }
}

/// [`handle`], with reads served from and kept in the state's [`ReadCache`].
pub fn handle_cached(state: &mut State, req: &Request) -> Handled {
    if let Err(r) = authorize(state, req) {
        return r.into();
    }
    let Some(key) = ReadCache::key(req) else {
        return handle(state, req);
    };
    let generation = state.catalog.generation();
    if let Some(k) = state.http_cache.get(generation, &key) {
        return Handled::Read {
            reply: k.reply,
            index: k.index,
            watch: k.watch,
        };
    }
    let handled = handle(state, req);
    if let Handled::Read {
        reply,
        index,
        watch,
    } = &handled
    {
        let kept = Kept {
            reply: reply.clone(),
            index: *index,
            watch: watch.clone(),
        };
        state
            .http_cache
            .insert(state.catalog.generation(), key, kept);
    }
    handled
}

/// Routes `req`. Unknown paths get 404, known paths with another method 405.
pub fn handle(state: &mut State, req: &Request) -> Handled {
    if let Err(r) = authorize(state, req) {
        return r.into();
    }
    let pretty = req.has("pretty");
    if (req.method == Method::GET || req.method == Method::HEAD)
        && let Some(page) = super::ui::asset(&req.path)
    {
        return page.into();
    }
    if req.path.starts_with("/whep/") {
        return whep(state, req);
    }
    if let Some(name) = req.path.strip_prefix("/streams/") {
        if req.method != Method::GET && req.method != Method::HEAD {
            return method_not_allowed(req, "GET").into();
        }
        let name = name.trim_end_matches('/');
        return if state.config.streams.iter().any(|s| s.name == name) {
            super::ui::viewer().into()
        } else {
            not_found(format!("no stream named {name:?}")).into()
        };
    }
    let Some(rest) = req.path.strip_prefix("/v1/") else {
        return not_found(format!("no such API path: {}", req.path)).into();
    };
    let (family, rest) = rest.split_once('/').unwrap_or((rest, ""));
    let r = match family {
        "catalog" => catalog(state, req, rest, pretty),
        "health" => health(state, req, rest, pretty),
        "kv" => return kv(state, req, rest, pretty),
        "status" => status(state, req, rest, pretty),
        "streams" => streams(state, req, rest, pretty),
        "agent" => agent_routes::handle(state, req, rest, pretty),
        "operator" => agent_routes::operator(state, req, rest, pretty),
        _ => Err(not_found(format!("no such API path: {}", req.path))),
    };
    r.unwrap_or_else(Handled::Reply)
}

/// Checks the method of a known route.
fn expect(req: &Request, allowed: &'static str) -> Result<(), Reply> {
    let ok = allowed
        .split(", ")
        .any(|m| m == req.method.as_str() || (m == "GET" && req.method == Method::HEAD));
    if ok {
        Ok(())
    } else {
        Err(method_not_allowed(req, allowed))
    }
}

fn lower(s: &str) -> String {
    s.to_ascii_lowercase()
}

/// `?node-meta=key:value` filters (Consul's), all of which must match.
fn node_meta_ok(req: &Request, node: &Node) -> bool {
    match req.param("node-meta") {
        None => true,
        Some(f) => {
            let (k, v) = f.split_once(':').unwrap_or((f, ""));
            node.meta.get(k).is_some_and(|x| x == v)
        }
    }
}

fn catalog(state: &mut State, req: &Request, rest: &str, pretty: bool) -> Result<Handled, Reply> {
    let (what, arg) = rest.split_once('/').unwrap_or((rest, ""));
    let c = &state.catalog;
    match what {
        "register" => {
            expect(req, "PUT")?;
            let body: InCatalogRegistration = parse_body(&req.body).map_err(bad_request)?;
            let cmd = catalog_registration(state, body)?;
            Ok(write(state, cmd, || json_bool(true)))
        }
        "deregister" => {
            expect(req, "PUT")?;
            let body: InCatalogDeregistration = parse_body(&req.body).map_err(bad_request)?;
            if body.node.is_empty() {
                return Err(bad_request("Missing node name"));
            }
            let cmd = Command::one(Change::Deregister(Deregistration {
                node: body.node,
                service_id: body.service_id.filter(|s| !s.is_empty()),
                check_id: body.check_id.filter(|s| !s.is_empty()),
            }));
            Ok(write(state, cmd, || json_bool(true)))
        }
        "datacenters" => {
            expect(req, "GET")?;
            Ok(Reply::json(&[&state.config.datacenter], pretty).into())
        }
        "nodes" => {
            expect(req, "GET")?;
            let mut nodes: Vec<JsonNode<'_>> = c
                .nodes()
                .filter(|n| node_meta_ok(req, &n.node))
                .map(JsonNode::of)
                .collect();
            nodes.sort_by(|a, b| a.node.cmp(b.node));
            Ok(read(
                Reply::json(&nodes, pretty),
                c.nodes_index(),
                Watch::Topic(Topic::Nodes),
            ))
        }
        "services" => {
            expect(req, "GET")?;
            let mut out: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
            for name in c.service_names() {
                let tags = out.entry(name).or_default();
                for i in c.instances(name, None, HealthFilter::All) {
                    if node_meta_ok(req, &i.node.node) {
                        tags.extend(i.service.service.tags.iter().map(String::as_str));
                    }
                }
            }
            Ok(read(
                Reply::json(&out, pretty),
                c.services_index(),
                Watch::Topic(Topic::Services),
            ))
        }
        "service" if !arg.is_empty() => {
            expect(req, "GET")?;
            let tag = req.param("tag");
            let mut v: Vec<JsonCatalogService<'_>> = c
                .instances(arg, tag, HealthFilter::All)
                .filter(|i| node_meta_ok(req, &i.node.node))
                .map(|i| JsonCatalogService::of(i.node, i.service))
                .collect();
            v.sort_by(|a, b| (a.node, a.service_id).cmp(&(b.node, b.service_id)));
            Ok(read(
                Reply::json(&v, pretty),
                service_index(state, arg),
                Watch::Topic(Topic::Service(lower(arg))),
            ))
        }
        "node" if !arg.is_empty() => {
            expect(req, "GET")?;
            let (reply, index) = match c.node(arg) {
                None => (Reply::json(&(), pretty), c.nodes_index()),
                Some(n) => {
                    #[derive(serde::Serialize)]
                    #[serde(rename_all = "PascalCase")]
                    struct NodeServices<'a> {
                        node: JsonNode<'a>,
                        services: BTreeMap<&'a str, JsonService<'a>>,
                    }
                    let body = NodeServices {
                        node: JsonNode::of(n),
                        services: c
                            .node_services(n)
                            .map(|s| (s.service.id.as_str(), JsonService::of(s)))
                            .collect(),
                    };
                    (Reply::json(&body, pretty), n.data_index)
                }
            };
            Ok(read(reply, index, Watch::Topic(Topic::Node(lower(arg)))))
        }
        "node-services" if !arg.is_empty() => {
            expect(req, "GET")?;
            let Some(n) = c.node(arg) else {
                return Ok(Handled::Read {
                    reply: not_found(format!("Node not found: {arg:?}"))
                        .with_index(c.nodes_index()),
                    index: c.nodes_index().max(1),
                    watch: Watch::Topic(Topic::Node(lower(arg))),
                });
            };
            #[derive(serde::Serialize)]
            #[serde(rename_all = "PascalCase")]
            struct NodeServiceList<'a> {
                node: JsonNode<'a>,
                services: Vec<JsonService<'a>>,
            }
            let body = NodeServiceList {
                node: JsonNode::of(n),
                services: c.node_services(n).map(JsonService::of).collect(),
            };
            Ok(read(
                Reply::json(&body, pretty),
                n.data_index,
                Watch::Topic(Topic::Node(lower(arg))),
            ))
        }
        _ => Err(not_found(format!("no such API path: {}", req.path))),
    }
}

/// The index of a service name's data, or of the service table when it has no instance
/// (so that it never goes back when the last instance leaves).
fn service_index(state: &State, name: &str) -> u64 {
    match state.catalog.service_index(name) {
        0 => state.catalog.services_index(),
        i => i,
    }
}

/// `/v1/catalog/register`: the node, optionally one service and checks, as one command.
fn catalog_registration(state: &State, b: InCatalogRegistration) -> Result<Command, Reply> {
    if b.node.is_empty() {
        return Err(bad_request("Missing node name"));
    }
    if b.address.is_empty() && !b.skip_node_update {
        return Err(bad_request("Missing node address"));
    }
    if !b.datacenter.is_empty() && !b.datacenter.eq_ignore_ascii_case(&state.config.datacenter) {
        return Err(bad_request(format!(
            "unknown datacenter {:?}: this agent serves {:?}",
            b.datacenter, state.config.datacenter
        )));
    }
    let existing = state.catalog.node(&b.node);
    let node = match existing {
        Some(e) if b.skip_node_update || b.address.is_empty() => e.node.clone(),
        _ => Node {
            name: b.node.clone(),
            address: b.address.clone(),
            datacenter: state.config.datacenter.clone(),
            tagged_addresses: b.tagged_addresses.clone().unwrap_or_default().into(),
            meta: b.node_meta.clone().unwrap_or_default().into(),
        },
    };
    let (service, mut checks) = match &b.service {
        Some(s) => {
            let (svc, checks) = s.to_service().map_err(bad_request)?;
            (Some(svc), checks)
        }
        None => (None, Vec::new()),
    };
    for c in b.check.iter().chain(b.checks.iter().flatten()) {
        // Catalog checks that name no service are node checks (as Consul's `serfHealth`);
        // one naming a service that is not on the node is refused by the catalog.
        let check = c.to_check("", "").map_err(bad_request)?;
        if check.id.is_empty() {
            return Err(bad_request("a check needs a CheckID or a Name"));
        }
        checks.push(check);
    }
    Ok(Command::one(Change::Register(Registration {
        node,
        service,
        checks,
    })))
}

fn health(state: &mut State, req: &Request, rest: &str, pretty: bool) -> Result<Handled, Reply> {
    expect(req, "GET")?;
    let (what, arg) = rest.split_once('/').unwrap_or((rest, ""));
    if arg.is_empty() {
        return Err(not_found(format!("no such API path: {}", req.path)));
    }
    let c = &state.catalog;
    match what {
        "service" => {
            let filter = if req.flag("passing") {
                HealthFilter::Passing
            } else {
                HealthFilter::All
            };
            let mut v: Vec<JsonServiceHealth<'_>> = c
                .instances(arg, req.param("tag"), filter)
                .filter(|i| node_meta_ok(req, &i.node.node))
                .map(|i| JsonServiceHealth {
                    node: JsonNode::of(i.node),
                    service: JsonService::of(i.service),
                    checks: i
                        .node
                        .checks
                        .values()
                        .filter(|ch| {
                            ch.check.service_id.is_empty()
                                || ch.check.service_id == i.service.service.id
                        })
                        .map(|ch| JsonCheck::of(c, i.node, ch))
                        .collect(),
                })
                .collect();
            v.sort_by(|a, b| (a.node.node, a.service.id).cmp(&(b.node.node, b.service.id)));
            Ok(read(
                Reply::json(&v, pretty),
                service_index(state, arg),
                Watch::Topic(Topic::Service(lower(arg))),
            ))
        }
        "checks" => {
            let mut v: Vec<JsonCheck<'_>> = Vec::new();
            for i in c.instances(arg, None, HealthFilter::All) {
                v.extend(
                    i.node
                        .checks
                        .values()
                        .filter(|ch| ch.check.service_id == i.service.service.id)
                        .map(|ch| JsonCheck::of(c, i.node, ch)),
                );
            }
            v.sort_by(|a, b| (a.node, a.check_id).cmp(&(b.node, b.check_id)));
            Ok(read(
                Reply::json(&v, pretty),
                service_index(state, arg),
                Watch::Topic(Topic::Service(lower(arg))),
            ))
        }
        "node" => {
            let (v, index): (Vec<JsonCheck<'_>>, u64) = match c.node(arg) {
                Some(n) => (
                    n.checks
                        .values()
                        .map(|ch| JsonCheck::of(c, n, ch))
                        .collect(),
                    n.data_index,
                ),
                None => (Vec::new(), c.nodes_index()),
            };
            Ok(read(
                Reply::json(&v, pretty),
                index,
                Watch::Topic(Topic::Node(lower(arg))),
            ))
        }
        "state" => {
            let want = match arg {
                "any" => None,
                s => Some(Health::parse(s).ok_or_else(|| {
                    bad_request(format!(
                        "Invalid check state {s:?}: expected any, passing, warning or critical"
                    ))
                })?),
            };
            let mut v: Vec<JsonCheck<'_>> = Vec::new();
            for n in c.nodes() {
                v.extend(
                    n.checks
                        .values()
                        .filter(|ch| want.is_none_or(|w| ch.check.status == w))
                        .map(|ch| JsonCheck::of(c, n, ch)),
                );
            }
            v.sort_by(|a, b| (a.node, a.check_id).cmp(&(b.node, b.check_id)));
            Ok(read(
                Reply::json(&v, pretty),
                c.checks_index(),
                Watch::Topic(Topic::Checks),
            ))
        }
        _ => Err(not_found(format!("no such API path: {}", req.path))),
    }
}

fn status(state: &mut State, req: &Request, rest: &str, pretty: bool) -> Result<Handled, Reply> {
    expect(req, "GET")?;
    let (leader, peers) = state.leader_and_peers();
    match rest {
        "leader" => Ok(Reply::json(&leader.unwrap_or_default(), pretty).into()),
        "peers" => Ok(Reply::json(&peers, pretty).into()),
        _ => Err(not_found(format!("no such API path: {}", req.path))),
    }
}

/// WHEP (`/whep/<stream>[/<session>]`), answered by the media process's gateway.
#[cfg(feature = "media")]
fn whep(state: &mut State, req: &Request) -> Handled {
    let Some(media) = state.media.clone() else {
        return not_found("no streams are configured on this agent").into();
    };
    let request = crate::media::process::proto::WhepRequest {
        method: req.method.to_string(),
        path: req.path.clone(),
        content_type: req.content_type.clone(),
        body: req.body.clone(),
    };
    let reply = media.whep(request);
    Handled::Async(Box::pin(async move {
        let r = reply.await;
        let header = |name: &str| {
            r.headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        };
        let content_type = match header("content-type") {
            Some(t) if t.starts_with("application/sdp") => "application/sdp",
            _ => super::request::TEXT,
        };
        Reply {
            status: StatusCode::from_u16(r.status).unwrap_or(StatusCode::BAD_GATEWAY),
            content_type,
            index: None,
            allow: None,
            headers: r
                .headers
                .iter()
                .filter(|(n, _)| n != "content-type")
                .filter_map(|(n, v)| Some((crate::media::whep::header_name(n)?, v.clone())))
                .collect(),
            body: r.body.into(),
        }
    }))
}

#[cfg(not(feature = "media"))]
fn whep(_state: &mut State, _req: &Request) -> Handled {
    not_found("this outpost was built without the media feature: no WHEP").into()
}

/// A stream's state live from the media process (`None`: it does not run it yet, or there
/// is no media; the agent's last word stands then).
#[cfg(feature = "media")]
fn live_status(state: &State, name: &str) -> Option<crate::agent::StreamStatus> {
    state.media.as_ref()?.status(name)
}

#[cfg(not(feature = "media"))]
fn live_status(_state: &State, _name: &str) -> Option<crate::agent::StreamStatus> {
    None
}

/// `/v1/streams` (outpost's): each configured stream, what it is and what it is doing.
fn streams(state: &mut State, req: &Request, rest: &str, pretty: bool) -> Result<Handled, Reply> {
    expect(req, "GET")?;
    #[derive(serde::Serialize)]
    #[serde(rename_all = "PascalCase")]
    struct JsonStream<'a> {
        name: &'a str,
        source: &'static str,
        codec: &'static str,
        audio: bool,
        width: u32,
        height: u32,
        fps: u32,
        bitrate: u32,
        max_viewers: usize,
        state: &'static str,
        reason: String,
        viewers: usize,
        measured_width: u32,
        measured_height: u32,
        measured_fps: f64,
        measured_bitrate: f64,
        /// The encoder element (empty for `rtp`), whether it is the board's hardware
        /// encoder, and why.
        encoder: String,
        encoder_hardware: bool,
        encoder_reason: String,
        /// The viewer page.
        viewer: String,
    }
    let idle = crate::agent::StreamStatus::initial();
    let list: Vec<JsonStream<'_>> = state
        .config
        .streams
        .iter()
        .filter(|s| rest.is_empty() || s.name == rest)
        .map(|s| {
            let st = live_status(state, &s.name)
                .unwrap_or_else(|| state.stream_status.get(&s.name).unwrap_or(&idle).clone());
            JsonStream {
                name: &s.name,
                source: s.source.kind(),
                codec: s.codec.as_str(),
                audio: s.audio,
                width: s.width,
                height: s.height,
                fps: s.fps,
                bitrate: s.bitrate_kbps,
                max_viewers: s.max_viewers,
                state: st.state,
                reason: st.reason,
                viewers: st.viewers,
                measured_width: st.width,
                measured_height: st.height,
                measured_fps: st.fps,
                measured_bitrate: st.bitrate_kbps,
                encoder: st.encoder,
                encoder_hardware: st.encoder_hardware,
                encoder_reason: st.encoder_reason,
                viewer: format!("/streams/{}", s.name),
            }
        })
        .collect();
    if !rest.is_empty() {
        return match list.first() {
            Some(one) => Ok(Reply::json(one, pretty).into()),
            None => Err(not_found(format!("no stream named {rest:?}"))),
        };
    }
    Ok(Reply::json(&list, pretty).into())
}

fn kv(state: &mut State, req: &Request, key: &str, pretty: bool) -> Handled {
    kv_inner(state, req, key, pretty).unwrap_or_else(Handled::Reply)
}

fn kv_inner(state: &mut State, req: &Request, key: &str, pretty: bool) -> Result<Handled, Reply> {
    if req.has("acquire") || req.has("release") {
        return Err(bad_request(
            "sessions and locks (?acquire, ?release) are not supported by outpost",
        ));
    }
    match req.method {
        Method::GET | Method::HEAD => {
            let store = state.catalog.kv();
            if req.has("keys") {
                let keys = store.keys(key, req.param("separator"));
                let index = store.index_of(key, false);
                let reply = if keys.is_empty() {
                    not_found("")
                } else {
                    Reply::json(&keys, pretty)
                };
                return Ok(read(reply, index, Watch::KvPrefix(key.to_string())));
            }
            if req.flag("recurse") {
                let entries: Vec<JsonKv<'_>> = store.list(key).map(JsonKv::of).collect();
                let index = store.index_of(key, false);
                let reply = if entries.is_empty() {
                    not_found("")
                } else {
                    Reply::json(&entries, pretty)
                };
                return Ok(read(reply, index, Watch::KvPrefix(key.to_string())));
            }
            let index = store.index_of(key, true);
            let watch = Watch::Topic(Topic::Key(key.to_string()));
            let reply = match store.get(key) {
                None => not_found(""),
                Some(e) if req.has("raw") => Reply {
                    status: StatusCode::OK,
                    content_type: "application/octet-stream",
                    body: e.value.clone().into(),
                    index: None,
                    allow: None,
                    headers: Vec::new(),
                },
                Some(e) => Reply::json(&[JsonKv::of(e)], pretty),
            };
            Ok(read(reply, index, watch))
        }
        Method::PUT => {
            if key.is_empty() {
                return Err(bad_request("Missing key name"));
            }
            if req.body.len() > kv::MAX_VALUE {
                return Err(Reply::error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!(
                        "Request body(value) too large, max size: {} bytes",
                        kv::MAX_VALUE
                    ),
                ));
            }
            let set = KvSet {
                key: key.to_string(),
                value: req.body.clone(),
                flags: req.u64_param("flags")?.unwrap_or(0),
                cas: req.u64_param("cas")?,
            };
            kv_write(state, Change::KvSet(set))
        }
        Method::DELETE => {
            let del = KvDelete {
                key: key.to_string(),
                recurse: req.flag("recurse"),
                cas: req.u64_param("cas")?,
            };
            kv_write(state, Change::KvDelete(del))
        }
        _ => Err(method_not_allowed(req, "GET, PUT, DELETE")),
    }
}

/// A KV write: `true`, or `false` when a check-and-set did not match.
fn kv_write(state: &mut State, change: Change) -> Result<Handled, Reply> {
    Ok(write_with(state, Command::one(change), |r| match r {
        Ok(_) => json_bool(true),
        Err(ApplyError::CasFailed { .. }) => json_bool(false),
        Err(e) => bad_request(e.to_string()),
    }))
}
