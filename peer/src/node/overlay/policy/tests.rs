//! The policy as a whole: inputs in, effects out, on a hand-driven clock.

use std::time::{Duration, Instant};

use libp2p::PeerId;

use super::peers::MAX_STRIKES;
use super::readiness::Health;
use super::{Effect, Input, Policy};
use crate::model::codec::dag_cbor_cid;
use crate::model::Cid;
use crate::trust::{PublicKey, SecretKey};

pub(super) fn key() -> PublicKey {
    SecretKey::generate().public()
}

fn cid(n: u8) -> Cid {
    dag_cbor_cid(&[n])
}

/// A gossip id for an announcement of `tip`.
fn gossip_id(tip: &Cid) -> libp2p::gossipsub::MessageId {
    libp2p::gossipsub::MessageId::new(&tip.to_bytes())
}

fn last_health(effects: &[Effect]) -> Option<Health> {
    effects.iter().rev().find_map(|e| match e {
        Effect::Health(h) => Some(*h),
        _ => None,
    })
}

/// Whether `effects` close the connections with `peer` (a disconnect or a block).
/// `peer` announces its block `tip` at `height` (not held here).
fn announce(policy: &mut Policy, peer: PeerId, tip: Cid, height: u64, now: Instant) -> Vec<Effect> {
    policy.handle(
        Input::Announced {
            origin: peer,
            via: peer,
            message: gossip_id(&tip),
            tip,
            height,
            tip_known: false,
        },
        now,
    )
}

/// The header of `cid` verified at `height` (`held`: the journal took the block).
fn verify(policy: &mut Policy, cid: Cid, height: u64, held: bool, now: Instant) -> Vec<Effect> {
    policy.handle(Input::HeaderVerified { cid, height, held }, now)
}

/// A policy at `height` with one admitted peer whose tip is known (verified) at `height`.
pub(super) fn with_peer(height: u64, now: Instant) -> (Policy, PeerId) {
    let mut policy = Policy::new(key(), height, 2, now);
    let other = key();
    let peer = other.peer_id();
    let _ = policy.handle(Input::Tick { seeds: 1 }, now);
    let effects = policy.handle(Input::Connected(peer), now);
    assert!(matches!(effects[..], [Effect::SendHello(p)] if p == peer));
    let _ = policy.handle(
        Input::Admitted {
            peer,
            key: other,
            chain: crate::trust::Chain::default(),
            tip: cid(0),
            height,
            tip_known: true,
        },
        now,
    );
    (policy, peer)
}

#[test]
fn a_network_of_one_is_ready_and_may_commit() {
    let now = Instant::now();
    let mut policy = Policy::new(key(), 0, 3, now);
    let effects = policy.handle(Input::Tick { seeds: 0 }, now);
    assert_eq!(
        last_health(&effects),
        Some(Health {
            ready: true,
            synced: true
        })
    );
    assert!(
        !effects.iter().any(|e| matches!(e, Effect::DialSeeds)),
        "no seed other than itself: nothing to dial"
    );
}

#[test]
fn a_peer_with_seeds_waits_for_an_admitted_peer() {
    let now = Instant::now();
    let mut policy = Policy::new(key(), 0, 3, now);
    let effects = policy.handle(Input::Tick { seeds: 2 }, now);
    assert_eq!(last_health(&effects), Some(Health::default()));
    assert!(effects.iter().any(|e| matches!(e, Effect::DialSeeds)));
}

#[test]
fn an_announced_height_counts_only_once_its_header_is_verified() {
    let now = Instant::now();
    let (mut policy, peer) = with_peer(5, now);
    assert!(policy.health().ready && policy.health().synced);
    let effects = announce(&mut policy, peer, cid(9), u64::MAX / 2, now);
    assert!(effects.iter().any(
        |e| matches!(e, Effect::FetchBlock { peer: p, cid: c, .. } if *p == peer && *c == cid(9))
    ));
    assert_eq!(
        last_health(&effects),
        Some(Health {
            ready: true,
            synced: true
        }),
        "an unverified claim neither stops commits nor readiness"
    );
    // The block turns out to be at height 6: the claim was a lie.
    let effects = verify(&mut policy, cid(9), 6, false, now);
    assert!(effects
        .iter()
        .any(|e| matches!(e, Effect::Struck { peer: p, .. } if *p == peer)));
    assert!(policy.health().synced);
}

#[test]
fn a_verified_height_ahead_stops_commits_until_reached() {
    let now = Instant::now();
    let (mut policy, peer) = with_peer(5, now);
    let _ = announce(&mut policy, peer, cid(6), 6, now);
    let effects = verify(&mut policy, cid(6), 6, false, now);
    assert_eq!(
        last_health(&effects),
        Some(Health {
            ready: true,
            synced: false
        })
    );
    let effects = policy.handle(Input::Tip(6), now);
    assert!(last_health(&effects).is_some_and(|h| h.synced));
}

#[test]
fn an_unverifiable_claim_strikes_its_originator_not_the_forwarder() {
    let now = Instant::now();
    let (mut policy, forwarder) = with_peer(5, now);
    let liar_key = key();
    let liar = liar_key.peer_id();
    let _ = policy.handle(
        Input::Record {
            peer: liar,
            key: liar_key,
            addrs: vec![],
            tip: cid(0),
            height: 5,
            tip_known: true,
        },
        now,
    );
    for n in 0..MAX_STRIKES {
        let effects = policy.handle(
            Input::Announced {
                origin: liar,
                via: forwarder,
                message: gossip_id(&cid(100 + n as u8)),
                tip: cid(100 + n as u8),
                height: 1_000,
                tip_known: false,
            },
            now,
        );
        assert!(
            effects
                .iter()
                .any(|e| matches!(e, Effect::FetchBlock { peer, .. } if *peer == forwarder)),
            "the liar is not connected: the block is asked of the forwarder"
        );
        let effects = policy.handle(
            Input::Unverifiable {
                cid: cid(100 + n as u8),
                blame: true,
            },
            now,
        );
        assert!(effects
            .iter()
            .all(|e| !matches!(e, Effect::Struck { peer, .. } if *peer == forwarder)));
    }
    assert!(policy.is_banned(&liar, now));
    assert!(!policy.is_banned(&forwarder, now));
}

#[test]
fn a_stalled_claim_ahead_expires_and_commits_resume() {
    let now = Instant::now();
    let (mut policy, peer) = with_peer(5, now);
    let _ = announce(&mut policy, peer, cid(50), 50, now);
    // A header signed on a parent nobody has (or one a busy path never delivers): verified,
    // but sync never gets there. The claim expires without blame (the parent's requests judge
    // a missing parent, `withheld`): slowness is no proof.
    let _ = verify(&mut policy, cid(50), 50, false, now);
    assert!(!policy.health().synced);
    let later = now + super::heights::CLAIM_DEADLINE + Duration::from_secs(1);
    let effects = policy.handle(Input::Tick { seeds: 1 }, later);
    assert!(!effects
        .iter()
        .any(|e| matches!(e, Effect::Struck { peer: p, .. } if *p == peer)));
    assert!(last_health(&effects).is_some_and(|h| h.synced && h.ready));
}

#[test]
fn a_claim_dropped_for_a_reason_of_the_receiver_strikes_nobody() {
    let now = Instant::now();
    let (mut policy, peer) = with_peer(5, now);
    let _ = announce(&mut policy, peer, cid(7), 6, now);
    let effects = policy.handle(
        Input::Unverifiable {
            cid: cid(7),
            blame: false,
        },
        now,
    );
    assert!(!effects.iter().any(|e| matches!(e, Effect::Struck { .. })));
    assert!(policy.heights().get(&peer).is_none(), "the claim went");
}

#[test]
fn a_claimed_tip_held_on_a_lighter_branch_does_not_stop_commits() {
    let now = Instant::now();
    let (mut policy, peer) = with_peer(5, now);
    let _ = announce(&mut policy, peer, cid(8), 8, now);
    // The journal took the block but kept its own, heavier, chain at height 5.
    let effects = verify(&mut policy, cid(8), 8, true, now);
    assert!(last_health(&effects).is_some_and(|h| h.synced && h.ready));
}

#[test]
fn a_claimer_lacking_its_claimed_tip_is_struck_alone_not_the_others_claiming_it() {
    let now = Instant::now();
    let (mut policy, author) = with_peer(5, now);
    let liar_key = key();
    let liar = liar_key.peer_id();
    let _ = policy.handle(Input::Connected(liar), now);
    let _ = policy.handle(
        Input::Admitted {
            peer: liar,
            key: liar_key,
            chain: crate::trust::Chain::default(),
            tip: cid(0),
            height: 5,
            tip_known: true,
        },
        now,
    );
    // Both claim the author's new block; the liar, asked for it, says it does not hold it.
    let tip = cid(9);
    let _ = announce(&mut policy, author, tip, 6, now);
    let _ = announce(&mut policy, liar, tip, 6, now);
    for _ in 0..MAX_STRIKES {
        let missing = super::Transfer::BlockMissing {
            peer: liar,
            cid: tip,
            asked: now,
        };
        let effects = policy.handle(Input::Transfer(missing), now);
        assert!(
            effects
                .iter()
                .all(|e| !matches!(e, Effect::Struck { peer, .. } if *peer == author)),
            "the block's author holds it: {effects:?}"
        );
        let _ = announce(&mut policy, liar, tip, 6, now);
    }
    assert!(policy.is_banned(&liar, now));
    assert!(!policy.is_banned(&author, now));
    assert_eq!(
        policy.heights().get(&author).map(|c| c.tip),
        Some(tip),
        "the author's claim stands"
    );
}

#[test]
fn a_claim_made_after_the_request_is_not_contradicted_by_its_answer() {
    let t0 = Instant::now();
    let (mut policy, peer) = with_peer(5, t0);
    let tip = cid(9);
    // The peer forwards a stranger's announcement before it holds the block: asked of it.
    let forwarded = Input::Announced {
        origin: key().peer_id(),
        via: peer,
        message: gossip_id(&tip),
        tip,
        height: 6,
        tip_known: false,
    };
    let effects = policy.handle(forwarded, t0);
    assert!(effects
        .iter()
        .any(|e| matches!(e, Effect::FetchBlock { peer: p, .. } if *p == peer)));
    // It gets the block and claims it; its "not found", sent before, arrives after the claim.
    let t1 = t0 + Duration::from_millis(50);
    let _ = announce(&mut policy, peer, tip, 6, t1);
    let missing = super::Transfer::BlockMissing {
        peer,
        cid: tip,
        asked: t0,
    };
    let effects = policy.handle(Input::Transfer(missing), t1);
    assert!(
        effects.iter().all(|e| !matches!(e, Effect::Struck { .. })),
        "{effects:?}"
    );
    assert!(
        effects.iter().any(
            |e| matches!(e, Effect::FetchBlock { peer: p, cid, .. } if *p == peer && *cid == tip)
        ),
        "asked again: {effects:?}"
    );
    assert_eq!(policy.heights().get(&peer).map(|c| c.tip), Some(tip));
}
