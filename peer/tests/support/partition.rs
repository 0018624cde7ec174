//! A fleet split over the two network namespaces of `super::netns` for partition tests: the
//! namespaces (or the skip, where they cannot be made), each peer placed on its side, and the
//! wait for each side to lose the other.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use super::fleet::{metric_sum, Fleet};
use super::netns::Partitionable;
use super::skip::skip_or_fail;

/// The two namespaces, or `None` after the skip was asked for (`MEDIACHAIN_SKIP_NETNS=1`); fails
/// the test where they cannot be made otherwise.
pub fn namespaces() -> Option<Partitionable> {
    match Partitionable::create() {
        Ok(net) => Some(net),
        Err(e) => {
            skip_or_fail(
                "MEDIACHAIN_SKIP_NETNS",
                &format!("this test needs root and iproute2 to make network namespaces ({e})"),
            );
            None
        }
    }
}

/// Places peer `i` of `fleet` on side `sides[i]` of `net` (before the peers start).
pub fn place(fleet: &mut Fleet, net: &Partitionable, sides: &[usize]) {
    for (i, side) in sides.iter().enumerate() {
        let peer = &mut fleet.peers[i];
        peer.host = net.api_hosts[*side].clone();
        peer.p2p_host = net.p2p_hosts[*side].clone();
        peer.netns = Some(net.names[*side].clone());
    }
}

/// Peer `i`'s admitted connections (`mediachain_peers_connected`).
pub async fn connected(fleet: &Fleet, i: usize) -> u64 {
    metric_sum(&fleet.metrics(i).await, "mediachain_peers_connected ") as u64
}

/// Waits until each peer `i` counts `expected[i]` admitted connections (the split is seen).
pub async fn wait_connected(fleet: &Fleet, expected: &[u64]) {
    fleet
        .wait_for(
            &format!("the peers to count {expected:?} connections"),
            Duration::from_secs(60),
            || async {
                for (i, n) in expected.iter().enumerate() {
                    if connected(fleet, i).await != *n {
                        return false;
                    }
                }
                true
            },
        )
        .await;
}
