//! `/v1/agent/...`: this agent's own node, services and checks, its membership, reload,
//! leave and metrics. Writes go through the same catalog commands as everything else.

use std::collections::BTreeMap;
use std::time::Duration;

use http::{Method, StatusCode};
use serde::Serialize;

use super::json::{InCheck, InCheckUpdate, InService, JsonCheck, JsonService, node_id, parse_body};
use super::request::{Reply, Request};
use super::routes::{Handled, bad_request, not_found, ok_empty, write};
use crate::agent::membership;
use crate::agent::{AgentEvent, State};
use crate::catalog::{Change, Check, Command, Deregistration, Health, Registration};
use crate::cluster::raft::{RaftHandle, Status as RaftStatus};

/// Check ID Consul gives a service's maintenance check.
pub fn service_maintenance_id(service_id: &str) -> String {
    format!("_service_maintenance:{service_id}")
}
pub const NODE_MAINTENANCE_ID: &str = "_node_maintenance";
const DEFAULT_REASON: &str = "Maintenance mode is enabled for this node, but no reason was provided. This is a default message.";

pub fn handle(
    state: &mut State,
    req: &Request,
    rest: &str,
    pretty: bool,
) -> Result<Handled, Reply> {
    let get = req.method == Method::GET || req.method == Method::HEAD;
    let put = req.method == Method::PUT || req.method == Method::POST;
    let (what, arg) = rest.split_once('/').unwrap_or((rest, ""));
    let (sub, sub_arg) = arg.split_once('/').unwrap_or((arg, ""));
    let wrong = |allow: &'static str| {
        let mut r = Reply::error(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("method {} not allowed: expected {allow}", req.method),
        );
        r.allow = Some(allow);
        r
    };
    match (what, sub) {
        ("self", "") if get => Ok(Reply::json(&agent_self(state), pretty).into()),
        ("members", "") if get => Ok(Reply::json(&members(state), pretty).into()),
        ("services", "") if get => {
            let local = state.local_node();
            let mut out = BTreeMap::new();
            if let Some(n) = local {
                for s in state.catalog.node_services(n) {
                    let mut j = JsonService::of(s);
                    j.datacenter = Some(&state.config.datacenter);
                    out.insert(s.service.id.as_str(), j);
                }
            }
            Ok(Reply::json(&out, pretty).into())
        }
        ("service", "register") if put => {
            let body: InService = parse_body(&req.body).map_err(bad_request)?;
            let cmd = register_service(state, body, req.flag("replace-existing-checks"))?;
            Ok(write(state, cmd, ok_empty))
        }
        ("service", "deregister") if put && !sub_arg.is_empty() => {
            local_service(state, sub_arg)?;
            let node = state.config.node_name.clone();
            Ok(write(
                state,
                deregister(&node, Some(sub_arg), None),
                ok_empty,
            ))
        }
        ("service", "maintenance") if put && !sub_arg.is_empty() => {
            local_service(state, sub_arg)?;
            let enable = maintenance_flag(req)?;
            let id = service_maintenance_id(sub_arg);
            let cmd = maintenance(state, enable, &id, sub_arg, "Service Maintenance Mode", req);
            Ok(write(state, cmd, ok_empty))
        }
        ("maintenance", "") if put => {
            let enable = maintenance_flag(req)?;
            let cmd = maintenance(
                state,
                enable,
                NODE_MAINTENANCE_ID,
                "",
                "Node Maintenance Mode",
                req,
            );
            Ok(write(state, cmd, ok_empty))
        }
        ("service", id)
            if get
                && sub_arg.is_empty()
                && !matches!(id, "" | "register" | "deregister" | "maintenance") =>
        {
            let s = local_service(state, id)?;
            let mut j = JsonService::of(s);
            j.datacenter = Some(&state.config.datacenter);
            Ok(Reply::json(&j, pretty).into())
        }
        ("checks", "") if get => {
            let mut out = BTreeMap::new();
            if let Some(n) = state.local_node() {
                for c in n.checks.values() {
                    out.insert(c.check.id.as_str(), JsonCheck::of(&state.catalog, n, c));
                }
            }
            Ok(Reply::json(&out, pretty).into())
        }
        ("check", "register") if put => {
            let body: InCheck = parse_body(&req.body).map_err(bad_request)?;
            if body.name.is_empty() {
                return Err(bad_request("Missing check name"));
            }
            let check = body.to_check("", "").map_err(bad_request)?;
            check_allowed(state, &check)?;
            if !check.service_id.is_empty() {
                local_service(state, &check.service_id)?;
            }
            let cmd = Command::one(Change::Register(Registration {
                node: state.config.local_node(),
                service: None,
                checks: vec![check],
            }));
            Ok(write(state, cmd, ok_empty))
        }
        ("check", "deregister") if put && !sub_arg.is_empty() => {
            local_check(state, sub_arg)?;
            let node = state.config.node_name.clone();
            Ok(write(
                state,
                deregister(&node, None, Some(sub_arg)),
                ok_empty,
            ))
        }
        ("check", op @ ("pass" | "warn" | "fail")) if put && !sub_arg.is_empty() => {
            let status = match op {
                "pass" => Health::Passing,
                "warn" => Health::Warning,
                _ => Health::Critical,
            };
            let note = req.param("note").unwrap_or_default().to_string();
            ttl_update(state, sub_arg, status, note)?;
            Ok(ok_empty().into())
        }
        ("check", "update") if put && !sub_arg.is_empty() => {
            let body: InCheckUpdate = parse_body(&req.body).map_err(bad_request)?;
            let status = Health::parse(&body.status).ok_or_else(|| {
                bad_request(format!(
                    "Invalid check status: {:?}: expected passing, warning or critical",
                    body.status
                ))
            })?;
            ttl_update(state, sub_arg, status, body.output)?;
            Ok(ok_empty().into())
        }
        ("reload", "") if put => match state.reload() {
            Ok(()) => Ok(ok_empty().into()),
            Err(e) => Err(Reply::error(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("Failed reloading config, the previous config stays in force: {e}"),
            )),
        },
        ("join", addr) if put && !addr.is_empty() => {
            let Some(g) = state.gossip.clone() else {
                return Err(Reply::error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("cannot join {addr}: gossip is off on this agent (-serf-lan-port -1)"),
                ));
            };
            let addr = addr.to_string();
            Ok(Handled::Async(Box::pin(async move {
                match membership::join(&g, std::slice::from_ref(&addr)).await {
                    Ok(_) => ok_empty(),
                    Err(e) => Reply::error(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        format!("cannot join {addr}: {e}"),
                    ),
                }
            })))
        }
        ("leave", "") if put => {
            state.send_event(AgentEvent::Leave);
            Ok(ok_empty().into())
        }
        ("metrics", "") if get => {
            Ok(metrics(state, req.param("format") == Some("prometheus"), pretty).into())
        }
        ("self" | "members" | "services" | "checks" | "metrics", "") => Err(wrong("GET")),
        (
            "service" | "check",
            "register" | "deregister" | "maintenance" | "pass" | "warn" | "fail" | "update",
        )
        | ("reload" | "leave" | "maintenance", "")
        | ("join", _) => Err(wrong("PUT")),
        ("service", _) => Err(wrong("GET")),
        _ => Err(not_found(format!("no such API path: {}", req.path))),
    }
}

fn deregister(node: &str, service: Option<&str>, check: Option<&str>) -> Command {
    Command::one(Change::Deregister(Deregistration {
        node: node.to_string(),
        service_id: service.map(String::from),
        check_id: check.map(String::from),
    }))
}

fn local_service<'a>(
    state: &'a State,
    id: &str,
) -> Result<&'a crate::catalog::ServiceEntry, Reply> {
    state
        .catalog
        .service(&state.config.node_name, id)
        .ok_or_else(|| {
            not_found(format!(
                "Unknown service ID {id:?}. Ensure that the service ID is passed, not the service name."
            ))
        })
}

fn local_check<'a>(state: &'a State, id: &str) -> Result<&'a Check, Reply> {
    state
        .local_node()
        .and_then(|n| n.checks.get(id))
        .map(|c| &c.check)
        .ok_or_else(|| not_found(format!("Unknown check ID {id:?}")))
}

/// Script checks run programs: only where the agent allows it, as in Consul.
fn check_allowed(state: &State, c: &Check) -> Result<(), Reply> {
    if !c.definition.args.is_empty() && !state.config.enable_script_checks {
        return Err(bad_request(
            "Scripts are disabled on this agent; to enable, configure 'enable_script_checks' to true",
        ));
    }
    Ok(())
}

/// `/v1/agent/service/register`: the service and its checks on this node, in one command;
/// with `replace-existing-checks`, its checks that the body leaves out are removed.
fn register_service(state: &mut State, body: InService, replace: bool) -> Result<Command, Reply> {
    let (service, checks) = body.to_service().map_err(bad_request)?;
    for c in &checks {
        check_allowed(state, c)?;
    }
    let node = state.config.local_node();
    let mut changes = Vec::new();
    if replace && let Some(n) = state.local_node() {
        for c in n.checks.values() {
            let keep = c.check.id == service_maintenance_id(&service.id)
                || checks.iter().any(|x| x.id == c.check.id);
            if c.check.service_id == service.id && !keep {
                changes.push(Change::Deregister(Deregistration {
                    node: node.name.clone(),
                    service_id: None,
                    check_id: Some(c.check.id.clone()),
                }));
            }
        }
    }
    changes.push(Change::Register(Registration {
        node,
        service: Some(service),
        checks,
    }));
    Ok(Command { changes })
}

fn maintenance_flag(req: &Request) -> Result<bool, Reply> {
    req.bool_param("enable")?
        .ok_or_else(|| bad_request("Missing value for enable"))
}

fn maintenance(
    state: &mut State,
    enable: bool,
    id: &str,
    service_id: &str,
    name: &str,
    req: &Request,
) -> Command {
    let node = state.config.local_node();
    if enable {
        let mut c = Check::new(id, service_id, Health::Critical);
        c.name = name.to_string();
        c.notes = req
            .param("reason")
            .filter(|r| !r.is_empty())
            .unwrap_or(DEFAULT_REASON)
            .to_string();
        Command::one(Change::Register(Registration {
            node,
            service: None,
            checks: vec![c],
        }))
    } else {
        deregister(&node.name, None, Some(id))
    }
}

/// A TTL check's new status, from pass/warn/fail/update.
fn ttl_update(state: &mut State, id: &str, status: Health, output: String) -> Result<(), Reply> {
    let check = local_check(state, id)?;
    if check.definition.ttl_ms == 0 {
        return Err(Reply::error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("CheckID {id:?} does not have associated TTL"),
        ));
    }
    state.ttl_update(id, status, output);
    Ok(())
}

#[derive(Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Member {
    pub name: String,
    pub addr: String,
    pub port: u16,
    pub tags: BTreeMap<String, String>,
    /// 1 alive, 3 left, 4 failed (Serf's numbering).
    pub status: u8,
    pub protocol_min: u8,
    pub protocol_max: u8,
    pub protocol_cur: u8,
    pub delegate_min: u8,
    pub delegate_max: u8,
    pub delegate_cur: u8,
}

/// This agent as a cluster member when gossip is off.
fn member(state: &State) -> Member {
    let c = &state.config;
    let mut tags = BTreeMap::new();
    tags.insert(String::from("dc"), c.datacenter.clone());
    tags.insert(String::from("id"), node_id(&c.node_name));
    tags.insert(
        String::from("role"),
        if c.server { "consul" } else { "node" }.to_string(),
    );
    tags.insert(String::from("vsn"), "2".into());
    tags.insert(String::from("vsn_min"), "2".into());
    tags.insert(String::from("vsn_max"), "3".into());
    tags.insert(String::from("build"), env!("CARGO_PKG_VERSION").to_string());
    if c.server {
        tags.insert(
            String::from("port"),
            c.ports.server.unwrap_or(8300).to_string(),
        );
        if c.bootstrap || c.dev {
            tags.insert(String::from("bootstrap"), "1".into());
        }
        if let Some(n) = c.bootstrap_expect {
            tags.insert(String::from("expect"), n.to_string());
        }
    }
    Member {
        name: c.node_name.clone(),
        addr: c.advertise_addr.to_string(),
        port: c.ports.serf_lan.unwrap_or(8301),
        tags,
        status: 1,
        protocol_min: 1,
        protocol_max: 5,
        protocol_cur: 2,
        delegate_min: 2,
        delegate_max: 5,
        delegate_cur: 4,
    }
}

fn agent_self(state: &State) -> serde_json::Value {
    let c = &state.config;
    let handle = state.raft.as_ref().and_then(|w| w.handle());
    let raft = handle.as_ref().map(|h| (h, h.status()));
    // As /v1/status/leader says it (a `-dev` agent leads itself).
    let leader_addr = state.leader_and_peers().0.unwrap_or_default();
    serde_json::json!({
        "Config": {
            "Datacenter": c.datacenter,
            "PrimaryDatacenter": c.datacenter,
            "NodeName": c.node_name,
            "NodeID": node_id(&c.node_name),
            "Revision": env!("OUTPOST_GIT_REVISION"),
            "Server": c.server,
            "Version": env!("CARGO_PKG_VERSION"),
            "BuildDate": "",
        },
        "DebugConfig": {
            "Datacenter": c.datacenter,
            "NodeName": c.node_name,
            "DNSDomain": format!("{}.", c.domain),
            "DevMode": c.dev,
            "ServerMode": c.server,
            "AdvertiseAddrLAN": c.advertise_addr.to_string(),
            "ClientAddrs": c.client_addrs.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
            "EnableScriptChecks": c.enable_script_checks,
        },
        "Coord": null,
        "Board": board(state),
        "Member": member(state),
        "Meta": c.node_meta,
        "Stats": {
            "agent": {"check_monitors": "0", "checks": state.local_node().map_or(0, |n| n.checks.len()).to_string(),
                      "services": state.local_node().map_or(0, |n| state.catalog.node_services(n).count()).to_string()},
            "consul": {"server": c.server.to_string(), "leader": raft.as_ref().map_or(c.dev, |(_, s)| s.is_leader).to_string(),
                       "leader_addr": leader_addr, "known_datacenters": "1", "bootstrap": (c.bootstrap || c.dev).to_string()},
            "raft": raft_stats(state, raft.as_ref().map(|(h, s)| (*h, s))),
            "build": {"prerelease": "", "revision": env!("OUTPOST_GIT_REVISION"), "version": env!("CARGO_PKG_VERSION")},
        },
    })
}

/// Raft's state here, named and formatted as Consul's `Stats.raft` (every value a string),
/// which `outpost info` and Consul's tools read. Without Raft (a dev agent), the catalog's
/// index.
fn raft_stats(state: &State, raft: Option<(&RaftHandle, &RaftStatus)>) -> serde_json::Value {
    let Some((h, s)) = raft else {
        let index = state.catalog.index().to_string();
        return serde_json::json!({"applied_index": index, "commit_index": index});
    };
    let configuration: Vec<String> = (s.peers.iter().map(|p| (p, "Voter")))
        .chain(s.learners.iter().map(|p| (p, "Nonvoter")))
        .map(|((id, addr), suffrage)| {
            format!("{{Suffrage:{suffrage} ID:{id:016x} Address:{addr}}}")
        })
        .collect();
    let last_contact = match h.last_contact() {
        Some(d) if d.is_zero() => "0".to_string(),
        Some(d) => format!("{:?}", Duration::from_micros(d.as_micros() as u64)),
        None => "never".to_string(),
    };
    serde_json::json!({
        "applied_index": s.applied.to_string(),
        "commit_index": s.commit.to_string(),
        "fsm_pending": "0",
        "last_contact": last_contact,
        "last_log_index": s.last_log.0.to_string(),
        "last_log_term": s.last_log.1.to_string(),
        "last_snapshot_index": s.last_snapshot.0.to_string(),
        "last_snapshot_term": s.last_snapshot.1.to_string(),
        "latest_configuration": format!("[{}]", configuration.join(" ")),
        "num_peers": s.peers.keys().filter(|&&p| p != s.id).count().to_string(),
        "state": s.state,
        "term": s.term.to_string(),
    })
}

/// The board profile the agent runs with, why, and the encoder each codec gets (known once
/// the media process has built streams; outpost's addition to `/v1/agent/self`).
fn board(state: &State) -> serde_json::Value {
    let b = &state.config.board;
    let p = &b.profile;
    #[cfg(feature = "media")]
    let (encoders, note) = match &state.media {
        Some(hub) => (hub.encoders(), ""),
        None => (Vec::new(), "no stream has been built yet"),
    };
    #[cfg(not(feature = "media"))]
    let (encoders, note): (Vec<crate::board::EncoderPick>, _) = (
        Vec::new(),
        "this outpost was built without the media feature",
    );
    let encoders: Vec<serde_json::Value> = encoders
        .iter()
        .map(|e| {
            serde_json::json!({
                "Codec": e.codec.as_str(),
                "Element": e.choice.element,
                "Hardware": e.hardware,
                "Reason": e.reason,
            })
        })
        .collect();
    serde_json::json!({
        "Name": p.name,
        "Description": p.description,
        "Target": p.target,
        "Origin": p.origin,
        "Source": b.source(),
        "Reason": b.reason(),
        "Model": b.device_tree.model,
        "Compatible": b.device_tree.compatible,
        "Camera": p.camera.as_ref().map(|c| serde_json::json!({
            "Device": c.device, "Width": c.width, "Height": c.height, "Fps": c.fps,
        })),
        "Encoders": encoders,
        "EncodersNote": if encoders.is_empty() { note } else { "" },
    })
}

/// `/v1/agent/metrics`, as go-metrics' JSON or, with `?format=prometheus`, Prometheus text.
fn metrics(state: &State, prometheus: bool, pretty: bool) -> Reply {
    let c = &state.catalog;
    let mut health = [0u64; 3];
    for n in c.nodes() {
        for ch in n.checks.values() {
            health[ch.check.status as usize] += 1;
        }
    }
    let gauges: Vec<(&str, f64)> = vec![
        ("outpost.catalog.nodes", c.nodes().count() as f64),
        ("outpost.catalog.services", c.service_names().count() as f64),
        ("outpost.catalog.index", c.index() as f64),
        ("outpost.checks.passing", health[0] as f64),
        ("outpost.checks.warning", health[1] as f64),
        ("outpost.checks.critical", health[2] as f64),
        ("outpost.kv.entries", c.kv().len() as f64),
        ("outpost.http.watched", state.watch.len() as f64),
        ("outpost.http.parked", state.metrics.http_parked as f64),
    ];
    let counters: Vec<(&str, u64)> = vec![
        ("outpost.dns.queries", state.metrics.dns_queries),
        ("outpost.http.requests", state.metrics.http_requests),
    ];
    if prometheus {
        let mut out = String::new();
        for (name, v) in &gauges {
            let n = name.replace('.', "_");
            out.push_str(&format!("# TYPE {n} gauge\n{n} {v}\n"));
        }
        for (name, v) in &counters {
            let n = format!("{}_total", name.replace('.', "_"));
            out.push_str(&format!("# TYPE {n} counter\n{n} {v}\n"));
        }
        return Reply {
            status: StatusCode::OK,
            content_type: "text/plain; version=0.0.4; charset=utf-8",
            body: out.into_bytes().into(),
            index: None,
            allow: None,
            headers: Vec::new(),
        };
    }
    let body = serde_json::json!({
        "Timestamp": utc_timestamp(std::time::SystemTime::now()),
        "Gauges": gauges.iter().map(|(n, v)| serde_json::json!({"Name": n, "Value": v, "Labels": {}})).collect::<Vec<_>>(),
        "Points": [],
        "Counters": counters.iter().map(|(n, v)| serde_json::json!({
            "Name": n, "Count": v, "Rate": 0.0, "Sum": *v as f64, "Min": 1.0, "Max": 1.0,
            "Mean": 1.0, "Stddev": 0.0, "Labels": {}})).collect::<Vec<_>>(),
        "Samples": [],
    });
    Reply::json(&body, pretty)
}

/// `2026-11-30 12:00:00 +0000 UTC`, as go-metrics stamps its JSON.
fn utc_timestamp(t: std::time::SystemTime) -> String {
    let secs = t
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Howard Hinnant's civil-from-days.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} +0000 UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// `/v1/operator/raft/configuration` (GET: the servers, Consul's JSON) and
/// `/v1/operator/raft/peer?id=|address=` (DELETE: remove a server; on the leader, or
/// forwarded there).
fn raft_operator(
    state: &mut State,
    req: &Request,
    rest: &str,
    pretty: bool,
) -> Result<Handled, Reply> {
    use crate::agent::replication::server_id;
    use crate::cluster::raft::{ConfChangeRecord, Outcome};
    let Some(h) = state.raft.as_ref().and_then(|w| w.handle()) else {
        return Err(Reply::error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "this agent is not a Raft server (or its cluster has not formed yet)",
        ));
    };
    let status = h.status();
    // Node names by Raft ID, from gossip (an ID is its node name's hash).
    let names: BTreeMap<u64, String> = state
        .gossip
        .as_ref()
        .map(|g| g.members())
        .unwrap_or_default()
        .into_iter()
        .map(|m| (server_id(m.name()), m.name().to_string()))
        .collect();
    match (rest, &req.method) {
        ("raft/configuration", &Method::GET) => {
            // The voters, then the learners (client agents' replicas) as non-voters.
            let servers: Vec<serde_json::Value> = (status.peers.iter().map(|p| (p, true)))
                .chain(status.learners.iter().map(|p| (p, false)))
                .map(|((id, addr), voter)| {
                    serde_json::json!({
                        "ID": format!("{id:016x}"),
                        "Node": names.get(id).cloned().unwrap_or_default(),
                        "Address": addr,
                        "Leader": status.leader == Some(*id),
                        "Voter": voter,
                        "ProtocolVersion": "3",
                    })
                })
                .collect();
            let out = serde_json::json!({"Servers": servers, "Index": status.commit});
            Ok(Reply::json(&out, pretty).into())
        }
        ("raft/peer", &Method::DELETE) => {
            let id = match (req.param("id"), req.param("address")) {
                (Some(id), _) => u64::from_str_radix(id.trim_start_matches("0x"), 16)
                    .map_err(|_| bad_request(format!("bad server ID {id:?}")))?,
                (None, Some(addr)) => {
                    *status
                        .peers
                        .iter()
                        .chain(&status.learners)
                        .find(|(_, a)| a.as_str() == addr)
                        .ok_or_else(|| bad_request(format!("no Raft server at {addr}")))?
                        .0
                }
                (None, None) => {
                    return Err(bad_request(
                        "Must specify either ?id with the server's ID or ?address with IP:port of peer to remove",
                    ));
                }
            };
            if !status.peers.contains_key(&id) && !status.learners.contains_key(&id) {
                return Err(bad_request(format!("no Raft server with ID {id:016x}")));
            }
            Ok(Handled::Async(Box::pin(async move {
                match h.change_membership(ConfChangeRecord::Remove { id }).await {
                    Ok(Outcome::Applied { .. }) => ok_empty(),
                    Ok(Outcome::NotLeader { .. }) => Reply::error(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "this server is not the leader: ask the leader (GET /v1/status/leader)",
                    ),
                    other => Reply::error(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        format!("the server was not removed: {other:?}"),
                    ),
                }
            })))
        }
        (_, m) => {
            let allow = if rest == "raft/peer" { "DELETE" } else { "GET" };
            let mut r = Reply::error(
                StatusCode::METHOD_NOT_ALLOWED,
                format!("method {m} not allowed: expected {allow}"),
            );
            r.allow = Some(allow);
            Err(r)
        }
    }
}

/// The members as `/v1/agent/members` lists them: every member gossip knows (this one
/// first), or this agent alone when gossip is off.
fn members(state: &State) -> Vec<Member> {
    let Some(g) = &state.gossip else {
        return vec![member(state)];
    };
    let local = member(state);
    g.members()
        .into_iter()
        .map(|m| {
            let mut tags = m.tags().to_consul();
            tags.insert("id".into(), node_id(m.name()));
            tags.insert("vsn_min".into(), "2".into());
            tags.insert("vsn_max".into(), "3".into());
            Member {
                name: m.name().to_string(),
                addr: m.addr().ip().to_string(),
                port: m.addr().port(),
                tags,
                status: m.status.consul_code(),
                ..local.clone()
            }
        })
        .collect()
}

/// `/v1/operator/...`: the gossip keyring, on the whole cluster as Consul's: GET lists each
/// key with how many members hold it; POST (install), PUT (use) and DELETE (remove) succeed
/// only when every live member applied the operation, else 500 naming who did not. The
/// agent keeps its keyring file and the Raft keys in step on its own
/// (`membership::follow_keyring`), whoever asked for the change.
pub fn operator(
    state: &mut State,
    req: &Request,
    rest: &str,
    pretty: bool,
) -> Result<Handled, Reply> {
    use crate::cluster::gossip::KeyringOp;
    match rest {
        "keyring" => {}
        "raft/configuration" | "raft/peer" => return raft_operator(state, req, rest, pretty),
        _ => return Err(not_found(format!("no such API path: {}", req.path))),
    }
    let fail = |e: String| Reply::error(StatusCode::INTERNAL_SERVER_ERROR, e);
    let Some(g) = state.gossip.clone() else {
        return Err(fail(
            "gossip is off on this agent (-serf-lan-port -1)".into(),
        ));
    };
    let op = match req.method {
        Method::GET | Method::HEAD => KeyringOp::List,
        Method::POST => KeyringOp::Install,
        Method::PUT => KeyringOp::Use,
        Method::DELETE => KeyringOp::Remove,
        _ => {
            let mut r = Reply::error(
                StatusCode::METHOD_NOT_ALLOWED,
                format!(
                    "method {} not allowed: expected GET, POST, PUT, DELETE",
                    req.method
                ),
            );
            r.allow = Some("GET, POST, PUT, DELETE");
            return Err(r);
        }
    };
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct KeyBody {
        key: String,
    }
    let key = if op.takes_key() {
        let body: KeyBody = super::json::parse_body(&req.body).map_err(bad_request)?;
        crate::cluster::gossip::parse_key(&body.key).map_err(|e| bad_request(e.to_string()))?;
        Some(body.key)
    } else {
        None
    };
    let dc = state.config.datacenter.clone();
    Ok(Handled::Async(Box::pin(async move {
        let report = match g
            .keyring_query(op, key.as_deref(), membership::KEYRING_TIMEOUT)
            .await
        {
            Ok(r) => r,
            Err(e) => return fail(e.to_string()),
        };
        if !report.failed.is_empty() {
            tracing::warn!(
                "keyring {op:?}: members known failed were not asked: {}",
                report.failed.join(", ")
            );
        }
        if op == KeyringOp::List {
            let out = serde_json::json!([{
                "WAN": false,
                "Datacenter": dc,
                "Segment": "",
                "Keys": report.keys(),
                "PrimaryKeys": report.primary_keys(),
                "NumNodes": report.num_nodes(),
                "Messages": report.messages(),
            }]);
            return Reply::json(&out, pretty);
        }
        if report.ok() {
            return ok_empty();
        }
        let messages = report.messages();
        let detail: Vec<String> = messages.iter().map(|(n, m)| format!("{n}: {m}")).collect();
        fail(format!(
            "keyring {} failed on {} of {} members: {}",
            match op {
                KeyringOp::Install => "install",
                KeyringOp::Use => "use",
                _ => "remove",
            },
            messages.len(),
            report.num_nodes(),
            detail.join("; ")
        ))
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_civil_utc() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_796_040_000);
        assert_eq!(utc_timestamp(t), "2026-11-30 12:00:00 +0000 UTC");
        assert_eq!(
            utc_timestamp(std::time::UNIX_EPOCH),
            "1970-01-01 00:00:00 +0000 UTC"
        );
    }
}
