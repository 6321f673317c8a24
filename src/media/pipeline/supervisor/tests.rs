//! The supervisor driven by hand in virtual time.

use super::*;

const S: Duration = Duration::from_secs(1);

/// Virtual time: `at(n)` is n seconds after the start.
struct Clock(Instant);

impl Clock {
    fn new() -> Clock {
        Clock(Instant::now())
    }
    fn at(&self, secs: f64) -> Instant {
        if secs >= 0.0 {
            self.0 + Duration::from_secs_f64(secs)
        } else {
            self.0 - Duration::from_secs_f64(-secs)
        }
    }
}

fn config(on_quiet: Quiet) -> SupervisorConfig {
    SupervisorConfig {
        backoff: Backoff::default(),
        quiet_after: 5 * S,
        on_quiet,
        quiet_reason: "no video for 5 s".into(),
        healthy_after: 10 * S,
    }
}

fn drain(s: &mut Supervisor) -> Vec<Action> {
    std::iter::from_fn(|| s.poll_action()).collect()
}

fn offline(reason: &str) -> Action {
    Action::State(StreamState::Offline {
        reason: reason.into(),
    })
}

/// Fails pipeline after pipeline at each retry deadline; returns the delays between faults.
fn retry_delays(
    s: &mut Supervisor,
    mut generation: u64,
    mut now: Instant,
    n: usize,
) -> Vec<Duration> {
    let mut delays = Vec::new();
    for _ in 0..n {
        let due = s.poll_timeout().expect("a retry is scheduled");
        assert_eq!(s.next_timer().map(|(t, _)| t), Some(Timer::Retry));
        delays.push(due - now);
        s.handle_timeout(due, None);
        generation += 1;
        assert_eq!(
            drain(s),
            vec![Action::Build { generation }],
            "stays Offline while retrying"
        );
        now = due;
        s.fault(now, generation, "again".into());
        drain(s);
    }
    delays
}

#[test]
fn start_builds_and_the_first_frame_means_playing() {
    let c = Clock::new();
    let mut s = Supervisor::new(config(Quiet::Restart));
    assert_eq!(s.state(), &StreamState::Stopped);
    assert_eq!(s.poll_timeout(), None, "a stopped stream sleeps");
    s.start(c.at(0.0));
    assert_eq!(
        drain(&mut s),
        vec![
            Action::Build { generation: 1 },
            Action::State(StreamState::Starting)
        ]
    );
    s.start(c.at(0.1));
    assert_eq!(drain(&mut s), vec![], "already running");
    s.frame_seen(c.at(0.2), 1);
    assert_eq!(drain(&mut s), vec![Action::State(StreamState::Playing)]);
}

#[test]
fn a_fault_goes_offline_and_retries_with_doubling_backoff_capped_at_30_s_forever() {
    let c = Clock::new();
    let mut s = Supervisor::new(config(Quiet::Restart));
    s.start(c.at(0.0));
    drain(&mut s);
    s.fault(
        c.at(0.0),
        1,
        "Cannot identify device '/dev/video99'.".into(),
    );
    assert_eq!(
        drain(&mut s),
        vec![
            Action::Teardown,
            offline("Cannot identify device '/dev/video99'.")
        ]
    );
    let delays = retry_delays(&mut s, 1, c.at(0.0), 9);
    let secs: Vec<u64> = delays.iter().map(Duration::as_secs).collect();
    assert_eq!(secs, [1, 2, 4, 8, 16, 30, 30, 30, 30]);
}

#[test]
fn a_retry_that_plays_goes_back_to_playing_by_itself() {
    let c = Clock::new();
    let mut s = Supervisor::new(config(Quiet::Restart));
    s.start(c.at(0.0));
    s.fault(c.at(0.5), 1, "unplugged".into());
    drain(&mut s);
    s.handle_timeout(c.at(1.5), None);
    assert_eq!(drain(&mut s), vec![Action::Build { generation: 2 }]);
    assert_eq!(
        s.state(),
        &StreamState::Offline {
            reason: "unplugged".into()
        }
    );
    s.frame_seen(c.at(1.6), 2);
    assert_eq!(drain(&mut s), vec![Action::State(StreamState::Playing)]);
}

#[test]
fn a_healthy_run_resets_the_backoff_but_a_short_one_does_not() {
    let c = Clock::new();
    let mut s = Supervisor::new(config(Quiet::Restart));
    s.start(c.at(0.0));
    s.fault(c.at(0.0), 1, "x".into());
    s.handle_timeout(c.at(1.0), None); // generation 2 after 1 s
    s.frame_seen(c.at(1.0), 2);
    s.fault(c.at(2.0), 2, "x".into()); // played 1 s: not healthy, next delay 2 s
    assert_eq!(s.poll_timeout(), Some(c.at(4.0)));
    s.handle_timeout(c.at(4.0), None); // generation 3
    s.frame_seen(c.at(4.0), 3);
    s.fault(c.at(15.0), 3, "x".into()); // played 11 s: healthy, back to 1 s
    assert_eq!(s.poll_timeout(), Some(c.at(16.0)));
}

#[test]
fn inputs_about_an_old_pipeline_are_ignored() {
    let c = Clock::new();
    let mut s = Supervisor::new(config(Quiet::Restart));
    s.start(c.at(0.0));
    s.fault(c.at(0.0), 1, "first".into());
    s.handle_timeout(c.at(1.0), None);
    drain(&mut s);
    s.fault(c.at(1.1), 1, "late error from generation 1".into());
    s.frame_seen(c.at(1.1), 1);
    assert_eq!(drain(&mut s), vec![]);
    assert_eq!(
        s.state(),
        &StreamState::Offline {
            reason: "first".into()
        }
    );
}

#[test]
fn stop_tears_down_cancels_the_retry_and_a_new_start_builds_at_once() {
    let c = Clock::new();
    let mut s = Supervisor::new(config(Quiet::Restart));
    s.start(c.at(0.0));
    s.frame_seen(c.at(0.1), 1);
    drain(&mut s);
    s.stop(c.at(1.0));
    assert_eq!(
        drain(&mut s),
        vec![Action::Teardown, Action::State(StreamState::Stopped)]
    );
    assert_eq!(s.poll_timeout(), None);
    s.start(c.at(2.0));
    s.fault(c.at(2.0), 2, "x".into());
    drain(&mut s);
    s.stop(c.at(2.5)); // while waiting to retry: nothing to tear down
    assert_eq!(drain(&mut s), vec![Action::State(StreamState::Stopped)]);
    s.handle_timeout(c.at(60.0), None);
    assert_eq!(drain(&mut s), vec![], "no retry after stop");
    s.start(c.at(61.0));
    assert_eq!(
        drain(&mut s),
        vec![
            Action::Build { generation: 3 },
            Action::State(StreamState::Starting)
        ]
    );
    s.fault(c.at(61.0), 3, "x".into());
    assert_eq!(s.poll_timeout(), Some(c.at(62.0)), "stop reset the backoff");
}

#[test]
fn a_quiet_camera_is_restarted_like_a_fault() {
    let c = Clock::new();
    let mut s = Supervisor::new(config(Quiet::Restart));
    s.start(c.at(0.0));
    s.frame_seen(c.at(0.1), 1);
    drain(&mut s);
    assert_eq!(s.next_timer(), Some((Timer::Quiet, c.at(5.0))));
    // Frames keep arriving: the check moves on.
    s.handle_timeout(c.at(5.0), Some(c.at(4.0)));
    assert_eq!(drain(&mut s), vec![]);
    assert_eq!(s.poll_timeout(), Some(c.at(9.0)));
    // Then they stop.
    s.handle_timeout(c.at(9.0), Some(c.at(4.0)));
    assert_eq!(
        drain(&mut s),
        vec![Action::Teardown, offline("no video for 5 s")]
    );
    assert_eq!(s.next_timer(), Some((Timer::Retry, c.at(10.0))));
}

#[test]
fn a_pipeline_that_never_delivers_is_quiet_from_its_build() {
    let c = Clock::new();
    let mut s = Supervisor::new(config(Quiet::Restart));
    s.start(c.at(0.0));
    drain(&mut s);
    // A frame from an earlier pipeline does not count.
    s.handle_timeout(c.at(5.0), Some(c.at(-1.0)));
    assert_eq!(
        drain(&mut s),
        vec![Action::Teardown, offline("no video for 5 s")]
    );
}

#[test]
fn a_quiet_rtp_sender_is_reported_and_playing_again_at_its_next_frame() {
    let c = Clock::new();
    let mut s = Supervisor::new(config(Quiet::Report));
    s.start(c.at(0.0));
    s.frame_seen(c.at(0.1), 1);
    drain(&mut s);
    s.handle_timeout(c.at(5.1), Some(c.at(0.1)));
    assert_eq!(
        drain(&mut s),
        vec![Action::WatchFrames, offline("no video for 5 s")],
        "no teardown: keep listening"
    );
    assert_eq!(
        s.poll_timeout(),
        None,
        "the next frame wakes it, not a timer"
    );
    s.frame_seen(c.at(30.0), 1);
    assert_eq!(drain(&mut s), vec![Action::State(StreamState::Playing)]);
    assert_eq!(s.poll_timeout(), Some(c.at(35.0)));
}

#[test]
fn handle_timeout_early_is_harmless() {
    let c = Clock::new();
    let mut s = Supervisor::new(config(Quiet::Restart));
    s.start(c.at(0.0));
    s.fault(c.at(0.0), 1, "x".into());
    drain(&mut s);
    s.handle_timeout(c.at(0.5), None);
    assert_eq!(drain(&mut s), vec![]);
    assert_eq!(s.poll_timeout(), Some(c.at(1.0)));
}

#[test]
fn backoff_schedule_doubles_saturates_and_resets() {
    let mut b = BackoffSchedule::new(Backoff {
        initial: Duration::from_millis(100),
        max: Duration::from_millis(350),
    });
    let ms: Vec<u128> = (0..5).map(|_| b.next_delay().as_millis()).collect();
    assert_eq!(ms, [100, 200, 350, 350, 350]);
    b.reset();
    assert_eq!(b.next_delay().as_millis(), 100);
    let mut huge = BackoffSchedule::new(Backoff {
        initial: Duration::MAX,
        max: Duration::MAX,
    });
    assert_eq!(huge.next_delay(), Duration::MAX);
    assert_eq!(huge.next_delay(), Duration::MAX, "saturates, no overflow");
}

#[test]
fn a_backoff_beyond_the_clock_does_not_panic() {
    let c = Clock::new();
    let mut cfg = config(Quiet::Restart);
    cfg.backoff = Backoff {
        initial: Duration::MAX,
        max: Duration::MAX,
    };
    let mut s = Supervisor::new(cfg);
    s.start(c.at(0.0));
    s.fault(c.at(0.0), 1, "x".into());
    assert!(s.poll_timeout().is_some_and(|t| t > c.at(1e9)));
}
