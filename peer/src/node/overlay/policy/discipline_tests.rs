//! What misbehaviour costs a peer (`discipline.rs`): strikes up to a ban, bans that block the
//! peer until they expire, refused dialers blocked with a growing back-off, bounded ban books.

use std::time::{Duration, Instant};

use libp2p::PeerId;

use super::peers::{BAN_TIME, MAX_BANNED, MAX_STRIKES};
use super::tests::{key, with_peer};
use super::{Effect, Input, Policy};

fn disconnects(effects: &[Effect], peer: PeerId) -> bool {
    effects.iter().any(|e| match e {
        Effect::Disconnect { peer: p, .. } | Effect::Block { peer: p, on: true } => *p == peer,
        _ => false,
    })
}

fn unblocks(effects: &[Effect], peer: PeerId) -> bool {
    effects
        .iter()
        .any(|e| matches!(e, Effect::Block { peer: p, on: false } if *p == peer))
}

#[test]
fn strikes_ban_at_the_threshold_and_a_banned_peer_is_refused_until_expiry() {
    let now = Instant::now();
    let (mut policy, peer) = with_peer(5, now);
    for n in 1..=MAX_STRIKES {
        let effects = policy.handle(
            Input::Misbehaved {
                peer,
                kind: "block",
                reason: "bad_signature",
            },
            now,
        );
        assert_eq!(disconnects(&effects, peer), n == MAX_STRIKES, "strike {n}");
    }
    assert!(!policy.is_admitted(&peer));
    let later = now + Duration::from_secs(1);
    let effects = policy.handle(Input::Connected(peer), later);
    assert!(
        disconnects(&effects, peer),
        "a banned peer's reconnect is refused"
    );
    assert!(!effects.iter().any(|e| matches!(e, Effect::SendHello(_))));
    let effects = policy.handle(Input::Connected(peer), now + BAN_TIME);
    assert!(
        matches!(effects[..], [Effect::SendHello(p)] if p == peer),
        "after the ban it may try again"
    );
}

#[test]
fn a_refused_dialer_is_blocked_with_a_growing_back_off() {
    let now = Instant::now();
    let mut policy = Policy::new(key(), 0, 2, now);
    let intruder = PeerId::random();
    let backoff = super::peers::REFUSAL_BACKOFF;
    let mut at = now;
    for round in 0..3u32 {
        let _ = policy.handle(Input::Connected(intruder), at);
        let effects = policy.handle(
            Input::Refused {
                peer: intruder,
                reason: "no certificate".into(),
            },
            at,
        );
        assert!(disconnects(&effects, intruder), "round {round}");
        let wait = backoff * 2u32.pow(round);
        let early = policy.handle(
            Input::Tick { seeds: 1 },
            at + wait - Duration::from_millis(1),
        );
        assert!(!unblocks(&early, intruder), "round {round}: still blocked");
        at += wait;
        let effects = policy.handle(Input::Tick { seeds: 1 }, at);
        assert!(
            unblocks(&effects, intruder),
            "round {round}: unblocked after {wait:?}"
        );
    }
}

#[test]
fn a_ban_blocks_the_peer_until_it_expires() {
    let now = Instant::now();
    let (mut policy, peer) = with_peer(5, now);
    for _ in 0..MAX_STRIKES {
        let _ = policy.handle(
            Input::Misbehaved {
                peer,
                kind: "message",
                reason: "garbage",
            },
            now,
        );
    }
    let effects = policy.handle(Input::Tick { seeds: 1 }, now + BAN_TIME / 2);
    assert!(!unblocks(&effects, peer));
    let effects = policy.handle(Input::Tick { seeds: 1 }, now + BAN_TIME);
    assert!(unblocks(&effects, peer));
}

#[test]
fn a_flood_of_bans_lifts_the_oldest_and_counts_the_eviction() {
    let now = Instant::now();
    let mut policy = Policy::new(key(), 0, 2, now);
    let misbehave = |policy: &mut Policy, peer: PeerId, at: Instant| {
        let mut effects = vec![];
        for _ in 0..MAX_STRIKES {
            effects = policy.handle(
                Input::Misbehaved {
                    peer,
                    kind: "block",
                    reason: "invalid",
                },
                at,
            );
        }
        effects
    };
    let first = PeerId::random();
    let _ = misbehave(&mut policy, first, now);
    for i in 1..MAX_BANNED {
        let effects = misbehave(
            &mut policy,
            PeerId::random(),
            now + Duration::from_millis(i as u64),
        );
        assert!(!effects
            .iter()
            .any(|e| matches!(e, Effect::Evicted("banned_peers"))));
    }
    let last = PeerId::random();
    let effects = misbehave(&mut policy, last, now + Duration::from_secs(1));
    assert!(disconnects(&effects, last));
    assert!(effects
        .iter()
        .any(|e| matches!(e, Effect::Evicted("banned_peers"))));
    assert!(unblocks(&effects, first), "the lifted ban is unblocked");
}
