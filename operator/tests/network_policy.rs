//! `spec.networkPolicy` (issue 17 item 4) against a real kube-apiserver: the NetworkPolicy is
//! accepted as built (overlay port from the network's peers and `overlayFrom`, HTTP port from
//! `apiFrom`, the monitoring namespace, the operator and the resource's own pods), and deleted
//! when the field goes.
//!
//! Needs `KUBE_APISERVER_BIN` and `ETCD_BIN`; fails without them unless `MEDIACHAIN_SKIP_KUBE=1`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;

use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{Patch, PatchParams};
use kube::Api;
use mediachain_operator::controller::{self, Context};
use mediachain_operator::crd::MediachainPeer;
use mediachain_operator::reconcile::Settings;
use serde_json::json;
use support::{create_peer_in, NS};

async fn pass(ctx: &Arc<Context>) {
    let mp = support::peer(&ctx.client, NS, "alpha").await.unwrap();
    Box::pin(controller::reconcile(Arc::new(mp), ctx.clone()))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_network_policy_admits_only_the_named_sources_and_goes_with_the_field() {
    let Some((_server, admin)) = support::cluster_with_principal(61).await else {
        return;
    };
    let ctx = support::context_with(
        &admin,
        Settings {
            operator_namespace: Some("mediachain-system".into()),
            ..Settings::default()
        },
    );
    create_peer_in(
        &admin,
        NS,
        "alpha",
        json!({"network": "orgnet", "replicas": 2, "trust": {"principalSecretName": "principal"},
            "networkPolicy": {
                "apiFrom": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}],
                "metricsNamespace": "monitoring",
                "overlayFrom": [{"ipBlock": {"cidr": "198.51.100.0/24"}}]}}),
    )
    .await;
    pass(&ctx).await;
    let policies: Api<NetworkPolicy> = Api::namespaced(admin.clone(), NS);
    let policy = policies.get("alpha").await.unwrap();
    let spec = serde_json::to_value(policy.spec.unwrap()).unwrap();
    assert_eq!(
        spec["podSelector"]["matchLabels"],
        json!({"app.kubernetes.io/instance": "alpha", "app.kubernetes.io/name": "mediachain-peer"})
    );
    assert_eq!(spec["policyTypes"], json!(["Ingress"]));
    let rules = spec["ingress"].as_array().unwrap();
    assert_eq!(rules.len(), 2);
    assert_eq!(
        rules[0]["ports"],
        json!([{"port": 4001, "protocol": "TCP"}])
    );
    assert_eq!(
        rules[0]["from"],
        json!([
            {"podSelector": {"matchLabels": {"mediachain.io/network": "orgnet"}}},
            {"ipBlock": {"cidr": "198.51.100.0/24"}}
        ])
    );
    assert_eq!(
        rules[1]["ports"],
        json!([{"port": 8080, "protocol": "TCP"}])
    );
    assert_eq!(
        rules[1]["from"],
        json!([
            {"podSelector": {"matchLabels": {"app.kubernetes.io/instance": "alpha"}}},
            {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}},
            {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}},
            {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "mediachain-system"}},
             "podSelector": {"matchLabels": {"app.kubernetes.io/name": "mediachain-operator"}}}
        ])
    );
    // Idempotent: a second pass leaves it as it is.
    let version = policies
        .get("alpha")
        .await
        .unwrap()
        .metadata
        .resource_version;
    pass(&ctx).await;
    assert_eq!(
        policies
            .get("alpha")
            .await
            .unwrap()
            .metadata
            .resource_version,
        version
    );

    Api::<MediachainPeer>::namespaced(admin.clone(), NS)
        .patch(
            "alpha",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"networkPolicy": null}})),
        )
        .await
        .unwrap();
    pass(&ctx).await;
    assert!(policies.get_opt("alpha").await.unwrap().is_none());
}
