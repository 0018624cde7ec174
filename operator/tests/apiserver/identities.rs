//! Identity Secrets: they survive reconciles and outlive their pods; a pass never writes back
//! an identity changed during it.

use super::*;

#[tokio::test]
async fn identity_secrets_survive_reconciles_and_outlive_their_pods() {
    let Some((_server, client)) = cluster().await else {
        return;
    };
    create_peer(
        &client,
        "delta",
        json!({
            "network": "devnet",
            "replicas": 3,
            "storage": {"retention": {"whenScaled": "Delete"}},
            "trust": {"principalSecretName": "principal"},
        }),
    )
    .await;
    let ctx = context(&client);
    reconcile(&ctx, "delta").await.unwrap();
    let keys = identity_keys(&client, "delta").await;
    assert_eq!(keys.len(), 3);

    // Reconciles never touch existing keys.
    let secrets: Api<Secret> = Api::namespaced(client.clone(), NS);
    for _ in 0..3 {
        reconcile(&ctx, "delta").await.unwrap();
    }
    assert_eq!(identity_keys(&client, "delta").await, keys);

    // The pod of peer 2 still runs (no kubelet here: a stored Pod object stands for it).
    let pod: Pod = serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "delta-2", "namespace": NS, "labels": {
            "app.kubernetes.io/name": "mediachain-peer",
            "app.kubernetes.io/instance": "delta",
        }},
        "spec": {"containers": [{"name": "peer", "image": "mediachain-peer:test"}]},
    }))
    .unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    pods.create(&PostParams::default(), &pod).await.unwrap();

    patch_spec(&client, "delta", json!({"replicas": 2})).await;
    reconcile(&ctx, "delta").await.unwrap();
    assert!(
        secrets.get_opt("delta-2-identity").await.unwrap().is_some(),
        "never deleted while its pod exists"
    );

    pods.delete("delta-2", &Default::default()).await.unwrap();
    reconcile(&ctx, "delta").await.unwrap();
    assert!(secrets.get_opt("delta-2-identity").await.unwrap().is_none());
    assert!(event_reasons(&client, "delta")
        .await
        .contains(&"IdentityDeleted".to_string()));
    let left = identity_keys(&client, "delta").await;
    assert_eq!(left.len(), 2);
    for (name, key) in &left {
        assert_eq!(&keys[name], key);
    }
}

/// A pass writes identity Secrets only over what it read: one deleted during the pass is not
/// brought back with the old key (the next pass issues a new one), and one created during the
/// pass is not overwritten.
#[tokio::test]
async fn a_pass_never_writes_back_an_identity_changed_during_it() {
    use mediachain_operator::reconcile::{apply, build, dereference, validate};
    let Some((_server, client)) = cluster().await else {
        return;
    };
    create_peer(
        &client,
        "iota",
        json!({"network": "devnet", "replicas": 2, "trust": {"principalSecretName": "principal"}}),
    )
    .await;
    let ctx = context(&client);
    reconcile(&ctx, "iota").await.unwrap();
    let keys = identity_keys(&client, "iota").await;
    assert_eq!(keys.len(), 2);

    let peers: Api<MediachainPeer> = Api::namespaced(client.clone(), NS);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), NS);
    let plan = || async {
        let mp = peers.get("iota").await.unwrap();
        let found = dereference::dereference(&client, &mp).await.unwrap();
        let valid = validate::validate(&mp, &found, now()).unwrap();
        let desired = build::build(
            &valid,
            &found,
            &Settings::default(),
            now(),
            &mut mediachain::trust::SecretKey::generate,
        )
        .unwrap();
        (mp, desired)
    };

    // Read, then the Secret is deleted, then the write: refused, the Secret stays deleted.
    let (mp, desired) = plan().await;
    secrets
        .delete("iota-1-identity", &Default::default())
        .await
        .unwrap();
    let err = apply::apply(&client, &mp, desired).await.unwrap_err();
    assert!(matches!(err, Error::Changed { .. }), "{err}");
    assert!(secrets.get_opt("iota-1-identity").await.unwrap().is_none());

    // Read (no Secret), then someone else's Secret appears, then the write: not overwritten.
    let (mp, desired) = plan().await;
    let mut foreign = secrets.get("iota-0-identity").await.unwrap();
    foreign.metadata = ObjectMeta {
        name: Some("iota-1-identity".into()),
        labels: foreign.metadata.labels.clone(),
        ..ObjectMeta::default()
    };
    secrets
        .create(&PostParams::default(), &foreign)
        .await
        .unwrap();
    let err = apply::apply(&client, &mp, desired).await.unwrap_err();
    assert!(matches!(err, Error::Changed { .. }), "{err}");
    assert_eq!(
        identity_keys(&client, "iota").await["iota-1-identity"],
        keys["iota-0-identity"]
    );

    // The next pass starts from what is there: a lost Secret gets a new key.
    secrets
        .delete("iota-1-identity", &Default::default())
        .await
        .unwrap();
    reconcile(&ctx, "iota").await.unwrap();
    let now_keys = identity_keys(&client, "iota").await;
    assert_eq!(now_keys["iota-0-identity"], keys["iota-0-identity"]);
    assert_ne!(now_keys["iota-1-identity"], keys["iota-1-identity"]);
}
