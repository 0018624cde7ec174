//! What the policy does with blocks peers send: the block asked for or a strike, and the
//! parent of an orphan its sender must hold.

use std::time::Instant;

use libp2p::PeerId;

use super::{Effect, Input, Policy, Transfer};
use crate::journal::BlockRejection;
use crate::model::codec::dag_cbor_cid;
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

#[test]
fn a_sender_lacking_or_silent_about_the_parent_of_a_block_it_sent_is_struck() {
    let now = Instant::now();
    let mut policy = Policy::new(SecretKey::generate().public(), 0, 2, now);
    let (sender, other) = (PeerId::random(), PeerId::random());
    let (orphan, parent) = (dag_cbor_cid(&[1]), dag_cbor_cid(&[0]));
    let verified = Transfer::BlockVerified {
        peer: sender,
        bundle: bundle(1),
        received: ReceivedBlock {
            header: Some((orphan, 3)),
            header_valid: true,
            outcome: Err(BlockRejection::UnknownParent(parent)),
        },
    };
    let effects = policy.handle(Input::Transfer(verified), now);
    assert!(
        effects.iter().any(
            |e| matches!(e, Effect::FetchBlock { peer, cid } if *peer == sender && *cid == parent)
        ),
        "the parent is asked of the sender"
    );
    let missing = |peer| Input::Transfer(Transfer::BlockMissing { peer, cid: parent });
    assert!(
        !struck(&policy.handle(missing(other), now), other),
        "a peer that sent no child may lack the parent"
    );
    assert!(struck(&policy.handle(missing(sender), now), sender));
    let ended = |timed_out| {
        Input::Transfer(Transfer::RequestEnded {
            peer: sender,
            cid: parent,
            timed_out,
        })
    };
    assert!(
        !struck(&policy.handle(ended(false), now), sender),
        "a lost connection is no fault"
    );
    assert!(
        struck(&policy.handle(ended(true), now), sender),
        "silence about the parent is"
    );
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
            Effect::FetchBlock { peer, cid: c } if *c == cid => Some(*peer),
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
        })
    };
    assert_eq!(
        asked_of(policy.handle(ended(peers[2], true), now)),
        Some(peers[0]),
        "the next admitted peer, wrapping around"
    );
    assert_eq!(asked_of(policy.handle(ended(peers[0], false), now)), None);
}
