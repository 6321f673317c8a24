use std::net::SocketAddr;

use super::*;
use crate::catalog::{Catalog, Change, KvSet};

type Shared = Rc<RefCell<Catalog>>;

fn set(key: &str, value: &str) -> Command {
    Command::one(Change::KvSet(KvSet {
        key: key.into(),
        value: value.as_bytes().to_vec(),
        flags: 0,
        cas: None,
    }))
}

fn value(c: &Shared, key: &str) -> Option<String> {
    c.borrow()
        .kv()
        .get(key)
        .map(|e| String::from_utf8_lossy(&e.value).into_owned())
}

struct Box3 {
    ex: Rc<LocalExecutor<'static>>,
    dirs: Vec<tempfile::TempDir>,
    addrs: Vec<SocketAddr>,
    servers: Vec<Option<(RaftServer, Shared)>>,
}

impl Box3 {
    fn config(&self, i: usize) -> ServerConfig {
        let voters = self
            .addrs
            .iter()
            .enumerate()
            .map(|(j, a)| (j as u64 + 1, a.to_string()))
            .collect();
        ServerConfig {
            raft: RaftConfig::new(i as u64 + 1, fastrand::u64(..)),
            data_dir: self.dirs[i].path().to_path_buf(),
            bootstrap: Some(voters),
            request_timeout: Duration::from_secs(5),
        }
    }

    async fn start(&mut self, i: usize, listener: Option<TcpListener>) {
        let listener = match listener {
            Some(l) => l,
            None => TcpListener::bind(self.addrs[i]).await.unwrap(),
        };
        let cat: Shared = Rc::default();
        let server =
            RaftServer::start(self.ex.clone(), self.config(i), listener, cat.clone()).unwrap();
        self.servers[i] = Some((server, cat));
    }

    fn handle(&self, i: usize) -> RaftHandle {
        self.servers[i].as_ref().unwrap().0.handle()
    }

    fn catalog(&self, i: usize) -> Shared {
        self.servers[i].as_ref().unwrap().1.clone()
    }

    /// The leader every running server agrees on, waiting at most `within`.
    async fn leader(&self, within: Duration) -> usize {
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

    async fn wait_value(&self, i: usize, key: &str, want: &str, within: Duration) {
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
        let mut listeners = Vec::new();
        for _ in 0..3 {
            listeners.push(TcpListener::bind("127.0.0.1:0").await.unwrap());
        }
        let mut b = Box3 {
            ex: ex.clone(),
            dirs: (0..3).map(|_| tempfile::tempdir().unwrap()).collect(),
            addrs: listeners.iter().map(|l| l.local_addr().unwrap()).collect(),
            servers: vec![None, None, None],
        };
        for (i, l) in listeners.into_iter().enumerate() {
            b.start(i, Some(l)).await;
        }
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
        b.servers[leader] = None;
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
