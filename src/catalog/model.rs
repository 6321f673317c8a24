//! Catalog records as they are stored and replicated: plain structs, postcard-friendly
//! (no optional-skip attributes), independent of how config files or the HTTP API spell them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A machine in the catalog: the local agent, a cluster member, or an external node
/// registered by a config file or the catalog API.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    pub name: String,
    /// An IP address or a host name, as Consul allows; DNS answers A/AAAA only for IPs.
    pub address: String,
    pub datacenter: String,
    pub tagged_addresses: BTreeMap<String, String>,
    pub meta: BTreeMap<String, String>,
}

impl Node {
    /// A node with no tagged addresses and no meta.
    pub fn new(name: &str, address: &str, datacenter: &str) -> Node {
        Node {
            name: name.into(),
            address: address.into(),
            datacenter: datacenter.into(),
            tagged_addresses: BTreeMap::new(),
            meta: BTreeMap::new(),
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
    pub meta: BTreeMap<String, String>,
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
            meta: BTreeMap::new(),
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
