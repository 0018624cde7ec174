//! `mediachain-peer run` configuration: flags, environment variables and an optional YAML file
//! (flags and environment win over the file, the file over the defaults). Validation loads every
//! file it names and fails fast with one message that says which setting is wrong.
//! The contract with deployments is `docs/peer-contract.md`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::network::NetworkParams;
use crate::trust::PublicKey;

/// Settings as given (every one optional until merged).
#[derive(Debug, Clone, Default, clap::Args, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct RunArgs {
    /// YAML file with any of these settings (keys in kebab-case).
    #[arg(long, env = "MEDIACHAIN_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Network name; without network parameters the genesis block is derived from it [default: devnet].
    #[arg(long, env = "MEDIACHAIN_NETWORK")]
    pub network: Option<String>,
    /// The network's parameters (YAML, docs/network-parameters.md): name, root key, initial
    /// members and consensus settings, from which the genesis block is derived. Settings also
    /// given as flags must agree with it.
    #[arg(long, env = "MEDIACHAIN_NETWORK_PARAMS")]
    pub network_params: Option<PathBuf>,
    /// The peer's ed25519 key (PKCS#8 PEM) [default: /etc/mediachain/identity/peer.key].
    #[arg(long, env = "MEDIACHAIN_KEY")]
    pub key: Option<PathBuf>,
    /// The peer's Level-1 certificate chain (PEM, leaf first) [default: /etc/mediachain/identity/peer.chain].
    #[arg(long, env = "MEDIACHAIN_CHAIN")]
    pub chain: Option<PathBuf>,
    /// Pinned root public key: PeerId, hex, or a file holding one [default: /etc/mediachain/trust/root.pub].
    #[arg(long, env = "MEDIACHAIN_ROOT_KEY")]
    pub root_key: Option<String>,
    /// Signed revocation lists (repeatable; comma-separated in the environment).
    #[arg(long, env = "MEDIACHAIN_REVOCATIONS", value_delimiter = ',')]
    #[serde(default)]
    pub revocations: Vec<PathBuf>,
    /// File with one seed multiaddr per line (`#` comments) [default: /etc/mediachain/seeds/seeds.txt if it exists].
    #[arg(long, env = "MEDIACHAIN_SEEDS_FILE")]
    pub seeds_file: Option<PathBuf>,
    /// Extra seed multiaddrs (repeatable; comma-separated in the environment).
    #[arg(long = "seed", env = "MEDIACHAIN_SEEDS", value_delimiter = ',')]
    #[serde(default)]
    pub seeds: Vec<String>,
    /// Overlay listen multiaddr [default: /ip4/0.0.0.0/tcp/4001].
    #[arg(long, env = "MEDIACHAIN_LISTEN")]
    pub listen: Option<String>,
    /// Address other peers should dial (e.g. /dns4/<pod>.<svc>/tcp/4001).
    #[arg(long, env = "MEDIACHAIN_EXTERNAL_ADDRESS")]
    pub external_address: Option<String>,
    /// HTTP API listen address [default: 0.0.0.0:8080].
    #[arg(long, env = "MEDIACHAIN_API_LISTEN")]
    pub api_listen: Option<String>,
    /// Datastore and journal directory [default: /var/lib/mediachain].
    #[arg(long, env = "MEDIACHAIN_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Wait that collects transactions into a block, e.g. `1s`, `250ms` [default: 1s].
    #[arg(long, env = "MEDIACHAIN_BLOCK_INTERVAL")]
    pub block_interval: Option<String>,
    /// After this, out-of-turn committers may commit [default: 5s].
    #[arg(long, env = "MEDIACHAIN_COMMIT_TIMEOUT")]
    pub commit_timeout: Option<String>,
    /// N of the N-cut connectivity guarantee [default: 3].
    #[arg(long, env = "MEDIACHAIN_TARGET_CONNECTIVITY")]
    pub target_connectivity: Option<usize>,
    /// Client registration proof-of-work difficulty in bits [default: 20].
    #[arg(long, env = "MEDIACHAIN_REGISTRATION_POW_BITS")]
    pub registration_pow_bits: Option<u8>,
    /// Per-transaction proof-of-work difficulty in bits [default: 12].
    #[arg(long, env = "MEDIACHAIN_TRANSACTION_POW_BITS")]
    pub transaction_pow_bits: Option<u8>,
    /// Largest object accepted, in bytes [default: 1048576].
    #[arg(long, env = "MEDIACHAIN_MAX_OBJECT_SIZE")]
    pub max_object_size: Option<usize>,
    /// Longest an overlay connection may take from TCP to a Noise + Yamux session [default: 5s].
    #[arg(long, env = "MEDIACHAIN_OVERLAY_HANDSHAKE_TIMEOUT")]
    pub overlay_handshake_timeout: Option<String>,
    /// Incoming overlay connections still in their handshake, at most [default: 64].
    #[arg(long, env = "MEDIACHAIN_OVERLAY_MAX_PENDING_INCOMING")]
    pub overlay_max_pending_incoming: Option<u32>,
    /// Incoming overlay connections from one IP address still in their handshake, at most
    /// [default: 8].
    #[arg(long, env = "MEDIACHAIN_OVERLAY_MAX_PENDING_PER_ADDRESS")]
    pub overlay_max_pending_per_address: Option<u32>,
    /// Overlay connections to one peer, at most [default: 2].
    #[arg(long, env = "MEDIACHAIN_OVERLAY_MAX_CONNECTIONS_PER_PEER")]
    pub overlay_max_connections_per_peer: Option<u32>,
    /// Established overlay connections, at most [default: 256].
    #[arg(long, env = "MEDIACHAIN_OVERLAY_MAX_CONNECTIONS")]
    pub overlay_max_connections: Option<u32>,
    /// Keep the query index behind `/v1/search` (in `<data-dir>/search`); `off` runs a peer that
    /// answers no queries and spends no CPU indexing: `on`/`off` [default: on].
    #[arg(long, env = "MEDIACHAIN_SEARCH", value_parser = clap::builder::BoolishValueParser::new())]
    pub search: Option<bool>,
}

/// A configuration problem (exit code 2).
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {setting}: {detail}")]
pub struct ConfigError {
    /// The setting at fault.
    pub setting: &'static str,
    /// What is wrong.
    pub detail: String,
}

fn bad(setting: &'static str, detail: impl std::fmt::Display) -> ConfigError {
    ConfigError {
        setting,
        detail: detail.to_string(),
    }
}

/// Reads the network parameters file.
fn read_params(path: &Path) -> Result<NetworkParams, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| bad("network-params", format!("{}: {e}", path.display())))?;
    NetworkParams::from_yaml(&text)
        .map_err(|e| bad("network-params", format!("{}: {e}", path.display())))
}

/// A setting the network parameters define: a flag may repeat it, not contradict it.
fn agree<T: PartialEq + std::fmt::Debug>(
    setting: &'static str,
    given: Option<T>,
    from_params: T,
) -> Result<T, ConfigError> {
    match given {
        Some(value) if value != from_params => Err(bad(
            setting,
            format!("{value:?} contradicts the network parameters ({from_params:?})"),
        )),
        _ => Ok(from_params),
    }
}

fn duration(
    setting: &'static str,
    value: Option<String>,
    default: Duration,
) -> Result<Duration, ConfigError> {
    match value {
        None => Ok(default),
        Some(v) => humantime::parse_duration(&v).map_err(|e| bad(setting, format!("`{v}`: {e}"))),
    }
}

/// The root key given as a key or as a file holding one.
fn root_key(arg: &str) -> Result<PublicKey, ConfigError> {
    match arg.parse() {
        Ok(key) => Ok(key),
        Err(_) => std::fs::read_to_string(arg)
            .map_err(|e| {
                bad(
                    "root-key",
                    format!("`{arg}` is neither a key nor a readable file: {e}"),
                )
            })?
            .parse()
            .map_err(|e| bad("root-key", e)),
    }
}

impl RunArgs {
    /// Sets what the network parameters define, refusing flags that contradict them.
    fn take_params(&mut self, params: &NetworkParams) -> Result<(), ConfigError> {
        let c = &params.consensus;
        self.network = Some(agree(
            "network",
            self.network.take(),
            params.network.clone(),
        )?);
        let root = self.root_key.as_deref().map(root_key).transpose()?;
        self.root_key = Some(agree("root-key", root, params.root)?.to_string());
        for (setting, value, from_params) in [
            ("block-interval", &mut self.block_interval, c.block_interval),
            ("commit-timeout", &mut self.commit_timeout, c.commit_timeout),
        ] {
            let given = value
                .take()
                .map(|v| duration(setting, Some(v), from_params))
                .transpose()?;
            let agreed = agree(setting, given, from_params)?;
            *value = Some(humantime::format_duration(agreed).to_string());
        }
        let bits = self.transaction_pow_bits.take();
        self.transaction_pow_bits =
            Some(agree("transaction-pow-bits", bits, c.transaction_pow_bits)?);
        Ok(())
    }

    /// Fills unset settings from the YAML file named by `--config`.
    pub fn merge_file(mut self) -> Result<Self, ConfigError> {
        let Some(path) = self.config.clone() else {
            return Ok(self);
        };
        let text = std::fs::read_to_string(&path)
            .map_err(|e| bad("config", format!("{}: {e}", path.display())))?;
        let file: RunArgs = serde_yaml::from_str(&text)
            .map_err(|e| bad("config", format!("{}: {e}", path.display())))?;
        macro_rules! fill {
            ($($field:ident),*) => { $( if self.$field.is_none() { self.$field = file.$field; } )* };
        }
        fill!(
            network,
            network_params,
            key,
            chain,
            root_key,
            seeds_file,
            listen,
            external_address,
            api_listen,
            data_dir,
            block_interval,
            commit_timeout,
            target_connectivity,
            registration_pow_bits,
            transaction_pow_bits,
            max_object_size,
            overlay_handshake_timeout,
            overlay_max_pending_incoming,
            overlay_max_pending_per_address,
            overlay_max_connections_per_peer,
            overlay_max_connections,
            search
        );
        if self.revocations.is_empty() {
            self.revocations = file.revocations;
        }
        if self.seeds.is_empty() {
            self.seeds = file.seeds;
        }
        Ok(self)
    }
}

#[path = "config_validate.rs"]
mod validate;
pub use validate::{read_seeds, Config};

#[cfg(test)]
#[path = "config_fixture.rs"]
mod fixture;

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "config_merge_tests.rs"]
mod merge_tests;
