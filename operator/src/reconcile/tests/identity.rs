//! Peer identities: certificates renewed with the same key (restarting one peer at a time), a
//! new principal re-issuing them, a revoked peer's new key, a corrupt key an error.

use super::*;

#[test]
fn a_certificate_near_expiry_is_renewed_with_the_same_key() {
    let trust = trust();
    let mp = fixture("basic"); // 90 days validity, renewed 30 days before expiry
    let found = found_with(&trust, &mp);
    let (valid, first) = valid_and_built(&mp, &found, NOW);
    let found = as_found(&found, &first);
    let later = NOW + 61 * DAY;
    let mut never = || -> mediachain::trust::SecretKey { panic!("must not generate a key") };
    let renewed = build(&valid, &found, &Settings::default(), later, &mut never).unwrap();
    assert_eq!(first.identities.len(), 3);
    assert_eq!(renewed.identities.len(), first.identities.len());
    for ((old, old_secret), (new, new_secret)) in first.identities.iter().zip(&renewed.identities) {
        assert_eq!(new.change, Some(ChangeKind::Renewed));
        assert_eq!(old.peer_id, new.peer_id);
        assert_eq!(
            secret_text(old_secret, PEER_KEY),
            secret_text(new_secret, PEER_KEY)
        );
        assert_eq!(new.not_after, later + 90 * 24 * 3600);
    }
    assert_eq!(
        first.statefulset.spec.as_ref().unwrap().template,
        renewed.statefulset.spec.as_ref().unwrap().template,
        "a renewal does not roll every peer through the pod template"
    );
}

#[test]
fn a_renewed_certificate_restarts_only_its_own_peer_once_the_others_are_ready() {
    let trust = trust();
    let mp = fixture("basic"); // 3 peers, maxUnavailable 1
    let found = found_with(&trust, &mp);
    let (valid, first) = valid_and_built(&mp, &found, NOW);
    let mut found = as_found(&found, &first);
    found.pods = running_pods("alpha", 3, NOW + 10);
    // Peer 1's Secret is lost and issued again: only pod alpha-1 runs an outdated identity.
    found.identities.remove("alpha-1-identity");
    let later = NOW + DAY;
    let again = build(&valid, &found, &Settings::default(), later, &mut keygen()).unwrap();
    assert_eq!(again.identity_changes().len(), 1);
    assert_eq!(again.restarts, vec!["alpha-1".to_string()]);

    // Not while another peer is not ready, nor while one is missing.
    found.pods.get_mut("alpha-2").unwrap().ready = false;
    let waiting = build(&valid, &found, &Settings::default(), later, &mut keygen()).unwrap();
    assert!(waiting.restarts.is_empty());
    found.pods.remove("alpha-2");
    let waiting = build(&valid, &found, &Settings::default(), later, &mut keygen()).unwrap();
    assert!(waiting.restarts.is_empty());

    // All three renewed at once: one restart per pass (maxUnavailable 1), peer by peer.
    let found = {
        let mut f = as_found(&found_with(&trust, &mp), &first);
        f.pods = running_pods("alpha", 3, NOW + 10);
        f
    };
    let renewal = NOW + 61 * DAY;
    let renewed = build(&valid, &found, &Settings::default(), renewal, &mut keygen()).unwrap();
    assert_eq!(renewed.identity_changes().len(), 3);
    assert_eq!(renewed.restarts, vec!["alpha-0".to_string()]);
    // The next pass sees alpha-0 re-created after the renewal: alpha-1 is next.
    let mut next = as_found(&found, &renewed);
    next.pods.insert(
        "alpha-0".into(),
        PodState {
            created: renewal + 5,
            ready: true,
            peer_started: Some(renewal + 5),
            revision: None,
        },
    );
    let after = build(
        &valid,
        &next,
        &Settings::default(),
        renewal + 10,
        &mut keygen(),
    )
    .unwrap();
    assert!(after.identity_changes().is_empty());
    assert_eq!(after.restarts, vec!["alpha-1".to_string()]);
}

#[test]
fn a_new_principal_reissues_certificates_but_keeps_keys() {
    let mp = fixture("basic");
    let old = trust();
    let found = found_with(&old, &mp);
    let (_, first) = valid_and_built(&mp, &found, NOW);
    let new = TrustFixture::new(42, NOW - DAY, NOW + 365 * DAY);
    let mut found = as_found(&found_with(&new, &mp), &first);
    found.network_members = vec![mp.clone()];
    let (_, second) = valid_and_built(&mp, &found, NOW);
    assert_eq!(first.identities.len(), 3);
    assert_eq!(second.identities.len(), first.identities.len());
    for ((a, _), (b, _)) in first.identities.iter().zip(&second.identities) {
        assert_eq!(b.change, Some(ChangeKind::Reissued));
        assert_eq!(a.peer_id, b.peer_id);
    }
}

#[test]
fn a_revoked_peer_gets_a_new_key_and_a_new_list_rolls_the_peers_through_the_template() {
    use mediachain::trust::{Revocation, RevocationList};
    let trust = trust();
    let mp = fixture("basic");
    let found = found_with(&trust, &mp);
    let (_, first) = valid_and_built(&mp, &found, NOW);
    let revoked_id: mediachain::trust::PublicKey = first.identities[1].0.peer_id.parse().unwrap();
    let list = RevocationList::empty(&trust.principal, NOW).with(
        &trust.principal,
        Revocation {
            subject: revoked_id,
            revoked_at: NOW,
            reason: "node compromised".into(),
        },
        NOW,
    );
    let mut found = as_found(&found, &first);
    found.pods = running_pods("alpha", 3, NOW + 10);
    found.statefulset = Some(first.statefulset.clone());
    let principal = found.principal.as_mut().unwrap();
    principal.data.as_mut().unwrap().insert(
        "revocations.pem".into(),
        k8s_openapi::ByteString(list.to_pem().into_bytes()),
    );
    let later = NOW + 60;
    let (valid, second) = {
        let valid = validate(&mp, &found, later).unwrap();
        let desired = build(&valid, &found, &Settings::default(), later, &mut keygen()).unwrap();
        (valid, desired)
    };
    let changes = second.identity_changes();
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(changes[0].kind, ChangeKind::Revoked);
    assert_eq!(changes[0].secret, "alpha-1-identity");
    assert_ne!(second.identities[1].0.peer_id, revoked_id.to_string());
    assert_eq!(
        second.identities[0].0.peer_id,
        first.identities[0].0.peer_id
    );
    assert_eq!(
        second.identities[1].0.revoked,
        Some(crate::reconcile::identity::RevokedKey {
            peer_id: revoked_id.to_string(),
            reason: "node compromised".into(),
            replaced_at: later,
        })
    );
    assert!(second.trust.data.as_ref().unwrap()["revocations.pem"].contains("REVOCATION"));
    // Peers load the list only at start: it is in the pod template (its digest), so the
    // StatefulSet restarts every peer one at a time; the operator deletes no pod itself.
    let digest = crate::reconcile::build::revocations_digest(&second.statefulset);
    assert_eq!(
        digest.map(str::to_string),
        Some(hex::encode(<sha2::Sha256 as sha2::Digest>::digest(
            list.to_pem().as_bytes()
        )))
    );
    assert_eq!(
        crate::reconcile::build::revocations_digest(&first.statefulset),
        None
    );
    assert!(second.restarts.is_empty(), "{:?}", second.restarts);

    // The new key is not revoked: the next pass changes nothing, keeps the revoked key on
    // record, and deletes no pod while the StatefulSet is still rolling.
    let mut next = as_found(&found, &second);
    let mut rolling = second.statefulset.clone();
    rolling.status = Some(StatefulSetStatus {
        current_revision: Some("alpha-old".into()),
        update_revision: Some("alpha-new".into()),
        ..StatefulSetStatus::default()
    });
    next.statefulset = Some(rolling);
    let again = build(
        &valid,
        &next,
        &Settings::default(),
        later + 60,
        &mut keygen(),
    )
    .unwrap();
    assert!(again.identity_changes().is_empty());
    assert!(again.restarts.is_empty(), "{:?}", again.restarts);
    assert_eq!(
        again.identities[1].0.revoked,
        second.identities[1].0.revoked
    );

    // A list whose signature does not verify is refused, not ignored.
    let mut forged = list.clone();
    forged.body.sequence += 7;
    let principal = found.principal.as_mut().unwrap();
    principal.data.as_mut().unwrap().insert(
        "revocations.pem".into(),
        k8s_openapi::ByteString(forged.to_pem().into_bytes()),
    );
    assert!(matches!(
        validate(&mp, &found, later),
        Err(Error::InvalidPrincipal { ref detail, .. }) if detail.contains("revocations.pem")
    ));
}

#[test]
fn a_corrupt_identity_key_is_an_error_never_a_new_key() {
    let trust = trust();
    let mp = fixture("basic");
    let mut found = found_with(&trust, &mp);
    let (valid, first) = valid_and_built(&mp, &found, NOW);
    found = as_found(&found, &first);
    let secret = found.identities.get_mut("alpha-1-identity").unwrap();
    secret.data.as_mut().unwrap().insert(
        PEER_KEY.into(),
        k8s_openapi::ByteString(b"garbage".to_vec()),
    );
    let err = build(&valid, &found, &Settings::default(), NOW, &mut keygen()).unwrap_err();
    assert!(matches!(err, Error::CorruptIdentity { ref name, .. } if name == "alpha-1-identity"));
}
