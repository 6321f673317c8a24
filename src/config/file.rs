//! One config file as Consul writes it (JSON, snake_case keys). Unknown keys are errors,
//! so a typo never silently becomes a default.

use std::collections::BTreeMap;

use serde::Deserialize;

/// Every key a config file may hold. All optional: files are merged in name order, later
/// values override earlier ones, and lists (services, checks, recursors) accumulate.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub node_name: Option<String>,
    pub datacenter: Option<String>,
    pub domain: Option<String>,
    pub data_dir: Option<String>,
    pub server: Option<bool>,
    pub bootstrap: Option<bool>,
    pub bootstrap_expect: Option<u32>,
    pub bind_addr: Option<String>,
    pub client_addr: Option<String>,
    pub advertise_addr: Option<String>,
    pub ports: Option<Ports>,
    pub addresses: Option<Addresses>,
    pub recursors: Option<Vec<String>>,
    pub dns_config: Option<DnsConfigFile>,
    pub retry_join: Option<Vec<String>>,
    pub start_join: Option<Vec<String>>,
    pub encrypt: Option<String>,
    pub reconnect_timeout: Option<String>,
    /// outpost extension: how long the media process runs without a viewer before it is
    /// stopped (`0s`: never).
    pub media_idle_timeout: Option<String>,
    pub log_level: Option<String>,
    /// outpost extension: the board profile (a built-in name or a profile file's path).
    pub board: Option<String>,
    pub enable_script_checks: Option<bool>,
    pub node_meta: Option<BTreeMap<String, String>>,
    pub service: Option<ServiceFile>,
    pub services: Option<Vec<ServiceFile>>,
    pub check: Option<CheckFile>,
    pub checks: Option<Vec<CheckFile>>,
    pub tls: Option<TlsFile>,
    pub acl: Option<AclFile>,
    /// A live video stream (outpost's Janus-style streaming).
    pub stream: Option<StreamFile>,
    pub streams: Option<Vec<StreamFile>>,
    /// outpost extension: an external node (a machine without an agent, as Consul's catalog
    /// API registers them). The services of files in the same directory belong to it.
    pub node: Option<NodeFile>,
}

/// Ports; -1 disables a listener, 0 asks the kernel for a free one.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ports {
    pub dns: Option<i32>,
    pub http: Option<i32>,
    pub https: Option<i32>,
    pub serf_lan: Option<i32>,
    pub server: Option<i32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Addresses {
    pub dns: Option<String>,
    pub http: Option<String>,
    pub https: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsConfigFile {
    pub node_ttl: Option<String>,
    pub service_ttl: Option<BTreeMap<String, String>>,
    pub allow_stale: Option<bool>,
    pub max_stale: Option<String>,
    pub only_passing: Option<bool>,
    pub enable_truncate: Option<bool>,
    pub udp_answer_limit: Option<i64>,
    pub recursor_timeout: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceFile {
    pub id: Option<String>,
    pub name: Option<String>,
    pub tags: Option<Vec<String>>,
    pub address: Option<String>,
    pub port: Option<i64>,
    pub meta: Option<BTreeMap<String, String>>,
    pub weights: Option<WeightsFile>,
    pub enable_tag_override: Option<bool>,
    pub check: Option<CheckFile>,
    pub checks: Option<Vec<CheckFile>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeightsFile {
    pub passing: Option<i64>,
    pub warning: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckFile {
    pub id: Option<String>,
    pub name: Option<String>,
    pub notes: Option<String>,
    pub service_id: Option<String>,
    pub status: Option<String>,
    pub http: Option<String>,
    pub method: Option<String>,
    pub header: Option<BTreeMap<String, Vec<String>>>,
    pub tcp: Option<String>,
    pub ttl: Option<String>,
    pub args: Option<Vec<String>>,
    pub interval: Option<String>,
    pub timeout: Option<String>,
    pub deregister_critical_service_after: Option<String>,
    pub tls_skip_verify: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeFile {
    pub name: Option<String>,
    pub address: Option<String>,
    pub datacenter: Option<String>,
    pub meta: Option<BTreeMap<String, String>>,
    pub tagged_addresses: Option<BTreeMap<String, String>>,
}

/// A stream as a config file writes it; see `config::stream` for the meaning.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamFile {
    pub name: Option<String>,
    pub source: Option<String>,
    pub pattern: Option<String>,
    pub device: Option<String>,
    pub codec: Option<String>,
    pub width: Option<i64>,
    pub height: Option<i64>,
    pub fps: Option<i64>,
    /// kbit/s.
    pub bitrate: Option<i64>,
    pub audio: Option<bool>,
    pub max_viewers: Option<i64>,
    pub keyframe_interval: Option<String>,
    pub video_port: Option<i64>,
    pub video_pt: Option<i64>,
    pub video_codec: Option<String>,
    pub audio_port: Option<i64>,
    pub audio_pt: Option<i64>,
    pub audio_codec: Option<String>,
    pub video_rtcp_port: Option<i64>,
}

/// Consul's `tls` block; outpost reads its `defaults`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFile {
    pub defaults: Option<TlsDefaultsFile>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsDefaultsFile {
    pub cert_file: Option<String>,
    pub key_file: Option<String>,
    pub ca_file: Option<String>,
    pub verify_incoming: Option<bool>,
}

/// Consul's `acl` block: one management token, and whether reads need it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AclFile {
    pub enabled: Option<bool>,
    pub default_policy: Option<String>,
    pub tokens: Option<AclTokensFile>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AclTokensFile {
    pub initial_management: Option<String>,
}
