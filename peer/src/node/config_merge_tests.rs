//! Merging (flags and environment over the YAML file over the defaults) and validation: every
//! refusal names its setting.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use super::fixture::Files;
use super::{read_seeds, RunArgs};
use crate::node::overlay::swarm::Limits;
use crate::store::DEFAULT_MAX_OBJECT_SIZE;
use crate::time;
use crate::trust::{keyfile, Revocation, RevocationList, SecretKey};

#[test]
fn unset_settings_take_the_documented_defaults() {
    let files = Files::new();
    let config = files.args().validate().unwrap();
    assert_eq!(config.network, "devnet");
    assert!(config.params.is_none(), "no network parameters file");
    assert_eq!(config.key.public(), files.tower.peer.public());
    assert_eq!(config.root, files.tower.root.public());
    assert_eq!(config.listen.to_string(), "/ip4/0.0.0.0/tcp/4001");
    assert_eq!(config.external_address, None);
    assert_eq!(config.api_listen.to_string(), "0.0.0.0:8080");
    assert_eq!(config.data_dir, PathBuf::from("/var/lib/mediachain"));
    assert_eq!(config.block_interval, Duration::from_secs(1));
    assert_eq!(config.commit_timeout, Duration::from_secs(5));
    assert_eq!(config.target_connectivity, 3);
    assert_eq!(config.registration_pow_bits, 20);
    assert_eq!(config.transaction_pow_bits, 12);
    assert_eq!(config.max_object_size, DEFAULT_MAX_OBJECT_SIZE);
    assert_eq!(
        config.overlay_limits,
        Limits {
            handshake_timeout: Duration::from_secs(5),
            max_pending_incoming: 64,
            max_pending_per_address: 8,
            max_per_peer: 2,
            max_established: 256,
        }
    );
    assert!(config.revocations.is_empty());
    assert!(config.search, "the query index is kept by default");
    // The mounted seeds file is used when it exists (it does not on a test machine).
    let default_seeds = PathBuf::from("/etc/mediachain/seeds/seeds.txt");
    assert_eq!(
        config.seeds_file,
        Some(default_seeds.clone()).filter(|p| p.exists())
    );
    if !default_seeds.exists() {
        assert!(config.seeds.is_empty());
    }
}

#[test]
fn the_file_fills_what_flags_leave_unset_and_never_overrides_them() {
    let files = Files::new();
    let seeds = files.write(
        "seeds.txt",
        "# a comment\n/ip4/10.0.0.9/tcp/4001 # peer 9\n\n",
    );
    let file = files.write(
        "peer.yaml",
        &format!(
            "network: filenet\nblock-interval: 2s\ncommit-timeout: 9s\ntarget-connectivity: 5\n\
             seeds: [/ip4/10.0.0.1/tcp/4001]\nseeds-file: {}\nmax-object-size: 4096\n\
             api-listen: 127.0.0.1:9000\noverlay-handshake-timeout: 2s\n\
             overlay-max-pending-incoming: 8\noverlay-max-pending-per-address: 3\n\
             overlay-max-connections-per-peer: 1\n\
             overlay-max-connections: 7\nsearch: false\n",
            seeds.display()
        ),
    );
    let mut args = files.args();
    args.config = Some(file.clone());
    args.network = Some("flagnet".into());
    args.block_interval = Some("3s".into());
    let config = args.validate().unwrap();
    assert_eq!(config.network, "flagnet", "a flag wins over the file");
    assert_eq!(config.block_interval, Duration::from_secs(3));
    assert_eq!(
        config.commit_timeout,
        Duration::from_secs(9),
        "the file fills"
    );
    assert_eq!(config.target_connectivity, 5);
    assert_eq!(config.max_object_size, 4096);
    assert_eq!(config.api_listen.to_string(), "127.0.0.1:9000");
    assert!(!config.search, "the file turns the query index off");
    assert_eq!(
        config.overlay_limits,
        Limits {
            handshake_timeout: Duration::from_secs(2),
            max_pending_incoming: 8,
            max_pending_per_address: 3,
            max_per_peer: 1,
            max_established: 7,
        }
    );
    assert_eq!(config.seeds_file.as_deref(), Some(seeds.as_path()));
    let seeds: Vec<String> = config.seeds.iter().map(ToString::to_string).collect();
    assert_eq!(seeds, ["/ip4/10.0.0.9/tcp/4001", "/ip4/10.0.0.1/tcp/4001"]);

    // Seeds given as flags replace the file's list (lists are not concatenated).
    let mut args = files.args();
    args.config = Some(file);
    args.seeds = vec!["/ip4/10.0.0.2/tcp/4001".into()];
    let config = args.validate().unwrap();
    let seeds: Vec<String> = config.seeds.iter().map(ToString::to_string).collect();
    assert_eq!(seeds, ["/ip4/10.0.0.9/tcp/4001", "/ip4/10.0.0.2/tcp/4001"]);
}

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    run: RunArgs,
}

#[test]
fn flags_win_over_the_environment_which_wins_over_the_file() {
    let files = Files::new();
    let file = files.write(
        "peer.yaml",
        "network: filenet\nblock-interval: 2s\ncommit-timeout: 9s\ntransaction-pow-bits: 7\n",
    );
    // The only test of this crate that sets these variables (the environment is per process).
    std::env::set_var("MEDIACHAIN_NETWORK", "envnet");
    std::env::set_var("MEDIACHAIN_BLOCK_INTERVAL", "4s");
    std::env::set_var(
        "MEDIACHAIN_SEEDS",
        "/ip4/10.0.0.3/tcp/1,/ip4/10.0.0.4/tcp/2",
    );
    let parsed = Cli::try_parse_from([
        "mediachain-peer".into(),
        "--network".into(),
        "flagnet".into(),
        "--config".into(),
        file.display().to_string(),
        "--search".into(),
        "off".into(),
    ]);
    for var in [
        "MEDIACHAIN_NETWORK",
        "MEDIACHAIN_BLOCK_INTERVAL",
        "MEDIACHAIN_SEEDS",
    ] {
        std::env::remove_var(var);
    }
    let mut args = parsed.unwrap().run;
    let base = files.args();
    (args.key, args.chain, args.root_key) = (base.key, base.chain, base.root_key);
    let config = args.validate().unwrap();
    assert_eq!(config.network, "flagnet", "flag over environment and file");
    assert_eq!(
        config.block_interval,
        Duration::from_secs(4),
        "environment over file"
    );
    assert_eq!(
        config.commit_timeout,
        Duration::from_secs(9),
        "file over default"
    );
    assert_eq!(config.transaction_pow_bits, 7);
    assert!(!config.search, "`--search off`");
    let seeds: Vec<String> = config.seeds.iter().map(ToString::to_string).collect();
    assert_eq!(
        seeds,
        ["/ip4/10.0.0.3/tcp/1", "/ip4/10.0.0.4/tcp/2"],
        "comma-separated in the environment"
    );
}

#[test]
fn a_bad_config_file_is_refused_as_config() {
    let files = Files::new();
    for (name, text) in [
        ("unknown.yaml", "network: x\nblock-intervall: 2s\n"),
        ("garbled.yaml", "network: [unclosed\n"),
        ("typed.yaml", "target-connectivity: many\n"),
    ] {
        let path = files.write(name, text);
        let (setting, detail) = files.refusal(|a| a.config = Some(path));
        assert_eq!(setting, "config", "{name}: {detail}");
        assert!(detail.contains(name), "names the file: {detail}");
    }
    let (setting, _) = files.refusal(|a| a.config = Some(files.path("missing.yaml")));
    assert_eq!(setting, "config");
}

/// A change to valid settings.
type Edit<'a> = Box<dyn FnOnce(&mut RunArgs) + 'a>;

#[test]
fn every_refusal_names_its_setting() {
    let files = Files::new();
    let stranger = SecretKey::generate();
    let foreign_root = files.write("foreign.pub", &SecretKey::generate().public().to_string());
    let other_key = files.write("other.key", &keyfile::to_plain_pem(&stranger).unwrap());
    let not_a_key = files.write("garbage.pub", "not a key\n");
    let not_pem = files.write("garbage.chain", "not pem\n");
    let garbage_crl = files.write("garbage.crl", "not pem\n");
    let bad_seeds = files.write("bad-seeds.txt", "/ip4/10.0.0.1/tcp/4001\nnot-a-multiaddr\n");
    let now = time::now();
    // A list claiming to be the root's, signed by another key.
    let mut forged = RevocationList::empty(&stranger, now);
    forged.body.issuer = files.tower.root.public();
    let forged = files.write("forged.crl", &forged.to_pem());
    let revoked = Revocation {
        subject: files.tower.peer.public(),
        revoked_at: now - 10,
        reason: "compromised".into(),
    };
    let revoking = files.write(
        "revoking.crl",
        &RevocationList::empty(&files.tower.root, now)
            .with(&files.tower.root, revoked, now)
            .to_pem(),
    );
    let cases: Vec<(&str, Edit)> = vec![
        ("network", Box::new(|a| a.network = Some(String::new()))),
        ("network", Box::new(|a| a.network = Some("dev net".into()))),
        ("key", Box::new(|a| a.key = Some(files.path("none.key")))),
        ("key", Box::new(|a| a.key = Some(not_pem.clone()))),
        (
            "chain",
            Box::new(|a| a.chain = Some(files.path("none.chain"))),
        ),
        ("chain", Box::new(|a| a.chain = Some(not_pem.clone()))),
        // The chain certifies another key than the one given.
        ("chain", Box::new(|a| a.key = Some(other_key))),
        // The chain does not lead to the pinned root.
        (
            "chain",
            Box::new(|a| a.root_key = Some(foreign_root.display().to_string())),
        ),
        // The peer's own key is revoked by the root.
        ("chain", Box::new(|a| a.revocations = vec![revoking])),
        (
            "root-key",
            Box::new(|a| a.root_key = Some("/nonexistent/root.pub".into())),
        ),
        (
            "root-key",
            Box::new(|a| a.root_key = Some(not_a_key.display().to_string())),
        ),
        (
            "revocations",
            Box::new(|a| a.revocations = vec![files.path("none.crl")]),
        ),
        (
            "revocations",
            Box::new(|a| a.revocations = vec![garbage_crl]),
        ),
        ("revocations", Box::new(|a| a.revocations = vec![forged])),
        (
            "seeds-file",
            Box::new(|a| a.seeds_file = Some(files.path("none.txt"))),
        ),
        ("seeds-file", Box::new(|a| a.seeds_file = Some(bad_seeds))),
        ("seed", Box::new(|a| a.seeds = vec!["10.0.0.1:4001".into()])),
        (
            "listen",
            Box::new(|a| a.listen = Some("0.0.0.0:4001".into())),
        ),
        (
            "external-address",
            Box::new(|a| a.external_address = Some("peer-0.peers".into())),
        ),
        (
            "api-listen",
            Box::new(|a| a.api_listen = Some("/ip4/0.0.0.0/tcp/8080".into())),
        ),
        (
            "block-interval",
            Box::new(|a| a.block_interval = Some("soon".into())),
        ),
        (
            "commit-timeout",
            Box::new(|a| a.commit_timeout = Some("later".into())),
        ),
        (
            "commit-timeout",
            Box::new(|a| a.block_interval = Some("0s".into())),
        ),
        (
            "commit-timeout",
            Box::new(|a| {
                a.block_interval = Some("2s".into());
                a.commit_timeout = Some("1s".into());
            }),
        ),
        (
            "registration-pow-bits",
            Box::new(|a| a.registration_pow_bits = Some(41)),
        ),
        (
            "transaction-pow-bits",
            Box::new(|a| a.transaction_pow_bits = Some(41)),
        ),
        (
            "max-object-size",
            Box::new(|a| a.max_object_size = Some(1023)),
        ),
        (
            "overlay-handshake-timeout",
            Box::new(|a| a.overlay_handshake_timeout = Some("0s".into())),
        ),
        (
            "overlay-handshake-timeout",
            Box::new(|a| a.overlay_handshake_timeout = Some("soon".into())),
        ),
        (
            "overlay-max-pending-incoming",
            Box::new(|a| a.overlay_max_pending_incoming = Some(0)),
        ),
        (
            "overlay-max-pending-per-address",
            Box::new(|a| a.overlay_max_pending_per_address = Some(0)),
        ),
        (
            "overlay-max-connections-per-peer",
            Box::new(|a| a.overlay_max_connections_per_peer = Some(0)),
        ),
        // Target connectivity 3 keeps up to 5 neighbours.
        (
            "overlay-max-connections",
            Box::new(|a| a.overlay_max_connections = Some(4)),
        ),
    ];
    for (i, (expected, edit)) in cases.into_iter().enumerate() {
        let (setting, detail) = files.refusal(edit);
        assert_eq!(setting, expected, "case {i}: {detail}");
        assert!(!detail.is_empty(), "case {i} says what is wrong");
    }
    // The limits themselves are accepted.
    let mut args = files.args();
    args.registration_pow_bits = Some(40);
    args.transaction_pow_bits = Some(40);
    args.max_object_size = Some(1024);
    args.block_interval = Some("2s".into());
    args.commit_timeout = Some("2s".into());
    args.overlay_max_connections = Some(5);
    args.validate().unwrap();
}

#[test]
fn the_seeds_file_skips_comments_and_blank_lines() {
    let files = Files::new();
    let path = files.write(
        "seeds.txt",
        "# the network's peers\n\n  /ip4/10.0.0.1/tcp/4001  \n/dns4/peer-1.peers/tcp/4001 # peer 1\n",
    );
    let seeds: Vec<String> = read_seeds(&path)
        .unwrap()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        seeds,
        ["/ip4/10.0.0.1/tcp/4001", "/dns4/peer-1.peers/tcp/4001"]
    );
}
