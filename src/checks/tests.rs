//! The driver on a real smol executor and real time: probes run, events come out, inputs
//! wake it. Waits are bounded generously; nothing here measures speed.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use async_net::TcpListener;
use smol::LocalExecutor;

use super::*;
use crate::catalog::{Check, CheckDefinition, Health};

/// Runs `drive_with`/`drive` (started by `start`) next to `test` on one thread, as the
/// agent does, until `test` ends.
fn with_driver<T>(
    start: impl FnOnce(Rc<Checks>, Rc<RefCell<Vec<Event>>>) -> Pin<Box<dyn Future<Output = ()>>>,
    test: impl AsyncFnOnce(Rc<Checks>, Rc<RefCell<Vec<Event>>>) -> T,
) -> T {
    let ex = LocalExecutor::new();
    let checks = Checks::new(Runner::new(Settings::new(42)));
    let seen = Rc::new(RefCell::new(Vec::new()));
    let driver = ex.spawn(start(checks.clone(), seen.clone()));
    let out = smol::block_on(ex.run(test(checks, seen)));
    drop(driver);
    out
}

fn recording(
    checks: Rc<Checks>,
    seen: Rc<RefCell<Vec<Event>>>,
) -> Pin<Box<dyn Future<Output = ()>>> {
    Box::pin(drive(checks, move |e| seen.borrow_mut().push(e)))
}

/// Waits (up to 5 s) until `seen` holds an event matching `want`, and returns it.
async fn wait_for(seen: &RefCell<Vec<Event>>, want: impl Fn(&Event) -> bool) -> Option<Event> {
    for _ in 0..500 {
        if let Some(e) = seen.borrow().iter().find(|e| want(e)) {
            return Some(e.clone());
        }
        IoTimer::after(Duration::from_millis(10)).await;
    }
    None
}

fn check(id: &str, service: &str, definition: CheckDefinition) -> Check {
    Check {
        definition,
        ..Check::new(id, service, Health::Critical)
    }
}

#[test]
fn a_tcp_check_against_a_listening_port_turns_passing() {
    let got = with_driver(recording, async |checks, seen| {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let def = CheckDefinition {
            tcp: addr.clone(),
            interval_ms: 1_000,
            ..CheckDefinition::default()
        };
        checks.input(|r| r.set_checks(Instant::now(), &[check("ssh", "ssh", def)]));
        let e = wait_for(&seen, |e| matches!(e, Event::StatusChanged { .. })).await;
        (e, addr)
    });
    let (e, addr) = got;
    assert_eq!(
        e,
        Some(Event::StatusChanged {
            check_id: "ssh".into(),
            status: Health::Passing,
            output: format!("TCP connect {addr}: Success"),
        })
    );
}

#[test]
fn an_input_wakes_the_driver_and_a_ttl_expires_on_time() {
    let (updated, expired) = with_driver(recording, async |checks, seen| {
        let ttl = |ms| CheckDefinition {
            ttl_ms: ms,
            ..CheckDefinition::default()
        };
        checks.input(|r| r.set_checks(Instant::now(), &[check("app", "app", ttl(3_600_000))]));
        // Let the driver go to sleep until the TTL, an hour away: only the wake-up that
        // `input` gives can bring the update to the catalog within the wait below.
        IoTimer::after(Duration::from_millis(50)).await;
        checks
            .input(|r| r.ttl_update(Instant::now(), "app", Health::Passing, "up"))
            .unwrap();
        let updated = wait_for(&seen, |e| matches!(e, Event::StatusChanged { .. })).await;
        let short = check("short", "app", ttl(300));
        checks.input(|r| {
            r.set_checks(
                Instant::now(),
                &[check("app", "app", ttl(3_600_000)), short],
            )
        });
        let expired = wait_for(
            &seen,
            |e| matches!(e, Event::StatusChanged { check_id, .. } if check_id == "short"),
        )
        .await;
        (updated, expired)
    });
    assert_eq!(
        updated,
        Some(Event::StatusChanged {
            check_id: "app".into(),
            status: Health::Passing,
            output: "up".into()
        })
    );
    assert_eq!(
        expired,
        Some(Event::StatusChanged {
            check_id: "short".into(),
            status: Health::Critical,
            output: "TTL expired".into()
        })
    );
}

#[test]
fn on_event_may_feed_the_runner_again() {
    // The agent's answer to DeregisterService: drop the service's checks. That input comes
    // from inside on_event, which must not find the runner borrowed.
    let start =
        |checks: Rc<Checks>, seen: Rc<RefCell<Vec<Event>>>| -> Pin<Box<dyn Future<Output = ()>>> {
            let c = checks.clone();
            Box::pin(drive(checks, move |e| {
                if let Event::DeregisterService { .. } = &e {
                    c.input(|r| r.set_checks(Instant::now(), &[]));
                }
                seen.borrow_mut().push(e);
            }))
        };
    let (ids, seen) = with_driver(start, async |checks, seen| {
        let def = CheckDefinition {
            ttl_ms: 60_000,
            deregister_critical_service_after_ms: 100,
            ..CheckDefinition::default()
        };
        checks.input(|r| r.set_checks(Instant::now(), &[check("app", "app", def)]));
        wait_for(&seen, |e| matches!(e, Event::DeregisterService { .. })).await;
        let ids: Vec<String> = checks.runner().check_ids().map(String::from).collect();
        (ids, seen.borrow().clone())
    });
    assert_eq!(
        seen,
        [Event::DeregisterService {
            service_id: "app".into()
        }]
    );
    assert!(ids.is_empty(), "{ids:?}");
}

#[test]
fn probes_run_concurrently_and_results_reach_the_runner() {
    // Two checks whose probes each take 300 ms: both report although neither waits for
    // the other, and each probe is handed out once.
    let started = Rc::new(RefCell::new(Vec::new()));
    let s2 = started.clone();
    let start = move |checks: Rc<Checks>,
                      seen: Rc<RefCell<Vec<Event>>>|
          -> Pin<Box<dyn Future<Output = ()>>> {
        let s2 = s2.clone();
        Box::pin(drive_with(
            checks,
            move |e| seen.borrow_mut().push(e),
            move |p: Probe| {
                s2.borrow_mut().push(p.check_id.clone());
                async move {
                    IoTimer::after(Duration::from_millis(300)).await;
                    ProbeResult {
                        status: Health::Warning,
                        output: format!("slow {}", p.check_id),
                    }
                }
            },
        ))
    };
    let seen = with_driver(start, async |checks, seen| {
        let def = CheckDefinition {
            http: "http://127.0.0.1:1/".into(),
            interval_ms: 1_000,
            ..CheckDefinition::default()
        };
        checks.input(|r| {
            r.set_checks(
                Instant::now(),
                &[check("a", "a", def.clone()), check("b", "b", def)],
            )
        });
        for id in ["a", "b"] {
            wait_for(
                &seen,
                |e| matches!(e, Event::StatusChanged { check_id, .. } if check_id == id),
            )
            .await;
        }
        seen.borrow().clone()
    });
    let mut outputs: Vec<String> = seen
        .iter()
        .map(|e| match e {
            Event::StatusChanged { output, .. } => output.clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    outputs.sort();
    assert_eq!(outputs, ["slow a", "slow b"]);
    let mut started = started.borrow().clone();
    started.sort();
    assert_eq!(started[..2], ["a", "b"]);
}
