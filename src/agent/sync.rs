//! Turns a validated config into the catalog command that makes the catalog match it:
//! register what the config defines, deregister what an earlier config defined and this one
//! does not. One command, so a reload is applied entirely or not at all.

use std::collections::BTreeMap;

use crate::catalog::{
    Catalog, Change, Check, Command, Deregistration, Health, Node, Registration, Service,
};

/// ID of the node check that says the agent is alive.
pub const SERF_HEALTH: &str = "serfHealth";
use crate::config::{AgentConfig, ServiceDef};

/// What one config says each node should hold.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Desired {
    /// By node name.
    nodes: BTreeMap<String, DesiredNode>,
}

#[derive(Clone, Debug, PartialEq)]
struct DesiredNode {
    node: Node,
    services: Vec<ServiceDef>,
    checks: Vec<Check>,
}

impl Desired {
    pub fn from_config(c: &AgentConfig) -> Desired {
        let mut nodes = BTreeMap::new();
        let mut services = c.services.clone();
        if c.server
            && let Some(port) = c.ports.server
        {
            // Consul lists its servers as the `consul` service.
            services.push(ServiceDef {
                service: Service::new("consul", "consul", &[], port),
                checks: Vec::new(),
            });
        }
        // Consul keeps a `serfHealth` check on every agent's node, driven by gossip (its
        // status follows membership once gossip lands).
        let mut checks = vec![Check {
            name: "Serf Health Status".into(),
            output: "Agent alive and reachable".into(),
            ..Check::new(SERF_HEALTH, "", Health::Passing)
        }];
        checks.extend(c.checks.iter().cloned());
        nodes.insert(
            c.node_name.clone(),
            DesiredNode {
                node: c.local_node(),
                services,
                checks,
            },
        );
        for e in &c.external_nodes {
            nodes.insert(
                e.node.name.clone(),
                DesiredNode {
                    node: e.node.clone(),
                    services: e.services.clone(),
                    checks: Vec::new(),
                },
            );
        }
        Desired { nodes }
    }

    /// Whether `catalog` lacks something this config defines: a node, a service or a check
    /// (by ID). A Raft server re-registers its config when it does (anti-entropy).
    pub fn missing_from(&self, catalog: &Catalog) -> bool {
        self.nodes.iter().any(|(name, d)| {
            let Some(n) = catalog.node(name) else {
                return true;
            };
            d.services
                .iter()
                .any(|s| catalog.service(name, &s.service.id).is_none())
                || d.services
                    .iter()
                    .flat_map(|s| s.checks.iter())
                    .chain(d.checks.iter())
                    .any(|c| !n.checks.contains_key(&c.id))
        })
    }

    /// The command that takes the catalog from `previous` (what the last applied config
    /// defined) to `self`. Checks whose definition is unchanged keep the status and output
    /// the catalog has for them, so a reload does not reset health.
    pub fn command(&self, previous: &Desired, catalog: &Catalog) -> Command {
        let mut changes = Vec::new();
        for (name, old) in &previous.nodes {
            match self.nodes.get(name) {
                None => changes.push(Change::Deregister(Deregistration {
                    node: name.clone(),
                    service_id: None,
                    check_id: None,
                })),
                Some(new) => {
                    for s in &old.services {
                        if !new.services.iter().any(|n| n.service.id == s.service.id) {
                            changes.push(Change::Deregister(Deregistration {
                                node: name.clone(),
                                service_id: Some(s.service.id.clone()),
                                check_id: None,
                            }));
                        }
                    }
                    let new_check_ids: Vec<&str> = new
                        .services
                        .iter()
                        .flat_map(|s| s.checks.iter())
                        .chain(new.checks.iter())
                        .map(|c| c.id.as_str())
                        .collect();
                    for c in old
                        .services
                        .iter()
                        .flat_map(|s| s.checks.iter())
                        .chain(old.checks.iter())
                    {
                        if !new_check_ids.contains(&c.id.as_str()) {
                            changes.push(Change::Deregister(Deregistration {
                                node: name.clone(),
                                service_id: None,
                                check_id: Some(c.id.clone()),
                            }));
                        }
                    }
                }
            }
        }
        for (name, d) in &self.nodes {
            let keep = |c: &Check| -> Check {
                let mut c = c.clone();
                if let Some(existing) = catalog.node(name).and_then(|n| n.checks.get(&c.id))
                    && existing.check.definition == c.definition
                    && existing.check.service_id == c.service_id
                {
                    c.status = existing.check.status;
                    c.output = existing.check.output.clone();
                }
                c
            };
            changes.push(Change::Register(Registration {
                node: d.node.clone(),
                service: None,
                checks: d.checks.iter().map(keep).collect(),
            }));
            for s in &d.services {
                changes.push(Change::Register(Registration {
                    node: d.node.clone(),
                    service: Some(s.service.clone()),
                    checks: s.checks.iter().map(keep).collect(),
                }));
            }
        }
        Command { changes }
    }
}
