//! Ready peers, a quiet status, a stepped scale-down and single-peer restarts.

use super::*;

#[tokio::test]
async fn ready_peers_a_quiet_status_a_stepped_scale_down_and_single_peer_restarts() {
    let Some((_server, _kcm, client)) = cluster().await else {
        return;
    };
    let settings = Settings {
        height_refresh: Duration::from_secs(3),
        metrics_url: Some(growing_height().await),
        ..Settings::default()
    };
    let ctx = support::context_with(&client, settings);
    let controller = support::run_controller(ctx.clone());
    // The StatefulSet controller makes the pods; the kubelet's part is played here.
    support::ready_peers(&client, NS, "alpha", 4).await;
    // Ready follows the real StatefulSet status.
    support::wait_until(60, "Ready/AllPeersReady", || async {
        let mp = support::peer(&client, NS, "alpha").await?;
        (ready_condition(&mp) == Some(("True".into(), "AllPeersReady".into()))).then_some(())
    })
    .await;

    // The journal height changes on every scrape, yet reconciles and status writes stay
    // bounded by the refresh cadence (3 s): over 9 s, at most a handful of each.
    let peers: Api<MediachainPeer> = Api::namespaced(client.clone(), NS);
    let passes = ctx.metrics.reconciles.get();
    let mut versions = std::collections::BTreeSet::new();
    // Deliberately lets 9 s pass (sampling every 100 ms): what is checked is what did not happen.
    let window = tokio::time::Instant::now() + Duration::from_secs(9);
    while tokio::time::Instant::now() < window {
        versions.insert(peers.get("alpha").await.unwrap().metadata.resource_version);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let passes = ctx.metrics.reconciles.get() - passes;
    assert!(passes <= 6, "{passes} reconciles in 9 s");
    assert!(
        versions.len() <= 5,
        "{} status writes in 9 s",
        versions.len()
    );
    let height = peers
        .get("alpha")
        .await
        .unwrap()
        .status
        .unwrap()
        .journal_height;
    assert!(height.is_some_and(|h| h >= 100), "height {height:?}");

    // Scale down to 2 while alpha-1 (which stays) is not ready: no step is taken.
    support::kubelet_reports(&client, NS, "alpha-1", false).await;
    support::wait_until(60, "Ready/PeersNotReady", || async {
        let mp = support::peer(&client, NS, "alpha").await?;
        (ready_condition(&mp) == Some(("False".into(), "PeersNotReady".into()))).then_some(())
    })
    .await;
    peers
        .patch(
            "alpha",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 2}})),
        )
        .await
        .unwrap();
    support::wait_until(30, "the new generation observed", || async {
        let status = support::peer(&client, NS, "alpha").await?.status?;
        (status.observed_generation == Some(2)).then_some(())
    })
    .await;
    let passes = ctx.metrics.reconciles.get();
    support::wait_until(30, "another pass", || async {
        (ctx.metrics.reconciles.get() > passes).then_some(())
    })
    .await;
    assert_eq!(
        sts_replicas(&client, "alpha").await,
        (4, 4),
        "no step while a peer that stays is not ready"
    );
    support::kubelet_reports(&client, NS, "alpha-1", true).await;
    support::wait_until(60, "the second step (2 peers)", || async {
        (sts_replicas(&client, "alpha").await == (2, 2)).then_some(())
    })
    .await;
    let mut left = support::pods_of(&client, NS, "alpha").await;
    left.sort();
    assert_eq!(left, vec!["alpha-0", "alpha-1"]);

    // Peer 1's identity Secret is lost: a new key is issued and only pod alpha-1 restarts. (A
    // pass in flight when the Secret goes must not write the old key back: it did, which made
    // this check time out whenever the deletion fell inside a pass.)
    let pods_api: Api<Pod> = Api::namespaced(client.clone(), NS);
    let uid = |name: &'static str| {
        let pods_api = pods_api.clone();
        async move {
            pods_api
                .get_opt(name)
                .await
                .unwrap()
                .and_then(|p| p.metadata.uid)
        }
    };
    let secrets: Api<Secret> = Api::namespaced(client.clone(), NS);
    let key = |secret: Secret| secret.data.unwrap()["peer.key"].clone();
    let old_key = key(secrets.get("alpha-1-identity").await.unwrap());
    let (uid0, uid1) = (uid("alpha-0").await, uid("alpha-1").await);
    secrets
        .delete("alpha-1-identity", &DeleteParams::default())
        .await
        .unwrap();
    support::wait_until(60, "alpha-1 re-created", || async {
        let now = uid("alpha-1").await;
        (now.is_some() && now != uid1).then_some(())
    })
    .await;
    assert_eq!(uid("alpha-0").await, uid0, "the other peer keeps running");
    let new_key = key(secrets.get("alpha-1-identity").await.unwrap());
    assert_ne!(new_key, old_key, "a new key, not the old one written back");
    controller.stop().await;
}
