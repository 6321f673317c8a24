//! The catalog state machine: applies [`Command`]s in log order and keeps the indices that
//! make every DNS lookup O(answer): services by name, nodes by name, addresses for PTR.
//!
//! Nodes and services live in slabs and refer to each other by slot, so a lookup follows
//! slot numbers rather than comparing strings; derived data a query needs (parsed
//! addresses, the aggregated health of each instance) is kept up to date on every change.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use slab::Slab;

use super::command::{Change, CheckUpdate, Command, Deregistration, KvDelete, KvSet, Registration};
use super::kv::{self, Kv};
use super::model::{Check, Health, Node, Service};

/// What a command changed, so that blocking queries wake only when their data did. Names are
/// lower case (as the indices key them); KV keys are exact.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Topic {
    /// The list of nodes or a node record.
    Nodes,
    /// Any service instance (added, removed, changed).
    Services,
    /// Any check (added, removed, status).
    Checks,
    /// Anything on this node: its record, services or checks.
    Node(String),
    /// The instances of this service name or their health.
    Service(String),
    /// This KV key.
    Key(String),
}

/// A node with everything registered on it.
#[derive(Clone, Debug)]
pub struct NodeEntry {
    pub node: Node,
    /// `node.address` parsed, when it is an IP address.
    pub ip: Option<IpAddr>,
    pub create_index: u64,
    pub modify_index: u64,
    /// Index of the last change to the node, its services or its checks.
    pub data_index: u64,
    /// Service slots by service ID (see [`Catalog::node_services`]).
    pub(super) services: BTreeMap<String, usize>,
    /// By check ID.
    pub checks: BTreeMap<String, CheckEntry>,
}

#[derive(Clone, Debug)]
pub struct ServiceEntry {
    pub service: Service,
    /// `service.address` parsed, when it is an IP address.
    pub ip: Option<IpAddr>,
    /// The worst status among this service's checks and its node's own checks.
    pub health: Health,
    pub create_index: u64,
    pub modify_index: u64,
    /// Slot of the node it runs on.
    pub(super) node: usize,
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
    #[error("a KV key must not be empty")]
    EmptyKey,
    #[error("KV key of {0} bytes is over the {max}-byte limit", max = kv::MAX_KEY)]
    KeyTooLong(usize),
    #[error("KV value of {0} bytes is over the {max}-byte limit", max = kv::MAX_VALUE)]
    ValueTooLarge(usize),
    /// A check-and-set did not match: the key was changed (or created) meanwhile.
    #[error("check-and-set on KV key {key:?} failed: its index is not {cas}")]
    CasFailed { key: String, cas: u64 },
}

/// Lower-cased key: DNS and Consul look names up case-insensitively.
pub(super) fn key(name: &str) -> String {
    name.to_ascii_lowercase()
}

/// Looks `name` up without allocating when it is already lower case.
fn get_ci<'m, V>(map: &'m HashMap<String, V>, name: &str) -> Option<&'m V> {
    if name.bytes().any(|b| b.is_ascii_uppercase()) {
        map.get(&key(name))
    } else {
        map.get(name)
    }
}

/// The whole catalog of one datacenter.
#[derive(Clone, Debug)]
pub struct Catalog {
    /// Index of the last applied command; every change bumps it (blocking queries wait on it).
    pub(super) index: u64,
    /// Names this exact content among every catalog of the process: see [`Catalog::generation`].
    pub(super) generation: u64,
    pub(super) nodes: Slab<NodeEntry>,
    pub(super) services: Slab<ServiceEntry>,
    /// Node slots by lower-cased node name.
    pub(super) node_names: HashMap<String, usize>,
    /// By lower-cased service name: the instances' slots and the index of the last change
    /// to any of them.
    pub(super) service_names: HashMap<String, ServiceName>,
    /// Node slots by node address, for PTR.
    pub(super) node_addrs: HashMap<IpAddr, Vec<usize>>,
    /// Service slots by the service's own address, for PTR.
    pub(super) service_addrs: HashMap<IpAddr, Vec<usize>>,
    /// Index of the last change to any node record, service, or check: what a query over
    /// the whole table (or of something absent) reports, so that it never goes back.
    pub(super) nodes_index: u64,
    pub(super) services_index: u64,
    pub(super) checks_index: u64,
    pub(super) kv: Kv,
    /// What the command being applied changed.
    pub(super) topics: Vec<Topic>,
}

#[derive(Clone, Debug, Default)]
pub(super) struct ServiceName {
    pub(super) modify_index: u64,
    pub(super) instances: Vec<usize>,
}

impl Default for Catalog {
    fn default() -> Catalog {
        Catalog {
            index: 0,
            generation: next_generation(),
            nodes: Slab::new(),
            services: Slab::new(),
            node_names: HashMap::new(),
            service_names: HashMap::new(),
            node_addrs: HashMap::new(),
            service_addrs: HashMap::new(),
            nodes_index: 0,
            services_index: 0,
            checks_index: 0,
            kv: Kv::default(),
            topics: Vec::new(),
        }
    }
}

/// A number no catalog of this process has had before.
pub(super) fn next_generation() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

impl Catalog {
    pub fn new() -> Catalog {
        Catalog::default()
    }

    /// Differs between any two catalog states of this process that may differ in content (a
    /// clone shares it until either side changes), so that an answer computed from one state
    /// can be reused exactly while the generation is unchanged. The index cannot serve: two
    /// catalogs may be at the same index.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Index of the last applied command.
    pub fn index(&self) -> u64 {
        self.index
    }

    /// Applies `command`, the log entry at `index`, and says what it changed (sorted, no
    /// duplicates). On error nothing changes except that the index still advances (the entry
    /// was consumed, as every replica consumes it).
    pub fn apply(&mut self, index: u64, command: &Command) -> Result<Vec<Topic>, ApplyError> {
        self.index = self.index.max(index);
        self.validate(command)?;
        self.generation = next_generation();
        for change in &command.changes {
            match change {
                Change::Register(r) => self.register(index, r),
                Change::Deregister(d) => self.deregister(index, d),
                Change::UpdateCheck(u) => self.update_check(index, u),
                Change::KvSet(k) => {
                    self.kv.set(index, &k.key, &k.value, k.flags);
                    self.topics.push(Topic::Key(k.key.clone()));
                }
                Change::KvDelete(d) => {
                    let gone = self.kv.delete(index, &d.key, d.recurse);
                    self.topics.extend(gone.into_iter().map(Topic::Key));
                }
            }
        }
        let mut topics = std::mem::take(&mut self.topics);
        topics.sort_unstable();
        topics.dedup();
        Ok(topics)
    }

    /// Records that the node at `slot` changed at `index`.
    fn touch_node(&mut self, index: u64, slot: usize) {
        let n = &mut self.nodes[slot];
        n.data_index = index;
        self.topics.push(Topic::Node(key(&n.node.name)));
    }

    fn touch_service(&mut self, index: u64, name_key: &str) {
        self.services_index = index;
        self.topics.push(Topic::Services);
        self.topics.push(Topic::Service(name_key.to_string()));
    }

    fn touch_checks(&mut self, index: u64) {
        self.checks_index = index;
        self.topics.push(Topic::Checks);
    }

    /// Checks every change against the state as the earlier changes of the same command
    /// would leave it, without touching anything: whether `command` would apply.
    pub fn validate(&self, command: &Command) -> Result<(), ApplyError> {
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
            let n = self.node_names.get(node)?;
            let slot = self.nodes[*n].services.get(id)?;
            Some(key(&self.services[*slot].service.name))
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
                Change::UpdateCheck(_) => {}
                Change::KvSet(KvSet {
                    key, value, cas, ..
                }) => {
                    check_key(key)?;
                    if value.len() > kv::MAX_VALUE {
                        return Err(ApplyError::ValueTooLarge(value.len()));
                    }
                    if let Some(cas) = *cas
                        && !self.kv.cas_ok(key, cas)
                    {
                        return Err(ApplyError::CasFailed {
                            key: key.clone(),
                            cas,
                        });
                    }
                }
                Change::KvDelete(KvDelete { key, cas, .. }) => {
                    if key.len() > kv::MAX_KEY {
                        return Err(ApplyError::KeyTooLong(key.len()));
                    }
                    if let Some(cas) = *cas
                        && self.kv.get(key).is_some()
                        && !self.kv.cas_ok(key, cas)
                    {
                        return Err(ApplyError::CasFailed {
                            key: key.clone(),
                            cas,
                        });
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
        let ip = r.node.address.parse::<IpAddr>().ok();
        let slot = match self.node_names.get(&nk) {
            Some(&slot) => {
                let entry = &mut self.nodes[slot];
                if entry.node != r.node {
                    let old_ip = entry.ip;
                    entry.node = r.node.clone();
                    entry.ip = ip;
                    entry.modify_index = index;
                    if old_ip != ip {
                        if let Some(old) = old_ip {
                            remove_from(&mut self.node_addrs, old, slot);
                        }
                        if let Some(new) = ip {
                            self.node_addrs.entry(new).or_default().push(slot);
                        }
                    }
                    self.nodes_index = index;
                    self.topics.push(Topic::Nodes);
                    self.touch_node(index, slot);
                    // Instances carry their node's address: their service names changed too.
                    let names: Vec<String> = self
                        .node_services(&self.nodes[slot])
                        .map(|e| key(&e.service.name))
                        .collect();
                    for n in names {
                        if let Some(sn) = self.service_names.get_mut(&n) {
                            sn.modify_index = index;
                        }
                        self.touch_service(index, &n);
                    }
                }
                slot
            }
            None => {
                let slot = self.nodes.insert(NodeEntry {
                    node: r.node.clone(),
                    ip,
                    create_index: index,
                    modify_index: index,
                    data_index: index,
                    services: BTreeMap::new(),
                    checks: BTreeMap::new(),
                });
                self.node_names.insert(nk, slot);
                if let Some(ip) = ip {
                    self.node_addrs.entry(ip).or_default().push(slot);
                }
                self.nodes_index = index;
                self.topics.push(Topic::Nodes);
                self.touch_node(index, slot);
                slot
            }
        };
        if let Some(s) = &r.service {
            let mut s = s.clone();
            if s.id.is_empty() {
                s.id = s.name.clone();
            }
            self.put_service(index, slot, s);
        }
        if !r.checks.is_empty() {
            let entry = &mut self.nodes[slot];
            let mut changed = false;
            for c in &r.checks {
                let mut c = c.clone();
                if c.id.is_empty() {
                    c.id = c.name.clone();
                }
                match entry.checks.get_mut(&c.id) {
                    Some(existing) if existing.check == c => {}
                    Some(existing) => {
                        existing.check = c;
                        existing.modify_index = index;
                        changed = true;
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
                        changed = true;
                    }
                }
            }
            if changed {
                self.touch_checks(index);
                self.touch_node(index, slot);
                self.checks_changed(index, slot);
            }
        }
    }

    fn put_service(&mut self, index: u64, node_slot: usize, s: Service) {
        let ip = s.address.parse::<IpAddr>().ok();
        let name_key = key(&s.name);
        let existing = self.nodes[node_slot].services.get(&s.id).copied();
        match existing {
            Some(slot) => {
                let e = &mut self.services[slot];
                if e.service == s {
                    return;
                }
                let old_name = key(&e.service.name);
                let old_ip = e.ip;
                e.service = s;
                e.ip = ip;
                e.modify_index = index;
                if old_name != name_key {
                    self.unlink_name(index, &old_name, slot);
                    self.touch_service(index, &old_name);
                    self.service_names
                        .entry(name_key.clone())
                        .or_default()
                        .instances
                        .push(slot);
                }
                if old_ip != ip {
                    if let Some(old) = old_ip {
                        remove_from(&mut self.service_addrs, old, slot);
                    }
                    if let Some(new) = ip {
                        self.service_addrs.entry(new).or_default().push(slot);
                    }
                }
            }
            None => {
                let id = s.id.clone();
                let health = aggregate_health(&self.nodes[node_slot], &id);
                let slot = self.services.insert(ServiceEntry {
                    service: s,
                    ip,
                    health,
                    create_index: index,
                    modify_index: index,
                    node: node_slot,
                });
                self.nodes[node_slot].services.insert(id, slot);
                self.service_names
                    .entry(name_key.clone())
                    .or_default()
                    .instances
                    .push(slot);
                if let Some(ip) = ip {
                    self.service_addrs.entry(ip).or_default().push(slot);
                }
            }
        }
        if let Some(sn) = self.service_names.get_mut(&name_key) {
            sn.modify_index = index;
        }
        self.touch_service(index, &name_key);
        self.touch_node(index, node_slot);
    }

    fn unlink_name(&mut self, index: u64, name_key: &str, slot: usize) {
        if let Some(sn) = self.service_names.get_mut(name_key) {
            sn.instances.retain(|&p| p != slot);
            sn.modify_index = index;
            if sn.instances.is_empty() {
                self.service_names.remove(name_key);
            }
        }
    }

    /// The checks of a node changed: recompute the health of its services, and every
    /// service name whose data changed gets the new index.
    fn checks_changed(&mut self, index: u64, node_slot: usize) {
        let node = &self.nodes[node_slot];
        for (id, &slot) in &node.services {
            let health = aggregate_health(node, id);
            let e = &mut self.services[slot];
            if e.health != health {
                e.health = health;
            }
            let name = key(&e.service.name);
            if let Some(sn) = self.service_names.get_mut(&name) {
                sn.modify_index = index;
            }
            self.topics.push(Topic::Service(name));
        }
    }

    fn update_check(&mut self, index: u64, u: &CheckUpdate) {
        let Some(&slot) = self.node_names.get(&key(&u.node)) else {
            return;
        };
        let Some(c) = self.nodes[slot].checks.get_mut(&u.check_id) else {
            return;
        };
        if c.check.status == u.status && c.check.output == u.output {
            return;
        }
        c.check.status = u.status;
        c.check.output = u.output.clone();
        c.modify_index = index;
        self.touch_checks(index);
        self.touch_node(index, slot);
        self.checks_changed(index, slot);
    }

    fn deregister(&mut self, index: u64, d: &Deregistration) {
        let Some(&node_slot) = self.node_names.get(&key(&d.node)) else {
            return;
        };
        match (&d.service_id, &d.check_id) {
            (Some(id), _) => self.remove_service(index, node_slot, id),
            (None, Some(check)) => {
                if self.nodes[node_slot].checks.remove(check).is_some() {
                    self.touch_checks(index);
                    self.touch_node(index, node_slot);
                    self.checks_changed(index, node_slot);
                }
            }
            (None, None) => {
                let ids: Vec<String> = self.nodes[node_slot].services.keys().cloned().collect();
                for id in ids {
                    self.remove_service(index, node_slot, &id);
                }
                if !self.nodes[node_slot].checks.is_empty() {
                    self.touch_checks(index);
                }
                self.touch_node(index, node_slot);
                self.nodes_index = index;
                self.topics.push(Topic::Nodes);
                let n = self.nodes.remove(node_slot);
                self.node_names.remove(&key(&n.node.name));
                if let Some(ip) = n.ip {
                    remove_from(&mut self.node_addrs, ip, node_slot);
                }
            }
        }
    }

    fn remove_service(&mut self, index: u64, node_slot: usize, id: &str) {
        let node = &mut self.nodes[node_slot];
        let Some(slot) = node.services.remove(id) else {
            return;
        };
        let had_checks = node.checks.len();
        node.checks.retain(|_, c| c.check.service_id != id);
        let checks_removed = node.checks.len() != had_checks;
        let entry = self.services.remove(slot);
        let name = key(&entry.service.name);
        self.unlink_name(index, &name, slot);
        self.touch_service(index, &name);
        self.touch_node(index, node_slot);
        if let Some(ip) = entry.ip {
            remove_from(&mut self.service_addrs, ip, slot);
        }
        if checks_removed {
            self.touch_checks(index);
            self.checks_changed(index, node_slot);
        }
    }

    // ---- queries (pure reads) ----

    /// The key/value store.
    pub fn kv(&self) -> &Kv {
        &self.kv
    }

    /// Index of the last change to the node list or any node record.
    pub fn nodes_index(&self) -> u64 {
        self.nodes_index
    }

    /// Index of the last change to any service instance.
    pub fn services_index(&self) -> u64 {
        self.services_index
    }

    /// Index of the last change to any check.
    pub fn checks_index(&self) -> u64 {
        self.checks_index
    }

    /// Services that have at least one instance, each once, by lower-cased name.
    pub fn service_name_keys(&self) -> impl Iterator<Item = &str> {
        self.service_names.keys().map(String::as_str)
    }

    /// The node a service entry runs on.
    pub fn node_of(&self, service: &ServiceEntry) -> &NodeEntry {
        &self.nodes[service.node]
    }

    /// A node by name, case-insensitively.
    pub fn node(&self, name: &str) -> Option<&NodeEntry> {
        get_ci(&self.node_names, name).map(|&slot| &self.nodes[slot])
    }

    /// All nodes, in no particular order.
    pub fn nodes(&self) -> impl Iterator<Item = &NodeEntry> {
        self.nodes.iter().map(|(_, n)| n)
    }

    /// The services registered on `node`, by service ID.
    pub fn node_services<'a>(
        &'a self,
        node: &'a NodeEntry,
    ) -> impl Iterator<Item = &'a ServiceEntry> + 'a {
        node.services.values().map(|&slot| &self.services[slot])
    }

    /// Service `id` on node `node` (node case-insensitive, ID exact).
    pub fn service(&self, node: &str, id: &str) -> Option<&ServiceEntry> {
        let n = self.node(node)?;
        n.services.get(id).map(|&slot| &self.services[slot])
    }

    /// Names of all services (as first registered), in no particular order.
    pub fn service_names(&self) -> impl Iterator<Item = &str> {
        self.service_names.values().filter_map(|sn| {
            sn.instances
                .first()
                .map(|&slot| self.services[slot].service.name.as_str())
        })
    }

    /// Index of the last change to any instance of the service `name` (0 if none).
    pub fn service_index(&self, name: &str) -> u64 {
        get_ci(&self.service_names, name).map_or(0, |sn| sn.modify_index)
    }

    /// Instances of service `name` (case-insensitive), optionally only those carrying `tag`
    /// (case-insensitive, as Consul's DNS), kept by `filter`. Costs O(instances of the name).
    pub fn instances<'a>(
        &'a self,
        name: &str,
        tag: Option<&'a str>,
        filter: HealthFilter,
    ) -> impl Iterator<Item = Instance<'a>> + 'a {
        let list = get_ci(&self.service_names, name);
        list.into_iter()
            .flat_map(|sn| sn.instances.iter())
            .filter_map(move |&slot| {
                let service = &self.services[slot];
                if let Some(tag) = tag
                    && !service
                        .service
                        .tags
                        .iter()
                        .any(|t| t.eq_ignore_ascii_case(tag))
                {
                    return None;
                }
                filter.keeps(service.health).then(|| Instance {
                    node: &self.nodes[service.node],
                    service,
                    health: service.health,
                })
            })
    }

    /// Appends to `out` the instances [`Catalog::instances`] gives without a tag, in the same
    /// order: a plain loop, cheaper per instance than that chain of iterator adapters (the DNS
    /// responder calls this for every service query).
    pub fn extend_instances<'a>(
        &'a self,
        name: &str,
        filter: HealthFilter,
        out: &mut Vec<Instance<'a>>,
    ) {
        let Some(sn) = get_ci(&self.service_names, name) else {
            return;
        };
        for &slot in &sn.instances {
            let service = &self.services[slot];
            if filter.keeps(service.health) {
                out.push(Instance {
                    node: &self.nodes[service.node],
                    service,
                    health: service.health,
                });
            }
        }
    }

    /// Whether any instance of service `name` exists, whatever its health or tags.
    pub fn has_service(&self, name: &str) -> bool {
        get_ci(&self.service_names, name).is_some()
    }

    /// Nodes whose address is `ip`.
    pub fn nodes_by_address(&self, ip: IpAddr) -> impl Iterator<Item = &NodeEntry> {
        self.node_addrs
            .get(&ip)
            .into_iter()
            .flatten()
            .map(|&slot| &self.nodes[slot])
    }

    /// Service instances whose own address is `ip`.
    pub fn services_by_address(&self, ip: IpAddr) -> impl Iterator<Item = Instance<'_>> {
        self.service_addrs
            .get(&ip)
            .into_iter()
            .flatten()
            .map(|&slot| {
                let service = &self.services[slot];
                Instance {
                    node: &self.nodes[service.node],
                    service,
                    health: service.health,
                }
            })
    }
}

/// The worst status among the node's own checks and the service's checks.
pub(super) fn aggregate_health(node: &NodeEntry, service_id: &str) -> Health {
    node.checks
        .values()
        .filter(|c| c.check.service_id.is_empty() || c.check.service_id == service_id)
        .map(|c| c.check.status)
        .max()
        .unwrap_or(Health::Passing)
}

fn check_key(k: &str) -> Result<(), ApplyError> {
    if k.is_empty() {
        return Err(ApplyError::EmptyKey);
    }
    if k.len() > kv::MAX_KEY {
        return Err(ApplyError::KeyTooLong(k.len()));
    }
    Ok(())
}

fn check_id(c: &Check) -> &str {
    if c.id.is_empty() { &c.name } else { &c.id }
}

fn remove_from(map: &mut HashMap<IpAddr, Vec<usize>>, k: IpAddr, slot: usize) {
    if let Some(v) = map.get_mut(&k) {
        v.retain(|&x| x != slot);
        if v.is_empty() {
            map.remove(&k);
        }
    }
}
