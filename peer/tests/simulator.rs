//! Runs the deterministic network simulator (`tests/sim`) over many seeds: partitions, a crash
//! and restart from the store, loss, duplication and reordering, then a heal; the properties
//! must hold for every seed. A failing seed prints itself; `SIM_SEED=<seed>` replays only it
//! (`SIM_TRACE=1` prints its partitions, crashes and first commits), `SIM_SEEDS=<n>` runs seeds
//! 0..n (default 200), `SIM_CRASHES=0` / `SIM_PARTITIONS=0` leave those out.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod sim;

use sim::{Plan, Sim};

fn seeds() -> Vec<u64> {
    if let Ok(seed) = std::env::var("SIM_SEED") {
        return vec![seed.parse().expect("SIM_SEED is a number")];
    }
    let n = std::env::var("SIM_SEEDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(200);
    (0..n).collect()
}

#[test]
fn every_seed_converges_without_losing_or_repeating_a_committed_transaction() {
    let mut failures = vec![];
    for seed in seeds() {
        let plan = Plan {
            crashes: std::env::var("SIM_CRASHES").as_deref() != Ok("0"),
            partitions: std::env::var("SIM_PARTITIONS").as_deref() != Ok("0"),
            ..Plan::default()
        };
        let mut sim = Sim::new(seed, plan);
        sim.run();
        let violations = sim.check();
        eprintln!("seed {seed}: {}", sim.summary());
        if sim.committed.is_empty() {
            failures.push(format!("seed {seed}: nothing was committed"));
        }
        if !violations.is_empty() {
            failures.push(format!(
                "seed {seed} (replay with SIM_SEED={seed}):\n  {}",
                violations.join("\n  ")
            ));
        }
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
