//! Finality across a change of seats (FFG with dynamic validator sets): a link whose source
//! and target were produced by different seats needs more than two thirds of both.

use std::collections::{BTreeSet, HashMap};

use super::*;
use crate::model::codec::dag_cbor_cid;
use crate::trust::SecretKey;

const NET: &str = "net";

/// One chain of blocks, each with the seats that produced it (the fixture of a chain for
/// finality's and certificates' tests).
pub(crate) struct Line {
    pub(crate) blocks: Vec<Cid>,
    pub(crate) seats: HashMap<Cid, BTreeSet<PublicKey>>,
}

impl Ancestry for Line {
    fn ancestor_at(&self, cid: &Cid, height: u64) -> Option<Cid> {
        let at = self.blocks.iter().position(|b| b == cid)? as u64;
        (height <= at).then(|| self.blocks[height as usize])
    }

    fn seats_at(&self, cid: &Cid) -> Option<BTreeSet<PublicKey>> {
        self.seats.get(cid).cloned()
    }
}

pub(crate) fn point(line: &Line, height: u64) -> Checkpoint {
    Checkpoint {
        height,
        cid: line.blocks[height as usize],
    }
}

#[test]
fn a_link_across_a_seat_change_needs_both_the_old_and_the_new_seats() {
    let keys: Vec<SecretKey> = (0..6).map(|_| SecretKey::generate()).collect();
    let key = |i: usize| keys[i].public();
    // Seats 0-3 up to height 4; seats 2-5 from height 5 (two left, two joined).
    let old: BTreeSet<PublicKey> = (0..4).map(key).collect();
    let new: BTreeSet<PublicKey> = (2..6).map(key).collect();
    let blocks: Vec<Cid> = (0..9).map(|i| dag_cbor_cid(&[i as u8])).collect();
    let seats = blocks
        .iter()
        .enumerate()
        .map(|(h, c)| (*c, if h <= 4 { old.clone() } else { new.clone() }))
        .collect();
    let line = Line { blocks, seats };
    let all: Vec<PublicKey> = (0..6).map(key).collect();
    let mut f = Finality::new(NET, 4, &all[..4], line.blocks[0]);
    f.admit_voters(&all);
    let vote =
        |i: usize, s: u64, t: u64| Vote::sign(&keys[i], NET, point(&line, s), point(&line, t));
    // 0 -> 4: the old seats alone.
    for i in 0..3 {
        f.add(vote(i, 0, 4)).unwrap();
    }
    assert!(f
        .count(&line)
        .contains(&FinalityEvent::Justified(point(&line, 4))));
    // 4 -> 8: three of the new seats, but only two of the old (2, 3): not enough.
    for i in [2, 3, 4] {
        f.add(vote(i, 4, 8)).unwrap();
    }
    assert_eq!(
        f.count(&line),
        vec![],
        "the old seats are not a supermajority"
    );
    // A third old seat: now both are.
    f.add(vote(1, 4, 8)).unwrap();
    let events = f.count(&line);
    assert!(
        events.contains(&FinalityEvent::Finalized(point(&line, 4))),
        "{events:?}"
    );
}

#[test]
fn votes_of_keys_no_membership_seated_are_not_held() {
    let keys: Vec<SecretKey> = (0..4).map(|_| SecretKey::generate()).collect();
    let seats: Vec<PublicKey> = keys[..3].iter().map(SecretKey::public).collect();
    let genesis = dag_cbor_cid(b"g");
    let mut f = Finality::new(NET, 4, &seats, genesis);
    let target = Checkpoint {
        height: 4,
        cid: dag_cbor_cid(b"t"),
    };
    let source = Checkpoint {
        height: 0,
        cid: genesis,
    };
    let outsider = Vote::sign(&keys[3], NET, source, target);
    assert_eq!(
        f.add(outsider.clone()),
        Err(VoteRejection::NotSeated(keys[3].public()))
    );
    f.admit_voters(&[keys[3].public()]);
    assert_eq!(
        f.add(outsider),
        Ok(Counted::New),
        "once a membership seats it"
    );
}
