//! `spec.exposure` against a real kube-apiserver: the per-peer Services are accepted as built
//! (node ports allocated as asked), each peer's advertised address follows its Service, and
//! `status.externalSeeds` publishes them; Services go with a scale-down. Another cluster's
//! addresses in `spec.seeds` reach the peers through the seed file, restarting none.
//!
//! Needs `KUBE_APISERVER_BIN` and `ETCD_BIN`; fails without them unless `MEDIACHAIN_SKIP_KUBE=1`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use mediachain_operator::controller::{self, Context};
use mediachain_operator::crd::MediachainPeerStatus;
use serde_json::json;
use support::{create_peer_in, NS};

async fn pass(ctx: &Arc<Context>, name: &str) -> MediachainPeerStatus {
    let mp = support::peer(&ctx.client, NS, name).await.unwrap();
    Box::pin(controller::reconcile(Arc::new(mp), ctx.clone()))
        .await
        .unwrap();
    support::peer(&ctx.client, NS, name)
        .await
        .unwrap()
        .status
        .unwrap()
}

async fn address_file(client: &Client, name: &str, pod: &str) -> String {
    let cm = Api::<ConfigMap>::namespaced(client.clone(), NS)
        .get(&format!("{name}-exposure"))
        .await
        .unwrap();
    cm.data.unwrap()[&format!("{pod}.yaml")].clone()
}

#[tokio::test]
async fn per_peer_services_advertise_their_addresses_and_publish_external_seeds() {
    let Some((_server, admin)) = support::cluster_with_principal(31).await else {
        return;
    };
    let ctx = support::context(&admin);
    let services: Api<Service> = Api::namespaced(admin.clone(), NS);

    // NodePort, ports per ordinal, a host name for the nodes: known before any pod runs.
    create_peer_in(
        &admin,
        NS,
        "alpha",
        json!({"network": "orgnet", "replicas": 3, "trust": {"principalSecretName": "principal"},
            "exposure": {"type": "NodePort", "nodePortBase": 30400, "host": "peers.a.example"}}),
    )
    .await;
    let status = pass(&ctx, "alpha").await;
    assert_eq!(
        status.external_seeds,
        vec![
            "/dns4/peers.a.example/tcp/30400",
            "/dns4/peers.a.example/tcp/30401",
            "/dns4/peers.a.example/tcp/30402"
        ]
    );
    for i in 0..3 {
        let service = services.get(&format!("alpha-{i}-p2p")).await.unwrap();
        let port = &service.spec.unwrap().ports.unwrap()[0];
        assert_eq!(
            port.node_port,
            Some(30400 + i),
            "the apiserver allocated another port"
        );
        assert_eq!(
            address_file(&admin, "alpha", &format!("alpha-{i}")).await,
            format!(
                "external-address: /dns4/peers.a.example/tcp/{}\n",
                30400 + i
            )
        );
    }
    // A second pass writes nothing new.
    let before = services
        .get("alpha-0-p2p")
        .await
        .unwrap()
        .metadata
        .resource_version;
    pass(&ctx, "alpha").await;
    let after = services
        .get("alpha-0-p2p")
        .await
        .unwrap()
        .metadata
        .resource_version;
    assert_eq!(before, after);

    // Scale-down: the removed peer's Service goes.
    Api::<mediachain_operator::crd::MediachainPeer>::namespaced(admin.clone(), NS)
        .patch(
            "alpha",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 2}})),
        )
        .await
        .unwrap();
    let status = pass(&ctx, "alpha").await;
    assert_eq!(status.external_seeds.len(), 2);
    assert!(services.get_opt("alpha-2-p2p").await.unwrap().is_none());

    // LoadBalancer: in-cluster until the load balancer has an address, then that address.
    create_peer_in(
        &admin,
        NS,
        "beta",
        json!({"network": "orgnet", "replicas": 2, "trust": {"principalSecretName": "principal"},
            "exposure": {"type": "LoadBalancer", "annotations": {"lb.example/scheme": "internet"}}}),
    )
    .await;
    let status = pass(&ctx, "beta").await;
    assert!(status.external_seeds.is_empty());
    assert!(address_file(&admin, "beta", "beta-0")
        .await
        .contains("beta-0.beta-peers.media.svc.cluster.local"));
    // What a cloud controller writes once the load balancer exists.
    services
        .patch_status(
            "beta-0-p2p",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.7"}]}}}),
            ),
        )
        .await
        .unwrap();
    let status = pass(&ctx, "beta").await;
    assert_eq!(status.external_seeds, vec!["/ip4/203.0.113.7/tcp/4001"]);
    assert_eq!(
        address_file(&admin, "beta", "beta-0").await,
        "external-address: /ip4/203.0.113.7/tcp/4001\n"
    );
    let service = services.get("beta-1-p2p").await.unwrap();
    assert_eq!(service.spec.unwrap().type_.as_deref(), Some("LoadBalancer"));
    assert_eq!(
        service.metadata.annotations.unwrap()["lb.example/scheme"],
        "internet"
    );
}

/// The seed list `<network>-seeds` as the apiserver holds it.
async fn seed_file(client: &Client) -> String {
    Api::<ConfigMap>::namespaced(client.clone(), NS)
        .get("orgnet-seeds")
        .await
        .unwrap()
        .data
        .unwrap()["seeds.txt"]
        .clone()
}

#[tokio::test]
async fn the_other_clusters_seeds_reach_the_seed_file_without_restarting_a_peer() {
    let Some((_server, admin)) = support::cluster_with_principal(32).await else {
        return;
    };
    let ctx = support::context(&admin);
    let statefulsets: Api<StatefulSet> = Api::namespaced(admin.clone(), NS);
    create_peer_in(
        &admin,
        NS,
        "beta",
        json!({"network": "orgnet", "replicas": 2, "trust": {"principalSecretName": "principal"},
            "exposure": {"type": "NodePort", "nodePortBase": 30500, "host": "172.18.0.3"}}),
    )
    .await;
    pass(&ctx, "beta").await;
    let template = |sts: StatefulSet| sts.spec.unwrap().template;
    let before = template(statefulsets.get("beta").await.unwrap());

    // Organisation A's published seeds go into B's spec.seeds, as the runbook says, twice (A's
    // node got another address).
    for a in ["172.18.0.2", "172.18.0.4"] {
        let seeds = [format!("/ip4/{a}/tcp/30400"), format!("/ip4/{a}/tcp/30401")];
        Api::<mediachain_operator::crd::MediachainPeer>::namespaced(admin.clone(), NS)
            .patch(
                "beta",
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"seeds": seeds}})),
            )
            .await
            .unwrap();
        pass(&ctx, "beta").await;
        let file = seed_file(&admin).await;
        for seed in &seeds {
            assert!(file.lines().any(|l| l == seed), "{seed} not in {file}");
        }
        assert!(file.contains("/dns4/beta-1.beta-peers.media.svc.cluster.local/tcp/4001\n"));
        assert_eq!(
            template(statefulsets.get("beta").await.unwrap()),
            before,
            "a change of spec.seeds changed the pod template: every peer would restart"
        );
    }
    assert!(!seed_file(&admin).await.contains("172.18.0.2"));

    // More seeds than the schema allows are refused at admission.
    let many: Vec<String> = (0..65)
        .map(|i| format!("/ip4/10.0.0.{i}/tcp/4001"))
        .collect();
    let refused = Api::<mediachain_operator::crd::MediachainPeer>::namespaced(admin.clone(), NS)
        .patch(
            "beta",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"seeds": many}})),
        )
        .await;
    assert!(refused.is_err(), "65 seeds were accepted");
}
