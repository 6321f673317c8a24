//! The rate meter in virtual time.

use super::*;

const MS: Duration = Duration::from_millis(1);

#[test]
fn a_steady_30_fps_stream_measures_30_fps_and_its_bitrate() {
    let t0 = Instant::now();
    let mut m = RateMeter::new(2000 * MS);
    let frame = Duration::from_secs(1) / 30;
    let mut now = t0;
    for _ in 0..300 {
        m.record(now, 4000);
        now += frame;
    }
    let r = m.rate(now);
    assert!((r.per_second - 30.0).abs() < 1.0, "{r:?}");
    assert!(
        (r.bits_per_second - 30.0 * 32_000.0).abs() < 40_000.0,
        "{r:?}"
    );
}

#[test]
fn a_young_meter_divides_by_its_age_not_by_the_window() {
    let t0 = Instant::now();
    let mut m = RateMeter::new(2000 * MS);
    for i in 0..5 {
        m.record(t0 + i * 100 * MS, 1);
    }
    let r = m.rate(t0 + 500 * MS);
    assert!((r.per_second - 10.0).abs() < 0.01, "{r:?}");
}

#[test]
fn a_stream_that_stopped_decays_to_zero() {
    let t0 = Instant::now();
    let mut m = RateMeter::new(2000 * MS);
    for i in 0..30 {
        m.record(t0 + i * 33 * MS, 1000);
    }
    assert!(m.rate(t0 + 1000 * MS).per_second > 25.0);
    assert_eq!(m.rate(t0 + 5000 * MS).per_second, 0.0);
    assert_eq!(RateMeter::new(2000 * MS).rate(t0), Rate::default());
}

#[test]
fn memory_is_bounded() {
    let t0 = Instant::now();
    let mut m = RateMeter::new(Duration::from_secs(3600));
    for i in 0..10_000u32 {
        m.record(t0 + Duration::from_micros(u64::from(i)), 1);
    }
    assert!(m.samples.len() <= MAX_SAMPLES);
}

#[test]
fn reset_forgets() {
    let t0 = Instant::now();
    let mut m = RateMeter::new(2000 * MS);
    m.record(t0, 100);
    m.reset();
    assert_eq!(m.rate(t0 + 100 * MS), Rate::default());
}
