//! Seeded swarms (STYLE.md item 9): members over a lossy, delaying, reordering, duplicating
//! network, with crashes, leaves, restarts and partitions, all drawn from one seed. Each
//! scenario has a safety check (no member declared failed while it runs and its packets get
//! through) and liveness bounds (crashes detected, partitions healed, in bounded time).
//!
//! A failing seed is printed; `OUTPOST_SIM_SEED=<seed> cargo test --lib <test>` replays it.

use std::panic::AssertUnwindSafe;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use super::sim::{Life, Sim, SimConfig, SimEvent, seeds};
use super::{EventKind, KeyringOp, KeyringReport, MemberStatus, keygen};

const SECOND: Duration = Duration::from_secs(1);

/// Runs `scenario` for every seed and reports every failing seed at the end.
fn swarm(test: &str, first: u64, count: u64, scenario: impl Fn(u64) -> Result<(), String>) {
    let list = seeds(first, count);
    let mut failures = Vec::new();
    for &seed in &list {
        match std::panic::catch_unwind(AssertUnwindSafe(|| scenario(seed))) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => failures.push(format!("seed {seed}: {e}")),
            Err(p) => {
                let msg = p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                failures.push(format!("seed {seed}: panicked: {msg}"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} seeds failed; replay one with OUTPOST_SIM_SEED=<seed> cargo test --lib {test}\n{}",
        failures.len(),
        list.len(),
        failures.join("\n")
    );
}

/// Each running member's view, one line each: `A` alive, `s` suspect, `F` failed, `L` left,
/// `-` unknown, `.` itself.
fn views(sim: &Sim) -> String {
    let mut out = String::new();
    for o in 0..sim.len() {
        let Some(core) = sim.core(o) else {
            out.push_str(&format!("\n  n{o:<3} crashed"));
            continue;
        };
        out.push_str(&format!("\n  n{o:<3} {:?}: ", core.state()));
        for s in 0..sim.len() {
            let c = if s == o {
                '.'
            } else {
                match core.member(&format!("n{s}")) {
                    None => '-',
                    Some(m) if m.suspect => 's',
                    Some(m) => match m.status {
                        MemberStatus::Alive => 'A',
                        MemberStatus::Failed => 'F',
                        MemberStatus::Left => 'L',
                    },
                }
            };
            out.push(c);
        }
    }
    out
}

/// Safety: every `Failed` event must be one `allowed` says was expected (its subject
/// crashed, or cut off by a partition, at that moment).
fn no_false_failures(sim: &Sim, allowed: impl Fn(&SimEvent) -> bool) -> Result<(), String> {
    let bad: Vec<String> = sim
        .events()
        .iter()
        .filter(|e| e.kind == EventKind::Failed && !allowed(e))
        .map(|e| {
            format!(
                "n{} declared n{} failed at {:?}",
                e.observer, e.subject, e.at
            )
        })
        .collect();
    if bad.is_empty() {
        Ok(())
    } else {
        Err(format!("false failures: {}", bad.join("; ")))
    }
}

/// A network drawn from the seed: loss up to `max_loss`, delays up to 10 ms (so reordering),
/// 1% duplicates; encryption on odd seeds.
fn config(seed: u64, members: usize, max_loss: f64, rng: &mut StdRng) -> SimConfig {
    let mut cfg = SimConfig::new(seed, members);
    cfg.net.loss = rng.random_range(0.0..=max_loss);
    cfg.net.max_delay = Duration::from_millis(rng.random_range(1..=10));
    cfg.net.duplicate = 0.01;
    cfg.encrypt = seed % 2 == 1;
    cfg
}

fn join(sim: &mut Sim, within: Duration) -> Result<(), String> {
    sim.join_all(Duration::from_millis(500));
    if sim.run_until(within, Sim::converged) {
        Ok(())
    } else {
        Err(format!(
            "not converged {within:?} after the joins:{}",
            views(sim)
        ))
    }
}

/// Loss of at most 5% and crashes: a crashed member is declared failed by every member
/// within 3 s at 5 members (the LAN profile's aim is 2 s), no running member is ever
/// declared failed, and the crashed member restarted (next generation) is alive to all
/// within 5 s.
#[test]
fn sim_crash_detected_by_all_and_no_false_failure_at_five_members() {
    swarm(
        "sim_crash_detected_by_all_and_no_false_failure_at_five_members",
        0,
        400,
        |seed| {
            let mut rng = StdRng::seed_from_u64(seed ^ 0x5157);
            let mut sim = Sim::new(config(seed, 5, 0.05, &mut rng));
            join(&mut sim, 10 * SECOND)?;
            sim.run_for(rng.random_range(1000..5000) * Duration::from_millis(1));
            let victim = rng.random_range(0..5);
            let crashed_at = sim.elapsed();
            sim.crash(victim);
            if !sim.run_until(crashed_at + 3 * SECOND, |s| {
                s.all_see(victim, MemberStatus::Failed)
            }) {
                return Err(format!(
                    "n{victim} crashed at {crashed_at:?}, not failed to all 3 s later:{}",
                    views(&sim)
                ));
            }
            sim.run_for(2 * SECOND);
            let restarted_at = sim.elapsed();
            sim.restart(victim, (victim + 1) % 5);
            if !sim.run_until(restarted_at + 5 * SECOND, Sim::converged) {
                return Err(format!(
                    "n{victim} restarted at {restarted_at:?}, not alive to all 5 s later:{}",
                    views(&sim)
                ));
            }
            sim.run_for(5 * SECOND);
            if !sim.converged() {
                return Err(format!(
                    "lost convergence after the restart:{}",
                    views(&sim)
                ));
            }
            no_false_failures(&sim, |e| {
                e.subject == victim && e.at >= crashed_at && e.at <= restarted_at
            })
        },
    );
}

/// A graceful leave shows as left on every member within 1 s and never as failed; left and
/// failed members are reaped after their timeouts; a failed member that comes back is alive
/// again.
#[test]
fn sim_leave_is_left_at_once_and_the_departed_are_reaped() {
    swarm(
        "sim_leave_is_left_at_once_and_the_departed_are_reaped",
        1000,
        200,
        |seed| {
            let mut rng = StdRng::seed_from_u64(seed ^ 0x1eae);
            let mut cfg = config(seed, 6, 0.02, &mut rng);
            cfg.gossip.tombstone_after = 3 * SECOND;
            cfg.gossip.reap_after = 4 * SECOND;
            let mut sim = Sim::new(cfg);
            join(&mut sim, 10 * SECOND)?;
            let leaver = rng.random_range(0..6);
            let victim = (leaver + rng.random_range(1..6)) % 6;
            let left_at = sim.elapsed();
            sim.leave(leaver);
            if !sim.run_until(left_at + SECOND, |s| s.all_see(leaver, MemberStatus::Left)) {
                return Err(format!(
                    "n{leaver} left at {left_at:?}, not left to all 1 s later:{}",
                    views(&sim)
                ));
            }
            let crashed_at = sim.elapsed();
            sim.crash(victim);
            if !sim.run_until(crashed_at + 3 * SECOND, |s| {
                s.all_see(victim, MemberStatus::Failed)
            }) {
                return Err(format!(
                    "n{victim} crashed at {crashed_at:?}, not failed to all 3 s later:{}",
                    views(&sim)
                ));
            }
            let forgotten = |s: &Sim, subject: usize| {
                (0..s.len())
                    .filter(|&o| s.life(o) == Life::Up)
                    .all(|o| s.status(o, subject).is_none())
            };
            if !sim.run_until(left_at + 5 * SECOND, |s| forgotten(s, leaver)) {
                return Err(format!(
                    "n{leaver} left at {left_at:?}, still known 5 s later (tombstone 3 s):{}",
                    views(&sim)
                ));
            }
            if !sim.run_until(crashed_at + 9 * SECOND, |s| forgotten(s, victim)) {
                return Err(format!(
                    "n{victim} crashed at {crashed_at:?}, still known 9 s later (reap 4 s):{}",
                    views(&sim)
                ));
            }
            let restarted_at = sim.elapsed();
            sim.restart(
                victim,
                (victim + 1..victim + 6)
                    .map(|i| i % 6)
                    .find(|&i| i != leaver)
                    .unwrap_or(0),
            );
            if !sim.run_until(restarted_at + 5 * SECOND, Sim::converged) {
                return Err(format!(
                    "n{victim} restarted at {restarted_at:?}, not alive to all 5 s later:{}",
                    views(&sim)
                ));
            }
            if let Some(e) = sim
                .events()
                .iter()
                .find(|e| e.subject == leaver && e.kind == EventKind::Failed)
            {
                return Err(format!("the leaver was declared failed: {e:?}"));
            }
            no_false_failures(&sim, |e| {
                e.subject == victim && e.at >= crashed_at && e.at <= restarted_at
            })
        },
    );
}

/// A partition into two sides (any sizes, a single member included): each side declares
/// the other failed within 5 s and keeps its own members alive; after the partition heals
/// the cluster converges within 30 s (the reconnect interval is 5 s).
#[test]
fn sim_partition_is_detected_and_heals() {
    swarm("sim_partition_is_detected_and_heals", 2000, 200, |seed| {
        let mut rng = StdRng::seed_from_u64(seed ^ 0x9a27);
        let n = rng.random_range(4..=8);
        let mut sim = Sim::new(config(seed, n, 0.02, &mut rng));
        join(&mut sim, 10 * SECOND)?;
        let cut = rng.random_range(1..n);
        let mut order: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            order.swap(i, rng.random_range(0..=i));
        }
        let (a, b) = order.split_at(cut);
        let side = |i: usize| a.contains(&i);
        let parted_at = sim.elapsed();
        sim.partition(&[a, b]);
        let split = |s: &Sim| {
            (0..n).all(|o| {
                (0..n).all(|x| {
                    o == x
                        || s.status(o, x)
                            == Some(if side(o) == side(x) {
                                MemberStatus::Alive
                            } else {
                                MemberStatus::Failed
                            })
                })
            })
        };
        if !sim.run_until(parted_at + 5 * SECOND, split) {
            return Err(format!(
                "partitioned {a:?} | {b:?} at {parted_at:?}, sides not failed to each other 5 s later:{}",
                views(&sim)
            ));
        }
        sim.run_for(rng.random_range(1..10) * SECOND);
        let healed_at = sim.elapsed();
        sim.heal();
        if !sim.run_until(healed_at + 30 * SECOND, Sim::converged) {
            return Err(format!(
                "partition {a:?} | {b:?} healed at {healed_at:?}, not converged 30 s later:{}",
                views(&sim)
            ));
        }
        no_false_failures(&sim, |e| {
            side(e.observer) != side(e.subject) && e.at >= parted_at && e.at <= healed_at
        })
    });
}

/// Twenty members on up to 5% loss: two crash at once; both are failed to every member
/// within 4 s, and nobody else ever is.
#[test]
fn sim_two_crashes_among_twenty_members() {
    swarm("sim_two_crashes_among_twenty_members", 3000, 40, |seed| {
        let mut rng = StdRng::seed_from_u64(seed ^ 0x2020);
        let mut sim = Sim::new(config(seed, 20, 0.05, &mut rng));
        join(&mut sim, 15 * SECOND)?;
        sim.run_for(2 * SECOND);
        let v1 = rng.random_range(0..20);
        let v2 = (v1 + rng.random_range(1..20)) % 20;
        let crashed_at = sim.elapsed();
        sim.crash(v1);
        sim.crash(v2);
        if !sim.run_until(crashed_at + 4 * SECOND, |s| {
            s.all_see(v1, MemberStatus::Failed) && s.all_see(v2, MemberStatus::Failed)
        }) {
            return Err(format!(
                "n{v1} and n{v2} crashed at {crashed_at:?}, not failed to all 4 s later:{}",
                views(&sim)
            ));
        }
        no_false_failures(&sim, |e| e.subject == v1 || e.subject == v2)
    });
}

/// An encrypted cluster rotates its key as `consul keyring` does (install everywhere, use
/// everywhere, remove the old one everywhere) without losing anyone.
#[test]
fn sim_key_rotation_keeps_the_cluster() {
    swarm("sim_key_rotation_keeps_the_cluster", 4000, 40, |seed| {
        let mut rng = StdRng::seed_from_u64(seed ^ 0x4e75);
        let mut cfg = config(seed, 5, 0.02, &mut rng);
        cfg.encrypt = true;
        let mut sim = Sim::new(cfg);
        join(&mut sim, 10 * SECOND)?;
        let old = sim
            .core(0)
            .and_then(|c| c.list_keys().ok())
            .unwrap_or_default();
        let new = keygen(&mut rng);
        let mut step =
            |sim: &mut Sim,
             what: &str,
             f: &dyn Fn(&mut super::Gossip) -> Result<(), super::GossipError>| {
                for i in 0..5 {
                    sim.with_core(i, |c, _| f(c))
                        .transpose()
                        .map_err(|e| format!("{what} on n{i}: {e}"))?;
                    sim.run_for(Duration::from_millis(rng.random_range(0..300)));
                }
                Ok::<(), String>(())
            };
        step(&mut sim, "install", &|c| c.install_key(&new))?;
        step(&mut sim, "use", &|c| c.use_key(&new))?;
        for k in &old {
            step(&mut sim, "remove", &|c| c.remove_key(k))?;
        }
        sim.run_for(3 * SECOND);
        if !sim.converged() {
            return Err(format!("not converged after the rotation:{}", views(&sim)));
        }
        let keys = sim
            .core(3)
            .and_then(|c| c.list_keys().ok())
            .unwrap_or_default();
        if keys != vec![new.clone()] {
            return Err(format!("keys after rotation: {keys:?}"));
        }
        no_false_failures(&sim, |_| false)
    });
}

/// Every member's keys, by index (none for a crashed member).
fn keyrings(sim: &Sim) -> Vec<Option<Vec<String>>> {
    (0..sim.len())
        .map(|i| sim.core(i).and_then(|c| c.list_keys().ok()))
        .collect()
}

/// A report is honest: every member it says applied the operation holds `want` (checked
/// by `holds`), and every live member that does not is named in it (missing or an error).
fn honest(sim: &Sim, r: &KeyringReport, holds: impl Fn(&[String]) -> bool) -> Result<(), String> {
    for (i, keys) in keyrings(sim).iter().enumerate() {
        let name = format!("n{i}");
        let Some(keys) = keys else { continue };
        let applied = r.answers.get(&name).is_some_and(|a| a.error.is_none());
        if applied && !holds(keys) {
            return Err(format!("{name} reported applied, holds {keys:?}: {r:?}"));
        }
        let named = r.missing.contains(&name) || r.messages().contains_key(&name);
        if !holds(keys) && !named {
            return Err(format!("{name} not updated and not reported: {r:?}"));
        }
    }
    Ok(())
}

/// The whole rotation asked of ONE member, as `consul keyring` sent to one agent: install,
/// use and remove each reach every live member through up to 5% loss (with duplicates and
/// reordering), the reports count every member, nobody is declared failed, and the old key
/// opens nothing afterwards.
#[test]
fn sim_keyring_queries_rotate_the_key_from_one_member() {
    swarm(
        "sim_keyring_queries_rotate_the_key_from_one_member",
        6000,
        24,
        |seed| {
            let mut rng = StdRng::seed_from_u64(seed ^ 0x6b65);
            let n = rng.random_range(3..=8);
            let mut cfg = config(seed, n, 0.05, &mut rng);
            cfg.encrypt = true;
            let mut sim = Sim::new(cfg);
            join(&mut sim, 10 * SECOND)?;
            let from = rng.random_range(0..n);
            let old = sim
                .core(0)
                .and_then(|c| c.list_keys().ok())
                .unwrap_or_default();
            let new = keygen(&mut rng);
            let timeout = 3 * SECOND;
            let steps = [
                (KeyringOp::Install, Some(new.as_str())),
                (KeyringOp::Use, Some(new.as_str())),
                (KeyringOp::Remove, Some(old[0].as_str())),
            ];
            for (op, key) in steps {
                let r = sim
                    .keyring_query(from, op, key, timeout)
                    .map_err(|e| format!("{op:?}: {e}"))?;
                honest(&sim, &r, |keys| match op {
                    KeyringOp::Install => keys.contains(&new),
                    KeyringOp::Use => keys.first() == Some(&new),
                    _ => !keys.contains(&old[0]),
                })?;
                if !r.ok() || r.num_nodes() != n {
                    return Err(format!("{op:?} from n{from} did not reach all {n}: {r:?}"));
                }
                sim.run_for(Duration::from_millis(rng.random_range(0..500)));
            }
            let list = sim
                .keyring_query(from, KeyringOp::List, None, timeout)
                .map_err(|e| format!("list: {e}"))?;
            let want = [(new.clone(), n)].into();
            if list.keys() != want || list.primary_keys() != want || list.num_nodes() != n {
                return Err(format!("list after the rotation: {list:?}"));
            }
            if let Some((i, k)) = keyrings(&sim)
                .iter()
                .enumerate()
                .find(|(_, k)| k.as_deref() != Some(std::slice::from_ref(&new)))
            {
                return Err(format!("n{i} holds {k:?}"));
            }
            sim.run_for(3 * SECOND);
            if !sim.converged() {
                return Err(format!("not converged after the rotation:{}", views(&sim)));
            }
            no_false_failures(&sim, |_| false)
        },
    );
}

/// A member that crashed is reported as not answering (the operation is applied by the
/// rest); once known failed, it is listed as failed and not waited for; an operation
/// every member refuses (removing the primary) reports each member's error.
#[test]
fn sim_keyring_query_reports_who_did_not_apply_it() {
    swarm(
        "sim_keyring_query_reports_who_did_not_apply_it",
        6100,
        12,
        |seed| {
            let mut rng = StdRng::seed_from_u64(seed ^ 0x7265);
            let mut cfg = config(seed, 5, 0.02, &mut rng);
            cfg.encrypt = true;
            let mut sim = Sim::new(cfg);
            join(&mut sim, 10 * SECOND)?;
            let primary = sim
                .core(0)
                .and_then(|c| c.list_keys().ok())
                .unwrap_or_default();
            let new = keygen(&mut rng);
            sim.crash(3);
            let r = sim
                .keyring_query(1, KeyringOp::Install, Some(&new), 2 * SECOND)
                .map_err(|e| e.to_string())?;
            if r.missing != ["n3"] || r.num_nodes() != 5 || r.ok() || r.messages().len() != 1 {
                return Err(format!("the crashed n3 not reported alone: {r:?}"));
            }
            honest(&sim, &r, |k| k.contains(&new))?;
            if !sim.run_until(sim.elapsed() + 5 * SECOND, |s| {
                s.all_see(3, MemberStatus::Failed)
            }) {
                return Err(format!("n3 not failed:{}", views(&sim)));
            }
            let r = sim
                .keyring_query(2, KeyringOp::List, None, 2 * SECOND)
                .map_err(|e| e.to_string())?;
            if !r.ok() || r.failed != ["n3"] || r.num_nodes() != 4 || r.keys()[&new] != 4 {
                return Err(format!("list with n3 failed: {r:?}"));
            }
            let r = sim
                .keyring_query(0, KeyringOp::Remove, Some(&primary[0]), 2 * SECOND)
                .map_err(|e| e.to_string())?;
            let msgs = r.messages();
            if r.ok() || msgs.len() != 4 || !msgs.values().all(|m| m.contains("primary")) {
                return Err(format!("removing the primary: {r:?}"));
            }
            no_false_failures(&sim, |e| e.subject == 3)
        },
    );
}

/// A peer flooding one member with junk and replays of real packets is cut to its rate:
/// the member drops the excess, counts it, and the cluster carries on.
#[test]
fn sim_a_flooding_peer_is_bounded() {
    swarm("sim_a_flooding_peer_is_bounded", 5000, 16, |seed| {
        let mut rng = StdRng::seed_from_u64(seed ^ 0xf100);
        let mut sim = Sim::new(config(seed, 5, 0.0, &mut rng));
        join(&mut sim, 10 * SECOND)?;
        let flooder = "192.0.2.66:8301".parse().map_err(|e| format!("{e}"))?;
        let valid = super::fuzzing::valid_packets(false);
        for i in 0..5000 {
            let bytes: Vec<u8> = if i % 2 == 0 {
                (0..rng.random_range(0..200))
                    .map(|_| rng.random())
                    .collect()
            } else {
                valid[i % valid.len()].clone()
            };
            sim.inject(flooder, 0, &bytes);
            sim.run_for(Duration::from_millis(1));
        }
        let c = sim
            .core(0)
            .map(|c| c.counters().clone())
            .unwrap_or_default();
        // 5 s at 100/s plus a burst of 200 pass the bucket; the other 4300 or so do not.
        if c.dropped_rate < 4000 {
            return Err(format!(
                "only {} of 5000 flood packets rate-dropped: {c:?}",
                c.dropped_rate
            ));
        }
        if !sim.converged() {
            return Err(format!("flooding broke the cluster:{}", views(&sim)));
        }
        super::fuzzing::check_counted(sim.core(0).ok_or("n0 gone")?);
        no_false_failures(&sim, |_| false)
    });
}
