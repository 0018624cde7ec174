//! Specification tests of the tower of trust.

use proptest::prelude::*;

use super::tower::Tower;
use super::*;

const NOW: u64 = 1_700_000_000;

fn none(t: &Tower) -> RevocationSet {
    RevocationSet::new(t.root.public())
}

#[test]
fn every_level_verifies_up_to_the_root() {
    let t = Tower::at(NOW);
    let root = t.root.public();
    assert_eq!(
        t.principal_chain
            .verify(&root, &none(&t), NOW, Level::Principal),
        Ok(t.principal.public())
    );
    assert_eq!(
        t.peer_chain.verify(&root, &none(&t), NOW, Level::Peer),
        Ok(t.peer.public())
    );
    assert_eq!(
        t.client_chain.verify(&root, &none(&t), NOW, Level::Client),
        Ok(t.client.public())
    );
}

#[test]
fn a_client_certificate_is_not_a_peer_certificate() {
    let t = Tower::at(NOW);
    let err = t
        .client_chain
        .verify(&t.root.public(), &none(&t), NOW, Level::Peer)
        .unwrap_err();
    assert!(matches!(
        err,
        CertError::WrongLevel {
            expected: Level::Peer,
            found: Level::Client,
            ..
        }
    ));
    assert!(
        err.to_string()
            .contains("is Level-2, but Level-1 is required"),
        "{err}"
    );
}

#[test]
fn expiry_and_start_of_validity_are_enforced() {
    let t = Tower::at(NOW);
    let root = t.root.public();
    let late = NOW + 3600;
    assert!(matches!(
        t.client_chain.verify(&root, &none(&t), late, Level::Client),
        Err(CertError::Expired { not_after, .. }) if not_after == NOW + 3600
    ));
    assert!(matches!(
        t.client_chain
            .verify(&root, &none(&t), NOW - 11, Level::Client),
        Err(CertError::NotYetValid { .. })
    ));
}

#[test]
fn revocation_by_root_or_by_issuer_is_honoured_but_not_by_strangers() {
    let t = Tower::at(NOW);
    let root = t.root.public();
    let revoke = |by: &SecretKey, who: &SecretKey| {
        let list = RevocationList::empty(by, NOW).with(
            by,
            Revocation {
                subject: who.public(),
                revoked_at: NOW,
                reason: "misbehaved".into(),
            },
            NOW,
        );
        let mut set = none(&t);
        set.add(&list).unwrap();
        set
    };
    // The root revokes a principal: every chain through it fails.
    let by_root = revoke(&t.root, &t.principal);
    assert_eq!(
        t.client_chain.verify(&root, &by_root, NOW, Level::Client),
        Err(CertError::Revoked {
            subject: t.principal.public(),
            by: root,
            reason: "misbehaved".into()
        })
    );
    // The root may also revoke a client directly.
    assert_eq!(
        t.client_chain
            .verify(&root, &revoke(&t.root, &t.client), NOW, Level::Client),
        Err(CertError::Revoked {
            subject: t.client.public(),
            by: root,
            reason: "misbehaved".into()
        })
    );
    // The principal revokes the peer it admitted.
    let by_principal = revoke(&t.principal, &t.peer);
    assert_eq!(
        t.peer_chain.verify(&root, &by_principal, NOW, Level::Peer),
        Err(CertError::Revoked {
            subject: t.peer.public(),
            by: t.principal.public(),
            reason: "misbehaved".into()
        })
    );
    // A stranger's list about the peer means nothing.
    let stranger = SecretKey::generate();
    assert!(t
        .peer_chain
        .verify(&root, &revoke(&stranger, &t.peer), NOW, Level::Peer)
        .is_ok());
}

#[test]
fn a_revocation_takes_effect_at_its_revoked_at_time() {
    let t = Tower::at(NOW);
    let list = RevocationList::empty(&t.root, NOW).with(
        &t.root,
        Revocation {
            subject: t.peer.public(),
            revoked_at: NOW + 100,
            reason: "later".into(),
        },
        NOW,
    );
    let mut set = none(&t);
    set.add(&list).unwrap();
    assert!(t
        .peer_chain
        .verify(&t.root.public(), &set, NOW + 99, Level::Peer)
        .is_ok());
    assert_eq!(
        t.peer_chain
            .verify(&t.root.public(), &set, NOW + 100, Level::Peer),
        Err(CertError::Revoked {
            subject: t.peer.public(),
            by: t.root.public(),
            reason: "later".into()
        })
    );
}

#[test]
fn a_forged_revocation_list_is_refused() {
    let t = Tower::at(NOW);
    let mut list = RevocationList::empty(&t.root, NOW);
    list.body.revoked.push(Revocation {
        subject: t.peer.public(),
        revoked_at: NOW,
        reason: "x".into(),
    });
    assert_eq!(
        none(&t).add(&list),
        Err(revocation::RevocationError::BadSignature(t.root.public()))
    );
}

#[test]
fn a_tampered_signature_or_body_is_a_bad_signature_of_that_certificate() {
    let t = Tower::at(NOW);
    let root = t.root.public();
    // One bit of the peer certificate's signature.
    let mut chain = t.client_chain.clone();
    chain.0[1].signature[17] ^= 0x04;
    assert_eq!(
        chain.verify(&root, &none(&t), NOW, Level::Client),
        Err(CertError::BadSignature {
            subject: t.peer.public()
        })
    );
    // The client's own certificate stretched by one second, its signature kept.
    let mut chain = t.client_chain.clone();
    chain.0[0].body.not_after += 1;
    assert_eq!(
        chain.verify(&root, &none(&t), NOW, Level::Client),
        Err(CertError::BadSignature {
            subject: t.client.public()
        })
    );
    // The same tampering survives the wire: the bytes parse and still fail.
    let parsed = Certificate::from_bytes(&chain.0[0].to_bytes()).unwrap();
    assert_eq!(parsed, chain.0[0]);
}

#[test]
fn a_chain_to_another_root_or_with_a_gap_is_refused() {
    let t = Tower::at(NOW);
    let other_root = SecretKey::generate().public();
    assert!(matches!(
        t.peer_chain
            .verify(&other_root, &none(&t), NOW, Level::Peer),
        Err(CertError::UnknownRoot { .. })
    ));
    // A peer certificate followed by someone else's principal certificate.
    let other = Tower::at(NOW);
    let spliced = Chain(vec![
        t.peer_chain.0[0].clone(),
        other.principal_chain.0[0].clone(),
    ]);
    assert!(matches!(
        spliced.verify(&other.root.public(), &none(&other), NOW, Level::Peer),
        Err(CertError::BrokenChain { .. })
    ));
    // A peer signing a Level-1 certificate (only principals may).
    let rogue = Chain::extend(
        Certificate::issue(&t.peer, t.client.public(), Level::Peer, NOW - 1, NOW + 10),
        &t.peer_chain,
    );
    assert!(matches!(
        rogue.verify(&t.root.public(), &none(&t), NOW, Level::Peer),
        Err(CertError::Malformed { .. })
    ));
    assert_eq!(
        Chain(vec![]).verify(&t.root.public(), &none(&t), NOW, Level::Peer),
        Err(CertError::Empty)
    );
}

#[test]
fn chains_round_trip_through_pem() {
    let t = Tower::at(NOW);
    let pem = t.client_chain.to_pem();
    assert_eq!(pem.matches("BEGIN MEDIACHAIN CERTIFICATE").count(), 3);
    assert_eq!(Chain::from_pem(&pem).unwrap(), t.client_chain);
    assert!(
        Chain::from_pem("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n").is_err()
    );
    let _ = &t.client;
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn any_tampered_byte_is_rejected(cert_index in 0usize..3, byte in any::<usize>(), flip in 1u8..) {
        let t = Tower::at(NOW);
        let mut chain = t.client_chain.clone();
        let mut bytes = chain.0[cert_index].to_bytes();
        let i = byte % bytes.len();
        bytes[i] ^= flip;
        // Either the bytes no longer parse (as a corrupt certificate), or the parsed chain fails
        // verification; both outcomes are asserted.
        match Certificate::from_bytes(&bytes) {
            Err(e) => prop_assert!(
                matches!(e, DocumentError::Corrupt { what: "certificate", .. }),
                "{e}"
            ),
            Ok(cert) => {
                chain.0[cert_index] = cert;
                prop_assert!(chain.verify(&t.root.public(), &none(&t), NOW, Level::Client).is_err());
            }
        }
    }
}
