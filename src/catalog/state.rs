//! The catalog state machine: applies [`Command`]s in log order and keeps the indices that
//! make every DNS lookup O(answer): services by name, nodes by name, addresses for PTR.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use super::command::{Change, Command, Deregistration, Registration};
use super::model::{Check, Health, Node, Service};

/// A node with everything registered on it.
#[derive(Clone, Debug)]
pub struct NodeEntry {
    pub node: Node,
    pub create_index: u64,
    pub modify_index: u64,
    /// By service ID.
    pub services: BTreeMap<String, ServiceEntry>,
    /// By check ID.
    pub checks: BTreeMap<String, CheckEntry>,
}

#[derive(Clone, Debug)]
pub struct ServiceEntry {
    pub service: Service,
    pub create_index: u64,
    pub modify_index: u64,
}

#[derive(Clone, Debug)]
pub struct CheckEntry {
    pub check: Check,
    pub create_index: u64,
    pub modify_index: u64,
}

/// Which instances a health query keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HealthFilter {
    /// Everything, whatever its checks say.
    All,
    /// Leave out instances with a critical check (Consul's DNS default).
    NotCritical,
    /// Only instances whose checks all pass (`only_passing`, `?passing`).
    Passing,
}

impl HealthFilter {
    pub fn keeps(self, health: Health) -> bool {
        match self {
            HealthFilter::All => true,
            HealthFilter::NotCritical => health != Health::Critical,
            HealthFilter::Passing => health == Health::Passing,
        }
    }
}

/// One service instance with its node and its aggregated health, as queries return it.
#[derive(Clone, Copy, Debug)]
pub struct Instance<'a> {
    pub node: &'a NodeEntry,
    pub service: &'a ServiceEntry,
    pub health: Health,
}

impl Instance<'_> {
    /// The address clients should use: the service's own, or else its node's.
    pub fn address(&self) -> &str {
        if self.service.service.address.is_empty() {
            &self.node.node.address
        } else {
            &self.service.service.address
        }
    }
}

/// Why a command was refused. The catalog is unchanged when `apply` returns one.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    #[error("a node needs a name")]
    EmptyNodeName,
    #[error("node {node:?}: a service needs a name")]
    EmptyServiceName { node: String },
    #[error("node {node:?}: a check needs an ID or a name")]
    EmptyCheckId { node: String },
    #[error(
        "node {node:?}: check {check:?} refers to service {service:?}, which is not registered on that node"
    )]
    UnknownService {
        node: String,
        check: String,
        service: String,
    },
}

/// Lower-cased key: DNS and Consul look names up case-insensitively.
fn key(name: &str) -> String {
    name.to_ascii_lowercase()
}

/// The whole catalog of one datacenter.
#[derive(Clone, Debug, Default)]
pub struct Catalog {
    /// Index of the last applied command; every change bumps it (blocking queries wait on it).
    index: u64,
    /// By lower-cased node name.
    nodes: HashMap<String, NodeEntry>,
    /// By lower-cased service name: the instances as (lower-cased node name, service ID),
    /// and the index of the last change to any of them.
    services: HashMap<String, ServiceName>,
    /// Node addresses, for PTR (lower-cased node names).
    node_addrs: HashMap<IpAddr, Vec<String>>,
    /// Service addresses that differ from their node's, for PTR: (node key, service ID).
    service_addrs: HashMap<IpAddr, Vec<(String, String)>>,
}

#[derive(Clone, Debug, Default)]
struct ServiceName {
    modify_index: u64,
    instances: Vec<(String, String)>,
}

impl Catalog {
    pub fn new() -> Catalog {
        Catalog::default()
    }

    /// Index of the last applied command.
    pub fn index(&self) -> u64 {
        self.index
    }

    /// Applies `command`, the log entry at `index`. On error nothing changes except that the
    /// index still advances (the entry was consumed, as every replica consumes it).
    pub fn apply(&mut self, index: u64, command: &Command) -> Result<(), ApplyError> {
        self.index = self.index.max(index);
        self.validate(command)?;
        for change in &command.changes {
            match change {
                Change::Register(r) => self.register(index, r),
                Change::Deregister(d) => self.deregister(index, d),
            }
        }
        Ok(())
    }

    /// Checks every change against the state as the earlier changes of the same command
    /// would leave it, without touching anything.
    fn validate(&self, command: &Command) -> Result<(), ApplyError> {
        // Services present on each node as the command proceeds: (node key, id) -> name key.
        let mut overlay: HashMap<(String, String), Option<String>> = HashMap::new();
        let mut removed_nodes: Vec<String> = Vec::new();
        let service_on = |overlay: &HashMap<(String, String), Option<String>>,
                          removed_nodes: &[String],
                          node: &str,
                          id: &str|
         -> Option<String> {
            if let Some(v) = overlay.get(&(node.to_string(), id.to_string())) {
                return v.clone();
            }
            if removed_nodes.iter().any(|n| n == node) {
                return None;
            }
            self.nodes
                .get(node)
                .and_then(|n| n.services.get(id))
                .map(|s| key(&s.service.name))
        };
        for change in &command.changes {
            match change {
                Change::Register(r) => {
                    if r.node.name.is_empty() {
                        return Err(ApplyError::EmptyNodeName);
                    }
                    let nk = key(&r.node.name);
                    removed_nodes.retain(|n| n != &nk);
                    if let Some(s) = &r.service {
                        if s.name.is_empty() {
                            return Err(ApplyError::EmptyServiceName {
                                node: r.node.name.clone(),
                            });
                        }
                        let id = if s.id.is_empty() { &s.name } else { &s.id };
                        overlay.insert((nk.clone(), id.clone()), Some(key(&s.name)));
                    }
                    for c in &r.checks {
                        if c.id.is_empty() && c.name.is_empty() {
                            return Err(ApplyError::EmptyCheckId {
                                node: r.node.name.clone(),
                            });
                        }
                        if !c.service_id.is_empty()
                            && service_on(&overlay, &removed_nodes, &nk, &c.service_id).is_none()
                        {
                            return Err(ApplyError::UnknownService {
                                node: r.node.name.clone(),
                                check: check_id(c).to_string(),
                                service: c.service_id.clone(),
                            });
                        }
                    }
                }
                Change::Deregister(d) => {
                    let nk = key(&d.node);
                    match (&d.service_id, &d.check_id) {
                        (Some(id), _) => {
                            overlay.insert((nk, id.clone()), None);
                        }
                        (None, Some(_)) => {}
                        (None, None) => {
                            overlay.retain(|(n, _), _| n != &nk);
                            removed_nodes.push(nk);
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn register(&mut self, index: u64, r: &Registration) {
        let nk = key(&r.node.name);
        let old_ip = self
            .nodes
            .get(&nk)
            .and_then(|n| n.node.address.parse::<IpAddr>().ok());
        let entry = self.nodes.entry(nk.clone()).or_insert_with(|| NodeEntry {
            node: r.node.clone(),
            create_index: index,
            modify_index: index,
            services: BTreeMap::new(),
            checks: BTreeMap::new(),
        });
        if entry.node != r.node {
            entry.node = r.node.clone();
            entry.modify_index = index;
        }
        let new_ip = entry.node.address.parse::<IpAddr>().ok();
        if old_ip != new_ip
            && let Some(ip) = old_ip
        {
            remove_from(&mut self.node_addrs, ip, &nk);
        }
        if let Some(ip) = new_ip {
            let v = self.node_addrs.entry(ip).or_default();
            if !v.contains(&nk) {
                v.push(nk.clone());
            }
        }
        if let Some(s) = &r.service {
            let mut s = s.clone();
            if s.id.is_empty() {
                s.id = s.name.clone();
            }
            self.put_service(index, &nk, s);
        }
        for c in &r.checks {
            let mut c = c.clone();
            if c.id.is_empty() {
                c.id = c.name.clone();
            }
            let entry = self.nodes.get_mut(&nk).expect("node inserted above");
            match entry.checks.get_mut(&c.id) {
                Some(existing) if existing.check == c => {}
                Some(existing) => {
                    existing.check = c;
                    existing.modify_index = index;
                }
                None => {
                    entry.checks.insert(
                        c.id.clone(),
                        CheckEntry {
                            check: c,
                            create_index: index,
                            modify_index: index,
                        },
                    );
                }
            }
            self.touch_services_of_check(index, &nk);
        }
    }

    fn put_service(&mut self, index: u64, nk: &str, s: Service) {
        let node = self.nodes.get_mut(nk).expect("caller inserted the node");
        let id = s.id.clone();
        let name_key = key(&s.name);
        let previous = node.services.get(&id).map(|e| e.service.clone());
        if previous.as_ref() == Some(&s) {
            return;
        }
        let ip = s.address.parse::<IpAddr>().ok();
        match node.services.get_mut(&id) {
            Some(e) => {
                e.service = s;
                e.modify_index = index;
            }
            None => {
                node.services.insert(
                    id.clone(),
                    ServiceEntry {
                        service: s,
                        create_index: index,
                        modify_index: index,
                    },
                );
            }
        }
        let pair = (nk.to_string(), id.clone());
        if let Some(prev) = previous {
            let old_key = key(&prev.name);
            if old_key != name_key {
                self.unlink_service(index, &old_key, &pair);
            }
            if let Ok(old_ip) = prev.address.parse::<IpAddr>() {
                remove_from(&mut self.service_addrs, old_ip, &pair);
            }
        }
        let sn = self.services.entry(name_key).or_default();
        if !sn.instances.contains(&pair) {
            sn.instances.push(pair.clone());
        }
        sn.modify_index = index;
        if let Some(ip) = ip {
            self.service_addrs.entry(ip).or_default().push(pair);
        }
    }

    fn unlink_service(&mut self, index: u64, name_key: &str, pair: &(String, String)) {
        if let Some(sn) = self.services.get_mut(name_key) {
            sn.instances.retain(|p| p != pair);
            sn.modify_index = index;
            if sn.instances.is_empty() {
                self.services.remove(name_key);
            }
        }
    }

    /// A check on a node changed: every service name it can affect has new data.
    fn touch_services_of_check(&mut self, index: u64, nk: &str) {
        let Some(node) = self.nodes.get(nk) else {
            return;
        };
        for s in node.services.values() {
            if let Some(sn) = self.services.get_mut(&key(&s.service.name)) {
                sn.modify_index = index;
            }
        }
    }

    fn deregister(&mut self, index: u64, d: &Deregistration) {
        let nk = key(&d.node);
        if !self.nodes.contains_key(&nk) {
            return;
        }
        match (&d.service_id, &d.check_id) {
            (Some(id), _) => self.remove_service(index, &nk, id),
            (None, Some(check)) => {
                let removed = self.nodes.get_mut(&nk).and_then(|n| n.checks.remove(check));
                if removed.is_some() {
                    self.touch_services_of_check(index, &nk);
                }
            }
            (None, None) => {
                let ids: Vec<String> = self.nodes[&nk].services.keys().cloned().collect();
                for id in ids {
                    self.remove_service(index, &nk, &id);
                }
                if let Some(n) = self.nodes.remove(&nk)
                    && let Ok(ip) = n.node.address.parse::<IpAddr>()
                {
                    remove_from(&mut self.node_addrs, ip, &nk);
                }
            }
        }
    }

    fn remove_service(&mut self, index: u64, nk: &str, id: &str) {
        let Some(node) = self.nodes.get_mut(nk) else {
            return;
        };
        let Some(entry) = node.services.remove(id) else {
            return;
        };
        node.checks.retain(|_, c| c.check.service_id != id);
        let pair = (nk.to_string(), id.to_string());
        self.unlink_service(index, &key(&entry.service.name), &pair);
        if let Ok(ip) = entry.service.address.parse::<IpAddr>() {
            remove_from(&mut self.service_addrs, ip, &pair);
        }
    }

    // ---- queries (pure reads) ----

    /// A node by name, case-insensitively.
    pub fn node(&self, name: &str) -> Option<&NodeEntry> {
        if name.bytes().any(|b| b.is_ascii_uppercase()) {
            self.nodes.get(&key(name))
        } else {
            self.nodes.get(name)
        }
    }

    /// All nodes, in no particular order.
    pub fn nodes(&self) -> impl Iterator<Item = &NodeEntry> {
        self.nodes.values()
    }

    /// Names of all services (as first registered), in no particular order.
    pub fn service_names(&self) -> impl Iterator<Item = &str> {
        self.services.values().filter_map(|sn| {
            let (n, id) = sn.instances.first()?;
            Some(self.nodes.get(n)?.services.get(id)?.service.name.as_str())
        })
    }

    /// Index of the last change to any instance of the service `name` (0 if none).
    pub fn service_index(&self, name: &str) -> u64 {
        self.services
            .get(&key(name))
            .map_or(0, |sn| sn.modify_index)
    }

    /// Instances of service `name` (case-insensitive), optionally only those carrying `tag`
    /// (case-insensitive, as Consul's DNS), kept by `filter`. Costs O(instances of the name).
    pub fn instances<'a>(
        &'a self,
        name: &str,
        tag: Option<&'a str>,
        filter: HealthFilter,
    ) -> impl Iterator<Item = Instance<'a>> + 'a {
        let list = if name.bytes().any(|b| b.is_ascii_uppercase()) {
            self.services.get(&key(name))
        } else {
            self.services.get(name)
        };
        list.into_iter()
            .flat_map(|sn| sn.instances.iter())
            .filter_map(move |(nk, id)| {
                let node = self.nodes.get(nk)?;
                let service = node.services.get(id)?;
                if let Some(tag) = tag
                    && !service
                        .service
                        .tags
                        .iter()
                        .any(|t| t.eq_ignore_ascii_case(tag))
                {
                    return None;
                }
                let health = instance_health(node, id);
                filter.keeps(health).then_some(Instance {
                    node,
                    service,
                    health,
                })
            })
    }

    /// Whether any instance of service `name` exists, whatever its health or tags.
    pub fn has_service(&self, name: &str) -> bool {
        self.services.contains_key(&key(name))
    }

    /// Nodes whose address is `ip`.
    pub fn nodes_by_address(&self, ip: IpAddr) -> impl Iterator<Item = &NodeEntry> {
        self.node_addrs
            .get(&ip)
            .into_iter()
            .flatten()
            .filter_map(|nk| self.nodes.get(nk))
    }

    /// Service instances whose own address is `ip`.
    pub fn services_by_address(&self, ip: IpAddr) -> impl Iterator<Item = Instance<'_>> {
        self.service_addrs
            .get(&ip)
            .into_iter()
            .flatten()
            .filter_map(|(nk, id)| {
                let node = self.nodes.get(nk)?;
                let service = node.services.get(id)?;
                Some(Instance {
                    node,
                    service,
                    health: instance_health(node, id),
                })
            })
    }
}

/// The worst status among the node's own checks and the service's checks.
pub fn instance_health(node: &NodeEntry, service_id: &str) -> Health {
    node.checks
        .values()
        .filter(|c| c.check.service_id.is_empty() || c.check.service_id == service_id)
        .map(|c| c.check.status)
        .max()
        .unwrap_or(Health::Passing)
}

fn check_id(c: &Check) -> &str {
    if c.id.is_empty() { &c.name } else { &c.id }
}

fn remove_from<K: std::hash::Hash + Eq, T: PartialEq>(
    map: &mut HashMap<K, Vec<T>>,
    k: K,
    item: &T,
) {
    if let Some(v) = map.get_mut(&k) {
        v.retain(|x| x != item);
        if v.is_empty() {
            map.remove(&k);
        }
    }
}
