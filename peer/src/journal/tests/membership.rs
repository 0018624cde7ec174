//! Membership on the chain through the journal (docs/consensus.md, "Members and seats"): a
//! revocation recorded in a block refuses the revoked client's transactions and the revoked
//! peer's blocks in every block after it (and at admission), a join takes its seat once a block
//! records its block final (the committer's finality certificate, verified by every receiver),
//! and a reopened journal computes the same seats and weights.

use std::time::Duration;

use super::*;
use crate::journal::certificate::CertificateRejection;
use crate::journal::membership::{Membership, Record};
use crate::journal::timing::CommitTiming;
use crate::journal::vote::Vote;
use crate::network::NetworkParams;
use crate::trust::{CertError, PublicKey};

/// The parameters of `net`: its three peers the initial members, epochs of `epoch` blocks.
fn params(net: &Net, epoch: u64) -> NetworkParams {
    let chains = net.peers.iter().map(|(_, c)| c.clone()).collect();
    let mut params = NetworkParams::new(NETWORK, net.root.public(), chains);
    params.consensus.epoch_length = epoch;
    params
}

fn member_rules(net: &Net) -> Rules {
    let mut rules = net.rules();
    rules.timing = Some(CommitTiming {
        commit_timeout: Duration::from_secs(5),
        commit_backoff: Duration::from_secs(1),
    });
    rules
}

/// A replica whose membership is a function of its chain, finality on.
fn member_replica(net: &Net, world: &World, epoch: u64) -> Replica {
    let mut r = open_member_replica(net, world, epoch);
    let seats = r.schedule().peers().to_vec();
    r.enable_finality(epoch, &seats);
    r
}

fn open_member_replica(net: &Net, world: &World, epoch: u64) -> Replica {
    let objects = MemObjects::new();
    for o in &world.objects {
        objects.insert(o);
    }
    let initial = Membership::initial(&params(net, epoch));
    Journal::open_with_membership(
        member_rules(net),
        initial,
        MemIndex::new(),
        objects,
        &world.genesis,
    )
    .unwrap()
}

/// The key and chain of `key` among the fleet's peers.
fn peer_of(net: &Net, key: PublicKey) -> (&SecretKey, &Chain) {
    let (k, c) = net.peers.iter().find(|(k, _)| k.public() == key).unwrap();
    (k, c)
}

/// The next block of `r`, by its in-turn committer, carrying `records`, one second after
/// `at` (seconds); returns it (already on `r`).
fn next_block(net: &Net, r: &mut Replica, records: Vec<Record>, at: u64) -> Block {
    let (_, height) = r.tip().unwrap();
    let committer = r.schedule().in_turn(height + 1).unwrap();
    let (block, _) = r
        .commit_with_records(peer_of(net, committer), vec![], records, ms(at))
        .unwrap();
    block
}

/// Every seat of the checkpoint `r`'s tip reached votes for it, as honest members do; `last`:
/// the previous link voted.
fn vote_all<I: Index, O: Objects>(net: &Net, r: &mut Journal<I, O>, last: &mut Option<Vote>) {
    let Some((source, target)) = r.choose_vote(last.as_ref()).unwrap() else {
        return;
    };
    for key in r.seats_of(&target.cid).unwrap().peers().to_vec() {
        let vote = Vote::sign(peer_of(net, key).0, NETWORK, source, target);
        r.add_vote(vote.clone()).unwrap();
        *last = Some(vote);
    }
}

fn revocation(issuer: &SecretKey, subject: PublicKey) -> Record {
    let list = RevocationList::empty(issuer, NOW).with(
        issuer,
        Revocation {
            subject,
            revoked_at: NOW + 1,
            reason: "test".into(),
        },
        NOW + 1,
    );
    Record::Revoke(list)
}

#[test]
fn a_revoked_client_is_refused_in_every_block_after_the_revocation_and_at_admission() {
    let (net, world) = (net(), world());
    let mut a = member_replica(&net, &world, 4);
    let mut r = member_replica(&net, &world, 4);
    let insert = JournalEntry::Insert {
        reference: world.entity,
        timestamp: NOW,
    };
    // Backdated before the revocation: still refused.
    let tx = net.tx(0, vec![insert], NOW);
    assert_eq!(r.admit(&tx, NOW + 2).unwrap(), Ok(()), "admitted before");
    let client = net.clients[0].0.public();
    // Client 0 was registered by peer 0, which revokes it.
    let b1 = next_block(
        &net,
        &mut a,
        vec![revocation(&net.peers[0].0, client)],
        NOW + 2,
    );
    assert_eq!(b1.records.len(), 1);
    assert_eq!(r.add_block(&b1, CLOCK).unwrap(), Ok(Added::Extended));
    let refused = r.admit(&tx, NOW + 3).unwrap();
    assert!(
        matches!(&refused, Err(TxRejection::Certificate(CertError::Revoked { subject, .. })) if *subject == client),
        "{refused:?}"
    );
    // A committer leaves it out.
    let (_, height) = a.tip().unwrap();
    let committer = a.schedule().in_turn(height + 1).unwrap();
    let (b2, rejected) = a
        .commit(peer_of(&net, committer), vec![tx.clone()], ms(NOW + 3))
        .unwrap();
    assert!(b2.transactions.is_empty());
    assert!(matches!(rejected.as_slice(), [(id, TxRejection::Certificate(_))] if *id == tx.id()));
    // A block that carries it anyway is refused.
    let forced = Block::commit(
        (b1.cid(), 1),
        NETWORK,
        ms(NOW + 3),
        peer_of(&net, committer),
        vec![tx.clone()],
        vec![],
    );
    let outcome = r.add_block(&forced, CLOCK).unwrap();
    assert!(
        matches!(&outcome, Err(BlockRejection::Transaction { reason, .. }) if matches!(**reason, TxRejection::Certificate(CertError::Revoked { .. }))),
        "{outcome:?}"
    );
}

#[test]
fn a_revoked_peer_s_blocks_are_refused_after_the_revocation_height() {
    let (net, world) = (net(), world());
    let mut a = member_replica(&net, &world, 4);
    let mut r = member_replica(&net, &world, 4);
    let schedule = a.schedule();
    let first = schedule.in_turn(1).unwrap();
    let victim = *schedule.peers().iter().find(|k| **k != first).unwrap();
    let b1 = next_block(&net, &mut a, vec![revocation(&net.root, victim)], NOW + 2);
    r.add_block(&b1, CLOCK).unwrap().unwrap();
    // Out of turn (or in turn) at height 2, after any back-off: its certificate is revoked.
    let late = Block::commit(
        (b1.cid(), 1),
        NETWORK,
        ms(NOW + 60),
        peer_of(&net, victim),
        vec![],
        vec![],
    );
    let outcome = r.add_block(&late, CLOCK).unwrap();
    assert!(
        matches!(outcome, Err(BlockRejection::Committer(CertError::Revoked { subject, .. })) if subject == victim),
        "{outcome:?}"
    );
    // Its block at height 1, beside the revocation's, was before it: taken (a side branch).
    let before = Block::commit(
        (r.genesis(), 0),
        NETWORK,
        ms(NOW + 60),
        peer_of(&net, victim),
        vec![],
        vec![],
    );
    assert!(r.add_block(&before, CLOCK).unwrap().is_ok());
}

#[test]
fn a_joining_peer_commits_from_its_activation_height_and_a_reopened_journal_agrees() {
    let (net, world) = (net(), world());
    let mut a = member_replica(&net, &world, 2);
    // A peer of a second principal (the first holds its three seats).
    let principal = SecretKey::generate();
    let l0 = certify(&net.root, None, &principal, Level::Principal);
    let joiner = SecretKey::generate();
    let chain = certify(&principal, Some(&l0), &joiner, Level::Peer);
    let join = Record::join(&joiner, &chain, NETWORK);
    let b1 = next_block(&net, &mut a, vec![join.clone()], NOW + 1);
    assert_eq!(b1.records, vec![join.clone()]);
    // Votes justify checkpoint 2 (at tip 2), then make it final (at tip 4); block 5 carries the
    // certificate, so the join's seat counts from ceil(5 / 2) x 2 + 2 + 1 = 9.
    let mut blocks = vec![b1];
    let mut last = None;
    for i in 2..9u64 {
        assert!(
            !a.schedule().peers().contains(&joiner.public()),
            "seated at {i}"
        );
        vote_all(&net, &mut a, &mut last);
        blocks.push(next_block(&net, &mut a, vec![], NOW + i));
    }
    let carrying: Vec<u64> = blocks
        .iter()
        .filter(|b| !b.finality.is_empty())
        .map(|b| b.height)
        .collect();
    assert_eq!(carrying, vec![5, 7], "each block after finality advanced");
    assert_eq!(blocks[4].finality[0].source.height, 2);
    let seats = a.schedule();
    assert!(seats.peers().contains(&joiner.public()), "seated at 9");
    assert_eq!(seats.peers().len(), 4);
    // Its block at height 9, if in turn, is taken by a replica that replays the chain; a block
    // of it before its activation is not.
    let mut r = member_replica(&net, &world, 2);
    for b in &blocks {
        assert!(r.add_block(b, CLOCK).unwrap().is_ok());
    }
    let early = Block::commit(
        (blocks[6].cid(), 7),
        NETWORK,
        ms(NOW + 60),
        (&joiner, &chain),
        vec![],
        vec![],
    );
    let outcome = r.add_block(&early, CLOCK).unwrap();
    assert!(
        matches!(outcome, Err(BlockRejection::NotAMember { committer, height: 8 }) if committer == joiner.public()),
        "{outcome:?}"
    );
    let tip = blocks.last().unwrap();
    let rank = seats.rank(9, &joiner.public()).unwrap();
    let at = tip.timestamp_ms
        + CommitTiming {
            commit_timeout: Duration::from_secs(5),
            commit_backoff: Duration::from_secs(1),
        }
        .min_gap_ms(rank);
    let own = Block::commit(
        (tip.cid(), 8),
        NETWORK,
        at,
        (&joiner, &chain),
        vec![],
        vec![],
    );
    assert_eq!(r.add_block(&own, CLOCK).unwrap(), Ok(Added::Extended));
    assert_eq!(r.seats_of(&own.cid()), Some(seats));
    // The receiver learnt finality from the certificates the blocks carried (no vote sent).
    r.recount().unwrap();
    assert_eq!(r.finalized().map(|c| c.height), Some(4));
}

#[test]
fn a_forged_or_stale_finality_certificate_refuses_its_block() {
    let (net, world) = (net(), world());
    let mut a = member_replica(&net, &world, 2);
    let mut last = None;
    let mut blocks = vec![];
    for i in 1..6u64 {
        vote_all(&net, &mut a, &mut last);
        blocks.push(next_block(&net, &mut a, vec![], NOW + i));
    }
    let carrier = blocks[4].clone();
    assert_eq!(carrier.height, 5);
    assert!(!carrier.finality.is_empty());
    let mut r = member_replica(&net, &world, 2);
    for b in &blocks[..4] {
        assert!(r.add_block(b, CLOCK).unwrap().is_ok());
    }
    let committer = carrier.committer_key().unwrap();
    let (key, chain) = peer_of(&net, committer);
    let resigned = |finality: Vec<Vote>| {
        let mut block = carrier.clone();
        block.finality = finality;
        super::resign(&mut block, key, chain);
        block
    };
    let mut forged = carrier.finality.clone();
    let voter = forged[1].voter;
    forged[1].signature = forged[0].signature.clone();
    let outcome = r.add_block(&resigned(forged), CLOCK).unwrap();
    assert_eq!(
        outcome,
        Err(BlockRejection::Finality(
            CertificateRejection::BadSignature(voter)
        ))
    );
    let too_few = carrier.finality[..1].to_vec();
    let outcome = r.add_block(&resigned(too_few), CLOCK).unwrap();
    assert_eq!(
        outcome,
        Err(BlockRejection::Finality(CertificateRejection::TooFew))
    );
    assert_eq!(r.add_block(&carrier, CLOCK).unwrap(), Ok(Added::Extended));
    // The same certificate again on the next block: stale.
    let (_, height) = a.tip().unwrap();
    let next = Block::commit_with_records(
        (carrier.cid(), height),
        NETWORK,
        carrier.timestamp_ms + 10_000,
        peer_of(&net, a.schedule().in_turn(height + 1).unwrap()),
        (vec![], carrier.finality.clone()),
        vec![],
        vec![],
    );
    let outcome = r.add_block(&next, CLOCK).unwrap();
    assert!(
        matches!(
            outcome,
            Err(BlockRejection::Finality(CertificateRejection::Stale { .. }))
        ),
        "{outcome:?}"
    );
    assert!(crate::node::overlay::policy::blame::block_blame(
        &outcome.unwrap_err()
    ));
}

#[cfg(feature = "store")]
#[test]
fn a_reopened_journal_computes_the_same_membership_seats_and_weights() {
    use crate::store::{SledIndex, Store};
    let dir = tempfile::tempdir().unwrap();
    let (net, world) = (net(), world());
    let open = || -> Journal<SledIndex, Store> {
        let store = Store::open(dir.path(), 1 << 20).unwrap();
        for o in &world.objects {
            store.put_object(o).unwrap();
        }
        let index = store.index().unwrap();
        let initial = Membership::initial(&params(&net, 1));
        let mut j = Journal::open_with_membership(
            member_rules(&net),
            initial,
            index,
            store,
            &world.genesis,
        )
        .unwrap();
        let seats = j.schedule().peers().to_vec();
        j.enable_finality(1, &seats);
        j
    };
    let before = {
        let mut j = open();
        // The root revokes the member in turn at height 1 (in that very block, which stays
        // valid). Votes make checkpoint 1 final at tip 2, block 3 records it: its seat goes at
        // 3 + 1 + 1 = 5. At its turn before (4) the next seat commits out of turn.
        let victim = j.schedule().in_turn(1).unwrap();
        let record = revocation(&net.root, victim);
        let (b1, _) = {
            let (_, height) = j.tip().unwrap();
            let committer = j.schedule().in_turn(height + 1).unwrap();
            j.commit_with_records(peer_of(&net, committer), vec![], vec![record], ms(NOW + 2))
                .unwrap()
        };
        assert_eq!(b1.records.len(), 1);
        let mut last = None;
        for i in 2..6u64 {
            vote_all(&net, &mut j, &mut last);
            let (_, height) = j.tip().unwrap();
            let seats = j.schedule();
            let committer = (0..3)
                .filter_map(|r| seats.in_turn(height + 1 + r))
                .find(|k| *k != victim)
                .unwrap();
            j.commit(peer_of(&net, committer), vec![], ms(NOW + 10 * i))
                .unwrap();
        }
        assert!(!j.schedule().peers().contains(&victim));
        (
            j.tip().unwrap(),
            j.schedule(),
            j.tip_score(),
            j.membership().unwrap().members(),
        )
    };
    let j = open();
    let after = (
        j.tip().unwrap(),
        j.schedule(),
        j.tip_score(),
        j.membership().unwrap().members(),
    );
    assert_eq!(after, before);
    let (_, victim_chain) = net
        .peers
        .iter()
        .find(|(k, _)| !after.1.peers().contains(&k.public()))
        .unwrap();
    assert!(j.revoked_after(&after.0 .0, &victim_chain.0));
}
