//! Property tests: replicas converge and lose nothing whatever the forks and the order of
//! delivery, and a tampered block is never accepted. The fork generators are fixtures of the
//! search index's tests too.

use proptest::prelude::*;

use super::*;

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
