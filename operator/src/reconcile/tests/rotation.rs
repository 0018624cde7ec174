//! Principal rotation, pure steps: re-issue under the new principal, the phase gate, the checks
//! of the retiring principal, the events.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use k8s_openapi::api::apps::v1::StatefulSetStatus;
use mediachain::trust::{Chain, Level, Revocation, RevocationList, RevocationSet};

use super::{as_found, fixture, found_with, running_pods, trust, valid_and_built, NOW};
use crate::crd::{KeyCustody, MediachainPeer, PrincipalRotationStatus, RotationPhase};
use crate::naming;
use crate::reconcile::dereference::{Found, PodState};
use crate::reconcile::identity::{ChangeKind, PEER_CHAIN};
use crate::reconcile::rotation::{self, Retiring};
use crate::reconcile::validate::{validate, REVOCATIONS};
use crate::testing::TrustFixture;

const DAY: u64 = 86_400;

fn successor(old: &TrustFixture) -> TrustFixture {
    old.successor(40, NOW - DAY, NOW + 400 * DAY)
}

/// `mp` rotating from the Secret `principal` (`old`) to `principal-b` (`new`).
fn rotating(mp: &MediachainPeer) -> MediachainPeer {
    let mut mp = mp.clone();
    mp.spec.trust.principal_secret_name = "principal-b".into();
    mp.spec.trust.retiring_principal_secret_name = Some("principal".into());
    mp
}

fn with_principals(found: &Found, old: &TrustFixture, new: &TrustFixture) -> Found {
    Found {
        principal: Some(new.secret("media", "principal-b")),
        retiring_principal: Some(old.secret("media", "principal")),
        ..found.clone()
    }
}

fn issuer(secret: &k8s_openapi::api::core::v1::Secret) -> String {
    let text = String::from_utf8(secret.data.as_ref().unwrap()[PEER_CHAIN].0.clone()).unwrap();
    Chain::from_pem(&text)
        .unwrap()
        .leaf()
        .unwrap()
        .body
        .issuer
        .to_string()
}

fn template_principal(desired: &crate::reconcile::build::Desired) -> String {
    let template = &desired.statefulset.spec.as_ref().unwrap().template;
    template
        .metadata
        .as_ref()
        .unwrap()
        .annotations
        .as_ref()
        .unwrap()[naming::PRINCIPAL_ANNOTATION]
        .clone()
}

/// The StatefulSet of `desired` as found in the next pass, its controller rolling (`rolling`)
/// or done.
fn with_statefulset(
    found: &Found,
    desired: &crate::reconcile::build::Desired,
    rolling: bool,
) -> Found {
    let mut sts = desired.statefulset.clone();
    sts.status = Some(StatefulSetStatus {
        current_revision: Some("alpha-a".into()),
        update_revision: Some(if rolling { "alpha-b" } else { "alpha-a" }.into()),
        ..StatefulSetStatus::default()
    });
    Found {
        statefulset: Some(sts),
        ..found.clone()
    }
}

#[test]
fn every_peer_is_reissued_once_under_the_new_principal_and_a_retires_only_when_all_run_it() {
    let (old, mp) = (trust(), fixture("basic"));
    let new = successor(&old);
    let (_, first) = valid_and_built(&mp, &found_with(&old, &mp), NOW);
    assert_eq!(
        template_principal(&first),
        old.principal.public().to_string()
    );
    let mut found = as_found(&found_with(&old, &mp), &first);
    found.pods = running_pods("alpha", 3, NOW + 10);
    found = with_statefulset(&found, &first, false);

    // Phase 1: every certificate re-issued under B with the same key, the template names B,
    // and no pod is deleted by the operator (the rollout restarts them one at a time).
    let mp = rotating(&mp);
    let found = with_principals(&found, &old, &new);
    let at = NOW + 100;
    let (valid, second) = valid_and_built(&mp, &found, at);
    assert!(valid.retiring.as_ref().is_some_and(|r| !r.retired));
    for ((id, secret), (_, before)) in second.identities.iter().zip(&first.identities) {
        assert_eq!(id.change, Some(ChangeKind::Reissued), "{}", id.secret);
        assert_eq!(issuer(secret), new.principal.public().to_string());
        assert_eq!(
            secret.data.as_ref().unwrap()["peer.key"],
            before.data.as_ref().unwrap()["peer.key"]
        );
    }
    assert_eq!(
        template_principal(&second),
        new.principal.public().to_string()
    );
    assert!(
        second.restarts.is_empty(),
        "the operator deleted pods during a rollout"
    );
    let rotation = second.rotation.clone().unwrap();
    assert_eq!(
        (rotation.phase, rotation.rotated_peers, rotation.peers),
        (RotationPhase::Rotating, 0, 3)
    );
    assert_eq!(rotation.from, old.principal.public().to_string());
    assert_eq!(rotation.to, new.principal.public().to_string());

    // Later passes while the StatefulSet rolls: nothing is issued again, nothing deleted.
    let mut found = with_statefulset(&as_found(&found, &second), &second, true);
    let (_, third) = valid_and_built(&mp, &found, at + 5);
    assert!(third.identity_changes().is_empty(), "re-issued twice");
    assert!(third.restarts.is_empty());
    assert_eq!(third.rotation.unwrap().rotated_peers, 0);

    // Peers 2 and 1 restarted (and ready); peer 0 restarted but not ready: still rotating.
    for i in 0..3 {
        let pod = found.pods.get_mut(&format!("alpha-{i}")).unwrap();
        pod.created = at + 20;
        pod.ready = i > 0;
    }
    let (_, fourth) = valid_and_built(&mp, &found, at + 30);
    let rotation = fourth.rotation.unwrap();
    assert_eq!(
        (rotation.phase, rotation.rotated_peers),
        (RotationPhase::Rotating, 2)
    );
    // A pod created before its certificate was issued does not run it, ready or not.
    found.pods.get_mut("alpha-0").unwrap().ready = true;
    found.pods.get_mut("alpha-2").unwrap().created = at - 1;
    let (_, fifth) = valid_and_built(&mp, &found, at + 30);
    assert_eq!(
        fifth.rotation.unwrap().rotated_peers,
        2,
        "a stale pod counted as rotated"
    );

    // Phase 2: every peer runs B's certificate and is ready.
    found.pods.get_mut("alpha-2").unwrap().created = at + 20;
    let (_, sixth) = valid_and_built(&mp, &found, at + 40);
    let retired = sixth.rotation.clone().unwrap();
    assert_eq!(
        (retired.phase, retired.rotated_peers),
        (RotationPhase::Retired, 3)
    );
    assert_eq!(
        rotation::event(Some(&rotation), Some(&retired)).map(|e| e.0),
        Some("PrincipalRetired")
    );

    // Retired is final: the old Secret is no longer needed (nor read), a peer going down does
    // not reopen it, and the record stays once the field is removed.
    let mut mp = mp;
    mp.status = Some(crate::crd::MediachainPeerStatus {
        principal_rotation: Some(retired.clone()),
        ..Default::default()
    });
    found.retiring_principal = None;
    found.pods.get_mut("alpha-1").unwrap().ready = false;
    let (valid, seventh) = valid_and_built(&mp, &found, at + 50);
    assert!(valid.retiring.unwrap().retired);
    assert_eq!(seventh.rotation.as_ref(), Some(&retired));
    assert_eq!(rotation::event(Some(&retired), Some(&retired)), None);
    assert_eq!(rotation::secret_names(&mp), vec!["principal-b".to_string()]);
    mp.spec.trust.retiring_principal_secret_name = None;
    let (_, eighth) = valid_and_built(&mp, &found, at + 60);
    assert_eq!(eighth.rotation.as_ref(), Some(&retired));
}

/// The valid resource, or the category of why not.
fn checked(mp: &MediachainPeer, found: &Found) -> Result<Option<Retiring>, &'static str> {
    validate(mp, found, NOW)
        .map(|v| v.retiring)
        .map_err(|e| e.category())
}

fn root_revokes(old: &TrustFixture, subject: &mediachain::trust::PublicKey) -> String {
    let revocation = Revocation {
        subject: *subject,
        revoked_at: NOW - 10,
        reason: "retired".into(),
    };
    RevocationList::empty(&old.root, NOW - 10)
        .with(&old.root, revocation, NOW - 10)
        .to_pem()
}

fn with_revocations(
    mut secret: k8s_openapi::api::core::v1::Secret,
    pem: &str,
) -> k8s_openapi::api::core::v1::Secret {
    secret.data.as_mut().unwrap().insert(
        REVOCATIONS.into(),
        k8s_openapi::ByteString(pem.as_bytes().to_vec()),
    );
    secret
}

#[test]
fn an_unsafe_rotation_is_refused() {
    let (old, mp) = (trust(), fixture("basic"));
    let new = successor(&old);
    let mp = rotating(&mp);
    let found = with_principals(&found_with(&old, &mp), &old, &new);
    assert!(checked(&mp, &found).unwrap().is_some());

    // The retiring Secret is missing.
    let missing = Found {
        retiring_principal: None,
        ..found.clone()
    };
    assert_eq!(
        checked(&mp, &missing).unwrap_err(),
        "MissingPrincipalSecret"
    );
    // Under another root: a new root is a new network.
    let stranger = TrustFixture::new(90, NOW - DAY, NOW + 100 * DAY);
    let other_root = Found {
        retiring_principal: Some(stranger.secret("media", "principal")),
        ..found.clone()
    };
    assert_eq!(checked(&mp, &other_root).unwrap_err(), "InvalidPrincipal");
    let mut no_root_pub = stranger.secret("media", "principal");
    no_root_pub.data.as_mut().unwrap().remove("root.pub");
    let other_chain = Found {
        retiring_principal: Some(no_root_pub),
        ..found.clone()
    };
    assert_eq!(checked(&mp, &other_chain).unwrap_err(), "InvalidPrincipal");
    // The same principal on both sides.
    let same = Found {
        retiring_principal: Some(new.secret("media", "principal")),
        ..found.clone()
    };
    assert_eq!(checked(&mp, &same).unwrap_err(), "InvalidSpec");
    // An expired old principal may still be retired (its chain is checked inside its validity).
    let expired = old.successor(8, NOW - 30 * DAY, NOW - DAY);
    let late = Found {
        retiring_principal: Some(expired.secret("media", "principal")),
        ..found.clone()
    };
    assert!(checked(&mp, &late).unwrap().is_some());

    // B revokes A while peers still run A's certificates.
    let revoking = Found {
        principal: Some(with_revocations(
            new.secret("media", "principal-b"),
            &root_revokes(&old, &old.principal.public()),
        )),
        ..found.clone()
    };
    assert_eq!(checked(&mp, &revoking).unwrap_err(), "InvalidPrincipal");
    // A's revocation list is not in B's Secret, then copied into it.
    let a_list = old.revocations_pem(&[(&new.root.public().to_string(), "lost")], NOW - 5);
    let dropped = Found {
        retiring_principal: Some(with_revocations(old.secret("media", "principal"), &a_list)),
        ..found.clone()
    };
    assert_eq!(checked(&mp, &dropped).unwrap_err(), "InvalidPrincipal");
    let copied = Found {
        principal: Some(with_revocations(
            new.secret("media", "principal-b"),
            &a_list,
        )),
        ..dropped.clone()
    };
    assert!(checked(&mp, &copied).unwrap().is_some());

    // A completed rotation to B named again while the principal is now C: refused.
    let mut moved_on = mp.clone();
    moved_on.status = Some(crate::crd::MediachainPeerStatus {
        principal_rotation: Some(PrincipalRotationStatus {
            phase: RotationPhase::Retired,
            from: old.principal.public().to_string(),
            to: new.principal.public().to_string(),
            retiring_secret_name: "principal".into(),
            rotated_peers: 3,
            peers: 3,
        }),
        ..Default::default()
    });
    let third = old.successor(41, NOW - DAY, NOW + 400 * DAY);
    let to_c = Found {
        principal: Some(third.secret("media", "principal-b")),
        retiring_principal: None,
        ..found.clone()
    };
    assert_eq!(checked(&moved_on, &to_c).unwrap_err(), "InvalidSpec");
}

#[test]
fn under_pod_custody_a_peer_runs_its_chain_once_its_container_started_after_issuance() {
    let (old, mut mp) = (trust(), fixture("basic"));
    mp.spec.trust.key_custody = KeyCustody::Pod;
    let new = successor(&old);
    let valid = validate(
        &rotating(&mp),
        &with_principals(&found_with(&old, &mp), &old, &new),
        NOW,
    )
    .unwrap();
    let retiring = valid.retiring.clone().unwrap();
    let subject = mediachain::trust::SecretKey::from_seed(&[77; 32]).public();
    let id = crate::reconcile::identity::issue(
        &valid,
        0,
        "alpha-0".into(),
        subject,
        String::new(),
        NOW,
        ChangeKind::Issued,
    );
    let kept = crate::reconcile::identity::Identity { change: None, ..id };
    let mut found = Found::default();
    let pod = |created, peer_started| PodState {
        created,
        ready: true,
        peer_started,
        revision: None,
    };
    let mp = rotating(&mp);
    let rotated = |found: &Found| {
        rotation::phase(&mp, found, &retiring, &new.principal.public(), &[&kept], 1).rotated_peers
    };
    // A pod created long ago whose peer container restarted after issuance runs it; one whose
    // container started before, or is not running, does not.
    found
        .pods
        .insert("alpha-0".into(), pod(NOW - 500, Some(NOW + 1)));
    assert_eq!(rotated(&found), 1);
    found
        .pods
        .insert("alpha-0".into(), pod(NOW + 1, Some(NOW - 1)));
    assert_eq!(rotated(&found), 0);
    found.pods.insert("alpha-0".into(), pod(NOW + 1, None));
    assert_eq!(rotated(&found), 0);
    // Started in the second of issuance: maybe before it (times are whole seconds).
    found.pods.insert("alpha-0".into(), pod(NOW + 1, Some(NOW)));
    assert_eq!(rotated(&found), 0);
    let chain = Chain::from_pem(&kept.chain_pem).unwrap();
    let root = old.root.public();
    assert_eq!(
        chain
            .verify(&root, &RevocationSet::new(root), NOW, Level::Peer)
            .unwrap(),
        subject
    );
}

#[test]
fn events_mark_the_start_and_the_end_of_a_rotation_once() {
    let status = |phase, to: &str| PrincipalRotationStatus {
        phase,
        from: "A".into(),
        to: to.into(),
        retiring_secret_name: "principal".into(),
        rotated_peers: 0,
        peers: 3,
    };
    let rotating = status(RotationPhase::Rotating, "B");
    let retired = status(RotationPhase::Retired, "B");
    let event = |p: Option<&PrincipalRotationStatus>, c: Option<&PrincipalRotationStatus>| {
        rotation::event(p, c).map(|e| e.0)
    };
    assert_eq!(
        event(None, Some(&rotating)),
        Some("PrincipalRotationStarted")
    );
    assert_eq!(event(Some(&rotating), Some(&rotating)), None);
    assert_eq!(
        event(Some(&rotating), Some(&retired)),
        Some("PrincipalRetired")
    );
    assert_eq!(event(Some(&retired), Some(&retired)), None);
    assert_eq!(event(Some(&retired), None), None);
    // A new rotation (to C) after a completed one starts again.
    let to_c = status(RotationPhase::Rotating, "C");
    assert_eq!(
        event(Some(&retired), Some(&to_c)),
        Some("PrincipalRotationStarted")
    );
}
