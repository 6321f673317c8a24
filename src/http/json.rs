//! Consul's JSON, field by field: what the API writes (from catalog records) and what it
//! reads (registration bodies). Field names and types follow Consul's documentation; bodies
//! are read leniently as Consul's Go decoder does (unknown fields ignored, snake_case and
//! lower-case spellings accepted).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::catalog::{
    Catalog, Check, CheckDefinition, CheckEntry, Health, KvEntry, Node, NodeEntry, Service,
    ServiceEntry, Weights,
};

type Map = BTreeMap<String, String>;

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct JsonWeights {
    pub passing: u32,
    pub warning: u32,
}

impl From<Weights> for JsonWeights {
    fn from(w: Weights) -> Self {
        JsonWeights {
            passing: w.passing,
            warning: w.warning,
        }
    }
}

/// A node as `/v1/catalog/nodes` and `/v1/health/service` write it.
#[derive(Serialize)]
pub struct JsonNode<'a> {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(rename = "Node")]
    pub node: &'a str,
    #[serde(rename = "Address")]
    pub address: &'a str,
    #[serde(rename = "Datacenter")]
    pub datacenter: &'a str,
    #[serde(rename = "TaggedAddresses")]
    pub tagged_addresses: Map,
    #[serde(rename = "Meta")]
    pub meta: &'a crate::catalog::Meta,
    #[serde(rename = "CreateIndex")]
    pub create_index: u64,
    #[serde(rename = "ModifyIndex")]
    pub modify_index: u64,
}

/// Consul's node ID for a node name: stable across restarts, UUID-shaped (Consul derives
/// its own from the host; any stable UUID serves its clients).
pub fn node_id(name: &str) -> String {
    // FNV-1a, twice with different offsets, for 128 stable bits.
    let h = |seed: u64| {
        name.bytes().fold(seed, |h, b| {
            (h ^ u64::from(b.to_ascii_lowercase())).wrapping_mul(0x100000001b3)
        })
    };
    let (a, b) = (h(0xcbf29ce484222325), h(0x84222325cbf29ce4));
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xffff,
        b >> 48,
        b & 0xffff_ffff_ffff
    )
}

/// Consul fills `lan`/`wan` tagged addresses with the node address when none are given.
fn tagged(n: &Node) -> Map {
    if !n.tagged_addresses.is_empty() {
        return n
            .tagged_addresses
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
    }
    let mut m = Map::new();
    let v4 = n.address.parse::<std::net::Ipv4Addr>().is_ok();
    for k in ["lan", "wan"] {
        m.insert(k.into(), n.address.clone());
        if v4 {
            m.insert(format!("{k}_ipv4"), n.address.clone());
        }
    }
    m
}

impl<'a> JsonNode<'a> {
    pub fn of(e: &'a NodeEntry) -> JsonNode<'a> {
        JsonNode {
            id: node_id(&e.node.name),
            node: &e.node.name,
            address: &e.node.address,
            datacenter: &e.node.datacenter,
            tagged_addresses: tagged(&e.node),
            meta: &e.node.meta,
            create_index: e.create_index,
            modify_index: e.modify_index,
        }
    }
}

/// A service instance as `/v1/catalog/service/:name` writes it (node and service fields
/// flattened).
#[derive(Serialize)]
pub struct JsonCatalogService<'a> {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(rename = "Node")]
    pub node: &'a str,
    #[serde(rename = "Address")]
    pub address: &'a str,
    #[serde(rename = "Datacenter")]
    pub datacenter: &'a str,
    #[serde(rename = "TaggedAddresses")]
    pub tagged_addresses: Map,
    #[serde(rename = "NodeMeta")]
    pub node_meta: &'a crate::catalog::Meta,
    #[serde(rename = "ServiceKind")]
    pub service_kind: &'static str,
    #[serde(rename = "ServiceID")]
    pub service_id: &'a str,
    #[serde(rename = "ServiceName")]
    pub service_name: &'a str,
    #[serde(rename = "ServiceTags")]
    pub service_tags: &'a [String],
    #[serde(rename = "ServiceAddress")]
    pub service_address: &'a str,
    #[serde(rename = "ServiceTaggedAddresses")]
    pub service_tagged_addresses: Map,
    #[serde(rename = "ServiceWeights")]
    pub service_weights: JsonWeights,
    #[serde(rename = "ServiceMeta")]
    pub service_meta: &'a crate::catalog::Meta,
    #[serde(rename = "ServicePort")]
    pub service_port: u16,
    #[serde(rename = "ServiceEnableTagOverride")]
    pub service_enable_tag_override: bool,
    #[serde(rename = "CreateIndex")]
    pub create_index: u64,
    #[serde(rename = "ModifyIndex")]
    pub modify_index: u64,
}

impl<'a> JsonCatalogService<'a> {
    pub fn of(n: &'a NodeEntry, s: &'a ServiceEntry) -> JsonCatalogService<'a> {
        JsonCatalogService {
            id: node_id(&n.node.name),
            node: &n.node.name,
            address: &n.node.address,
            datacenter: &n.node.datacenter,
            tagged_addresses: tagged(&n.node),
            node_meta: &n.node.meta,
            service_kind: "",
            service_id: &s.service.id,
            service_name: &s.service.name,
            service_tags: &s.service.tags,
            service_address: &s.service.address,
            service_tagged_addresses: Map::new(),
            service_weights: s.service.weights.into(),
            service_meta: &s.service.meta,
            service_port: s.service.port,
            service_enable_tag_override: s.service.enable_tag_override,
            create_index: s.create_index,
            modify_index: s.modify_index,
        }
    }
}

/// A service as the node views and the agent write it (`AgentService` / `NodeService`).
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct JsonService<'a> {
    #[serde(rename = "ID")]
    pub id: &'a str,
    pub service: &'a str,
    pub tags: &'a [String],
    pub address: &'a str,
    pub tagged_addresses: Map,
    pub meta: &'a crate::catalog::Meta,
    pub port: u16,
    pub weights: JsonWeights,
    pub enable_tag_override: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub datacenter: Option<&'a str>,
    pub create_index: u64,
    pub modify_index: u64,
}

impl<'a> JsonService<'a> {
    pub fn of(s: &'a ServiceEntry) -> JsonService<'a> {
        JsonService {
            id: &s.service.id,
            service: &s.service.name,
            tags: &s.service.tags,
            address: &s.service.address,
            tagged_addresses: Map::new(),
            meta: &s.service.meta,
            port: s.service.port,
            weights: s.service.weights.into(),
            enable_tag_override: s.service.enable_tag_override,
            datacenter: None,
            create_index: s.create_index,
            modify_index: s.modify_index,
        }
    }
}

/// A health check as `/v1/health/*` and `/v1/agent/checks` write it.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct JsonCheck<'a> {
    pub node: &'a str,
    #[serde(rename = "CheckID")]
    pub check_id: &'a str,
    pub name: &'a str,
    pub status: &'static str,
    pub notes: &'a str,
    pub output: &'a str,
    #[serde(rename = "ServiceID")]
    pub service_id: &'a str,
    pub service_name: &'a str,
    pub service_tags: &'a [String],
    #[serde(rename = "Type")]
    pub kind: &'static str,
    pub interval: String,
    pub timeout: String,
    pub create_index: u64,
    pub modify_index: u64,
}

/// Consul's check type name.
pub fn check_type(d: &CheckDefinition) -> &'static str {
    if !d.http.is_empty() {
        "http"
    } else if !d.tcp.is_empty() {
        "tcp"
    } else if !d.args.is_empty() {
        "script"
    } else if d.ttl_ms > 0 {
        "ttl"
    } else {
        ""
    }
}

/// Go's `time.Duration.String()` for whole milliseconds, as Consul prints intervals ("" for 0).
pub fn go_duration(ms: u64) -> String {
    if ms == 0 {
        return String::new();
    }
    let (h, rest) = (ms / 3_600_000, ms % 3_600_000);
    let (m, rest) = (rest / 60_000, rest % 60_000);
    let secs = rest as f64 / 1000.0;
    let s = if rest % 1000 == 0 {
        format!("{}s", rest / 1000)
    } else {
        format!("{secs}s")
    };
    match (h, m) {
        (0, 0) if ms < 1000 => format!("{ms}ms"),
        (0, 0) => s,
        (0, m) => format!("{m}m{s}"),
        (h, m) => format!("{h}h{m}m{s}"),
    }
}

impl<'a> JsonCheck<'a> {
    pub fn of(catalog: &'a Catalog, n: &'a NodeEntry, c: &'a CheckEntry) -> JsonCheck<'a> {
        let svc = (!c.check.service_id.is_empty())
            .then(|| catalog.service(&n.node.name, &c.check.service_id))
            .flatten();
        let d = &c.check.definition;
        JsonCheck {
            node: &n.node.name,
            check_id: &c.check.id,
            name: &c.check.name,
            status: c.check.status.as_str(),
            notes: &c.check.notes,
            output: &c.check.output,
            service_id: &c.check.service_id,
            service_name: svc.map_or("", |s| s.service.name.as_str()),
            service_tags: svc.map_or(&[], |s| s.service.tags.as_slice()),
            kind: check_type(d),
            interval: go_duration(d.interval_ms),
            timeout: go_duration(d.timeout_ms),
            create_index: c.create_index,
            modify_index: c.modify_index,
        }
    }
}

/// One entry of `/v1/health/service/:name`.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct JsonServiceHealth<'a> {
    pub node: JsonNode<'a>,
    pub service: JsonService<'a>,
    pub checks: Vec<JsonCheck<'a>>,
}

/// A KV entry; `Value` is base64, or null when empty (as Consul writes it).
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct JsonKv<'a> {
    pub lock_index: u64,
    pub key: &'a str,
    pub flags: u64,
    pub value: Option<String>,
    pub create_index: u64,
    pub modify_index: u64,
}

impl<'a> JsonKv<'a> {
    pub fn of(e: &'a KvEntry) -> JsonKv<'a> {
        use base64::Engine;
        JsonKv {
            lock_index: e.lock_index,
            key: &e.key,
            flags: e.flags,
            value: (!e.value.is_empty())
                .then(|| base64::engine::general_purpose::STANDARD.encode(&e.value)),
            create_index: e.create_index,
            modify_index: e.modify_index,
        }
    }
}

// ---- bodies the API reads ----

/// `Weights` in a body.
#[derive(Deserialize, Clone, Copy, Debug, Default)]
pub struct InWeights {
    #[serde(rename = "Passing", default)]
    pub passing: u32,
    #[serde(rename = "Warning", default)]
    pub warning: u32,
}

/// A service in `/v1/agent/service/register` (`Name`) or `/v1/catalog/register`
/// (`Service`).
#[derive(Deserialize, Clone, Debug, Default)]
pub struct InService {
    #[serde(rename = "ID", default)]
    pub id: String,
    #[serde(rename = "Name", alias = "Service", default)]
    pub name: String,
    #[serde(rename = "Tags", default)]
    pub tags: Option<Vec<String>>,
    #[serde(rename = "Address", default)]
    pub address: String,
    #[serde(rename = "Port", default)]
    pub port: u16,
    #[serde(rename = "Meta", default)]
    pub meta: Option<Map>,
    #[serde(rename = "Weights", default)]
    pub weights: Option<InWeights>,
    #[serde(rename = "EnableTagOverride", default)]
    pub enable_tag_override: bool,
    #[serde(rename = "Check", default)]
    pub check: Option<InCheck>,
    #[serde(rename = "Checks", default)]
    pub checks: Option<Vec<InCheck>>,
}

/// A check in a body: `/v1/agent/check/register`, a service's `Check`/`Checks`, or the
/// catalog API's `Check`. Durations are Go strings ("10s").
#[derive(Deserialize, Clone, Debug, Default)]
pub struct InCheck {
    #[serde(rename = "ID", alias = "CheckID", default)]
    pub id: String,
    #[serde(rename = "Name", default)]
    pub name: String,
    #[serde(rename = "Notes", default)]
    pub notes: String,
    #[serde(rename = "Status", default)]
    pub status: String,
    #[serde(rename = "Output", default)]
    pub output: String,
    #[serde(rename = "ServiceID", default)]
    pub service_id: String,
    #[serde(rename = "HTTP", default)]
    pub http: String,
    #[serde(rename = "Method", default)]
    pub method: String,
    #[serde(rename = "Header", default)]
    pub header: Option<BTreeMap<String, Vec<String>>>,
    #[serde(rename = "TCP", default)]
    pub tcp: String,
    #[serde(rename = "Args", alias = "ScriptArgs", default)]
    pub args: Option<Vec<String>>,
    #[serde(rename = "Interval", default)]
    pub interval: String,
    #[serde(rename = "Timeout", default)]
    pub timeout: String,
    #[serde(rename = "TTL", default)]
    pub ttl: String,
    #[serde(rename = "DeregisterCriticalServiceAfter", default)]
    pub deregister_critical_service_after: String,
    #[serde(rename = "TLSSkipVerify", default)]
    pub tls_skip_verify: bool,
    /// The catalog API nests the run definition here.
    #[serde(rename = "Definition", default)]
    pub definition: Option<Box<InCheck>>,
}

/// `/v1/catalog/register`.
#[derive(Deserialize, Clone, Debug, Default)]
pub struct InCatalogRegistration {
    #[serde(rename = "Node", default)]
    pub node: String,
    #[serde(rename = "Address", default)]
    pub address: String,
    #[serde(rename = "Datacenter", default)]
    pub datacenter: String,
    #[serde(rename = "TaggedAddresses", default)]
    pub tagged_addresses: Option<Map>,
    #[serde(rename = "NodeMeta", default)]
    pub node_meta: Option<Map>,
    #[serde(rename = "Service", default)]
    pub service: Option<InService>,
    #[serde(rename = "Check", default)]
    pub check: Option<InCheck>,
    #[serde(rename = "Checks", default)]
    pub checks: Option<Vec<InCheck>>,
    #[serde(rename = "SkipNodeUpdate", default)]
    pub skip_node_update: bool,
}

/// `/v1/catalog/deregister`.
#[derive(Deserialize, Clone, Debug, Default)]
pub struct InCatalogDeregistration {
    #[serde(rename = "Node", default)]
    pub node: String,
    #[serde(rename = "ServiceID", default)]
    pub service_id: Option<String>,
    #[serde(rename = "CheckID", default)]
    pub check_id: Option<String>,
}

/// `/v1/agent/check/update/:id`.
#[derive(Deserialize, Clone, Debug, Default)]
pub struct InCheckUpdate {
    #[serde(rename = "Status", default)]
    pub status: String,
    #[serde(rename = "Output", default)]
    pub output: String,
}

/// Every field name the bodies above use, as Consul writes it. Consul decodes bodies with
/// Go's `encoding/json`, which matches keys case-insensitively, and also takes snake_case
/// (clients such as py-consul send `serviceid`, `enable_tag_override`); keys are brought to
/// these spellings before decoding.
const FIELDS: &[&str] = &[
    "ID",
    "Name",
    "Service",
    "Tags",
    "Address",
    "Port",
    "Meta",
    "Weights",
    "Passing",
    "Warning",
    "EnableTagOverride",
    "Check",
    "Checks",
    "CheckID",
    "Notes",
    "Status",
    "Output",
    "ServiceID",
    "HTTP",
    "Method",
    "Header",
    "TCP",
    "Args",
    "ScriptArgs",
    "Interval",
    "Timeout",
    "TTL",
    "DeregisterCriticalServiceAfter",
    "Definition",
    "Node",
    "Datacenter",
    "TaggedAddresses",
    "NodeMeta",
    "SkipNodeUpdate",
    "TLSSkipVerify",
];

/// Fields whose value is a map of the user's own keys, left as they are.
const FREE_FORM: &[&str] = &["Meta", "NodeMeta", "TaggedAddresses", "Header"];

/// `EnableTagOverride`, `enable_tag_override` and `enabletagoverride` all give the same.
fn folded(key: &str) -> String {
    key.chars()
        .filter(|c| *c != '_' && *c != '-')
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// Renames the keys of `v`'s objects to Consul's spelling of the field they match (others
/// are left, and ignored by the decoder, as Consul ignores them), except inside free-form
/// maps.
fn canonical_keys(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(map) => {
            let old = std::mem::take(map);
            for (k, mut val) in old {
                let f = folded(&k);
                let name = FIELDS
                    .iter()
                    .find(|n| folded(n) == f)
                    .map_or(k, |n| n.to_string());
                if !FREE_FORM.contains(&name.as_str()) {
                    canonical_keys(&mut val);
                }
                map.insert(name, val);
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(canonical_keys),
        _ => {}
    }
}

/// Parses a JSON body into `T`, with the position (syntax errors) or the field path and the
/// problem (for a 400).
pub fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err("request body is empty: expected a JSON object".into());
    }
    let mut v: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("request decode failed: {e}"))?;
    canonical_keys(&mut v);
    serde_path_to_error::deserialize(v).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." || path.is_empty() {
            format!("request decode failed: {inner}")
        } else {
            format!("request decode failed: {path}: {inner}")
        }
    })
}

/// A duration field ("10s", "1m"), named for the error message.
fn duration(field: &str, v: &str) -> Result<u64, String> {
    if v.is_empty() {
        return Ok(0);
    }
    crate::config::parse_duration(v).map_err(|e| format!("{field}: {e}"))
}

impl InCheck {
    /// The catalog check this describes, for the service `service_id` (if the check does not
    /// name one). `default_id` is used when it has neither ID nor name.
    pub fn to_check(&self, service_id: &str, default_id: &str) -> Result<Check, String> {
        let d = self.definition.as_deref().unwrap_or(self);
        let status = if self.status.is_empty() {
            // Consul: a check starts critical unless it says otherwise.
            Health::Critical
        } else {
            Health::parse(&self.status).ok_or_else(|| {
                format!(
                    "Status: {:?} is not a check status: expected passing, warning or critical",
                    self.status
                )
            })?
        };
        let id = if !self.id.is_empty() {
            self.id.clone()
        } else if !self.name.is_empty() {
            self.name.clone()
        } else {
            default_id.to_string()
        };
        let definition = CheckDefinition {
            http: d.http.clone(),
            method: d.method.clone(),
            header: d.header.clone().unwrap_or_default(),
            tcp: d.tcp.clone(),
            args: d.args.clone().unwrap_or_default(),
            interval_ms: duration("Interval", &d.interval)?,
            timeout_ms: duration("Timeout", &d.timeout)?,
            ttl_ms: duration("TTL", &d.ttl)?,
            deregister_critical_service_after_ms: duration(
                "DeregisterCriticalServiceAfter",
                &d.deregister_critical_service_after,
            )?,
            tls_skip_verify: d.tls_skip_verify,
        };
        let runs = !definition.http.is_empty()
            || !definition.tcp.is_empty()
            || !definition.args.is_empty();
        if runs && definition.interval_ms == 0 {
            return Err(format!(
                "check {id:?}: Interval is required for HTTP, TCP and script checks"
            ));
        }
        Ok(Check {
            name: if self.name.is_empty() {
                id.clone()
            } else {
                self.name.clone()
            },
            id,
            status,
            notes: self.notes.clone(),
            output: self.output.clone(),
            service_id: if self.service_id.is_empty() {
                service_id.to_string()
            } else {
                self.service_id.clone()
            },
            definition,
        })
    }
}

impl InService {
    /// The catalog service and its checks (Consul names unnamed service checks
    /// `service:<id>`, and `service:<id>:<n>` when there are several).
    pub fn to_service(&self) -> Result<(Service, Vec<Check>), String> {
        if self.name.is_empty() {
            return Err("missing service name (Name)".into());
        }
        let id = if self.id.is_empty() {
            self.name.clone()
        } else {
            self.id.clone()
        };
        let w = self.weights.unwrap_or(InWeights {
            passing: 1,
            warning: 1,
        });
        let service = Service {
            id: id.clone(),
            name: self.name.clone(),
            tags: self.tags.clone().unwrap_or_default(),
            address: self.address.clone(),
            port: self.port,
            meta: self.meta.clone().unwrap_or_default().into(),
            weights: Weights {
                passing: if w.passing == 0 { 1 } else { w.passing },
                warning: w.warning,
            },
            enable_tag_override: self.enable_tag_override,
        };
        let all: Vec<&InCheck> = self
            .check
            .iter()
            .chain(self.checks.iter().flatten())
            .collect();
        let several = all.len() > 1;
        let checks = all
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let default = if several {
                    format!("service:{id}:{}", i + 1)
                } else {
                    format!("service:{id}")
                };
                c.to_check(&id, &default)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok((service, checks))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_print_as_consul_prints_them() {
        assert_eq!(go_duration(0), "");
        assert_eq!(go_duration(250), "250ms");
        assert_eq!(go_duration(10_000), "10s");
        assert_eq!(go_duration(1_500), "1.5s");
        assert_eq!(go_duration(90_000), "1m30s");
        assert_eq!(go_duration(3_600_000), "1h0m0s");
    }

    #[test]
    fn node_ids_are_stable_uuid_shaped_and_case_insensitive() {
        let a = node_id("box-1");
        assert_eq!(a.len(), 36);
        assert_eq!(a.matches('-').count(), 4);
        assert_eq!(a, node_id("BOX-1"));
        assert_ne!(a, node_id("box-2"));
    }

    #[test]
    fn service_bodies_read_as_consul_reads_them() {
        let s: InService = parse_body(
            br#"{"Name": "web", "tags": ["a"], "Port": 80, "enable_tag_override": true,
                 "Check": {"HTTP": "http://127.0.0.1:1/", "Interval": "10s"},
                 "Unknown": 1}"#,
        )
        .unwrap();
        let (svc, checks) = s.to_service().unwrap();
        assert_eq!(
            (svc.id.as_str(), svc.port, svc.enable_tag_override),
            ("web", 80, true)
        );
        assert_eq!(svc.tags, ["a"]);
        assert_eq!(checks.len(), 1);
        assert_eq!(checks[0].id, "service:web");
        assert_eq!(checks[0].status, Health::Critical);
        assert_eq!(checks[0].definition.interval_ms, 10_000);
        assert_eq!(checks[0].service_id, "web");
    }

    #[test]
    fn keys_match_in_any_case_and_snake_case_as_gos_decoder_does() {
        let s: InService = parse_body(
            br#"{"name": "web", "ID": "w1", "enabletagoverride": true, "PORT": 8,
                 "meta": {"Owner_Name": "x"}, "check": {"ttl": "5s", "service_id": "other"}}"#,
        )
        .unwrap();
        assert!(s.enable_tag_override);
        assert_eq!((s.id.as_str(), s.port), ("w1", 8));
        assert_eq!(
            s.meta.unwrap()["Owner_Name"],
            "x",
            "free-form keys are kept as written"
        );
        let c = s.check.unwrap();
        assert_eq!((c.ttl.as_str(), c.service_id.as_str()), ("5s", "other"));
        let d: InCatalogDeregistration =
            parse_body(br#"{"node": "n", "serviceid": "s", "CheckId": "c"}"#).unwrap();
        assert_eq!(d.service_id.as_deref(), Some("s"));
        assert_eq!(d.check_id.as_deref(), Some("c"));
    }

    #[test]
    fn bad_bodies_name_the_field_and_the_problem() {
        let e = parse_body::<InService>(br#"{"Name": "web", "Port": 70000}"#).unwrap_err();
        assert!(e.contains("Port") && e.contains("70000"), "{e}");
        let e = parse_body::<InService>(br#"{"Name": "web", "Tags": "x"}"#).unwrap_err();
        assert!(e.contains("Tags"), "{e}");
        let e = parse_body::<InService>(b"{").unwrap_err();
        assert!(e.contains("EOF"), "{e}");
        assert!(parse_body::<InService>(b"").unwrap_err().contains("empty"));
        let s: InService = parse_body(br#"{"Name": "web", "Check": {"TTL": "ten"}}"#).unwrap();
        let e = s.to_service().unwrap_err();
        assert!(e.contains("TTL") && e.contains("ten"), "{e}");
        let s: InService = parse_body(br#"{"Name": "w", "Check": {"TCP": "x:1"}}"#).unwrap();
        assert!(s.to_service().unwrap_err().contains("Interval"));
        let s: InService = parse_body(br#"{"Port": 1}"#).unwrap();
        assert!(s.to_service().unwrap_err().contains("Name"));
    }
}
