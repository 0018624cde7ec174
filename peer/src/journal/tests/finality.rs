//! Fork choice under finality (docs/consensus.md, "Fork choice"): never leave the final
//! checkpoint, whatever outweighs it; follow the highest justified checkpoint; move at once when
//! votes justify a checkpoint on another branch.

use super::*;
use crate::journal::finality::FinalityEvent;
use crate::journal::vote::{Checkpoint, Vote};

/// `n` empty blocks on `parent`, each by its height's in-turn peer (weight 2 each), a second
/// apart from `start_ms`; all of them, lowest first.
fn branch(net: &Net, parent: (Cid, u64), n: u64, start_ms: u64) -> Vec<Block> {
    let mut out: Vec<Block> = vec![];
    let mut at = parent;
    for i in 0..n {
        let peer = net.peer_in_turn(at.1 + 1);
        let block = Block::commit(at, NETWORK, start_ms + i * 1000, peer, vec![], vec![]);
        at = (block.cid(), block.height);
        out.push(block);
    }
    out
}

fn point(block: &Block) -> Checkpoint {
    Checkpoint {
        height: block.height,
        cid: block.cid(),
    }
}

/// Every peer's vote for `source -> target`, given to `r`; what the last one made happen.
fn all_vote(
    net: &Net,
    r: &mut Replica,
    source: Checkpoint,
    target: Checkpoint,
) -> Vec<FinalityEvent> {
    let mut events = vec![];
    for (key, _) in &net.peers {
        events.extend(
            r.add_vote(Vote::sign(key, NETWORK, source, target))
                .unwrap()
                .events,
        );
    }
    events
}

fn finality_replica(net: &Net, world: &World) -> Replica {
    let mut r = replica(net, world);
    let seats: Vec<_> = net.peers.iter().map(|(k, _)| k.public()).collect();
    r.enable_finality(4, &seats);
    r
}

#[test]
fn a_heavier_branch_never_moves_the_chain_off_a_final_checkpoint() {
    let (net, world) = (net(), world());
    let mut r = finality_replica(&net, &world);
    let genesis = Checkpoint {
        height: 0,
        cid: r.genesis(),
    };
    let a = branch(&net, (r.genesis(), 0), 8, ms(NOW));
    for block in &a {
        assert_eq!(r.add_block(block, CLOCK).unwrap(), Ok(Added::Extended));
    }
    all_vote(&net, &mut r, genesis, point(&a[3]));
    let events = all_vote(&net, &mut r, point(&a[3]), point(&a[7]));
    assert!(
        events.contains(&FinalityEvent::Finalized(point(&a[3]))),
        "{events:?}"
    );
    // A longer, heavier branch from genesis: kept aside.
    let b = branch(&net, (r.genesis(), 0), 12, ms(NOW) + 500);
    for block in &b {
        assert_eq!(r.add_block(block, CLOCK).unwrap(), Ok(Added::SideBranch));
    }
    assert_eq!(r.tip().unwrap(), (a[7].cid(), 8));
    assert_eq!(r.finalized(), Some(point(&a[3])));
}

#[test]
fn votes_justifying_another_branch_move_the_chain_there() {
    let (net, world) = (net(), world());
    let mut r = finality_replica(&net, &world);
    let genesis = Checkpoint {
        height: 0,
        cid: r.genesis(),
    };
    let a = branch(&net, (r.genesis(), 0), 6, ms(NOW));
    let c = branch(&net, (r.genesis(), 0), 4, ms(NOW) + 500);
    for block in &a {
        r.add_block(block, CLOCK).unwrap().unwrap();
    }
    for block in &c {
        assert_eq!(r.add_block(block, CLOCK).unwrap(), Ok(Added::SideBranch));
    }
    let mut moved = None;
    for (key, _) in &net.peers {
        let vote = Vote::sign(key, NETWORK, genesis, point(&c[3]));
        moved = r.add_vote(vote).unwrap().moved.or(moved);
    }
    assert!(
        matches!(moved, Some(Added::Reorganized { ancestor: 0, .. })),
        "{moved:?}"
    );
    assert_eq!(
        r.tip().unwrap(),
        (c[3].cid(), 4),
        "the justified branch, though lighter"
    );
    // A heavier block on the old branch does not take it back.
    let more = branch(&net, (a[5].cid(), 6), 2, ms(NOW) + 10_000);
    for block in &more {
        assert_eq!(r.add_block(block, CLOCK).unwrap(), Ok(Added::SideBranch));
    }
}
