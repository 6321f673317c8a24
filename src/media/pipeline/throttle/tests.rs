//! The keyframe throttle in virtual time.

use super::*;

const MS: Duration = Duration::from_millis(1);

#[test]
fn the_first_request_goes_out_at_once() {
    let t0 = Instant::now();
    let mut t = KeyframeThrottle::new(1000 * MS);
    assert_eq!(t.request(t0), Throttled::SendNow);
    assert_eq!(t.poll_timeout(), None);
}

#[test]
fn requests_inside_the_interval_coalesce_into_one_at_its_end() {
    let t0 = Instant::now();
    let mut t = KeyframeThrottle::new(1000 * MS);
    assert_eq!(t.request(t0), Throttled::SendNow);
    let due = t0 + 1000 * MS;
    assert_eq!(
        t.request(t0 + 300 * MS),
        Throttled::Deferred {
            at: due,
            newly: true
        }
    );
    assert_eq!(
        t.request(t0 + 600 * MS),
        Throttled::Deferred {
            at: due,
            newly: false
        }
    );
    assert_eq!(t.poll_timeout(), Some(due));
    assert!(
        !t.handle_timeout(t0 + 999 * MS),
        "not before the interval ends"
    );
    assert!(t.handle_timeout(due + 2 * MS));
    assert!(!t.handle_timeout(due + 3 * MS), "only once");
    assert_eq!(t.poll_timeout(), None);
    // The deferred request counts as sent when it went out.
    assert!(matches!(
        t.request(due + 500 * MS),
        Throttled::Deferred { newly: true, .. }
    ));
    assert_eq!(t.poll_timeout(), Some(due + 2 * MS + 1000 * MS));
}

#[test]
fn a_request_after_the_interval_goes_out_at_once_and_clears_a_pending_one() {
    let t0 = Instant::now();
    let mut t = KeyframeThrottle::new(1000 * MS);
    t.request(t0);
    t.request(t0 + 10 * MS);
    // The timer was late; a fresh request arrives first.
    assert_eq!(t.request(t0 + 1500 * MS), Throttled::SendNow);
    assert_eq!(t.poll_timeout(), None);
    assert!(!t.handle_timeout(t0 + 1600 * MS));
}

#[test]
fn cancel_forgets_the_pending_request() {
    let t0 = Instant::now();
    let mut t = KeyframeThrottle::new(1000 * MS);
    t.request(t0);
    t.request(t0 + 10 * MS);
    t.cancel();
    assert_eq!(t.poll_timeout(), None);
    assert!(!t.handle_timeout(t0 + 5000 * MS));
}
