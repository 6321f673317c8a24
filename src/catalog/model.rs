//! Catalog records as they are stored and replicated: plain structs, postcard-friendly
//! (no optional-skip attributes), independent of how config files or the HTTP API spell them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// String keys to string values (meta, tagged addresses), sorted by key: a map in JSON and
/// postcard, as a `BTreeMap` would be, stored as one sorted vector. Most hold a few pairs,
/// and a `BTreeMap` spends a ~500-byte node on even one (10,000 services with one meta
/// key each held 4.5 MB of nodes).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Meta(Vec<(String, String)>);

impl Meta {
    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&String> {
        self.0
            .binary_search_by(|(k, _)| k.as_str().cmp(key))
            .ok()
            .map(|i| &self.0[i].1)
    }

    /// Sets `key` to `value`, replacing an earlier value.
    pub fn insert(&mut self, key: String, value: String) {
        match self.0.binary_search_by(|(k, _)| k.cmp(&key)) {
            Ok(i) => self.0[i].1 = value,
            Err(i) => self.0.insert(i, (key, value)),
        }
    }

    /// The pairs in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &String)> {
        self.0.iter().map(|(k, v)| (k, v))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl FromIterator<(String, String)> for Meta {
    /// Later pairs win over earlier ones with the same key, as in a map.
    fn from_iter<I: IntoIterator<Item = (String, String)>>(pairs: I) -> Meta {
        let map: BTreeMap<String, String> = pairs.into_iter().collect();
        Meta::from(map)
    }
}

impl From<BTreeMap<String, String>> for Meta {
    fn from(map: BTreeMap<String, String>) -> Meta {
        let mut v: Vec<(String, String)> = map.into_iter().collect();
        v.shrink_to_fit();
        Meta(v)
    }
}

impl<'a> IntoIterator for &'a Meta {
    type Item = (&'a String, &'a String);
    type IntoIter = std::iter::Map<
        std::slice::Iter<'a, (String, String)>,
        fn(&'a (String, String)) -> (&'a String, &'a String),
    >;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter().map(|(k, v)| (k, v))
    }
}

impl Serialize for Meta {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.iter())
    }
}

impl<'de> Deserialize<'de> for Meta {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Meta, D::Error> {
        BTreeMap::<String, String>::deserialize(d).map(Meta::from)
    }
}

/// A machine in the catalog: the local agent, a cluster member, or an external node
/// registered by a config file or the catalog API.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    pub name: String,
    /// An IP address or a host name, as Consul allows; DNS answers A/AAAA only for IPs.
    pub address: String,
    pub datacenter: String,
    pub tagged_addresses: Meta,
    pub meta: Meta,
}

impl Node {
    /// A node with no tagged addresses and no meta.
    pub fn new(name: &str, address: &str, datacenter: &str) -> Node {
        Node {
            name: name.into(),
            address: address.into(),
            datacenter: datacenter.into(),
            tagged_addresses: Meta::default(),
            meta: Meta::default(),
        }
    }
}

/// One instance of a service on one node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Service {
    /// Unique per node; defaults to the name.
    pub id: String,
    pub name: String,
    pub tags: Vec<String>,
    /// Empty means "the node's address".
    pub address: String,
    pub port: u16,
    pub meta: Meta,
    pub weights: Weights,
    pub enable_tag_override: bool,
}

impl Service {
    /// A service at its node's address, with default weights and no meta.
    pub fn new(id: &str, name: &str, tags: &[&str], port: u16) -> Service {
        Service {
            id: id.into(),
            name: name.into(),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            address: String::new(),
            port,
            meta: Meta::default(),
            weights: Weights::default(),
            enable_tag_override: false,
        }
    }
}

/// SRV weights by health, as Consul's `Weights`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Weights {
    pub passing: u32,
    pub warning: u32,
}

impl Default for Weights {
    fn default() -> Self {
        Weights {
            passing: 1,
            warning: 1,
        }
    }
}

/// Health of a check, ordered from best to worst so that the worst of several is `max`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Health {
    Passing,
    Warning,
    Critical,
}

impl Health {
    /// Consul's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Passing => "passing",
            Health::Warning => "warning",
            Health::Critical => "critical",
        }
    }

    pub fn parse(s: &str) -> Option<Health> {
        match s {
            "passing" => Some(Health::Passing),
            "warning" => Some(Health::Warning),
            "critical" => Some(Health::Critical),
            _ => None,
        }
    }
}

/// A health check attached to a node (empty `service_id`) or to one service instance.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    pub id: String,
    pub name: String,
    pub status: Health,
    pub notes: String,
    pub output: String,
    /// Empty for a node-level check, which affects every service on the node.
    pub service_id: String,
    pub definition: CheckDefinition,
}

impl Check {
    /// A check named after its ID, with no definition (as the catalog API registers them).
    pub fn new(id: &str, service_id: &str, status: Health) -> Check {
        Check {
            id: id.into(),
            name: id.into(),
            status,
            notes: String::new(),
            output: String::new(),
            service_id: service_id.into(),
            definition: CheckDefinition::default(),
        }
    }
}

/// How a check is run. Stored with the check so every server knows it; run by the agent
/// that owns the node. Durations are in milliseconds (0 = unset).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckDefinition {
    pub http: String,
    pub method: String,
    pub header: BTreeMap<String, Vec<String>>,
    pub tcp: String,
    pub args: Vec<String>,
    pub interval_ms: u64,
    pub timeout_ms: u64,
    pub ttl_ms: u64,
    pub deregister_critical_service_after_ms: u64,
    /// For an `https://` check: accept any certificate (Consul's `tls_skip_verify`).
    pub tls_skip_verify: bool,
}
