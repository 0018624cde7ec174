//! Scaling: identities deleted only under the delete policy once their pod is gone, scale-down
//! in steps of `maxUnavailable`, down then up within the issued identities.

use super::*;

#[test]
fn scale_down_deletes_identities_only_with_delete_policy_and_after_the_pod_is_gone() {
    let trust = trust();
    let mut mp = fixture("full"); // whenScaled: Delete, 5 replicas
    let found = found_with(&trust, &mp);
    let (_, five) = valid_and_built(&mp, &found, NOW);
    let mut found = as_found(&found, &five);
    mp.spec.replicas = 3;
    found.pods = running_pods("beta", 4, NOW - DAY);
    let (_, three) = valid_and_built(&mp, &found, NOW);
    assert_eq!(
        three.obsolete_identities,
        vec!["beta-4-identity".to_string()]
    );

    let mut retained = mp.clone();
    retained.spec.storage.retention.when_scaled = crate::crd::RetentionPolicy::Retain;
    let (_, kept) = valid_and_built(&retained, &found, NOW);
    assert!(kept.obsolete_identities.is_empty());
}

fn running(replicas: i32, generation: i64, status: Option<(i32, i64)>) -> StatefulSet {
    StatefulSet {
        metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            generation: Some(generation),
            ..Default::default()
        },
        spec: Some(k8s_openapi::api::apps::v1::StatefulSetSpec {
            replicas: Some(replicas),
            ..Default::default()
        }),
        status: status.map(|(running, observed)| StatefulSetStatus {
            replicas: running,
            observed_generation: Some(observed),
            ..Default::default()
        }),
    }
}

#[test]
fn scale_down_goes_in_steps_of_max_unavailable_once_each_batch_is_gone() {
    use crate::reconcile::build::stepped_replicas;
    let mut mp = fixture("basic");
    mp.spec.replicas = 2;
    let mut found = Found {
        pods: running_pods("alpha", 5, NOW),
        ..Found::default()
    };
    assert_eq!(stepped_replicas(&mp, &found), 2, "no StatefulSet yet");
    found.statefulset = Some(running(5, 3, Some((5, 3))));
    assert_eq!(
        stepped_replicas(&mp, &found),
        4,
        "one peer at a time by default"
    );
    found.statefulset = Some(running(4, 4, Some((5, 3))));
    assert_eq!(
        stepped_replicas(&mp, &found),
        4,
        "previous step not observed yet"
    );
    found.statefulset = Some(running(4, 4, Some((5, 4))));
    assert_eq!(
        stepped_replicas(&mp, &found),
        4,
        "previous batch still running"
    );
    found.statefulset = Some(running(4, 4, Some((4, 4))));
    found.pods.get_mut("alpha-1").unwrap().ready = false;
    assert_eq!(
        stepped_replicas(&mp, &found),
        4,
        "a peer that stays is not ready"
    );
    found.pods.get_mut("alpha-1").unwrap().ready = true;
    assert_eq!(stepped_replicas(&mp, &found), 3);
    mp.spec.disruption_budget.max_unavailable = 3;
    assert_eq!(
        stepped_replicas(&mp, &found),
        2,
        "never below the wanted count"
    );
    mp.spec.replicas = 9;
    assert_eq!(stepped_replicas(&mp, &found), 9, "scale up at once");
    found.statefulset = Some(running(5, 1, None));
    mp.spec.replicas = 1;
    assert_eq!(
        stepped_replicas(&mp, &found),
        1,
        "never observed: no pods to protect"
    );
}

#[test]
fn scaling_down_then_up_within_issued_identities_keeps_the_pod_template() {
    let trust = trust();
    let mut mp = fixture("basic"); // whenScaled: Retain
    mp.spec.replicas = 5;
    let found = found_with(&trust, &mp);
    let (_, five) = valid_and_built(&mp, &found, NOW);
    let found = as_found(&found, &five);
    let template = |d: &Desired| d.statefulset.spec.as_ref().unwrap().template.clone();

    mp.spec.replicas = 3;
    let (_, three) = valid_and_built(&mp, &found, NOW);
    assert_eq!(three.statefulset.spec.as_ref().unwrap().replicas, Some(3));
    assert_eq!(
        template(&three),
        template(&five),
        "no rolling restart on scale-down"
    );
    mp.spec.replicas = 4;
    let (_, four) = valid_and_built(&mp, &found, NOW);
    assert!(
        four.identity_changes().is_empty(),
        "peer 3 gets its old identity back"
    );
    assert_eq!(
        template(&four),
        template(&five),
        "no rolling restart on scale-up"
    );

    // With whenScaled: Delete the removed identities go once their pods are gone, and the
    // template drops them.
    mp.spec.storage.retention.when_scaled = crate::crd::RetentionPolicy::Delete;
    mp.spec.replicas = 3;
    let (_, deleted) = valid_and_built(&mp, &found, NOW);
    assert_eq!(deleted.obsolete_identities.len(), 2);
    assert_ne!(template(&deleted), template(&five));
}
