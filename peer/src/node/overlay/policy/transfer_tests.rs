//! What the policy does with blocks peers send: the block asked for or a strike, the parent
//! of an orphan its sender must hold.

use std::time::{Duration, Instant};

use libp2p::PeerId;

use super::requests::BLOCK_REQUEST_TTL;
use super::{Effect, Input, Policy, Transfer};
use crate::journal::{Added, BlockRejection};
use crate::model::codec::dag_cbor_cid;
use crate::model::Cid;
use crate::node::{BlockBundle, ReceivedBlock};
use crate::trust::SecretKey;

fn struck(effects: &[Effect], peer: PeerId) -> bool {
    effects
        .iter()
        .any(|e| matches!(e, Effect::Struck { peer: p, .. } if *p == peer))
}

fn verifies(effects: &[Effect]) -> bool {
    effects.iter().any(|e| matches!(e, Effect::Verify(_)))
}

fn bundle(n: u8) -> BlockBundle {
    BlockBundle {
        block: vec![n],
        objects: vec![],
    }
}

#[test]
fn a_block_other_than_the_one_asked_for_is_not_verified_and_strikes_its_sender() {
    let now = Instant::now();
    let mut policy = Policy::new(SecretKey::generate().public(), 0, 2, now);
    let peer = PeerId::random();
    let received = |asked| {
        let bundle = bundle(1);
        Input::Transfer(Transfer::BlockReceived {
            peer,
            asked,
            bundle,
        })
    };
    let effects = policy.handle(received(dag_cbor_cid(&[2])), now);
    assert!(struck(&effects, peer) && !verifies(&effects));
    let effects = policy.handle(received(dag_cbor_cid(&[1])), now);
    assert!(!struck(&effects, peer) && verifies(&effects));
}

fn orphan_from(sender: PeerId, orphan: u8, parent: Cid) -> Input {
    Input::Transfer(Transfer::BlockVerified {
        peer: sender,
        bundle: bundle(orphan),
        received: ReceivedBlock {
            header: Some((dag_cbor_cid(&[orphan]), 3)),
            header_valid: true,
            outcome: Err(BlockRejection::UnknownParent(parent)),
        },
    })
}

fn asks(effects: &[Effect], of: PeerId, block: Cid) -> bool {
    effects
        .iter()
        .any(|e| matches!(e, Effect::FetchBlock { peer, cid, .. } if *peer == of && *cid == block))
}

#[test]
fn a_sender_lacking_the_parent_of_a_block_it_sent_is_struck() {
    let now = Instant::now();
    let mut policy = Policy::new(SecretKey::generate().public(), 0, 2, now);
    let (sender, other) = (PeerId::random(), PeerId::random());
    let parent = dag_cbor_cid(&[0]);
    let effects = policy.handle(orphan_from(sender, 1, parent), now);
    assert!(
        asks(&effects, sender, parent),
        "the parent is asked of the sender"
    );
    let missing = |peer| {
        Input::Transfer(Transfer::BlockMissing {
            peer,
            cid: parent,
            asked: now,
        })
    };
    let effects = policy.handle(missing(other), now);
    assert!(
        !struck(&effects, other),
        "a peer that sent no child may lack the parent"
    );
    assert!(
        asks(&effects, sender, parent),
        "then the parent is asked of the child's sender: {effects:?}"
    );
    assert!(struck(&policy.handle(missing(sender), now), sender));
}

#[test]
fn silence_about_the_parent_of_a_block_it_sent_is_no_strike_and_the_parent_is_asked_again() {
    let t0 = Instant::now();
    let mut policy = Policy::new(SecretKey::generate().public(), 0, 2, t0);
    let (slow, other) = (PeerId::random(), PeerId::random());
    let parent = dag_cbor_cid(&[0]);
    let _ = policy.handle(orphan_from(slow, 1, parent), t0);
    let _ = policy.handle(orphan_from(other, 2, parent), t0);
    // Under load the request outlives its timeout: the answer comes too late to count.
    let t1 = t0 + Duration::from_secs(20);
    let ended = |peer, timed_out, asked| {
        Input::Transfer(Transfer::RequestEnded {
            peer,
            cid: parent,
            timed_out,
            asked,
        })
    };
    let effects = policy.handle(ended(slow, true, t0), t1);
    assert!(!struck(&effects, slow), "slowness is no proof: {effects:?}");
    assert!(
        asks(&effects, other, parent),
        "asked of the other child's sender: {effects:?}"
    );
    let t2 = t1 + Duration::from_secs(20);
    let effects = policy.handle(ended(other, true, t1), t2);
    assert!(!struck(&effects, other), "{effects:?}");
    assert!(
        asks(&effects, slow, parent),
        "and of the first again: {effects:?}"
    );
    let t3 = t2 + Duration::from_secs(1);
    assert!(
        !struck(&policy.handle(ended(slow, false, t2), t3), slow),
        "a lost connection is no fault"
    );
}

#[test]
fn a_parent_request_overdue_at_a_busy_sender_is_asked_of_another_sender_meanwhile() {
    // Simulator seed 48 under heavy load: the parent was asked of the same busy peer again and
    // again, each request timing out after 20 s, and the peer stayed behind.
    let t0 = Instant::now();
    let mut policy = Policy::new(SecretKey::generate().public(), 0, 2, t0);
    let (slow, other) = (PeerId::random(), PeerId::random());
    let parent = dag_cbor_cid(&[0]);
    assert!(asks(
        &policy.handle(orphan_from(slow, 1, parent), t0),
        slow,
        parent
    ));
    let effects = policy.handle(orphan_from(other, 2, parent), t0);
    assert!(!asks(&effects, other, parent), "asked already: {effects:?}");
    // The request to `slow` still stands (the timeout is longer) but is overdue: the child,
    // sent again, asks the other sender.
    let t1 = t0 + BLOCK_REQUEST_TTL;
    let effects = policy.handle(orphan_from(slow, 1, parent), t1);
    assert!(asks(&effects, other, parent), "{effects:?}");
    assert!(!asks(&effects, slow, parent), "{effects:?}");
    // The first request's timeout then strikes nobody and asks nobody twice.
    let ended = Input::Transfer(Transfer::RequestEnded {
        peer: slow,
        cid: parent,
        timed_out: true,
        asked: t0,
    });
    let effects = policy.handle(ended, t0 + Duration::from_secs(20));
    assert!(!struck(&effects, slow), "{effects:?}");
    assert!(
        !effects
            .iter()
            .any(|e| matches!(e, Effect::FetchBlock { .. })),
        "{effects:?}"
    );
}

#[test]
fn a_late_answer_to_an_earlier_request_is_judged_by_when_that_request_was_sent() {
    let t0 = Instant::now();
    let mut policy = Policy::new(SecretKey::generate().public(), 0, 2, t0);
    let sender = PeerId::random();
    let parent = dag_cbor_cid(&[0]);
    // The block is asked of the sender before it holds it; the request waits in its queue.
    let want = Transfer::WantBlock {
        peer: sender,
        cid: parent,
    };
    assert!(asks(
        &policy.handle(Input::Transfer(want), t0),
        sender,
        parent
    ));
    // Past the request's lifetime here, the sender (which got parent and child meanwhile)
    // sends a child, and the parent is asked of it again.
    let t1 = t0 + BLOCK_REQUEST_TTL + Duration::from_secs(2);
    let effects = policy.handle(orphan_from(sender, 1, parent), t1);
    assert!(asks(&effects, sender, parent), "{effects:?}");
    // The first request's "not found" (true when it was read) arrives now.
    let t2 = t1 + Duration::from_secs(1);
    let missing = |asked| {
        Input::Transfer(Transfer::BlockMissing {
            peer: sender,
            cid: parent,
            asked,
        })
    };
    assert!(!struck(&policy.handle(missing(t0), t2), sender));
    // The second request still stands (no duplicate), and its "not found" would be a lie.
    let want = Transfer::WantBlock {
        peer: sender,
        cid: parent,
    };
    assert!(!asks(
        &policy.handle(Input::Transfer(want), t2),
        sender,
        parent
    ));
    assert!(struck(&policy.handle(missing(t1), t2), sender));
}

#[test]
fn a_block_request_that_times_out_is_asked_of_the_next_admitted_peer() {
    let now = Instant::now();
    let mut policy = Policy::new(SecretKey::generate().public(), 0, 2, now);
    let mut peers: Vec<PeerId> = (0..3).map(|_| PeerId::random()).collect();
    peers.sort();
    for peer in &peers {
        let key = SecretKey::generate().public();
        let admitted = Input::Admitted {
            peer: *peer,
            key,
            chain: crate::trust::Chain::default(),
            tip: dag_cbor_cid(&[0]),
            height: 0,
            tip_known: true,
        };
        let _ = policy.handle(Input::Connected(*peer), now);
        let _ = policy.handle(admitted, now);
    }
    let cid = dag_cbor_cid(&[5]);
    let asked_of = |effects: Vec<Effect>| {
        effects.iter().find_map(|e| match e {
            Effect::FetchBlock { peer, cid: c, .. } if *c == cid => Some(*peer),
            _ => None,
        })
    };
    let want = Input::Transfer(Transfer::WantBlock {
        peer: peers[2],
        cid,
    });
    assert_eq!(asked_of(policy.handle(want, now)), Some(peers[2]));
    let ended = |peer, timed_out| {
        Input::Transfer(Transfer::RequestEnded {
            peer,
            cid,
            timed_out,
            asked: now,
        })
    };
    assert_eq!(
        asked_of(policy.handle(ended(peers[2], true), now)),
        Some(peers[0]),
        "the next admitted peer, wrapping around"
    );
    assert_eq!(asked_of(policy.handle(ended(peers[0], false), now)), None);
}

#[test]
fn a_not_found_sent_before_the_sender_passed_on_a_child_is_no_strike_and_is_asked_again() {
    let t0 = Instant::now();
    let mut policy = Policy::new(SecretKey::generate().public(), 0, 2, t0);
    let sender = PeerId::random();
    let (child, parent) = (dag_cbor_cid(&[1]), dag_cbor_cid(&[0]));
    let asks_parent = |effects: &[Effect]| {
        effects.iter().any(
            |e| matches!(e, Effect::FetchBlock { peer, cid, .. } if *peer == sender && *cid == parent),
        )
    };
    // The parent is asked of the sender (an announcement it relayed) before it holds it...
    let want = Transfer::WantBlock {
        peer: sender,
        cid: parent,
    };
    assert!(asks_parent(&policy.handle(Input::Transfer(want), t0)));
    // ...it gets parent and child, sends the child (the answers cross: the child arrives
    // first), and its "not found", sent before, arrives after.
    let t1 = t0 + Duration::from_millis(40);
    let verified = Transfer::BlockVerified {
        peer: sender,
        bundle: bundle(1),
        received: ReceivedBlock {
            header: Some((child, 2)),
            header_valid: true,
            outcome: Err(BlockRejection::UnknownParent(parent)),
        },
    };
    let _ = policy.handle(Input::Transfer(verified), t1);
    let missing = |asked| {
        Input::Transfer(Transfer::BlockMissing {
            peer: sender,
            cid: parent,
            asked,
        })
    };
    let effects = policy.handle(missing(t0), t1);
    assert!(!struck(&effects, sender), "{effects:?}");
    assert!(asks_parent(&effects), "asked again: {effects:?}");
    // Asked after the child arrived, "not found" is a lie.
    assert!(struck(&policy.handle(missing(t1), t1), sender));
}

/// How `effects` ask for `block`: `Some(lean)` when they fetch it.
fn fetch_of(effects: &[Effect], block: Cid) -> Option<bool> {
    effects.iter().find_map(|e| match e {
        Effect::FetchBlock { cid, lean, .. } if *cid == block => Some(*lean),
        _ => None,
    })
}

#[test]
fn a_ready_peer_asks_for_blocks_alone_and_again_with_their_objects_when_one_lacked() {
    let now = Instant::now();
    let (mut policy, peer) = super::tests::with_peer(5, now);
    assert!(policy.health().ready);
    let (block, object) = (dag_cbor_cid(&[6]), dag_cbor_cid(b"object"));
    let want = |cid| Input::Transfer(Transfer::WantBlock { peer, cid });
    assert_eq!(
        fetch_of(&policy.handle(want(block), now), block),
        Some(true)
    );
    let lacking = |bundle| {
        Input::Transfer(Transfer::BlockVerified {
            peer,
            bundle,
            received: ReceivedBlock {
                header: Some((block, 6)),
                header_valid: true,
                outcome: Err(BlockRejection::Transaction {
                    index: 0,
                    id: crate::journal::TxId([0; 32]),
                    reason: Box::new(crate::journal::TxRejection::UnknownObject(object)),
                }),
            },
        })
    };
    // It came alone and lacks an object: asked again, with its objects, of its sender.
    let effects = policy.handle(lacking(bundle(6)), now);
    assert_eq!(fetch_of(&effects, block), Some(false), "{effects:?}");
    assert!(!struck(&effects, peer), "a lacking object is no fault");
    // It came with what the sender held and still lacks one: that object is fetched alone.
    let effects = policy.handle(lacking(bundle(6)), now);
    assert_eq!(fetch_of(&effects, block), None, "{effects:?}");
    assert!(effects
        .iter()
        .any(|e| matches!(e, Effect::AskObject { object: o, .. } if *o == object)));
    // A peer that is not ready (here: not yet synced with anyone) asks with the objects.
    let mut behind = Policy::new(SecretKey::generate().public(), 0, 2, now);
    let other = dag_cbor_cid(&[7]);
    let effects = behind.handle(want(other), now);
    assert_eq!(fetch_of(&effects, other), Some(false));
}

#[test]
fn a_ready_peer_asks_with_their_objects_for_the_parent_of_a_block_that_came_before_it() {
    let now = Instant::now();
    let (mut policy, peer) = super::tests::with_peer(5, now);
    assert!(policy.health().ready);
    let verified = |cid, outcome| {
        Input::Transfer(Transfer::BlockVerified {
            peer,
            bundle: bundle(9),
            received: ReceivedBlock {
                header: Some((cid, 9)),
                header_valid: true,
                outcome,
            },
        })
    };
    // The parent is a block this peer missed, likely with the gossip of its transactions.
    let (child, parent) = (dag_cbor_cid(&[9]), dag_cbor_cid(&[8]));
    let effects = policy.handle(
        verified(child, Err(BlockRejection::UnknownParent(parent))),
        now,
    );
    assert_eq!(fetch_of(&effects, parent), Some(false), "{effects:?}");
    // A block that came alone and was taken, onto the tip or a side branch, is not asked again.
    for (n, outcome) in [(10, Added::Extended), (11, Added::SideBranch)] {
        let cid = dag_cbor_cid(&[n]);
        let effects = policy.handle(verified(cid, Ok(outcome)), now);
        assert_eq!(fetch_of(&effects, cid), None, "{effects:?}");
    }
}
