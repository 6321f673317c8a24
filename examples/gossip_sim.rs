//! Gossip at scale, simulated: for each cluster size, members join, run in steady state, then
//! one crashes; prints how long until every member saw the crash (p50/p99 over seeds) and
//! what each member sends per second. Virtual time, so the numbers do not depend on the
//! machine; run it in release, it simulates hours of traffic.
//!
//! ```text
//! cargo run --release --example gossip_sim [-- SIZE:SEEDS ...]     (default 5:200 50:50 500:10)
//! ```
//!
//! The network is a clean LAN (0.1 to 2 ms, no loss) unless `LOSS=0.05` is set; packets
//! are sealed when `ENCRYPT=1`.

use std::time::{Duration, Instant};

use outpost::cluster::gossip::MemberStatus;
use outpost::cluster::gossip::sim::{Sim, SimConfig};

const STEADY: Duration = Duration::from_secs(20);

struct Run {
    converged: Duration,
    detected: Duration,
    bytes_per_sec: f64,
    packets_per_sec: f64,
}

fn run(members: usize, seed: u64, loss: f64, encrypt: bool) -> Result<Run, String> {
    let mut cfg = SimConfig::new(seed, members);
    cfg.net.loss = loss;
    cfg.encrypt = encrypt;
    let mut sim = Sim::new(cfg);
    let spread = Duration::from_millis(2 * members as u64).max(Duration::from_millis(500));
    sim.join_all(spread);
    let check = Duration::from_millis(if members > 100 { 500 } else { 50 });
    if !sim.run_until_every(Duration::from_secs(120), check, Sim::converged) {
        return Err(format!(
            "{members} members, seed {seed}: no convergence in 120 s"
        ));
    }
    let converged = sim.elapsed();
    // Let the join traffic die down, then measure the steady state.
    sim.run_for(Duration::from_secs(10));
    let bytes0: u64 = (0..members).map(|i| sim.bytes_out(i)).sum();
    let packets0: u64 = (0..members).map(|i| sim.packets_out(i)).sum();
    sim.run_for(STEADY);
    let bytes1: u64 = (0..members).map(|i| sim.bytes_out(i)).sum();
    let packets1: u64 = (0..members).map(|i| sim.packets_out(i)).sum();
    let per = |d: u64| d as f64 / members as f64 / STEADY.as_secs_f64();
    let victim = (seed as usize * 7919) % members;
    let crashed = sim.elapsed();
    sim.crash(victim);
    let step = Duration::from_millis(10);
    if !sim.run_until_every(crashed + Duration::from_secs(60), step, |s| {
        s.all_see(victim, MemberStatus::Failed)
    }) {
        return Err(format!(
            "{members} members, seed {seed}: crash not seen by all in 60 s"
        ));
    }
    Ok(Run {
        converged,
        detected: sim.elapsed() - crashed,
        bytes_per_sec: per(bytes1 - bytes0),
        packets_per_sec: per(packets1 - packets0),
    })
}

fn quantile(sorted: &[Duration], q: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn main() {
    let loss: f64 = std::env::var("LOSS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0.0);
    let encrypt = std::env::var("ENCRYPT").is_ok_and(|v| v == "1");
    let mut plan: Vec<(usize, u64)> = Vec::new();
    for arg in std::env::args().skip(1) {
        let parsed = arg
            .split_once(':')
            .and_then(|(n, s)| Some((n.parse().ok()?, s.parse().ok()?)));
        match parsed {
            Some(p) => plan.push(p),
            None => {
                eprintln!("usage: gossip_sim [SIZE:SEEDS ...], e.g. 5:200 50:50 500:10");
                std::process::exit(2);
            }
        }
    }
    if plan.is_empty() {
        plan = vec![(5, 200), (50, 50), (500, 10)];
    }
    println!(
        "LAN profile, loss {:.0}%, {}; crash seen by every member, and steady-state traffic",
        loss * 100.0,
        if encrypt { "sealed" } else { "in the clear" }
    );
    println!(
        "| members | seeds | joined (p50) | crash seen by all p50 | p99 | max | bytes/s per member | packets/s per member |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (members, seeds) in plan {
        let started = Instant::now();
        let mut runs = Vec::new();
        for seed in 0..seeds {
            match run(members, seed, loss, encrypt) {
                Ok(r) => runs.push(r),
                Err(e) => eprintln!("{e}"),
            }
        }
        if runs.is_empty() {
            continue;
        }
        let mut detected: Vec<Duration> = runs.iter().map(|r| r.detected).collect();
        detected.sort();
        let mut converged: Vec<Duration> = runs.iter().map(|r| r.converged).collect();
        converged.sort();
        let n = runs.len() as f64;
        let bytes = runs.iter().map(|r| r.bytes_per_sec).sum::<f64>() / n;
        let packets = runs.iter().map(|r| r.packets_per_sec).sum::<f64>() / n;
        println!(
            "| {members} | {} | {:.2} s | {:.2} s | {:.2} s | {:.2} s | {bytes:.0} | {packets:.1} |",
            runs.len(),
            quantile(&converged, 0.5).as_secs_f64(),
            quantile(&detected, 0.5).as_secs_f64(),
            quantile(&detected, 0.99).as_secs_f64(),
            detected.last().map_or(0.0, Duration::as_secs_f64),
        );
        eprintln!(
            "({members} members: {:.1} s of real time)",
            started.elapsed().as_secs_f64()
        );
    }
}
