//! The event stream through a reorganisation, over real HTTP: a branch of another peer
//! replaces two blocks the stream already sent; the stream sends every replaced height again
//! (the new blocks), then the block committing the orphaned transactions again.

use std::collections::BTreeMap;

use mediachain::journal::Block;
use mediachain::node::BlockBundle;
use mediachain::trust::Certificate;

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_stream_resends_every_height_a_reorganisation_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let peer = peer(&dir).await;
    let client = Client::new(&peer.url).unwrap();
    let (key, chain) = registered(&client).await;
    let bits = client.info().await.unwrap().transaction_pow_bits;
    let mut ours = vec![];
    for name in ["one", "two"] {
        let (entity, artefact, cell) = write_work(&client, name).await;
        let from = client.head().await.unwrap().height + 1;
        let entries = work_entries(entity, artefact, cell, time::now());
        let tx = Transaction::create(&key, &chain, entries, time::now(), bits).unwrap();
        client.submit(&tx).await.unwrap();
        support::wait::within("a confirmation", client.await_confirmation(&tx.id(), from))
            .await
            .unwrap();
        ours.push(tx.id());
    }
    let mut events = client.events(Some(0), &[], &[]).await.unwrap();
    let mut sent = BTreeMap::new();
    for _ in 0..3 {
        let block = support::wait::within("a block event", events.next())
            .await
            .unwrap()
            .unwrap();
        sent.insert(block.height, block.cid);
    }
    assert_eq!(sent.keys().copied().collect::<Vec<_>>(), vec![0, 1, 2]);

    // Another peer of the principal: four empty blocks on genesis outweigh our two (4 x 1 at
    // height 4 against 2 x 2 at height 2, the longer chain winning the tie).
    let other = SecretKey::generate();
    let now = time::now();
    let cert = Certificate::issue(
        &peer.principal.0,
        other.public(),
        Level::Peer,
        now - 600,
        now + 600,
    );
    let other_chain = Chain::extend(cert, &peer.principal.1);
    let info = client.info().await.unwrap();
    let mut parent = (info.genesis.parse().unwrap(), 0);
    let start = time::now_ms() - 30_000;
    let mut branch = BTreeMap::new();
    for i in 0..4 {
        let block = Block::commit(
            parent,
            &info.network,
            start + i * 1000,
            (&other, &other_chain),
            vec![],
            vec![],
        );
        parent = (block.cid(), block.height);
        branch.insert(block.height, block.cid().to_string());
        let bundle = BlockBundle {
            block: block.to_bytes(),
            objects: vec![],
        };
        assert!(peer.node.receive_block(&bundle).unwrap().outcome.is_ok());
    }

    // Every replaced height comes again with the branch's block, then the orphans' block.
    let mut after = BTreeMap::new();
    while after.len() < 5 {
        let block = support::wait::within("an event after the reorganisation", events.next())
            .await
            .unwrap()
            .unwrap();
        after.insert(block.height, block);
    }
    for height in 1..=4 {
        assert_eq!(after[&height].cid, branch[&height], "height {height}");
    }
    assert_ne!(after[&1].cid, sent[&1]);
    assert_ne!(after[&2].cid, sent[&2]);
    let replayed: Vec<String> = ours.iter().map(ToString::to_string).collect();
    assert_eq!(
        after[&5].transactions, replayed,
        "the orphans committed again"
    );
}
