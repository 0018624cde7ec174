//! Byzantine members in the deterministic simulator (`tests/sim`, `sim/byzantine.rs`), under
//! network parameters: N = 4 with one and N = 7 with two Byzantine members (f < N/3), each
//! silent, an equivocating committer (two blocks per height), an equivocating voter (votes for
//! conflicting checkpoints at one height, on both sides of a partition, and surround votes) or
//! both, a random partition of the honest members in every run (4 s or more, transactions
//! submitted on both sides; the Byzantine members reach both sides) under epochs of 1, 2 or 4
//! blocks, a crash and restart from the store, loss, duplication and reordering, then a heal.
//! During the split the root revokes the last Byzantine member through one side's honest peers
//! (`sim/seats.rs`), so the revocation is pending while finality may be stopped: no honest peer
//! drops its seat before its chain records the revocation's block final, and after the heal
//! every honest peer holds the same seats, without it.
//! For every seed: no two honest
//! peers finalise conflicting blocks, finality resumes within the quiet time after the last heal
//! (every block with a transaction final everywhere), no committed transaction is lost or
//! repeated, honest peers converge and never accuse each other, and each member that
//! equivocated is accused by signed evidence an honest peer keeps.
//!
//! 1,000 seeds by default (700 at N = 4, 300 at N = 7); `SIM_BYZANTINE_SEEDS=<n>` runs n
//! (same split), `SIM_SEED=<seed>` replays one seed (its Byzantine kinds follow from it).

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod sim;

use std::time::Instant;

use sim::byzantine::Byzantine;
use sim::{Plan, Sim};

/// The seeds of a test holding `share` thousandths of the run.
fn seeds(share: u64) -> Vec<u64> {
    if let Ok(seed) = std::env::var("SIM_SEED") {
        return vec![seed.parse().expect("SIM_SEED is a number")];
    }
    let total: u64 = std::env::var("SIM_BYZANTINE_SEEDS").ok().map_or(1000, |n| {
        n.parse().expect("SIM_BYZANTINE_SEEDS is a number")
    });
    (0..(total * share / 1000).max(1)).collect()
}

/// Runs N = `peers` with `f` Byzantine members over `seeds`; the failures, each with its
/// replay line.
fn run(peers: usize, f: usize, seeds: Vec<u64>) -> Vec<String> {
    let started = Instant::now();
    let count = seeds.len();
    let mut failures = vec![];
    let mut stopped = 0;
    for seed in seeds {
        let kinds = Byzantine::pick(seed, f);
        // Short epochs too: islands of a partition reach finality's thresholds within it.
        let epochs: &[u64] = &[1, 2, 4];
        let plan = Plan {
            peers,
            epoch_length: epochs[(seed / 4 % epochs.len() as u64) as usize],
            ..Plan::default()
        };
        let mut sim = Sim::with_byzantine(seed, &plan, &kinds);
        sim.run();
        let mut violations = sim.check_finality();
        violations.extend(sim.check());
        violations.extend(sim.check_seats());
        stopped += usize::from(sim.finality_stopped());
        eprintln!(
            "seed {seed} (N = {peers}, epoch {}, {kinds:?}): {}; {}; {}; {}",
            plan.epoch_length,
            sim.summary(),
            sim.finality_summary(),
            sim.byzantine_summary(),
            sim.seats_summary()
        );
        if sim.committed.is_empty() {
            violations.push("nothing was committed".into());
        }
        if !violations.is_empty() {
            failures.push(format!(
                "seed {seed} (N = {peers}, {kinds:?}; replay with SIM_SEED={seed}):\n  {}",
                violations.join("\n  ")
            ));
        }
    }
    eprintln!(
        "N = {peers}, f = {f}: {count} seeds in {:.1} s; finality stopped while the revocation \
         was pending in {stopped}",
        started.elapsed().as_secs_f64()
    );
    failures
}

#[test]
fn four_members_with_one_byzantine_never_finalize_conflicting_blocks_and_accuse_it() {
    let failures = run(4, 1, seeds(700));
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn seven_members_with_two_byzantine_never_finalize_conflicting_blocks_and_accuse_them() {
    let failures = run(7, 2, seeds(300));
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
