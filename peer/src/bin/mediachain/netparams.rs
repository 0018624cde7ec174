//! The devnet's network parameters (docs/network-parameters.md): written once, when the devnet
//! is created, with every peer of the tower as an initial member; reused as they are afterwards
//! (the genesis block is derived from them, so changing them would orphan the peers' data).

use std::path::{Path, PathBuf};
use std::time::Duration;

use mediachain::network::NetworkParams;
use mediachain::trust::PublicKey;

use crate::client::read_chain;
use crate::error::CliError;

/// How the devnet runs its peers: with this parameters file, or (a devnet created before
/// parameters existed, whose peers hold data) without one, from the network name.
pub enum DevnetParams {
    /// `--network-params FILE`.
    File(PathBuf),
    /// The network name alone (the genesis of earlier devnets).
    Legacy,
}

/// Settings the devnet's flags give to a new network.
pub struct Settings {
    /// Block interval.
    pub block_interval: Duration,
    /// Per-transaction proof of work.
    pub transaction_pow_bits: u8,
}

/// Writes `dir/network.yaml` if it is missing (initial members: the chains `peer_dirs` hold)
/// and says how to run the peers.
pub fn ensure(
    dir: &Path,
    root: PublicKey,
    peer_dirs: &[PathBuf],
    settings: Settings,
) -> Result<DevnetParams, CliError> {
    let path = dir.join("network.yaml");
    if path.exists() {
        let text = std::fs::read_to_string(&path)
            .map_err(|e| CliError::Input(format!("{}: {e}", path.display())))?;
        NetworkParams::from_yaml(&text)
            .map_err(|e| CliError::Input(format!("{}: {e}", path.display())))?;
        return Ok(DevnetParams::File(path));
    }
    if peer_dirs.iter().any(|d| d.join("data").exists()) {
        return Ok(DevnetParams::Legacy);
    }
    let mut members = vec![];
    for peer in peer_dirs {
        members.push(read_chain(&peer.join("peer.chain"))?);
    }
    let mut params = NetworkParams::new("devnet", root, members);
    params.consensus.block_interval = settings.block_interval;
    params.consensus.commit_timeout = params.consensus.commit_timeout.max(settings.block_interval);
    params.consensus.transaction_pow_bits = settings.transaction_pow_bits;
    // One principal runs every peer of a devnet: each of them commits and weighs.
    params.consensus.max_weight_per_principal = peer_dirs.len().max(1) as u32;
    params
        .validate()
        .map_err(|e| CliError::Input(e.to_string()))?;
    let text = params
        .to_yaml()
        .map_err(|e| CliError::Input(e.to_string()))?;
    let header =
        "# The devnet's network parameters (docs/network-parameters.md); the genesis block\n\
                  # is derived from them: edit only together with a fresh devnet directory.\n";
    std::fs::write(&path, format!("{header}{text}"))
        .map_err(|e| CliError::Input(format!("{}: {e}", path.display())))?;
    Ok(DevnetParams::File(path))
}
