//! Membership records at a node: a newcomer's join request is taken by a member and put in
//! its next block (after which the newcomer asks no more), a revocation list given at start
//! goes on the chain, a record whose block a reorganisation abandons waits for a block again,
//! and a waiting record survives a restart.

use std::time::Duration;

use super::*;
use crate::journal::membership::Record;
use crate::journal::Block;
use crate::network::NetworkParams;
use crate::trust::tower::Tower;
use crate::trust::{Revocation, RevocationList};

/// A root, one principal, three initial members and a newcomer of the same principal.
struct Org {
    root: SecretKey,
    members: Vec<(SecretKey, Chain)>,
    newcomer: (SecretKey, Chain),
    network: NetworkParams,
}

fn org() -> Org {
    let now = crate::time::now();
    let tower = Tower::at(now);
    let members: Vec<(SecretKey, Chain)> = (0..3).map(|_| tower.another_peer(now)).collect();
    let mut network = NetworkParams::new(
        "joins",
        tower.root.public(),
        members.iter().map(|(_, c)| c.clone()).collect(),
    );
    network.consensus.max_weight_per_principal = 4;
    let newcomer = tower.another_peer(now);
    Org {
        root: tower.root,
        members,
        newcomer,
        network,
    }
}

fn open(org: &Org, peer: &(SecretKey, Chain), rules: Rules, dir: &std::path::Path) -> Arc<Node> {
    let params = NodeParams {
        network: org.network.network.clone(),
        block_interval: Duration::from_millis(50),
        commit_timeout: Duration::from_secs(5),
        registration_pow_bits: 0,
        transaction_pow_bits: 0,
        client_cert_validity: 3600,
        mempool_capacity: 100,
        mempool_bytes: usize::MAX,
        network_params: Some(org.network.clone()),
    };
    let store = Store::open(dir, 1 << 20).unwrap();
    Node::open(params, peer.0.clone(), peer.1.clone(), rules, store).unwrap()
}

/// The member in turn at height 1.
fn first_committer(org: &Org) -> &(SecretKey, Chain) {
    let seats = Schedule::new(org.network.seated_members());
    let key = seats.in_turn(1).unwrap();
    org.members.iter().find(|(k, _)| k.public() == key).unwrap()
}

/// `node`'s next block, waiting (bounded) for its slot.
fn commit(node: &Node) -> Arc<Block> {
    for _ in 0..100 {
        if let Some(block) = node.try_commit().unwrap() {
            return block;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("no block within 2 s");
}

#[test]
fn a_newcomer_s_join_request_goes_into_a_member_s_next_block() {
    let org = org();
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let member = open(&org, first_committer(&org), org.network.rules(), a.path());
    let newcomer = open(&org, &org.newcomer, org.network.rules(), b.path());
    assert_eq!(member.join_request(), None, "an initial member");
    let join = newcomer.join_request().expect("a join request");
    assert_eq!(newcomer.pending_records(), vec![join.clone()]);
    assert_eq!(member.offer_record(join.clone()), Ok(true));
    let block = commit(&member);
    assert_eq!(block.records, vec![join.clone()]);
    assert!(member.pending_records().is_empty(), "taken by the block");
    assert!(
        member.offer_record(join).is_err(),
        "a replayed join is refused"
    );
    let bundle = BlockBundle {
        block: block.to_bytes(),
        objects: vec![],
    };
    assert!(newcomer.receive_block(&bundle).unwrap().outcome.is_ok());
    assert_eq!(newcomer.join_request(), None, "recorded: it asks no more");
}

#[test]
fn a_revocation_list_given_at_start_goes_on_the_chain() {
    let org = org();
    let dir = tempfile::tempdir().unwrap();
    let now = crate::time::now();
    let victim = SecretKey::generate().public();
    let list = RevocationList::empty(&org.root, now).with(
        &org.root,
        Revocation {
            subject: victim,
            revoked_at: now,
            reason: "test".into(),
        },
        now,
    );
    let mut rules = org.network.rules();
    rules.revocations.add(&list).unwrap();
    let member = open(&org, first_committer(&org), rules, dir.path());
    assert_eq!(member.pending_records(), vec![Record::Revoke(list.clone())]);
    let block = commit(&member);
    assert_eq!(block.records, vec![Record::Revoke(list)]);
    let on_chain = member.with_journal(|j| j.membership().unwrap());
    assert!(on_chain.revocations().revokes(&org.root.public(), &victim));
    assert!(member.pending_records().is_empty());
}

#[test]
fn a_record_on_a_branch_a_reorganisation_abandons_is_queued_again() {
    let org = org();
    let dir = tempfile::tempdir().unwrap();
    let first = first_committer(&org);
    let member = open(&org, first, org.network.rules(), dir.path());
    let now = crate::time::now();
    let victim = SecretKey::generate().public();
    let list = RevocationList::empty(&org.root, now).with(
        &org.root,
        Revocation {
            subject: victim,
            revoked_at: now,
            reason: "test".into(),
        },
        now,
    );
    let record = Record::Revoke(list);
    assert_eq!(member.offer_record(record.clone()), Ok(true));
    let own = commit(&member);
    assert_eq!(own.records, vec![record.clone()]);
    assert!(member.pending_records().is_empty(), "taken by its block");
    // Another island's branch without it: an out-of-turn block at 1, then two in turn, heavier.
    let seats = Schedule::new(org.network.seated_members());
    let peer = |key: PublicKey| org.members.iter().find(|(k, _)| k.public() == key).unwrap();
    let other = org
        .members
        .iter()
        .find(|(k, _)| k.public() != first.0.public())
        .unwrap();
    let mut parent = (member.genesis(), 0);
    let start = own.timestamp_ms.saturating_sub(3_000);
    for height in 1..=3u64 {
        let (key, chain) = if height == 1 {
            other
        } else {
            peer(seats.in_turn(height).unwrap())
        };
        let at = start + height * 100;
        let block = Block::commit(parent, "joins", at, (key, chain), vec![], vec![]);
        parent = (block.cid(), height);
        let bundle = BlockBundle {
            block: block.to_bytes(),
            objects: vec![],
        };
        assert!(member.receive_block(&bundle).unwrap().outcome.is_ok());
    }
    assert_eq!(member.tip().unwrap(), parent, "the heavier branch won");
    assert_eq!(
        member.pending_records(),
        vec![record],
        "the abandoned block's revocation waits for a block again"
    );
}

#[test]
fn a_waiting_record_survives_a_restart_until_a_block_carries_it() {
    let org = org();
    let dir = tempfile::tempdir().unwrap();
    let first = first_committer(&org);
    let now = crate::time::now();
    let list = RevocationList::empty(&org.root, now).with(
        &org.root,
        Revocation {
            subject: SecretKey::generate().public(),
            revoked_at: now,
            reason: "test".into(),
        },
        now,
    );
    let record = Record::Revoke(list);
    {
        let member = open(&org, first, org.network.rules(), dir.path());
        assert_eq!(member.offer_record(record.clone()), Ok(true));
    }
    // Crashed before a block or its identity record carried it.
    let member = open(&org, first, org.network.rules(), dir.path());
    assert_eq!(member.pending_records(), vec![record.clone()]);
    assert_eq!(commit(&member).records, vec![record]);
    assert!(member.pending_records().is_empty());
    drop(member);
    let member = open(&org, first, org.network.rules(), dir.path());
    assert!(
        member.pending_records().is_empty(),
        "forgotten once carried"
    );
    assert!(member.store().records().unwrap().is_empty());
}
