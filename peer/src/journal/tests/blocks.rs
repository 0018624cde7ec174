//! Blocks between replicas: fork choice by weight under the rotation, blocks waiting for an
//! object, a stored block read back, invalid blocks refused with a reason (a forged client signature found by the block's
//! batch check), a heavier fork winning (orphans replayed), the
//! index rebuilt from the newest block.

use super::*;

#[test]
fn fork_choice_weighs_every_block_under_the_rotation_in_force() {
    let (net, world) = (net(), world());
    let (in_turn, in_turn_chain) = net.peer_in_turn(1);
    let (other, other_chain) = net
        .peers
        .iter()
        .find(|(k, _)| k.public() != in_turn.public())
        .unwrap();
    let insert = |i: usize| net.insert(0, world.artefacts[i]);
    // Two competing blocks at height 1: one by the peer in turn, one by another peer.
    let mut a = replica(&net, &world);
    let (in_turn_block, _) = a
        .commit((in_turn, in_turn_chain), vec![insert(0)], ms(NOW))
        .unwrap();
    let mut b = replica(&net, &world);
    let (other_block, _) = b
        .commit((other, other_chain), vec![insert(1)], ms(NOW))
        .unwrap();
    // A peer that held only the other peer in its rotation when both arrived prefers its block.
    let mut r = replica(&net, &world);
    let _ = r.set_schedule(Schedule::new(vec![other.public()])).unwrap();
    r.add_block(&other_block, CLOCK).unwrap().unwrap();
    r.add_block(&in_turn_block, CLOCK).unwrap().unwrap();
    assert_eq!(r.tip().unwrap().0, other_block.cid());
    // Once it holds the network's rotation it weighs both again and agrees with every peer.
    let moved = r.set_schedule(net.schedule()).unwrap().unwrap();
    assert!(matches!(moved, Added::Reorganized { .. }), "{moved:?}");
    assert_eq!(r.tip().unwrap().0, in_turn_block.cid());
}

#[test]
fn a_block_refused_for_a_missing_object_is_taken_once_the_object_arrives() {
    let (net, world) = (net(), world());
    let mut a = replica(&net, &world);
    let mut b = replica(&net, &world);
    let fresh = Object::Artefact(Artefact::named("only at b"));
    let art = b.objects().insert(&fresh);
    let tx = net.insert(0, art);
    let (block, rejected) = commit(&net, &mut b, vec![tx], NOW);
    assert!(rejected.is_empty());
    let refused = a.add_block(&block, CLOCK).unwrap().unwrap_err();
    assert_eq!(refused.missing_object(), Some(art));
    a.objects().insert(&fresh);
    assert_eq!(
        a.add_block(&block, CLOCK).unwrap(),
        Ok(Added::Extended),
        "not remembered as invalid"
    );
}

#[test]
fn a_stored_block_reads_back_as_committed_and_a_stored_object_of_another_kind_does_not() {
    let (net, world) = (net(), world());
    let mut a = replica(&net, &world);
    let block = next_block(&net, &world, &mut a);
    assert_eq!(a.add_block(&block, CLOCK).unwrap(), Ok(Added::Extended));
    let cid = a.index().block_at(1).unwrap().unwrap();
    assert_eq!(cid, block.cid());
    assert_eq!(a.load_block(&cid).unwrap(), block);
    assert_eq!(Block::from_stored(&block.to_bytes()).unwrap(), block);
    let artefact = Object::Artefact(Artefact::named("not a block"));
    let bytes = artefact.encode().unwrap().bytes;
    let refused = Block::from_stored(&bytes).unwrap_err();
    assert!(refused.contains("not a block"), "{refused}");
    assert!(Block::from_bytes(&bytes).is_err());
}

#[test]
fn invalid_blocks_are_rejected_with_a_typed_reason() {
    let (net, world) = (net(), world());
    let mut a = replica(&net, &world);
    let good = next_block(&net, &world, &mut a);
    let (key, chain) = net.peer_in_turn(1);

    let mut bad_sig = good.clone();
    bad_sig.signature[0] ^= 1;
    assert_eq!(
        a.add_block(&bad_sig, CLOCK).unwrap(),
        Err(BlockRejection::BadSignature)
    );
    // A tampered body under the committer's original signature, through the wire format.
    let mut later = good.clone();
    later.timestamp_ms += 1;
    let later = Block::from_bytes(&later.to_bytes()).unwrap();
    assert_eq!(
        a.add_block(&later, CLOCK).unwrap(),
        Err(BlockRejection::BadSignature)
    );

    let mut wrong_parent = good.clone();
    wrong_parent.chain = crate::model::codec::dag_cbor_cid(b"elsewhere");
    resign(&mut wrong_parent, key, chain);
    assert!(matches!(
        a.add_block(&wrong_parent, CLOCK).unwrap(),
        Err(BlockRejection::UnknownParent(_))
    ));

    let mut wrong_entries = good.clone();
    wrong_entries.entries.pop();
    resign(&mut wrong_entries, key, chain);
    assert!(matches!(
        a.add_block(&wrong_entries, CLOCK).unwrap(),
        Err(BlockRejection::WrongEntries { .. })
    ));

    let mut dangling = good.clone();
    let ghost = crate::model::codec::dag_cbor_cid(b"ghost");
    let ghost_tx = net.insert(0, ghost);
    dangling.transactions.push(ghost_tx);
    dangling.entries.push(JournalEntry::Insert {
        reference: ghost,
        timestamp: NOW,
    });
    resign(&mut dangling, key, chain);
    assert!(matches!(
        a.add_block(&dangling, CLOCK).unwrap(),
        Err(BlockRejection::Transaction { reason, .. }) if matches!(*reason, TxRejection::UnknownObject(_))
    ));

    let mut no_pow = good.clone();
    no_pow.transactions[0].pow.bits = 0;
    resign(&mut no_pow, key, chain);
    assert!(matches!(
        a.add_block(&no_pow, CLOCK).unwrap(),
        Err(BlockRejection::Transaction { reason, .. }) if matches!(*reason, TxRejection::ProofOfWork(_))
    ));

    let (client_key, client_chain) = &net.clients[0];
    let mut by_client = good.clone();
    resign(&mut by_client, client_key, client_chain);
    assert!(matches!(
        a.add_block(&by_client, CLOCK).unwrap(),
        Err(BlockRejection::Committer(_))
    ));

    // Revoke the committer (from before the block's time): its block is refused.
    let mut rules = net.rules();
    let list = RevocationList::empty(&net.principal, NOW).with(
        &net.principal,
        Revocation {
            subject: key.public(),
            revoked_at: NOW - 10,
            reason: "forked".into(),
        },
        NOW,
    );
    rules.revocations.add(&list).unwrap();
    a.set_rules(rules);
    assert!(matches!(
        a.add_block(&good, CLOCK).unwrap(),
        Err(BlockRejection::Committer(_))
    ));
    a.set_rules(net.rules());
    assert_eq!(a.add_block(&good, CLOCK).unwrap(), Ok(Added::Extended));
}

#[test]
fn a_block_checks_its_signatures_as_one_batch_and_names_a_forged_one() {
    let (net, world) = (net(), world());
    let (mut a, mut b) = (replica(&net, &world), replica(&net, &world));
    let txs: Vec<Transaction> = (0..6)
        .map(|i| {
            let fresh = Object::Artefact(Artefact::named(&format!("batch {i}")));
            a.objects().insert(&fresh);
            net.insert(i % 2, b.objects().insert(&fresh))
        })
        .collect();
    let (good, rejected) = commit(&net, &mut b, txs, NOW);
    assert!(rejected.is_empty());
    let (key, chain) = net.peer_in_turn(1);
    let mut forged = good.clone();
    forged.transactions[2].signature[3] ^= 1;
    resign(&mut forged, key, chain);
    assert!(matches!(
        a.add_block(&forged, CLOCK).unwrap(),
        Err(BlockRejection::Transaction { index: 2, reason, .. }) if *reason == TxRejection::BadSignature
    ));
    // The block's signatures were checked together: every valid one is remembered, also those
    // after the forged one, which a check one by one stopping there would not have reached.
    assert_eq!(
        a.cache().preverify_signatures(&forged.transactions, BITS),
        1
    );
    assert_eq!(a.add_block(&good, CLOCK).unwrap(), Ok(Added::Extended));
}

#[test]
fn a_heavier_fork_wins_and_orphans_come_back_for_replay() {
    let (net, world) = (net(), world());
    let mut a = replica(&net, &world);
    let mut b = replica(&net, &world);
    let art = world.artefacts[0];
    // Island A: one out-of-turn block. Island B: two in-turn blocks.
    let ua = update(&[&a, &b], art, nil_cid(), "island a", NOW);
    let out_of_turn = net
        .peers
        .iter()
        .find(|(k, _)| Some(k.public()) != net.schedule().in_turn(1))
        .unwrap();
    let (block_a, _) = a
        .commit(
            (&out_of_turn.0, &out_of_turn.1),
            vec![net.tx(0, vec![ua], NOW)],
            ms(NOW),
        )
        .unwrap();
    let ub = update(&[&a, &b], art, nil_cid(), "island b", NOW + 1);
    let (b1, _) = commit(&net, &mut b, vec![net.tx(1, vec![ub], NOW + 1)], NOW + 1);
    let (b2, _) = commit(
        &net,
        &mut b,
        vec![net.tx(
            1,
            vec![JournalEntry::Insert {
                reference: world.entity,
                timestamp: NOW,
            }],
            NOW + 2,
        )],
        NOW + 2,
    );
    // Heal: A learns B's first block, in turn and so heavier than its own out-of-turn one, and
    // reorganises; its transaction is an orphan.
    let Added::Reorganized {
        old_tip,
        ancestor,
        orphans,
    } = a.add_block(&b1, CLOCK).unwrap().unwrap()
    else {
        panic!("expected a reorganisation")
    };
    assert_eq!(a.add_block(&b2, CLOCK).unwrap(), Ok(Added::Extended));
    assert_eq!(old_tip, block_a.cid());
    assert_eq!(
        ancestor,
        block_a.height - 1,
        "the blocks above the fork changed"
    );
    assert_eq!(orphans.len(), 1);
    assert_eq!(a.tip().unwrap(), b.tip().unwrap());
    assert_eq!(a.index().heads(), b.index().heads());
    // B learns A's lighter block: nothing changes.
    assert_eq!(b.add_block(&block_a, CLOCK).unwrap(), Ok(Added::SideBranch));
    assert_eq!(b.side_transactions().unwrap(), orphans);
    // The orphan is replayed on top of the winner: merged, nothing lost.
    let (heal, rejected) = commit(&net, &mut a, orphans, NOW + 3);
    assert!(rejected.is_empty());
    assert_eq!(heal.entries[0].type_name(), "chainMerge");
    assert_eq!(b.add_block(&heal, CLOCK).unwrap(), Ok(Added::Extended));
    let (JournalEntry::Update { chain: ca, .. }, JournalEntry::Update { chain: cb, .. }) = (ua, ub)
    else {
        unreachable!()
    };
    for r in [&a, &b] {
        let reach = reachable(r, &art);
        assert!(reach.contains(&ca) && reach.contains(&cb));
    }
}

#[test]
fn the_index_rebuilds_from_the_newest_block_alone() {
    let (net, world) = (net(), world());
    let mut a = replica(&net, &world);
    for i in 0..5u64 {
        let art = world.artefacts[(i % 3) as usize];
        let head = a.index().head(&art).unwrap().unwrap();
        let up = update(&[&a], art, head, &format!("v{i}"), NOW + i);
        commit(
            &net,
            &mut a,
            vec![net.tx((i % 2) as usize, vec![up], NOW + i)],
            NOW + i,
        );
    }
    let (tip, height) = a.tip().unwrap();
    let mut fresh = MemIndex::new();
    let mut reports = vec![];
    let done = rebuild::rebuild(&mut fresh, a.objects(), tip, |p| reports.push(*p)).unwrap();
    assert_eq!(done.blocks, height + 1);
    assert_eq!(reports.len() as u64, height + 1);
    assert_eq!(fresh.heads(), a.index().heads());
    assert_eq!(fresh.tip().unwrap(), Some((tip, height)));
}
