//! A new revocation list replaces the revoked peer's key and rolls the peers one at a time.

use super::*;

#[tokio::test]
async fn a_new_revocation_list_replaces_the_key_and_rolls_the_peers_one_at_a_time() {
    let Some((_server, _kcm, client)) = cluster().await else {
        return;
    };
    let controller = support::run_controller(support::context(&client));
    support::ready_peers(&client, NS, "rho", 3).await;
    let before = support::wait_until(60, "Ready with 3 identities", || async {
        let status = support::peer(&client, NS, "rho").await?.status?;
        (status.ready_replicas == 3 && status.peers.len() == 3).then_some(status)
    })
    .await;
    let revoked = before.peers[1].peer_id.clone();
    let uids = pod_uids(&client, "rho").await;

    // The principal's owner revokes peer 1's key.
    let list = trust().revocations_pem(&[(&revoked, "node compromised")], support::now());
    Api::<Secret>::namespaced(client.clone(), NS)
        .patch(
            "principal",
            &PatchParams::default(),
            &Patch::Merge(json!({"stringData": {"revocations.pem": list}})),
        )
        .await
        .unwrap();

    // Status and events say so; peer 1 has a new key.
    let status = support::wait_until(60, "the revoked peer in status", || async {
        let status = support::peer(&client, NS, "rho").await?.status?;
        (!status.revoked_peers.is_empty()).then_some(status)
    })
    .await;
    assert_eq!(status.revoked_peers.len(), 1);
    let entry = &status.revoked_peers[0];
    assert_eq!(
        (
            entry.name.as_str(),
            entry.peer_id.as_str(),
            entry.reason.as_str()
        ),
        ("rho-1", revoked.as_str(), "node compromised")
    );
    assert_ne!(status.peers[1].peer_id, revoked);
    assert_eq!(status.peers[0].peer_id, before.peers[0].peer_id);
    support::wait_until(
        30,
        "IdentityRevoked and RevocationsChanged events",
        || async {
            let reasons = event_reasons(&client).await;
            let both = ["IdentityRevoked", "RevocationsChanged"]
                .iter()
                .all(|r| reasons.iter().any(|x| x == r));
            both.then_some(())
        },
    )
    .await;

    // The peers load the list at start: the StatefulSet restarts them one at a time.
    rolls_one_at_a_time(&client, &uids).await;

    // A later list (another principal's peer revoked too): the peers restart again to load it.
    let uids = pod_uids(&client, "rho").await;
    let other = mediachain::trust::SecretKey::from_seed(&[99; 32])
        .public()
        .to_string();
    let list = trust().revocations_pem(
        &[(&revoked, "node compromised"), (&other, "lost laptop")],
        support::now(),
    );
    Api::<Secret>::namespaced(client.clone(), NS)
        .patch(
            "principal",
            &PatchParams::default(),
            &Patch::Merge(json!({"stringData": {"revocations.pem": list}})),
        )
        .await
        .unwrap();
    rolls_one_at_a_time(&client, &uids).await;
    assert!(
        !event_reasons(&client)
            .await
            .iter()
            .any(|r| r == "PeerRestarted"),
        "the operator deleted a pod during the rollout"
    );
    controller.stop().await;
}

/// Waits for the StatefulSet to restart rho's peers one at a time (highest ordinal first), each
/// next one only once the previous runs ready again (the test plays the kubelet), with the
/// revocation list in their environment.
async fn rolls_one_at_a_time(client: &Client, uids: &std::collections::BTreeMap<String, String>) {
    for (i, pod) in ["rho-2", "rho-1", "rho-0"].into_iter().enumerate() {
        let fresh = support::wait_until(60, &format!("{pod} re-created"), || async {
            let now = pod_uids(client, "rho").await;
            now.get(pod)
                .is_some_and(|uid| uid != &uids[pod])
                .then_some(now)
        })
        .await;
        let spec = Api::<Pod>::namespaced(client.clone(), NS)
            .get(pod)
            .await
            .unwrap()
            .spec
            .unwrap();
        let env = spec.containers[0].env.clone().unwrap();
        assert!(env.iter().any(|e| e.name == "MEDIACHAIN_REVOCATIONS"));
        // Until it is ready, the peers not yet restarted keep running.
        let waiting = tokio::time::Instant::now() + Duration::from_secs(4);
        while tokio::time::Instant::now() < waiting {
            let now = pod_uids(client, "rho").await;
            for later in ["rho-2", "rho-1", "rho-0"].iter().skip(i + 1) {
                assert_eq!(
                    now.get(*later),
                    uids.get(*later),
                    "{later} restarted while {pod} was not ready"
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert_eq!(fresh.len(), 3);
        support::kubelet_reports(client, NS, pod, true).await;
    }
}
