//! The runner driven by hand in virtual time, case by case against Consul's check semantics
//! (`agent/checks/check.go`, `agent/agent.go`; https://developer.hashicorp.com/consul/docs/services/usage/checks).

use std::collections::BTreeMap;

use super::*;

const S: Duration = Duration::from_secs(1);

/// Virtual time: `at(n)` is n seconds after the start.
struct Clock(Instant);

impl Clock {
    fn new() -> Clock {
        Clock(Instant::now())
    }
    fn at(&self, secs: f64) -> Instant {
        self.0 + Duration::from_secs_f64(secs)
    }
}

fn http_def(interval_ms: u64) -> CheckDefinition {
    CheckDefinition {
        http: "http://127.0.0.1:8080/health".into(),
        interval_ms,
        ..CheckDefinition::default()
    }
}

fn tcp_def(interval_ms: u64) -> CheckDefinition {
    CheckDefinition {
        tcp: "127.0.0.1:22".into(),
        interval_ms,
        ..CheckDefinition::default()
    }
}

fn ttl_def(ttl_ms: u64) -> CheckDefinition {
    CheckDefinition {
        ttl_ms,
        ..CheckDefinition::default()
    }
}

fn script_def(args: &[&str]) -> CheckDefinition {
    CheckDefinition {
        args: args.iter().map(|a| a.to_string()).collect(),
        interval_ms: 10_000,
        ..CheckDefinition::default()
    }
}

fn check(id: &str, service_id: &str, status: Health, definition: CheckDefinition) -> Check {
    Check {
        definition,
        ..Check::new(id, service_id, status)
    }
}

fn runner(seed: u64) -> Runner {
    Runner::new(Settings::new(seed))
}

fn scripts_runner() -> Runner {
    Runner::new(Settings {
        enable_script_checks: true,
        ..Settings::new(1)
    })
}

fn events(r: &mut Runner) -> Vec<Event> {
    std::iter::from_fn(|| r.poll_event()).collect()
}

fn probes(r: &mut Runner) -> Vec<Probe> {
    std::iter::from_fn(|| r.poll_probe()).collect()
}

fn changed(id: &str, status: Health, output: &str) -> Event {
    Event::StatusChanged {
        check_id: id.into(),
        status,
        output: output.into(),
    }
}

fn passing(output: &str) -> ProbeResult {
    ProbeResult {
        status: Health::Passing,
        output: output.into(),
    }
}

fn critical(output: &str) -> ProbeResult {
    ProbeResult {
        status: Health::Critical,
        output: output.into(),
    }
}

/// Runs the check's first probe: fires its staggered timer, returns the probe.
fn first_probe(r: &mut Runner) -> Probe {
    let at = r.poll_timeout().expect("a probe is scheduled");
    r.handle_timeout(at);
    let mut p = probes(r);
    assert_eq!(p.len(), 1, "{p:?}");
    p.remove(0)
}

#[test]
fn first_probe_is_staggered_randomly_within_the_interval() {
    let clock = Clock::new();
    let mut firsts = Vec::new();
    for seed in 0..64 {
        let mut r = runner(seed);
        r.set_checks(
            clock.at(0.0),
            &[check("web", "web", Health::Critical, http_def(10_000))],
        );
        let at = r.poll_timeout().unwrap();
        assert!(at >= clock.at(0.0) && at < clock.at(10.0), "seed {seed}");
        assert_eq!(r.next_timer(), Some((at, Timer::Probe, "web")));
        // Nothing runs a nanosecond early; it runs on time.
        r.handle_timeout(at - Duration::from_nanos(1));
        assert_eq!(r.poll_probe(), None, "seed {seed}");
        r.handle_timeout(at);
        assert!(r.poll_probe().is_some(), "seed {seed}");
        firsts.push(at - clock.at(0.0));
    }
    firsts.sort();
    firsts.dedup();
    assert!(
        firsts.len() > 32,
        "the stagger varies with the seed: {firsts:?}"
    );
    // Spread over the interval, not bunched at its start.
    assert!(firsts.iter().any(|d| *d > 5 * S) && firsts.iter().any(|d| *d < 5 * S));
}

#[test]
fn the_same_seed_gives_the_same_schedule() {
    let clock = Clock::new();
    let schedule = |seed| {
        let mut r = runner(seed);
        let checks: Vec<Check> = (0..5)
            .map(|i| check(&format!("c{i}"), "", Health::Critical, http_def(30_000)))
            .collect();
        r.set_checks(clock.at(0.0), &checks);
        let mut v = Vec::new();
        while let Some(at) = r.poll_timeout() {
            r.handle_timeout(at);
            for p in probes(&mut r) {
                v.push((at, p.check_id));
            }
        }
        v
    };
    assert_eq!(schedule(7), schedule(7));
    assert_ne!(schedule(7), schedule(8));
}

#[test]
fn an_http_probe_carries_the_definition_with_consul_defaults() {
    let clock = Clock::new();
    let mut r = runner(1);
    let mut header = BTreeMap::new();
    header.insert(
        "X-Token".to_string(),
        vec!["a".to_string(), "b".to_string()],
    );
    header.insert("Accept".to_string(), vec!["application/json".to_string()]);
    let def = CheckDefinition {
        header,
        ..http_def(10_000)
    };
    r.set_checks(clock.at(0.0), &[check("web", "web", Health::Critical, def)]);
    let p = first_probe(&mut r);
    assert_eq!(p.check_id, "web");
    assert_eq!(p.output_max, OUTPUT_MAX);
    assert_eq!(
        p.kind,
        ProbeKind::Http {
            url: "http://127.0.0.1:8080/health".into(),
            method: "GET".into(),
            headers: vec![
                ("Accept".into(), "application/json".into()),
                ("X-Token".into(), "a".into()),
                ("X-Token".into(), "b".into()),
            ],
            timeout: 10 * S,
            tls_skip_verify: false,
        }
    );
}

#[test]
fn timeouts_default_as_consul_and_are_kept_when_given() {
    let clock = Clock::new();
    let kinds = |def: CheckDefinition| {
        let mut r = scripts_runner();
        r.set_checks(clock.at(0.0), &[check("c", "", Health::Critical, def)]);
        first_probe(&mut r).kind
    };
    assert_eq!(kinds(http_def(5_000)).timeout(), 10 * S);
    assert_eq!(kinds(tcp_def(5_000)).timeout(), 10 * S);
    assert_eq!(kinds(script_def(&["/bin/true"])).timeout(), 30 * S);
    let given = CheckDefinition {
        timeout_ms: 250,
        ..tcp_def(5_000)
    };
    assert_eq!(
        kinds(given),
        ProbeKind::Tcp {
            addr: "127.0.0.1:22".into(),
            timeout: Duration::from_millis(250)
        }
    );
    let put = CheckDefinition {
        method: "PUT".into(),
        ..http_def(5_000)
    };
    assert!(matches!(kinds(put), ProbeKind::Http { method, .. } if method == "PUT"));
}

#[test]
fn the_next_probe_is_one_interval_after_the_result() {
    let clock = Clock::new();
    let mut r = runner(3);
    r.set_checks(
        clock.at(0.0),
        &[check("web", "web", Health::Critical, http_def(10_000))],
    );
    let p = first_probe(&mut r);
    // The probe took a while: the interval counts from its result (Consul runs the next
    // check `Interval` after the previous one returned).
    assert!(r.handle_result(clock.at(12.5), p.id, passing("ok")));
    assert_eq!(r.poll_timeout(), Some(clock.at(22.5)));
    r.handle_timeout(clock.at(22.4));
    assert_eq!(r.poll_probe(), None);
    r.handle_timeout(clock.at(22.5));
    let p2 = r.poll_probe().expect("second probe");
    assert_ne!(p2.id, p.id);
    assert_eq!(r.poll_probe(), None);
}

#[test]
fn at_most_one_probe_is_in_flight_per_check() {
    let clock = Clock::new();
    let mut r = runner(3);
    r.set_checks(
        clock.at(0.0),
        &[check("web", "web", Health::Critical, http_def(1_000))],
    );
    let p = first_probe(&mut r);
    // Long past the interval, still no second probe while the first has not reported.
    for s in 1..=5 {
        r.handle_timeout(clock.at(f64::from(s)));
        assert_eq!(r.poll_probe(), None);
    }
    assert!(r.handle_result(clock.at(5.0), p.id, passing("ok")));
    r.handle_timeout(clock.at(6.0));
    assert!(r.poll_probe().is_some());
}

#[test]
fn intervals_below_one_second_are_raised_to_one_second() {
    let clock = Clock::new();
    let mut r = runner(3);
    r.set_checks(
        clock.at(0.0),
        &[check("fast", "", Health::Critical, tcp_def(100))],
    );
    assert!(r.poll_timeout().unwrap() < clock.at(1.0));
    let p = first_probe(&mut r);
    r.handle_result(
        clock.at(2.0),
        p.id,
        passing("TCP connect 127.0.0.1:22: Success"),
    );
    assert_eq!(r.poll_timeout(), Some(clock.at(3.0)));
}

#[test]
fn status_events_are_sent_only_on_change() {
    let clock = Clock::new();
    let mut r = runner(5);
    r.set_checks(
        clock.at(0.0),
        &[check("web", "web", Health::Critical, http_def(1_000))],
    );
    assert_eq!(events(&mut r), [], "the status given is not news");
    let mut t = 0.0;
    let mut step = |r: &mut Runner, result: ProbeResult| {
        t += 1.5;
        let at = r.poll_timeout().unwrap();
        r.handle_timeout(at);
        let p = r.poll_probe().unwrap();
        r.handle_result(clock.at(t), p.id, result);
        events(r)
    };
    assert_eq!(
        step(&mut r, passing("ok")),
        [changed("web", Health::Passing, "ok")]
    );
    assert_eq!(step(&mut r, passing("ok")), []);
    assert_eq!(step(&mut r, passing("ok")), []);
    assert_eq!(
        step(&mut r, passing("ok, 3 workers")),
        [changed("web", Health::Passing, "ok, 3 workers")],
        "a new output alone is a change"
    );
    assert_eq!(
        step(&mut r, critical("ok, 3 workers")),
        [changed("web", Health::Critical, "ok, 3 workers")],
        "a new status alone is a change"
    );
    assert_eq!(r.status("web"), Some((Health::Critical, "ok, 3 workers")));
}

#[test]
fn a_pending_status_event_is_replaced_by_a_newer_one() {
    let clock = Clock::new();
    let mut r = runner(5);
    r.set_checks(
        clock.at(0.0),
        &[check("app", "app", Health::Critical, ttl_def(30_000))],
    );
    r.ttl_update(clock.at(1.0), "app", Health::Passing, "a")
        .unwrap();
    r.ttl_update(clock.at(2.0), "app", Health::Warning, "b")
        .unwrap();
    r.ttl_update(clock.at(3.0), "app", Health::Passing, "c")
        .unwrap();
    assert_eq!(events(&mut r), [changed("app", Health::Passing, "c")]);
}

#[test]
fn a_ttl_check_not_updated_within_its_ttl_turns_critical() {
    let clock = Clock::new();
    let mut r = runner(5);
    r.set_checks(
        clock.at(0.0),
        &[check("app", "app", Health::Passing, ttl_def(30_000))],
    );
    assert_eq!(
        r.status("app"),
        Some((Health::Passing, "")),
        "initial status as given"
    );
    assert_eq!(
        r.next_timer(),
        Some((clock.at(30.0), Timer::TtlExpiry, "app"))
    );
    r.handle_timeout(clock.at(29.9));
    assert_eq!(events(&mut r), []);
    r.handle_timeout(clock.at(30.0));
    assert_eq!(
        events(&mut r),
        [changed("app", Health::Critical, "TTL expired")]
    );
    assert_eq!(
        r.poll_timeout(),
        None,
        "expired once; nothing more until an update"
    );
    assert_eq!(probes(&mut r), [], "TTL checks are never probed");
}

#[test]
fn a_ttl_update_restarts_the_ttl_and_is_kept_as_last_output() {
    let clock = Clock::new();
    let mut r = runner(5);
    r.set_checks(
        clock.at(0.0),
        &[check("app", "app", Health::Critical, ttl_def(30_000))],
    );
    r.ttl_update(clock.at(20.0), "app", Health::Passing, "serving")
        .unwrap();
    assert_eq!(events(&mut r), [changed("app", Health::Passing, "serving")]);
    r.handle_timeout(clock.at(30.0));
    assert_eq!(
        events(&mut r),
        [],
        "the update at 20 s moved the expiry to 50 s"
    );
    assert_eq!(r.poll_timeout(), Some(clock.at(50.0)));
    r.handle_timeout(clock.at(50.0));
    assert_eq!(
        events(&mut r),
        [changed(
            "app",
            Health::Critical,
            "TTL expired (last output before timeout follows): serving"
        )]
    );
    // An update after expiry revives it and starts a new TTL.
    r.ttl_update(clock.at(60.0), "app", Health::Warning, "slow")
        .unwrap();
    assert_eq!(events(&mut r), [changed("app", Health::Warning, "slow")]);
    assert_eq!(r.poll_timeout(), Some(clock.at(90.0)));
}

#[test]
fn ttl_updates_of_unknown_or_non_ttl_checks_are_refused_without_effect() {
    let clock = Clock::new();
    let mut r = runner(5);
    r.set_checks(
        clock.at(0.0),
        &[check("web", "web", Health::Critical, http_def(10_000))],
    );
    let before = r.poll_timeout();
    assert_eq!(
        r.ttl_update(clock.at(1.0), "nope", Health::Passing, ""),
        Err(TtlUpdateError::UnknownCheck("nope".into()))
    );
    assert_eq!(
        r.ttl_update(clock.at(1.0), "web", Health::Passing, ""),
        Err(TtlUpdateError::NotTtl("web".into()))
    );
    assert_eq!(
        TtlUpdateError::NotTtl("web".into()).to_string(),
        "check \"web\" is not a TTL check; only TTL checks are updated from outside"
    );
    assert_eq!(r.status("web"), Some((Health::Critical, "")));
    assert_eq!(r.poll_timeout(), before);
    assert_eq!(events(&mut r), []);
}

fn dereg_def(after_ms: u64) -> CheckDefinition {
    CheckDefinition {
        deregister_critical_service_after_ms: after_ms,
        ..ttl_def(10_000)
    }
}

fn deregister(service_id: &str) -> Event {
    Event::DeregisterService {
        service_id: service_id.into(),
    }
}

#[test]
fn a_service_critical_for_the_deregister_delay_is_deregistered_once() {
    let clock = Clock::new();
    let mut r = runner(5);
    // Critical from the start (checks start critical unless told otherwise).
    r.set_checks(
        clock.at(0.0),
        &[check("app", "app", Health::Critical, dereg_def(60_000))],
    );
    r.handle_timeout(clock.at(10.0)); // TTL expiry: still critical, output changes
    assert_eq!(
        events(&mut r),
        [changed("app", Health::Critical, "TTL expired")]
    );
    assert_eq!(
        r.next_timer(),
        Some((clock.at(60.0), Timer::DeregisterCritical, "app"))
    );
    r.handle_timeout(clock.at(59.9));
    assert_eq!(events(&mut r), []);
    r.handle_timeout(clock.at(60.0));
    assert_eq!(events(&mut r), [deregister("app")]);
    r.handle_timeout(clock.at(600.0));
    assert_eq!(events(&mut r), [], "asked once per critical spell");
    assert_eq!(r.poll_timeout(), None);
}

#[test]
fn a_service_that_recovered_in_between_is_not_deregistered() {
    let clock = Clock::new();
    let mut r = runner(5);
    r.set_checks(
        clock.at(0.0),
        &[check("app", "app", Health::Critical, dereg_def(60_000))],
    );
    r.ttl_update(clock.at(30.0), "app", Health::Passing, "")
        .unwrap();
    r.ttl_update(clock.at(31.0), "app", Health::Critical, "down")
        .unwrap();
    // 0..30 and 31..91 are two spells, neither 60 s long.
    r.handle_timeout(clock.at(60.0));
    r.handle_timeout(clock.at(90.9));
    assert!(!events(&mut r).contains(&deregister("app")));
    r.handle_timeout(clock.at(91.0));
    assert_eq!(events(&mut r), [deregister("app")]);
}

#[test]
fn warning_is_not_critical_for_deregistration() {
    let clock = Clock::new();
    let mut r = runner(5);
    r.set_checks(
        clock.at(0.0),
        &[check("app", "app", Health::Warning, dereg_def(5_000))],
    );
    r.ttl_update(clock.at(1.0), "app", Health::Warning, "slow")
        .unwrap();
    r.handle_timeout(clock.at(9.0));
    assert!(!events(&mut r).contains(&deregister("app")));
}

#[test]
fn a_node_check_never_deregisters_anything() {
    let clock = Clock::new();
    let mut r = runner(5);
    r.set_checks(
        clock.at(0.0),
        &[check("disk", "", Health::Critical, dereg_def(1_000))],
    );
    r.handle_timeout(clock.at(1000.0));
    assert_eq!(
        events(&mut r),
        [changed("disk", Health::Critical, "TTL expired")]
    );
}

#[test]
fn a_probed_check_deregisters_after_failing_probes() {
    let clock = Clock::new();
    let mut r = runner(9);
    let def = CheckDefinition {
        deregister_critical_service_after_ms: 5_000,
        ..http_def(1_000)
    };
    r.set_checks(clock.at(0.0), &[check("web", "web", Health::Passing, def)]);
    let p = first_probe(&mut r);
    r.handle_result(clock.at(1.0), p.id, critical("connection refused"));
    events(&mut r);
    let mut t = 1.0;
    let mut got = Vec::new();
    while t < 10.0 {
        t += 0.5;
        r.handle_timeout(clock.at(t));
        for p in probes(&mut r) {
            r.handle_result(clock.at(t), p.id, critical("connection refused"));
        }
        got.extend(events(&mut r).into_iter().map(|e| (t, e)));
    }
    assert_eq!(got, [(6.0, deregister("web"))]);
}

#[test]
fn results_of_a_changed_or_removed_check_are_dropped() {
    let clock = Clock::new();
    let mut r = runner(5);
    r.set_checks(
        clock.at(0.0),
        &[check("web", "web", Health::Critical, http_def(10_000))],
    );
    let p = first_probe(&mut r);
    // Reload with a new URL: the probe in flight is for the old one.
    let new_def = CheckDefinition {
        http: "http://127.0.0.1:9090/ready".into(),
        ..http_def(10_000)
    };
    r.set_checks(
        clock.at(11.0),
        &[check("web", "web", Health::Critical, new_def)],
    );
    assert!(!r.handle_result(clock.at(12.0), p.id, passing("old URL answered")));
    assert_eq!(events(&mut r), []);
    assert_eq!(r.status("web"), Some((Health::Critical, "")));
    // The new definition runs on its own schedule, from the change.
    let at = r.poll_timeout().unwrap();
    assert!(at >= clock.at(11.0) && at < clock.at(21.0));
    let p2 = first_probe(&mut r);
    assert!(matches!(&p2.kind, ProbeKind::Http { url, .. } if url.ends_with(":9090/ready")));
    // Removed: its result is dropped too.
    r.set_checks(clock.at(30.0), &[]);
    assert!(!r.handle_result(clock.at(31.0), p2.id, passing("ok")));
    assert_eq!(r.status("web"), None);
    assert_eq!(r.poll_timeout(), None);
    assert_eq!(events(&mut r), []);
}

#[test]
fn an_unchanged_check_keeps_its_schedule_state_and_probe_in_flight() {
    let clock = Clock::new();
    let mut r = runner(5);
    let web = check("web", "web", Health::Critical, http_def(5_000));
    let app = check("app", "app", Health::Critical, ttl_def(30_000));
    r.set_checks(clock.at(0.0), [&web, &app]);
    let p = first_probe(&mut r);
    r.ttl_update(clock.at(1.0), "app", Health::Passing, "fine")
        .unwrap();
    events(&mut r);
    // A reload gives the same definitions (with the catalog's statuses, here stale ones).
    r.set_checks(clock.at(5.0), [&web, &app]);
    assert_eq!(r.status("app"), Some((Health::Passing, "fine")));
    assert!(
        r.handle_result(clock.at(6.0), p.id, passing("ok")),
        "still in flight"
    );
    assert_eq!(events(&mut r), [changed("web", Health::Passing, "ok")]);
    assert_eq!(r.next_timer(), Some((clock.at(11.0), Timer::Probe, "web")));
    r.set_checks(clock.at(7.0), [&web, &app]);
    assert_eq!(
        r.poll_timeout(),
        Some(clock.at(11.0)),
        "the schedule is kept"
    );
    // The TTL still counts from the update at 1 s.
    r.handle_timeout(clock.at(30.9));
    probes(&mut r);
    assert_eq!(events(&mut r), []);
    r.handle_timeout(clock.at(31.0));
    assert_eq!(
        events(&mut r),
        [changed(
            "app",
            Health::Critical,
            "TTL expired (last output before timeout follows): fine"
        )]
    );
    // A check that moves to another service is a changed check: it starts over.
    let moved = check("app", "other", Health::Passing, ttl_def(30_000));
    r.set_checks(clock.at(40.0), [&web, &moved]);
    assert_eq!(r.status("app"), Some((Health::Passing, "")));
    assert_eq!(r.status("web"), Some((Health::Passing, "ok")));
}

#[test]
fn a_removed_check_takes_its_pending_events_along() {
    let clock = Clock::new();
    let mut r = runner(5);
    let app = check("app", "app", Health::Critical, ttl_def(30_000));
    let db = check("db", "db", Health::Critical, ttl_def(30_000));
    r.set_checks(clock.at(0.0), [&app, &db]);
    r.ttl_update(clock.at(1.0), "app", Health::Passing, "")
        .unwrap();
    r.ttl_update(clock.at(1.0), "db", Health::Passing, "")
        .unwrap();
    r.set_checks(clock.at(2.0), [&db]);
    assert_eq!(events(&mut r), [changed("db", Health::Passing, "")]);
    assert_eq!(r.check_ids().collect::<Vec<_>>(), ["db"]);
}

#[test]
fn checks_with_nothing_to_run_are_left_out() {
    let clock = Clock::new();
    let mut r = runner(5);
    r.set_checks(
        clock.at(0.0),
        &[Check::new("api-registered", "web", Health::Passing)],
    );
    assert_eq!(r.check_ids().count(), 0);
    assert_eq!(r.poll_timeout(), None);
    assert_eq!(
        r.ttl_update(clock.at(1.0), "api-registered", Health::Passing, ""),
        Err(TtlUpdateError::UnknownCheck("api-registered".into()))
    );
}

#[test]
fn script_checks_are_refused_unless_enabled() {
    let clock = Clock::new();
    let mut r = runner(5);
    let job = check(
        "job",
        "",
        Health::Passing,
        script_def(&["/usr/bin/check-job", "-q"]),
    );
    r.set_checks(clock.at(0.0), [&job]);
    assert_eq!(
        events(&mut r),
        [changed("job", Health::Critical, SCRIPTS_DISABLED)]
    );
    assert_eq!(r.poll_timeout(), None);
    r.handle_timeout(clock.at(3600.0));
    assert_eq!(probes(&mut r), [], "never run");

    r.set_enable_script_checks(clock.at(100.0), true);
    let p = first_probe(&mut r);
    assert_eq!(
        p.kind,
        ProbeKind::Script {
            args: vec!["/usr/bin/check-job".into(), "-q".into()],
            timeout: 30 * S
        }
    );
    r.handle_result(clock.at(101.0), p.id, passing(""));
    assert_eq!(events(&mut r), [changed("job", Health::Passing, "")]);

    r.set_enable_script_checks(clock.at(200.0), false);
    assert_eq!(
        events(&mut r),
        [changed("job", Health::Critical, SCRIPTS_DISABLED)]
    );
    assert_eq!(r.poll_timeout(), None);
}

#[test]
fn enabled_script_checks_are_probed() {
    let clock = Clock::new();
    let mut r = scripts_runner();
    r.set_checks(
        clock.at(0.0),
        &[check("job", "", Health::Critical, script_def(&["true"]))],
    );
    assert_eq!(events(&mut r), []);
    assert!(matches!(first_probe(&mut r).kind, ProbeKind::Script { .. }));
}

#[test]
fn a_probe_that_never_reports_makes_the_check_critical_but_still_counts_late() {
    let clock = Clock::new();
    let mut r = runner(5);
    let def = CheckDefinition {
        timeout_ms: 2_000,
        ..tcp_def(5_000)
    };
    r.set_checks(clock.at(0.0), &[check("db", "db", Health::Passing, def)]);
    let due = r.poll_timeout().unwrap();
    r.handle_timeout(due);
    let p = r.poll_probe().unwrap();
    let overdue = due + 2 * S + OVERDUE_GRACE;
    assert_eq!(r.next_timer(), Some((overdue, Timer::ProbeOverdue, "db")));
    r.handle_timeout(overdue - Duration::from_millis(1));
    assert_eq!(events(&mut r), []);
    r.handle_timeout(overdue);
    assert_eq!(
        events(&mut r),
        [changed(
            "db",
            Health::Critical,
            "the probe has not finished within 12s; waiting for it before the next one"
        )]
    );
    assert_eq!(r.poll_probe(), None, "still one probe at a time");
    assert_eq!(r.poll_timeout(), None);
    // The stuck probe finally reports: it counts, and the schedule resumes.
    let late = overdue + 60 * S;
    assert!(r.handle_result(late, p.id, passing("TCP connect 127.0.0.1:22: Success")));
    assert_eq!(r.poll_timeout(), Some(late + 5 * S));
}

#[test]
fn outputs_are_cut_to_4096_bytes_on_a_char_boundary() {
    let clock = Clock::new();
    let mut r = runner(5);
    let app = check("app", "", Health::Critical, ttl_def(30_000));
    let web = check("web", "", Health::Critical, http_def(10_000));
    r.set_checks(clock.at(0.0), [&app, &web]);
    // 4095 ASCII bytes, then a 3-byte char straddling the limit.
    let long = format!("{}€ and more", "a".repeat(4095));
    r.ttl_update(clock.at(1.0), "app", Health::Passing, &long)
        .unwrap();
    let p = first_probe(&mut r);
    r.handle_result(clock.at(11.0), p.id, passing(&"é".repeat(3000)));
    for e in events(&mut r) {
        let Event::StatusChanged {
            check_id, output, ..
        } = e
        else {
            panic!("{e:?}");
        };
        match check_id.as_str() {
            "app" => assert_eq!(output, "a".repeat(4095)),
            "web" => assert_eq!(output, "é".repeat(2048)),
            other => panic!("{other}"),
        }
    }
    // The TTL-expired message with the last output is bounded too.
    r.handle_timeout(clock.at(31.0));
    let (_, out) = r.status("app").unwrap();
    assert!(out.starts_with("TTL expired (last output before timeout follows): aaa"));
    assert_eq!(out.len(), OUTPUT_MAX);
}

#[test]
fn the_output_limit_is_a_setting() {
    let clock = Clock::new();
    let mut r = Runner::new(Settings {
        output_max: 10,
        ..Settings::new(1)
    });
    r.set_checks(
        clock.at(0.0),
        &[check("app", "", Health::Critical, ttl_def(30_000))],
    );
    r.ttl_update(clock.at(1.0), "app", Health::Passing, "0123456789abc")
        .unwrap();
    assert_eq!(r.status("app"), Some((Health::Passing, "0123456789")));
}

#[test]
fn huge_durations_do_not_overflow() {
    let clock = Clock::new();
    let mut r = runner(5);
    let def = CheckDefinition {
        interval_ms: u64::MAX,
        timeout_ms: u64::MAX,
        deregister_critical_service_after_ms: u64::MAX,
        ..http_def(0)
    };
    let ttl = CheckDefinition {
        deregister_critical_service_after_ms: u64::MAX,
        ..ttl_def(u64::MAX)
    };
    r.set_checks(
        clock.at(0.0),
        [
            &check("web", "web", Health::Critical, def),
            &check("app", "app", Health::Critical, ttl),
        ],
    );
    let p = first_probe(&mut r);
    assert_eq!(p.kind.timeout(), MAX_DURATION);
    assert!(r.handle_result(clock.at(1.0), p.id, critical("x")));
    assert!(r.poll_timeout().unwrap() > clock.at(1.0));
}

mod cut {
    use proptest::prelude::*;

    use super::super::cut_output;

    #[test]
    fn examples() {
        assert_eq!(cut_output("héllo", 0), "");
        assert_eq!(cut_output("héllo", 1), "h");
        assert_eq!(cut_output("héllo", 2), "h", "é is two bytes");
        assert_eq!(cut_output("héllo", 3), "hé");
        assert_eq!(cut_output("héllo", 99), "héllo");
        assert_eq!(cut_output("🦀🦀", 7), "🦀");
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn is_the_longest_fitting_prefix(s in any::<String>(), max in 0usize..64) {
            let cut = cut_output(&s, max);
            prop_assert!(cut.len() <= max);
            prop_assert!(s.starts_with(cut));
            // The longest: the next char would not fit.
            if cut.len() < s.len() {
                let next = s[cut.len()..].chars().next().unwrap();
                prop_assert!(cut.len() + next.len_utf8() > max);
            }
        }
    }
}
