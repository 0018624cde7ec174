//! Admission and merging (docs/design.md's rules): genesis, inserts and updates, what a block
//! may carry, duplicate inserts and conflicting updates merged without loss, replays.

use super::*;

#[test]
fn genesis_is_deterministic_and_inserts_the_bootstrap_dataset() {
    let (net, world) = (net(), world());
    let a = replica(&net, &world);
    let b = replica(&net, &world);
    assert_eq!(a.genesis(), b.genesis());
    assert_eq!(a.tip().unwrap(), (world.genesis.cid(), 0));
    for cid in &world.artefacts {
        assert_eq!(a.index().head(cid).unwrap(), Some(nil_cid()));
    }
}

#[test]
fn insert_then_update_moves_the_head_and_replicas_agree() {
    let (net, world) = (net(), world());
    let mut a = replica(&net, &world);
    let mut b = replica(&net, &world);
    let insert = JournalEntry::Insert {
        reference: world.entity,
        timestamp: NOW,
    };
    let tx1 = net.tx(0, vec![insert], NOW);
    assert_eq!(a.admit(&tx1, NOW).unwrap(), Ok(()));
    let (block1, rejected) = commit(&net, &mut a, vec![tx1], NOW);
    assert!(rejected.is_empty());
    assert_eq!(b.add_block(&block1, CLOCK).unwrap(), Ok(Added::Extended));
    let art = world.artefacts[0];
    let up = update(&[&a, &b], art, nil_cid(), "v1", NOW + 1);
    let JournalEntry::Update { chain, .. } = up else {
        unreachable!()
    };
    let (block2, _) = commit(&net, &mut a, vec![net.tx(1, vec![up], NOW + 1)], NOW + 1);
    assert_eq!(b.add_block(&block2, CLOCK).unwrap(), Ok(Added::Extended));
    assert_eq!(b.index().head(&art).unwrap(), Some(chain));
    assert_eq!(a.index().heads(), b.index().heads());
    assert_eq!(b.index().head(&world.entity).unwrap(), Some(nil_cid()));
    assert_eq!(b.history(&art, 10).unwrap().len(), 1);
}

#[test]
fn admission_applies_the_design_rules_exactly() {
    let (net, world) = (net(), world());
    let mut a = replica(&net, &world);
    let art = world.artefacts[0];
    let dup = net.insert(0, art);
    assert_eq!(
        a.admit(&dup, NOW).unwrap(),
        Err(TxRejection::AlreadyInserted(art))
    );
    let stale = update(&[&a], art, world.artefacts[1], "x", NOW);
    assert!(matches!(
        a.admit(&net.tx(0, vec![stale], NOW), NOW).unwrap(),
        Err(TxRejection::StaleHead(_))
    ));
    let JournalEntry::Update { chain: cell, .. } = stale else {
        unreachable!()
    };
    let lying = JournalEntry::Update {
        reference: art,
        chain: cell,
        chain_previous: nil_cid(),
        timestamp: NOW,
    };
    assert!(matches!(
        a.admit(&net.tx(0, vec![lying], NOW), NOW).unwrap(),
        Err(TxRejection::BadCell(_))
    ));
    let unknown = crate::model::codec::dag_cbor_cid(b"nothing");
    let dangling = net.insert(0, unknown);
    assert_eq!(
        a.admit(&dangling, NOW).unwrap(),
        Err(TxRejection::UnknownObject(unknown))
    );
    let not_inserted = update(&[&a], world.entity, nil_cid(), "x", NOW);
    let not_inserted = net.tx(0, vec![not_inserted], NOW);
    assert!(matches!(
        a.admit(&not_inserted, NOW).unwrap(),
        Err(TxRejection::BadCell(_) | TxRejection::NotInserted(_))
    ));
    // Proof of work below the network's difficulty.
    let (key, chain) = &net.clients[0];
    let mut weak = Transaction::create(
        key,
        chain,
        vec![JournalEntry::Insert {
            reference: world.entity,
            timestamp: NOW,
        }],
        NOW,
        0,
    )
    .unwrap();
    weak.pow.bits = 0;
    assert!(matches!(
        a.admit(&weak, NOW).unwrap(),
        Err(TxRejection::ProofOfWork(_))
    ));
    // A peer's (Level-1) certificate is not a client certificate.
    let (pk, pc) = &net.peers[0];
    let peer_tx = Transaction::create(
        pk,
        pc,
        vec![JournalEntry::Insert {
            reference: world.entity,
            timestamp: NOW,
        }],
        NOW,
        BITS,
    )
    .unwrap();
    assert!(matches!(
        a.admit(&peer_tx, NOW).unwrap(),
        Err(TxRejection::Certificate(_))
    ));
    // A tampered body breaks the signature.
    let mut forged = net.insert(0, world.entity);
    forged.body.timestamp += 1;
    forged.pow =
        crate::trust::pow::solve(crate::trust::Purpose::Transaction, &forged.id().0, BITS).unwrap();
    assert_eq!(
        a.admit(&forged, NOW).unwrap(),
        Err(TxRejection::BadSignature)
    );
}

#[test]
fn duplicate_inserts_collapse_and_conflicting_updates_merge_without_loss() {
    let (net, world) = (net(), world());
    let mut a = replica(&net, &world);
    let art = world.artefacts[0];
    let u1 = update(&[&a], art, nil_cid(), "from client 0", NOW);
    let u2 = update(&[&a], art, nil_cid(), "from client 1", NOW);
    let ins = JournalEntry::Insert {
        reference: world.entity,
        timestamp: NOW,
    };
    let txs = vec![
        net.tx(0, vec![ins, u1], NOW),
        net.tx(1, vec![ins, u2], NOW + 1),
    ];
    let (block, rejected) = commit(&net, &mut a, txs, NOW + 1);
    assert!(rejected.is_empty(), "{rejected:?}");
    let kinds: Vec<_> = block.entries.iter().map(|e| e.type_name()).collect();
    assert_eq!(kinds, vec!["insert", "update", "chainMerge"]);
    let (JournalEntry::Update { chain: c1, .. }, JournalEntry::Update { chain: c2, .. }) = (u1, u2)
    else {
        unreachable!()
    };
    let JournalEntry::ChainMerge {
        chain: link,
        chain_previous,
        chain_merge,
        ..
    } = block.entries[2]
    else {
        unreachable!()
    };
    assert_eq!((chain_previous, chain_merge), (c1, c2));
    assert_eq!(a.index().head(&art).unwrap(), Some(link));
    assert!(matches!(
        a.objects().object(&link),
        Some(Object::Cell(ChainCell {
            kind: CellKind::ArtefactChainLink { .. },
            ..
        }))
    ));
    let reach = reachable(&a, &art);
    assert!(
        reach.contains(&c1) && reach.contains(&c2),
        "both clients' cells stay reachable"
    );
}

#[test]
fn linearizable_updates_chain_and_replays_are_idempotent() {
    let (net, world) = (net(), world());
    let mut a = replica(&net, &world);
    let art = world.artefacts[1];
    let u1 = update(&[&a], art, nil_cid(), "one", NOW);
    let JournalEntry::Update { chain: c1, .. } = u1 else {
        unreachable!()
    };
    let u2 = update(&[&a], art, c1, "two", NOW);
    let t1 = net.tx(0, vec![u1], NOW);
    let t2 = net.tx(1, vec![u2], NOW + 1);
    let (block, _) = commit(&net, &mut a, vec![t1.clone(), t2.clone()], NOW + 1);
    assert_eq!(
        block
            .entries
            .iter()
            .map(|e| e.type_name())
            .collect::<Vec<_>>(),
        vec!["update", "update"]
    );
    // Replaying the same transactions commits nothing new.
    let (again, rejected) = commit(&net, &mut a, vec![t1.clone(), t2.clone()], NOW + 2);
    assert!(again.entries.is_empty());
    assert_eq!(rejected.len(), 2);
    assert!(rejected
        .iter()
        .all(|(_, r)| matches!(r, TxRejection::Duplicate(_))));
    // The same cell in a new transaction is a no-op too.
    let t1b = net.tx(1, vec![u1], NOW + 3);
    let (noop, rejected) = commit(&net, &mut a, vec![t1b], NOW + 3);
    assert!(rejected.is_empty() && noop.entries.is_empty());
    // A block delivered twice is known.
    assert_eq!(a.add_block(&block, CLOCK).unwrap(), Ok(Added::Known));
}

#[test]
fn a_batch_with_one_bad_signature_rejects_exactly_that_one() {
    let (net, world) = (net(), world());
    let rules = net.rules();
    let txs: Vec<Transaction> = (0..12u64)
        .map(|i| {
            let insert = JournalEntry::Insert {
                reference: world.artefacts[0],
                timestamp: NOW - i,
            };
            net.tx(usize::try_from(i % 2).unwrap(), vec![insert], NOW)
        })
        .collect();
    let mut forged = txs.clone();
    forged[7].signature[3] ^= 1;
    let cache = verify::ChainCache::default();
    assert_eq!(cache.preverify_signatures(&forged, BITS), 12);
    for (i, tx) in forged.iter().enumerate() {
        let verdict = verify::check_transaction(tx, &rules, &cache, NOW);
        if i == 7 {
            assert_eq!(verdict, Err(TxRejection::BadSignature));
        } else {
            assert_eq!(verdict, Ok(()), "transaction {i}");
        }
    }
    // The valid ones were remembered: only the forged one is checked again.
    assert_eq!(cache.preverify_signatures(&forged, BITS), 1);
    // A transaction whose proof of work fails is not checked at all.
    let mut lazy = txs[0].clone();
    lazy.body.timestamp += 1;
    let cache = verify::ChainCache::default();
    let checked = cache.preverify_signatures([&lazy], 16);
    assert_eq!(checked, 0);
}
