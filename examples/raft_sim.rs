//! Runs the Raft cluster simulator over many seeds and prints fail-over times and
//! throughput: `cargo run --release --example raft_sim [seeds] [servers]`.

use std::time::{Duration, Instant};

use outpost::cluster::raft::sim::{Sim, SimConfig};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    let mut args = std::env::args().skip(1);
    let seeds: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(200);
    let servers: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(3);
    let started = Instant::now();

    // Fail-over on a clean LAN: only leader crashes and restarts.
    let mut failovers = Vec::new();
    for seed in 0..seeds {
        let cfg = SimConfig {
            partitions: false,
            loss: 0.0,
            torn_crash: 0.0,
            max_delay: Duration::from_millis(3),
            fault_every: Duration::from_millis(1200),
            max_down: 1,
            ..SimConfig::chaos(seed, servers)
        };
        match Sim::new(cfg).run() {
            Ok(r) => failovers.extend(r.failovers),
            Err(f) => {
                eprintln!("{f}");
                std::process::exit(1);
            }
        }
    }
    failovers.sort();
    println!(
        "{servers} servers, clean LAN, 100 ms ticks: {} leader fail-overs, p50 {:?}, p99 {:?}, max {:?}",
        failovers.len(),
        percentile(&failovers, 0.5),
        percentile(&failovers, 0.99),
        failovers.last().copied().unwrap_or_default()
    );

    // Throughput and safety under chaos.
    let (mut ops, mut virtual_time) = (0usize, Duration::ZERO);
    for seed in 0..seeds {
        match Sim::new(SimConfig::chaos(1_000_000 + seed, servers)).run() {
            Ok(r) => {
                ops += r.completed;
                virtual_time += r.elapsed;
            }
            Err(f) => {
                eprintln!("{f}");
                std::process::exit(1);
            }
        }
    }
    println!(
        "chaos (5% loss, partitions, crashes): {ops} answered client ops in {:.0} s of virtual time ({:.1} ops/s, 3 clients with think time); all checks passed; wall time {:.1?}",
        virtual_time.as_secs_f64(),
        ops as f64 / virtual_time.as_secs_f64(),
        started.elapsed()
    );
}
