//! Who a member is, as every gossip packet carries it: node name, gossip address, generation
//! and Consul's tags. This is foca's [`Identity`].

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};

use foca::Identity;
use serde::{Deserialize, Serialize};

/// Longest node name accepted, in bytes.
pub const MAX_NAME: usize = 128;
/// Longest datacenter name and build string accepted, in bytes.
pub const MAX_TAG: usize = 64;
/// Most bytes a [`Node`] may take encoded: two of them travel in every packet's header.
pub const MAX_ENCODED_NODE: usize = 256;

/// A member's role, Consul's `role` tag: servers (`consul`) run Raft, clients (`node`) do not.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Role {
    /// A client agent: Consul's `role=node`.
    Client,
    /// A server agent (Raft voter): Consul's `role=consul`.
    Server,
}

impl Role {
    /// The value of Consul's `role` tag.
    pub fn consul_tag(self) -> &'static str {
        match self {
            Role::Client => "node",
            Role::Server => "consul",
        }
    }
}

/// The tags a member gossips, typed: Consul carries them as a string map (see
/// [`Tags::to_consul`]), outpost as a compact struct.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Tags {
    /// Server or client (`role`).
    pub role: Role,
    /// Datacenter (`dc`), e.g. `dc1`.
    pub dc: String,
    /// Server RPC (Raft) port (`port`); meaningful for servers only.
    pub port: u16,
    /// Protocol version (`vsn`).
    pub vsn: u8,
    /// Agent build (`build`), e.g. `0.1.0`.
    pub build: String,
    /// Started with `-bootstrap` (`bootstrap=1`).
    pub bootstrap: bool,
    /// `-bootstrap-expect` (`expect`), 0 when not set.
    pub expect: u16,
}

impl Tags {
    /// A client's tags in datacenter `dc`, with this build's version.
    pub fn client(dc: &str) -> Tags {
        Tags {
            role: Role::Client,
            dc: dc.to_string(),
            port: 0,
            vsn: 2,
            build: env!("CARGO_PKG_VERSION").to_string(),
            bootstrap: false,
            expect: 0,
        }
    }

    /// A server's tags in datacenter `dc`, its RPC on `port`.
    pub fn server(dc: &str, port: u16) -> Tags {
        Tags {
            role: Role::Server,
            port,
            ..Tags::client(dc)
        }
    }

    /// The tags as Consul's `/v1/agent/members` shows them: `role`, `dc`, `vsn`, `build`,
    /// and for servers `port`, plus `bootstrap=1` and `expect` when set.
    pub fn to_consul(&self) -> BTreeMap<String, String> {
        let mut m = BTreeMap::new();
        m.insert("role".to_string(), self.role.consul_tag().to_string());
        m.insert("dc".to_string(), self.dc.clone());
        m.insert("vsn".to_string(), self.vsn.to_string());
        m.insert("build".to_string(), self.build.clone());
        if self.role == Role::Server {
            m.insert("port".to_string(), self.port.to_string());
        }
        if self.bootstrap {
            m.insert("bootstrap".to_string(), "1".to_string());
        }
        if self.expect > 0 {
            m.insert("expect".to_string(), self.expect.to_string());
        }
        m
    }
}

/// A member's identity. Two identities with the same `addr` are the same member at two
/// moments; the one with the higher `generation` wins (foca's "address conflict"), which is
/// how a restarted node, a node declared failed that comes back, a tag change and a leave
/// replace what the cluster knew.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Node {
    /// Node name, unique in the cluster (Consul's `Name`). Empty only in the placeholder a
    /// join is sent to ([`Node::placeholder`]).
    pub name: String,
    /// Where its gossip is sent: the advertised address and gossip port.
    pub addr: SocketAddr,
    /// Rejoin generation: raised on every restart (the shell uses the Unix time), every
    /// rejoin after being declared failed, every tag change and on leave.
    pub generation: u32,
    /// Set on the identity a member leaves with: when it goes down, it has left, not failed.
    pub leaving: bool,
    /// Consul's tags.
    pub tags: Tags,
}

impl Node {
    /// A new identity: `generation` should grow across restarts of the same node (the
    /// Unix time in seconds does; a rejoin works without it, only more slowly).
    pub fn new(name: &str, addr: SocketAddr, generation: u32, tags: Tags) -> Node {
        Node {
            name: name.to_string(),
            addr,
            generation,
            leaving: false,
            tags,
        }
    }

    /// The identity a join is sent to when only the address is known: an empty name, which
    /// the receiver replaces by its own identity (see `Gossip::join`).
    pub fn placeholder(addr: SocketAddr) -> Node {
        Node::new("", addr, 0, Tags::client(""))
    }

    /// Whether this is a [`Node::placeholder`].
    pub fn is_placeholder(&self) -> bool {
        self.name.is_empty()
    }

    /// The same member, one generation on (`None` at the very last generation).
    pub fn next_generation(&self) -> Option<Node> {
        let generation = self.generation.checked_add(1)?;
        Some(Node {
            generation,
            ..self.clone()
        })
    }

    /// Checks what a local identity must satisfy, naming the field: a name of 1 to
    /// [`MAX_NAME`] bytes without control characters, a specific address with a port,
    /// short tags, and at most [`MAX_ENCODED_NODE`] bytes encoded.
    pub fn validate(&self) -> Result<(), String> {
        if self.name.is_empty() || self.name.len() > MAX_NAME {
            return Err(format!(
                "node name {:?} must be 1 to {MAX_NAME} bytes long",
                self.name
            ));
        }
        if self.name.chars().any(char::is_control) {
            return Err(format!(
                "node name {:?} must not contain control characters",
                self.name
            ));
        }
        if self.addr.ip().is_unspecified() || self.addr.port() == 0 {
            return Err(format!(
                "gossip address {} must be a specific address and port that other members \
                 can reach (give an advertise address)",
                self.addr
            ));
        }
        for (field, value) in [("dc", &self.tags.dc), ("build", &self.tags.build)] {
            if value.len() > MAX_TAG {
                return Err(format!(
                    "tag {field} {value:?} is longer than {MAX_TAG} bytes"
                ));
            }
        }
        let encoded = postcard::to_allocvec(self).map_err(|e| e.to_string())?;
        if encoded.len() > MAX_ENCODED_NODE {
            return Err(format!(
                "node identity takes {} bytes encoded, more than {MAX_ENCODED_NODE}",
                encoded.len()
            ));
        }
        Ok(())
    }
}

impl Default for Node {
    fn default() -> Node {
        Node::placeholder(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)))
    }
}

impl Identity for Node {
    type Addr = SocketAddr;

    /// After being declared failed the node comes back one generation on, unless it was
    /// leaving: a node that left stays left.
    fn renew(&self) -> Option<Node> {
        if self.leaving {
            None
        } else {
            self.next_generation()
        }
    }

    fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn win_addr_conflict(&self, adversary: &Node) -> bool {
        self.generation
            .cmp(&adversary.generation)
            .then_with(|| self.cmp(adversary))
            .is_gt()
    }
}
