//! The peer's configuration with and without a network parameters file.

use std::time::Duration;

use super::fixture::Files;
use super::*;
use crate::journal::Block;
use crate::trust::SecretKey;

/// The fixture's peer files, `network.yaml` naming its peer as the only member, the settings
/// that point at them, and the parameters.
fn peer_files() -> (Files, RunArgs, NetworkParams) {
    let files = Files::new();
    let mut params = NetworkParams::new(
        "paramnet",
        files.tower.root.public(),
        vec![files.tower.peer_chain.clone()],
    );
    params.consensus.block_interval = Duration::from_millis(250);
    params.consensus.transaction_pow_bits = 6;
    let network_params = files.write("network.yaml", &params.to_yaml().unwrap());
    let args = RunArgs {
        key: Some(files.path("peer.key")),
        chain: Some(files.path("peer.chain")),
        network_params: Some(network_params),
        data_dir: Some(files.path("data")),
        ..RunArgs::default()
    };
    (files, args, params)
}

#[test]
fn the_parameters_file_sets_network_root_genesis_and_consensus_settings() {
    let (_files, args, params) = peer_files();
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
    let (_files, args, params) = peer_files();
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
    let (_files, args, params) = peer_files();
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
    let (files, args, _) = peer_files();
    files.write("network.yaml", "version: 1\nnetwork: x\n");
    let error = args.validate().unwrap_err();
    assert_eq!(error.setting, "network-params");
}
