use std::time::{Duration, Instant};

use async_io::Timer;
use async_net::{TcpListener, TcpStream};
use futures_lite::{AsyncReadExt, AsyncWriteExt, FutureExt};

use super::*;
use crate::catalog::{Change, KvSet};
use crate::cluster::raft::rpc::{MAX_IN_FLIGHT, Reply, Request};
use crate::cluster::raft::tcp;

fn set(key: &str) -> Command {
    Command::one(Change::KvSet(KvSet {
        key: key.into(),
        value: b"v".to_vec(),
        flags: 0,
        cas: None,
    }))
}

/// A fake server: accepts one RPC connection (no key) and checks its hello.
async fn accept_rpc(listener: &TcpListener) -> TcpStream {
    let (mut s, _) = listener.accept().await.unwrap();
    let mut hello = [0u8; 16];
    s.read_exact(&mut hello).await.unwrap();
    assert_eq!(&hello[..8], b"OPRAFTR1");
    s.write_all(b"OPRAFTR1").await.unwrap();
    s
}

/// The next request on `s`, or `None` when none comes within `within`.
async fn next_request(s: &mut TcpStream, within: Duration) -> Option<Request> {
    let frame = async { Some(tcp::read_frame(s).await.unwrap()) }
        .or(async {
            Timer::after(within).await;
            None
        })
        .await?;
    Some(Request::decode(&frame).unwrap())
}

/// The `n` of a request writing key `k{n}`.
fn n_of(r: &Request) -> (u64, u64) {
    let Request::Forward { id, command, .. } = r else {
        panic!("{r:?}");
    };
    let c = Command::decode(command).unwrap();
    let Change::KvSet(kv) = &c.changes[0] else {
        panic!("{c:?}");
    };
    (*id, kv.key[1..].parse().unwrap())
}

fn client(addrs: &[String], timeout: Duration, ex: &Rc<LocalExecutor<'static>>) -> RaftClient {
    RaftClient::new(
        ex.clone(),
        addrs,
        ClientConfig {
            key: None,
            request_timeout: timeout,
        },
    )
}

/// A write whose connection closes after it went out may have applied: `Unknown`, never
/// `Dropped`; one that gets no answer at all is `TimedOut` at the request timeout.
#[test]
fn a_write_lost_with_its_connection_is_unknown_and_one_never_answered_times_out() {
    let ex = Rc::new(LocalExecutor::new());
    smol::block_on(ex.run(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let c = client(std::slice::from_ref(&addr), Duration::from_secs(1), &ex);

        let server = ex.spawn(async move {
            let mut s = accept_rpc(&listener).await;
            assert!(next_request(&mut s, Duration::from_secs(2)).await.is_some());
            drop(s);
            let mut s = accept_rpc(&listener).await;
            assert!(next_request(&mut s, Duration::from_secs(2)).await.is_some());
            // Silence, with the connection open.
            Timer::after(Duration::from_secs(3)).await;
        });
        assert_eq!(c.write(set("k1")).await, Ok(Outcome::Unknown));
        let start = Instant::now();
        assert_eq!(c.write(set("k2")).await, Err(HandleError::TimedOut));
        let took = start.elapsed();
        assert!(
            took >= Duration::from_millis(900) && took < Duration::from_secs(2),
            "{took:?}"
        );
        drop(server);
    }));
}

/// One connection carries at most `MAX_IN_FLIGHT` requests at once (more wait for a free
/// slot), and replies are matched by ID whatever their order.
#[test]
fn replies_are_matched_by_id_and_in_flight_requests_are_bounded() {
    let ex = Rc::new(LocalExecutor::new());
    smol::block_on(ex.run(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let c = client(&[addr], Duration::from_secs(5), &ex);
        let total = MAX_IN_FLIGHT as u64 + 6;
        let writes: Vec<_> = (0..total)
            .map(|n| {
                let c = c.clone();
                ex.spawn(async move { (n, c.write(set(&format!("k{n}"))).await) })
            })
            .collect();

        let mut s = accept_rpc(&listener).await;
        let mut first = Vec::new();
        while let Some(r) = next_request(&mut s, Duration::from_millis(300)).await {
            first.push(n_of(&r));
        }
        assert_eq!(first.len(), MAX_IN_FLIGHT, "requests in flight at once");
        let answer = |(id, n): (u64, u64)| {
            tcp::encode_sealed(
                &Reply::Forward {
                    id,
                    result: rpc::WriteResult::Applied { index: 1000 + n },
                }
                .encode(),
                None,
            )
        };
        for &r in first.iter().rev() {
            s.write_all(&answer(r)).await.unwrap();
        }
        let mut rest = Vec::new();
        while rest.len() < 6 {
            let r = next_request(&mut s, Duration::from_secs(2))
                .await
                .expect("the waiting requests go out once slots free up");
            rest.push(n_of(&r));
        }
        for &r in &rest {
            s.write_all(&answer(r)).await.unwrap();
        }
        for w in writes {
            let (n, out) = w.await;
            assert_eq!(out, Ok(Outcome::Applied { index: 1000 + n }));
        }
        assert_eq!(c.transport_stats(), tcp::TransportStats::default());
    }));
}

/// A reply that is no RPC frame closes the connection (counted) and the write is
/// `Unknown`; with no server known, a write waits for one until its timeout.
#[test]
fn a_garbled_reply_is_unknown_and_no_server_times_out() {
    let ex = Rc::new(LocalExecutor::new());
    smol::block_on(ex.run(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let c = client(&[addr], Duration::from_secs(2), &ex);
        let server = ex.spawn(async move {
            let mut s = accept_rpc(&listener).await;
            assert!(next_request(&mut s, Duration::from_secs(2)).await.is_some());
            s.write_all(&tcp::encode_sealed(&[0xff; 7], None))
                .await
                .unwrap();
            Timer::after(Duration::from_secs(3)).await;
        });
        assert_eq!(c.write(set("k1")).await, Ok(Outcome::Unknown));
        assert_eq!(c.transport_stats().bad_frames, 1);
        drop(server);

        c.set_servers(Vec::<String>::new());
        let start = Instant::now();
        assert_eq!(c.status().await, Err(HandleError::TimedOut));
        assert!(start.elapsed() >= Duration::from_millis(1900));
    }));
}
