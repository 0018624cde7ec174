//! Status: conditions whose transition time changes only on transitions, a failure's category
//! on Degraded, the soonest certificate expiry in words.

use super::*;

fn applied(sts_status: StatefulSetStatus, generation: i64) -> Applied {
    Applied {
        statefulset: StatefulSet {
            metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                generation: Some(generation),
                ..Default::default()
            },
            status: Some(sts_status),
            ..Default::default()
        },
        revoked: Vec::new(),
        peers: Vec::new(),
        deleted_identities: Vec::new(),
        restarted: Vec::new(),
        external_seeds: Vec::new(),
    }
}

/// An observation with `height` and a principal valid for a year.
fn observed(height: Option<u64>) -> status::Observed {
    status::Observed {
        height,
        finalized_height: None,
        principal_not_after: NOW + 365 * DAY,
        backup_runs: Vec::new(),
        network_digest: None,
        rollout_stuck: None,
        evidence: None,
        rotation: None,
    }
}

#[test]
fn conditions_change_their_transition_time_only_on_transitions() {
    let mut mp = fixture("basic");
    let t0 = status::time(NOW);
    let rolling = applied(
        StatefulSetStatus {
            observed_generation: Some(1),
            replicas: 3,
            ready_replicas: Some(1),
            updated_replicas: Some(3),
            ..Default::default()
        },
        1,
    );
    let first = status::compute(&mp, &rolling, observed(None), t0);
    let cond = |s: &crate::crd::MediachainPeerStatus, t: &str| {
        s.conditions.iter().find(|c| c.type_ == t).unwrap().clone()
    };
    assert_eq!(cond(&first, status::READY).status, "False");
    assert_eq!(cond(&first, status::PROGRESSING).status, "True");
    assert_eq!(first.observed_generation, Some(1));

    mp.status = Some(first.clone());
    let again = status::compute(&mp, &rolling, observed(None), status::time(NOW + 30));
    assert_eq!(
        again, first,
        "same observation, same status: nothing to write"
    );

    let done = applied(
        StatefulSetStatus {
            observed_generation: Some(1),
            replicas: 3,
            ready_replicas: Some(3),
            updated_replicas: Some(3),
            ..Default::default()
        },
        1,
    );
    let t1 = status::time(NOW + 60);
    let ready = status::compute(&mp, &done, observed(Some(17)), t1);
    assert_eq!(cond(&ready, status::READY).status, "True");
    assert_eq!(cond(&ready, status::READY).last_transition_time.0, t1);
    assert_eq!(cond(&ready, status::PROGRESSING).status, "False");
    assert_eq!(
        cond(&ready, status::DEGRADED).last_transition_time.0,
        t0,
        "Degraded stayed False: its transition time is kept"
    );
    assert_eq!(ready.ready_replicas, 3);
    assert_eq!(ready.journal_height, Some(17));
    mp.status = Some(ready);
    let silent = status::compute(&mp, &done, observed(None), status::time(NOW + 90));
    assert_eq!(
        silent.journal_height,
        Some(17),
        "the last known height is kept"
    );
}

#[test]
fn a_failure_sets_degraded_with_the_error_category_and_keeps_ready() {
    let mut mp = fixture("basic");
    let ready = status::compute(
        &mp,
        &applied(
            StatefulSetStatus {
                observed_generation: Some(1),
                replicas: 3,
                ready_replicas: Some(3),
                updated_replicas: Some(3),
                ..Default::default()
            },
            1,
        ),
        observed(None),
        status::time(NOW),
    );
    mp.status = Some(ready);
    let err = Error::InvalidSpec("spec.replicas is 0".into());
    let failed = status::compute_failure(&mp, &err, status::time(NOW + 5));
    let degraded = failed
        .conditions
        .iter()
        .find(|c| c.type_ == status::DEGRADED)
        .unwrap();
    assert_eq!(
        (degraded.status.as_str(), degraded.reason.as_str()),
        ("True", "InvalidSpec")
    );
    assert!(degraded.message.contains("spec.replicas"));
    let ready = failed
        .conditions
        .iter()
        .find(|c| c.type_ == status::READY)
        .unwrap();
    assert_eq!(ready.status, "True", "running peers keep running");
    assert_eq!(naming::workload(&mp), "alpha");
}

#[test]
fn the_soonest_certificate_expiry_reads_as_people_count() {
    let peer = |not_after: u64| crate::crd::PeerIdentityStatus {
        name: "alpha-0".into(),
        peer_id: "p".into(),
        certificate_not_after: not_after,
    };
    let now = status::time(NOW);
    let at = |secs: u64| status::soonest_expiry(&[peer(NOW + 90 * DAY), peer(NOW + secs)], now);
    assert_eq!(at(89 * DAY + 5), Some("in 90d".into()));
    assert_eq!(at(89 * DAY), Some("in 89d".into()));
    // Just issued for 90 days, and a second later: the same words (no second status write).
    assert_eq!(at(90 * DAY), at(90 * DAY - 1));
    assert_eq!(at(2 * DAY), Some("in 2d".into()));
    assert_eq!(at(30 * 3600), Some("in 30h".into()));
    assert_eq!(at(45 * 60 - 10), Some("in 45m".into()));
    assert_eq!(
        status::soonest_expiry(&[peer(NOW - 1)], now),
        Some("expired".into())
    );
    assert_eq!(status::soonest_expiry(&[], now), None);
}
