//! Specification tests of membership on the chain: joins and revocations, their activation
//! height, the per-principal cap in joining order, and determinism (a property run).

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
    let mut next = if m.changes_at(height) {
        m.advanced(height)
    } else {
        m.clone()
    };
    next.take_block(records, height, NOW, local).unwrap();
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
fn a_join_takes_its_seat_two_checkpoints_after_its_block() {
    let orgs = Orgs::new();
    let members: Vec<_> = (0..3).map(|_| orgs.peer(0)).collect();
    let m0 = Membership::initial(&orgs.params(&members, 3, 4));
    let local = no_local(&orgs);
    let (key, chain) = orgs.peer(1);
    let join = Record::join(&key, &chain, NET);
    assert_eq!(m0.check(&join, NOW, &local), Ok(()));
    // Recorded at height 5: its checkpoint is 8, the seat counts from 8 + 2 x 4 + 1 = 17.
    assert_eq!(m0.activation(5), 17);
    assert_eq!(m0.activation(8), 17);
    assert_eq!(m0.activation(9), 21);
    let m5 = block(&m0, 5, std::slice::from_ref(&join), &local);
    assert!(m5.has_joined(&key.public()));
    assert_eq!(
        m5.check(&join, NOW, &local),
        Err(RecordRejection::AlreadyMember(key.public())),
        "a replayed join"
    );
    let mut m = m5;
    for height in 6..17 {
        assert!(!m.changes_at(height), "nothing due at {height}");
        m = block(&m, height, &[], &local);
        assert!(!m.seats().peers().contains(&key.public()));
    }
    assert!(m.changes_at(17));
    let m17 = block(&m, 17, &[], &local);
    assert!(m17.seats().peers().contains(&key.public()));
    assert_eq!(m17.seats().peers().len(), 4);
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
fn a_revocation_binds_the_next_block_and_frees_the_seat_at_its_activation() {
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
    // Checkpoint 4, activation 4 + 2 x 2 + 1 = 9: the seat is held until then.
    assert_eq!(m3.activation(3), 9);
    let m8 = (4..9).fold(m3, |m, h| block(&m, h, &[], &local));
    assert_eq!(m8.seats().peers(), seated.as_slice());
    let m9 = block(&m8, 9, &[], &local);
    assert!(!m9.seats().peers().contains(&victim.0.public()));
    assert!(
        m9.seats().peers().contains(&waiting.0.public()),
        "the principal's waiting member takes the freed seat"
    );
    assert_eq!(m9.seats().peers().len(), 3);
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

/// One step of a random history: at this height, these records (by index into a pool).
#[derive(Debug, Clone)]
enum Step {
    Join(usize),
    Revoke(usize),
    Nothing,
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Two nodes replaying the same blocks agree on every height's seats, whether one advances
    /// at every height and the other only where something is due; seats never exceed the cap
    /// per principal and never include a revoked member once its revocation is in force.
    #[test]
    fn membership_is_a_function_of_the_chain(
        steps in proptest::collection::vec(
            prop_oneof![
                (0usize..6).prop_map(Step::Join),
                (0usize..9).prop_map(Step::Revoke),
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
        for (i, step) in steps.iter().enumerate() {
            let height = i as u64 + 1;
            let record = match step {
                Step::Join(j) => Some(Record::join(&joiners[*j].0, &joiners[*j].1, NET)),
                Step::Revoke(j) => {
                    let victim = everyone[*j].0.public();
                    Some(orgs.revoke(&orgs.root, &[victim], NOW))
                }
                Step::Nothing => None,
            };
            let records: Vec<Record> = record
                .into_iter()
                .filter(|r| every.check(r, NOW, &local).is_ok())
                .collect();
            if let Step::Revoke(j) = step {
                if !records.is_empty() {
                    revoked_since.push((everyone[*j].0.public(), every.activation(height)));
                }
            }
            every = every.advanced(height);
            every.take_block(&records, height, NOW, &local).unwrap();
            if lazy.changes_at(height) || !records.is_empty() {
                lazy = block(&lazy, height, &records, &local);
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
        }
    }
}
