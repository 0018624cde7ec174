//! The journal over sled (feature `store`): a restart, a rebuild from the tip, and a
//! reorganisation rolling the persistent index back and forth.

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
            ChainCell::new(CellKind::ArtefactUpdate, art, nil_cid()).with_meta(Meta::named(label)),
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
