//! Consul's DNS interface: `responder` builds answers from the catalog (pure, bytes in and
//! bytes out), `server` moves bytes between sockets and the responder.

pub mod cache;
pub mod responder;
pub mod server;

use std::collections::BTreeMap;
use std::net::IpAddr;

/// What the responder needs to know about the agent and its `dns_config`. Built from the
/// validated config; replaced as a whole on reload.
#[derive(Clone, Debug, PartialEq)]
pub struct DnsSettings {
    /// Lower-case, without leading or trailing dot: `consul`.
    pub domain: String,
    /// Lower-case: `dc1`.
    pub datacenter: String,
    /// This agent's node name: the NS record points at `<node>.node.<dc>.<domain>.`.
    pub node_name: String,
    /// This agent's address, for the NS glue.
    pub node_address: Option<IpAddr>,
    /// TTL of node records (seconds).
    pub node_ttl: u32,
    /// TTL by service name; a key ending in `*` is a prefix; `*` alone matches all.
    pub service_ttl: BTreeMap<String, u32>,
    /// Leave out warning instances too, not only critical ones.
    pub only_passing: bool,
    /// Set TC when `udp_answer_limit` cut answers (answers cut to fit the packet always set TC).
    pub enable_truncate: bool,
    /// Most answers in a UDP reply to a query without EDNS (Consul: 3, at most 8).
    pub udp_answer_limit: usize,
    /// Whether names outside the domain are forwarded (`recursors` configured).
    pub recursion: bool,
    /// SOA timers: refresh, retry, expire, minimum (Consul's 3600, 600, 86400, 0).
    pub soa: [u32; 4],
}

impl Default for DnsSettings {
    fn default() -> Self {
        DnsSettings {
            domain: "consul".into(),
            datacenter: "dc1".into(),
            node_name: "localhost".into(),
            node_address: None,
            node_ttl: 0,
            service_ttl: BTreeMap::new(),
            only_passing: false,
            enable_truncate: false,
            udp_answer_limit: 3,
            recursion: false,
            soa: [3600, 600, 86400, 0],
        }
    }
}

impl DnsSettings {
    /// TTL for service `name`: an exact key wins, then the longest `prefix*`, else 0.
    pub fn service_ttl(&self, name: &str) -> u32 {
        if let Some(t) = self.service_ttl.get(name) {
            return *t;
        }
        self.service_ttl
            .iter()
            .filter_map(|(k, t)| {
                let prefix = k.strip_suffix('*')?;
                name.starts_with(prefix).then_some((prefix.len(), *t))
            })
            .max_by_key(|(len, _)| *len)
            .map_or(0, |(_, t)| t)
    }
}
