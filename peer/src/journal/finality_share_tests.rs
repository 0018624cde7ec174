//! What a node shares lets another count what it counted: the votes that justified a checkpoint
//! travel even after their voters' newer votes pushed them out of the per-voter bound.

use super::tests::{publics, seats, vote_all, Tree};
use super::*;

#[test]
fn a_justification_pushed_out_by_newer_votes_is_still_shared_and_counted_elsewhere() {
    let (mut tree, g) = Tree::new();
    let chain = tree.chain(g, 80, "a");
    let keys = seats(4);
    let epoch = 2;
    let point = |h: u64| tree.point(chain[h as usize - 1]);
    let mut seen = Finality::new("net", epoch, &publics(&keys), g);
    // Three of four justify 4 from genesis (a link that skips an epoch: 4 is not final).
    vote_all(&mut seen, &keys[..3], tree.point(g), point(4));
    assert_eq!(seen.count(&tree), vec![FinalityEvent::Justified(point(4))]);
    // Two keep voting from 4 (the third is away): their newest votes push out the ones that
    // justified 4.
    for h in (6..=6 + 2 * MAX_VOTES_PER_VOTER as u64).step_by(2) {
        vote_all(&mut seen, &keys[..2], point(4), point(h));
        let _ = seen.count(&tree);
    }
    // A node that missed all of it counts from what `seen` shares.
    let mut late = Finality::new("net", epoch, &publics(&keys), g);
    for vote in seen.shared() {
        late.add(vote).unwrap();
    }
    assert!(
        late.count(&tree)
            .contains(&FinalityEvent::Justified(point(4))),
        "the late node learns 4 is justified, so it votes from the same source"
    );
}
