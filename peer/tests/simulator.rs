//! Runs the deterministic network simulator (`tests/sim`) over many seeds: partitions, a crash
//! and restart from the store, loss, duplication and reordering, then a heal; the properties
//! must hold for every seed. A failing seed prints itself; `SIM_SEED=<seed>` replays only it
//! (`SIM_TRACE=1` prints its partitions, crashes and first commits), `SIM_SEEDS=<n>` runs seeds
//! 0..n (default 200; the adversarial test runs a twentieth of them per attack),
//! `SIM_CRASHES=0` / `SIM_PARTITIONS=0` leave those out.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod sim;

use std::time::Duration;

use sim::adversary::Hostile;
use sim::{Plan, Sim};

fn seeds(default: u64) -> Vec<u64> {
    if let Ok(seed) = std::env::var("SIM_SEED") {
        return vec![seed.parse().expect("SIM_SEED is a number")];
    }
    let n = std::env::var("SIM_SEEDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .map_or(default, |n: u64| n * default / 200);
    (0..n.max(1)).collect()
}

/// Runs `plan` over `seeds`; the failures, each with its replay line.
fn run(seeds: Vec<u64>, plan: &Plan) -> Vec<String> {
    let mut failures = vec![];
    for seed in seeds {
        let mut sim = Sim::new(seed, plan.clone());
        sim.run();
        let violations = sim.check();
        eprintln!("seed {seed} ({:?}): {}", plan.hostile, sim.summary());
        if sim.committed.is_empty() {
            failures.push(format!("seed {seed}: nothing was committed"));
        }
        if !violations.is_empty() {
            failures.push(format!(
                "seed {seed} ({:?}; replay with SIM_SEED={seed}):\n  {}",
                plan.hostile,
                violations.join("\n  ")
            ));
        }
    }
    failures
}

fn plan() -> Plan {
    Plan {
        crashes: std::env::var("SIM_CRASHES").as_deref() != Ok("0"),
        partitions: std::env::var("SIM_PARTITIONS").as_deref() != Ok("0"),
        ..Plan::default()
    }
}

/// Under network parameters (docs/consensus.md): the rotation is the members' seats and every
/// receiver checks seats and the out-of-turn back-off; honest peers' blocks always pass them.
#[test]
fn every_seed_converges_under_network_parameters() {
    let plan = Plan {
        parameters: true,
        ..plan()
    };
    let failures = run(seeds(100), &plan);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_seed_converges_without_losing_or_repeating_a_committed_transaction() {
    let failures = run(seeds(200), &plan());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn honest_peers_detect_every_adversary_and_still_converge_and_commit() {
    let mut failures = vec![];
    for hostile in Hostile::ALL {
        let plan = Plan {
            hostile: Some(hostile),
            quiet: Duration::from_secs(40),
            ..plan()
        };
        failures.extend(run(seeds(10), &plan));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_seed_replays_exactly() {
    let run = |seed| {
        let mut sim = Sim::new(seed, Plan::default());
        sim.run();
        let tips: Vec<String> = sim
            .peers
            .iter()
            .filter_map(|p| p.node().map(|n| format!("{:?}", n.tip().unwrap())))
            .collect();
        (tips, sim.committed.clone())
    };
    assert_eq!(run(7), run(7));
}
