//! What a block request is answered with (real sled files): the block with the objects its
//! transactions reference for a peer that asks for them, the block alone for one in sync.

use serde_bytes::ByteBuf;

use super::orphans_tests::{commit, insert, net, open};
use crate::model::JournalEntry;

#[test]
fn a_block_comes_with_its_objects_or_alone_as_asked_and_an_unknown_block_not_at_all() {
    let net = net();
    let dir = tempfile::tempdir().unwrap();
    let node = open(&net, dir.path());
    let tx = insert(&net, &node, "work");
    node.submit(tx.clone()).unwrap().unwrap();
    let block = commit(&node);
    let JournalEntry::Insert { reference, .. } = tx.body.entries[0] else {
        panic!("an insert");
    };
    let cid = block.cid();

    let full = node.block_bundle(&cid, true).unwrap().unwrap();
    assert_eq!(full.block, block.to_bytes());
    let artefact = node.store().get(&reference).unwrap().unwrap();
    assert_eq!(full.objects, vec![(reference, ByteBuf::from(artefact))]);

    let lean = node.block_bundle(&cid, false).unwrap().unwrap();
    assert_eq!(lean.block, block.to_bytes());
    assert!(lean.objects.is_empty());

    let unknown = crate::model::codec::dag_cbor_cid(b"no such block");
    assert!(node.block_bundle(&unknown, false).unwrap().is_none());
    assert!(node.block_bundle(&unknown, true).unwrap().is_none());
}
