//! The block rules that cost an adversary real time (docs/consensus.md, "Block rules"): seats,
//! back-off, clock skew, certificates at the block's time, the transaction window.

use std::time::Duration;

use super::*;
use crate::journal::timing::CommitTiming;

const TIMING: CommitTiming = CommitTiming {
    commit_timeout: Duration::from_secs(5),
    commit_backoff: Duration::from_secs(1),
};

/// A replica enforcing the network's commit timing, seats = `seats`.
fn seated(net: &Net, world: &World, seats: Vec<crate::trust::PublicKey>) -> Replica {
    let objects = MemObjects::new();
    for o in &world.objects {
        objects.insert(o);
    }
    let mut rules = net.rules();
    rules.timing = Some(TIMING);
    Journal::open(
        rules,
        Schedule::new(seats),
        MemIndex::new(),
        objects,
        &world.genesis,
    )
    .unwrap()
}

/// An empty block on `parent` (CID, height, timestamp ms) by `peer`, at `timestamp_ms`.
fn block_on(parent: (Cid, u64), peer: (&SecretKey, &Chain), timestamp_ms: u64) -> Block {
    Block::commit(parent, NETWORK, timestamp_ms, peer, vec![], vec![])
}

/// The peer at `rank` from the in-turn slot at `height`.
fn peer_at_rank(net: &Net, height: u64, rank: u64) -> (&SecretKey, &Chain) {
    let schedule = net.schedule();
    let (k, c) = net
        .peers
        .iter()
        .find(|(k, _)| schedule.rank(height, &k.public()) == Some(rank))
        .unwrap();
    (k, c)
}

fn seats(net: &Net) -> Vec<crate::trust::PublicKey> {
    net.peers.iter().map(|(k, _)| k.public()).collect()
}

#[test]
fn a_certified_peer_without_a_seat_cannot_commit() {
    let (net, world) = (net(), world());
    let in_turn = peer_at_rank(&net, 1, 0).0.public();
    let mut r = seated(&net, &world, vec![in_turn]);
    let genesis = (r.genesis(), 0);
    let outsider = peer_at_rank(&net, 1, 1);
    let refused = r
        .add_block(&block_on(genesis, outsider, ms(NOW)), CLOCK)
        .unwrap();
    assert!(
        matches!(refused, Err(BlockRejection::NotAMember { committer, height: 1 }) if committer == outsider.0.public()),
        "{refused:?}"
    );
    let member = peer_at_rank(&net, 1, 0);
    let taken = r
        .add_block(&block_on(genesis, member, ms(NOW)), CLOCK)
        .unwrap();
    assert_eq!(taken, Ok(Added::Extended));
}

#[test]
fn an_out_of_turn_block_waits_for_its_back_off_after_its_parent() {
    let (net, world) = (net(), world());
    let mut r = seated(&net, &world, seats(&net));
    let start = ms(NOW);
    let first = block_on((r.genesis(), 0), peer_at_rank(&net, 1, 0), start);
    r.add_block(&first, CLOCK).unwrap().unwrap();
    let parent = (first.cid(), 1);
    // Rank 2 at height 2: 5 s timeout + 2 x 1 s back-off after the parent.
    let late = peer_at_rank(&net, 2, 2);
    let early = block_on(parent, late, start + 6_999);
    assert_eq!(
        r.add_block(&early, CLOCK).unwrap(),
        Err(BlockRejection::TooEarly {
            rank: 2,
            timestamp_ms: start + 6_999,
            earliest_ms: start + 7_000
        })
    );
    assert_eq!(
        r.earliest_commit(&late.0.public()).unwrap(),
        Some(start + 7_000)
    );
    let on_time = block_on(parent, late, start + 7_000);
    assert_eq!(r.add_block(&on_time, CLOCK).unwrap(), Ok(Added::Extended));
    // In turn, a block only has to move time forward.
    let in_turn = peer_at_rank(&net, 3, 0);
    let next = block_on((on_time.cid(), 2), in_turn, start + 7_001);
    assert_eq!(r.add_block(&next, CLOCK).unwrap(), Ok(Added::Extended));
}

#[test]
fn time_moves_forward_block_by_block() {
    let (net, world) = (net(), world());
    let mut r = replica(&net, &world);
    let first = block_on((r.genesis(), 0), peer_at_rank(&net, 1, 0), ms(NOW));
    r.add_block(&first, CLOCK).unwrap().unwrap();
    let same_time = block_on((first.cid(), 1), peer_at_rank(&net, 2, 0), ms(NOW));
    assert!(matches!(
        r.add_block(&same_time, CLOCK).unwrap(),
        Err(BlockRejection::TimeTravel { .. })
    ));
    // The committer's own clock behind its parent's: the block is stamped just after it.
    let (block, _) = r
        .commit(peer_at_rank(&net, 2, 0), vec![], ms(NOW) - 5)
        .unwrap();
    assert_eq!(block.timestamp_ms, ms(NOW) + 1);
}

#[test]
fn a_block_from_the_future_waits_for_the_receivers_clock() {
    let (net, world) = (net(), world());
    let mut r = replica(&net, &world);
    let clock = ms(NOW);
    let ahead = block_on((r.genesis(), 0), peer_at_rank(&net, 1, 0), clock + 15_001);
    assert_eq!(
        r.add_block(&ahead, clock).unwrap(),
        Err(BlockRejection::FromTheFuture {
            timestamp_ms: clock + 15_001,
            now_ms: clock
        })
    );
    assert!(!r.knows(&ahead.cid()));
    // Not marked invalid: once the receiver's clock is there, it is taken.
    assert_eq!(r.add_block(&ahead, clock + 1).unwrap(), Ok(Added::Extended));
}

/// The attack of issue 14: one member of three forks below the honest tip and mints
/// out-of-turn blocks as fast as it can to outweigh the honest chain and revert it. Blocks
/// timestamped early are refused; timestamped honestly they are spaced by the back-off and soon
/// run into the skew bound, so the branch stays lighter than the honest blocks it would revert.
#[test]
fn a_minority_member_cannot_outweigh_the_honest_chain_in_no_time() {
    let (net, world) = (net(), world());
    let mut r = seated(&net, &world, seats(&net));
    let t0 = ms(NOW);
    let mut honest = vec![];
    let mut parent = (r.genesis(), 0u64);
    for height in 1..=10u64 {
        let block = block_on(parent, peer_at_rank(&net, height, 0), t0 + height * 1_000);
        r.add_block(&block, t0 + height * 1_000).unwrap().unwrap();
        parent = (block.cid(), height);
        honest.push(block);
    }
    let honest_tip = r.tip().unwrap();
    let clock = t0 + 10_010;
    let adversary = &net.peers[0];
    let fork = &honest[0];
    let mut parent = (fork.cid(), 1u64, fork.timestamp_ms);
    let (mut taken, mut weight) = (0, 0);
    loop {
        let height = parent.1 + 1;
        let rank = net.schedule().rank(height, &adversary.0.public()).unwrap();
        let at = parent.2 + TIMING.min_gap_ms(rank);
        let mine = (&adversary.0, &adversary.1);
        if rank > 0 {
            let hasty = block_on((parent.0, parent.1), mine, parent.2 + 1);
            assert!(matches!(
                r.add_block(&hasty, clock).unwrap(),
                Err(BlockRejection::TooEarly { .. })
            ));
        }
        let block = block_on((parent.0, parent.1), mine, at);
        match r.add_block(&block, clock).unwrap() {
            Ok(_) => {
                taken += 1;
                weight += if rank == 0 { 2 } else { 1 };
            }
            Err(BlockRejection::FromTheFuture { .. }) => break,
            Err(other) => panic!("{other}"),
        }
        parent = (block.cid(), height, at);
    }
    assert!(
        taken > 0,
        "the adversary's honest blocks are taken as a side branch"
    );
    assert!(
        weight < 18,
        "branch weight {weight} against 9 honest in-turn blocks"
    );
    assert_eq!(r.tip().unwrap(), honest_tip, "the honest chain stays");
}

#[test]
fn a_backdated_transaction_of_a_revoked_client_is_refused() {
    let (net, world) = (net(), world());
    let mut r = replica(&net, &world);
    // The client's issuer revokes it at NOW + 50; the client signs at NOW + 40 and a committer
    // puts it in a block at NOW + 60.
    let (client_key, _) = &net.clients[0];
    let list = RevocationList::empty(&net.peers[0].0, NOW).with(
        &net.peers[0].0,
        Revocation {
            subject: client_key.public(),
            revoked_at: NOW + 50,
            reason: "stolen".into(),
        },
        NOW + 50,
    );
    let mut rules = net.rules();
    rules.revocations.add(&list).unwrap();
    r.set_rules(rules);
    let entry = JournalEntry::Insert {
        reference: world.entity,
        timestamp: NOW + 40,
    };
    let backdated = net.tx(0, vec![entry], NOW + 40);
    let in_turn = peer_at_rank(&net, 1, 0);
    let (block, rejected) = r
        .commit(in_turn, vec![backdated.clone()], ms(NOW + 60))
        .unwrap();
    assert!(block.transactions.is_empty());
    assert!(matches!(
        &rejected[..],
        [(
            _,
            TxRejection::Certificate(crate::trust::CertError::Revoked { .. })
        )]
    ));
    // Before the revocation it is fine.
    let mut before = replica(&net, &world);
    before.set_rules(r.rules().clone());
    let (block, rejected) = before
        .commit(in_turn, vec![backdated], ms(NOW + 45))
        .unwrap();
    assert!(rejected.is_empty(), "{rejected:?}");
    assert_eq!(block.transactions.len(), 1);
}

#[test]
fn a_transaction_outside_the_window_of_its_block_is_refused() {
    let (net, world) = (net(), world());
    let mut r = replica(&net, &world);
    let entry = JournalEntry::Insert {
        reference: world.entity,
        timestamp: NOW,
    };
    let tx = net.tx(0, vec![entry], NOW);
    let in_turn = peer_at_rank(&net, 1, 0);
    let (_, rejected) = r.commit(in_turn, vec![tx.clone()], ms(NOW + 601)).unwrap();
    assert!(matches!(
        &rejected[..],
        [(_, TxRejection::Expired { window: 600, .. })]
    ));
    // A block that carries it anyway is refused by every receiver.
    let stale = Block::commit(
        (r.genesis(), 0),
        NETWORK,
        ms(NOW + 601),
        in_turn,
        vec![tx.clone()],
        vec![],
    );
    let mut receiver = replica(&net, &world);
    assert!(matches!(
        receiver.add_block(&stale, CLOCK).unwrap(),
        Err(BlockRejection::Transaction { reason, .. }) if matches!(*reason, TxRejection::Expired { .. })
    ));
    let mut fresh = replica(&net, &world);
    let (block, rejected) = fresh.commit(in_turn, vec![tx], ms(NOW + 600)).unwrap();
    assert!(rejected.is_empty(), "{rejected:?}");
    assert_eq!(block.transactions.len(), 1);
}

#[test]
fn two_blocks_of_one_committer_on_one_parent_are_kept_as_evidence() {
    let (net, world) = (net(), world());
    let mut r = replica(&net, &world);
    let genesis = (r.genesis(), 0);
    let culprit = peer_at_rank(&net, 1, 0);
    let first = block_on(genesis, culprit, ms(NOW));
    let second = block_on(genesis, culprit, ms(NOW) + 1);
    let third = block_on(genesis, culprit, ms(NOW) + 2);
    r.add_block(&first, CLOCK).unwrap().unwrap();
    assert!(r.evidence().is_empty());
    // Kept (fork choice decides between the two by CID).
    r.add_block(&second, CLOCK).unwrap().unwrap();
    let found = r.evidence().against(&culprit.0.public()).unwrap();
    assert_eq!(found.blocks, [first.cid(), second.cid()]);
    assert_eq!((found.height, found.parent), (1, r.genesis()));
    // Both blocks are stored: the pair is signed proof.
    for cid in found.blocks {
        assert!(r.load_block(&cid).unwrap().signature_valid());
    }
    // One item per culprit.
    r.add_block(&third, CLOCK).unwrap().unwrap();
    assert_eq!(r.evidence().len(), 1);
    // Another committer on the same parent is a fork, not evidence.
    let other = block_on(genesis, peer_at_rank(&net, 1, 1), ms(NOW) + 3);
    r.add_block(&other, CLOCK).unwrap().unwrap();
    assert_eq!(r.evidence().len(), 1);
}

#[test]
fn an_honest_committer_building_again_after_a_reorganisation_is_not_accused() {
    let (net, world) = (net(), world());
    let mut r = replica(&net, &world);
    let genesis = (r.genesis(), 0);
    let me = peer_at_rank(&net, 1, 0);
    let other = peer_at_rank(&net, 1, 1);
    // My block at height 1; a branch of others at 1 and 2; my block at height 2 on theirs.
    let mine = block_on(genesis, me, ms(NOW));
    r.add_block(&mine, CLOCK).unwrap().unwrap();
    let theirs = block_on(genesis, other, ms(NOW) + 1);
    r.add_block(&theirs, CLOCK).unwrap().unwrap();
    let again = block_on((theirs.cid(), 1), me, ms(NOW) + 2);
    r.add_block(&again, CLOCK).unwrap().unwrap();
    assert!(r.evidence().is_empty());
}
