//! Query names in Consul's DNS grammar: which part of the catalog a question asks for.
//! Pure functions over the question's labels; nothing here allocates.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use simple_dns::Label;

/// What a query name refers to, decided from its labels alone (the catalog is not consulted).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Lookup<'n> {
    /// Neither in our domain nor under `arpa.`.
    Outside,
    /// Under `arpa.`: the address of a complete `in-addr.arpa`/`ip6.arpa` name, else `None`.
    Arpa(Option<IpAddr>),
    /// The domain itself (`consul.`).
    Apex,
    /// `<node>.node[.<dc>].<domain>`: the node name's labels (Consul joins them with dots).
    Node(&'n [Label<'n>]),
    /// `[<tag>.]<svc>.service…`, `_<svc>._<tag>.service…` (RFC 2782) and, for SRV only,
    /// `_<svc>._<tag>[.<dc>].<domain>` without the `service` label.
    Service { name: &'n [u8], tag: Tag<'n> },
    /// `<hex>.addr[…].<domain>`: Consul ignores whatever follows `addr`.
    Addr(IpAddr),
    /// Inside the domain but nothing can exist there: malformed names, other datacenters,
    /// peers, kinds outpost does not serve (`connect`, `ingress`, `virtual`, `query`).
    NotFound,
}

/// The tag filter of a service lookup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Tag<'n> {
    /// No filter (`_svc._tcp`, or no tag at all).
    Any,
    /// One tag: a label, or the RFC 2782 `_tag` label without its underscore.
    One(&'n [u8]),
    /// Consul 0.3 style `a.b.svc.service`: the tag is `a.b` (labels joined with dots).
    Dotted(&'n [Label<'n>]),
}

impl Tag<'_> {
    /// Whether a registered service tag matches, ASCII case-insensitively (as Consul's DNS).
    pub(crate) fn matches(&self, tag: &str) -> bool {
        match self {
            Tag::Any => true,
            Tag::One(t) => tag.as_bytes().eq_ignore_ascii_case(t),
            Tag::Dotted(labels) => dotted_eq(tag, labels),
        }
    }
}

/// Whether `s` equals `labels` joined with dots, ignoring ASCII case.
pub(crate) fn dotted_eq(s: &str, labels: &[Label<'_>]) -> bool {
    let mut parts = s.as_bytes().split(|b| *b == b'.');
    for label in labels {
        match parts.next() {
            Some(p) if p.eq_ignore_ascii_case(label.as_ref()) => {}
            _ => return false,
        }
    }
    parts.next().is_none()
}

/// Our zone as the classifier needs it: lower-case labels of the domain and the datacenter.
pub(crate) struct Zone<'z> {
    pub domain: &'z [String],
    pub datacenter: &'z str,
}

const SRV: u16 = 33;

/// Classifies `labels` (the question name, root label excluded) for a query of type `qtype`,
/// following Consul's `dispatch` (agent/dns.go): the rightmost kind label decides.
pub(crate) fn classify<'n>(labels: &'n [Label<'n>], qtype: u16, zone: &Zone<'_>) -> Lookup<'n> {
    let in_domain = ends_with(labels, zone.domain.iter().map(String::as_bytes));
    let in_arpa = ends_with(labels, [&b"arpa"[..]].into_iter());
    // Consul registers both `arpa.` and the domain on miekg's mux, where the longer zone
    // wins; only a root domain (no labels) is shorter than `arpa.`.
    if in_arpa && (!in_domain || zone.domain.is_empty()) {
        return Lookup::Arpa(reverse_address(labels));
    }
    if !in_domain {
        return Lookup::Outside;
    }
    let Some(rest) = labels.get(..labels.len() - zone.domain.len()) else {
        return Lookup::Outside;
    };
    if rest.is_empty() {
        return Lookup::Apex;
    }
    let Some((i, kind)) = find_kind(rest, qtype) else {
        return Lookup::NotFound;
    };
    let (parts, suffixes) = match kind {
        // `_svc._tag` without `service`: the underscore label itself is part of the query.
        Kind::SrvShorthand => (rest.get(..=i), rest.get(i + 1..)),
        _ => (rest.get(..i), rest.get(i + 1..)),
    };
    let (Some(parts), Some(suffixes)) = (parts, suffixes) else {
        return Lookup::NotFound;
    };
    match kind {
        Kind::Service | Kind::SrvShorthand => {
            if !locality_is_ours(suffixes, zone.datacenter) {
                return Lookup::NotFound;
            }
            service(parts)
        }
        Kind::Node => {
            if parts.is_empty() || !locality_is_ours(suffixes, zone.datacenter) {
                return Lookup::NotFound;
            }
            Lookup::Node(parts)
        }
        Kind::Addr => match parts {
            [one] => decode_hex_ip(one.as_ref()).map_or(Lookup::NotFound, Lookup::Addr),
            _ => Lookup::NotFound,
        },
        Kind::Unsupported => Lookup::NotFound,
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Service,
    SrvShorthand,
    Node,
    Addr,
    Unsupported,
}

/// The rightmost label naming a kind of query, as Consul scans from the right.
fn find_kind(rest: &[Label<'_>], qtype: u16) -> Option<(usize, Kind)> {
    for (i, label) in rest.iter().enumerate().rev() {
        let l = label.as_ref();
        let kind = if l.eq_ignore_ascii_case(b"service") {
            Kind::Service
        } else if l.eq_ignore_ascii_case(b"node") {
            Kind::Node
        } else if l.eq_ignore_ascii_case(b"addr") {
            Kind::Addr
        } else if [&b"connect"[..], b"virtual", b"ingress", b"query"]
            .iter()
            .any(|k| l.eq_ignore_ascii_case(k))
        {
            Kind::Unsupported
        } else if qtype == SRV && l.first() == Some(&b'_') {
            Kind::SrvShorthand
        } else {
            continue;
        };
        return Some((i, kind));
    }
    None
}

fn service<'n>(parts: &'n [Label<'n>]) -> Lookup<'n> {
    match parts {
        [] => Lookup::NotFound,
        // RFC 2782 `_svc._tag`; Consul treats only `_tcp` as "no tag" (not `_udp`).
        [svc, tag]
            if svc.as_ref().first() == Some(&b'_') && tag.as_ref().first() == Some(&b'_') =>
        {
            let name = svc.as_ref().get(1..).unwrap_or_default();
            let tag = tag.as_ref().get(1..).unwrap_or_default();
            let tag = if tag.is_empty() || tag.eq_ignore_ascii_case(b"tcp") {
                Tag::Any
            } else {
                Tag::One(tag)
            };
            if name.is_empty() {
                Lookup::NotFound
            } else {
                Lookup::Service { name, tag }
            }
        }
        [svc] => Lookup::Service {
            name: svc.as_ref(),
            tag: Tag::Any,
        },
        [tag, svc] => Lookup::Service {
            name: svc.as_ref(),
            tag: Tag::One(tag.as_ref()),
        },
        [tags @ .., svc] => Lookup::Service {
            name: svc.as_ref(),
            tag: Tag::Dotted(tags),
        },
    }
}

/// Consul CE's `parseLocality`: nothing, `<dc>`, or `<x>.dc`/`<x>.peer` pairs. Outpost serves
/// one datacenter and no peers, so anything else cannot exist (Consul: "no path to
/// datacenter", NXDOMAIN).
fn locality_is_ours(suffixes: &[Label<'_>], datacenter: &str) -> bool {
    let ours = |l: &Label<'_>| l.as_ref().eq_ignore_ascii_case(datacenter.as_bytes());
    match suffixes {
        [] => true,
        [dc] => ours(dc),
        [_, _] | [_, _, _, _] => {
            let mut dc_seen = false;
            for pair in suffixes.chunks_exact(2) {
                let [value, key] = pair else { return false };
                if key.as_ref().eq_ignore_ascii_case(b"dc") && !dc_seen && ours(value) {
                    dc_seen = true;
                } else {
                    // A peer, a second dc, another dc or an unknown key.
                    return false;
                }
            }
            true
        }
        _ => false,
    }
}

fn ends_with<'a, I>(labels: &[Label<'_>], suffix: I) -> bool
where
    I: DoubleEndedIterator<Item = &'a [u8]> + ExactSizeIterator,
{
    if suffix.len() > labels.len() {
        return false;
    }
    labels
        .iter()
        .rev()
        .zip(suffix.rev())
        .all(|(l, s)| l.as_ref().eq_ignore_ascii_case(s))
}

/// `d.c.b.a.in-addr.arpa` → `a.b.c.d`; 32 nibbles `….ip6.arpa` → the IPv6 address. Only the
/// canonical spelling matches, as Consul compares against `dns.ReverseAddr`.
pub(crate) fn reverse_address(labels: &[Label<'_>]) -> Option<IpAddr> {
    match labels {
        [o4, o3, o2, o1, in_addr, _arpa] if in_addr.as_ref().eq_ignore_ascii_case(b"in-addr") => {
            let octet = |l: &Label<'_>| decimal_octet(l.as_ref());
            Some(IpAddr::V4(Ipv4Addr::new(
                octet(o1)?,
                octet(o2)?,
                octet(o3)?,
                octet(o4)?,
            )))
        }
        [nibbles @ .., ip6, _arpa]
            if ip6.as_ref().eq_ignore_ascii_case(b"ip6") && nibbles.len() == 32 =>
        {
            let mut v: u128 = 0;
            for l in nibbles.iter().rev() {
                let [d] = l.as_ref() else { return None };
                v = (v << 4) | u128::from(hex_digit(*d)?);
            }
            Some(IpAddr::V6(Ipv6Addr::from(v)))
        }
        _ => None,
    }
}

fn decimal_octet(s: &[u8]) -> Option<u8> {
    if s.is_empty() || s.len() > 3 || (s.len() > 1 && s.first() == Some(&b'0')) {
        return None;
    }
    let mut v: u16 = 0;
    for &d in s {
        if !d.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u16::from(d - b'0');
    }
    u8::try_from(v).ok()
}

fn hex_digit(d: u8) -> Option<u8> {
    match d {
        b'0'..=b'9' => Some(d - b'0'),
        b'a'..=b'f' => Some(d - b'a' + 10),
        b'A'..=b'F' => Some(d - b'A' + 10),
        _ => None,
    }
}

/// Consul's `<hex>.addr` label: 8 hex digits are an IPv4 address, 32 an IPv6 address.
pub(crate) fn decode_hex_ip(s: &[u8]) -> Option<IpAddr> {
    let mut v: u128 = 0;
    for &d in s {
        v = (v << 4) | u128::from(hex_digit(d)?);
    }
    match s.len() {
        8 => Some(IpAddr::V4(Ipv4Addr::from(v as u32))),
        32 => Some(IpAddr::V6(Ipv6Addr::from(v))),
        _ => None,
    }
}

/// Writes Consul's `<hex>.addr` label for `ip` (lower-case, 8 or 32 digits) into `buf`.
pub(crate) fn encode_hex_ip(ip: IpAddr, buf: &mut [u8; 32]) -> &[u8] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let (v, digits) = match ip {
        IpAddr::V4(a) => (u128::from(u32::from(a)), 8),
        IpAddr::V6(a) => (u128::from(a), 32),
    };
    for (i, b) in buf.iter_mut().take(digits).enumerate() {
        let shift = 4 * (digits - 1 - i);
        *b = HEX[((v >> shift) & 0xf) as usize];
    }
    &buf[..digits]
}

#[cfg(test)]
mod tests {
    use super::*;
    use simple_dns::Name;

    fn zone_parts() -> (Vec<String>, String) {
        (vec!["consul".to_string()], "dc1".to_string())
    }

    fn classify_str(name: &str, qtype: u16) -> String {
        let (domain, dc) = zone_parts();
        let zone = Zone {
            domain: &domain,
            datacenter: &dc,
        };
        let name = Name::new_unchecked(name);
        let show = |l: &[u8]| String::from_utf8_lossy(l).into_owned();
        match classify(name.get_labels(), qtype, &zone) {
            Lookup::Outside => "outside".into(),
            Lookup::Arpa(ip) => format!("arpa {ip:?}"),
            Lookup::Apex => "apex".into(),
            Lookup::Node(parts) => {
                format!(
                    "node {}",
                    parts
                        .iter()
                        .map(|l| show(l.as_ref()))
                        .collect::<Vec<_>>()
                        .join(".")
                )
            }
            Lookup::Service { name, tag } => {
                let tag = match tag {
                    Tag::Any => "-".to_string(),
                    Tag::One(t) => show(t),
                    Tag::Dotted(ls) => ls
                        .iter()
                        .map(|l| show(l.as_ref()))
                        .collect::<Vec<_>>()
                        .join("."),
                };
                format!("service {} tag {tag}", show(name))
            }
            Lookup::Addr(ip) => format!("addr {ip}"),
            Lookup::NotFound => "notfound".into(),
        }
    }

    const A: u16 = 1;

    #[test]
    fn service_forms_follow_consul_dispatch() {
        assert_eq!(classify_str("web.service.consul", A), "service web tag -");
        assert_eq!(classify_str("WEB.Service.CONSUL", A), "service WEB tag -");
        assert_eq!(
            classify_str("web.service.dc1.consul", A),
            "service web tag -"
        );
        assert_eq!(
            classify_str("web.service.dc1.dc.consul", A),
            "service web tag -"
        );
        assert_eq!(
            classify_str("rails.web.service.consul", A),
            "service web tag rails"
        );
        assert_eq!(
            classify_str("a.b.web.service.consul", A),
            "service web tag a.b"
        );
        assert_eq!(
            classify_str("_web._tcp.service.consul", SRV),
            "service web tag -"
        );
        assert_eq!(
            classify_str("_web._TCP.service.consul", SRV),
            "service web tag -"
        );
        // Consul strips the tag filter only for `_tcp`; `_udp` is a tag named "udp".
        assert_eq!(
            classify_str("_web._udp.service.consul", SRV),
            "service web tag udp"
        );
        assert_eq!(
            classify_str("_web._rails.service.dc1.consul", SRV),
            "service web tag rails"
        );
    }

    #[test]
    fn srv_shorthand_without_service_label_only_for_srv() {
        assert_eq!(classify_str("_web._tcp.consul", SRV), "service web tag -");
        assert_eq!(
            classify_str("_web._tcp.dc1.consul", SRV),
            "service web tag -"
        );
        assert_eq!(classify_str("_web._tcp.consul", A), "notfound");
    }

    #[test]
    fn other_datacenters_peers_and_unknown_forms_are_not_found() {
        assert_eq!(classify_str("web.service.dc2.consul", A), "notfound");
        assert_eq!(classify_str("web.service.p1.peer.consul", A), "notfound");
        assert_eq!(
            classify_str("web.service.dc1.dc.p.peer.consul", A),
            "notfound"
        );
        assert_eq!(classify_str("web.service.x.y.z.consul", A), "notfound");
        assert_eq!(classify_str("service.consul", A), "notfound");
        assert_eq!(classify_str("dc1.consul", A), "notfound");
        assert_eq!(classify_str("whatever.consul", A), "notfound");
        assert_eq!(classify_str("web.connect.consul", A), "notfound");
        assert_eq!(classify_str("q.query.consul", A), "notfound");
        assert_eq!(classify_str("node.consul", A), "notfound");
    }

    #[test]
    fn node_names_may_span_labels() {
        assert_eq!(classify_str("n1.node.consul", A), "node n1");
        assert_eq!(classify_str("a.b.node.dc1.consul", A), "node a.b");
        assert_eq!(classify_str("n1.node.dc2.consul", A), "notfound");
    }

    #[test]
    fn apex_outside_and_arpa() {
        assert_eq!(classify_str("consul", A), "apex");
        assert_eq!(classify_str("CONSUL", A), "apex");
        assert_eq!(classify_str("example.com", A), "outside");
        assert_eq!(classify_str("consul.example.com", A), "outside");
        assert_eq!(
            classify_str("4.3.2.10.in-addr.arpa", 12),
            "arpa Some(10.2.3.4)"
        );
        assert_eq!(classify_str("04.3.2.10.in-addr.arpa", 12), "arpa None");
        assert_eq!(classify_str("3.2.10.in-addr.arpa", 12), "arpa None");
        assert_eq!(classify_str("256.3.2.10.in-addr.arpa", 12), "arpa None");
        let v6 = "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.B.D.0.1.0.0.2.ip6.arpa";
        assert_eq!(classify_str(v6, 12), "arpa Some(2001:db8::1)");
        assert_eq!(classify_str("foo.arpa", 12), "arpa None");
    }

    #[test]
    fn addr_labels_decode_hex_and_ignore_suffixes() {
        assert_eq!(
            classify_str("7f000001.addr.dc1.consul", A),
            "addr 127.0.0.1"
        );
        assert_eq!(classify_str("7F000001.addr.consul", A), "addr 127.0.0.1");
        assert_eq!(
            classify_str("7f000001.addr.anything.at.all.consul", A),
            "addr 127.0.0.1"
        );
        assert_eq!(
            classify_str("20010db8000000000000000000000001.addr.dc1.consul", A),
            "addr 2001:db8::1"
        );
        assert_eq!(classify_str("7f00001.addr.dc1.consul", A), "notfound");
        assert_eq!(classify_str("7f00000g.addr.dc1.consul", A), "notfound");
        assert_eq!(classify_str("a.7f000001.addr.consul", A), "notfound");
    }

    #[test]
    fn hex_ip_round_trips() {
        let mut buf = [0u8; 32];
        for ip in [
            "127.77.1.2",
            "0.0.0.0",
            "255.255.255.255",
            "2001:db8::1",
            "::",
            "fe80::abcd:1",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            let enc = encode_hex_ip(ip, &mut buf).to_vec();
            assert_eq!(decode_hex_ip(&enc), Some(ip));
        }
        assert_eq!(
            encode_hex_ip("10.0.0.1".parse().unwrap(), &mut buf),
            b"0a000001"
        );
    }

    #[test]
    fn dotted_tag_comparison_is_exact_per_label() {
        let name = Name::new_unchecked("A.b");
        assert!(dotted_eq("a.B", name.get_labels()));
        assert!(!dotted_eq("a.b.c", name.get_labels()));
        assert!(!dotted_eq("a", name.get_labels()));
        assert!(!dotted_eq("ab", name.get_labels()));
    }
}
