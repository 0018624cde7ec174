//! The operator with a real kube-controller-manager beside the harness's apiserver: the
//! StatefulSet controller turns the operator's StatefulSet into pods and PVCs (so the pod
//! template is accepted as real pods), and the garbage collector deletes what a deleted
//! MediachainPeer owned.
//!
//! Needs `KUBE_APISERVER_BIN` and `ETCD_BIN`, and `kube-controller-manager` from
//! `KUBE_CONTROLLER_MANAGER_BIN` or next to the apiserver binary (`bash e2e/tools.sh kind` builds
//! it). Fails without them unless `MEDIACHAIN_SKIP_KUBE=1`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Pod, Secret, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::wait::await_condition;
use kube::{Api, Client, Resource};
use kube_harness::ApiServer;
use mediachain_operator::controller::{self, Context};
use mediachain_operator::crd::MediachainPeer;
use mediachain_operator::metrics::Metrics;
use mediachain_operator::reconcile::Settings;
use mediachain_operator::testing::{install_crd, TrustFixture};
use serde_json::json;

const NS: &str = "media";

/// The controllers the tests need: StatefulSets make pods and claims, the garbage collector
/// deletes what a deleted resource owned, PVC protection finalizes claims.
const CONTROLLERS: &[&str] = &["garbagecollector", "statefulset", "pvc-protection"];

async fn wait_for<K, F>(api: &Api<K>, name: &str, what: &str, cond: F)
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
    F: Fn(Option<&K>) -> bool + Send,
{
    let waiting = await_condition(api.clone(), name, move |o: Option<&K>| cond(o));
    tokio::time::timeout(Duration::from_secs(90), waiting)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
        .unwrap();
}

async fn setup(client: &Client) {
    install_crd(client, NS).await.unwrap();
    let now = mediachain::time::now();
    let trust = TrustFixture::new(21, now - 3600, now + 365 * 86_400);
    Api::<Secret>::namespaced(client.clone(), NS)
        .create(&PostParams::default(), &trust.secret(NS, "principal"))
        .await
        .unwrap();
}

#[tokio::test]
async fn pods_follow_the_template_and_deletion_collects_everything_owned() {
    let server = match ApiServer::start_or_skip().await {
        Ok(Some(server)) => server,
        Ok(None) => return,
        Err(e) => panic!("cannot start the kube-apiserver harness: {e}"),
    };
    let _kcm = server.start_controller_manager(CONTROLLERS).unwrap();
    let client = server.client();
    setup(&client).await;

    let ctx = Arc::new(Context::new(
        client.clone(),
        Arc::new(Metrics::default()),
        Settings::default(),
    ));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(controller::run(ctx, async move {
        let _ = stopped.await;
    }));

    let mp: MediachainPeer = serde_json::from_value(json!({
        "apiVersion": "mediachain.io/v1alpha1",
        "kind": "MediachainPeer",
        "metadata": {"name": "zeta", "namespace": NS},
        "spec": {
            "network": "devnet",
            "replicas": 2,
            "storage": {"size": "1Gi", "retention": {"whenDeleted": "Delete", "whenScaled": "Retain"}},
            "trust": {"principalSecretName": "principal"},
        },
    }))
    .unwrap();
    let peers: Api<MediachainPeer> = Api::namespaced(client.clone(), NS);
    peers.create(&PostParams::default(), &mp).await.unwrap();

    // The StatefulSet controller creates real pods and claims from the operator's template.
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), NS);
    for i in 0..2 {
        wait_for(&pods, &format!("zeta-{i}"), "a peer pod", |p| p.is_some()).await;
        wait_for(&pvcs, &format!("data-zeta-{i}"), "a data claim", |p| {
            p.is_some()
        })
        .await;
    }
    let pod = pods.get("zeta-1").await.unwrap();
    let spec = pod.spec.unwrap();
    let mounts = spec.containers[0].volume_mounts.clone().unwrap();
    let identity = mounts.iter().find(|m| m.name == "identity").unwrap();
    assert_eq!(identity.sub_path_expr.as_deref(), Some("$(POD_NAME)"));
    assert_eq!(spec.hostname.as_deref(), Some("zeta-1"));
    assert_eq!(spec.subdomain.as_deref(), Some("zeta-peers"));

    // The StatefulSet's status (written by its controller) reaches the resource's status.
    wait_for(&peers, "zeta", "status.replicas = 2", |mp| {
        mp.and_then(|mp| mp.status.as_ref())
            .is_some_and(|s| s.replicas == 2 && s.peers.len() == 2)
    })
    .await;

    // Scale down with whenScaled: Retain: the pod goes, its claim and identity stay.
    peers
        .patch(
            "zeta",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 1}})),
        )
        .await
        .unwrap();
    wait_for(&pods, "zeta-1", "the removed pod to go", |p| p.is_none()).await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), NS);
    assert!(pvcs.get_opt("data-zeta-1").await.unwrap().is_some());
    assert!(secrets.get_opt("zeta-1-identity").await.unwrap().is_some());

    // Deleting the resource: the garbage collector removes everything it owned.
    peers
        .delete("zeta", &DeleteParams::background())
        .await
        .unwrap();
    let sts: Api<StatefulSet> = Api::namespaced(client.clone(), NS);
    wait_for(&sts, "zeta", "the StatefulSet to be collected", |o| {
        o.is_none()
    })
    .await;
    let services: Api<Service> = Api::namespaced(client.clone(), NS);
    for name in ["zeta", "zeta-peers"] {
        wait_for(&services, name, "a Service to be collected", |o| {
            o.is_none()
        })
        .await;
    }
    for name in ["zeta-0-identity", "zeta-1-identity"] {
        wait_for(&secrets, name, "an identity Secret to be collected", |o| {
            o.is_none()
        })
        .await;
    }
    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), NS);
    wait_for(&pdbs, "zeta", "the budget to be collected", |o| o.is_none()).await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), NS);
    wait_for(&cms, "devnet-seeds", "the seed list to be collected", |o| {
        o.is_none()
    })
    .await;
    wait_for(&pods, "zeta-0", "the pod to be collected", |o| o.is_none()).await;
    // whenDeleted: Delete: the claims of the StatefulSet go with it.
    wait_for(&pvcs, "data-zeta-0", "the claim to be deleted", |o| {
        o.is_none()
    })
    .await;
    // The principal Secret is the user's: untouched.
    assert!(secrets.get_opt("principal").await.unwrap().is_some());

    stop.send(()).expect("the controller is still running");
    tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .expect("the controller stops on shutdown")
        .expect("the controller did not panic");
}
