//! Validation of `mediachain-peer run` settings: every file they name is loaded and checked,
//! defaults fill what is unset, and the result is the [`Config`] a peer runs with.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use libp2p::Multiaddr;

use super::{bad, duration, read_params, root_key, ConfigError, RunArgs};
use crate::journal::{Block, Rules};
use crate::network::NetworkParams;
use crate::node::overlay::swarm::Limits;
use crate::store::DEFAULT_MAX_OBJECT_SIZE;
use crate::time;
use crate::trust::{keyfile, Chain, Level, PublicKey, RevocationList, RevocationSet, SecretKey};

/// The validated configuration of a peer.
#[derive(Debug)]
pub struct Config {
    /// Network name.
    pub network: String,
    /// The network's parameters, if a file defines them.
    pub params: Option<NetworkParams>,
    /// The peer's key.
    pub key: SecretKey,
    /// Its Level-1 chain.
    pub chain: Chain,
    /// The pinned root.
    pub root: PublicKey,
    /// Known revocations (and the lists, to gossip them).
    pub revocations: RevocationSet,
    /// Seed addresses (from the file and the flags).
    pub seeds: Vec<Multiaddr>,
    /// The seeds file, re-read while running.
    pub seeds_file: Option<PathBuf>,
    /// Overlay listen address.
    pub listen: Multiaddr,
    /// Address advertised to peers.
    pub external_address: Option<Multiaddr>,
    /// HTTP API address.
    pub api_listen: SocketAddr,
    /// Data directory.
    pub data_dir: PathBuf,
    /// Block interval.
    pub block_interval: Duration,
    /// Commit timeout.
    pub commit_timeout: Duration,
    /// N-cut target.
    pub target_connectivity: usize,
    /// Registration difficulty.
    pub registration_pow_bits: u8,
    /// Transaction difficulty.
    pub transaction_pow_bits: u8,
    /// Object size limit.
    pub max_object_size: usize,
    /// The overlay's connection limits and handshake timeout.
    pub overlay_limits: Limits,
    /// Whether the peer keeps the query index (`/v1/search` answers 503 without it).
    pub search: bool,
}

/// Reads the seeds file: one multiaddr per line, `#` starts a comment.
pub fn read_seeds(path: &Path) -> Result<Vec<Multiaddr>, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| bad("seeds-file", format!("{}: {e}", path.display())))?;
    crate::node::overlay::policy::seeds::parse(&text).map_err(|e| bad("seeds-file", e))
}

impl Config {
    /// The network's genesis block: from the parameters if any, else from the name.
    pub fn genesis(&self) -> Block {
        match &self.params {
            Some(params) => params.genesis(),
            None => Block::genesis(&self.network, vec![]),
        }
    }

    /// The verification rules: the parameters' (or the flags') with the known revocations.
    pub fn rules(&self) -> Rules {
        let mut rules = match &self.params {
            Some(params) => params.rules(),
            None => Rules::new(&self.network, self.root, self.transaction_pow_bits),
        };
        rules.revocations = self.revocations.clone();
        rules
    }
}

impl RunArgs {
    /// Validates everything and loads the files.
    pub fn validate(self) -> Result<Config, ConfigError> {
        let mut args = self.merge_file()?;
        let params = args
            .network_params
            .as_deref()
            .map(read_params)
            .transpose()?;
        if let Some(params) = &params {
            args.take_params(params)?;
        }
        let target_connectivity = args.target_connectivity.unwrap_or(3);
        let overlay_limits = overlay_limits(&args, target_connectivity)?;
        let network = args.network.unwrap_or_else(|| "devnet".into());
        if network.is_empty()
            || !network
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(bad(
                "network",
                format!("`{network}` must be non-empty letters, digits, `-` or `_`"),
            ));
        }
        let key_path = args
            .key
            .unwrap_or_else(|| "/etc/mediachain/identity/peer.key".into());
        let key = keyfile::read(&key_path, None).map_err(|e| bad("key", e))?;
        let chain_path = args
            .chain
            .unwrap_or_else(|| "/etc/mediachain/identity/peer.chain".into());
        let chain_text = std::fs::read_to_string(&chain_path)
            .map_err(|e| bad("chain", format!("{}: {e}", chain_path.display())))?;
        let chain = Chain::from_pem(&chain_text)
            .map_err(|e| bad("chain", format!("{}: {e}", chain_path.display())))?;
        let root_arg = args
            .root_key
            .unwrap_or_else(|| "/etc/mediachain/trust/root.pub".into());
        let root = root_key(&root_arg)?;
        let mut revocations = RevocationSet::new(root);
        for path in &args.revocations {
            let text = std::fs::read_to_string(path)
                .map_err(|e| bad("revocations", format!("{}: {e}", path.display())))?;
            for list in RevocationList::many_from_pem(&text)
                .map_err(|e| bad("revocations", format!("{}: {e}", path.display())))?
            {
                revocations
                    .add(&list)
                    .map_err(|e| bad("revocations", format!("{}: {e}", path.display())))?;
            }
        }
        let certified = chain
            .verify(&root, &revocations, time::now(), Level::Peer)
            .map_err(|e| bad("chain", format!("{}: {e}", chain_path.display())))?;
        if certified != key.public() {
            return Err(bad(
                "chain",
                format!("certifies {certified}, but the key is {}", key.public()),
            ));
        }
        let seeds_file = match args.seeds_file {
            Some(p) => Some(p),
            None => Some(PathBuf::from("/etc/mediachain/seeds/seeds.txt")).filter(|p| p.exists()),
        };
        let mut seeds = match &seeds_file {
            Some(p) => read_seeds(p)?,
            None => vec![],
        };
        for s in &args.seeds {
            seeds.push(s.parse().map_err(|e| bad("seed", format!("`{s}`: {e}")))?);
        }
        let listen_text = args
            .listen
            .unwrap_or_else(|| "/ip4/0.0.0.0/tcp/4001".into());
        let listen = listen_text
            .parse()
            .map_err(|e| bad("listen", format!("`{listen_text}`: {e}")))?;
        let external_address = args
            .external_address
            .map(|a| {
                a.parse()
                    .map_err(|e| bad("external-address", format!("`{a}`: {e}")))
            })
            .transpose()?;
        let api_text = args.api_listen.unwrap_or_else(|| "0.0.0.0:8080".into());
        let api_listen = api_text
            .parse()
            .map_err(|e| bad("api-listen", format!("`{api_text}`: {e}")))?;
        let block_interval = duration(
            "block-interval",
            args.block_interval,
            Duration::from_secs(1),
        )?;
        let commit_timeout = duration(
            "commit-timeout",
            args.commit_timeout,
            Duration::from_secs(5),
        )?;
        if block_interval.is_zero() || commit_timeout < block_interval {
            return Err(bad(
                "commit-timeout",
                "must be at least the block interval, which must be above zero",
            ));
        }
        let registration_pow_bits = args.registration_pow_bits.unwrap_or(20);
        let transaction_pow_bits = args.transaction_pow_bits.unwrap_or(12);
        for (setting, bits) in [
            ("registration-pow-bits", registration_pow_bits),
            ("transaction-pow-bits", transaction_pow_bits),
        ] {
            if bits > 40 {
                return Err(bad(
                    setting,
                    format!("{bits} bits would take clients days; use 40 or less"),
                ));
            }
        }
        let max_object_size = args.max_object_size.unwrap_or(DEFAULT_MAX_OBJECT_SIZE);
        if max_object_size < 1024 {
            return Err(bad("max-object-size", "must be at least 1024 bytes"));
        }
        Ok(Config {
            network,
            params,
            key,
            chain,
            root,
            revocations,
            seeds,
            seeds_file,
            listen,
            external_address,
            api_listen,
            data_dir: args
                .data_dir
                .unwrap_or_else(|| "/var/lib/mediachain".into()),
            block_interval,
            commit_timeout,
            target_connectivity,
            registration_pow_bits,
            transaction_pow_bits,
            max_object_size,
            overlay_limits,
            search: args.search.unwrap_or(true),
        })
    }
}

/// The overlay's limits: defaults for what is unset, each above zero, and room for the N-cut
/// neighbours (up to N + 2 of them) within the total.
fn overlay_limits(args: &RunArgs, target_connectivity: usize) -> Result<Limits, ConfigError> {
    let default = Limits::default();
    let limits = Limits {
        handshake_timeout: duration(
            "overlay-handshake-timeout",
            args.overlay_handshake_timeout.clone(),
            default.handshake_timeout,
        )?,
        max_pending_incoming: args
            .overlay_max_pending_incoming
            .unwrap_or(default.max_pending_incoming),
        max_pending_per_address: args
            .overlay_max_pending_per_address
            .unwrap_or(default.max_pending_per_address),
        max_per_peer: args
            .overlay_max_connections_per_peer
            .unwrap_or(default.max_per_peer),
        max_established: args
            .overlay_max_connections
            .unwrap_or(default.max_established),
    };
    if limits.handshake_timeout.is_zero() {
        return Err(bad("overlay-handshake-timeout", "must be above zero"));
    }
    for (setting, value) in [
        ("overlay-max-pending-incoming", limits.max_pending_incoming),
        (
            "overlay-max-pending-per-address",
            limits.max_pending_per_address,
        ),
        ("overlay-max-connections-per-peer", limits.max_per_peer),
    ] {
        if value == 0 {
            return Err(bad(setting, "must be at least 1"));
        }
    }
    let neighbours = target_connectivity.saturating_add(2);
    if (limits.max_established as usize) < neighbours {
        return Err(bad(
            "overlay-max-connections",
            format!(
                "{} leaves no room for the up to {neighbours} neighbours of target connectivity \
                 {target_connectivity}",
                limits.max_established
            ),
        ));
    }
    Ok(limits)
}
