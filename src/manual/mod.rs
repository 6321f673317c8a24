//! The decisions behind outpost, and the reasons for them. Code says what; this says why.
//!
//! # One thread for the control plane
//!
//! The agent runs on smol's `LocalExecutor` on the main thread: the catalog, the DNS
//! responder and every socket task share state through an `Rc<RefCell<_>>` borrowed only
//! between awaits. A board with one slow core gains nothing from a thread pool, and a single
//! thread keeps the catalog deterministic and the memory small (about 9 MiB resident with
//! 2,500 service instances).
//!
//! # The catalog: one write path, slots instead of strings
//!
//! Every change is a [`crate::catalog::Command`] applied in log order; the config (at start
//! and on each reload) becomes exactly one command, so a reload is applied entirely or not at
//! all. Nodes and services live in slabs and point at each other by slot; the name indices
//! hold slots. A DNS lookup therefore hashes one name and then follows slot numbers: no
//! string comparison per instance. What a query needs and would otherwise recompute (parsed
//! addresses, each instance's aggregated health) is maintained on every change instead.
//!
//! # DNS wire format: simple-dns, with three of its bugs worked around
//!
//! Parsing and writing stay on `simple-dns` (no hand-written DNS codec). Fuzzing found no
//! panic in it, but three defects the responder works around (see `dns/responder.rs`):
//! the OPT record's TTL field is laid out wrongly (extended RCODE and version swapped with the
//! flags, DO bit lost), so the responder reads and writes OPT itself; unknown QTYPEs and
//! QCLASSes are rejected, so the question is parsed with them patched and echoed raw; and
//! section counts are trusted for pre-allocation, so header counts are checked first.
//!
//! # UDP: `recvmmsg`/`sendmmsg`
//!
//! Under load most of a DNS server's time is in the kernel. Reading and answering queries in
//! batches of up to 32 per system call (through `nix`, which wraps them safely) took the
//! server CPU per query from 10.8 µs to about 8.5 µs on the benchmark machine, close to
//! Knot DNS, which batches the same way. `nix` is an addition to the design's dependency
//! list, made for that measured reason.
//!
//! # HTTP: hyper on smol, blocking queries that wake for their own data
//!
//! HTTP parsing is hyper's (HTTP/1.1, through `smol-hyper`'s adapter; hyper pulls the
//! `tokio` crate only for its sync types, no runtime). Routes are plain functions from a
//! decoded request and the agent state to a reply, so they are tested and fuzzed without
//! sockets. A read also says its index and the one thing it depends on (a service name, a
//! node, a KV key or prefix, a table); a blocking query registers one `event-listener`
//! listener on that thing and sleeps. A command's apply reports what it changed, and only
//! those listeners fire. So a KV write does not wake a thousand service watchers, and a
//! sleeping watcher holds its connection and a listener, not a reply. Indices never go back:
//! deleted KV keys leave tombstones (folded into a floor index past 4,096), and an absent
//! service or node reports its table's index, as Consul does.
//!
//! # Health checks: a sans-IO runner
//!
//! Which check runs when, TTL expiry, "critical for too long" and what a probe result means
//! are decided by `checks::Runner`, which takes the time as an argument and draws its
//! staggering from a seeded RNG; it is tested in virtual time. The shell runs probes (HTTP
//! with the same hyper client the CLI uses, TCP connects, scripts in their own process
//! group so a timeout kills everything they started) and writes only changed results to the
//! catalog as commands, so a check that stays passing costs no write and wakes no watcher.
//!
//! # TLS: one builder, one provider, certificates swapped not restarted
//!
//! Every HTTPS server (the agent's port 8501, `serve-tls`, the server tests spawn) gets its
//! `rustls::ServerConfig` from `tls::server_config`: aws-lc-rs (the provider str0m needs
//! too, so the binary holds one crypto library), TLS 1.2 and 1.3 only, HTTP/1.1 by ALPN.
//! PEM files are checked before anything listens (a key that does not match its
//! certificate is an error naming the file, not a handshake failure later). The agent
//! reads its TLS configuration at each accept, so SIGHUP replaces it for new connections
//! while open ones keep their session; a parked blocking query keeps its TLS session
//! and only drops hyper's buffers.
//!
//! # External nodes in config dirs
//!
//! Consul registers machines without an agent through its catalog API. outpost also lets a
//! config dir describe them: a sub-directory with a `{"node": {...}}` file holds that node's
//! services. On a box this publishes the devices next to it (printers, cameras, PLCs) from
//! files alone, and it is how the DNS benchmark loads a 100-node catalog into one agent.
//!
//! # Where outpost answers differently from Consul
//!
//! - A UDP answer cut to fit the packet always sets TC (Consul only with `enable_truncate`),
//!   so clients know to retry over TCP; the `udp_answer_limit` cut follows Consul exactly.
//! - The SOA serial is the catalog index, not the clock: the same catalog gives the same
//!   answer.
//! - A known name asked for a type it has no record of gets NOERROR with no data and the SOA
//!   (RFC 2308), where Consul answers some such questions with NXDOMAIN or other records.
//! - Classes other than IN and ANY are REFUSED; EDNS versions above 0 get BADVERS (RFC 6891).
