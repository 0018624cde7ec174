//! The network's parameters (pure): what every member of one network must agree on, defined
//! once by `mediachain::network::NetworkParams` (docs/network-parameters.md), read from the
//! ConfigMap that `spec.networkParameters` names and checked against the resource, its principal
//! and the other members of the network.
//!
//! The file is given to the peers unchanged (through the trust ConfigMap); its digest is
//! published in `status.networkParametersDigest` so that organisations running other clusters
//! can compare theirs.

use k8s_openapi::api::core::v1::ConfigMap;
use kube::ResourceExt;
use mediachain::network::NetworkParams;
use mediachain::trust::PublicKey;

use super::dereference::Found;
use crate::crd::MediachainPeer;
use crate::{Error, Result};

/// Largest parameters file accepted (the initial members' chains are a few hundred bytes each).
pub const MAX_PARAMS_BYTES: usize = 256 * 1024;

/// Checked network parameters.
#[derive(Debug, Clone)]
pub struct Checked {
    /// The file, as the ConfigMap holds it (given to the peers byte for byte).
    pub yaml: String,
    /// Hex SHA-256 digest of the parameters (`NetworkParams::digest`).
    pub digest: String,
}

/// Reads and checks the parameters of `mp` (`None` when the spec names none): the file parses
/// and validates, names the resource's network and pins the principal's root key; the consensus
/// settings it decides are not set again in the spec; the parameters of a running resource do
/// not change (that would be a new genesis); and every other member of the network in the
/// namespace runs the same parameters.
pub fn check(mp: &MediachainPeer, found: &Found, root: PublicKey) -> Result<Option<Checked>> {
    let mismatch = |detail: String| Error::NetworkMismatch(detail);
    let Some(spec) = &mp.spec.network_parameters else {
        if let Some(other) = other_digest(mp, found, None) {
            return Err(mismatch(other));
        }
        return Ok(None);
    };
    let name = &spec.config_map_name;
    let map: &ConfigMap = found.network_params.as_ref().ok_or_else(|| {
        Error::InvalidSpec(format!(
            "spec.networkParameters: ConfigMap {name} not found (create it with the network's parameters file under `{}`)",
            spec.key
        ))
    })?;
    let yaml = map
        .data
        .as_ref()
        .and_then(|d| d.get(&spec.key))
        .ok_or_else(|| {
            Error::InvalidSpec(format!(
                "spec.networkParameters: ConfigMap {name} has no key `{}`",
                spec.key
            ))
        })?;
    if yaml.len() > MAX_PARAMS_BYTES {
        return Err(Error::InvalidSpec(format!(
            "spec.networkParameters: `{}` in ConfigMap {name} is larger than {MAX_PARAMS_BYTES} bytes",
            spec.key
        )));
    }
    let params = NetworkParams::from_yaml(yaml).map_err(|e| {
        Error::InvalidSpec(format!(
            "spec.networkParameters: `{}` in ConfigMap {name}: {e}",
            spec.key
        ))
    })?;
    if params.network != mp.spec.network {
        return Err(mismatch(format!(
            "the parameters are those of network `{}`, the resource's spec.network is `{}`",
            params.network, mp.spec.network
        )));
    }
    if params.root != root {
        return Err(mismatch(format!(
            "the parameters pin root {}, the principal Secret's root.pub is {root}",
            params.root
        )));
    }
    let consensus = &mp.spec.consensus;
    let decided = [
        ("blockInterval", consensus.block_interval.is_some()),
        ("commitTimeout", consensus.commit_timeout.is_some()),
        (
            "transactionPowBits",
            consensus.transaction_pow_bits.is_some(),
        ),
    ];
    if let Some((field, _)) = decided.iter().find(|(_, set)| *set) {
        return Err(mismatch(format!(
            "spec.consensus.{field} is decided by the network parameters: remove it from the spec"
        )));
    }
    let digest = hex::encode(params.digest());
    let running = mp
        .status
        .as_ref()
        .and_then(|s| s.network_parameters_digest.as_ref());
    if let Some(running) = running.filter(|r| **r != digest) {
        return Err(mismatch(format!(
            "ConfigMap {name} now holds parameters with digest {digest}, the peers run {running}: parameters are fixed when a network is created (a change is a new genesis); restore the file"
        )));
    }
    if let Some(other) = other_digest(mp, found, Some(&digest)) {
        return Err(mismatch(other));
    }
    Ok(Some(Checked {
        yaml: yaml.clone(),
        digest,
    }))
}

/// Another member of the network (same namespace, not being deleted, running: its last pass
/// succeeded) whose published parameters differ from `ours`: what to tell the user. A member
/// refused for its parameters never blocks the others (it does not run).
fn other_digest(mp: &MediachainPeer, found: &Found, ours: Option<&String>) -> Option<String> {
    let none = "none (genesis from the network name)";
    found
        .network_members
        .iter()
        .filter(|m| m.uid() != mp.uid() && m.metadata.deletion_timestamp.is_none())
        .filter_map(|m| {
            let status = m.status.as_ref()?;
            let running = status
                .conditions
                .iter()
                .any(|c| c.type_ == super::status::DEGRADED && c.status == "False");
            let theirs = status.network_parameters_digest.as_ref();
            (running && theirs != ours).then(|| {
                format!(
                    "MediachainPeer {} of network {} runs parameters {}, this one {}: every member of a network must hold the same parameters file",
                    m.name_any(),
                    mp.spec.network,
                    theirs.map_or(none, |d| d.as_str()),
                    ours.map_or(none, |d| d.as_str()),
                )
            })
        })
        .next()
}
