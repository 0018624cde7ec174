//! Specification tests of membership on the chain: joins and revocations, their activation
//! once a block records their block final, the per-principal cap in joining order, and determinism (a property run).

use proptest::prelude::*;

use super::*;
use crate::trust::{Certificate, Revocation, RevocationList, SecretKey, Signed};

const NOW: u64 = 1_700_000_000;
const NET: &str = "members";

/// A root and two principals; peers are certified on demand.
struct Orgs {
    root: SecretKey,
    principals: Vec<(SecretKey, Chain)>,
}

impl Orgs {
    fn new() -> Self {
        let root = SecretKey::generate();
        let principals = (0..2)
            .map(|_| {
                let key = SecretKey::generate();
                let cert =
                    Certificate::issue(&root, key.public(), Level::Principal, NOW - 10, NOW + 1000);
                (key, Chain(vec![cert]))
            })
            .collect();
        Self { root, principals }
    }

    /// A new peer of principal `p`.
    fn peer(&self, p: usize) -> (SecretKey, Chain) {
        let (principal, l0) = &self.principals[p];
        let key = SecretKey::generate();
        let cert = Certificate::issue(principal, key.public(), Level::Peer, NOW - 10, NOW + 1000);
        (key.clone(), Chain::extend(cert, l0))
    }

    fn params(&self, members: &[(SecretKey, Chain)], cap: u32, epoch: u64) -> NetworkParams {
        let chains = members.iter().map(|(_, c)| c.clone()).collect();
        let mut params = NetworkParams::new(NET, self.root.public(), chains);
        params.consensus.max_weight_per_principal = cap;
        params.consensus.epoch_length = epoch;
        params
    }

    /// A list of `issuer` revoking `subjects`.
    fn revoke(&self, issuer: &SecretKey, subjects: &[PublicKey], revoked_at: u64) -> Record {
        let mut list = RevocationList::empty(issuer, NOW);
        for subject in subjects {
            let revocation = Revocation {
                subject: *subject,
                revoked_at,
                reason: "test".into(),
            };
            list = list.with(issuer, revocation, NOW);
        }
        Record::Revoke(list)
    }
}

fn no_local(orgs: &Orgs) -> RevocationSet {
    RevocationSet::new(orgs.root.public())
}

/// `m` walked to the block at `height` (changes due in force), then `records` taken in it.
fn block(m: &Membership, height: u64, records: &[Record], local: &RevocationSet) -> Membership {
    certified(m, height, records, None, local)
}

/// [`block`] of a block that also records the checkpoint at `finality` final.
fn certified(
    m: &Membership,
    height: u64,
    records: &[Record],
    finality: Option<u64>,
    local: &RevocationSet,
) -> Membership {
    let mut next = if m.changes_at(height) {
        m.advanced(height)
    } else {
        m.clone()
    };
    next.take_block(records, height, NOW, local).unwrap();
    if let Some(checkpoint) = finality {
        next.record_finality(checkpoint, height);
    }
    next
}

#[test]
fn initial_seats_are_the_parameters_seated_members() {
    let orgs = Orgs::new();
    let members: Vec<_> = (0..4)
        .map(|i| orgs.peer(i % 2))
        .chain([orgs.peer(0)])
        .collect();
    let params = orgs.params(&members, 2, 4);
    let m = Membership::initial(&params);
    assert_eq!(m.seats().peers(), params.seated_members().as_slice());
    assert_eq!(
        m.seats().peers().len(),
        4,
        "principal 0's third peer has no seat"
    );
    assert_eq!(m.members().len(), 5);
}

#[test]
fn a_change_whose_block_is_never_recorded_final_never_takes_effect() {
    let orgs = Orgs::new();
    let members: Vec<_> = (0..3).map(|_| orgs.peer(0)).collect();
    let m0 = Membership::initial(&orgs.params(&members, 3, 4));
    let local = no_local(&orgs);
    let (key, chain) = orgs.peer(1);
    let join = Record::join(&key, &chain, NET);
    let victim = members[0].0.public();
    let revoke = orgs.revoke(&orgs.root, &[victim], NOW);
    let m5 = block(&m0, 5, &[join, revoke], &local);
    assert!(
        m5.has_joined(&key.public()),
        "a replayed join is refused at once"
    );
    assert!(m5.revoked_in(&members[0].1 .0).is_some(), "bound at once");
    // A partition, a stalled vote: blocks go on, no block records finality above 4.
    let mut m = m5;
    for height in 6..200 {
        let finality = (height == 40).then_some(4);
        m = certified(&m, height, &[], finality, &local);
        assert!(m.awaits_finality(), "still waiting at {height}");
        assert!(!m.changes_at(height + 1));
        assert!(
            !m.seats().peers().contains(&key.public()),
            "seated at {height}"
        );
        assert!(m.seats().peers().contains(&victim), "unseated at {height}");
    }
    assert_eq!(m.recorded_final(), 4, "finality below the change's block");
}

#[test]
fn a_join_takes_its_seat_an_epoch_after_a_block_records_its_block_final() {
    let orgs = Orgs::new();
    let members: Vec<_> = (0..3).map(|_| orgs.peer(0)).collect();
    let m0 = Membership::initial(&orgs.params(&members, 3, 4));
    let local = no_local(&orgs);
    let (key, chain) = orgs.peer(1);
    let join = Record::join(&key, &chain, NET);
    assert_eq!(m0.check(&join, NOW, &local), Ok(()));
    // Finality recorded at 13 (or 16): its checkpoint is 16, the seat counts from 16 + 4 + 1.
    assert_eq!(m0.activation(13), 21);
    assert_eq!(m0.activation(16), 21);
    assert_eq!(m0.activation(17), 25);
    let m5 = block(&m0, 5, std::slice::from_ref(&join), &local);
    assert!(m5.has_joined(&key.public()));
    assert_eq!(
        m5.check(&join, NOW, &local),
        Err(RecordRejection::AlreadyMember(key.public())),
        "a replayed join"
    );
    // Block 13 records checkpoint 8 final: the join's block 5 is below it.
    let mut m = m5;
    for height in 6..21 {
        assert!(!m.changes_at(height), "nothing due at {height}");
        m = certified(&m, height, &[], (height == 13).then_some(8), &local);
        assert!(!m.seats().peers().contains(&key.public()));
        assert!(m.awaits_finality(), "at {height}");
    }
    assert_eq!(m.recorded_final(), 8);
    assert!(m.changes_at(21));
    let m21 = block(&m, 21, &[], &local);
    assert!(!m21.awaits_finality(), "in force");
    assert!(m21.seats().peers().contains(&key.public()));
    assert_eq!(m21.seats().peers().len(), 4);
}

#[test]
fn joins_that_do_not_hold_are_refused() {
    let orgs = Orgs::new();
    let members: Vec<_> = (0..2).map(|_| orgs.peer(0)).collect();
    let m = Membership::initial(&orgs.params(&members, 3, 4));
    let local = no_local(&orgs);
    let (key, chain) = orgs.peer(1);
    let other_net = Record::join(&key, &chain, "elsewhere");
    assert_eq!(
        m.check(&other_net, NOW, &local),
        Err(RecordRejection::WrongNetwork("elsewhere".into()))
    );
    let Record::Join(mut forged) = Record::join(&key, &chain, NET) else {
        unreachable!()
    };
    forged.signature = Signed::sign(forged.body.clone(), &SecretKey::generate()).signature;
    assert_eq!(
        m.check(&Record::Join(forged), NOW, &local),
        Err(RecordRejection::BadJoinSignature)
    );
    let expired = m.check(&Record::join(&key, &chain, NET), NOW + 5000, &local);
    assert!(matches!(
        expired,
        Err(RecordRejection::Certificate(CertError::Expired { .. }))
    ));
    assert_eq!(
        m.check(
            &Record::join(&members[0].0, &members[0].1, NET),
            NOW,
            &local
        ),
        Err(RecordRejection::AlreadyMember(members[0].0.public()))
    );
    // A principal's chain is not a peer's.
    let principal = &orgs.principals[1];
    let wrong_level = m.check(&Record::join(&principal.0, &principal.1, NET), NOW, &local);
    assert!(matches!(
        wrong_level,
        Err(RecordRejection::Certificate(CertError::WrongLevel { .. }))
    ));
}

#[test]
fn a_revocation_binds_the_next_block_and_frees_the_seat_once_its_block_is_recorded_final() {
    let orgs = Orgs::new();
    let members: Vec<_> = (0..4).map(|_| orgs.peer(0)).collect();
    let m0 = Membership::initial(&orgs.params(&members, 3, 2));
    let local = no_local(&orgs);
    let seated = m0.seats().peers().to_vec();
    assert_eq!(seated.len(), 3);
    let waiting = members
        .iter()
        .find(|(k, _)| !seated.contains(&k.public()))
        .unwrap();
    let victim = members
        .iter()
        .find(|(k, _)| seated.contains(&k.public()))
        .unwrap();
    // Signed by the victim's principal, dated in the future: binding from the next block anyway.
    let principal = &orgs.principals[0].0;
    let revoke = orgs.revoke(principal, &[victim.0.public()], NOW + 10_000);
    assert_eq!(m0.check(&revoke, NOW, &local), Ok(()));
    assert!(m0.revoked_in(&victim.1 .0).is_none());
    let m3 = block(&m0, 3, std::slice::from_ref(&revoke), &local);
    assert!(matches!(
        m3.revoked_in(&victim.1 .0),
        Some(CertError::Revoked { .. })
    ));
    let verified = victim
        .1
        .verify(&orgs.root.public(), m3.revocations(), NOW + 1, Level::Peer);
    assert!(
        matches!(verified, Err(CertError::Revoked { .. })),
        "{verified:?}"
    );
    assert_eq!(
        m3.check(&revoke, NOW, &local),
        Err(RecordRejection::NothingNew(principal.public())),
        "a replayed list"
    );
    // Block 7 records checkpoint 4 final (the revocation's block 3 below it): activation
    // 8 + 2 + 1 = 11. A certificate of checkpoint 2, below the block, changes nothing.
    assert_eq!(m3.activation(7), 11);
    let m5 = certified(&m3, 4, &[], Some(2), &local);
    let m5 = block(&m5, 5, &[], &local);
    assert!(m5.awaits_finality());
    let m7 = certified(&block(&m5, 6, &[], &local), 7, &[], Some(4), &local);
    let m10 = (8..11).fold(m7, |m, h| block(&m, h, &[], &local));
    assert_eq!(m10.seats().peers(), seated.as_slice());
    let m11 = block(&m10, 11, &[], &local);
    assert!(!m11.seats().peers().contains(&victim.0.public()));
    assert!(
        m11.seats().peers().contains(&waiting.0.public()),
        "the principal's waiting member takes the freed seat"
    );
    assert_eq!(m11.seats().peers().len(), 3);
}

#[test]
fn revocations_need_a_known_issuer_and_a_valid_signature() {
    let orgs = Orgs::new();
    let members: Vec<_> = (0..2).map(|_| orgs.peer(0)).collect();
    let m = Membership::initial(&orgs.params(&members, 3, 4));
    let local = no_local(&orgs);
    let subject = members[0].0.public();
    let stranger = SecretKey::generate();
    assert_eq!(
        m.check(&orgs.revoke(&stranger, &[subject], NOW), NOW, &local),
        Err(RecordRejection::UnknownIssuer(stranger.public()))
    );
    let Record::Revoke(mut forged) = orgs.revoke(&orgs.root, &[subject], NOW) else {
        unreachable!()
    };
    forged.body.sequence += 1;
    assert_eq!(
        m.check(&Record::Revoke(forged), NOW, &local),
        Err(RecordRejection::BadListSignature(orgs.root.public()))
    );
    // A member revokes its own clients; the root anything.
    let client = SecretKey::generate().public();
    assert_eq!(
        m.check(&orgs.revoke(&members[1].0, &[client], NOW), NOW, &local),
        Ok(())
    );
    assert_eq!(
        m.check(&orgs.revoke(&orgs.root, &[subject], NOW), NOW, &local),
        Ok(())
    );
    let many: Vec<PublicKey> = (0..=MAX_REVOCATIONS_PER_RECORD)
        .map(|_| SecretKey::generate().public())
        .collect();
    assert!(matches!(
        m.check(&orgs.revoke(&orgs.root, &many, NOW), NOW, &local),
        Err(RecordRejection::TooLarge { .. })
    ));
    let joins: Vec<Record> = (0..=MAX_RECORDS_PER_BLOCK)
        .map(|_| {
            let (k, c) = orgs.peer(1);
            Record::join(&k, &c, NET)
        })
        .collect();
    let mut scratch = m.clone();
    assert!(matches!(
        scratch.take_block(&joins, 1, NOW, &local),
        Err((_, RecordRejection::TooMany { .. }))
    ));
}

#[test]
fn records_round_trip_as_canonical_bytes() {
    let orgs = Orgs::new();
    let (key, chain) = orgs.peer(0);
    for record in [
        Record::join(&key, &chain, NET),
        orgs.revoke(&orgs.root, &[key.public()], NOW),
    ] {
        let bytes = record.to_bytes();
        assert_eq!(Record::from_bytes(&bytes), Ok(record));
    }
    assert!(Record::from_bytes(b"\xa0").is_err());
}

/// One step of a random history: at this height, these records (by index into a pool), or a
/// certificate recording the highest checkpoint at least an epoch below final.
#[derive(Debug, Clone)]
enum Step {
    Join(usize),
    Revoke(usize),
    Final,
    Nothing,
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Two nodes replaying the same blocks agree on every height's seats, whether one advances
    /// at every height and the other only where something is due; seats never exceed the cap
    /// per principal, never include a revoked member once its revocation is in force, and
    /// never change before a block records the change's block final.
    #[test]
    fn membership_is_a_function_of_the_chain(
        steps in proptest::collection::vec(
            prop_oneof![
                (0usize..6).prop_map(Step::Join),
                (0usize..9).prop_map(Step::Revoke),
                Just(Step::Final),
                Just(Step::Nothing),
            ],
            1..40,
        ),
        epoch in 1u64..5,
        cap in 1u32..4,
    ) {
        let orgs = Orgs::new();
        let initial: Vec<_> = (0..3).map(|i| orgs.peer(i % 2)).collect();
        let joiners: Vec<_> = (0..6).map(|i| orgs.peer(i % 2)).collect();
        let everyone: Vec<_> = initial.iter().chain(&joiners).collect();
        let params = orgs.params(&initial, cap, epoch);
        let local = no_local(&orgs);
        let mut every = Membership::initial(&params);
        let mut lazy = every.clone();
        let mut revoked_since: Vec<(PublicKey, u64)> = vec![];
        // Revocations recorded, by the height of their block, waiting for finality.
        let mut unfinal: Vec<(PublicKey, u64)> = vec![];
        let mut seats_changed_without_finality = false;
        for (i, step) in steps.iter().enumerate() {
            let height = i as u64 + 1;
            let record = match step {
                Step::Join(j) => Some(Record::join(&joiners[*j].0, &joiners[*j].1, NET)),
                Step::Revoke(j) => {
                    let victim = everyone[*j].0.public();
                    Some(orgs.revoke(&orgs.root, &[victim], NOW))
                }
                Step::Final | Step::Nothing => None,
            };
            let finality = match step {
                Step::Final => Some((height.saturating_sub(epoch) / epoch) * epoch)
                    .filter(|c| *c > every.recorded_final()),
                _ => None,
            };
            let records: Vec<Record> = record
                .into_iter()
                .filter(|r| every.check(r, NOW, &local).is_ok())
                .collect();
            if let Step::Revoke(j) = step {
                if !records.is_empty() {
                    unfinal.push((everyone[*j].0.public(), height));
                }
            }
            let before = every.seats().clone();
            let due = every.changes_at(height);
            every = every.advanced(height);
            every.take_block(&records, height, NOW, &local).unwrap();
            if let Some(checkpoint) = finality {
                every.record_finality(checkpoint, height);
                let from = every.activation(height);
                unfinal.retain(|(victim, at)| {
                    let made_final = *at <= checkpoint;
                    if made_final {
                        revoked_since.push((*victim, from));
                    }
                    !made_final
                });
            }
            seats_changed_without_finality |= !due && every.seats() != &before;
            if lazy.changes_at(height) || !records.is_empty() || finality.is_some() {
                lazy = certified(&lazy, height, &records, finality, &local);
            }
            prop_assert_eq!(every.seats(), lazy.seats(), "height {}", height);
            let seats = every.seats().peers();
            for (p, _) in &orgs.principals {
                let held = seats
                    .iter()
                    .filter(|s| everyone.iter().any(|(k, c)| k.public() == **s
                        && c.0.get(1).map(|c| c.body.subject) == Some(p.public())))
                    .count();
                prop_assert!(held <= cap as usize, "principal over its cap at {}", height);
            }
            for (victim, from) in &revoked_since {
                if height >= *from {
                    prop_assert!(!seats.contains(victim), "revoked seat kept at {}", height);
                }
            }
            prop_assert!(!seats_changed_without_finality, "seats changed at {} with nothing due", height);
        }
    }
}
