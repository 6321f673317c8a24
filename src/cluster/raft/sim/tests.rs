use super::*;

/// The seeds to run: `OUTPOST_RAFT_SEED` replays one; otherwise `count` seeds of a series
/// (`OUTPOST_RAFT_SEEDS` overrides the count, for a longer soak).
fn seeds(series: u64, count: u64) -> Vec<u64> {
    if let Ok(s) = std::env::var("OUTPOST_RAFT_SEED") {
        return vec![s.parse().expect("OUTPOST_RAFT_SEED is a number")];
    }
    let count = std::env::var("OUTPOST_RAFT_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(count);
    (0..count).map(|i| series * 1_000_000 + i).collect()
}

/// Runs every seed; the first failure (a violated property, or a panic inside raft-rs)
/// fails the test naming its seed.
fn run_all(series: u64, count: u64, make: impl Fn(u64) -> SimConfig) -> Vec<SimReport> {
    let mut reports = Vec::new();
    for seed in seeds(series, count) {
        let cfg = make(seed);
        let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| Sim::new(cfg).run()));
        match run {
            Ok(Ok(r)) => reports.push(r),
            Ok(Err(f)) => panic!("{f}"),
            Err(_) => {
                panic!("seed {seed}: a server panicked (replay with OUTPOST_RAFT_SEED={seed})")
            }
        }
    }
    reports
}

fn summary(reports: &[SimReport]) -> (usize, usize, usize, usize) {
    let sum = |f: fn(&SimReport) -> usize| reports.iter().map(f).sum::<usize>();
    (
        sum(|r| r.completed),
        sum(|r| r.indeterminate),
        sum(|r| r.crashes),
        sum(|r| r.partitions),
    )
}

#[test]
fn three_servers_under_loss_partitions_and_crashes_stay_linearizable_and_converge() {
    let reports = run_all(3, 300, |seed| SimConfig::chaos(seed, 3));
    let (completed, indeterminate, crashes, partitions) = summary(&reports);
    eprintln!(
        "3 servers: {} seeds, {completed} answered ops, {indeterminate} unknown, {crashes} crashes, {partitions} partitions",
        reports.len()
    );
    // The faults really happened, and the clients still got answers.
    if reports.len() > 20 {
        assert!(crashes > reports.len() / 2 && partitions > reports.len() / 2);
        assert!(completed > 20 * reports.len());
    }
}

#[test]
fn five_servers_under_loss_partitions_and_crashes_stay_linearizable_and_converge() {
    let reports = run_all(5, 200, |seed| SimConfig::chaos(seed, 5));
    let (completed, indeterminate, crashes, partitions) = summary(&reports);
    eprintln!(
        "5 servers: {} seeds, {completed} answered ops, {indeterminate} unknown, {crashes} crashes, {partitions} partitions",
        reports.len()
    );
    if reports.len() > 20 {
        assert!(crashes > reports.len() / 2 && partitions > reports.len() / 2);
        assert!(completed > 20 * reports.len());
    }
}

/// Crashes only, every one between a write and its fsync half the time: what was not
/// fsynced is lost, what was acknowledged never is.
#[test]
fn crashes_that_lose_unsynced_writes_never_lose_acknowledged_ones() {
    let reports = run_all(7, 100, |seed| SimConfig {
        partitions: false,
        loss: 0.0,
        torn_crash: 1.0,
        fault_every: Duration::from_millis(700),
        ..SimConfig::chaos(seed, 3)
    });
    let (_, _, crashes, _) = summary(&reports);
    if reports.len() > 20 {
        assert!(crashes > reports.len());
    }
}

/// With a clean LAN (no loss, a few ms of delay), a crashed leader is replaced within
/// 1.5 s in every run (ticks of 100 ms; election timeouts of 0.5 to 1 s).
#[test]
fn a_crashed_leader_is_replaced_within_a_second_and_a_half_on_a_clean_lan() {
    let reports = run_all(9, 100, |seed| SimConfig {
        partitions: false,
        loss: 0.0,
        torn_crash: 0.0,
        max_delay: Duration::from_millis(3),
        max_down: 1,
        fault_every: Duration::from_millis(1200),
        ..SimConfig::chaos(seed, 3)
    });
    let mut failovers: Vec<Duration> = reports.iter().flat_map(|r| r.failovers.clone()).collect();
    failovers.sort();
    eprintln!(
        "{} fail-overs, median {:?}, worst {:?}",
        failovers.len(),
        failovers.get(failovers.len() / 2),
        failovers.last()
    );
    if reports.len() > 20 {
        assert!(failovers.len() > 10, "too few leader crashes to judge");
    }
    for (r, f) in reports
        .iter()
        .flat_map(|r| r.failovers.iter().map(move |f| (r, f)))
    {
        assert!(
            *f <= Duration::from_millis(1500),
            "seed {}: fail-over took {f:?} (replay with OUTPOST_RAFT_SEED={})",
            r.seed,
            r.seed
        );
    }
}

#[test]
fn the_same_seed_replays_the_same_run() {
    let a = Sim::new(SimConfig::chaos(42, 3)).run().unwrap();
    let b = Sim::new(SimConfig::chaos(42, 3)).run().unwrap();
    assert_eq!(
        (
            a.completed,
            a.indeterminate,
            a.elections,
            a.crashes,
            a.elapsed
        ),
        (
            b.completed,
            b.indeterminate,
            b.elections,
            b.crashes,
            b.elapsed
        )
    );
}
