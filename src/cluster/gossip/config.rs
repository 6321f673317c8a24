//! Gossip timing and bounds, with the LAN profile, and the foca configuration derived from
//! them for a cluster of a given size.

use std::num::{NonZeroU8, NonZeroUsize};
use std::time::Duration;

use super::wire;

/// Timing and bounds of the gossip layer. Every member of a cluster should use the same.
///
/// Names follow memberlist's `Config` where they mean the same.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GossipConfig {
    /// How often each member probes one other member (memberlist `ProbeInterval`).
    pub probe_interval: Duration,
    /// How long a direct probe waits for its ack before asking others to probe
    /// (`ProbeTimeout`); the indirect probes have the rest of the interval.
    pub probe_timeout: Duration,
    /// Members asked to probe indirectly (`IndirectChecks`); also the fan-out of a leave.
    pub indirect_checks: usize,
    /// A suspect member is declared failed after
    /// `suspicion_mult * max(1, log10(n)) * probe_interval` (`SuspicionMult`).
    pub suspicion_mult: u32,
    /// Each change is piggybacked `retransmit_mult * ceil(log10(n + 1))` times
    /// (`RetransmitMult`).
    pub retransmit_mult: u32,
    /// How often pending changes are sent to `gossip_nodes` random members
    /// (`GossipInterval`); nothing is sent when nothing changed.
    pub gossip_interval: Duration,
    /// Members each gossip round goes to (`GossipNodes`).
    pub gossip_nodes: usize,
    /// How often a member asks one random member for its member list (foca's announce, in
    /// the role of memberlist's push/pull), so a large cluster converges.
    pub announce_interval: Duration,
    /// How often the cluster tries to reach failed members (serf's `ReconnectInterval`):
    /// each member tries one with probability failed/alive, so a failed member gets about
    /// one attempt per interval from the whole cluster; a member with no live peer tries
    /// its join addresses and failed members every interval. This heals partitions.
    pub reconnect_interval: Duration,
    /// A failed member is forgotten this long after it failed (Consul's
    /// `reconnect_timeout`, 72 h).
    pub reap_after: Duration,
    /// A member that left is forgotten this long after it left (serf's tombstone timeout,
    /// 24 h).
    pub tombstone_after: Duration,
    /// Largest datagram sent, envelope included; larger datagrams received are dropped.
    /// 1400 stays under a 1500-byte Ethernet MTU with IPv6 and UDP headers.
    pub max_packet_size: usize,
    /// Packets a second accepted from one source address, sustained.
    pub rate_limit: u32,
    /// Packets accepted from one source address in a burst.
    pub rate_burst: u32,
}

/// Why a [`GossipConfig`] was refused, quoting the values.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("gossip config: {0}")]
pub struct ConfigError(pub String);

/// Smallest `max_packet_size` accepted: room for the envelope, two identities and a few
/// updates.
pub const MIN_PACKET_SIZE: usize = 576;
/// Largest `max_packet_size` accepted: a UDP datagram's payload over IPv4.
pub const MAX_PACKET_SIZE: usize = 65_507;

impl GossipConfig {
    /// The LAN profile: memberlist's `DefaultLANConfig` in shape (suspicion and retransmits
    /// growing with log(n), gossip every 200 ms to 3 members, 3 indirect checks) with
    /// shorter probe times, so that a crashed member of a 5-node cluster is known failed by
    /// every member within about 2 s. Per-member traffic stays flat as the cluster grows:
    /// one probe per interval, and piggybacked changes bounded by the packet size.
    pub fn lan() -> GossipConfig {
        GossipConfig {
            probe_interval: Duration::from_millis(300),
            probe_timeout: Duration::from_millis(100),
            indirect_checks: 3,
            suspicion_mult: 2,
            retransmit_mult: 4,
            gossip_interval: Duration::from_millis(200),
            gossip_nodes: 3,
            announce_interval: Duration::from_secs(30),
            reconnect_interval: Duration::from_secs(5),
            reap_after: Duration::from_secs(72 * 3600),
            tombstone_after: Duration::from_secs(24 * 3600),
            max_packet_size: 1400,
            rate_limit: 100,
            rate_burst: 200,
        }
    }

    /// Checks the values fit together; the error names the field and the value.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let err = |m: String| Err(ConfigError(m));
        for (name, d) in [
            ("probe_interval", self.probe_interval),
            ("probe_timeout", self.probe_timeout),
            ("gossip_interval", self.gossip_interval),
            ("announce_interval", self.announce_interval),
            ("reconnect_interval", self.reconnect_interval),
            ("reap_after", self.reap_after),
            ("tombstone_after", self.tombstone_after),
        ] {
            if d.is_zero() {
                return err(format!("{name} must be more than 0"));
            }
        }
        if self.probe_timeout >= self.probe_interval {
            return err(format!(
                "probe_timeout ({:?}) must be shorter than probe_interval ({:?})",
                self.probe_timeout, self.probe_interval
            ));
        }
        for (name, n) in [
            ("indirect_checks", self.indirect_checks),
            ("gossip_nodes", self.gossip_nodes),
        ] {
            if n == 0 || n > 16 {
                return err(format!("{name} ({n}) must be 1 to 16"));
            }
        }
        for (name, n) in [
            ("suspicion_mult", self.suspicion_mult),
            ("retransmit_mult", self.retransmit_mult),
        ] {
            if n == 0 || n > 32 {
                return err(format!("{name} ({n}) must be 1 to 32"));
            }
        }
        if !(MIN_PACKET_SIZE..=MAX_PACKET_SIZE).contains(&self.max_packet_size) {
            return err(format!(
                "max_packet_size ({}) must be {MIN_PACKET_SIZE} to {MAX_PACKET_SIZE} bytes",
                self.max_packet_size
            ));
        }
        if self.rate_limit == 0 || self.rate_burst == 0 {
            return err(format!(
                "rate_limit ({}) and rate_burst ({}) must be more than 0",
                self.rate_limit, self.rate_burst
            ));
        }
        Ok(())
    }

    /// How long a suspect member of an `n`-member cluster has to refute before it is
    /// declared failed.
    pub fn suspicion_timeout(&self, n: usize) -> Duration {
        let scale = (n.max(1) as f64).log10().max(1.0);
        self.probe_interval
            .mul_f64(f64::from(self.suspicion_mult) * scale)
    }

    /// How many times each change is piggybacked in an `n`-member cluster.
    pub fn retransmits(&self, n: usize) -> u8 {
        let scale = ((n as f64) + 1.0).log10().ceil().max(1.0);
        let r = f64::from(self.retransmit_mult) * scale;
        r.clamp(1.0, 255.0) as u8
    }

    /// foca's configuration for an `n`-member cluster, with or without encryption
    /// (the envelope's bytes come off foca's packet size).
    pub(crate) fn foca(&self, n: usize, sealed: bool) -> foca::Config {
        let one = NonZeroUsize::MIN;
        foca::Config {
            probe_period: self.probe_interval,
            probe_rtt: self.probe_timeout,
            num_indirect_probes: NonZeroUsize::new(self.indirect_checks).unwrap_or(one),
            max_transmissions: NonZeroU8::new(self.retransmits(n)).unwrap_or(NonZeroU8::MIN),
            suspect_to_down_after: self.suspicion_timeout(n),
            remove_down_after: Some(self.reap_after.max(self.tombstone_after)),
            max_packet_size: NonZeroUsize::new(
                self.max_packet_size.saturating_sub(wire::overhead(sealed)),
            )
            .unwrap_or(one),
            notify_down_members: true,
            periodic_announce: Some(foca::PeriodicParams {
                frequency: self.announce_interval,
                num_members: one,
            }),
            // Reconnecting to failed members is ours (`reconnect_interval`), scaled as serf's.
            periodic_announce_to_down_members: None,
            periodic_gossip: Some(foca::PeriodicParams {
                frequency: self.gossip_interval,
                num_members: NonZeroUsize::new(self.gossip_nodes).unwrap_or(one),
            }),
        }
    }
}

impl Default for GossipConfig {
    fn default() -> GossipConfig {
        GossipConfig::lan()
    }
}
