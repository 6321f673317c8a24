use std::collections::BTreeMap;
use std::net::SocketAddr;

use super::*;
use crate::catalog::{Catalog, Change, KvSet};
use crate::cluster::raft::{ClientConfig, RaftClient, TransportStats};

pub(crate) type Shared = Rc<RefCell<Catalog>>;

pub(crate) fn set(key: &str, value: &str) -> Command {
    Command::one(Change::KvSet(KvSet {
        key: key.into(),
        value: value.as_bytes().to_vec(),
        flags: 0,
        cas: None,
    }))
}

pub(crate) fn value(c: &Shared, key: &str) -> Option<String> {
    c.borrow()
        .kv()
        .get(key)
        .map(|e| String::from_utf8_lossy(&e.value).into_owned())
}

pub(crate) struct Box3 {
    pub ex: Rc<LocalExecutor<'static>>,
    dirs: Vec<tempfile::TempDir>,
    pub addrs: Vec<SocketAddr>,
    servers: Vec<Option<(RaftServer, Shared)>>,
    /// The key servers start with (a test may change it before a restart).
    pub key: Option<[u8; 32]>,
    timeout: Duration,
}

impl Box3 {
    /// Three servers on loopback ports, started, with `key` and a request `timeout`.
    pub async fn start_all(
        ex: &Rc<LocalExecutor<'static>>,
        key: Option<[u8; 32]>,
        timeout: Duration,
    ) -> Box3 {
        let mut listeners = Vec::new();
        for _ in 0..3 {
            listeners.push(TcpListener::bind("127.0.0.1:0").await.unwrap());
        }
        let mut b = Box3 {
            ex: ex.clone(),
            dirs: (0..3).map(|_| tempfile::tempdir().unwrap()).collect(),
            addrs: listeners.iter().map(|l| l.local_addr().unwrap()).collect(),
            servers: vec![None, None, None],
            key,
            timeout,
        };
        for (i, l) in listeners.into_iter().enumerate() {
            b.start(i, Some(l)).await;
        }
        b
    }

    fn config(&self, i: usize) -> ServerConfig {
        let voters = self
            .addrs
            .iter()
            .enumerate()
            .map(|(j, a)| (j as u64 + 1, a.to_string()))
            .collect();
        ServerConfig {
            bootstrap: Some(voters),
            request_timeout: self.timeout,
            key: self.key,
            ..ServerConfig::new(
                RaftConfig::new(i as u64 + 1, fastrand::u64(..)),
                self.dirs[i].path().to_path_buf(),
            )
        }
    }

    pub async fn start(&mut self, i: usize, listener: Option<TcpListener>) {
        let listener = match listener {
            Some(l) => l,
            // A killed server's tasks close its listener when the executor next runs them.
            None => {
                let deadline = Instant::now() + Duration::from_secs(2);
                loop {
                    match TcpListener::bind(self.addrs[i]).await {
                        Ok(l) => break l,
                        Err(e) if Instant::now() < deadline => {
                            let _ = e;
                            Timer::after(Duration::from_millis(10)).await;
                        }
                        Err(e) => panic!("cannot bind {}: {e}", self.addrs[i]),
                    }
                }
            }
        };
        let cat: Shared = Rc::default();
        let server =
            RaftServer::start(self.ex.clone(), self.config(i), listener, cat.clone()).unwrap();
        self.servers[i] = Some((server, cat));
    }

    pub fn handle(&self, i: usize) -> RaftHandle {
        self.servers[i].as_ref().unwrap().0.handle()
    }

    pub fn catalog(&self, i: usize) -> Shared {
        self.servers[i].as_ref().unwrap().1.clone()
    }

    /// The leader every running server agrees on, waiting at most `within`.
    pub async fn leader(&self, within: Duration) -> usize {
        let deadline = Instant::now() + within;
        loop {
            let views: Vec<Option<u64>> = self
                .servers
                .iter()
                .flatten()
                .map(|(s, _)| s.handle().status().leader)
                .collect();
            if let Some(Some(l)) = views.first()
                && views.iter().all(|v| *v == Some(*l))
                && self.servers[(*l - 1) as usize].is_some()
            {
                return (*l - 1) as usize;
            }
            assert!(
                Instant::now() < deadline,
                "no agreed leader within {within:?}: {views:?}"
            );
            Timer::after(Duration::from_millis(10)).await;
        }
    }

    pub fn kill(&mut self, i: usize) {
        self.servers[i] = None;
    }

    pub async fn wait_value(&self, i: usize, key: &str, want: &str, within: Duration) {
        let deadline = Instant::now() + within;
        while value(&self.catalog(i), key).as_deref() != Some(want) {
            assert!(
                Instant::now() < deadline,
                "server {} did not get {key}={want} within {within:?}",
                i + 1
            );
            Timer::after(Duration::from_millis(10)).await;
        }
    }
}

/// Three servers on loopback: one leader, writes applied everywhere, a follower refers
/// writes to the leader and serves ReadIndex reads, the leader's death elects another
/// quickly without losing an acknowledged write, and a restarted server catches up from its
/// data dir and the new leader.
#[test]
fn three_servers_on_loopback_elect_replicate_fail_over_and_catch_up() {
    let ex = Rc::new(LocalExecutor::new());
    smol::block_on(ex.run(async {
        let mut b = Box3::start_all(&ex, None, Duration::from_secs(5)).await;
        let leader = b.leader(Duration::from_secs(5)).await;

        let out = b.handle(leader).propose(set("a", "1")).await.unwrap();
        assert!(matches!(out, Outcome::Applied { .. }), "{out:?}");
        for i in 0..3 {
            b.wait_value(i, "a", "1", Duration::from_secs(3)).await;
        }
        let follower = (leader + 1) % 3;
        let out = b.handle(follower).propose(set("x", "y")).await.unwrap();
        assert_eq!(
            out,
            Outcome::NotLeader {
                leader: Some(leader as u64 + 1)
            }
        );
        let at = b.handle(follower).read_index().await.unwrap();
        assert!(at >= 2, "read index {at}");
        assert_eq!(value(&b.catalog(follower), "a").as_deref(), Some("1"));

        for n in 0..5 {
            let out = b
                .handle(leader)
                .propose(set(&format!("k{n}"), "v"))
                .await
                .unwrap();
            assert!(matches!(out, Outcome::Applied { .. }), "{out:?}");
        }

        // Kill the leader.
        let died = Instant::now();
        b.kill(leader);
        let next = b.leader(Duration::from_secs(5)).await;
        let took = died.elapsed();
        eprintln!("fail-over took {took:?}");
        assert_ne!(next, leader);
        assert!(
            took < Duration::from_millis(2500),
            "fail-over took {took:?}"
        );
        let out = b.handle(next).propose(set("b", "2")).await.unwrap();
        assert!(matches!(out, Outcome::Applied { .. }), "{out:?}");
        for i in (0..3).filter(|&i| i != leader) {
            for n in 0..5 {
                assert!(value(&b.catalog(i), &format!("k{n}")).is_some());
            }
            b.wait_value(i, "b", "2", Duration::from_secs(3)).await;
        }

        // The old leader comes back with its data dir and catches up.
        b.start(leader, None).await;
        b.wait_value(leader, "b", "2", Duration::from_secs(5)).await;
        assert_eq!(value(&b.catalog(leader), "k4").as_deref(), Some("v"));
        let agreed = b.leader(Duration::from_secs(5)).await;
        assert_eq!(b.handle(leader).status().peers.len(), 3);
        assert_eq!(
            b.handle(leader).leader().map(|l| l.0),
            Some(agreed as u64 + 1)
        );
    }));
}

const KEY: [u8; 32] = [0x5a; 32];

fn applied(out: &Result<Outcome, HandleError>) -> bool {
    matches!(out, Ok(Outcome::Applied { .. }))
}

/// Forwarding: `write` on a follower gets the write applied on every server, and the
/// follower's own state has it the moment `write` returns (read your writes); `write` on
/// the leader is a plain proposal. The whole cluster authenticates with a key.
#[test]
fn a_write_on_a_follower_is_forwarded_and_readable_there_as_soon_as_it_returns() {
    let ex = Rc::new(LocalExecutor::new());
    smol::block_on(ex.run(async {
        let b = Box3::start_all(&ex, Some(KEY), Duration::from_secs(5)).await;
        let leader = b.leader(Duration::from_secs(5)).await;
        for f in (0..3).filter(|&i| i != leader) {
            for n in 0..5 {
                let key = format!("f{f}-{n}");
                let out = b.handle(f).write(set(&key, "v")).await;
                assert!(applied(&out), "{out:?}");
                assert_eq!(
                    value(&b.catalog(f), &key).as_deref(),
                    Some("v"),
                    "server {} did not have its own write {key} when write returned",
                    f + 1
                );
            }
        }
        let out = b.handle(leader).write(set("on-leader", "v")).await;
        assert!(applied(&out), "{out:?}");
        for i in 0..3 {
            for f in (0..3).filter(|&f| f != leader) {
                b.wait_value(i, &format!("f{f}-4"), "v", Duration::from_secs(3))
                    .await;
            }
            b.wait_value(i, "on-leader", "v", Duration::from_secs(3))
                .await;
        }
        // A refusal travels back as such (a failed check-and-set), and is applied here too.
        let follower = (leader + 1) % 3;
        let cas = Command::one(Change::KvSet(KvSet {
            key: "on-leader".into(),
            value: b"w".to_vec(),
            flags: 0,
            cas: Some(1),
        }));
        let out = b.handle(follower).write(cas).await;
        assert!(
            matches!(
                out,
                Ok(Outcome::Refused {
                    error: ApplyError::CasFailed { .. },
                    ..
                })
            ),
            "{out:?}"
        );
        for i in 0..3 {
            let s = b.handle(i).transport_stats();
            assert_eq!(s, TransportStats::default(), "server {}", i + 1);
        }
    }));
}

/// A client agent (no Raft ID, not a member) writes through a follower, through the
/// leader, and past a server that is down; asks any server for the leader and the peers.
#[test]
fn a_client_agent_writes_through_any_server_and_asks_for_the_status() {
    let ex = Rc::new(LocalExecutor::new());
    smol::block_on(ex.run(async {
        let b = Box3::start_all(&ex, Some(KEY), Duration::from_secs(5)).await;
        let leader = b.leader(Duration::from_secs(5)).await;
        let follower = (leader + 1) % 3;
        let down = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let down_addr = down.local_addr().unwrap();
        drop(down);
        let client = RaftClient::new(
            ex.clone(),
            [down_addr, b.addrs[follower]],
            ClientConfig {
                key: Some(KEY),
                request_timeout: Duration::from_secs(5),
            },
        );
        let out = client.write(set("via-follower", "1")).await;
        assert!(applied(&out), "{out:?}");
        // The follower answered once it had applied the write itself.
        assert_eq!(
            value(&b.catalog(follower), "via-follower").as_deref(),
            Some("1")
        );
        client.set_servers([b.addrs[leader]]);
        assert_eq!(client.servers(), vec![b.addrs[leader].to_string()]);
        let out = client.write(set("via-leader", "2")).await;
        assert!(applied(&out), "{out:?}");
        for i in 0..3 {
            b.wait_value(i, "via-follower", "1", Duration::from_secs(3))
                .await;
            b.wait_value(i, "via-leader", "2", Duration::from_secs(3))
                .await;
        }

        client.set_servers([b.addrs[follower]]);
        let st = client.status().await.unwrap();
        assert_eq!(st.server, b.addrs[follower].to_string());
        assert_eq!(st.server_id, follower as u64 + 1);
        assert_eq!(
            st.leader,
            Some((leader as u64 + 1, b.addrs[leader].to_string()))
        );
        let peers: Vec<(u64, String)> = st.peers.into_iter().collect();
        let want: Vec<(u64, String)> = (0..3)
            .map(|i| (i as u64 + 1, b.addrs[i].to_string()))
            .collect();
        assert_eq!(peers, want);
        // The client is nobody's peer.
        assert_eq!(b.handle(leader).status().peers.len(), 3);
        assert_eq!(client.transport_stats(), TransportStats::default());
    }));
}

/// Fail-over under forwarded writes: streams of writes through two followers (`write`)
/// and a client agent; the leader is killed mid-stream. Every write ends applied (and is
/// there on every server once the old leader is back), certainly not applied (and is
/// nowhere), or unknown / timed out; writes go on through the new leader.
#[test]
fn killing_the_leader_during_forwarded_writes_never_reports_an_applied_write_lost() {
    let ex = Rc::new(LocalExecutor::new());
    smol::block_on(ex.run(async {
        let mut b = Box3::start_all(&ex, Some(KEY), Duration::from_secs(3)).await;
        let leader = b.leader(Duration::from_secs(5)).await;
        let followers: Vec<usize> = (0..3).filter(|&i| i != leader).collect();
        let client = RaftClient::new(
            ex.clone(),
            followers.iter().map(|&f| b.addrs[f]),
            ClientConfig {
                key: Some(KEY),
                request_timeout: Duration::from_secs(4),
            },
        );
        type Log = Rc<RefCell<Vec<(String, Result<Outcome, HandleError>)>>>;
        let stop = Rc::new(std::cell::Cell::new(false));
        let mut logs: Vec<Log> = Vec::new();
        let mut tasks = Vec::new();
        for s in 0..5 {
            let log: Log = Rc::default();
            logs.push(log.clone());
            let stop = stop.clone();
            let via = if s < 4 { Some(followers[s % 2]) } else { None };
            let handle = via.map(|f| b.handle(f));
            let cat = via.map(|f| b.catalog(f));
            let client = client.clone();
            tasks.push(ex.spawn(async move {
                let mut n = 0;
                while !stop.get() {
                    let key = format!("s{s}-{n}");
                    n += 1;
                    let out = match &handle {
                        Some(h) => h.write(set(&key, "v")).await,
                        None => client.write(set(&key, "v")).await,
                    };
                    if applied(&out)
                        && let Some(cat) = &cat
                    {
                        assert_eq!(
                            value(cat, &key).as_deref(),
                            Some("v"),
                            "{key} applied but not readable where it was written"
                        );
                    }
                    log.borrow_mut().push((key, out));
                }
            }));
        }
        let applied_count =
            |logs: &[Log], s: usize| logs[s].borrow().iter().filter(|(_, o)| applied(o)).count();
        let wait_applied = |logs: Vec<Log>, at_least: Vec<usize>, within: Duration| async move {
            let deadline = Instant::now() + within;
            while (0..logs.len()).any(|s| applied_count(&logs, s) < at_least[s]) {
                assert!(Instant::now() < deadline, "writes stalled");
                Timer::after(Duration::from_millis(20)).await;
            }
        };
        wait_applied(logs.clone(), vec![3; 5], Duration::from_secs(5)).await;
        b.kill(leader);
        let before: Vec<usize> = (0..5).map(|s| applied_count(&logs, s)).collect();
        let next = b.leader(Duration::from_secs(5)).await;
        assert_ne!(next, leader);
        wait_applied(
            logs.clone(),
            before.iter().map(|n| n + 3).collect(),
            Duration::from_secs(10),
        )
        .await;
        stop.set(true);
        for t in tasks {
            t.await;
        }
        // The old leader comes back and catches up; a last write marks the end.
        b.start(leader, None).await;
        let out = b.handle(next).write(set("end", "1")).await;
        assert!(applied(&out), "{out:?}");
        for i in 0..3 {
            b.wait_value(i, "end", "1", Duration::from_secs(10)).await;
        }
        let mut tally: BTreeMap<&str, usize> = BTreeMap::new();
        for log in &logs {
            for (key, out) in log.borrow().iter() {
                let kind = match out {
                    Ok(Outcome::Applied { .. }) => {
                        for i in 0..3 {
                            assert!(value(&b.catalog(i), key).is_some(), "{key} lost on {i}");
                        }
                        "applied"
                    }
                    Ok(Outcome::Dropped { .. }) => {
                        for i in 0..3 {
                            assert!(
                                value(&b.catalog(i), key).is_none(),
                                "{key} reported dropped but applied"
                            );
                        }
                        "dropped"
                    }
                    Ok(Outcome::Unknown) => "unknown",
                    Err(HandleError::TimedOut) => "timed out",
                    other => panic!("{key}: {other:?} is not an outcome of write"),
                };
                *tally.entry(kind).or_default() += 1;
            }
        }
        eprintln!("outcomes: {tally:?}");
    }));
}

/// Connects to `addr`, sends `bytes`, and says whether the server closed the connection
/// within 3 s (reading nothing, or only what `skip` bytes the handshake answers).
async fn closed_after(addr: SocketAddr, bytes: &[u8]) -> bool {
    use futures_lite::{AsyncReadExt, AsyncWriteExt};
    let mut s = async_net::TcpStream::connect(addr).await.unwrap();
    let _ = s.write_all(bytes).await;
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut buf = [0u8; 256];
    loop {
        let read = async { Some(s.read(&mut buf).await) }.or(async {
            Timer::at(deadline).await;
            None
        });
        match read.await {
            None => return false,
            Some(Ok(0)) | Some(Err(_)) => return true,
            // A nonce from the handshake: keep reading.
            Some(Ok(_)) => {}
        }
    }
}

fn frame(bytes: &[u8]) -> Vec<u8> {
    tcp::encode_sealed(bytes, None)
}

fn hello_of(magic: &[u8; 8], id: u64) -> Vec<u8> {
    let mut h = magic.to_vec();
    h.extend_from_slice(&id.to_le_bytes());
    h
}

/// Junk on the server port: HTTP, an authenticating dialer on a server without a key, RPC
/// frames that do not decode or are too large: each connection is closed and counted,
/// nothing panics, and the cluster goes on. A forwarded command that does not decode is
/// answered, not proposed.
#[test]
fn junk_on_the_server_port_closes_the_connection_and_harms_nothing() {
    use futures_lite::{AsyncReadExt, AsyncWriteExt};
    let ex = Rc::new(LocalExecutor::new());
    smol::block_on(ex.run(async {
        let b = Box3::start_all(&ex, None, Duration::from_secs(5)).await;
        let leader = b.leader(Duration::from_secs(5)).await;
        let addr = b.addrs[leader];
        let rpc = hello_of(b"OPRAFTR1", 0);

        assert!(closed_after(addr, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await);
        let mut auth = b"OPRAFTA1".to_vec();
        auth.extend_from_slice(&[7; 32]);
        assert!(closed_after(addr, &auth).await);
        let mut junk = rpc.clone();
        junk.extend(frame(&[0xff; 9]));
        assert!(closed_after(addr, &junk).await);
        let mut huge = rpc.clone();
        huge.extend(((tcp::MAX_FRAME + 1) as u32).to_le_bytes());
        assert!(closed_after(addr, &huge).await);
        // Raft frames that are no raft message are refused by the core, one by one.
        let mut raft = hello_of(b"OPRAFTT1", 2);
        for n in 0..20u8 {
            raft.extend(frame(&[n; 40]));
        }
        let mut s = async_net::TcpStream::connect(addr).await.unwrap();
        s.write_all(&raft).await.unwrap();

        // A well-formed request whose command does not decode: answered, not proposed.
        let mut s = async_net::TcpStream::connect(addr).await.unwrap();
        s.write_all(&rpc).await.unwrap();
        let req = rpc::Request::Forward {
            id: 42,
            command: vec![0xff; 12],
            relay: false,
            budget_ms: 1000,
        };
        s.write_all(&frame(&req.encode())).await.unwrap();
        let mut ack = [0u8; 8];
        s.read_exact(&mut ack).await.unwrap();
        assert_eq!(&ack, b"OPRAFTR1");
        let reply = tcp::read_frame(&mut s).await.unwrap();
        assert_eq!(
            rpc::Reply::decode(&reply).unwrap(),
            rpc::Reply::Forward {
                id: 42,
                result: rpc::WriteResult::Dropped {
                    reason: rpc::DROP_UNDECODABLE.into()
                }
            }
        );
        let mut rest = [0u8; 1];
        let nothing = async { Some(s.read(&mut rest).await) }.or(async {
            Timer::after(Duration::from_millis(200)).await;
            None
        });
        assert!(
            nothing.await.is_none(),
            "the connection stays open after an answer"
        );

        let stats = b.handle(leader).transport_stats();
        assert_eq!(stats.rejected_handshakes, 2, "{stats:?}");
        assert_eq!(stats.bad_frames, 2, "{stats:?}");
        let follower = (leader + 1) % 3;
        let out = b.handle(follower).write(set("after-junk", "1")).await;
        assert!(applied(&out), "{out:?}");
        assert_eq!(b.leader(Duration::from_secs(1)).await, leader);
    }));
}

/// A keyed cluster refuses whoever lacks the key: client agents with another key or none
/// (their writes time out, nothing is written), raw dialers without a proof or with a
/// wrong one, and a server restarted with another key (it gets nothing until it has the
/// right key again). All are counted on both ends; nothing panics.
#[test]
fn a_peer_without_the_key_or_with_another_is_refused_and_counted() {
    let ex = Rc::new(LocalExecutor::new());
    smol::block_on(ex.run(async {
        let mut b = Box3::start_all(&ex, Some(KEY), Duration::from_secs(5)).await;
        let leader = b.leader(Duration::from_secs(5)).await;
        let addr = b.addrs[leader];
        let short = Duration::from_millis(800);
        for key in [Some([1u8; 32]), None] {
            let c = RaftClient::new(
                ex.clone(),
                b.addrs.clone(),
                ClientConfig {
                    key,
                    request_timeout: short,
                },
            );
            assert_eq!(
                c.write(set("intruder", "x")).await,
                Err(HandleError::TimedOut)
            );
            assert_eq!(c.status().await, Err(HandleError::TimedOut));
            if key.is_some() {
                assert!(c.transport_stats().rejected_handshakes >= 3);
            }
        }
        // Raw dialers: a plain hello, and a wrong proof.
        assert!(closed_after(addr, &hello_of(b"OPRAFTT1", 2)).await);
        let mut wrong = b"OPRAFTA1".to_vec();
        wrong.extend_from_slice(&[9; 32]);
        wrong.extend(hello_of(b"OPRAFTR1", 0));
        wrong.extend_from_slice(&[0; 32]);
        assert!(closed_after(addr, &wrong).await);

        // A server restarted with another key is cut off, and counted on both ends.
        let refused_before = b.handle(leader).transport_stats().rejected_handshakes;
        assert!(refused_before >= 4, "{refused_before}");
        let other = (leader + 1) % 3;
        b.kill(other);
        b.key = Some([2; 32]);
        b.start(other, None).await;
        b.key = Some(KEY);
        let out = b.handle(leader).write(set("while-cut-off", "1")).await;
        assert!(applied(&out), "{out:?}");
        let deadline = Instant::now() + Duration::from_secs(5);
        while b.handle(other).transport_stats().rejected_handshakes == 0
            || b.handle(leader).transport_stats().rejected_handshakes == refused_before
        {
            assert!(Instant::now() < deadline, "no refusal counted");
            Timer::after(Duration::from_millis(20)).await;
        }
        assert_eq!(value(&b.catalog(other), "while-cut-off"), None);
        // With the right key again it catches up.
        b.kill(other);
        b.start(other, None).await;
        b.wait_value(other, "while-cut-off", "1", Duration::from_secs(5))
            .await;
        for i in 0..3 {
            assert_eq!(value(&b.catalog(i), "intruder"), None);
        }
    }));
}

/// A key rotation as gossip does it: install the new key everywhere, use it, remove the
/// old one. Writes go on through it, a server restarted with only the new key takes part,
/// and at the end a client with only the old key is refused.
#[test]
fn the_key_rotates_as_gossip_keys_do_without_cutting_anyone_off() {
    let ex = Rc::new(LocalExecutor::new());
    smol::block_on(ex.run(async {
        let (old, new) = (KEY, [0x77; 32]);
        let mut b = Box3::start_all(&ex, Some(old), Duration::from_secs(5)).await;
        let leader = b.leader(Duration::from_secs(5)).await;
        let config = |key| ClientConfig {
            key: Some(key),
            request_timeout: Duration::from_secs(3),
        };
        let client = RaftClient::new(ex.clone(), b.addrs.clone(), config(old));
        assert!(applied(&client.write(set("before", "1")).await));
        for keys in [[old, new], [new, old]] {
            for i in 0..3 {
                b.handle(i).set_keys(&keys);
            }
            client.set_keys(&keys);
        }
        let f = (leader + 1) % 3;
        b.kill(f);
        b.key = Some(new);
        b.start(f, None).await;
        let out = b.handle(f).write(set("during", "2")).await;
        assert!(applied(&out), "{out:?}");
        for i in (0..3).filter(|&i| i != f) {
            b.handle(i).set_keys(&[new]);
        }
        client.set_keys(&[new]);
        let fresh = RaftClient::new(ex.clone(), b.addrs.clone(), config(new));
        assert!(applied(&fresh.write(set("after", "3")).await));
        let stale = RaftClient::new(
            ex.clone(),
            b.addrs.clone(),
            ClientConfig {
                key: Some(old),
                request_timeout: Duration::from_millis(800),
            },
        );
        assert_eq!(
            stale.write(set("stale", "x")).await,
            Err(HandleError::TimedOut)
        );
        for i in 0..3 {
            b.wait_value(i, "after", "3", Duration::from_secs(3)).await;
            assert_eq!(value(&b.catalog(i), "during").as_deref(), Some("2"));
            assert_eq!(value(&b.catalog(i), "stale"), None);
        }
    }));
}

/// Compaction in the background: a server that snapshots every few entries writes its
/// snapshot file beside the log's appends, then starts the log after it; the log stays
/// small, and a restart from the data dir gives back every write.
#[test]
fn background_snapshots_keep_the_log_short_and_lose_no_write() {
    let ex = Rc::new(LocalExecutor::new());
    smol::block_on(ex.run(async {
        let dir = tempfile::tempdir().unwrap();
        let config = |addr: SocketAddr| {
            let mut raft = RaftConfig::new(1, 5);
            raft.snapshot_every = 16;
            ServerConfig {
                bootstrap: Some(vec![(1, addr.to_string())]),
                ..ServerConfig::new(raft, dir.path().to_path_buf())
            }
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let cat: Shared = Rc::default();
        let server = RaftServer::start(ex.clone(), config(addr), listener, cat.clone()).unwrap();
        let h = server.handle();
        for n in 0..300 {
            let out = h.write(set(&format!("k{n}"), "v")).await.unwrap();
            assert!(matches!(out, Outcome::Applied { .. }), "{out:?}");
        }
        // Let the last background snapshot finish and the log be rewritten after it.
        Timer::after(Duration::from_millis(300)).await;
        let (snap_len, log_len) = (
            std::fs::metadata(dir.path().join("raft.snap"))
                .unwrap()
                .len(),
            std::fs::metadata(dir.path().join("raft.log"))
                .unwrap()
                .len(),
        );
        assert!(snap_len > 0);
        // 300 entries of ~30 bytes each would be ~10 KB of log without compaction.
        assert!(log_len < 4_000, "log of {log_len} bytes after compactions");
        drop(server);
        Timer::after(Duration::from_millis(50)).await;

        let listener = TcpListener::bind(addr).await.unwrap();
        let again: Shared = Rc::default();
        let _server = RaftServer::start(ex.clone(), config(addr), listener, again.clone()).unwrap();
        // The snapshot is restored at start; the entries after it as they are re-applied.
        let deadline = Instant::now() + Duration::from_secs(3);
        while value(&again, "k299").is_none() && Instant::now() < deadline {
            Timer::after(Duration::from_millis(10)).await;
        }
        for n in 0..300 {
            assert_eq!(
                value(&again, &format!("k{n}")).as_deref(),
                Some("v"),
                "k{n}"
            );
        }
    }));
}

#[test]
fn the_heap_is_trimmed_once_after_writes_settle() {
    let t0 = Instant::now();
    let at = |ms: u64| t0 + Duration::from_millis(ms);
    let mut s = Settle::default();
    // Nothing applied yet: nothing to give back.
    assert!(!s.due(0, at(0)));
    assert!(!s.due(0, at(5_000)));
    // A burst of writes: no trim while the applied index moves, nor before it has rested
    // for a second.
    for (i, ms) in (1..=50).zip((0..).step_by(20)) {
        assert!(!s.due(i, at(5_000 + ms)), "trimmed during the burst");
    }
    let end = 5_000 + 49 * 20;
    assert!(!s.due(50, at(end + 999)));
    assert!(s.due(50, at(end + 1_000)), "not trimmed once settled");
    // Once per settled index.
    assert!(!s.due(50, at(end + 5_000)));
    assert!(!s.due(51, at(end + 6_000)));
    assert!(s.due(51, at(end + 7_000)));
}
