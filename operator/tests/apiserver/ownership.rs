//! Objects the operator does not own are never taken over; colliding names are refused.

use super::*;

#[tokio::test]
async fn foreign_objects_are_never_taken_over_and_colliding_names_are_refused() {
    let Some((_server, client)) = cluster().await else {
        return;
    };
    // Someone else's Service named like the resource's client Service.
    let foreign: Service = serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web", "namespace": NS, "labels": {"app": "web"}},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]},
    }))
    .unwrap();
    let services: Api<Service> = Api::namespaced(client.clone(), NS);
    services
        .create(&PostParams::default(), &foreign)
        .await
        .unwrap();
    let spec = json!({
        "network": "testnet",
        "replicas": 1,
        "trust": {"principalSecretName": "principal"},
    });
    create_peer(&client, "web", spec.clone()).await;
    let ctx = context(&client);
    let err = reconcile(&ctx, "web").await.unwrap_err();
    assert_eq!(err.category(), "ObjectNotOwned");
    assert!(err.to_string().contains("Service media/web"), "{err}");
    let untouched = services.get("web").await.unwrap();
    assert_eq!(untouched.spec.unwrap().selector.unwrap()["app"], "web");
    assert!(untouched.metadata.owner_references.is_none());
    assert!(event_reasons(&client, "web")
        .await
        .contains(&"ObjectNotOwned".to_string()));
    let status = Api::<MediachainPeer>::namespaced(client.clone(), NS)
        .get("web")
        .await
        .unwrap()
        .status
        .unwrap();
    assert_eq!(condition(&status, "Degraded"), ("True", "ObjectNotOwned"));
    assert_eq!(status_column(&client, "web").await, "ObjectNotOwned");
    assert!(
        Api::<StatefulSet>::namespaced(client.clone(), NS)
            .get_opt("web")
            .await
            .unwrap()
            .is_none(),
        "no StatefulSet before every object it needs is ours"
    );
    // Once the foreign Service is gone, the resource reconciles.
    services.delete("web", &Default::default()).await.unwrap();
    reconcile(&ctx, "web").await.unwrap();

    // `web-peers` would own the Service `web-peers`, the headless Service of `web`: refused,
    // and `web` keeps its Service.
    create_peer(&client, "web-peers", spec).await;
    let err = reconcile(&ctx, "web-peers").await.unwrap_err();
    assert_eq!(err.category(), "InvalidSpec");
    assert!(
        err.to_string()
            .contains("collides with MediachainPeer `web`"),
        "{err}"
    );
    reconcile(&ctx, "web").await.unwrap();
    let headless = services.get("web-peers").await.unwrap();
    assert_eq!(headless.spec.unwrap().cluster_ip.as_deref(), Some("None"));
}
