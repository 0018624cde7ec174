//! Finality accounting as a specification: thresholds, the rules, bounds, certificates, and a
//! property run with Byzantine voters over a forking tree.

use std::collections::HashMap;

use proptest::prelude::*;

use super::*;
use crate::model::codec::dag_cbor_cid;
use crate::trust::SecretKey;

pub(super) const NET: &str = "net";

/// A block tree: each block's parent and height.
#[derive(Default)]
pub(super) struct Tree {
    blocks: HashMap<Cid, (Cid, u64)>,
    order: Vec<Cid>,
}

impl Tree {
    pub(super) fn new() -> (Self, Cid) {
        let genesis = dag_cbor_cid(b"genesis");
        let mut tree = Self::default();
        tree.blocks.insert(genesis, (genesis, 0));
        tree.order.push(genesis);
        (tree, genesis)
    }

    fn child(&mut self, parent: Cid, name: &str) -> Cid {
        let height = self.blocks[&parent].1 + 1;
        let cid = dag_cbor_cid(name.as_bytes());
        self.blocks.insert(cid, (parent, height));
        self.order.push(cid);
        cid
    }

    /// A chain of `n` blocks above `from`, named `name`; all its blocks, lowest first.
    pub(super) fn chain(&mut self, from: Cid, n: u64, name: &str) -> Vec<Cid> {
        let mut cursor = from;
        (0..n)
            .map(|i| {
                cursor = self.child(cursor, &format!("{name}{i}"));
                cursor
            })
            .collect()
    }

    /// Blocks without children, oldest first.
    fn leaves(&self) -> Vec<Cid> {
        let parents: std::collections::HashSet<Cid> = self
            .order
            .iter()
            .skip(1)
            .map(|c| self.blocks[c].0)
            .collect();
        self.order
            .iter()
            .copied()
            .filter(|c| !parents.contains(c))
            .collect()
    }

    pub(super) fn point(&self, cid: Cid) -> Checkpoint {
        Checkpoint {
            height: self.blocks[&cid].1,
            cid,
        }
    }
}

impl Ancestry for Tree {
    fn ancestor_at(&self, cid: &Cid, height: u64) -> Option<Cid> {
        let mut cursor = *cid;
        loop {
            let (parent, h) = *self.blocks.get(&cursor)?;
            if h == height {
                return Some(cursor);
            }
            if h < height {
                return None;
            }
            cursor = parent;
        }
    }
}

pub(super) fn seats(n: usize) -> Vec<SecretKey> {
    (0..n)
        .map(|i| SecretKey::from_seed(&[i as u8 + 1; 32]))
        .collect()
}

pub(super) fn publics(keys: &[SecretKey]) -> Vec<PublicKey> {
    keys.iter().map(SecretKey::public).collect()
}

pub(super) fn vote_all(f: &mut Finality, keys: &[SecretKey], s: Checkpoint, t: Checkpoint) {
    for key in keys {
        f.add(Vote::sign(key, NET, s, t)).unwrap();
    }
}

#[test]
fn more_than_two_thirds_justify_and_the_next_epoch_link_finalizes() {
    let (mut tree, g) = Tree::new();
    let chain = tree.chain(g, 12, "a");
    let keys = seats(4);
    let mut f = Finality::new(NET, 4, &publics(&keys), g);
    let (genesis, c4, c8) = (tree.point(g), tree.point(chain[3]), tree.point(chain[7]));
    vote_all(&mut f, &keys[..2], genesis, c4);
    assert!(
        f.count(&tree).is_empty(),
        "two of four is not more than two thirds"
    );
    vote_all(&mut f, &keys[2..3], genesis, c4);
    assert_eq!(f.count(&tree), vec![FinalityEvent::Justified(c4)]);
    assert_eq!(f.finalized(), genesis, "justified is not final");
    vote_all(&mut f, &keys[..3], c4, c8);
    assert_eq!(
        f.count(&tree),
        vec![FinalityEvent::Justified(c8), FinalityEvent::Finalized(c4)]
    );
    assert_eq!(f.finalized(), c4);
    assert_eq!(f.certificate().len(), 3);
}

#[test]
fn exactly_two_thirds_is_not_a_supermajority() {
    let (mut tree, g) = Tree::new();
    let chain = tree.chain(g, 4, "a");
    let keys = seats(3);
    let mut f = Finality::new(NET, 4, &publics(&keys), g);
    vote_all(&mut f, &keys[..2], tree.point(g), tree.point(chain[3]));
    assert!(f.count(&tree).is_empty());
}

#[test]
fn a_link_that_skips_an_epoch_justifies_but_does_not_finalize() {
    let (mut tree, g) = Tree::new();
    let chain = tree.chain(g, 8, "a");
    let keys = seats(4);
    let mut f = Finality::new(NET, 4, &publics(&keys), g);
    vote_all(&mut f, &keys, tree.point(g), tree.point(chain[7]));
    assert_eq!(
        f.count(&tree),
        vec![FinalityEvent::Justified(tree.point(chain[7]))]
    );
    assert_eq!(f.finalized().height, 0);
}

#[test]
fn forged_unseated_and_malformed_votes_are_refused() {
    let (mut tree, g) = Tree::new();
    let chain = tree.chain(g, 8, "a");
    let keys = seats(4);
    let mut f = Finality::new(NET, 4, &publics(&keys), g);
    let (s, t) = (tree.point(g), tree.point(chain[3]));
    let stranger = SecretKey::generate();
    assert!(matches!(
        f.add(Vote::sign(&stranger, NET, s, t)),
        Err(VoteRejection::NotSeated(_))
    ));
    assert_eq!(
        f.add(Vote::sign(&keys[0], "other", s, t)),
        Err(VoteRejection::BadSignature)
    );
    let not_a_checkpoint = tree.point(chain[4]);
    assert!(matches!(
        f.add(Vote::sign(&keys[0], NET, s, not_a_checkpoint)),
        Err(VoteRejection::Malformed { .. })
    ));
    assert!(matches!(
        f.add(Vote::sign(&keys[0], NET, t, s)),
        Err(VoteRejection::Malformed { .. })
    ));
    assert_eq!(f.add(Vote::sign(&keys[0], NET, s, t)), Ok(Counted::New));
    assert_eq!(f.add(Vote::sign(&keys[0], NET, s, t)), Ok(Counted::Known));
}

#[test]
fn a_double_vote_is_kept_as_evidence_and_counted_alike_in_either_order() {
    let (mut tree, g) = Tree::new();
    let a = tree.chain(g, 4, "a");
    let b = tree.chain(g, 4, "b");
    let keys = seats(4);
    let genesis = tree.point(g);
    let for_a = Vote::sign(&keys[0], NET, genesis, tree.point(a[3]));
    let for_b = Vote::sign(&keys[0], NET, genesis, tree.point(b[3]));
    // Two peers receive the culprit's two votes in opposite orders, and two honest votes for b.
    let mut views = [for_a.clone(), for_b.clone()].map(|first| {
        let mut f = Finality::new(NET, 4, &publics(&keys), g);
        let second = if first == for_a { &for_b } else { &for_a };
        assert_eq!(f.add(first), Ok(Counted::New));
        assert_eq!(f.add(second.clone()), Ok(Counted::New), "it counts too");
        vote_all(&mut f, &keys[1..3], genesis, tree.point(b[3]));
        f
    });
    for f in &mut views {
        assert_eq!(
            f.count(&tree),
            vec![FinalityEvent::Justified(tree.point(b[3]))],
            "both views justify b, whichever vote came first"
        );
        let evidence: Vec<_> = f.evidence().collect();
        assert_eq!(evidence.len(), 1);
        assert_eq!(evidence[0].first.voter, keys[0].public());
        assert_ne!(evidence[0].first.target, evidence[0].second.target);
    }
}

#[test]
fn a_voter_cannot_grow_the_structures_past_its_bound() {
    let (mut tree, g) = Tree::new();
    let chain = tree.chain(g, 4, "a");
    let keys = seats(4);
    let mut f = Finality::new(NET, 1, &publics(&keys), g);
    for height in 1..1_000u64 {
        let target = Checkpoint {
            height,
            cid: dag_cbor_cid(&height.to_be_bytes()),
        };
        f.add(Vote::sign(&keys[0], NET, tree.point(g), target))
            .unwrap();
    }
    assert!(f.count(&tree).is_empty());
    assert_eq!(f.shared().len(), MAX_VOTES_PER_VOTER, "once counted");
    let _ = chain;
}

#[test]
fn a_links_votes_arriving_together_after_newer_ones_still_count() {
    let (mut tree, g) = Tree::new();
    let chain = tree.chain(g, 2, "a");
    let keys = seats(4);
    let mut f = Finality::new(NET, 1, &publics(&keys), g);
    // Three voters' newer votes fill their bound first (targets this view does not hold)...
    for key in &keys[..3] {
        for height in 2..2 + MAX_VOTES_PER_VOTER as u64 {
            let target = Checkpoint {
                height,
                cid: dag_cbor_cid(&height.to_be_bytes()),
            };
            f.add(Vote::sign(key, NET, tree.point(g), target)).unwrap();
        }
    }
    assert!(f.count(&tree).is_empty());
    // ...then their votes for the link g -> a0 arrive together (one message): counted before
    // the bound evicts them, they justify a0.
    vote_all(&mut f, &keys[..3], tree.point(g), tree.point(chain[0]));
    assert_eq!(
        f.count(&tree),
        vec![FinalityEvent::Justified(tree.point(chain[0]))]
    );
    assert_eq!(
        f.shared().len(),
        3 * MAX_VOTES_PER_VOTER + 3,
        "then evicted from the held votes, shared as a0's justification"
    );
}

#[test]
fn the_certificate_alone_proves_finality_to_a_peer_that_saw_nothing_else() {
    let (mut tree, g) = Tree::new();
    let chain = tree.chain(g, 12, "a");
    let keys = seats(4);
    let mut f = Finality::new(NET, 4, &publics(&keys), g);
    let (c4, c8) = (tree.point(chain[3]), tree.point(chain[7]));
    vote_all(&mut f, &keys[..3], tree.point(g), c4);
    vote_all(&mut f, &keys[1..], c4, c8);
    f.count(&tree);
    let certificate = f.certificate().to_vec();
    let mut fresh = Finality::new(NET, 4, &publics(&keys), g);
    for vote in certificate {
        fresh.add(vote).unwrap();
    }
    fresh.count(&tree);
    assert_eq!(fresh.finalized(), c4);
}

#[test]
fn links_that_leave_the_final_checkpoint_never_count() {
    let (mut tree, g) = Tree::new();
    let a = tree.chain(g, 8, "a");
    let b = tree.chain(g, 12, "b");
    let keys = seats(4);
    let mut f = Finality::new(NET, 4, &publics(&keys), g);
    vote_all(&mut f, &keys, tree.point(g), tree.point(a[3]));
    vote_all(&mut f, &keys, tree.point(a[3]), tree.point(a[7]));
    f.count(&tree);
    assert_eq!(f.finalized(), tree.point(a[3]));
    assert_eq!(f.justified_on(&tree, &b[11]), None);
    assert_eq!(f.justified_on(&tree, &a[7]), Some(tree.point(a[7])));
    let others = seats(8);
    let mut g2 = Finality::new(NET, 4, &publics(&others[4..]), g);
    vote_all(&mut g2, &others[4..], tree.point(g), tree.point(b[7]));
    assert_eq!(
        g2.count(&tree).len(),
        1,
        "b is fine for a peer without a final a"
    );
}

#[test]
fn an_honest_choice_follows_the_tip_epoch_and_never_breaks_a_rule() {
    let (mut tree, g) = Tree::new();
    let a = tree.chain(g, 10, "a");
    let keys = seats(4);
    let mut f = Finality::new(NET, 4, &publics(&keys), g);
    assert_eq!(
        f.choose(&tree, tree.point(a[2]), None),
        None,
        "no checkpoint yet"
    );
    let (s, t) = f.choose(&tree, tree.point(a[5]), None).unwrap();
    assert_eq!((s, t), (tree.point(g), tree.point(a[3])));
    let last = Vote::sign(&keys[0], NET, s, t);
    assert_eq!(f.choose(&tree, tree.point(a[6]), Some(&last)), None);
    vote_all(&mut f, &keys[..3], s, t);
    f.count(&tree);
    let (s2, t2) = f.choose(&tree, tree.point(a[9]), Some(&last)).unwrap();
    assert_eq!((s2, t2), (tree.point(a[3]), tree.point(a[7])));
    let later = Vote::sign(&keys[0], NET, s2, t2);
    assert!(!later.conflicts_with(&last));
}

/// One step of the property run: a new block, or a voter's vote delivered to some views.
#[derive(Debug, Clone)]
enum Step {
    Block {
        parent: usize,
    },
    Vote {
        tip: usize,
        to: u32,
    },
    Lie {
        voter: usize,
        source: usize,
        target: usize,
    },
    /// A view receives every vote sent so far (as shared votes are re-sent).
    Sync {
        view: usize,
    },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (0usize..64).prop_map(|parent| Step::Block { parent }),
        3 => (any::<usize>(), any::<u32>()).prop_map(|(tip, to)| Step::Vote { tip, to }),
        1 => (0usize..7, 0usize..64, 0usize..64)
            .prop_map(|(voter, source, target)| Step::Lie { voter, source, target }),
        2 => (0usize..7).prop_map(|view| Step::Sync { view }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// With fewer than a third of the seats Byzantine (signing anything, conflicting votes
    /// included) and votes reaching each honest view in any subset and order, no two views
    /// ever finalise conflicting checkpoints.
    #[test]
    fn no_two_honest_views_finalize_conflicting_checkpoints(
        n in 4usize..8, byzantine in 0usize..3, steps in proptest::collection::vec(step(), 1..300)
    ) {
        let f_byz = byzantine.min((n - 1) / 3);
        let keys = seats(n);
        let (mut tree, g) = Tree::new();
        let mut views: Vec<Finality> =
            (0..n - f_byz).map(|_| Finality::new(NET, 2, &publics(&keys), g)).collect();
        let mut last: Vec<Option<Vote>> = vec![None; n];
        let mut finals: Vec<Checkpoint> = vec![];
        let mut sent: Vec<Vote> = vec![];
        for (i, step) in steps.into_iter().enumerate() {
            let pick = |k: usize| tree.order[k % tree.order.len()];
            match step {
                Step::Block { parent } => {
                    // One of the newest branches grows, or forks below its tip.
                    let leaves = tree.leaves();
                    let leaf = leaves[leaves.len() - 1 - parent % leaves.len().min(3)];
                    let parent = if parent % 8 == 0 { tree.blocks[&leaf].0 } else { leaf };
                    tree.child(parent, &format!("b{i}"));
                }
                Step::Vote { tip, to } => {
                    // Every honest voter votes on its tip (one of the two newest branches); each vote
                    // reaches each other view with probability 3/4.
                    for voter in 0..views.len() {
                        let seed = tip.wrapping_add(voter.wrapping_mul(7919));
                        let leaves = tree.leaves();
                        let tip = tree.point(leaves[leaves.len() - 1 - seed % leaves.len().min(2)]);
                        if views[voter].justified_on(&tree, &tip.cid).is_none() {
                            continue;
                        }
                        let Some((s, t)) = views[voter].choose(&tree, tip, last[voter].as_ref())
                        else {
                            continue;
                        };
                        let vote = Vote::sign(&keys[voter], NET, s, t);
                        last[voter] = Some(vote.clone());
                        sent.push(vote.clone());
                        let mask = to.rotate_left(voter as u32 * 5);
                        for (v, view) in views.iter_mut().enumerate() {
                            if v == voter || (mask >> (2 * v)) & 3 != 0 {
                                let _ = view.add(vote.clone());
                            }
                        }
                    }
                }
                Step::Lie { voter, source, target } => {
                    let liar = views.len() + voter % f_byz.max(1);
                    if f_byz == 0 || liar >= n {
                        continue;
                    }
                    let (s, t) = (tree.point(pick(source)), tree.point(pick(target)));
                    let vote = Vote::sign(&keys[liar], NET, s, t);
                    sent.push(vote.clone());
                    for view in &mut views {
                        let _ = view.add(vote.clone());
                    }
                }
                Step::Sync { view } => {
                    let view = view % views.len();
                    for vote in &sent {
                        let _ = views[view].add(vote.clone());
                    }
                }
            }
            for view in &mut views {
                for event in view.count(&tree) {
                    if let FinalityEvent::Finalized(c) = event {
                        finals.push(c);
                    }
                }
            }
        }
        for a in &finals {
            for b in &finals {
                let (low, high) = if a.height <= b.height { (a, b) } else { (b, a) };
                prop_assert_eq!(tree.ancestor_at(&high.cid, low.height), Some(low.cid),
                    "conflicting final checkpoints {:?} and {:?}", a, b);
            }
        }
    }
}
