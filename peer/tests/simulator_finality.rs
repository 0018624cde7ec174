//! Finality in the deterministic simulator (`tests/sim`), under network parameters: N = 4 and
//! N = 7 members, up to f of them Byzantine (silent: seated but never running), random
//! partitions, a crash and restart from the store, loss, duplication and reordering, then a
//! heal. For every seed: no two honest peers finalise conflicting blocks (every checkpoint ever
//! announced final is on the chain they end on), finality resumes within the quiet time after
//! the last heal (every block with a transaction is final everywhere), no final or committed
//! transaction is lost, and the simulator's other properties hold. `SIM_SEEDS=<n>` scales the
//! seed count (default: a CI budget of about a minute; more in a bench run), `SIM_SEED=<seed>`
//! replays one.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod sim;

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
        let mut violations = sim.check_finality();
        violations.extend(sim.check());
        eprintln!(
            "seed {seed} (N = {}, {} silent): {}; {}",
            plan.peers,
            plan.silent,
            sim.summary(),
            sim.finality_summary()
        );
        if sim.committed.is_empty() {
            failures.push(format!("seed {seed}: nothing was committed"));
        }
        if !violations.is_empty() {
            failures.push(format!(
                "seed {seed} (N = {}, {} silent; replay with SIM_SEED={seed}):\n  {}",
                plan.peers,
                plan.silent,
                violations.join("\n  ")
            ));
        }
    }
    failures
}

fn plan(peers: usize, silent: usize) -> Plan {
    Plan {
        peers,
        silent,
        parameters: true,
        ..Plan::default()
    }
}

#[test]
fn four_members_one_silent_never_finalize_conflicting_blocks_and_finality_resumes() {
    let mut failures = run(seeds(30), &plan(4, 0));
    failures.extend(run(seeds(30), &plan(4, 1)));
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn seven_members_two_silent_never_finalize_conflicting_blocks_and_finality_resumes() {
    let mut failures = run(seeds(10), &plan(7, 0));
    failures.extend(run(seeds(10), &plan(7, 2)));
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
