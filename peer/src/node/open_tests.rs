//! A node under network parameters: its rotation is the seats the parameters define, the same
//! after a restart and whatever peers it is connected to.

use std::time::Duration;

use super::*;
use crate::network::NetworkParams;
use crate::trust::tower::Tower;

fn node_params(network: &NetworkParams) -> NodeParams {
    NodeParams {
        network: network.network.clone(),
        block_interval: Duration::from_millis(100),
        commit_timeout: Duration::from_secs(5),
        registration_pow_bits: 0,
        transaction_pow_bits: 0,
        client_cert_validity: 3600,
        mempool_capacity: 100,
        mempool_bytes: usize::MAX,
        network_params: Some(network.clone()),
    }
}

#[test]
fn the_rotation_is_the_parameters_seats_across_restarts_and_connections() {
    let now = crate::time::now();
    let tower = Tower::at(now);
    let root = &tower.root;
    let peers: Vec<(SecretKey, Chain)> = (0..3).map(|_| tower.another_peer(now)).collect();
    let mut network = NetworkParams::new(
        "seats",
        root.public(),
        peers.iter().map(|(_, c)| c.clone()).collect(),
    );
    network.consensus.max_weight_per_principal = 2;
    let seats = network.seated_members();
    assert_eq!(seats.len(), 2);
    let dir = tempfile::tempdir().unwrap();
    let (key, chain) = peers[0].clone();
    let open = || {
        let store = Store::open(dir.path(), 1 << 20).unwrap();
        Node::open(
            node_params(&network),
            key.clone(),
            chain.clone(),
            network.rules(),
            store,
        )
        .unwrap()
    };
    let rotation = |node: &Node| node.with_journal(|j| j.schedule().peers().to_vec());
    let node = open();
    assert_eq!(rotation(&node), seats);
    assert_eq!(node.genesis(), network.genesis().cid());
    // The peers it happens to be connected to do not change it.
    node.set_peers([peers[2].0.public()]);
    assert_eq!(rotation(&node), seats);
    assert!(
        node.is_peer(&peers[2].0.public()),
        "its challenges are accepted"
    );
    drop(node);
    let node = open();
    assert_eq!(rotation(&node), seats, "the same rotation after a restart");
}

#[test]
fn conflicting_votes_of_a_member_are_kept_as_evidence_across_restarts() {
    use crate::journal::vote::{Checkpoint, Vote};
    let now = crate::time::now();
    let tower = Tower::at(now);
    let root = &tower.root;
    let peers: Vec<(SecretKey, Chain)> = (0..3).map(|_| tower.another_peer(now)).collect();
    let mut network = NetworkParams::new(
        "evidence",
        root.public(),
        peers.iter().map(|(_, c)| c.clone()).collect(),
    );
    network.consensus.max_weight_per_principal = 3;
    let dir = tempfile::tempdir().unwrap();
    let open = || {
        let store = Store::open(dir.path(), 1 << 20).unwrap();
        let (key, chain) = peers[0].clone();
        Node::open(node_params(&network), key, chain, network.rules(), store).unwrap()
    };
    let node = open();
    let genesis = Checkpoint {
        height: 0,
        cid: node.genesis(),
    };
    let target = |name: &[u8]| Checkpoint {
        height: 4,
        cid: crate::model::codec::dag_cbor_cid(name),
    };
    let culprit = &peers[1].0;
    let first = Vote::sign(culprit, "evidence", genesis, target(b"a"));
    let second = Vote::sign(culprit, "evidence", genesis, target(b"b"));
    assert_eq!(
        node.receive_votes(vec![first.clone()]).unwrap(),
        VotesVerdict::Accepted
    );
    assert_eq!(node.evidence_summary().unwrap().culprits, 0);
    node.receive_votes(vec![second.clone()]).unwrap();
    let expected = crate::journal::evidence::Evidence::ConflictingVotes {
        culprit: culprit.public(),
        votes: Box::new([first, second]),
    };
    assert_eq!(node.store().evidence().unwrap(), vec![expected.clone()]);
    let summary = node.evidence_summary().unwrap();
    assert_eq!((summary.items, summary.culprits), (1, 1));
    let newest = summary.newest.unwrap();
    assert_eq!(newest.evidence, expected);
    assert!(
        newest.found_at.abs_diff(now) < 60,
        "found now, by the node's clock"
    );
    drop(node);
    let node = open();
    assert_eq!(node.store().evidence().unwrap(), vec![expected]);
    assert_eq!(
        node.evidence_summary().unwrap().culprits,
        1,
        "after a restart"
    );
    // A forged vote is invalid for every receiver: its forwarder is to blame.
    let mut forged = Vote::sign(&peers[2].0, "evidence", genesis, target(b"a"));
    forged.target = target(b"c");
    assert_eq!(
        node.receive_votes(vec![forged]).unwrap(),
        VotesVerdict::Invalid
    );
}
