//! Consul's DNS interface as a pure function: query bytes and the catalog in, reply bytes out.
//! No socket and no clock; the only state is the settings, a seeded RNG for round-robin and
//! buffers reused from one query to the next (empty in between).
//!
//! # Driver contract
//!
//! The shell reads one query (for TCP: without the two-byte length prefix), calls
//! [`Responder::handle_query`] with a reusable buffer and acts on the [`Outcome`]: send `out`
//! ([`Outcome::Reply`]), forward the original bytes to a recursor and, if that fails, send
//! [`servfail`] ([`Outcome::Forward`]), or send nothing ([`Outcome::Drop`]). A reply is bounded
//! by the client's UDP size (512 bytes without EDNS) or 65535 bytes over TCP.
//!
//! Answers follow Consul 1.x (`agent/dns.go`); where outpost differs it says so next to the code.

#[path = "fuzzing.rs"]
mod fuzzing;
#[path = "name.rs"]
mod name;
#[cfg(test)]
mod tests;

use std::collections::HashSet;
use std::io::Cursor;
use std::net::IpAddr;

use simple_dns::rdata::{A, AAAA, NS, PTR, RData, SOA, SRV, TXT};
use simple_dns::{
    CLASS, CharacterString, Label, Name, Packet, PacketFlag, QCLASS, QTYPE, Question, RCODE,
    ResourceRecord, SimpleDnsError,
};

use crate::catalog::{Catalog, Health, HealthFilter, Instance, NodeEntry};
use crate::dns::DnsSettings;
use crate::dns::cache::{ReplyCache, Shuffle};

pub use fuzzing::fuzz_query;
use name::{Lookup, Tag, Zone};

/// How the query arrived; decides the size limit of the reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

/// What the shell does after [`Responder::handle_query`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// `out` holds a complete reply to send.
    Reply,
    /// The name is outside our domain (or an unknown reverse name) and recursion is on: the
    /// shell forwards the original query bytes to a recursor; if that fails or times out it
    /// sends [`servfail`]`(query, out)`. `out` is empty.
    Forward,
    /// Nothing can be answered (fewer than 12 bytes, or the packet is itself a response):
    /// send nothing. `out` is empty.
    Drop,
}

/// The responder core: settings, the names derived from them, and the round-robin RNG.
pub struct Responder {
    settings: DnsSettings,
    zone: ZoneNames,
    rng: fastrand::Rng,
    /// Copy of a query whose QTYPE or QCLASS simple-dns cannot parse (see `parse_query`).
    scratch: Vec<u8>,
    /// Vectors kept from one query to the next, so that answering allocates only what
    /// simple-dns itself needs. Empty between queries.
    spare: Bufs<'static>,
    /// Replies to serve again while the catalog and settings stay the same.
    cache: ReplyCache,
}

/// What the settings imply, computed once per settings change rather than per query. Names
/// are all lower-case.
struct ZoneNames {
    domain: Vec<String>,
    datacenter: String,
    /// Labels of `<node_name>.node.<dc>.<domain>` (Consul lower-cases NS targets).
    ns_target: Vec<String>,
    /// The `prefix*` keys of `service_ttl` without their star, longest first.
    ttl_prefixes: Vec<(String, u32)>,
}

impl ZoneNames {
    fn new(s: &DnsSettings) -> ZoneNames {
        let labels = |s: &str| -> Vec<String> {
            s.trim_matches('.')
                .split('.')
                .filter(|l| !l.is_empty())
                .map(str::to_ascii_lowercase)
                .collect()
        };
        let domain = labels(&s.domain);
        let datacenter = s.datacenter.to_ascii_lowercase();
        let mut ns_target = labels(&s.node_name);
        ns_target.push("node".into());
        ns_target.extend(labels(&datacenter));
        ns_target.extend(domain.iter().cloned());
        let mut ttl_prefixes: Vec<(String, u32)> = s
            .service_ttl
            .iter()
            .filter_map(|(k, t)| Some((k.strip_suffix('*')?.to_string(), *t)))
            .collect();
        ttl_prefixes.sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
        ZoneNames {
            domain,
            datacenter,
            ns_target,
            ttl_prefixes,
        }
    }

    /// [`DnsSettings::service_ttl`] without walking the map: an exact key wins, then the
    /// longest `prefix*` (two matching prefixes of one length are the same key), else 0.
    fn service_ttl(&self, settings: &DnsSettings, name: &str) -> u32 {
        if settings.service_ttl.is_empty() {
            return 0;
        }
        if let Some(t) = settings.service_ttl.get(name) {
            return *t;
        }
        self.ttl_prefixes
            .iter()
            .find(|(p, _)| name.starts_with(p.as_str()))
            .map_or(0, |(_, t)| *t)
    }
}

// Record types by number: simple-dns cannot represent every QTYPE, so questions are
// dispatched on the raw value.
const T_A: u16 = 1;
const T_NS: u16 = 2;
const T_SOA: u16 = 6;
const T_PTR: u16 = 12;
const T_TXT: u16 = 16;
const T_AAAA: u16 = 28;
const T_SRV: u16 = 33;
const T_IXFR: u16 = 251;
const T_AXFR: u16 = 252;
const T_ANY: u16 = 255;
const C_IN: u16 = 1;
const C_ANY: u16 = 255;

/// Header bits (RFC 1035 4.1.1) read from queries and written into header-only replies.
const QR: u16 = 0x8000;
const AA: u16 = 0x0400;
const RD: u16 = 0x0100;
const RA: u16 = 0x0080;
const Z: u16 = 0x0040;
const CD: u16 = 0x0010;

/// Consul's `maxUDPAnswerLimit`: `udp_answer_limit` is capped at 8.
const MAX_UDP_ANSWER_LIMIT: usize = 8;
/// Consul's `maxUDPDatagramSize` (65535 minus IP and UDP headers).
const MAX_UDP_SIZE: usize = 65535 - 68;
/// Without EDNS a UDP reply is at most 512 bytes (RFC 1035 4.2.1).
const DEFAULT_UDP_SIZE: usize = 512;
/// The UDP payload size we advertise in our OPT record.
const ADVERTISED_UDP_SIZE: u16 = 4096;
/// At most this many answer records are built (Consul's `trimTCPResponse` cuts at 4096 too);
/// keeps section counts far below `u16::MAX`.
const MAX_ANSWERS: usize = 4096;
/// EDNS Client Subnet (RFC 7871), echoed as Consul's `setEDNS` does.
const EDNS_CLIENT_SUBNET: u16 = 8;
/// Above this many instances, duplicates are found with a hash set instead of a scan.
const LINEAR_DEDUP_MAX: usize = 32;
/// A kept vector larger than this many elements is freed rather than kept for the next query,
/// so one huge answer does not pin its memory.
const SPARE_MAX: usize = 64;

impl Responder {
    pub fn new(settings: DnsSettings, seed: u64) -> Responder {
        Responder {
            zone: ZoneNames::new(&settings),
            settings,
            rng: fastrand::Rng::with_seed(seed),
            scratch: Vec::new(),
            spare: Bufs::default(),
            cache: ReplyCache::default(),
        }
    }

    pub fn settings(&self) -> &DnsSettings {
        &self.settings
    }

    /// Replaces the settings (config reload); the RNG keeps its state.
    pub fn set_settings(&mut self, settings: DnsSettings) {
        self.zone = ZoneNames::new(&settings);
        self.settings = settings;
        self.cache.clear();
    }

    /// Replies kept for reuse (see [`ReplyCache`]).
    pub fn cached_replies(&self) -> usize {
        self.cache.len()
    }

    /// Answers `query` from `catalog`. Clears `out`, then writes the reply (or nothing, see
    /// [`Outcome`]). Never panics, whatever the bytes.
    pub fn handle_query(
        &mut self,
        catalog: &Catalog,
        query: &[u8],
        transport: Transport,
        out: &mut Vec<u8>,
    ) -> Outcome {
        out.clear();
        let generation = catalog.generation();
        if self
            .cache
            .answer(generation, query, transport, out, &mut self.rng)
        {
            return Outcome::Reply;
        }
        let Responder {
            settings,
            zone,
            rng,
            scratch,
            spare,
            cache,
        } = self;
        let ra = if settings.recursion { RA } else { 0 };
        let q = match parse_query(query, scratch) {
            Ok(q) => q,
            Err(Reject::Drop) => return Outcome::Drop,
            Err(Reject::HeaderOnly {
                id,
                flags,
                opcode,
                rcode,
            }) => {
                write_header_only(out, id, flags | ra, opcode, rcode);
                return Outcome::Reply;
            }
        };

        let limits = Limits::new(transport, q.edns.as_ref(), settings);
        // Empty vectors: `Bufs<'static>` is a `Bufs` of any shorter lifetime as it is.
        let mut bufs: Bufs<'_> = std::mem::take(spare);
        let mut authoritative = false;
        // Instances put in random order for this reply (see `ReplyCache` for why it matters).
        let mut shuffled = 0;
        if q.edns.as_ref().is_some_and(|e| e.version != 0) {
            // RFC 6891 6.1.3: a responder that does not implement the requested EDNS version
            // MUST answer BADVERS (Consul ignores the version).
            bufs.reply.rcode = RCODE::BADVERS;
        } else if q.qclass & 0x7fff != C_IN && q.qclass != C_ANY {
            // Only class IN is served. RFC 1035 4.1.1 reserves NOTIMP for kinds of query
            // (opcodes); for data we do not serve, REFUSED is the policy answer, as for names
            // outside our domain (Consul ignores the class and answers IN data).
            bufs.reply.rcode = RCODE::Refused;
        } else {
            let labels = q.question.qname.get_labels();
            let zone_view = Zone {
                domain: &zone.domain,
                datacenter: &zone.datacenter,
            };
            let lookup = name::classify(labels, q.qtype, &zone_view);
            if lookup == Lookup::Outside {
                if settings.recursion {
                    *spare = bufs.recycle();
                    return Outcome::Forward;
                }
                // miekg/dns's mux answers REFUSED when no zone matches (no recursors).
                bufs.reply.rcode = RCODE::Refused;
            } else if q.qtype == T_AXFR || q.qtype == T_IXFR {
                // Consul: `case dns.TypeAXFR: m.SetRcode(req, dns.RcodeNotImplemented)`.
                authoritative = true;
                bufs.reply.rcode = RCODE::NotImplemented;
            } else {
                authoritative = true;
                let domain_start = labels.len().saturating_sub(zone.domain.len());
                let mut ctx = Ctx {
                    settings,
                    zone,
                    catalog,
                    qname: &q.question.qname,
                    resp_domain: labels.get(domain_start..).unwrap_or_default(),
                    qtype: q.qtype,
                    // `emit` keeps at most `answer_limit` answers and only needs to know whether
                    // there were more.
                    answer_cap: limits.answer_limit.map_or(usize::MAX, |l| l + 1),
                    rng,
                    b: &mut bufs,
                    bad: false,
                    shuffled: 0,
                };
                if ctx.answer(lookup).is_none() {
                    *spare = bufs.recycle();
                    return Outcome::Forward;
                }
                shuffled = ctx.shuffled;
            }
        }

        let mut flags = q.flags & (RD | CD) | ra;
        if authoritative {
            flags |= AA;
        }
        let id = q.id;
        if !emit(
            out,
            q,
            flags,
            &mut bufs.reply,
            limits,
            settings.enable_truncate,
        ) {
            write_header_only(out, id, flags & !AA, 0, RCODE::ServerFailure as u8);
        } else if shuffled <= 1 {
            cache.insert(generation, query, transport, out, None, rng);
        } else if let Some(s) = Shuffle::of(out, shuffled) {
            cache.insert(generation, query, transport, out, Some(s), rng);
        }
        *spare = bufs.recycle();
        Outcome::Reply
    }
}

/// A SERVFAIL reply to `query` (same ID, question and EDNS), for a failed forward. RA is set, as
/// Consul's `handleRecurse` does. Returns false if the query cannot even be echoed.
pub fn servfail(query: &[u8], out: &mut Vec<u8>) -> bool {
    out.clear();
    let mut scratch = Vec::new();
    let Ok(q) = parse_query(query, &mut scratch) else {
        return false;
    };
    let mut reply = Reply {
        rcode: RCODE::ServerFailure,
        ..Reply::default()
    };
    let flags = q.flags & (RD | CD) | RA;
    let limits = Limits {
        max_size: usize::from(u16::MAX),
        answer_limit: None,
    };
    emit(out, q, flags, &mut reply, limits, false)
}

// ---- reused allocations ----

/// Every vector one answer is built in. Kept in the [`Responder`] between queries, empty, as
/// `Bufs<'static>`: that is a `Bufs` of the next query's lifetime as it is, and
/// [`Bufs::recycle`] turns that back into `Bufs<'static>`.
#[derive(Default)]
struct Bufs<'a> {
    reply: Reply<'a>,
    /// Instances of the service asked for, in answer order.
    instances: Vec<Instance<'a>>,
    /// The labels of a name being built.
    labels: Vec<Label<'a>>,
    /// Addresses already answered (A/AAAA de-duplication).
    ips: Vec<IpAddr>,
    /// SRV targets that already have glue.
    targets: Vec<TargetKey>,
}

impl Bufs<'_> {
    /// Empties every vector and hands its allocation over to another lifetime (`'static`, to be
    /// kept).
    #[inline]
    fn recycle<'b>(self) -> Bufs<'b> {
        let Reply {
            rcode: _,
            answers,
            authority,
            additional,
            needs,
        } = self.reply;
        Bufs {
            reply: Reply {
                rcode: RCODE::NoError,
                answers: recycle(answers),
                authority: recycle(authority),
                additional: recycle(additional),
                needs: emptied(needs),
            },
            instances: recycle(self.instances),
            labels: recycle(self.labels),
            ips: emptied(self.ips),
            targets: emptied(self.targets),
        }
    }
}

/// Empties `v` and returns its allocation as a vector of `U`, a type of the same layout (in
/// practice: the same type under another lifetime). This relies on std collecting
/// `vec::IntoIter` in place, which it does whenever the layouts match; were it not to, this
/// would still be correct and merely allocate. A vector that grew past [`SPARE_MAX`] is freed.
#[inline]
fn recycle<T, U>(mut v: Vec<T>) -> Vec<U> {
    v.clear();
    if v.capacity() == 0 || v.capacity() > SPARE_MAX {
        return Vec::new();
    }
    v.into_iter().filter_map(|_| None).collect()
}

/// [`recycle`] for a vector whose type has no lifetime to change.
#[inline]
fn emptied<T>(mut v: Vec<T>) -> Vec<T> {
    v.clear();
    if v.capacity() > SPARE_MAX {
        return Vec::new();
    }
    v
}

// ---- parsing ----

/// A query that passed every check and is answered with a question echo.
struct Query<'q> {
    id: u16,
    flags: u16,
    question: Question<'q>,
    /// The emptied section `question` was parsed into; the reply's question section reuses it.
    questions: Vec<Question<'q>>,
    qtype: u16,
    /// Raw QCLASS, including the top bit simple-dns calls `unicast_response`.
    qclass: u16,
    /// Where QTYPE and QCLASS sit in the reply: right after the first (uncompressed) name.
    qtail_at: usize,
    edns: Option<Edns<'q>>,
}

/// The query's OPT record (RFC 6891), read from the raw bytes: simple-dns 0.13 takes VERSION
/// and the extended RCODE from the wrong half of the OPT TTL (the DO/Z bits), so a DNSSEC-OK
/// query would look like EDNS version 128, and it drops the DO bit.
#[derive(Clone, Copy, Debug)]
struct Edns<'q> {
    udp_size: u16,
    version: u8,
    dnssec_ok: bool,
    /// The EDNS Client Subnet option data, if any.
    ecs: Option<&'q [u8]>,
}

enum Reject {
    Drop,
    /// A reply made of a header only, as miekg/dns sends for rejected messages.
    HeaderOnly {
        id: u16,
        flags: u16,
        opcode: u8,
        rcode: u8,
    },
}

/// Checks the header the way miekg/dns's `DefaultMsgAcceptFunc` (Consul's DNS server) does,
/// then parses with simple-dns.
fn parse_query<'q>(query: &'q [u8], scratch: &'q mut Vec<u8>) -> Result<Query<'q>, Reject> {
    let Some(h) = query.first_chunk::<12>() else {
        return Err(Reject::Drop);
    };
    let word = |i: usize| u16::from_be_bytes([h[i], h[i + 1]]);
    let (id, flags) = (word(0), word(2));
    if flags & QR != 0 {
        return Err(Reject::Drop);
    }
    let keep = flags & (RD | CD);
    let formerr = Reject::HeaderOnly {
        id,
        flags: keep,
        opcode: 0,
        rcode: RCODE::FormatError as u8,
    };
    let opcode = ((flags >> 11) & 0xf) as u8;
    if opcode != 0 {
        let rcode = RCODE::NotImplemented as u8;
        return Err(Reject::HeaderOnly {
            id,
            flags: keep,
            opcode,
            rcode,
        });
    }
    // One question; no answer or authority records; at most OPT and TSIG as additionals;
    // the Z bit clear. This also bounds what simple-dns allocates for the sections.
    let (qd, an, ns, ar) = (word(4), word(6), word(8), word(10));
    if flags & Z != 0 || qd != 1 || an != 0 || ns != 0 || ar > 2 {
        return Err(formerr);
    }
    let Some((qtail_at, qtype, qclass)) = question_tail(query) else {
        return Err(formerr);
    };

    let packet = if ar == 1 && plain_name(query, 12) && lone_opt(query, qtail_at + 4) {
        // The common EDNS query. simple-dns would parse the OPT record only for `read_edns` to
        // read it again (see `Edns`), and `lone_opt` has checked all that simple-dns checks in
        // it. So simple-dns gets a copy with ARCOUNT 0 (and, as below, QTYPE A and QCLASS IN
        // if it cannot represent them): the same verdict on the question, for less work.
        scratch.clear();
        scratch.extend_from_slice(query);
        if let Some(arcount) = scratch.get_mut(10..12) {
            arcount.copy_from_slice(&[0, 0]);
        }
        if QTYPE::try_from(qtype).is_err() || QCLASS::try_from(qclass & 0x7fff).is_err() {
            match scratch.get_mut(qtail_at..qtail_at + 4) {
                Some(tail) => tail.copy_from_slice(&[0, 1, 0, 1]),
                None => return Err(formerr),
            }
        }
        let copy: &'q Vec<u8> = scratch;
        Packet::parse(copy).map_err(|_| formerr)?
    } else {
        match Packet::parse(query) {
            Ok(p) => p,
            // simple-dns rejects QTYPEs and QCLASSes it has no name for. Parse a copy with
            // QTYPE A and QCLASS IN instead; the raw values are kept and echoed.
            Err(
                SimpleDnsError::InvalidQType(_)
                | SimpleDnsError::InvalidQClass(_)
                | SimpleDnsError::InvalidClass(_),
            ) => {
                scratch.clear();
                scratch.extend_from_slice(query);
                match scratch.get_mut(qtail_at..qtail_at + 4) {
                    Some(tail) => tail.copy_from_slice(&[0, 1, 0, 1]),
                    None => return Err(formerr),
                }
                let copy: &'q Vec<u8> = scratch;
                Packet::parse(copy).map_err(|_| formerr)?
            }
            Err(_) => return Err(formerr),
        }
    };
    let mut packet = packet;
    let formerr = || Reject::HeaderOnly {
        id,
        flags: keep,
        opcode: 0,
        rcode: RCODE::FormatError as u8,
    };
    // RFC 6891 6.1.1: more than one OPT is a FORMERR.
    let edns = read_edns(query, qtail_at + 4, ar).ok_or_else(formerr)?;
    let Some(question) = packet.questions.pop() else {
        return Err(formerr());
    };
    let qtail_at = 12 + wire_len(&question.qname);
    Ok(Query {
        id,
        flags,
        question,
        questions: std::mem::take(&mut packet.questions),
        qtype,
        qclass,
        qtail_at,
        edns,
    })
}

/// Walks the `count` additional records from `pos` (simple-dns has already checked their
/// layout) and returns the OPT record, if any; `None` if there are two OPTs or the walk fails.
fn read_edns(query: &[u8], mut pos: usize, count: u16) -> Option<Option<Edns<'_>>> {
    let mut found = None;
    for _ in 0..count {
        pos = skip_name(query, pos)?;
        let fixed = query.get(pos..pos + 10)?;
        let word = |i: usize| {
            fixed
                .get(i..i + 2)
                .map(|b| u16::from_be_bytes([b[0], b[1]]))
        };
        let (rtype, class, rdlen) = (word(0)?, word(2)?, word(8)?);
        let ttl = fixed.get(4..8)?;
        pos += 10;
        let rdata = query.get(pos..pos + usize::from(rdlen))?;
        pos += usize::from(rdlen);
        if rtype != OPT_TYPE {
            continue;
        }
        if found.is_some() {
            return None;
        }
        let mut ecs = None;
        let mut opts = rdata;
        while let [c0, c1, l0, l1, rest @ ..] = opts {
            let len = usize::from(u16::from_be_bytes([*l0, *l1]));
            let data = rest.get(..len)?;
            if u16::from_be_bytes([*c0, *c1]) == EDNS_CLIENT_SUBNET && ecs.is_none() {
                ecs = Some(data);
            }
            opts = rest.get(len..)?;
        }
        let [_ext_rcode, version, flags, _] = ttl else {
            return None;
        };
        found = Some(Edns {
            udp_size: class,
            version: *version,
            dnssec_ok: flags & 0x80 != 0,
            ecs,
        });
    }
    Some(found)
}

/// Position after the name at `pos` (labels, ending in a zero byte or a pointer).
fn skip_name(msg: &[u8], mut pos: usize) -> Option<usize> {
    loop {
        let len = *msg.get(pos)?;
        match len & 0xc0 {
            0 if len == 0 => return Some(pos + 1),
            0 => pos += 1 + usize::from(len),
            0xc0 => return Some(pos + 2),
            _ => return None,
        }
    }
}

/// Offset of QTYPE in the query (after the first name, which may end in a pointer), QTYPE
/// and QCLASS. `None` if the packet ends first.
fn question_tail(query: &[u8]) -> Option<(usize, u16, u16)> {
    let pos = skip_name(query, 12)?;
    let t = query.get(pos..pos + 4)?;
    Some((
        pos,
        u16::from_be_bytes([t[0], t[1]]),
        u16::from_be_bytes([t[2], t[3]]),
    ))
}

/// Whether the name at `pos` is written out in full, without a compression pointer.
fn plain_name(msg: &[u8], mut pos: usize) -> bool {
    loop {
        match msg.get(pos) {
            Some(0) => return true,
            Some(&len) if len & 0xc0 == 0 => pos += 1 + usize::from(len),
            _ => return false,
        }
    }
}

/// Whether the record at `pos` is an OPT record with the root as owner that simple-dns parses
/// without error: the fixed part and the RDATA are all there, and the options tile the RDATA
/// exactly (simple-dns reads option headers until the RDATA ends). Its content is `read_edns`'s
/// business.
fn lone_opt(query: &[u8], pos: usize) -> bool {
    let Some(&[0, t0, t1, _, _, _, _, _, _, l0, l1]) = query.get(pos..pos + 11) else {
        return false;
    };
    let rdlen = usize::from(u16::from_be_bytes([l0, l1]));
    if u16::from_be_bytes([t0, t1]) != OPT_TYPE {
        return false;
    }
    let Some(mut opts) = query.get(pos + 11..pos + 11 + rdlen) else {
        return false;
    };
    while !opts.is_empty() {
        let [_, _, l0, l1, rest @ ..] = opts else {
            return false;
        };
        let Some(next) = rest.get(usize::from(u16::from_be_bytes([*l0, *l1]))..) else {
            return false;
        };
        opts = next;
    }
    true
}

fn wire_len(name: &Name<'_>) -> usize {
    name.get_labels().iter().map(|l| l.len() + 1).sum::<usize>() + 1
}

/// A 12-byte reply: FORMERR, NOTIMP, or SERVFAIL when encoding failed.
fn write_header_only(out: &mut Vec<u8>, id: u16, flags: u16, opcode: u8, rcode: u8) {
    out.clear();
    let flags = QR
        | (u16::from(opcode & 0xf) << 11)
        | (flags & (AA | RD | RA | CD))
        | u16::from(rcode & 0xf);
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&flags.to_be_bytes());
    out.extend_from_slice(&[0; 8]);
}

/// Our OPT record in wire format, appended after the packet simple-dns wrote (see [`Edns`]):
/// root owner, type 41, our UDP size (Consul echoes the client's; we advertise 512 to 4096),
/// the extended RCODE, VERSION 0, the query's DO bit (RFC 3225 3), and the ECS option echoed
/// with scope 0 (Consul's `setEDNS`; RFC 7871 7.2.1: the answer is valid for all clients).
struct OptRecord {
    buf: [u8; 11 + 4 + ECS_MAX],
    len: usize,
}

/// Longest ECS option data echoed: family, two prefix lengths and an IPv6 address.
const ECS_MAX: usize = 4 + 16;
const OPT_TYPE: u16 = 41;

impl OptRecord {
    fn new(edns: &Edns<'_>, rcode: RCODE) -> OptRecord {
        let mut buf = [0u8; 11 + 4 + ECS_MAX];
        let ecs = edns
            .ecs
            .filter(|d| (4..=ECS_MAX).contains(&d.len()))
            .unwrap_or_default();
        let rdlen = if ecs.is_empty() { 0 } else { 4 + ecs.len() };
        let [t0, t1] = OPT_TYPE.to_be_bytes();
        let [s0, s1] = edns.udp_size.clamp(512, ADVERTISED_UDP_SIZE).to_be_bytes();
        let ext_rcode = ((rcode as u16) >> 4) as u8;
        let flags = if edns.dnssec_ok { 0x80 } else { 0 };
        let [r0, r1] = (rdlen as u16).to_be_bytes();
        let head = [0, t0, t1, s0, s1, ext_rcode, 0, flags, 0, r0, r1];
        let mut len = 0;
        let [c0, c1] = EDNS_CLIENT_SUBNET.to_be_bytes();
        let [l0, l1] = (ecs.len() as u16).to_be_bytes();
        let option = if ecs.is_empty() {
            &[][..]
        } else {
            &[c0, c1, l0, l1][..]
        };
        for part in [&head[..], option, ecs] {
            if let Some(dst) = buf.get_mut(len..len + part.len()) {
                dst.copy_from_slice(part);
                len += part.len();
            }
        }
        // SCOPE PREFIX-LENGTH, the fourth byte of the ECS data.
        if let Some(scope) = buf.get_mut(11 + 4 + 3).filter(|_| !ecs.is_empty()) {
            *scope = 0;
        }
        OptRecord { buf, len }
    }

    fn bytes(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or_default()
    }
}

// ---- size limits and encoding ----

#[derive(Clone, Copy, Debug)]
struct Limits {
    max_size: usize,
    /// Consul's `udp_answer_limit`, which applies when the reply must fit 512 bytes.
    answer_limit: Option<usize>,
}

impl Limits {
    fn new(transport: Transport, edns: Option<&Edns<'_>>, settings: &DnsSettings) -> Limits {
        match transport {
            Transport::Tcp => Limits {
                max_size: usize::from(u16::MAX),
                answer_limit: None,
            },
            Transport::Udp => {
                let max_size = edns.map_or(DEFAULT_UDP_SIZE, |e| {
                    usize::from(e.udp_size).clamp(DEFAULT_UDP_SIZE, MAX_UDP_SIZE)
                });
                // Consul's trimUDPResponse cuts answers whenever the limit is 512 bytes, so also
                // for EDNS clients that advertise 512 or less.
                let answer_limit = (max_size == DEFAULT_UDP_SIZE)
                    .then(|| settings.udp_answer_limit.clamp(1, MAX_UDP_ANSWER_LIMIT));
                Limits {
                    max_size,
                    answer_limit,
                }
            }
        }
    }
}

/// Which answer an additional record serves, so that it goes when that answer goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Need {
    /// Glue for the target of this answer (the first answer naming that target).
    Answer(usize),
    /// Glue for an NS record in the authority section.
    Authority,
}

/// An answer before encoding.
struct Reply<'a> {
    rcode: RCODE,
    answers: Vec<ResourceRecord<'a>>,
    authority: Vec<ResourceRecord<'a>>,
    additional: Vec<ResourceRecord<'a>>,
    /// Parallel to `additional`.
    needs: Vec<Need>,
}

impl Default for Reply<'_> {
    fn default() -> Self {
        Reply {
            rcode: RCODE::NoError,
            answers: Vec::new(),
            authority: Vec::new(),
            additional: Vec::new(),
            needs: Vec::new(),
        }
    }
}

impl Reply<'_> {
    /// Starts over with no records.
    fn reset(&mut self, rcode: RCODE) {
        self.rcode = rcode;
        self.answers.clear();
        self.authority.clear();
        self.additional.clear();
        self.needs.clear();
    }
}

/// Puts into `dst` the additional records needed by the first `answers` answers (and the
/// authority).
fn additional_for<'a>(
    dst: &mut Vec<ResourceRecord<'a>>,
    additional: &[ResourceRecord<'a>],
    needs: &[Need],
    answers: usize,
    authority: bool,
) {
    dst.clear();
    dst.extend(
        additional
            .iter()
            .zip(needs)
            .filter(|(_, n)| match n {
                Need::Answer(i) => *i < answers,
                Need::Authority => authority,
            })
            .map(|(rr, _)| rr.clone()),
    );
}

/// Encodes `reply` into `out` within `limits`, the way Consul's `trimDNSResponse` does: cut
/// to `udp_answer_limit`; if still too big, drop the authority section, then keep the most
/// answers that fit (binary search) with the additional records they need, and set TC.
/// Returns false if simple-dns could not encode the packet. The records may be cut or moved
/// around inside `reply`; its vectors come back for reuse.
fn emit<'a>(
    out: &mut Vec<u8>,
    q: Query<'a>,
    flags: u16,
    reply: &mut Reply<'a>,
    limits: Limits,
    enable_truncate: bool,
) -> bool {
    let opt = q.edns.as_ref().map(|e| OptRecord::new(e, reply.rcode));
    let tail = Tail {
        qtail_at: q.qtail_at,
        qtail: qtail_bytes(&q),
        opt: opt.as_ref().map(OptRecord::bytes),
    };
    let mut truncated = false;
    let mut keep = reply.answers.len().min(MAX_ANSWERS);
    truncated |= keep < reply.answers.len();
    if let Some(limit) = limits.answer_limit {
        // Consul sets TC for these cuts only with `enable_truncate`.
        if keep > limit {
            keep = limit;
            truncated |= enable_truncate;
        }
    }
    if keep < reply.answers.len() {
        reply.answers.truncate(keep);
        let mut i = 0;
        let needs = &reply.needs;
        reply.additional.retain(|_| {
            let k = match needs.get(i) {
                Some(Need::Answer(a)) => *a < keep,
                _ => true,
            };
            i += 1;
            k
        });
        reply
            .needs
            .retain(|n| !matches!(n, Need::Answer(a) if *a >= keep));
    }

    let mut packet = Packet::new_reply(q.id);
    packet.questions = q.questions;
    packet.questions.push(q.question);
    *packet.rcode_mut() = reply.rcode;
    packet.set_flags(PacketFlag::from_bits_truncate(flags));
    if truncated {
        packet.set_flags(PacketFlag::TRUNCATION);
    }
    packet.answers = std::mem::take(&mut reply.answers);
    packet.name_servers = std::mem::take(&mut reply.authority);
    packet.additional_records = std::mem::take(&mut reply.additional);
    let written = write(&packet, out, &tail);
    if !written || out.len() <= limits.max_size {
        reply.answers = std::mem::take(&mut packet.answers);
        reply.authority = std::mem::take(&mut packet.name_servers);
        reply.additional = std::mem::take(&mut packet.additional_records);
        return written;
    }

    // Too big: answers were cut to fit, which always sets TC (RFC 2181 9).
    packet.set_flags(PacketFlag::TRUNCATION);
    packet.name_servers.clear();
    let answers = std::mem::take(&mut packet.answers);
    let additional = std::mem::take(&mut packet.additional_records);
    let needs = &reply.needs;
    let attempt = |packet: &mut Packet<'a>, out: &mut Vec<u8>, k: usize| -> Option<bool> {
        packet.answers.clear();
        packet.answers.extend(answers.iter().take(k).cloned());
        additional_for(&mut packet.additional_records, &additional, needs, k, false);
        // Evaluated after `write`: the receiver goes first.
        write(packet, out, &tail).then_some(out.len() <= limits.max_size)
    };
    let n = answers.len();
    let written = match attempt(&mut packet, out, n) {
        Some(true) => true,
        Some(false) => {
            // `lo` answers fit (0 always does: header, question and OPT stay far below 512
            // bytes), `hi` answers do not.
            let (mut lo, mut hi) = (0, n);
            let mut failed = false;
            while hi - lo > 1 {
                let mid = lo + (hi - lo) / 2;
                match attempt(&mut packet, out, mid) {
                    Some(true) => lo = mid,
                    Some(false) => hi = mid,
                    None => {
                        failed = true;
                        break;
                    }
                }
            }
            !failed && attempt(&mut packet, out, lo).is_some()
        }
        None => false,
    };
    reply.answers = answers;
    reply.authority = std::mem::take(&mut packet.name_servers);
    reply.additional = additional;
    written
}

fn qtail_bytes(q: &Query<'_>) -> [u8; 4] {
    let [t0, t1] = q.qtype.to_be_bytes();
    let [c0, c1] = q.qclass.to_be_bytes();
    [t0, t1, c0, c1]
}

/// What `write` adds to simple-dns's output.
struct Tail<'o> {
    /// Offset of QTYPE in the reply, and the query's raw QTYPE and QCLASS.
    qtail_at: usize,
    qtail: [u8; 4],
    opt: Option<&'o [u8]>,
}

/// Writes `packet` with name compression, restores the question's raw QTYPE and QCLASS (which
/// simple-dns may not be able to represent) and appends our OPT record (see [`Edns`]).
fn write(packet: &Packet<'_>, out: &mut Vec<u8>, tail: &Tail<'_>) -> bool {
    out.clear();
    if packet
        .write_compressed_to(&mut Cursor::new(&mut *out))
        .is_err()
    {
        return false;
    }
    let Some(t) = out.get_mut(tail.qtail_at..tail.qtail_at + 4) else {
        return false;
    };
    t.copy_from_slice(&tail.qtail);
    if let Some(opt) = tail.opt {
        let Some(count) = out.get_mut(10..12) else {
            return false;
        };
        let Some(arcount) = u16::from_be_bytes([count[0], count[1]]).checked_add(1) else {
            return false;
        };
        count.copy_from_slice(&arcount.to_be_bytes());
        out.extend_from_slice(opt);
    }
    true
}

// ---- answers ----

/// Everything one answer is built from. Records borrow (`'a`) from the query bytes, the
/// catalog and the settings, not from the parsed question (`'r`), which the reply then takes
/// over; the reply and the scratch vectors are in `b`.
struct Ctx<'a, 'r> {
    settings: &'a DnsSettings,
    zone: &'a ZoneNames,
    catalog: &'a Catalog,
    qname: &'r Name<'a>,
    /// The domain as the client spelled it: Consul's `getResponseDomain`, used in SRV targets.
    resp_domain: &'r [Label<'a>],
    qtype: u16,
    /// Service records beyond this many answers are not built: `emit` would cut them.
    answer_cap: usize,
    rng: &'r mut fastrand::Rng,
    b: &'r mut Bufs<'a>,
    /// Set when a label added to `b.labels` was empty or over 63 bytes.
    bad: bool,
    /// How many instances were put in random order (0 if none were).
    shuffled: usize,
}

/// How an instance is reached, from Consul's `makeNodeServiceRecords`.
enum Reach<'a> {
    /// The node's own IP: SRV target `<node>.node.<dc>.<domain>`.
    Node(&'a NodeEntry, IpAddr),
    /// The service's own IP: SRV target `<hex>.addr.<dc>.<domain>`.
    Addr(IpAddr),
    /// A host name (node or service address): SRV target is that name, without glue.
    Host(&'a str),
}

/// Identity of an SRV target, for glue de-duplication: a node by the address of its entry
/// (so that the vector of them outlives a query's borrows), or an IP.
#[derive(Clone, Copy, PartialEq, Eq)]
enum TargetKey {
    Node(usize),
    Addr(IpAddr),
}

/// The same `node:serviceAddress:port` (the node by identity), Consul's duplicate SRV test.
fn same_tuple(a: &Instance<'_>, b: &Instance<'_>) -> bool {
    std::ptr::eq(a.node, b.node)
        && a.service.service.address == b.service.service.address
        && a.service.service.port == b.service.service.port
}

impl<'a> Ctx<'a, '_> {
    /// Builds the reply for `lookup` in `b.reply`; `None` to forward the query.
    fn answer(&mut self, lookup: Lookup<'_>) -> Option<()> {
        match lookup {
            Lookup::Outside => return None,
            Lookup::Arpa(ip) => return self.ptr(ip),
            Lookup::Apex => self.apex(),
            Lookup::NotFound => self.negative(RCODE::NameError),
            Lookup::Node(parts) => self.node(parts),
            Lookup::Service { name, tag } => self.service(name, tag),
            Lookup::Addr(ip) => {
                if wants(self.qtype, ip) {
                    let rr = self.rr(self.qname.clone(), self.settings.node_ttl, addr_rdata(ip));
                    self.b.reply.answers.push(rr);
                } else {
                    self.negative(RCODE::NoError);
                }
            }
        }
        Some(())
    }

    /// NXDOMAIN, or NODATA (RFC 2308 2.2: NOERROR, empty answer), with our SOA in authority;
    /// whatever was built so far goes.
    fn negative(&mut self, rcode: RCODE) {
        let soa = self.soa();
        let r = &mut self.b.reply;
        r.reset(rcode);
        r.authority.extend(soa);
    }

    /// NODATA if nothing was answered.
    fn or_nodata(&mut self) {
        if self.b.reply.answers.is_empty() {
            self.negative(RCODE::NoError);
        }
    }

    fn rr(&self, name: Name<'a>, ttl: u32, rdata: RData<'a>) -> ResourceRecord<'a> {
        ResourceRecord::new(name, CLASS::IN, ttl, rdata)
    }

    // -- building names --

    fn begin(&mut self) {
        self.b.labels.clear();
        self.bad = false;
    }

    fn push(&mut self, label: &'a [u8]) {
        self.bad |= label.is_empty() || label.len() > 63;
        self.b.labels.push(Label::new_unchecked(label));
    }

    /// Adds the dot-separated labels of `s` (one trailing dot allowed).
    fn push_dotted(&mut self, s: &'a str) {
        let s = s.strip_suffix('.').unwrap_or(s);
        for l in s.as_bytes().split(|b| *b == b'.') {
            self.push(l);
        }
    }

    fn push_labels(&mut self, labels: &[Label<'a>]) {
        self.b.labels.extend(labels.iter().cloned());
    }

    fn push_domain(&mut self) {
        let zone = self.zone;
        for l in &zone.domain {
            self.push(l.as_bytes());
        }
    }

    /// The name built since `begin`, if every label is 1 to 63 bytes and the whole fits 255.
    fn finish(&self) -> Option<Name<'a>> {
        let len = self.b.labels.iter().map(|l| l.len() + 1).sum::<usize>() + 1;
        (!self.bad && len <= 255).then(|| Name::new_with_labels(&self.b.labels))
    }

    /// `<node>.node.<dc>.` followed by the client's spelling of the domain (Consul's
    /// `nodeCanonicalDNSName` with `respDomain`).
    fn node_target(&mut self, node: &'a str) -> Option<Name<'a>> {
        let (zone, resp_domain) = (self.zone, self.resp_domain);
        self.begin();
        self.push_dotted(node);
        self.push(b"node");
        self.push_dotted(&zone.datacenter);
        self.push_labels(resp_domain);
        self.finish()
    }

    // -- the SOA and the apex --

    /// Consul's `makeSOARecord`: `ns.<domain>`, `hostmaster.<domain>`; TTL = minimum. The
    /// serial is the catalog index (Consul uses the clock; the core has none).
    fn soa(&mut self) -> Option<ResourceRecord<'a>> {
        self.begin();
        self.push_domain();
        let owner = self.finish()?;
        self.begin();
        self.push(b"ns");
        self.push_domain();
        let mname = self.finish()?;
        self.begin();
        self.push(b"hostmaster");
        self.push_domain();
        let rname = self.finish()?;
        let [refresh, retry, expire, minimum] = self.settings.soa;
        let soa = SOA {
            mname,
            rname,
            serial: self.catalog.index() as u32,
            refresh: refresh as i32,
            retry: retry as i32,
            expire: expire as i32,
            minimum,
        };
        Some(self.rr(owner, minimum, RData::SOA(soa)))
    }

    /// NS records for the apex (this agent, Consul's `getNameserversAndNodeRecord` for one
    /// server) and their glue.
    fn nameservers(&mut self) -> Option<(ResourceRecord<'a>, Option<ResourceRecord<'a>>)> {
        let zone = self.zone;
        self.begin();
        for l in &zone.ns_target {
            self.push(l.as_bytes());
        }
        let target = self.finish()?;
        let ttl = self.settings.node_ttl;
        let glue = self
            .settings
            .node_address
            .map(|ip| self.rr(target.clone(), ttl, addr_rdata(canonical(ip))));
        Some((
            self.rr(self.qname.clone(), ttl, RData::NS(NS(target))),
            glue,
        ))
    }

    fn apex(&mut self) {
        match self.qtype {
            T_SOA => {
                // Consul: SOA in answer, NS in authority, glue in additional.
                let soa = self.soa();
                self.b.reply.answers.extend(soa);
                if let Some((ns, glue)) = self.nameservers() {
                    let r = &mut self.b.reply;
                    r.authority.push(ns);
                    if let Some(g) = glue {
                        r.additional.push(g);
                        r.needs.push(Need::Authority);
                    }
                }
            }
            T_NS | T_ANY => {
                if self.qtype == T_ANY {
                    let soa = self.soa();
                    self.b.reply.answers.extend(soa);
                }
                if let Some((ns, glue)) = self.nameservers() {
                    let r = &mut self.b.reply;
                    r.answers.push(ns);
                    if let Some(g) = glue {
                        r.additional.push(g);
                        r.needs.push(Need::Answer(r.answers.len() - 1));
                    }
                }
            }
            // Consul answers NXDOMAIN for other types at the apex; the apex exists, so
            // outpost answers NODATA (RFC 2308 2.2).
            _ => {}
        }
        self.or_nodata();
    }

    // -- nodes --

    fn node(&mut self, parts: &[Label<'_>]) {
        let catalog = self.catalog;
        // Consul joins the labels before `.node` with dots: node names may contain dots.
        let entry = match parts {
            [one] => std::str::from_utf8(one.as_ref())
                .ok()
                .and_then(|n| catalog.node(n)),
            _ => {
                let mut joined = Vec::with_capacity(64);
                for (i, l) in parts.iter().enumerate() {
                    if i > 0 {
                        joined.push(b'.');
                    }
                    joined.extend_from_slice(l.as_ref());
                }
                String::from_utf8(joined)
                    .ok()
                    .and_then(|n| catalog.node(&n))
            }
        };
        let Some(entry) = entry else {
            return self.negative(RCODE::NameError);
        };
        let ttl = self.settings.node_ttl;
        if matches!(self.qtype, T_A | T_AAAA | T_ANY) {
            // A host-name address gets no record (Consul would answer a CNAME to it).
            if let Some(ip) = entry.ip {
                let ip = canonical(ip);
                if wants(self.qtype, ip) {
                    let rr = self.rr(self.qname.clone(), ttl, addr_rdata(ip));
                    self.b.reply.answers.push(rr);
                }
            }
        }
        if matches!(self.qtype, T_TXT | T_ANY) {
            for (key, value) in &entry.node.meta {
                let txt = if key
                    .as_bytes()
                    .get(..8)
                    .is_some_and(|p| p.eq_ignore_ascii_case(b"rfc1035-"))
                {
                    value.clone()
                } else {
                    rfc1464(key, value)
                };
                if let Some(txt) = txt_rdata(txt) {
                    let rr = self.rr(self.qname.clone(), ttl, txt);
                    self.b.reply.answers.push(rr);
                }
            }
        }
        self.or_nodata();
    }

    // -- services --

    fn service(&mut self, name: &[u8], tag: Tag<'_>) {
        let Ok(name) = std::str::from_utf8(name) else {
            return self.negative(RCODE::NameError);
        };
        let filter = if self.settings.only_passing {
            HealthFilter::Passing
        } else {
            HealthFilter::NotCritical
        };
        let mut instances = std::mem::take(&mut self.b.instances);
        self.catalog.extend_instances(name, filter, &mut instances);
        if !matches!(tag, Tag::Any) {
            instances.retain(|i| tag_keeps(&tag, &i.service.service.tags));
        }
        // Consul: no healthy instance of that name (and tag) is "not found".
        if instances.is_empty() {
            self.b.instances = instances;
            return self.negative(RCODE::NameError);
        }
        // Consul's `out.Nodes.Shuffle()`: round-robin by random order.
        self.rng.shuffle(&mut instances);
        self.shuffled = self.shuffled.max(instances.len());
        instances.truncate(MAX_ANSWERS);
        // Consul looks TTLs up with the lower-cased name from the query.
        let ttl = if name.bytes().any(|b| b.is_ascii_uppercase()) {
            self.zone
                .service_ttl(self.settings, &name.to_ascii_lowercase())
        } else {
            self.zone.service_ttl(self.settings, name)
        };
        match self.qtype {
            T_SRV => self.srv_records(&instances, ttl),
            T_A | T_AAAA | T_ANY => self.addr_records(&instances, ttl),
            // Consul answers A records to TXT questions here; outpost answers NODATA.
            _ => {}
        }
        self.b.instances = instances;
        self.or_nodata();
    }

    /// How `i` is reached, as Consul's `makeNodeServiceRecords` decides.
    fn reach(&self, i: &Instance<'a>) -> Option<Reach<'a>> {
        let svc = i.service.service.address.as_str();
        let node_ip = i.node.ip.map(canonical);
        if svc.is_empty() {
            let node = i.node.node.address.as_str();
            return match node_ip {
                Some(ip) => Some(Reach::Node(i.node, ip)),
                None if node.is_empty() => None,
                None => Some(Reach::Host(node)),
            };
        }
        if let Some(ip) = i.service.ip {
            return Some(Reach::Addr(canonical(ip)));
        }
        // A service address that names the service being asked for means "use the node".
        let svc_trimmed = svc.strip_suffix('.').unwrap_or(svc);
        match node_ip {
            Some(ip) if name::dotted_eq(svc_trimmed, self.qname.get_labels()) => {
                Some(Reach::Node(i.node, ip))
            }
            _ => Some(Reach::Host(svc)),
        }
    }

    /// One A/AAAA per distinct address of the asked family, owner = the question as asked.
    fn addr_records(&mut self, instances: &[Instance<'a>], ttl: u32) {
        let mut seen = Seen {
            list: std::mem::take(&mut self.b.ips),
            set: (instances.len() > LINEAR_DEDUP_MAX).then(HashSet::new),
        };
        for i in instances {
            if self.b.reply.answers.len() >= self.answer_cap {
                break;
            }
            let ip = match self.reach(i) {
                Some(Reach::Node(_, ip) | Reach::Addr(ip)) => ip,
                // Consul answers a CNAME to a host-name address; outpost answers nothing.
                Some(Reach::Host(_)) | None => continue,
            };
            if wants(self.qtype, ip) && seen.first(ip) {
                let rr = self.rr(self.qname.clone(), ttl, addr_rdata(ip));
                self.b.reply.answers.push(rr);
            }
        }
        self.b.ips = seen.list;
    }

    /// Consul's `addServiceSRVRecordsToMessage`: `1 <weight> <port> <target>`, glue for each
    /// distinct target in additional, in answer order.
    fn srv_records(&mut self, instances: &[Instance<'a>], ttl: u32) {
        let mut seen_targets = std::mem::take(&mut self.b.targets);
        let mut tuple_set: HashSet<(*const NodeEntry, &str, u16)> = HashSet::new();
        let large = instances.len() > LINEAR_DEDUP_MAX;
        let mut hex = [0u8; 32];
        for (k, i) in instances.iter().enumerate() {
            if self.b.reply.answers.len() >= self.answer_cap {
                break;
            }
            let svc = &i.service.service;
            // Consul skips duplicates of node:serviceAddress:port: an instance is one when an
            // earlier instance has its tuple.
            let fresh = if large {
                tuple_set.insert((std::ptr::from_ref(i.node), svc.address.as_str(), svc.port))
            } else {
                !instances.iter().take(k).any(|e| same_tuple(e, i))
            };
            if !fresh {
                continue;
            }
            let Some(reach) = self.reach(i) else { continue };
            let (target, glue) = match reach {
                Reach::Node(node, ip) => (
                    self.node_target(&node.node.name),
                    Some((TargetKey::Node(std::ptr::from_ref(node).addr()), ip)),
                ),
                Reach::Addr(ip) => {
                    let (zone, resp_domain) = (self.zone, self.resp_domain);
                    self.begin();
                    let label = name::encode_hex_ip(ip, &mut hex).to_vec();
                    self.b.labels.push(Label::new_unchecked(label));
                    self.push(b"addr");
                    self.push_dotted(&zone.datacenter);
                    self.push_labels(resp_domain);
                    (self.finish(), Some((TargetKey::Addr(ip), ip)))
                }
                Reach::Host(host) => {
                    self.begin();
                    self.push_dotted(host);
                    (self.finish(), None)
                }
            };
            let Some(target) = target else { continue };
            // Consul's `findWeight`: the warning weight for instances in warning.
            let weight = match i.health {
                Health::Warning => svc.weights.warning,
                _ => svc.weights.passing,
            };
            let srv = SRV {
                priority: 1,
                weight: weight.min(u32::from(u16::MAX)) as u16,
                port: svc.port,
                target: target.clone(),
            };
            let rr = self.rr(self.qname.clone(), ttl, RData::SRV(srv));
            let r = &mut self.b.reply;
            r.answers.push(rr);
            if let Some((key, ip)) = glue
                && !seen_targets.contains(&key)
            {
                seen_targets.push(key);
                r.additional
                    .push(ResourceRecord::new(target, CLASS::IN, ttl, addr_rdata(ip)));
                r.needs.push(Need::Answer(r.answers.len() - 1));
            }
        }
        self.b.targets = seen_targets;
    }

    // -- reverse lookups --

    /// Consul's `handlePtr`: the first node with that address (by name), else the first
    /// service instance with that address of its own. PTR TTL is 0, as in Consul.
    fn ptr(&mut self, ip: Option<IpAddr>) -> Option<()> {
        let (catalog, zone) = (self.catalog, self.zone);
        let target = ip.and_then(|ip| {
            if let Some(node) = catalog
                .nodes_by_address(ip)
                .min_by(|a, b| cmp_ignore_case(&a.node.name, &b.node.name))
            {
                self.begin();
                self.push_dotted(&node.node.name);
                self.push(b"node");
            } else {
                let inst = catalog.services_by_address(ip).min_by(|a, b| {
                    cmp_ignore_case(&a.node.node.name, &b.node.node.name)
                        .then_with(|| a.service.service.id.cmp(&b.service.service.id))
                })?;
                self.begin();
                self.push_dotted(&inst.service.service.name);
                self.push(b"service");
            }
            self.push_dotted(&zone.datacenter);
            self.push_domain();
            self.finish()
        });
        match target {
            None if self.settings.recursion => return None,
            None => self.negative(RCODE::NameError),
            Some(target) if matches!(self.qtype, T_PTR | T_ANY) => {
                let rr = self.rr(self.qname.clone(), 0, RData::PTR(PTR(target)));
                self.b.reply.answers.push(rr);
            }
            // Consul answers the PTR whatever the type; outpost answers NODATA.
            Some(_) => self.negative(RCODE::NoError),
        }
        Some(())
    }
}

/// Remembers addresses already answered: a scan for few, a hash set for many.
struct Seen {
    list: Vec<IpAddr>,
    set: Option<HashSet<IpAddr>>,
}

impl Seen {
    /// True the first time `ip` is seen.
    fn first(&mut self, ip: IpAddr) -> bool {
        match &mut self.set {
            Some(set) => set.insert(ip),
            None if self.list.contains(&ip) => false,
            None => {
                self.list.push(ip);
                true
            }
        }
    }
}

fn tag_keeps(tag: &Tag<'_>, tags: &[String]) -> bool {
    matches!(tag, Tag::Any) || tags.iter().any(|t| tag.matches(t))
}

fn cmp_ignore_case(a: &str, b: &str) -> std::cmp::Ordering {
    a.bytes()
        .map(|c| c.to_ascii_lowercase())
        .cmp(b.bytes().map(|c| c.to_ascii_lowercase()))
}

/// IPv4-mapped IPv6 addresses are IPv4 (Go's `ip.To4()`, which Consul uses).
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// A questions get IPv4, AAAA questions IPv6, ANY both.
fn wants(qtype: u16, ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(_) => qtype == T_A || qtype == T_ANY,
        IpAddr::V6(_) => qtype == T_AAAA || qtype == T_ANY,
    }
}

fn addr_rdata(ip: IpAddr) -> RData<'static> {
    match ip {
        IpAddr::V4(a) => RData::A(A {
            address: u32::from(a),
        }),
        IpAddr::V6(a) => RData::AAAA(AAAA {
            address: u128::from(a),
        }),
    }
}

/// A TXT record holding `txt`, split into 255-byte character-strings (RFC 1035 3.3.14).
fn txt_rdata(txt: String) -> Option<RData<'static>> {
    let mut rdata = TXT::new();
    if txt.is_empty() {
        rdata.add_char_string(CharacterString::new(b"").ok()?.into_owned());
    }
    for chunk in txt.as_bytes().chunks(255) {
        rdata.add_char_string(CharacterString::new(chunk).ok()?.into_owned());
    }
    Some(RData::TXT(rdata))
}

/// Consul's `encodeKVasRFC1464`: escapes `` ` `` and `=` in the key and its leading and
/// trailing spaces, and `` ` `` in the value (RFC 1464 2).
fn rfc1464(key: &str, value: &str) -> String {
    let key = key.replace('`', "``").replace('=', "`=");
    let lead = key.len() - key.trim_start_matches(' ').len();
    let key = format!("{}{}", "` ".repeat(lead), &key[lead..]);
    let trail = key.len() - key.trim_end_matches(' ').len();
    let key = format!("{}{}", &key[..key.len() - trail], "` ".repeat(trail));
    format!("{key}={}", value.replace('`', "``"))
}
