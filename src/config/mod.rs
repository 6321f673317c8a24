//! The agent's configuration: flags, config files and the embedded dev examples merged into
//! one validated [`AgentConfig`]. Nothing is applied until everything has been validated.

mod duration;
pub mod file;
pub mod flags;
pub(crate) mod locate;
pub mod stream;
mod validate;

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

pub use duration::parse_duration;
pub use flags::{AgentFlags, normalize_args};
pub use locate::Step;
pub use stream::{StreamSource, StreamSpec, VideoCodec};

use crate::catalog::{Check, Node, Service};
use file::FileConfig;

/// The example services `outpost agent -dev` serves when no config is given.
pub const DEV_EXAMPLES: &str = include_str!("dev_examples.json");
const DEV_EXAMPLES_NAME: &str = "<dev examples>";

/// Most config files read from one directory tree (a bound on memory and start-up time).
pub const MAX_FILES: usize = 10_000;
/// Largest config file accepted.
pub const MAX_FILE_BYTES: u64 = 4 << 20;

/// How long the media process runs with nobody watching before it is stopped, unless
/// `media_idle_timeout` says otherwise.
pub const DEFAULT_MEDIA_IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// A config problem, pointing at the culprit: file, line, column, field, and what would be
/// accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// File (or flag source) and 1-based line and column, when the problem is in a file.
    pub file: Option<PathBuf>,
    pub line: usize,
    pub column: usize,
    /// Dotted path of the field, such as `service.port` or `services[1].checks[0].interval`.
    pub field: String,
    pub message: String,
}

impl ConfigError {
    fn flag(field: &str, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: None,
            line: 0,
            column: 0,
            field: format!("-{field}"),
            message: message.into(),
        }
    }

    fn io(path: &Path, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: Some(path.to_path_buf()),
            line: 0,
            column: 0,
            field: String::new(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(file) = &self.file {
            write!(f, "{}", file.display())?;
            if self.line > 0 {
                write!(f, ":{}:{}", self.line, self.column)?;
            }
            write!(f, ": ")?;
        }
        if !self.field.is_empty() {
            write!(f, "{}: ", self.field)?;
        }
        write!(f, "{}", self.message)
    }
}

impl std::error::Error for ConfigError {}

/// What the machine tells us, passed in so that building the config stays pure.
#[derive(Clone, Debug, Default)]
pub struct HostInfo {
    pub hostname: String,
    /// Addresses of the host's interfaces, used to pick an advertise address.
    pub addresses: Vec<IpAddr>,
    /// The device tree, to pick the board profile (empty on a PC).
    pub device_tree: crate::board::DeviceTree,
}

/// A config file's text and where it came from.
#[derive(Clone, Debug)]
pub struct Source {
    pub name: PathBuf,
    pub text: String,
    /// Files in the same sub-directory of a config dir share a scope: a `node` block in one
    /// of them makes all their services belong to that external node.
    pub scope: usize,
}

/// Listener ports; `None` means disabled (-1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ports {
    pub dns: Option<u16>,
    pub http: Option<u16>,
    pub https: Option<u16>,
    pub serf_lan: Option<u16>,
    pub server: Option<u16>,
}

/// DNS settings from `dns_config`.
#[derive(Clone, Debug, PartialEq)]
pub struct DnsConfig {
    pub node_ttl_s: u32,
    pub service_ttl_s: BTreeMap<String, u32>,
    pub allow_stale: bool,
    pub only_passing: bool,
    pub enable_truncate: bool,
    pub udp_answer_limit: usize,
    pub recursor_timeout_ms: u64,
}

/// HTTPS settings from `tls.defaults`. With no certificate, the agent makes a self-signed
/// one (kept in the data dir).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsSettings {
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// CA certificates for client certificates (`verify_incoming`).
    pub ca_file: Option<PathBuf>,
    pub verify_incoming: bool,
}

/// ACL settings: when enabled, writes (and with `deny`, reads) need the management token.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AclSettings {
    pub enabled: bool,
    /// `default_policy = "deny"`: reads need the token too.
    pub deny_by_default: bool,
    pub management_token: String,
}

/// A service with its checks, ready for the catalog.
#[derive(Clone, Debug, PartialEq)]
pub struct ServiceDef {
    pub service: Service,
    pub checks: Vec<Check>,
}

/// A machine without an agent, defined in config (the `node` block).
#[derive(Clone, Debug, PartialEq)]
pub struct ExternalNode {
    pub node: Node,
    pub services: Vec<ServiceDef>,
}

/// The validated configuration of an agent.
#[derive(Clone, Debug, PartialEq)]
pub struct AgentConfig {
    pub dev: bool,
    pub node_name: String,
    pub datacenter: String,
    /// Lower case, no leading or trailing dot.
    pub domain: String,
    pub data_dir: Option<PathBuf>,
    pub server: bool,
    pub bootstrap: bool,
    pub bootstrap_expect: Option<u32>,
    pub bind_addr: IpAddr,
    pub client_addrs: Vec<IpAddr>,
    /// The address other nodes and DNS answers use for this node.
    pub advertise_addr: IpAddr,
    pub ports: Ports,
    pub dns_addrs: Vec<IpAddr>,
    pub http_addrs: Vec<IpAddr>,
    pub https_addrs: Vec<IpAddr>,
    pub tls: TlsSettings,
    pub acl: AclSettings,
    pub recursors: Vec<SocketAddr>,
    pub dns: DnsConfig,
    pub retry_join: Vec<String>,
    pub join: Vec<String>,
    /// The gossip key (32 bytes).
    pub encrypt: Option<Vec<u8>>,
    /// How long a failed member stays in the member list before it is reaped.
    pub reconnect_timeout: std::time::Duration,
    /// How long the media process runs while no stream has a viewer before it is stopped
    /// (`None`: it is never stopped for that). The next viewer starts it again.
    pub media_idle_timeout: Option<std::time::Duration>,
    pub log_level: String,
    pub enable_script_checks: bool,
    pub node_meta: BTreeMap<String, String>,
    /// Services of this agent's own node.
    pub services: Vec<ServiceDef>,
    /// Node-level checks of this agent's own node.
    pub checks: Vec<Check>,
    pub external_nodes: Vec<ExternalNode>,
    /// Live video streams (served when the `media` feature is built in).
    pub streams: Vec<StreamSpec>,
    /// The board profile (camera defaults, encoders) and why it was chosen.
    pub board: crate::board::Selection,
    /// The files read, in the order they were merged.
    pub files: Vec<PathBuf>,
}

impl AgentConfig {
    /// The catalog record of this agent's own node.
    pub fn local_node(&self) -> Node {
        Node {
            name: self.node_name.clone(),
            address: self.advertise_addr.to_string(),
            datacenter: self.datacenter.clone(),
            tagged_addresses: Default::default(),
            meta: self.node_meta.clone().into(),
        }
    }

    /// The DNS responder's settings for this configuration.
    pub fn dns_settings(&self) -> crate::dns::DnsSettings {
        crate::dns::DnsSettings {
            domain: self.domain.clone(),
            datacenter: self.datacenter.to_ascii_lowercase(),
            node_name: self.node_name.clone(),
            node_address: Some(self.advertise_addr),
            node_ttl: self.dns.node_ttl_s,
            service_ttl: self.dns.service_ttl_s.clone(),
            only_passing: self.dns.only_passing,
            enable_truncate: self.dns.enable_truncate,
            udp_answer_limit: self.dns.udp_answer_limit,
            recursion: !self.recursors.is_empty(),
            soa: [3600, 600, 86400, 0],
        }
    }
}

/// Reads every config source the flags name: `-config-file`s, then each `-config-dir`'s
/// `*.json` files in name order (sub-directories one level down, each its own scope), or
/// the embedded examples in dev mode when nothing is given. The one place that reads config.
pub fn read_sources(flags: &AgentFlags) -> Result<Vec<Source>, ConfigError> {
    let mut sources = Vec::new();
    let mut scope = 0;
    for f in &flags.config_file {
        sources.push(Source {
            name: f.clone(),
            text: read_file(f)?,
            scope: 0,
        });
    }
    for dir in &flags.config_dir {
        let (files, subdirs) = list_dir(dir)?;
        for f in files {
            sources.push(Source {
                text: read_file(&f)?,
                name: f,
                scope: 0,
            });
        }
        for sub in subdirs {
            scope += 1;
            let (files, _) = list_dir(&sub)?;
            for f in files {
                sources.push(Source {
                    text: read_file(&f)?,
                    name: f,
                    scope,
                });
            }
        }
        if sources.len() > MAX_FILES {
            return Err(ConfigError::io(
                dir,
                format!("more than {MAX_FILES} config files"),
            ));
        }
    }
    if flags.dev && flags.config_dir.is_empty() && flags.config_file.is_empty() {
        sources.push(Source {
            name: DEV_EXAMPLES_NAME.into(),
            text: DEV_EXAMPLES.into(),
            scope: 0,
        });
    }
    Ok(sources)
}

/// A config (or board profile) file's text, refused over [`MAX_FILE_BYTES`].
pub(crate) fn read_file(path: &Path) -> Result<String, ConfigError> {
    let meta =
        std::fs::metadata(path).map_err(|e| ConfigError::io(path, format!("cannot read: {e}")))?;
    if meta.len() > MAX_FILE_BYTES {
        return Err(ConfigError::io(
            path,
            format!(
                "{} bytes is over the {MAX_FILE_BYTES}-byte limit",
                meta.len()
            ),
        ));
    }
    std::fs::read_to_string(path).map_err(|e| ConfigError::io(path, format!("cannot read: {e}")))
}

/// Config files (`*.json`) and sub-directories of `dir`, each sorted by name. `*.hcl` files
/// are refused rather than silently ignored.
fn list_dir(dir: &Path) -> Result<(Vec<PathBuf>, Vec<PathBuf>), ConfigError> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| ConfigError::io(dir, format!("cannot read config dir: {e}")))?;
    let mut files = Vec::new();
    let mut dirs = Vec::new();
    for e in entries {
        let e = e.map_err(|e| ConfigError::io(dir, format!("cannot read config dir: {e}")))?;
        let path = e.path();
        let name = e.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') {
            continue;
        }
        let is_dir = std::fs::metadata(&path)
            .map(|m| m.is_dir())
            .unwrap_or(false);
        if is_dir {
            dirs.push(path);
        } else if name.ends_with(".json") {
            files.push(path);
        } else if name.ends_with(".hcl") {
            return Err(ConfigError::io(
                &path,
                "HCL config files are not supported; write it as JSON (same keys)",
            ));
        }
        if files.len() + dirs.len() > MAX_FILES {
            return Err(ConfigError::io(
                dir,
                format!("more than {MAX_FILES} entries"),
            ));
        }
    }
    files.sort();
    dirs.sort();
    Ok((files, dirs))
}

/// Parses one file's text, with serde's message, the field path and the position.
pub fn parse_source(name: &Path, text: &str) -> Result<FileConfig, ConfigError> {
    parse_json(
        name,
        text,
        "expected a JSON object, such as {\"service\": {\"name\": \"web\", \"port\": 80}}",
    )
}

/// Parses a JSON object from `text` (the file `name`) into `T`: a syntax error gives its
/// position, a type error the field path too; `not_object` is the message when the text
/// is not a JSON object at all.
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(
    name: &Path,
    text: &str,
    not_object: &str,
) -> Result<T, ConfigError> {
    let start = text.len() - text.trim_start().len();
    if !text[start..].starts_with('{') {
        let (line, column) = locate::line_col(text, start);
        return Err(ConfigError {
            file: Some(name.into()),
            line,
            column,
            field: String::new(),
            message: not_object.into(),
        });
    }
    let mut de = serde_json::Deserializer::from_str(text);
    let parsed: Result<T, _> = serde_path_to_error::deserialize(&mut de);
    let at = |e: serde_json::Error, field: String| {
        let mut message = e.to_string();
        // serde_json appends " at line L column C"; the position is printed up front instead.
        if let Some(i) = message.rfind(" at line ") {
            message.truncate(i);
        }
        ConfigError {
            file: Some(name.into()),
            line: e.line(),
            column: e.column(),
            field,
            message,
        }
    };
    match parsed {
        Ok(c) => {
            de.end().map_err(|e| at(e, String::new()))?;
            Ok(c)
        }
        Err(e) => {
            let path = e.path().to_string();
            let inner = e.into_inner();
            // A syntax error has no meaningful field; the position says it all.
            let syntax = matches!(
                inner.classify(),
                serde_json::error::Category::Syntax | serde_json::error::Category::Eof
            );
            let field = if syntax || path == "." {
                String::new()
            } else {
                path.replace(".?", "")
            };
            Err(at(inner, field))
        }
    }
}

/// Builds the validated configuration from flags and sources. Pure but for reading the board
/// profile file a `-board` or `board` path names: the same inputs give the same result or
/// the same first error.
pub fn build(
    flags: &AgentFlags,
    sources: &[Source],
    host: &HostInfo,
) -> Result<AgentConfig, ConfigError> {
    validate::build(flags, sources, host)
}

/// Reads and builds in one step: what the agent does at start-up and on reload.
/// `-device-tree DIR` replaces the host's device tree.
pub fn load(flags: &AgentFlags, host: &HostInfo) -> Result<AgentConfig, ConfigError> {
    let sources = read_sources(flags)?;
    match &flags.device_tree {
        Some(dir) => {
            let host = HostInfo {
                device_tree: crate::board::devicetree::read(dir),
                ..host.clone()
            };
            build(flags, &sources, &host)
        }
        None => build(flags, &sources, host),
    }
}

#[cfg(test)]
mod tests;
