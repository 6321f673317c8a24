//! The commands that talk to a running agent's HTTP API, printing as Consul's CLI does:
//! `members`, `catalog`, `services`, `kv`, `reload`, `leave`, `info`. Errors are one line.

pub mod format;

use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use clap::{Args, Subcommand};
use serde_json::Value;

use crate::http::client::{ClientRequest, request};

/// Where the agent's API is: `-http-addr`, else `OUTPOST_HTTP_ADDR`, else
/// `CONSUL_HTTP_ADDR`, else 127.0.0.1:8500.
#[derive(Args, Clone, Debug, Default)]
pub struct ApiFlags {
    /// The agent's HTTP API address (host:port or http://host:port).
    #[arg(long = "http-addr", value_name = "ADDR")]
    pub http_addr: Option<String>,
    /// ACL token (else `OUTPOST_HTTP_TOKEN`, else `CONSUL_HTTP_TOKEN`).
    #[arg(long, value_name = "TOKEN")]
    pub token: Option<String>,
    /// CA certificate (PEM) to verify an https:// agent with (else `CONSUL_CACERT`; by
    /// default the system's CA bundle).
    #[arg(long = "ca-file", value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
}

impl ApiFlags {
    pub fn token(&self) -> Option<String> {
        self.token
            .clone()
            .or_else(|| std::env::var("OUTPOST_HTTP_TOKEN").ok())
            .or_else(|| std::env::var("CONSUL_HTTP_TOKEN").ok())
            .filter(|t| !t.is_empty())
    }

    pub fn base(&self) -> String {
        let addr = self
            .http_addr
            .clone()
            .or_else(|| std::env::var("OUTPOST_HTTP_ADDR").ok())
            .or_else(|| std::env::var("CONSUL_HTTP_ADDR").ok())
            .filter(|a| !a.is_empty())
            .unwrap_or_else(|| "127.0.0.1:8500".into());
        let addr = addr.trim_end_matches('/');
        let ssl = std::env::var("CONSUL_HTTP_SSL").is_ok_and(|v| v == "true" || v == "1");
        if addr.contains("://") {
            addr.to_string()
        } else if ssl {
            format!("https://{addr}")
        } else {
            format!("http://{addr}")
        }
    }

    /// How to verify an https:// agent: the CA file given, else the system's bundle.
    fn tls(&self) -> Result<Option<std::sync::Arc<rustls::ClientConfig>>, String> {
        let ca = self
            .ca_file
            .clone()
            .or_else(|| std::env::var_os("CONSUL_CACERT").map(PathBuf::from));
        match ca {
            None => Ok(None),
            Some(path) => crate::http::client::tls_config_with_ca(&path)
                .map(Some)
                .map_err(|e| format!("Error loading the CA file: {e}")),
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum CatalogCmd {
    /// List services.
    Services {
        #[command(flatten)]
        api: ApiFlags,
        /// Show each service's tags.
        #[arg(long)]
        tags: bool,
    },
    /// List nodes.
    Nodes {
        #[command(flatten)]
        api: ApiFlags,
        /// Show full IDs, tagged addresses and meta.
        #[arg(long)]
        detailed: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum ServicesCmd {
    /// Register a service with the local agent, from a definition file or flags.
    Register(ServiceFlags),
    /// Deregister a service from the local agent, by -id or by definition file.
    Deregister(ServiceFlags),
}

#[derive(Args, Debug)]
pub struct ServiceFlags {
    #[command(flatten)]
    pub api: ApiFlags,
    /// Service definition files (`{"service": {...}}`, as in the config dir).
    pub files: Vec<PathBuf>,
    #[arg(long)]
    pub name: Option<String>,
    #[arg(long)]
    pub id: Option<String>,
    #[arg(long)]
    pub address: Option<String>,
    #[arg(long)]
    pub port: Option<u16>,
    /// Repeatable.
    #[arg(long)]
    pub tag: Vec<String>,
}

#[derive(Subcommand, Debug)]
pub enum KvCmd {
    /// Print a value (or, with -recurse, every `key:value` under a prefix).
    Get {
        #[command(flatten)]
        api: ApiFlags,
        key: String,
        #[arg(long)]
        recurse: bool,
        /// Print every field of the entry.
        #[arg(long)]
        detailed: bool,
    },
    /// Write a value: VALUE itself, `-` for stdin, `@FILE` for a file's content.
    Put {
        #[command(flatten)]
        api: ApiFlags,
        key: String,
        value: Option<String>,
        #[arg(long)]
        flags: Option<u64>,
        /// Check-and-set: write only if the key's index is -modify-index.
        #[arg(long)]
        cas: bool,
        #[arg(long = "modify-index", value_name = "N")]
        modify_index: Option<u64>,
    },
    /// Delete a key, or every key under a prefix with -recurse.
    Delete {
        #[command(flatten)]
        api: ApiFlags,
        key: String,
        #[arg(long)]
        recurse: bool,
    },
}

/// A failed command, as one line for the user.
pub type CliResult = Result<String, String>;

fn block<T>(f: impl std::future::Future<Output = T>) -> T {
    smol::block_on(f)
}

/// Sends one request to the agent; a non-2xx answer is an error quoting the agent's message.
fn call(api: &ApiFlags, method: &str, path: &str, body: Vec<u8>) -> Result<(u16, Bytes), String> {
    let url = format!("{}{path}", api.base());
    let req = ClientRequest {
        method: method.into(),
        url: url.clone(),
        headers: api
            .token()
            .map(|t| vec![("X-Consul-Token".to_string(), t)])
            .unwrap_or_default(),
        body: Bytes::from(body),
        timeout: Duration::from_secs(30),
        max_body: 64 << 20,
        tls: api.tls()?,
    };
    let resp = block(request(req)).map_err(|e| format!("Error querying agent at {url}: {e}"))?;
    Ok((resp.status.as_u16(), resp.body))
}

fn call_ok(api: &ApiFlags, method: &str, path: &str, body: Vec<u8>) -> Result<Bytes, String> {
    let (status, body) = call(api, method, path, body)?;
    if (200..300).contains(&status) {
        Ok(body)
    } else {
        Err(format!(
            "Unexpected response code: {status} ({})",
            String::from_utf8_lossy(&body).trim()
        ))
    }
}

fn json(body: &[u8]) -> Result<Value, String> {
    serde_json::from_slice(body).map_err(|e| format!("Error decoding the agent's answer: {e}"))
}

/// Percent-encodes a KV key for the URL, keeping `/`.
fn key_path(key: &str) -> String {
    const SET: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'/')
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');
    percent_encoding::utf8_percent_encode(key.trim_start_matches('/'), SET).to_string()
}

pub fn members(api: &ApiFlags, detailed: bool) -> CliResult {
    let m = json(&call_ok(api, "GET", "/v1/agent/members", vec![])?)?;
    Ok(format::members(&m, detailed))
}

pub fn catalog(cmd: CatalogCmd) -> CliResult {
    match cmd {
        CatalogCmd::Services { api, tags } => {
            let v = json(&call_ok(&api, "GET", "/v1/catalog/services", vec![])?)?;
            Ok(format::services(&v, tags))
        }
        CatalogCmd::Nodes { api, detailed } => {
            let v = json(&call_ok(&api, "GET", "/v1/catalog/nodes", vec![])?)?;
            Ok(format::nodes(&v, detailed))
        }
    }
}

/// The service definitions the command names: from its files (each `{"service": ...}` or
/// `{"services": [...]}`) or from its flags.
fn definitions(f: &ServiceFlags) -> Result<Vec<Value>, String> {
    let mut out = Vec::new();
    for path in &f.files {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("Error reading {}: {e}", path.display()))?;
        let v: Value = serde_json::from_str(&text).map_err(|e| {
            format!(
                "Error parsing {}:{}:{}: {e}",
                path.display(),
                e.line(),
                e.column()
            )
        })?;
        if let Some(s) = v.get("service") {
            out.push(s.clone());
        } else if let Some(list) = v.get("services").and_then(Value::as_array) {
            out.extend(list.iter().cloned());
        } else {
            return Err(format!(
                "Error parsing {}: expected {{\"service\": {{...}}}} or {{\"services\": [...]}}",
                path.display()
            ));
        }
    }
    if f.files.is_empty() {
        let mut s = serde_json::Map::new();
        if let Some(n) = &f.name {
            s.insert("Name".into(), n.clone().into());
        }
        if let Some(i) = &f.id {
            s.insert("ID".into(), i.clone().into());
        }
        if let Some(a) = &f.address {
            s.insert("Address".into(), a.clone().into());
        }
        if let Some(p) = f.port {
            s.insert("Port".into(), p.into());
        }
        if !f.tag.is_empty() {
            s.insert("Tags".into(), f.tag.clone().into());
        }
        out.push(Value::Object(s));
    }
    Ok(out)
}

fn field<'a>(v: &'a Value, names: &[&str]) -> Option<&'a str> {
    names.iter().find_map(|n| v.get(*n).and_then(Value::as_str))
}

pub fn services(cmd: ServicesCmd) -> CliResult {
    match cmd {
        ServicesCmd::Register(f) => {
            let defs = definitions(&f)?;
            let mut out = String::new();
            for d in defs {
                let name =
                    field(&d, &["Name", "name"]).ok_or("Error: a service needs a name (-name)")?;
                let name = name.to_string();
                call_ok(
                    &f.api,
                    "PUT",
                    "/v1/agent/service/register",
                    d.to_string().into_bytes(),
                )?;
                out.push_str(&format!("Registered service: {name}\n"));
            }
            Ok(out)
        }
        ServicesCmd::Deregister(f) => {
            let defs = definitions(&f)?;
            let mut out = String::new();
            for d in defs {
                let id = field(&d, &["ID", "id"])
                    .or_else(|| field(&d, &["Name", "name"]))
                    .ok_or("Error: give the service -id to deregister")?
                    .to_string();
                call_ok(
                    &f.api,
                    "PUT",
                    &format!("/v1/agent/service/deregister/{}", key_path(&id)),
                    vec![],
                )?;
                out.push_str(&format!("Deregistered service: {id}\n"));
            }
            Ok(out)
        }
    }
}

pub fn kv(cmd: KvCmd) -> CliResult {
    match cmd {
        KvCmd::Get {
            api,
            key,
            recurse,
            detailed,
        } => {
            let path = format!(
                "/v1/kv/{}{}",
                key_path(&key),
                if recurse { "?recurse" } else { "" }
            );
            let (status, body) = call(&api, "GET", &path, vec![])?;
            if status == 404 {
                return if recurse {
                    Ok(String::new())
                } else {
                    Err(format!("Error! No key exists at: {key}"))
                };
            }
            if status != 200 {
                return Err(format!(
                    "Error querying Consul agent: Unexpected response code: {status} ({})",
                    String::from_utf8_lossy(&body).trim()
                ));
            }
            let v = json(&body)?;
            if recurse {
                return Ok(format::kv_recurse(&v));
            }
            if detailed {
                return Ok(format::kv_detailed(&v[0]));
            }
            let mut value = String::from_utf8_lossy(&format::kv_value(&v[0])).into_owned();
            value.push('\n');
            Ok(value)
        }
        KvCmd::Put {
            api,
            key,
            value,
            flags,
            cas,
            modify_index,
        } => {
            let data = match value.as_deref() {
                None => Vec::new(),
                Some("-") => {
                    let mut b = Vec::new();
                    std::io::Read::read_to_end(&mut std::io::stdin(), &mut b)
                        .map_err(|e| format!("Error reading stdin: {e}"))?;
                    b
                }
                Some(v) if v.starts_with('@') => {
                    std::fs::read(&v[1..]).map_err(|e| format!("Error reading {}: {e}", &v[1..]))?
                }
                Some(v) => v.as_bytes().to_vec(),
            };
            let mut q = Vec::new();
            if let Some(f) = flags {
                q.push(format!("flags={f}"));
            }
            if cas {
                let Some(i) = modify_index else {
                    return Err("Error! Must specify -modify-index with -cas".into());
                };
                q.push(format!("cas={i}"));
            }
            let path = format!(
                "/v1/kv/{}{}{}",
                key_path(&key),
                if q.is_empty() { "" } else { "?" },
                q.join("&")
            );
            let body = call_ok(&api, "PUT", &path, data)?;
            if body.as_ref() == b"true" {
                Ok(format!("Success! Data written to: {key}\n"))
            } else {
                Err(format!("Error! Did not write to {key}: CAS failed"))
            }
        }
        KvCmd::Delete { api, key, recurse } => {
            let path = format!(
                "/v1/kv/{}{}",
                key_path(&key),
                if recurse { "?recurse" } else { "" }
            );
            call_ok(&api, "DELETE", &path, vec![])?;
            Ok(if recurse {
                format!("Success! Deleted keys with prefix: {key}\n")
            } else {
                format!("Success! Deleted key: {key}\n")
            })
        }
    }
}

pub fn reload(api: &ApiFlags) -> CliResult {
    call_ok(api, "PUT", "/v1/agent/reload", vec![])?;
    Ok("Configuration reload triggered\n".into())
}

pub fn leave(api: &ApiFlags) -> CliResult {
    call_ok(api, "PUT", "/v1/agent/leave", vec![])?;
    Ok("Graceful leave complete\n".into())
}

/// `join ADDR...`: each address through the agent; the count that worked, as Consul says.
pub fn join(api: &ApiFlags, addrs: &[String]) -> CliResult {
    let mut joined = 0;
    let mut errors = Vec::new();
    for a in addrs {
        let path = format!("/v1/agent/join/{}", key_path(a));
        match call_ok(api, "PUT", &path, vec![]) {
            Ok(_) => joined += 1,
            Err(e) => errors.push(format!("{a}: {e}")),
        }
    }
    if joined == 0 {
        return Err(format!("Error joining address(es): {}", errors.join("; ")));
    }
    Ok(format!(
        "Successfully joined cluster by contacting {joined} nodes.\n"
    ))
}

/// `keyring -install|-use|-remove KEY` (POST, PUT, DELETE on `/v1/operator/keyring`).
pub fn keyring(api: &ApiFlags, method: &str, key: &str) -> CliResult {
    let body = serde_json::to_vec(&serde_json::json!({ "Key": key })).unwrap_or_default();
    call_ok(api, method, "/v1/operator/keyring", body)?;
    let what = match method {
        "POST" => "Installing new gossip encryption key...",
        "PUT" => "Changing primary gossip encryption key...",
        _ => "Removing gossip encryption key...",
    };
    Ok(format!("==> {what}\n"))
}

/// `keyring -list`: the keys with how many members hold each, as Consul prints them.
pub fn keyring_list(api: &ApiFlags) -> CliResult {
    let v = json(&call_ok(api, "GET", "/v1/operator/keyring", vec![])?)?;
    let mut out = String::from("==> Gathering installed encryption keys...\n");
    for pool in v.as_array().into_iter().flatten() {
        let nodes = pool["NumNodes"].as_u64().unwrap_or(0);
        out.push_str(&format!(
            "\n{} (LAN):\n",
            pool["Datacenter"].as_str().unwrap_or("")
        ));
        let primary = pool["PrimaryKeys"].as_object();
        for (key, count) in pool["Keys"].as_object().into_iter().flatten() {
            let mark = match primary.and_then(|p| p.get(key)).and_then(|c| c.as_u64()) {
                Some(n) if n == nodes => " (primary)".to_string(),
                Some(n) => format!(" (primary on {n})"),
                None => String::new(),
            };
            out.push_str(&format!(
                "  {key}  [{}/{nodes}]{mark}\n",
                count.as_u64().unwrap_or(0)
            ));
        }
        for (node, msg) in pool["Messages"].as_object().into_iter().flatten() {
            out.push_str(&format!("  {node}: {}\n", msg.as_str().unwrap_or("")));
        }
    }
    Ok(out)
}

/// `operator raft list-peers`: the servers as Consul prints them.
pub fn raft_list_peers(api: &ApiFlags) -> CliResult {
    let v = json(&call_ok(
        api,
        "GET",
        "/v1/operator/raft/configuration",
        vec![],
    )?)?;
    let mut rows = vec![
        ["Node", "ID", "Address", "State", "Voter", "RaftProtocol"]
            .map(String::from)
            .to_vec(),
    ];
    for s in v["Servers"].as_array().into_iter().flatten() {
        let text = |k: &str| s[k].as_str().unwrap_or("").to_string();
        rows.push(vec![
            text("Node"),
            text("ID"),
            text("Address"),
            if s["Leader"] == true {
                "leader"
            } else {
                "follower"
            }
            .into(),
            s["Voter"].as_bool().unwrap_or(false).to_string(),
            text("ProtocolVersion"),
        ]);
    }
    Ok(format::columns(&rows))
}

/// `operator raft remove-peer -id ID | -address IP:PORT`.
pub fn raft_remove_peer(api: &ApiFlags, id: Option<&str>, address: Option<&str>) -> CliResult {
    let query = match (id, address) {
        (Some(id), _) => format!("id={id}"),
        (None, Some(a)) => format!("address={a}"),
        (None, None) => return Err("remove-peer: give -id or -address".into()),
    };
    call_ok(
        api,
        "DELETE",
        &format!("/v1/operator/raft/peer?{query}"),
        vec![],
    )?;
    Ok(format!("Removed peer with {}\n", query.replace('=', " ")))
}

pub fn info(api: &ApiFlags) -> CliResult {
    let v = json(&call_ok(api, "GET", "/v1/agent/self", vec![])?)?;
    Ok(format::info(&v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_api_address_comes_from_flag_then_environment() {
        let f = ApiFlags {
            http_addr: Some("10.0.0.1:8500".into()),
            token: None,
            ca_file: None,
        };
        assert_eq!(f.base(), "http://10.0.0.1:8500");
        let f = ApiFlags {
            http_addr: Some("http://box:1/".into()),
            token: Some("t".into()),
            ca_file: None,
        };
        assert_eq!(f.token().as_deref(), Some("t"));
        assert_eq!(f.base(), "http://box:1");
    }

    #[test]
    fn kv_keys_are_escaped_but_keep_their_slashes() {
        assert_eq!(key_path("/app/a b?c"), "app/a%20b%3Fc");
    }
}
