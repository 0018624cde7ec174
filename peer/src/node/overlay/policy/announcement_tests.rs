//! What the policy does with block announcements: held until their block is, relayed once
//! per block, and made by this peer for a tip none brought (`announcements.rs`).

use std::time::{Duration, Instant};

use libp2p::gossipsub::MessageId;
use libp2p::PeerId;

use super::announcements::HOLD_FOR;
use super::{Acceptance, Effect, Input, Policy, Transfer};
use crate::journal::{Added, BlockRejection};
use crate::model::codec::dag_cbor_cid;
use crate::model::Cid;
use crate::node::{BlockBundle, ReceivedBlock};
use crate::trust::SecretKey;

/// The gossip verdicts in `effects` on messages `forwarder` sent.
fn verdicts(effects: &[Effect], forwarder: PeerId) -> Vec<(MessageId, Acceptance)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Validate {
                source,
                message,
                accept,
            } if *source == forwarder => Some((message.clone(), *accept)),
            _ => None,
        })
        .collect()
}

/// The announcements `effects` publish: (block, height).
fn announced(effects: &[Effect]) -> Vec<(Cid, u64)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Announce { cid, height } => Some((*cid, *height)),
            _ => None,
        })
        .collect()
}

/// `author`'s announcement number `n` of block `n` at `height`, forwarded by `via`.
fn announce(author: PeerId, via: PeerId, n: u8, height: u64, tip_known: bool) -> Input {
    Input::Announced {
        origin: author,
        via,
        message: MessageId::new(&[n]),
        tip: dag_cbor_cid(&[n]),
        height,
        tip_known,
    }
}

/// Block `n` at `height`, sent by `peer`, judged `outcome` by the journal.
fn judged(peer: PeerId, n: u8, height: u64, outcome: Result<Added, BlockRejection>) -> Input {
    Input::Transfer(Transfer::BlockVerified {
        peer,
        bundle: BlockBundle {
            block: vec![n],
            objects: vec![],
        },
        received: ReceivedBlock {
            header: Some((dag_cbor_cid(&[n]), height)),
            header_valid: true,
            outcome,
        },
    })
}

#[test]
fn a_block_announcement_is_relayed_only_once_its_block_is_held() {
    let t0 = Instant::now();
    let mut policy = Policy::new(SecretKey::generate().public(), 0, 2, t0);
    let (forwarder, author) = (PeerId::random(), PeerId::random());
    let verdicts = |effects: &[Effect]| verdicts(effects, forwarder);
    let announce = |n: u8, tip_known| announce(author, forwarder, n, 1, tip_known);
    let judged = |n: u8, outcome| judged(forwarder, n, 1, outcome);
    // Held until the block is taken, then relayed.
    let effects = policy.handle(announce(1, false), t0);
    assert!(verdicts(&effects).is_empty(), "{effects:?}");
    let effects = policy.handle(judged(1, Ok(Added::Extended)), t0);
    assert_eq!(
        verdicts(&effects),
        vec![(MessageId::new(&[1]), Acceptance::Accept)]
    );
    // A block this peer holds: relayed at once.
    let effects = policy.handle(announce(2, true), t0);
    assert_eq!(
        verdicts(&effects),
        vec![(MessageId::new(&[2]), Acceptance::Accept)]
    );
    // An invalid block's announcement is rejected, one never fetched is dropped in time.
    let _ = policy.handle(announce(3, false), t0);
    let _ = policy.handle(announce(4, false), t0);
    let invalid = Err(BlockRejection::BadSignature);
    let effects = policy.handle(judged(3, invalid), t0);
    assert_eq!(
        verdicts(&effects),
        vec![(MessageId::new(&[3]), Acceptance::Reject)]
    );
    let tick = Input::Tick { seeds: 0 };
    assert!(verdicts(&policy.handle(tick, t0 + Duration::from_secs(1))).is_empty());
    let tick = Input::Tick { seeds: 0 };
    assert_eq!(
        verdicts(&policy.handle(tick, t0 + HOLD_FOR)),
        vec![(MessageId::new(&[4]), Acceptance::Ignore)]
    );
}

#[test]
fn a_tip_no_announcement_brought_is_announced_here_once_caught_up_and_copies_are_not_relayed() {
    let t0 = Instant::now();
    let (mut policy, sender) = super::tests::with_peer(0, t0);
    let author = sender;
    let block = |n: u8| dag_cbor_cid(&[n]);
    // Behind a verified claim at height 3, the blocks of the sync are not announced.
    let _ = policy.handle(announce(author, sender, 9, 3, false), t0);
    let header = Input::HeaderVerified {
        cid: block(9),
        height: 3,
        held: false,
    };
    let _ = policy.handle(header, t0);
    let effects = policy.handle(judged(sender, 1, 1, Ok(Added::Extended)), t0);
    assert!(announced(&effects).is_empty(), "{effects:?}");
    // A side branch is not this peer's tip: not announced either.
    let effects = policy.handle(judged(sender, 2, 3, Ok(Added::SideBranch)), t0);
    assert!(announced(&effects).is_empty(), "{effects:?}");
    // Caught up through a block no announcement brought (a neighbour's record named it, say):
    // announced here, since the flood that should have brought it stopped short of here.
    let effects = policy.handle(judged(sender, 4, 4, Ok(Added::Extended)), t0);
    assert_eq!(announced(&effects), vec![(block(4), 4)]);
    // Its original announcement, or another peer's, arriving later is not relayed again.
    let late = policy.handle(announce(author, sender, 4, 4, true), t0);
    assert_eq!(
        verdicts(&late, sender),
        vec![(MessageId::new(&[4]), Acceptance::Ignore)]
    );
    // This peer's own block is announced once.
    let committed = || Input::Committed {
        cid: block(5),
        height: 5,
    };
    assert_eq!(
        announced(&policy.handle(committed(), t0)),
        vec![(block(5), 5)]
    );
    assert!(announced(&policy.handle(committed(), t0)).is_empty());
}
