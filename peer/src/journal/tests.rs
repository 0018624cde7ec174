//! Specification tests of the journal: verification, merging, fork choice, healing, rebuild.

use std::collections::{BTreeSet, HashMap};

use proptest::prelude::*;

use super::*;
use crate::model::{
    nil_cid, Artefact, CellKind, ChainCell, Cid, Entity, JournalEntry, Meta, Object,
};
use crate::trust::{Certificate, Chain, Level, Revocation, RevocationList, SecretKey};

mod finality;
mod membership;
mod rules;

pub(crate) const NOW: u64 = 1_700_000_000;
const BITS: u8 = 2;
const NETWORK: &str = "testnet";
/// The receivers' clock (ms): long after every block of these tests.
pub(crate) const CLOCK: u64 = (NOW + 10_000_000) * 1000;

/// Seconds as the milliseconds blocks carry.
pub(crate) fn ms(seconds: u64) -> u64 {
    seconds * 1000
}

/// A network: root, one principal, three peers and two clients.
pub(crate) struct Net {
    pub(crate) root: SecretKey,
    pub(crate) principal: SecretKey,
    pub(crate) peers: Vec<(SecretKey, Chain)>,
    pub(crate) clients: Vec<(SecretKey, Chain)>,
}

pub(crate) fn net() -> Net {
    let root = SecretKey::generate();
    let principal = SecretKey::generate();
    let l0 = Chain(vec![Certificate::issue(
        &root,
        principal.public(),
        Level::Principal,
        NOW - 100,
        NOW + 1_000_000,
    )]);
    let peers: Vec<_> = (0..3)
        .map(|_| {
            let key = SecretKey::generate();
            let chain = Chain::extend(
                Certificate::issue(
                    &principal,
                    key.public(),
                    Level::Peer,
                    NOW - 100,
                    NOW + 1_000_000,
                ),
                &l0,
            );
            (key, chain)
        })
        .collect();
    let clients = (0..2)
        .map(|i| {
            let key = SecretKey::generate();
            let chain = Chain::extend(
                Certificate::issue(
                    &peers[i].0,
                    key.public(),
                    Level::Client,
                    NOW - 100,
                    NOW + 1_000_000,
                ),
                &peers[i].1,
            );
            (key, chain)
        })
        .collect();
    Net {
        root,
        principal,
        peers,
        clients,
    }
}

impl Net {
    fn rules(&self) -> Rules {
        Rules::new(NETWORK, self.root.public(), BITS)
    }

    fn schedule(&self) -> Schedule {
        Schedule::new(self.peers.iter().map(|(k, _)| k.public()).collect())
    }

    /// A peer key by its position in the rotation.
    fn peer_in_turn(&self, height: u64) -> (&SecretKey, &Chain) {
        let key = self.schedule().in_turn(height).unwrap();
        let (k, c) = self.peers.iter().find(|(k, _)| k.public() == key).unwrap();
        (k, c)
    }

    pub(crate) fn tx(
        &self,
        client: usize,
        entries: Vec<JournalEntry>,
        timestamp: u64,
    ) -> Transaction {
        let (key, chain) = &self.clients[client];
        Transaction::create(key, chain, entries, timestamp, BITS).unwrap()
    }
}

/// Objects every replica starts with: three artefacts (inserted by genesis) and an entity.
pub(crate) struct World {
    pub(crate) artefacts: Vec<Cid>,
    pub(crate) entity: Cid,
    pub(crate) objects: Vec<Object>,
    pub(crate) genesis: Block,
}

pub(crate) fn world() -> World {
    let mut objects = vec![];
    let artefacts: Vec<Cid> = (0..3)
        .map(|i| {
            let o = Object::Artefact(Artefact::named(&format!("work {i}")));
            let cid = o.cid().unwrap();
            objects.push(o);
            cid
        })
        .collect();
    let entity_object = Object::Entity(Entity::named("Ada"));
    let entity = entity_object.cid().unwrap();
    objects.push(entity_object);
    let genesis = Block::genesis(
        NETWORK,
        artefacts
            .iter()
            .map(|&reference| JournalEntry::Insert {
                reference,
                timestamp: 0,
            })
            .collect(),
    );
    World {
        artefacts,
        entity,
        objects,
        genesis,
    }
}

pub(crate) type Replica = Journal<MemIndex, MemObjects>;

pub(crate) fn replica(net: &Net, world: &World) -> Replica {
    let objects = MemObjects::new();
    for o in &world.objects {
        objects.insert(o);
    }
    Journal::open(
        net.rules(),
        net.schedule(),
        MemIndex::new(),
        objects,
        &world.genesis,
    )
    .unwrap()
}

/// Writes an update cell into every given replica's store and returns the update entry.
fn update(
    replicas: &[&Replica],
    reference: Cid,
    previous: Cid,
    label: &str,
    timestamp: u64,
) -> JournalEntry {
    let cell = Object::Cell(
        ChainCell::new(CellKind::ArtefactUpdate, reference, previous).with_meta(Meta::named(label)),
    );
    let mut chain = nil_cid();
    for r in replicas {
        chain = r.objects().insert(&cell);
    }
    JournalEntry::Update {
        reference,
        chain,
        chain_previous: previous,
        timestamp,
    }
}

/// Every cell reachable from a canonical's head through `chain` and `chainMerge` links.
fn reachable(r: &Replica, canonical: &Cid) -> BTreeSet<Cid> {
    let mut seen = BTreeSet::new();
    let mut stack: Vec<Cid> = r.index().head(canonical).unwrap().into_iter().collect();
    while let Some(cid) = stack.pop() {
        if cid == nil_cid() || !seen.insert(cid) {
            continue;
        }
        if let Some(Object::Cell(cell)) = r.objects().object(&cid) {
            stack.push(cell.chain);
            if let CellKind::ArtefactChainLink { chain_merge }
            | CellKind::EntityChainLink { chain_merge } = cell.kind
            {
                stack.push(chain_merge);
            }
        }
    }
    seen
}

pub(crate) fn commit(
    net: &Net,
    r: &mut Replica,
    txs: Vec<Transaction>,
    ts: u64,
) -> (Block, Vec<(TxId, TxRejection)>) {
    let height = r.tip().unwrap().1 + 1;
    let (key, chain) = net.peer_in_turn(height);
    r.commit((key, chain), txs, ms(ts)).unwrap()
}

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
    let dup = net.tx(
        0,
        vec![JournalEntry::Insert {
            reference: art,
            timestamp: NOW,
        }],
        NOW,
    );
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
    let dangling = net.tx(
        0,
        vec![JournalEntry::Insert {
            reference: unknown,
            timestamp: NOW,
        }],
        NOW,
    );
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
    let mut forged = net.tx(
        0,
        vec![JournalEntry::Insert {
            reference: world.entity,
            timestamp: NOW,
        }],
        NOW,
    );
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

/// Builds a valid next block on `r` and hands back a copy to tamper with.
fn next_block(net: &Net, world: &World, r: &mut Replica) -> Block {
    let mut builder = replica(net, world);
    for h in 1..=r.tip().unwrap().1 {
        let block = r
            .load_block(&r.index().block_at(h).unwrap().unwrap())
            .unwrap();
        builder.add_block(&block, CLOCK).unwrap().unwrap();
    }
    let up = update(
        &[&builder, r],
        world.artefacts[2],
        r.index().head(&world.artefacts[2]).unwrap().unwrap(),
        "n",
        NOW,
    );
    commit(net, &mut builder, vec![net.tx(0, vec![up], NOW)], NOW).0
}

fn resign(block: &mut Block, key: &SecretKey, chain: &Chain) {
    *block = Block::commit_with_records(
        (block.chain, block.height - 1),
        &block.network.clone(),
        block.timestamp_ms,
        (key, chain),
        (block.records.clone(), block.finality.clone()),
        block.transactions.clone(),
        block.entries.clone(),
    );
}

#[test]
fn fork_choice_weighs_every_block_under_the_rotation_in_force() {
    let (net, world) = (net(), world());
    let (in_turn, in_turn_chain) = net.peer_in_turn(1);
    let (other, other_chain) = net
        .peers
        .iter()
        .find(|(k, _)| k.public() != in_turn.public())
        .unwrap();
    let insert = |i: usize| {
        net.tx(
            0,
            vec![JournalEntry::Insert {
                reference: world.artefacts[i],
                timestamp: NOW,
            }],
            NOW,
        )
    };
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
    let tx = net.tx(
        0,
        vec![JournalEntry::Insert {
            reference: art,
            timestamp: NOW,
        }],
        NOW,
    );
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
    let ghost_tx = net.tx(
        0,
        vec![JournalEntry::Insert {
            reference: ghost,
            timestamp: NOW,
        }],
        NOW,
    );
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

// ---- property tests ------------------------------------------------------------------------

/// One random operation on a fork: update canonical `k` (on that fork's head), by client `c`.
#[derive(Debug, Clone)]
pub(crate) struct Op {
    pub(crate) fork: usize,
    pub(crate) canonical: usize,
    pub(crate) client: usize,
    pub(crate) block_break: bool,
}

pub(crate) fn ops() -> impl Strategy<Value = (usize, Vec<Op>, Vec<usize>)> {
    (1usize..=3).prop_flat_map(|forks| {
        let op = (0..forks, 0usize..3, 0usize..2, any::<bool>()).prop_map(
            |(fork, canonical, client, block_break)| Op {
                fork,
                canonical,
                client,
                block_break,
            },
        );
        (
            Just(forks),
            proptest::collection::vec(op, 1..14),
            proptest::collection::vec(any::<usize>(), 24),
        )
    })
}

/// Builds the forks' blocks from `ops`, returning every block and every update cell written.
pub(crate) fn build_forks(
    net: &Net,
    world: &World,
    forks: usize,
    ops: &[Op],
) -> (Vec<Block>, Vec<(Cid, Cid)>, Vec<Object>) {
    let mut builders: Vec<Replica> = (0..forks).map(|_| replica(net, world)).collect();
    let mut pending: Vec<Vec<Transaction>> = vec![vec![]; forks];
    let mut blocks = vec![];
    let mut cells = vec![];
    let mut extra_objects = vec![];
    let mut heads: Vec<HashMap<Cid, Cid>> =
        vec![world.artefacts.iter().map(|a| (*a, nil_cid())).collect(); forks];
    let flush = |f: usize,
                 builders: &mut Vec<Replica>,
                 pending: &mut Vec<Vec<Transaction>>,
                 blocks: &mut Vec<Block>| {
        if pending[f].is_empty() {
            return;
        }
        let builder = &mut builders[f];
        let height = builder.tip().unwrap().1 + 1;
        // Fork f's committer: a different peer per fork, so forks differ in weight.
        let (key, chain) = &net.peers[(f + height as usize) % net.peers.len()];
        let (block, rejected) = builder
            .commit(
                (key, chain),
                std::mem::take(&mut pending[f]),
                ms(NOW + height),
            )
            .unwrap();
        assert!(rejected.is_empty(), "{rejected:?}");
        blocks.push(block);
    };
    for (i, op) in ops.iter().enumerate() {
        let art = world.artefacts[op.canonical];
        let previous = heads[op.fork][&art];
        let cell = Object::Cell(
            ChainCell::new(CellKind::ArtefactUpdate, art, previous)
                .with_meta(Meta::named(&format!("op {i}"))),
        );
        let cid = builders[op.fork].objects().insert(&cell);
        extra_objects.push(cell);
        heads[op.fork].insert(art, cid);
        cells.push((art, cid));
        let entry = JournalEntry::Update {
            reference: art,
            chain: cid,
            chain_previous: previous,
            timestamp: NOW + i as u64,
        };
        pending[op.fork].push(net.tx(op.client, vec![entry], NOW + i as u64));
        if op.block_break {
            flush(op.fork, &mut builders, &mut pending, &mut blocks);
        }
    }
    for f in 0..forks {
        flush(f, &mut builders, &mut pending, &mut blocks);
    }
    (blocks, cells, extra_objects)
}

/// Delivers blocks in the given order, retrying those whose parent has not arrived yet.
pub(crate) fn deliver(r: &mut Replica, mut queue: Vec<Block>) {
    while !queue.is_empty() {
        let before = queue.len();
        queue.retain(|b| match r.add_block(b, CLOCK).unwrap() {
            Ok(_) => false,
            Err(BlockRejection::UnknownParent(_)) => true,
            Err(other) => panic!("valid block refused: {other}"),
        });
        assert!(queue.len() < before, "delivery made no progress");
    }
}

pub(crate) fn shuffled<T: Clone>(items: &[T], seeds: &[usize]) -> Vec<T> {
    let mut out = items.to_vec();
    for (i, seed) in seeds.iter().enumerate().take(out.len()) {
        let n = out.len();
        out.swap(i % n, seed % n);
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn replicas_converge_and_lose_nothing_whatever_the_forks_and_delivery_order((forks, ops, seeds) in ops()) {
        let (net, world) = (net(), world());
        let (blocks, cells, extra) = build_forks(&net, &world, forks, &ops);
        let mut replicas: Vec<Replica> = (0..3).map(|_| replica(&net, &world)).collect();
        for (n, r) in replicas.iter_mut().enumerate() {
            for o in &extra { r.objects().insert(o); }
            let order = shuffled(&blocks, &seeds[n * 8..]);
            deliver(r, order);
        }
        let tip = replicas[0].tip().unwrap();
        for r in &replicas {
            prop_assert_eq!(r.tip().unwrap(), tip);
            prop_assert_eq!(r.index().heads(), replicas[0].index().heads());
        }
        // Healing: the in-turn committer replays every transaction left off the chain.
        let side = replicas[0].side_transactions().unwrap();
        for r in &replicas[1..] {
            prop_assert_eq!(&r.side_transactions().unwrap(), &side);
        }
        let (heal, rejected) = commit(&net, &mut replicas[0], side, NOW + 500);
        prop_assert!(rejected.is_empty(), "{:?}", rejected);
        for r in &mut replicas[1..] {
            prop_assert_eq!(r.add_block(&heal, CLOCK).unwrap(), Ok(Added::Extended));
        }
        for r in &replicas {
            prop_assert_eq!(r.index().heads(), replicas[0].index().heads());
            for (canonical, cell) in &cells {
                prop_assert!(reachable(r, canonical).contains(cell), "cell {} of {} lost", cell, canonical);
            }
        }
        // Replays are idempotent: delivering everything again changes nothing.
        for r in &mut replicas {
            let before = (r.tip().unwrap(), r.index().heads().clone());
            for b in &blocks { prop_assert_eq!(r.add_block(b, CLOCK).unwrap(), Ok(Added::Known)); }
            prop_assert_eq!((r.tip().unwrap(), r.index().heads().clone()), before);
        }
    }

    #[test]
    fn tampered_blocks_are_always_rejected(byte in any::<usize>(), flip in 1u8..) {
        let (net, world) = (net(), world());
        let mut a = replica(&net, &world);
        let good = next_block(&net, &world, &mut a);
        let mut bytes = good.to_bytes();
        let i = byte % bytes.len();
        bytes[i] ^= flip;
        // Never accepted: the bytes are refused, or the block they parse to is rejected.
        let outcome = Block::from_bytes(&bytes).map(|tampered| a.add_block(&tampered, CLOCK).unwrap());
        prop_assert!(!matches!(outcome, Ok(Ok(_))), "{:?}", outcome);
    }
}

#[cfg(feature = "store")]
mod persistent {
    use super::*;
    use crate::store::{SledIndex, Store};

    fn open(dir: &std::path::Path, net: &Net, world: &World) -> Journal<SledIndex, Store> {
        let store = Store::open(dir, 1 << 20).unwrap();
        for o in &world.objects {
            store.put_object(o).unwrap();
        }
        let index = store.index().unwrap();
        Journal::open(net.rules(), net.schedule(), index, store, &world.genesis).unwrap()
    }

    #[test]
    fn the_journal_survives_a_restart_and_rebuilds_from_its_tip() {
        let dir = tempfile::tempdir().unwrap();
        let (net, world) = (net(), world());
        let art = world.artefacts[0];
        let (tip, heads) = {
            let mut j = open(dir.path(), &net, &world);
            let mut previous = nil_cid();
            for i in 0..4u64 {
                let cell = Object::Cell(
                    ChainCell::new(CellKind::ArtefactUpdate, art, previous)
                        .with_meta(Meta::named(&format!("v{i}"))),
                );
                let chain = j.objects().put_object(&cell).unwrap();
                let entry = JournalEntry::Update {
                    reference: art,
                    chain,
                    chain_previous: previous,
                    timestamp: NOW + i,
                };
                let height = j.tip().unwrap().1 + 1;
                let (key, c) = net.peer_in_turn(height);
                let (_, rejected) = j
                    .commit((key, c), vec![net.tx(0, vec![entry], NOW + i)], ms(NOW + i))
                    .unwrap();
                assert!(rejected.is_empty());
                previous = chain;
            }
            assert_eq!(j.index().head(&art).unwrap(), Some(previous));
            (j.tip().unwrap(), j.index().heads().unwrap())
        };
        // Restart: the index and the headers come back from disk.
        let mut j = open(dir.path(), &net, &world);
        assert_eq!(j.tip().unwrap(), tip);
        assert_eq!(j.index().heads().unwrap(), heads);
        assert_eq!(j.index().canonical_count().unwrap(), 3);
        assert_eq!(j.history(&art, 100).unwrap().len(), 4);
        // It keeps committing on top.
        let height = tip.1 + 1;
        let (key, c) = net.peer_in_turn(height);
        let insert = JournalEntry::Insert {
            reference: world.entity,
            timestamp: NOW,
        };
        j.commit(
            (key, c),
            vec![net.tx(1, vec![insert], NOW + 9)],
            ms(NOW + 9),
        )
        .unwrap();
        let tip = j.tip().unwrap();
        // Rebuild from nothing but the tip reference.
        let mut index = j.index().clone();
        let heads = index.heads().unwrap();
        index.clear().unwrap();
        assert!(index.tip().unwrap().is_none());
        let report = rebuild::rebuild(&mut index, j.objects(), tip.0, |_| {}).unwrap();
        assert_eq!(report.blocks, tip.1 + 1);
        assert_eq!(index.heads().unwrap(), heads);
        assert_eq!(index.tip().unwrap(), Some(tip));
    }

    #[test]
    fn a_reorganisation_rolls_the_persistent_index_back_and_forth() {
        let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (net, world) = (net(), world());
        let mut a = open(da.path(), &net, &world);
        let mut b = open(db.path(), &net, &world);
        let art = world.artefacts[1];
        let cell = |label: &str| {
            Object::Cell(
                ChainCell::new(CellKind::ArtefactUpdate, art, nil_cid())
                    .with_meta(Meta::named(label)),
            )
        };
        let (ca, cb) = (cell("a"), cell("b"));
        for j in [&a, &b] {
            j.objects().put_object(&ca).unwrap();
            j.objects().put_object(&cb).unwrap();
        }
        let entry = |c: &Object| JournalEntry::Update {
            reference: art,
            chain: c.cid().unwrap(),
            chain_previous: nil_cid(),
            timestamp: NOW,
        };
        let other = net
            .peers
            .iter()
            .find(|(k, _)| Some(k.public()) != net.schedule().in_turn(1))
            .unwrap();
        a.commit(
            (&other.0, &other.1),
            vec![net.tx(0, vec![entry(&ca)], NOW)],
            ms(NOW),
        )
        .unwrap();
        let (key, c) = net.peer_in_turn(1);
        let (winner, _) = b
            .commit((key, c), vec![net.tx(1, vec![entry(&cb)], NOW)], ms(NOW))
            .unwrap();
        let outcome = a.add_block(&winner, CLOCK).unwrap().unwrap();
        assert!(matches!(outcome, Added::Reorganized { ref orphans, .. } if orphans.len() == 1));
        assert_eq!(a.index().heads().unwrap(), b.index().heads().unwrap());
        assert_eq!(a.index().head(&art).unwrap(), Some(cb.cid().unwrap()));
    }
}
