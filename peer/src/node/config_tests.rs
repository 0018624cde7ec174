//! The peer's configuration with and without a network parameters file.

use std::path::Path;
use std::time::Duration;

use super::*;
use crate::trust::Certificate;

/// A peer's key and chain in `dir`, and parameters naming it as the only member.
fn peer_files(dir: &Path) -> (RunArgs, NetworkParams) {
    let now = time::now();
    let root = SecretKey::generate();
    let principal = SecretKey::generate();
    let key = SecretKey::generate();
    let l0 = Chain(vec![Certificate::issue(
        &root,
        principal.public(),
        Level::Principal,
        now - 60,
        now + 3600,
    )]);
    let chain = Chain::extend(
        Certificate::issue(&principal, key.public(), Level::Peer, now - 60, now + 3600),
        &l0,
    );
    std::fs::write(dir.join("peer.key"), keyfile::to_plain_pem(&key).unwrap()).unwrap();
    std::fs::write(dir.join("peer.chain"), chain.to_pem()).unwrap();
    let mut params = NetworkParams::new("paramnet", root.public(), vec![chain]);
    params.consensus.block_interval = Duration::from_millis(250);
    params.consensus.transaction_pow_bits = 6;
    std::fs::write(dir.join("network.yaml"), params.to_yaml().unwrap()).unwrap();
    let args = RunArgs {
        key: Some(dir.join("peer.key")),
        chain: Some(dir.join("peer.chain")),
        network_params: Some(dir.join("network.yaml")),
        data_dir: Some(dir.join("data")),
        ..RunArgs::default()
    };
    (args, params)
}

#[test]
fn the_parameters_file_sets_network_root_genesis_and_consensus_settings() {
    let dir = tempfile::tempdir().unwrap();
    let (args, params) = peer_files(dir.path());
    let config = args.validate().unwrap();
    assert_eq!(config.network, "paramnet");
    assert_eq!(config.root, params.root);
    assert_eq!(config.block_interval, Duration::from_millis(250));
    assert_eq!(config.commit_timeout, params.consensus.commit_timeout);
    assert_eq!(config.transaction_pow_bits, 6);
    assert_eq!(config.genesis().cid(), params.genesis().cid());
    assert_eq!(config.rules().max_clock_skew, 15);
    assert_eq!(config.params, Some(params));
}

#[test]
fn a_flag_that_contradicts_the_parameters_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let (args, params) = peer_files(dir.path());
    let same = RunArgs {
        block_interval: Some("250ms".into()),
        root_key: Some(params.root.to_string()),
        ..args.clone()
    };
    same.validate().unwrap();
    for (args, setting) in [
        (
            RunArgs {
                block_interval: Some("1s".into()),
                ..args.clone()
            },
            "block-interval",
        ),
        (
            RunArgs {
                network: Some("devnet".into()),
                ..args.clone()
            },
            "network",
        ),
        (
            RunArgs {
                root_key: Some(SecretKey::generate().public().to_string()),
                ..args.clone()
            },
            "root-key",
        ),
        (
            RunArgs {
                transaction_pow_bits: Some(12),
                ..args.clone()
            },
            "transaction-pow-bits",
        ),
    ] {
        let error = args.validate().unwrap_err();
        assert_eq!(error.setting, setting, "{error}");
        assert!(error.detail.contains("contradicts"), "{error}");
    }
}

#[test]
fn without_a_parameters_file_the_genesis_comes_from_the_network_name() {
    let dir = tempfile::tempdir().unwrap();
    let (args, params) = peer_files(dir.path());
    let config = RunArgs {
        network_params: None,
        root_key: Some(params.root.to_string()),
        ..args
    }
    .validate()
    .unwrap();
    assert_eq!(config.network, "devnet");
    assert!(config.params.is_none());
    assert_eq!(config.genesis(), Block::genesis("devnet", vec![]));
}

#[test]
fn an_invalid_parameters_file_is_a_configuration_error() {
    let dir = tempfile::tempdir().unwrap();
    let (args, _) = peer_files(dir.path());
    std::fs::write(dir.path().join("network.yaml"), "version: 1\nnetwork: x\n").unwrap();
    let error = args.validate().unwrap_err();
    assert_eq!(error.setting, "network-params");
}
