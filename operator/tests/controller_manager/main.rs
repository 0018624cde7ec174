//! The operator with a real kube-controller-manager beside the harness's apiserver: the
//! StatefulSet controller turns the operator's StatefulSet into pods and PVCs (so the pod
//! template is accepted as real pods), and the garbage collector deletes what a deleted
//! MediachainPeer owned.
//!
//! Needs `KUBE_APISERVER_BIN` and `ETCD_BIN`, and `kube-controller-manager` from
//! `KUBE_CONTROLLER_MANAGER_BIN` or next to the apiserver binary (`bash e2e/tools.sh harness` builds
//! it). Fails without them unless `MEDIACHAIN_SKIP_KUBE=1`.
//!
//! This file holds the fixtures; the tests are in its modules: what a resource owns, from pods
//! to deletion and re-creation ([`lifecycle`]), readiness, scale-down and restarts
//! ([`readiness`]), a new revocation list rolled through the peers ([`revocation`]).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../support/mod.rs"]
mod support;

mod lifecycle;
mod readiness;
mod revocation;

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
use mediachain_operator::testing::TrustFixture;
use serde_json::json;

use support::NS;

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

/// The trust fixture of the principal Secret `principal` that [`cluster`] creates (seed 21).
fn trust() -> TrustFixture {
    support::trust(21)
}

/// Starts the apiserver, the controller manager, the CRD and the principal Secret.
async fn cluster() -> Option<(ApiServer, kube_harness::ControllerManager, Client)> {
    let (server, client) = support::cluster_with_principal(21).await?;
    let kcm = server.start_controller_manager(CONTROLLERS).unwrap();
    Some((server, kcm, client))
}

fn ready_condition(mp: &MediachainPeer) -> Option<(String, String)> {
    let c = mp
        .status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")?;
    Some((c.status.clone(), c.reason.clone()))
}

async fn sts_replicas(client: &Client, name: &str) -> (i32, i32) {
    let sts = Api::<StatefulSet>::namespaced(client.clone(), NS)
        .get(name)
        .await
        .unwrap();
    (
        sts.spec.unwrap().replicas.unwrap(),
        sts.status.map_or(0, |s| s.replicas),
    )
}

/// Serves `/metrics` with a journal height that grows on every request (a busy network).
async fn growing_height() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    use warp::Filter;
    let height = Arc::new(AtomicU64::new(100));
    let route = warp::path("metrics").map(move || {
        let h = height.fetch_add(1, Ordering::SeqCst);
        format!("mediachain_journal_height {h}\n")
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(warp::serve(route).incoming(listener).run());
    format!("http://{addr}/metrics")
}

/// Uid of each pod of `name`, by pod name.
async fn pod_uids(client: &Client, name: &str) -> std::collections::BTreeMap<String, String> {
    Api::<Pod>::namespaced(client.clone(), NS)
        .list(
            &kube::api::ListParams::default().labels(&format!("app.kubernetes.io/instance={name}")),
        )
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|p| Some((p.metadata.name?, p.metadata.uid?)))
        .collect()
}

async fn event_reasons(client: &Client) -> Vec<String> {
    Api::<k8s_openapi::api::events::v1::Event>::namespaced(client.clone(), NS)
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|e| e.reason)
        .collect()
}
