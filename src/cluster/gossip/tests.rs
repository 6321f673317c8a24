//! Tests of the gossip core through the simulator and by hand.

use std::time::Duration;

use super::sim::{Sim, SimConfig};
use super::*;

#[test]
fn five_members_converge_and_detect_a_crash() {
    let mut sim = Sim::new(SimConfig::new(1, 5));
    sim.join_all(Duration::from_millis(500));
    assert!(
        sim.run_until(Duration::from_secs(10), Sim::converged),
        "no convergence"
    );
    let t0 = sim.elapsed();
    eprintln!("converged at {t0:?}");
    sim.crash(3);
    assert!(sim.run_until(t0 + Duration::from_secs(10), |s| {
        s.all_see(3, MemberStatus::Failed)
    }));
    eprintln!("crash seen by all after {:?}", sim.elapsed() - t0);
    for e in sim.events() {
        eprintln!("{e:?}");
    }
}
