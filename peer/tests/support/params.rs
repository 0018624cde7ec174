//! Network parameters for a fleet (docs/network-parameters.md): every peer added so far an
//! initial member, consensus settings matching the flags the fleet starts its peers with.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use mediachain::network::NetworkParams;
use mediachain::trust::Chain;

use super::fleet::Fleet;
use super::work::TX_BITS;

/// Writes `network.yaml` in the fleet's directory, every current peer an initial member, and
/// makes every peer start with it; returns the parameters.
pub fn use_network_params(fleet: &mut Fleet, epoch_length: u64) -> NetworkParams {
    let chains = fleet
        .peers
        .iter()
        .map(|p| Chain::from_pem(&std::fs::read_to_string(p.dir.join("peer.chain")).unwrap()))
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let mut params = NetworkParams::new("fleet", fleet.root.public(), chains);
    let c = &mut params.consensus;
    c.block_interval = humantime::parse_duration(&fleet.block_interval).unwrap();
    c.commit_timeout = Duration::from_secs(2);
    c.transaction_pow_bits = TX_BITS;
    c.epoch_length = epoch_length;
    // One principal runs every peer of the fleet, those added later too.
    c.max_weight_per_principal = 16;
    params.validate().unwrap();
    let path = fleet.path().join("network.yaml");
    std::fs::write(&path, params.to_yaml().unwrap()).unwrap();
    fleet.extra_args.push("--network-params".into());
    fleet.extra_args.push(path.display().to_string());
    params
}
