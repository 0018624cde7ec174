//! Nothing lost on reorganisation (real sled files): a transaction a reorganisation orphans
//! stays pending though the mempool is full, survives a restart between the orphaning and its
//! new commit, and leaves the store once committed again.

use std::time::Duration;

use super::*;
use crate::journal::{Block, Transaction};
use crate::model::{Artefact, JournalEntry, Object};
use crate::trust::tower::Tower;

const NETWORK: &str = "orphans";

/// A root, a principal, this node's peer, another peer of the principal and a client of ours.
pub(super) struct Net {
    root: SecretKey,
    me: (SecretKey, Chain),
    other: (SecretKey, Chain),
    client: (SecretKey, Chain),
}

pub(super) fn net() -> Net {
    // Certified from ten minutes back: the competing branch's blocks are stamped a minute ago.
    let since = crate::time::now() - 600;
    let tower = Tower::at(since);
    let other = tower.another_peer(since);
    Net {
        root: tower.root,
        me: (tower.peer, tower.peer_chain),
        other,
        client: (tower.client, tower.client_chain),
    }
}

/// This node (no network parameters: the rotation is itself), its mempool holding one.
pub(super) fn open(net: &Net, dir: &std::path::Path) -> Arc<Node> {
    let params = NodeParams {
        network: NETWORK.into(),
        block_interval: Duration::from_millis(20),
        commit_timeout: Duration::from_secs(5),
        registration_pow_bits: 0,
        transaction_pow_bits: 0,
        client_cert_validity: 3600,
        mempool_capacity: 1,
        mempool_bytes: usize::MAX,
        network_params: None,
    };
    let store = Store::open(dir, 1 << 20).unwrap();
    let rules = Rules::new(NETWORK, net.root.public(), 0);
    Node::open(params, net.me.0.clone(), net.me.1.clone(), rules, store).unwrap()
}

/// A transaction of our client inserting a new artefact (stored at `node`).
pub(super) fn insert(net: &Net, node: &Node, name: &str) -> Transaction {
    let cid = node
        .store()
        .put_object(&Object::Artefact(Artefact::named(name)))
        .unwrap();
    let now = crate::time::now();
    let entries = vec![JournalEntry::Insert {
        reference: cid,
        timestamp: now,
    }];
    Transaction::create(&net.client.0, &net.client.1, entries, now, 0).unwrap()
}

pub(super) fn commit(node: &Node) -> Arc<Block> {
    for _ in 0..200 {
        if let Some(block) = node.try_commit().unwrap() {
            return block;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("no block within 2 s");
}

#[test]
fn an_orphan_survives_a_full_mempool_and_a_restart_until_committed_again() {
    let net = net();
    let dir = tempfile::tempdir().unwrap();
    let orphan = {
        let node = open(&net, dir.path());
        let orphan = insert(&net, &node, "orphaned");
        node.submit(orphan.clone()).unwrap().unwrap();
        let ours = commit(&node);
        assert_eq!(ours.transactions, vec![orphan.clone()]);
        // The pool is full again.
        let waiting = insert(&net, &node, "waiting");
        node.submit(waiting).unwrap().unwrap();
        let filler = insert(&net, &node, "refused");
        assert_eq!(node.submit(filler).unwrap().err(), Some(TxRejection::Busy));
        // Another peer's branch on genesis outweighs ours (3 x 1 > 2): our block is abandoned.
        let genesis = node.genesis();
        let start = crate::time::now_ms() - 60_000;
        let mut parent = (genesis, 0);
        for i in 0..3 {
            let block = Block::commit(
                parent,
                NETWORK,
                start + i * 1000,
                (&net.other.0, &net.other.1),
                vec![],
                vec![],
            );
            parent = (block.cid(), block.height);
            let bundle = BlockBundle {
                block: block.to_bytes(),
                objects: vec![],
            };
            assert!(node.receive_block(&bundle).unwrap().outcome.is_ok());
        }
        assert_eq!(node.tip().unwrap(), parent, "reorganised");
        assert_eq!(node.tx_status(&orphan.id()).unwrap(), TxStatus::Pending);
        assert_eq!(node.pending(), 2, "kept beside the full pool's transaction");
        orphan
    };
    // Restarted before it was committed again: pending still, from the store.
    let node = open(&net, dir.path());
    assert_eq!(node.tx_status(&orphan.id()).unwrap(), TxStatus::Pending);
    assert_eq!(node.store().orphans().unwrap(), vec![orphan.clone()]);
    let again = commit(&node);
    assert!(again.transactions.contains(&orphan), "{again:?}");
    assert!(matches!(
        node.tx_status(&orphan.id()).unwrap(),
        TxStatus::Committed { height: 4, .. }
    ));
    assert!(
        node.store().orphans().unwrap().is_empty(),
        "committed: forgotten"
    );
    drop(node);
    let node = open(&net, dir.path());
    assert_eq!(node.pending(), 0, "nothing comes back after the commit");
}
