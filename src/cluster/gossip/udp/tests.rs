//! The shell on real sockets: three members on 127.0.0.1 ephemeral ports.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::*;
use crate::cluster::gossip::{EventKind, MemberStatus, keygen_os};

const WAIT: Duration = Duration::from_secs(10);

async fn member(name: &str, key: Option<&str>) -> (GossipHandle, smol::Task<()>) {
    let node = Node::new(
        name,
        "127.0.0.1:0".parse().unwrap(),
        generation_now(),
        Tags::client("dc1"),
    );
    let keyring = key.map(|k| Keyring::new(k).unwrap());
    let bind: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let (handle, driver) = GossipHandle::bind(bind, node, GossipConfig::lan(), keyring)
        .await
        .unwrap();
    (handle, smol::spawn(driver))
}

fn status(h: &GossipHandle, name: &str) -> Option<MemberStatus> {
    h.member(name).map(|m| m.status)
}

/// Polls `cond` every 20 ms for up to `within`; whether it held.
async fn eventually(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + within;
    while Instant::now() < end {
        if cond() {
            return true;
        }
        Timer::after(Duration::from_millis(20)).await;
    }
    cond()
}

#[test]
fn three_members_converge_then_one_leaves_and_one_is_dropped() {
    smol::block_on(async {
        let (a, _ta) = member("a", None).await;
        let (b, tb) = member("b", None).await;
        let (c, _tc) = member("c", None).await;
        let events = a.subscribe();
        assert_eq!(a.state(), LocalState::Alone);
        b.join(&[a.local_addr()], WAIT).await.unwrap();
        c.join(&[b.local_addr()], WAIT).await.unwrap();
        let all = [&a, &b, &c];
        let converged = eventually(WAIT, || {
            all.iter().all(|h| {
                ["a", "b", "c"]
                    .iter()
                    .all(|n| status(h, n) == Some(MemberStatus::Alive))
            })
        })
        .await;
        assert!(converged, "members of a: {:?}", a.members());

        // A graceful leave shows as left, at once.
        let t = Instant::now();
        c.leave(WAIT).await.unwrap();
        assert!(
            eventually(Duration::from_secs(2), || status(&a, "c")
                == Some(MemberStatus::Left)
                && status(&b, "c") == Some(MemberStatus::Left))
            .await,
            "a sees c as {:?}, b as {:?}",
            status(&a, "c"),
            status(&b, "c")
        );
        eprintln!("leave seen after {:?}", t.elapsed());

        // A member whose task stops without leaving is declared failed.
        drop(tb);
        let t = Instant::now();
        assert!(
            eventually(Duration::from_secs(5), || status(&a, "b")
                == Some(MemberStatus::Failed))
            .await,
            "a sees b as {:?}",
            status(&a, "b")
        );
        eprintln!("failure seen after {:?}", t.elapsed());

        let mut seen = Vec::new();
        while let Ok(e) = events.try_recv() {
            seen.push((e.kind, e.member.node.name.clone()));
        }
        for want in [
            (EventKind::Joined, "b"),
            (EventKind::Joined, "c"),
            (EventKind::Left, "c"),
            (EventKind::Failed, "b"),
        ] {
            assert!(
                seen.contains(&(want.0, want.1.to_string())),
                "{want:?} missing from {seen:?}"
            );
        }
        assert!(!seen.contains(&(EventKind::Failed, "c".to_string())));
        assert_eq!(a.lagged_events(), 0);
    });
}

#[test]
fn an_encrypted_cluster_keeps_out_wrong_keys_and_plain_members() {
    smol::block_on(async {
        let key = keygen_os().unwrap();
        let other = keygen_os().unwrap();
        let (a, _ta) = member("a", Some(&key)).await;
        let (b, _tb) = member("b", Some(&key)).await;
        let (wrong, _tw) = member("wrong", Some(&other)).await;
        let (plain, _tp) = member("plain", None).await;
        b.join(&[a.local_addr()], WAIT).await.unwrap();
        assert!(
            eventually(WAIT, || status(&a, "b") == Some(MemberStatus::Alive)
                && status(&b, "a") == Some(MemberStatus::Alive))
            .await
        );

        let short = Duration::from_millis(1500);
        let err = wrong.join(&[a.local_addr()], short).await.unwrap_err();
        assert!(matches!(err, JoinError::Timeout { .. }), "{err}");
        assert!(
            err.to_string().contains(&a.local_addr().to_string()),
            "{err}"
        );
        let err = plain.join(&[a.local_addr()], short).await.unwrap_err();
        assert!(matches!(err, JoinError::Timeout { .. }), "{err}");

        let counters = a.counters();
        assert!(counters.dropped_decrypt > 0, "{counters:?}");
        assert!(counters.dropped_plaintext > 0, "{counters:?}");
        assert_eq!(status(&a, "wrong"), None);
        assert_eq!(status(&a, "plain"), None);
        assert_eq!(a.members().len(), 2);
        assert_eq!(a.list_keys().unwrap(), vec![key.clone()]);
        assert_eq!(
            plain.list_keys().unwrap_err().to_string(),
            "gossip encryption is not enabled (start the agent with -encrypt)"
        );
    });
}

#[test]
fn binding_a_busy_port_names_the_address() {
    smol::block_on(async {
        let (a, _ta) = member("a", None).await;
        let node = Node::new("b", a.local_addr(), 1, Tags::client("dc1"));
        let err = GossipHandle::bind(a.local_addr(), node, GossipConfig::lan(), None)
            .await
            .map(|_| ())
            .unwrap_err();
        assert!(
            err.to_string()
                .starts_with(&format!("gossip: cannot bind UDP {}:", a.local_addr())),
            "{err}"
        );
    });
}
