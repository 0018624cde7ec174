//! Specification tests of the network parameters: the YAML form, validation, the canonical
//! digest and the genesis derived from it.

use std::time::Duration;

use super::*;
use crate::trust::{Certificate, Chain, Level, SecretKey};

const NOW: u64 = 1_700_000_000;

/// A root, a principal and `n` peers' Level-1 chains.
fn tower(n: usize) -> (SecretKey, Vec<Chain>) {
    let root = SecretKey::generate();
    let principal = SecretKey::generate();
    let l0 = Chain(vec![Certificate::issue(
        &root,
        principal.public(),
        Level::Principal,
        NOW,
        NOW + 1_000,
    )]);
    let chains = (0..n)
        .map(|_| {
            let cert = Certificate::issue(
                &principal,
                SecretKey::generate().public(),
                Level::Peer,
                NOW,
                NOW + 1_000,
            );
            Chain::extend(cert, &l0)
        })
        .collect();
    (root, chains)
}

fn params(n: usize) -> NetworkParams {
    let (root, chains) = tower(n);
    NetworkParams::new("testnet", root.public(), chains)
}

#[test]
fn yaml_round_trips_and_fills_default_consensus_settings() {
    let p = params(3);
    let text = p.to_yaml().unwrap();
    assert!(text.contains("max-clock-skew: 15s"), "{text}");
    assert_eq!(NetworkParams::from_yaml(&text).unwrap(), p);
    let members: Vec<String> = p.members.iter().map(Chain::to_pem).collect();
    let minimal = serde_yaml::to_string(&serde_json::json!({
        "version": 1, "network": "testnet", "root": p.root.to_string(), "members": members,
    }))
    .unwrap();
    let read = NetworkParams::from_yaml(&minimal).unwrap();
    assert_eq!(read.consensus, ConsensusParams::default());
    assert_eq!(read.consensus.max_clock_skew, Duration::from_secs(15));
    assert_eq!(read.consensus.transaction_window, Duration::from_secs(600));
    assert_eq!(read.digest(), p.digest());
}

#[test]
fn unknown_fields_are_refused() {
    let text = params(1)
        .to_yaml()
        .unwrap()
        .replace("consensus:", "consensus:\n  quorum: 2");
    let error = NetworkParams::from_yaml(&text).unwrap_err().to_string();
    assert!(error.contains("quorum"), "{error}");
}

#[test]
fn the_digest_ignores_member_order_and_duration_spelling() {
    let p = params(3);
    let mut reordered = p.clone();
    reordered.members.reverse();
    assert_eq!(reordered.digest(), p.digest());
    let text = p
        .to_yaml()
        .unwrap()
        .replace("block-interval: 1s", "block-interval: 1000ms");
    assert!(text.contains("1000ms"));
    assert_eq!(
        NetworkParams::from_yaml(&text).unwrap().digest(),
        p.digest()
    );
}

#[test]
fn any_difference_changes_the_genesis_and_is_named() {
    let p = params(2);
    let genesis = p.genesis();
    assert!(genesis.is_genesis());
    assert_eq!(
        genesis.parameters.as_ref().map(|b| b.to_vec()),
        Some(p.digest().to_vec())
    );
    assert_ne!(
        genesis.cid(),
        crate::journal::Block::genesis("testnet", vec![]).cid()
    );
    let mut slower = p.clone();
    slower.consensus.block_interval = Duration::from_secs(2);
    let mut fewer = p.clone();
    fewer.members.pop();
    let mut renamed = p.clone();
    renamed.network = "othernet".into();
    let mut rerooted = p.clone();
    rerooted.root = SecretKey::generate().public();
    for (other, section) in [
        (slower, "consensus"),
        (fewer, "members"),
        (renamed, "network"),
        (rerooted, "root"),
    ] {
        assert_ne!(other.genesis().cid(), genesis.cid(), "{section}");
        let differences = p.section_digests().differences(&other.section_digests());
        assert_eq!(differences, vec![section]);
    }
}

#[test]
fn validation_names_the_field_at_fault() {
    let p = params(2);
    let check = |mutate: &dyn Fn(&mut NetworkParams), field: &str| {
        let mut bad = p.clone();
        mutate(&mut bad);
        let error = bad.validate().unwrap_err().to_string();
        assert!(error.contains(field), "expected {field} in: {error}");
    };
    check(&|b| b.version = 2, "version");
    check(&|b| b.network = "bad name".into(), "network");
    check(&|b| b.members.clear(), "members");
    check(&|b| b.members.push(b.members[0].clone()), "listed twice");
    check(
        &|b| b.root = SecretKey::generate().public(),
        "not by the pinned root",
    );
    check(
        &|b| b.consensus.commit_timeout = Duration::from_millis(10),
        "commit-timeout",
    );
    check(
        &|b| b.consensus.commit_backoff = Duration::ZERO,
        "commit-backoff",
    );
    check(
        &|b| b.consensus.max_clock_skew = Duration::ZERO,
        "max-clock-skew",
    );
    check(
        &|b| b.consensus.transaction_window = Duration::from_secs(1),
        "transaction-window",
    );
    check(
        &|b| b.consensus.transaction_pow_bits = 41,
        "transaction-pow-bits",
    );
    check(
        &|b| b.consensus.max_weight_per_principal = 0,
        "max-weight-per-principal",
    );
    check(&|b| b.consensus.epoch_length = 0, "epoch-length");
    p.validate().unwrap();
}

#[test]
fn a_member_must_be_a_level_1_chain() {
    let p = params(1);
    let mut principal_only = p.clone();
    principal_only.members = vec![Chain(p.members[0].0[1..].to_vec())];
    let error = principal_only.validate().unwrap_err().to_string();
    assert!(error.contains("member 0"), "{error}");
}

#[test]
fn rules_carry_the_network_root_and_difficulty() {
    let mut p = params(1);
    p.consensus.transaction_pow_bits = 7;
    let rules = p.rules();
    assert_eq!(rules.network, "testnet");
    assert_eq!(rules.root, p.root);
    assert_eq!(rules.tx_pow_bits, 7);
    assert_eq!(p.member_keys().len(), 1);
}

#[test]
fn a_genesis_mismatch_names_what_differs() {
    let p = params(2);
    let mut other = p.clone();
    other.consensus.transaction_pow_bits = 20;
    let (ours, theirs) = (p.section_digests(), other.section_digests());
    let reason = SectionDigests::genesis_mismatch(Some(&ours), Some(&theirs));
    assert!(reason.ends_with("differ in consensus"), "{reason}");
    let reason = SectionDigests::genesis_mismatch(Some(&ours), None);
    assert!(reason.contains("without network parameters"), "{reason}");
    let reason = SectionDigests::genesis_mismatch(None, Some(&theirs));
    assert!(reason.contains("this peer without"), "{reason}");
}

#[test]
fn the_documented_example_reads_with_its_documented_digest_and_genesis() {
    let doc = include_str!("../../../docs/network-parameters.md");
    let example = doc
        .split("```yaml\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("docs/network-parameters.md has a yaml example");
    let params = NetworkParams::from_yaml(example).unwrap();
    let digest = hex::encode(params.digest());
    assert!(
        doc.contains(&digest),
        "the documented digest should be {digest}"
    );
    let genesis = params.genesis().cid().to_string();
    assert!(
        doc.contains(&genesis),
        "the documented genesis should be {genesis}"
    );
}

#[test]
fn one_principal_holds_at_most_its_cap_of_seats() {
    let (root, mut chains) = tower(5);
    // A second principal under the same root with one peer.
    let principal = SecretKey::generate();
    let l0 = Chain(vec![Certificate::issue(
        &root,
        principal.public(),
        Level::Principal,
        NOW,
        NOW + 1_000,
    )]);
    let lone = SecretKey::generate().public();
    chains.push(Chain::extend(
        Certificate::issue(&principal, lone, Level::Peer, NOW, NOW + 1_000),
        &l0,
    ));
    let mut p = NetworkParams::new("testnet", root.public(), chains);
    p.validate().unwrap();
    assert_eq!(p.member_keys().len(), 6);
    let seats = p.seated_members();
    assert_eq!(
        seats.len(),
        4,
        "three of the first principal's five, and the lone peer"
    );
    assert!(seats.contains(&lone));
    let mut sorted = seats.clone();
    sorted.sort();
    assert_eq!(seats, sorted);
    p.consensus.max_weight_per_principal = 1;
    assert_eq!(p.seated_members().len(), 2);
    p.consensus.max_weight_per_principal = 10;
    assert_eq!(p.seated_members().len(), 6);
    let rules = p.rules();
    assert_eq!(rules.transaction_window, 600);
    assert_eq!(rules.max_clock_skew, 15);
    assert!(rules.timing.is_some());
}
