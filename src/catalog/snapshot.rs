//! The whole catalog as bytes and back: what a Raft snapshot carries, so that a server that
//! fell behind (or a new one) starts from the leader's state instead of the whole log.
//!
//! Restoring gives a catalog that answers every query exactly as the original did and applies
//! later commands the same way: nodes, services (their order within a service name, which DNS
//! answers follow), checks, every index, KV entries, tombstones and the tombstone floor.
//! Internal slot numbers are renumbered densely; nothing observable depends on them.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use slab::Slab;

use super::kv::{Kv, KvEntry};
use super::model::{Check, Node, Service};
use super::state::{
    Catalog, CheckEntry, NodeEntry, ServiceEntry, ServiceName, aggregate_health, key,
    next_generation,
};

/// Upper bound on a snapshot accepted for decoding (a catalog of a few thousand nodes and
/// services, plus KV values, is far below it).
pub const MAX_SNAPSHOT: usize = 256 << 20;

/// Why snapshot bytes could not be restored. The catalog they were meant to replace is
/// untouched.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("catalog snapshot of {0} bytes is over the {MAX_SNAPSHOT}-byte limit")]
    TooLarge(usize),
    #[error("catalog snapshot version {0} is not known to this build (it knows version 1)")]
    Version(u32),
    #[error("malformed catalog snapshot: {0}")]
    Malformed(#[from] postcard::Error),
    #[error("inconsistent catalog snapshot: {0}")]
    Inconsistent(String),
}

const VERSION: u32 = 1;

// The records borrow from the catalog when written (a snapshot copies nothing but the
// bytes) and own their data when read.
#[derive(Serialize, Deserialize)]
struct SnapshotV1<'a> {
    version: u32,
    index: u64,
    nodes_index: u64,
    services_index: u64,
    checks_index: u64,
    /// In slot order.
    nodes: Vec<NodeRecord<'a>>,
    /// In slot order.
    services: Vec<ServiceRecord<'a>>,
    /// Sorted by key, so equal catalogs give equal bytes.
    service_names: Vec<NameRecord<'a>>,
    kv_entries: Vec<Cow<'a, KvEntry>>,
    kv_tombstones: Vec<(Cow<'a, str>, u64)>,
    kv_floor: u64,
    kv_index: u64,
}

#[derive(Serialize, Deserialize)]
struct NodeRecord<'a> {
    node: Cow<'a, Node>,
    create_index: u64,
    modify_index: u64,
    data_index: u64,
    checks: Vec<CheckRecord<'a>>,
}

#[derive(Serialize, Deserialize)]
struct CheckRecord<'a> {
    check: Cow<'a, Check>,
    create_index: u64,
    modify_index: u64,
}

#[derive(Serialize, Deserialize)]
struct ServiceRecord<'a> {
    service: Cow<'a, Service>,
    create_index: u64,
    modify_index: u64,
    /// Position of its node in `nodes`.
    node: u32,
}

#[derive(Serialize, Deserialize)]
struct NameRecord<'a> {
    key: Cow<'a, str>,
    modify_index: u64,
    /// Positions in `services`, in the order queries return them.
    instances: Vec<u32>,
}

impl Catalog {
    /// The whole catalog, postcard-encoded (see [`Catalog::restore`]).
    pub fn snapshot(&self) -> Vec<u8> {
        self.snapshot_with_capacity(0)
    }

    /// [`Catalog::snapshot`] into a buffer allocated for `capacity` bytes (a big catalog's
    /// bytes are then written once, not copied at each doubling of the buffer).
    pub fn snapshot_with_capacity(&self, capacity: usize) -> Vec<u8> {
        // Dense positions for the slots in use.
        let node_pos: HashMap<usize, u32> = self
            .nodes
            .iter()
            .enumerate()
            .map(|(i, (slot, _))| (slot, i as u32))
            .collect();
        let service_pos: HashMap<usize, u32> = self
            .services
            .iter()
            .enumerate()
            .map(|(i, (slot, _))| (slot, i as u32))
            .collect();
        let nodes = self
            .nodes
            .iter()
            .map(|(_, n)| NodeRecord {
                node: Cow::Borrowed(&n.node),
                create_index: n.create_index,
                modify_index: n.modify_index,
                data_index: n.data_index,
                checks: n
                    .checks
                    .values()
                    .map(|c| CheckRecord {
                        check: Cow::Borrowed(&c.check),
                        create_index: c.create_index,
                        modify_index: c.modify_index,
                    })
                    .collect(),
            })
            .collect();
        let services = self
            .services
            .iter()
            .map(|(_, s)| ServiceRecord {
                service: Cow::Borrowed(&s.service),
                create_index: s.create_index,
                modify_index: s.modify_index,
                node: node_pos[&s.node],
            })
            .collect();
        let mut service_names: Vec<NameRecord> = self
            .service_names
            .iter()
            .map(|(k, sn)| NameRecord {
                key: Cow::Borrowed(k.as_str()),
                modify_index: sn.modify_index,
                instances: sn.instances.iter().map(|s| service_pos[s]).collect(),
            })
            .collect();
        service_names.sort_by(|a, b| a.key.cmp(&b.key));
        let snap = SnapshotV1 {
            version: VERSION,
            index: self.index,
            nodes_index: self.nodes_index,
            services_index: self.services_index,
            checks_index: self.checks_index,
            nodes,
            services,
            service_names,
            kv_entries: self.kv.entries.values().map(Cow::Borrowed).collect(),
            kv_tombstones: self
                .kv
                .tombstones
                .iter()
                .map(|(k, &i)| (Cow::Borrowed(k.as_str()), i))
                .collect(),
            kv_floor: self.kv.floor,
            kv_index: self.kv.index,
        };
        postcard::to_extend(&snap, Vec::with_capacity(capacity))
            .expect("plain structs always serialize")
    }

    /// The catalog that [`Catalog::snapshot`] gave these bytes for. Bytes that are not such a
    /// snapshot (truncated, corrupt, from an unknown version, or naming things that do not
    /// fit together) are an error, never a panic.
    pub fn restore(bytes: &[u8]) -> Result<Catalog, SnapshotError> {
        if bytes.len() > MAX_SNAPSHOT {
            return Err(SnapshotError::TooLarge(bytes.len()));
        }
        // The version leads, so a future format is named rather than misread.
        let (version, _): (u32, _) = postcard::take_from_bytes(bytes)?;
        if version != VERSION {
            return Err(SnapshotError::Version(version));
        }
        let snap: SnapshotV1 = postcard::from_bytes(bytes)?;
        let bad = |what: String| Err(SnapshotError::Inconsistent(what));

        let mut c = Catalog {
            index: snap.index,
            generation: next_generation(),
            nodes: Slab::with_capacity(snap.nodes.len()),
            services: Slab::with_capacity(snap.services.len()),
            node_names: HashMap::new(),
            service_names: HashMap::new(),
            node_addrs: HashMap::new(),
            service_addrs: HashMap::new(),
            nodes_index: snap.nodes_index,
            services_index: snap.services_index,
            checks_index: snap.checks_index,
            kv: Kv::default(),
            topics: Vec::new(),
        };
        for n in snap.nodes {
            let node = n.node.into_owned();
            let nk = key(&node.name);
            let ip = node.address.parse::<IpAddr>().ok();
            let mut checks = BTreeMap::new();
            for r in n.checks {
                if checks.contains_key(&r.check.id) {
                    return bad(format!(
                        "node {:?} has check {:?} twice",
                        node.name, r.check.id
                    ));
                }
                checks.insert(
                    r.check.id.clone(),
                    CheckEntry {
                        check: r.check.into_owned(),
                        create_index: r.create_index,
                        modify_index: r.modify_index,
                    },
                );
            }
            let slot = c.nodes.insert(NodeEntry {
                node,
                ip,
                create_index: n.create_index,
                modify_index: n.modify_index,
                data_index: n.data_index,
                services: BTreeMap::new(),
                checks,
            });
            if c.node_names.insert(nk.clone(), slot).is_some() {
                return bad(format!("node {nk:?} appears twice"));
            }
            if let Some(ip) = ip {
                c.node_addrs.entry(ip).or_default().push(slot);
            }
        }
        for s in snap.services {
            let node_slot = s.node as usize;
            let Some(node) = c.nodes.get(node_slot) else {
                return bad(format!(
                    "service {:?} is on node #{node_slot}, which does not exist",
                    s.service.id
                ));
            };
            let health = aggregate_health(node, &s.service.id);
            let ip = s.service.address.parse::<IpAddr>().ok();
            let id = s.service.id.clone();
            let slot = c.services.insert(ServiceEntry {
                service: s.service.into_owned(),
                ip,
                health,
                create_index: s.create_index,
                modify_index: s.modify_index,
                node: node_slot,
            });
            if c.nodes[node_slot]
                .services
                .insert(id.clone(), slot)
                .is_some()
            {
                return bad(format!(
                    "service {id:?} appears twice on node {:?}",
                    c.nodes[node_slot].node.name
                ));
            }
            if let Some(ip) = ip {
                c.service_addrs.entry(ip).or_default().push(slot);
            }
        }
        let mut listed = vec![false; c.services.len()];
        for n in snap.service_names {
            let mut instances = Vec::with_capacity(n.instances.len());
            for i in n.instances {
                let slot = i as usize;
                let fits = c
                    .services
                    .get(slot)
                    .is_some_and(|s| key(&s.service.name) == n.key);
                if !fits || std::mem::replace(&mut listed[slot], true) {
                    return bad(format!(
                        "service name {:?} lists instance #{slot}, which is not one of its own",
                        n.key
                    ));
                }
                instances.push(slot);
            }
            if instances.is_empty() {
                return bad(format!("service name {:?} has no instances", n.key));
            }
            c.service_names.insert(
                n.key.into_owned(),
                ServiceName {
                    modify_index: n.modify_index,
                    instances,
                },
            );
        }
        if let Some(slot) = listed.iter().position(|l| !l) {
            return bad(format!(
                "service {:?} is missing from its service name's list",
                c.services[slot].service.id
            ));
        }
        for e in snap.kv_entries {
            let k = e.key.clone();
            if c.kv.entries.insert(k.clone(), e.into_owned()).is_some() {
                return bad(format!("KV key {k:?} appears twice"));
            }
        }
        c.kv.tombstones = snap
            .kv_tombstones
            .into_iter()
            .map(|(k, i)| (k.into_owned(), i))
            .collect();
        c.kv.floor = snap.kv_floor;
        c.kv.index = snap.kv_index;
        Ok(c)
    }
}

#[cfg(test)]
mod tests;
