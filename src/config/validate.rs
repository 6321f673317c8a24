//! Merges parsed files and flags, then checks every value. Each error points at the file,
//! line and column of the culprit and says what would be accepted.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use super::file::{CheckFile, FileConfig, NodeFile, ServiceFile, StreamFile};
use super::locate::{Step, locate};
use super::{
    AclSettings, AgentConfig, AgentFlags, ConfigError, DEFAULT_MEDIA_IDLE_TIMEOUT, DnsConfig,
    ExternalNode, HostInfo, Ports, ServiceDef, Source, StreamSource, StreamSpec, TlsSettings,
    VideoCodec, parse_duration, parse_source,
};
use crate::board::{Chosen, SelectError, Selection};
use crate::catalog::{Check, CheckDefinition, Health, Node, Service, Weights};

/// Where a value came from: a file and the JSON path inside it.
struct At<'a> {
    source: &'a Source,
    path: Vec<Step>,
}

impl<'a> At<'a> {
    fn root(source: &'a Source) -> At<'a> {
        At {
            source,
            path: Vec::new(),
        }
    }

    fn key(&self, k: &str) -> At<'a> {
        let mut path = self.path.clone();
        path.push(Step::Key(k.into()));
        At {
            source: self.source,
            path,
        }
    }

    fn index(&self, i: usize) -> At<'a> {
        let mut path = self.path.clone();
        path.push(Step::Index(i));
        At {
            source: self.source,
            path,
        }
    }

    fn field(&self) -> String {
        let mut s = String::new();
        for step in &self.path {
            match step {
                Step::Key(k) => {
                    if !s.is_empty() {
                        s.push('.');
                    }
                    s.push_str(k);
                }
                Step::Index(i) => s.push_str(&format!("[{i}]")),
            }
        }
        s
    }

    fn position(&self) -> String {
        let (l, c) = locate(&self.source.text, &self.path);
        format!("{}:{l}:{c}", self.source.name.display())
    }

    fn err(&self, message: impl Into<String>) -> ConfigError {
        let (line, column) = locate(&self.source.text, &self.path);
        ConfigError {
            file: Some(self.source.name.clone()),
            line,
            column,
            field: self.field(),
            message: message.into(),
        }
    }
}

/// A scalar setting and the place that set it last (None: a flag or the default).
struct Setting<'a, T> {
    value: Option<T>,
    at: Option<At<'a>>,
}

impl<'a, T> Setting<'a, T> {
    fn new() -> Self {
        Setting {
            value: None,
            at: None,
        }
    }

    fn set(&mut self, v: Option<T>, at: At<'a>) {
        if v.is_some() {
            self.value = v;
            self.at = Some(at);
        }
    }

    fn flag(&mut self, v: Option<T>) {
        if v.is_some() {
            self.value = v;
            self.at = None;
        }
    }

    /// An error at the place this was set, or on the flag.
    fn err(&self, flag: &str, message: impl Into<String>) -> ConfigError {
        match &self.at {
            Some(at) => at.err(message),
            None => ConfigError::flag(flag, message),
        }
    }
}

pub fn build(
    flags: &AgentFlags,
    sources: &[Source],
    host: &HostInfo,
) -> Result<AgentConfig, ConfigError> {
    let parsed: Vec<(&Source, FileConfig)> = sources
        .iter()
        .map(|s| parse_source(&s.name, &s.text).map(|c| (s, c)))
        .collect::<Result<_, _>>()?;

    let mut node_name = Setting::new();
    let mut datacenter = Setting::new();
    let mut domain = Setting::new();
    let mut data_dir = Setting::new();
    let mut server = Setting::new();
    let mut bootstrap = Setting::new();
    let mut bootstrap_expect = Setting::new();
    let mut bind = Setting::new();
    let mut client = Setting::new();
    let mut advertise = Setting::new();
    let mut ports: [Setting<i64>; 5] = [
        Setting::new(),
        Setting::new(),
        Setting::new(),
        Setting::new(),
        Setting::new(),
    ];
    let mut addr_dns = Setting::new();
    let mut addr_http = Setting::new();
    let mut addr_https = Setting::new();
    let mut encrypt = Setting::new();
    let mut reconnect_timeout = Setting::new();
    let mut media_idle_timeout = Setting::new();
    let mut log_level = Setting::new();
    let mut board = Setting::new();
    let mut script_checks = Setting::new();
    let mut node_ttl = Setting::new();
    let mut allow_stale = Setting::new();
    let mut only_passing = Setting::new();
    let mut enable_truncate = Setting::new();
    let mut udp_answer_limit = Setting::new();
    let mut recursor_timeout = Setting::new();
    let mut service_ttl: Vec<(String, String, At)> = Vec::new();
    let mut recursors: Vec<(String, Option<At>)> = Vec::new();
    let mut retry_join = Vec::new();
    let mut join = Vec::new();
    let mut node_meta = BTreeMap::new();
    let mut cert_file = Setting::new();
    let mut key_file = Setting::new();
    let mut ca_file = Setting::new();
    let mut verify_incoming = Setting::new();
    let mut acl_enabled = Setting::new();
    let mut acl_policy = Setting::new();
    let mut acl_token = Setting::new();
    // Services and checks by scope (0 = this agent's node).
    let mut services: Vec<(usize, &ServiceFile, At)> = Vec::new();
    let mut checks: Vec<(usize, &CheckFile, At)> = Vec::new();
    let mut nodes: BTreeMap<usize, (&NodeFile, At)> = BTreeMap::new();
    let mut streams: Vec<(&StreamFile, At)> = Vec::new();

    for (src, c) in &parsed {
        let root = At::root(src);
        node_name.set(c.node_name.clone(), root.key("node_name"));
        datacenter.set(c.datacenter.clone(), root.key("datacenter"));
        domain.set(c.domain.clone(), root.key("domain"));
        data_dir.set(c.data_dir.clone(), root.key("data_dir"));
        server.set(c.server, root.key("server"));
        bootstrap.set(c.bootstrap, root.key("bootstrap"));
        bootstrap_expect.set(c.bootstrap_expect, root.key("bootstrap_expect"));
        bind.set(c.bind_addr.clone(), root.key("bind_addr"));
        client.set(c.client_addr.clone(), root.key("client_addr"));
        advertise.set(c.advertise_addr.clone(), root.key("advertise_addr"));
        if let Some(p) = &c.ports {
            let at = root.key("ports");
            for (i, (v, k)) in [
                (p.dns, "dns"),
                (p.http, "http"),
                (p.https, "https"),
                (p.serf_lan, "serf_lan"),
                (p.server, "server"),
            ]
            .into_iter()
            .enumerate()
            {
                ports[i].set(v.map(i64::from), at.key(k));
            }
        }
        if let Some(a) = &c.addresses {
            let at = root.key("addresses");
            addr_dns.set(a.dns.clone(), at.key("dns"));
            addr_http.set(a.http.clone(), at.key("http"));
            addr_https.set(a.https.clone(), at.key("https"));
        }
        for (i, r) in c.recursors.iter().flatten().enumerate() {
            recursors.push((r.clone(), Some(root.key("recursors").index(i))));
        }
        if let Some(d) = &c.dns_config {
            let at = root.key("dns_config");
            node_ttl.set(d.node_ttl.clone(), at.key("node_ttl"));
            allow_stale.set(d.allow_stale, at.key("allow_stale"));
            only_passing.set(d.only_passing, at.key("only_passing"));
            enable_truncate.set(d.enable_truncate, at.key("enable_truncate"));
            udp_answer_limit.set(d.udp_answer_limit, at.key("udp_answer_limit"));
            recursor_timeout.set(d.recursor_timeout.clone(), at.key("recursor_timeout"));
            if let Some(m) = &d.max_stale {
                parse_duration(m).map_err(|e| at.key("max_stale").err(e))?;
            }
            for (k, v) in d.service_ttl.iter().flatten() {
                service_ttl.push((k.clone(), v.clone(), at.key("service_ttl").key(k)));
            }
        }
        if let Some(d) = c.tls.as_ref().and_then(|t| t.defaults.as_ref()) {
            let at = root.key("tls").key("defaults");
            cert_file.set(d.cert_file.clone(), at.key("cert_file"));
            key_file.set(d.key_file.clone(), at.key("key_file"));
            ca_file.set(d.ca_file.clone(), at.key("ca_file"));
            verify_incoming.set(d.verify_incoming, at.key("verify_incoming"));
        }
        if let Some(a) = &c.acl {
            let at = root.key("acl");
            acl_enabled.set(a.enabled, at.key("enabled"));
            acl_policy.set(a.default_policy.clone(), at.key("default_policy"));
            if let Some(t) = &a.tokens {
                acl_token.set(
                    t.initial_management.clone(),
                    at.key("tokens").key("initial_management"),
                );
            }
        }
        retry_join.extend(c.retry_join.iter().flatten().cloned());
        join.extend(c.start_join.iter().flatten().cloned());
        encrypt.set(c.encrypt.clone(), root.key("encrypt"));
        reconnect_timeout.set(c.reconnect_timeout.clone(), root.key("reconnect_timeout"));
        media_idle_timeout.set(c.media_idle_timeout.clone(), root.key("media_idle_timeout"));
        log_level.set(c.log_level.clone(), root.key("log_level"));
        board.set(c.board.clone(), root.key("board"));
        script_checks.set(c.enable_script_checks, root.key("enable_script_checks"));
        node_meta.extend(
            c.node_meta
                .iter()
                .flatten()
                .map(|(k, v)| (k.clone(), v.clone())),
        );
        if let Some(s) = &c.service {
            services.push((src.scope, s, root.key("service")));
        }
        for (i, s) in c.services.iter().flatten().enumerate() {
            services.push((src.scope, s, root.key("services").index(i)));
        }
        if let Some(ch) = &c.check {
            checks.push((src.scope, ch, root.key("check")));
        }
        if let Some(st) = &c.stream {
            streams.push((st, root.key("stream")));
        }
        for (i, st) in c.streams.iter().flatten().enumerate() {
            streams.push((st, root.key("streams").index(i)));
        }
        for (i, ch) in c.checks.iter().flatten().enumerate() {
            checks.push((src.scope, ch, root.key("checks").index(i)));
        }
        if let Some(n) = &c.node {
            let at = root.key("node");
            if src.scope == 0 {
                return Err(at.err(
                    "a `node` block defines an external node and belongs in a sub-directory of a config dir, \
                     with that node's services; this agent's own node is set by node_name and advertise_addr",
                ));
            }
            if let Some((_, first)) = nodes.get(&src.scope) {
                return Err(at.err(format!(
                    "a second `node` block in the same directory (the first is at {})",
                    first.position()
                )));
            }
            nodes.insert(src.scope, (n, at));
        }
    }

    // Flags win over files.
    board.flag(flags.board.clone());
    node_name.flag(flags.node.clone());
    datacenter.flag(flags.datacenter.clone());
    domain.flag(flags.domain.clone());
    data_dir.flag(
        flags
            .data_dir
            .as_ref()
            .map(|p| p.to_string_lossy().into_owned()),
    );
    server.flag(flags.server.then_some(true));
    bootstrap.flag(flags.bootstrap.then_some(true));
    bootstrap_expect.flag(flags.bootstrap_expect);
    bind.flag(flags.bind.clone());
    client.flag(flags.client.clone());
    advertise.flag(flags.advertise.clone());
    for (i, v) in [
        flags.dns_port,
        flags.http_port,
        flags.https_port,
        flags.serf_lan_port,
        flags.server_port,
    ]
    .into_iter()
    .enumerate()
    {
        ports[i].flag(v.map(i64::from));
    }
    recursors.extend(flags.recursor.iter().map(|r| (r.clone(), None)));
    retry_join.extend(flags.retry_join.iter().cloned());
    join.extend(flags.join.iter().cloned());
    encrypt.flag(flags.encrypt.clone());
    log_level.flag(flags.log_level.clone());

    let dev = flags.dev;

    // ---- validate ----
    let node_name_v = node_name
        .value
        .clone()
        .unwrap_or_else(|| host.hostname.clone());
    if !is_dns_label(&node_name_v) {
        return Err(node_name.err(
            "node",
            format!("node name {node_name_v:?}: expected a DNS label (letters, digits, '-', at most 63 characters)"),
        ));
    }
    let node_name = node_name_v;
    let datacenter_v = datacenter.value.clone().unwrap_or_else(|| "dc1".into());
    if datacenter_v.is_empty()
        || !datacenter_v
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
    {
        return Err(datacenter.err(
            "datacenter",
            format!("datacenter {datacenter_v:?}: expected lower-case letters, digits, '-' or '_'"),
        ));
    }
    let datacenter = datacenter_v;
    let domain_value = domain.value.clone().unwrap_or_else(|| "consul.".into());
    let domain_norm = domain_value.trim_matches('.').to_ascii_lowercase();
    if domain_norm.is_empty()
        || domain_norm.len() > 200
        || !domain_norm.split('.').all(is_dns_label)
    {
        return Err(domain.err(
            "domain",
            format!("invalid domain {domain_value:?}: expected a DNS name such as \"consul.\""),
        ));
    }
    let data_dir = data_dir.value.clone().map(std::path::PathBuf::from);
    if data_dir.is_none() && !dev {
        return Err(ConfigError::flag(
            "data-dir",
            "must be set (or run with -dev for an in-memory agent)",
        ));
    }
    let server_v = server.value.unwrap_or(false) || dev;
    let bootstrap_v = bootstrap.value.unwrap_or(false) || (dev && bootstrap_expect.value.is_none());
    if bootstrap_v && bootstrap_expect.value.is_some() {
        return Err(bootstrap_expect.err("bootstrap-expect", "cannot be combined with bootstrap"));
    }
    if let Some(n) = bootstrap_expect.value {
        if n == 0 {
            return Err(bootstrap_expect.err("bootstrap-expect", "must be at least 1"));
        }
        if !server_v {
            return Err(
                bootstrap_expect.err("bootstrap-expect", "only servers bootstrap: add -server")
            );
        }
    }
    if bootstrap_v && !server_v {
        return Err(bootstrap.err("bootstrap", "only servers bootstrap: add -server"));
    }

    let default_local: IpAddr = Ipv4Addr::LOCALHOST.into();
    let bind_addr = match &bind.value {
        Some(s) => parse_ip(s).map_err(|m| bind.err("bind", m))?,
        None if dev => default_local,
        None => Ipv4Addr::UNSPECIFIED.into(),
    };
    let client_addrs = match &client.value {
        Some(s) => parse_ip_list(s).map_err(|m| client.err("client", m))?,
        None => vec![default_local],
    };
    let advertise_addr = match &advertise.value {
        Some(s) => parse_ip(s).map_err(|m| advertise.err("advertise", m))?,
        None if !bind_addr.is_unspecified() => bind_addr,
        None => pick_advertise(&host.addresses),
    };
    if advertise_addr.is_unspecified() {
        return Err(advertise.err(
            "advertise",
            "cannot be 0.0.0.0 or ::; give the address other nodes reach this one at",
        ));
    }
    let names = ["dns", "http", "https", "serf_lan", "server"];
    let flag_names = [
        "dns-port",
        "http-port",
        "https-port",
        "serf-lan-port",
        "server-port",
    ];
    // Dev mode serves the API and the status page over HTTPS too (self-signed).
    let https_default = dev.then_some(8501);
    let defaults = [
        Some(8600),
        Some(8500),
        https_default,
        Some(8301),
        Some(8300),
    ];
    let mut port_values = [None; 5];
    for i in 0..5 {
        port_values[i] = match ports[i].value {
            None => defaults[i],
            Some(-1) => None,
            Some(p) if (0..=65535).contains(&p) => Some(p as u16),
            Some(p) => {
                return Err(ports[i].err(
                    flag_names[i],
                    format!(
                        "port {p} for {} is out of range: expected 0-65535, or -1 to disable",
                        names[i]
                    ),
                ));
            }
        };
    }
    let ports_v = Ports {
        dns: port_values[0],
        http: port_values[1],
        https: port_values[2],
        serf_lan: port_values[3],
        server: port_values[4],
    };
    let listen = |s: &Setting<String>, flag: &str| -> Result<Vec<IpAddr>, ConfigError> {
        match &s.value {
            Some(v) => parse_ip_list(v).map_err(|m| s.err(flag, m)),
            None => Ok(client_addrs.clone()),
        }
    };
    let dns_addrs = listen(&addr_dns, "addresses.dns")?;
    let http_addrs = listen(&addr_http, "addresses.http")?;
    let https_addrs = listen(&addr_https, "addresses.https")?;

    let mut recursor_addrs = Vec::new();
    for (r, at) in &recursors {
        let a = parse_recursor(r).map_err(|m| match at {
            Some(at) => at.err(m),
            None => ConfigError::flag("recursor", m),
        })?;
        recursor_addrs.push(a);
    }

    let ttl_s = |s: &Setting<String>, flag: &str| -> Result<u32, ConfigError> {
        match &s.value {
            None => Ok(0),
            Some(v) => parse_duration(v)
                .map(|ms| (ms / 1000).min(u32::MAX as u64) as u32)
                .map_err(|m| s.err(flag, m)),
        }
    };
    let node_ttl_s = ttl_s(&node_ttl, "dns_config.node_ttl")?;
    let mut service_ttl_s = BTreeMap::new();
    for (k, v, at) in &service_ttl {
        let ms = parse_duration(v).map_err(|m| at.err(m))?;
        service_ttl_s.insert(
            k.to_ascii_lowercase(),
            (ms / 1000).min(u32::MAX as u64) as u32,
        );
    }
    let udp_limit = match udp_answer_limit.value {
        None => 3,
        Some(n) if (1..=8).contains(&n) => n as usize,
        Some(n) => {
            return Err(udp_answer_limit.err(
                "dns_config.udp_answer_limit",
                format!("{n} is out of range: expected 1-8 (answers in a UDP reply without EDNS)"),
            ));
        }
    };
    let recursor_timeout_ms = match &recursor_timeout.value {
        None => 2000,
        Some(v) => match parse_duration(v) {
            Ok(0) => {
                return Err(
                    recursor_timeout.err("dns_config.recursor_timeout", "must be more than 0")
                );
            }
            Ok(ms) => ms,
            Err(m) => return Err(recursor_timeout.err("dns_config.recursor_timeout", m)),
        },
    };

    let encrypt_v = match &encrypt.value {
        None => None,
        Some(k) => {
            use base64::Engine;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(k.trim())
                .map_err(|e| {
                    encrypt.err(
                        "encrypt",
                        format!("not valid base64 ({e}); `outpost keygen` makes a key"),
                    )
                })?;
            if bytes.len() != 32 {
                return Err(encrypt.err(
                    "encrypt",
                    format!(
                        "key is {} bytes: expected 32 bytes, base64-encoded (`outpost keygen`)",
                        bytes.len()
                    ),
                ));
            }
            Some(bytes)
        }
    };
    // Consul's reconnect_timeout: how long a failed member is kept before it is reaped
    // (Consul's floor is 8h; outpost takes anything from 1 s, for tests and small sites).
    let reconnect_timeout_v = match &reconnect_timeout.value {
        None => std::time::Duration::from_secs(72 * 3600),
        Some(v) => match parse_duration(v) {
            Ok(ms) if ms >= 1000 => std::time::Duration::from_millis(ms),
            Ok(_) => {
                return Err(reconnect_timeout.err(
                    "reconnect_timeout",
                    format!("{v:?} is too short: at least 1s"),
                ));
            }
            Err(m) => return Err(reconnect_timeout.err("reconnect_timeout", m)),
        },
    };
    // How long the media process runs with nobody watching (outpost's own key): it then
    // stops, and the next viewer starts it again. 0 keeps it running.
    let media_idle_timeout_v = match &media_idle_timeout.value {
        None => Some(DEFAULT_MEDIA_IDLE_TIMEOUT),
        Some(v) => match parse_duration(v) {
            Ok(0) => None,
            Ok(ms) => Some(std::time::Duration::from_millis(ms)),
            Err(m) => return Err(media_idle_timeout.err("media_idle_timeout", m)),
        },
    };
    let level = log_level
        .value
        .clone()
        .unwrap_or_else(|| "info".into())
        .to_ascii_lowercase();
    let level = match level.as_str() {
        "trace" | "debug" | "info" | "warn" | "error" => level,
        "err" => "error".into(),
        "warning" => "warn".into(),
        other => {
            return Err(log_level.err(
                "log-level",
                format!("unknown level {other:?}: expected trace, debug, info, warn or error"),
            ));
        }
    };
    let enable_script_checks = script_checks.value.unwrap_or(false);

    // ---- TLS and ACL ----
    let file_path = |s: &Setting<String>,
                     flag: &str|
     -> Result<Option<std::path::PathBuf>, ConfigError> {
        match &s.value {
            Some(v) if v.trim().is_empty() => Err(s.err(flag, "is empty: expected a file path")),
            v => Ok(v.as_ref().map(std::path::PathBuf::from)),
        }
    };
    let tls = TlsSettings {
        cert_file: file_path(&cert_file, "tls.defaults.cert_file")?,
        key_file: file_path(&key_file, "tls.defaults.key_file")?,
        ca_file: file_path(&ca_file, "tls.defaults.ca_file")?,
        verify_incoming: verify_incoming.value.unwrap_or(false),
    };
    if tls.cert_file.is_some() != tls.key_file.is_some() {
        let (s, flag, missing) = if tls.cert_file.is_some() {
            (&cert_file, "tls.defaults.cert_file", "key_file")
        } else {
            (&key_file, "tls.defaults.key_file", "cert_file")
        };
        return Err(s.err(flag, format!("needs tls.defaults.{missing} too")));
    }
    if tls.verify_incoming && tls.ca_file.is_none() {
        return Err(verify_incoming.err(
            "tls.defaults.verify_incoming",
            "needs tls.defaults.ca_file: the CA that client certificates must chain to",
        ));
    }
    let acl_on = acl_enabled.value.unwrap_or(false);
    let deny_by_default = match acl_policy.value.as_deref() {
        None | Some("allow") => false,
        Some("deny") => true,
        Some(other) => {
            return Err(acl_policy.err(
                "acl.default_policy",
                format!("{other:?}: expected \"allow\" or \"deny\""),
            ));
        }
    };
    let management_token = acl_token.value.clone().unwrap_or_default();
    if acl_on && management_token.trim().is_empty() {
        return Err(acl_enabled.err(
            "acl.enabled",
            "needs acl.tokens.initial_management: the token that writes (and, with default_policy \"deny\", reads) must carry",
        ));
    }
    let acl = AclSettings {
        enabled: acl_on,
        deny_by_default,
        management_token,
    };

    for (i, j) in retry_join.iter().chain(join.iter()).enumerate() {
        if j.trim().is_empty() {
            return Err(ConfigError::flag(
                "retry-join",
                format!("join address #{} is empty", i + 1),
            ));
        }
    }

    // ---- nodes, services and checks ----
    let mut external: BTreeMap<usize, ExternalNode> = BTreeMap::new();
    for (scope, (n, at)) in &nodes {
        let name = n.name.clone().unwrap_or_default();
        if name.is_empty() || !is_dns_label(&name) {
            return Err(at.key("name").err(format!(
                "node name {name:?}: expected a DNS label (letters, digits, '-')"
            )));
        }
        let address = n.address.clone().unwrap_or_default();
        if address.is_empty() || !is_ip_or_host(&address) {
            return Err(at.key("address").err(format!(
                "address {address:?}: expected an IP address or a host name"
            )));
        }
        let dc = n.datacenter.clone().unwrap_or_else(|| datacenter.clone());
        if dc != datacenter {
            return Err(at.key("datacenter").err(format!(
                "node in datacenter {dc:?}, but this agent serves {datacenter:?}: a config dir can only hold nodes of its own datacenter"
            )));
        }
        let node = Node {
            name,
            address,
            datacenter: dc,
            tagged_addresses: n.tagged_addresses.clone().unwrap_or_default().into(),
            meta: n.meta.clone().unwrap_or_default().into(),
        };
        if node.name.eq_ignore_ascii_case(&node_name) {
            return Err(at
                .key("name")
                .err(format!("{:?} is this agent's own node name", node.name)));
        }
        if let Some(other) = external
            .values()
            .find(|e| e.node.name.eq_ignore_ascii_case(&node.name))
        {
            return Err(at
                .key("name")
                .err(format!("node {:?} is defined twice", other.node.name)));
        }
        external.insert(
            *scope,
            ExternalNode {
                node,
                services: Vec::new(),
            },
        );
    }

    let mut local_services: Vec<ServiceDef> = Vec::new();
    // (scope-node key, lower-case id) -> where it was first defined
    let mut seen_ids: HashMap<(usize, String), String> = HashMap::new();
    for (scope, s, at) in &services {
        let owner = if external.contains_key(scope) {
            *scope
        } else {
            0
        };
        let def = service_def(s, at, enable_script_checks)?;
        let id_at = if s.id.is_some() {
            at.key("id")
        } else {
            at.key("name")
        };
        if let Some(first) = seen_ids.insert(
            (owner, def.service.id.to_ascii_lowercase()),
            id_at.position(),
        ) {
            return Err(id_at.err(format!(
                "duplicate service ID {:?}: already defined at {first}; give one of them a different \"id\"",
                def.service.id
            )));
        }
        match external.get_mut(&owner) {
            Some(e) => e.services.push(def),
            None => local_services.push(def),
        }
    }

    let mut node_checks = Vec::new();
    for (scope, c, at) in &checks {
        if external.contains_key(scope) {
            return Err(at.err("checks of external nodes are not run by this agent; attach them to a service of this agent"));
        }
        let check = check_def(c, at, None, 0, enable_script_checks)?;
        if !check.service_id.is_empty() {
            let Some(def) = local_services
                .iter_mut()
                .find(|d| d.service.id == check.service_id)
            else {
                return Err(at.key("service_id").err(format!(
                    "service {:?} is not defined on this agent",
                    check.service_id
                )));
            };
            def.checks.push(check);
        } else {
            node_checks.push(check);
        }
    }

    // The board decides the camera defaults of the streams.
    let requested = board.value.as_deref().map(|v| {
        let how = match &board.at {
            Some(at) => Chosen::ConfigFile(at.position()),
            None => Chosen::Flag,
        };
        (v, how)
    });
    let board_v = crate::board::select(requested, &host.device_tree).map_err(|e| match e {
        SelectError::Unknown(m) => board.err("board", m),
        SelectError::Profile(e) => e,
    })?;

    Ok(AgentConfig {
        dev,
        node_name,
        datacenter,
        domain: domain_norm,
        data_dir,
        server: server_v,
        bootstrap: bootstrap_v,
        bootstrap_expect: bootstrap_expect.value,
        bind_addr,
        client_addrs,
        advertise_addr,
        ports: ports_v,
        dns_addrs,
        http_addrs,
        https_addrs,
        tls,
        acl,
        recursors: recursor_addrs,
        dns: DnsConfig {
            node_ttl_s,
            service_ttl_s,
            allow_stale: allow_stale.value.unwrap_or(true),
            only_passing: only_passing.value.unwrap_or(false),
            enable_truncate: enable_truncate.value.unwrap_or(false),
            udp_answer_limit: udp_limit,
            recursor_timeout_ms,
        },
        retry_join,
        join,
        encrypt: encrypt_v,
        reconnect_timeout: reconnect_timeout_v,
        media_idle_timeout: media_idle_timeout_v,
        log_level: level,
        enable_script_checks,
        node_meta,
        services: local_services,
        checks: node_checks,
        external_nodes: external.into_values().collect(),
        streams: stream_specs(&streams, dev, &board_v)?,
        board: board_v,
        files: sources.iter().map(|s| s.name.clone()).collect(),
    })
}

fn service_def(s: &ServiceFile, at: &At, scripts: bool) -> Result<ServiceDef, ConfigError> {
    let name = s.name.clone().unwrap_or_default();
    if name.trim().is_empty() {
        return Err(at.key("name").err("a service needs a \"name\""));
    }
    if !is_dns_label(&name) {
        // Consul accepts such names but warns: they cannot be looked up in DNS.
        tracing::warn!(
            "{}: service name {name:?} is not a valid DNS label; it will not be discoverable via DNS",
            at.key("name").position()
        );
    }
    let id = s.id.clone().unwrap_or_else(|| name.clone());
    if id.is_empty() {
        return Err(at
            .key("id")
            .err("service ID cannot be empty; leave \"id\" out to use the name"));
    }
    let port = match s.port {
        None => 0,
        Some(p) if (0..=65535).contains(&p) => p as u16,
        Some(p) => {
            return Err(at
                .key("port")
                .err(format!("port {p} is out of range: expected 0-65535")));
        }
    };
    let address = s.address.clone().unwrap_or_default();
    if !address.is_empty() && !is_ip_or_host(&address) {
        return Err(at.key("address").err(format!(
            "address {address:?}: expected an IP address or a host name"
        )));
    }
    let weights = match &s.weights {
        None => Weights::default(),
        Some(w) => {
            let passing = w.passing.unwrap_or(1);
            let warning = w.warning.unwrap_or(1);
            if !(1..=65535).contains(&passing) {
                return Err(at
                    .key("weights")
                    .key("passing")
                    .err(format!("{passing} is out of range: expected 1-65535")));
            }
            if !(0..=65535).contains(&warning) {
                return Err(at
                    .key("weights")
                    .key("warning")
                    .err(format!("{warning} is out of range: expected 0-65535")));
            }
            Weights {
                passing: passing as u32,
                warning: warning as u32,
            }
        }
    };
    let mut checks = Vec::new();
    let mut all: Vec<(&CheckFile, At)> = Vec::new();
    if let Some(c) = &s.check {
        all.push((c, at.key("check")));
    }
    for (i, c) in s.checks.iter().flatten().enumerate() {
        all.push((c, at.key("checks").index(i)));
    }
    let numbered = all.len() > 1;
    for (i, (c, cat)) in all.iter().enumerate() {
        let n = if numbered { i + 1 } else { 0 };
        let check = check_def(c, cat, Some(&id), n, scripts)?;
        if checks.iter().any(|o: &Check| o.id == check.id) {
            return Err(cat
                .key("id")
                .err(format!("duplicate check ID {:?} in this service", check.id)));
        }
        checks.push(check);
    }
    Ok(ServiceDef {
        service: Service {
            id,
            name,
            tags: s.tags.clone().unwrap_or_default(),
            address,
            port,
            meta: s.meta.clone().unwrap_or_default().into(),
            weights,
            enable_tag_override: s.enable_tag_override.unwrap_or(false),
        },
        checks,
    })
}

/// A check from a file. `service` is the owning service's ID for checks inside a service
/// definition; `n` numbers the checks of a service with several (Consul's `service:web:2`).
fn check_def(
    c: &CheckFile,
    at: &At,
    service: Option<&str>,
    n: usize,
    scripts: bool,
) -> Result<Check, ConfigError> {
    let kinds: Vec<&str> = [
        (c.http.is_some(), "http"),
        (c.tcp.is_some(), "tcp"),
        (c.ttl.is_some(), "ttl"),
        (c.args.is_some(), "args"),
    ]
    .into_iter()
    .filter_map(|(set, k)| set.then_some(k))
    .collect();
    if kinds.is_empty() {
        return Err(at.err("a check needs one of \"http\", \"tcp\", \"ttl\" or \"args\""));
    }
    if kinds.len() > 1 {
        return Err(at.err(format!(
            "a check has exactly one kind, but this one sets {}",
            kinds.join(" and ")
        )));
    }
    let dur = |v: &Option<String>, k: &str| -> Result<u64, ConfigError> {
        match v {
            None => Ok(0),
            Some(v) => parse_duration(v).map_err(|m| at.key(k).err(m)),
        }
    };
    let interval_ms = dur(&c.interval, "interval")?;
    let timeout_ms = dur(&c.timeout, "timeout")?;
    let ttl_ms = dur(&c.ttl, "ttl")?;
    let dereg = dur(
        &c.deregister_critical_service_after,
        "deregister_critical_service_after",
    )?;
    if kinds[0] != "ttl" && interval_ms == 0 {
        return Err(at.key("interval").err(format!(
            "a {} check needs an \"interval\", such as \"10s\"",
            kinds[0]
        )));
    }
    if kinds[0] == "ttl" && ttl_ms == 0 {
        return Err(at
            .key("ttl")
            .err("a ttl check needs a ttl above 0, such as \"30s\""));
    }
    if let Some(args) = &c.args {
        if args.is_empty() {
            return Err(at
                .key("args")
                .err("needs the command and its arguments, such as [\"/bin/check\", \"-q\"]"));
        }
        if !scripts {
            return Err(at.key("args").err(
                "script checks are disabled: set \"enable_script_checks\": true to run them",
            ));
        }
    }
    if let Some(tcp) = &c.tcp
        && !tcp.contains(':')
    {
        return Err(at.key("tcp").err(format!("{tcp:?}: expected host:port")));
    }
    if let Some(http) = &c.http
        && !(http.starts_with("http://") || http.starts_with("https://"))
    {
        return Err(at
            .key("http")
            .err(format!("{http:?}: expected an http:// or https:// URL")));
    }
    let status = match &c.status {
        None => Health::Critical,
        Some(s) => Health::parse(s).ok_or_else(|| {
            at.key("status").err(format!(
                "{s:?}: expected \"passing\", \"warning\" or \"critical\""
            ))
        })?,
    };
    let service_id = match (service, &c.service_id) {
        (Some(owner), Some(sid)) if sid != owner => {
            return Err(at.key("service_id").err(format!(
                "{sid:?} differs from the enclosing service {owner:?}"
            )));
        }
        (Some(owner), _) => owner.to_string(),
        (None, sid) => sid.clone().unwrap_or_default(),
    };
    let name = c.name.clone().unwrap_or_else(|| match service {
        Some(s) => format!("Service '{s}' check"),
        None => String::new(),
    });
    let id = match (&c.id, service) {
        (Some(id), _) => id.clone(),
        (None, Some(s)) if n > 0 => format!("service:{s}:{n}"),
        (None, Some(s)) => format!("service:{s}"),
        (None, None) => name.clone(),
    };
    if id.is_empty() {
        return Err(at.err("a check needs an \"id\" or a \"name\""));
    }
    Ok(Check {
        id,
        name,
        status,
        notes: c.notes.clone().unwrap_or_default(),
        output: String::new(),
        service_id,
        definition: CheckDefinition {
            http: c.http.clone().unwrap_or_default(),
            method: c.method.clone().unwrap_or_default(),
            header: c.header.clone().unwrap_or_default(),
            tcp: c.tcp.clone().unwrap_or_default(),
            args: c.args.clone().unwrap_or_default(),
            interval_ms,
            timeout_ms,
            ttl_ms,
            deregister_critical_service_after_ms: dereg,
            tls_skip_verify: c.tls_skip_verify.unwrap_or(false),
        },
    })
}

/// Validates the streams; in dev mode a `test` stream is added unless one is defined. A
/// camera stream that names no device, size or rate gets the board's camera's.
fn stream_specs(
    streams: &[(&StreamFile, At)],
    dev: bool,
    board: &Selection,
) -> Result<Vec<StreamSpec>, ConfigError> {
    let mut out: Vec<StreamSpec> = Vec::new();
    let mut seen: HashMap<String, String> = HashMap::new();
    // UDP ports the rtp streams listen on: two listeners on one port (GStreamer sets
    // SO_REUSEADDR) would each get a share of the packets.
    let mut ports: HashMap<u16, String> = HashMap::new();
    for (f, at) in streams {
        let spec = stream_spec(f, at, board)?;
        if let StreamSource::Rtp {
            video_port,
            audio_port,
            ..
        } = spec.source
        {
            for (port, key) in [(video_port, "video_port"), (audio_port, "audio_port")] {
                if port == 0 {
                    continue;
                }
                if let Some(other) = ports.get(&port) {
                    return Err(at.key(key).err(format!(
                        "UDP port {port} is already taken by stream {other:?}: give each RTP stream its own ports"
                    )));
                }
                ports.insert(port, spec.name.clone());
            }
        }
        if let Some(first) = seen.get(&spec.name) {
            return Err(at.key("name").err(format!(
                "duplicate stream name {:?}: already defined at {first}",
                spec.name
            )));
        }
        seen.insert(spec.name.clone(), at.position());
        out.push(spec);
    }
    if dev && !out.iter().any(|s| s.name == "test") {
        out.push(StreamSpec::dev_test());
    }
    Ok(out)
}

fn stream_spec(f: &StreamFile, at: &At, board: &Selection) -> Result<StreamSpec, ConfigError> {
    let name = f.name.clone().unwrap_or_default();
    let name_ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if !name_ok {
        return Err(at.key("name").err(format!(
            "stream name {name:?}: expected 1-63 lower-case letters, digits, '-' or '_' (it is a URL path segment)"
        )));
    }
    let int = |v: Option<i64>, key: &str, range: std::ops::RangeInclusive<i64>, default: i64| {
        let v = v.unwrap_or(default);
        if range.contains(&v) {
            Ok(v)
        } else {
            Err(at.key(key).err(format!(
                "{v} is out of range: expected {}-{}",
                range.start(),
                range.end()
            )))
        }
    };
    let codec = |v: &Option<String>, key: &str| -> Result<VideoCodec, ConfigError> {
        match v.as_deref().unwrap_or("vp8").to_ascii_lowercase().as_str() {
            "vp8" => Ok(VideoCodec::Vp8),
            "h264" | "h.264" => Ok(VideoCodec::H264),
            other => Err(at.key(key).err(format!(
                "unknown video codec {other:?}: expected \"vp8\" or \"h264\""
            ))),
        }
    };
    let port = |v: Option<i64>, key: &str| int(v, key, 0..=65535, 0).map(|p| p as u16);
    let kind = f.source.clone().unwrap_or_else(|| "test".into());
    let (source, video_codec, default_audio) = match kind.as_str() {
        "test" => (
            StreamSource::Test {
                pattern: f.pattern.clone().unwrap_or_else(|| "smpte".into()),
            },
            codec(&f.codec, "codec")?,
            true,
        ),
        "v4l2" => {
            let device = match (&f.device, &board.profile.camera) {
                (Some(d), _) => d.clone(),
                (None, Some(cam)) => cam.device.clone(),
                (None, None) => {
                    return Err(at.key("device").err(format!(
                        "a v4l2 stream needs a \"device\", such as \"/dev/video0\": board profile {} has no default camera",
                        board.profile.name
                    )));
                }
            };
            if !device.starts_with("/dev/") {
                return Err(at.key("device").err(format!(
                    "camera device {device:?}: expected a path such as \"/dev/video0\""
                )));
            }
            (
                StreamSource::V4l2 { device },
                codec(&f.codec, "codec")?,
                false,
            )
        }
        "rtp" => {
            let video_port = port(f.video_port, "video_port")?;
            if video_port == 0 {
                return Err(at
                    .key("video_port")
                    .err("an rtp stream needs the UDP port its video arrives on, such as 5004"));
            }
            let audio_port = port(f.audio_port, "audio_port")?;
            if let Some(c) = &f.audio_codec
                && !c.eq_ignore_ascii_case("opus")
            {
                return Err(at
                    .key("audio_codec")
                    .err(format!("audio codec {c:?}: expected \"opus\"")));
            }
            let video_codec = codec(&f.video_codec, "video_codec")?;
            (
                StreamSource::Rtp {
                    video_port,
                    video_pt: int(f.video_pt, "video_pt", 96..=127, 100)? as u8,
                    video_codec,
                    audio_port,
                    audio_pt: int(f.audio_pt, "audio_pt", 96..=127, 111)? as u8,
                    video_rtcp_port: port(f.video_rtcp_port, "video_rtcp_port")?,
                },
                video_codec,
                audio_port != 0,
            )
        }
        other => {
            return Err(at.key("source").err(format!(
                "unknown stream source {other:?}: expected \"test\", \"v4l2\" or \"rtp\""
            )));
        }
    };
    let keyframe_interval_s = match &f.keyframe_interval {
        None => 2,
        Some(d) => {
            let ms = parse_duration(d).map_err(|m| at.key("keyframe_interval").err(m))?;
            if !(1000..=60_000).contains(&ms) {
                return Err(at
                    .key("keyframe_interval")
                    .err(format!("{d:?}: expected 1s to 60s")));
            }
            (ms / 1000) as u32
        }
    };
    let (width, height, fps) = match (&source, &board.profile.camera) {
        (StreamSource::V4l2 { .. }, Some(cam)) => (cam.width, cam.height, cam.fps),
        _ => (640, 480, 30),
    };
    Ok(StreamSpec {
        name,
        codec: video_codec,
        width: int(f.width, "width", 16..=4096, width.into())? as u32,
        height: int(f.height, "height", 16..=4096, height.into())? as u32,
        fps: int(f.fps, "fps", 1..=120, fps.into())? as u32,
        bitrate_kbps: int(f.bitrate, "bitrate", 32..=50_000, 1000)? as u32,
        audio: f.audio.unwrap_or(default_audio),
        max_viewers: int(f.max_viewers, "max_viewers", 1..=10_000, 64)? as usize,
        keyframe_interval_s,
        source,
    })
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn is_ip_or_host(s: &str) -> bool {
    s.parse::<IpAddr>().is_ok()
        || (s.len() <= 253 && s.trim_end_matches('.').split('.').all(is_dns_label))
}

fn parse_ip(s: &str) -> Result<IpAddr, String> {
    s.trim()
        .parse()
        .map_err(|_| format!("{s:?}: expected an IP address such as 127.0.0.1 or ::1"))
}

/// A space-separated list of IPs, as Consul's client_addr.
fn parse_ip_list(s: &str) -> Result<Vec<IpAddr>, String> {
    let v: Vec<IpAddr> = s
        .split_whitespace()
        .map(parse_ip)
        .collect::<Result<_, _>>()?;
    if v.is_empty() {
        return Err("expected one or more IP addresses separated by spaces".into());
    }
    Ok(v)
}

/// `ip`, `ip:port`, `[v6]:port` or `v6`; port 53 by default.
fn parse_recursor(s: &str) -> Result<SocketAddr, String> {
    let s = s.trim();
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(a);
    }
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, 53));
    }
    Err(format!(
        "recursor {s:?}: expected an IP address with an optional port, such as 192.0.2.53 or 127.0.0.1:5353"
    ))
}

/// Consul's choice when bound to 0.0.0.0: the first private IPv4 address, else any
/// non-loopback one, else loopback.
fn pick_advertise(addrs: &[IpAddr]) -> IpAddr {
    let private = |ip: &IpAddr| match ip {
        IpAddr::V4(v4) => {
            v4.is_private() || (v4.octets()[0] == 100 && (v4.octets()[1] & 0xc0) == 64)
        }
        IpAddr::V6(_) => false,
    };
    addrs
        .iter()
        .find(|a| private(a))
        .or_else(|| addrs.iter().find(|a| a.is_ipv4() && !a.is_loopback()))
        .copied()
        .unwrap_or(Ipv4Addr::LOCALHOST.into())
}
