//! The operator against a real etcd + kube-apiserver (the `kube-harness` crate). This file holds
//! the fixtures; the tests are in its modules, one concern each: a network's life
//! ([`reconcile`]), identity Secrets ([`identities`]), a network's shared parameters
//! ([`network`]), the operator's RBAC ([`rbac`]), its leader lease ([`leadership`]), objects it
//! does not own ([`ownership`]).
//!
//! There is no controller manager here: StatefulSets create no pods and the garbage collector
//! does not run. These tests assert on the objects the operator writes and on owner references
//! (what the garbage collector acts on); readiness, scale-down steps, restarts and deletion run
//! on a real kube-controller-manager in `tests/controller_manager/`.
//!
//! Needs `KUBE_APISERVER_BIN` and `ETCD_BIN` (`eval "$(bash e2e/tools.sh harness)"`); fails
//! without them unless `MEDIACHAIN_SKIP_KUBE=1`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Secret, Service};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::runtime::wait::await_condition;
use kube::{Api, Client, ResourceExt};
use kube_harness::ApiServer;
use mediachain::trust::{Chain, Level, RevocationSet};
use mediachain_operator::controller::{self, Context, Leadership};
use mediachain_operator::crd::{MediachainPeer, MediachainPeerStatus};
use mediachain_operator::metrics::Metrics;
use mediachain_operator::reconcile::Settings;
use mediachain_operator::testing::{install_crd, TrustFixture};
use mediachain_operator::Error;
use serde_json::json;

#[path = "../support/mod.rs"]
mod support;

mod identities;
mod leadership;
mod network;
mod ownership;
mod rbac;
mod reconcile;

use support::{context, now, NS};

async fn start() -> Option<ApiServer> {
    match ApiServer::start_or_skip().await {
        Ok(server) => server,
        Err(e) => panic!("cannot start the kube-apiserver harness: {e}"),
    }
}

/// The harness with the CRD and the principal Secret of [`trust`] (`None`: skipped on request).
async fn cluster() -> Option<(ApiServer, Client)> {
    support::cluster_with_principal(11).await
}

/// Installs the CRD and the test namespace.
async fn install(client: &Client) {
    install_crd(client, NS).await.unwrap();
}

/// The trust fixture of these tests (seed 11).
fn trust() -> TrustFixture {
    support::trust(11)
}

/// Creates the principal Secret `principal` of `trust` in [`NS`].
async fn create_principal(client: &Client, trust: &TrustFixture) {
    support::create_principal(client, NS, trust).await;
}

/// Creates MediachainPeer `name` in [`NS`] with `spec`.
async fn create_peer(client: &Client, name: &str, spec: serde_json::Value) -> MediachainPeer {
    support::create_peer_in(client, NS, name, spec).await
}

/// Reads the resource afresh and runs one reconcile pass on it.
async fn reconcile(ctx: &Arc<Context>, name: &str) -> Result<MediachainPeer, Error> {
    let api: Api<MediachainPeer> = Api::namespaced(ctx.client.clone(), NS);
    let mp = api.get(name).await.unwrap();
    // Boxed: the pass is a large future, and a test awaiting many of them in debug builds
    // would otherwise overflow its thread's stack.
    Box::pin(controller::reconcile(Arc::new(mp), ctx.clone())).await?;
    Ok(api.get(name).await.unwrap())
}

async fn patch_spec(client: &Client, name: &str, spec: serde_json::Value) {
    Api::<MediachainPeer>::namespaced(client.clone(), NS)
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": spec })),
        )
        .await
        .unwrap();
}

fn condition<'a>(status: &'a MediachainPeerStatus, type_: &str) -> (&'a str, &'a str) {
    let c = status
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .unwrap_or_else(|| panic!("no {type_} condition in {status:?}"));
    (c.status.as_str(), c.reason.as_str())
}

async fn identity_keys(client: &Client, name: &str) -> BTreeMap<String, Vec<u8>> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), NS);
    secrets
        .list(&ListParams::default().labels(&format!(
            "app.kubernetes.io/instance={name},mediachain.io/ordinal"
        )))
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|s| {
            let key = s.data.as_ref().unwrap()["peer.key"].0.clone();
            (s.name_any(), key)
        })
        .collect()
}

async fn event_reasons(client: &Client, name: &str) -> Vec<String> {
    Api::<Event>::namespaced(client.clone(), NS)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
        .filter_map(|e| e.reason)
        .collect()
}

/// The Status column of `kubectl get mcp NAME`, as the apiserver renders it (a Table).
async fn status_column(client: &Client, name: &str) -> String {
    let request = http::Request::get(format!(
        "/apis/mediachain.io/v1alpha1/namespaces/{NS}/mediachainpeers/{name}"
    ))
    .header("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io")
    .body(Vec::new())
    .unwrap();
    let table: serde_json::Value =
        serde_json::from_str(&client.request_text(request).await.unwrap()).unwrap();
    let columns = table["columnDefinitions"].as_array().unwrap();
    let index = columns.iter().position(|c| c["name"] == "Status").unwrap();
    table["rows"][0]["cells"][index]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// The peers' `MEDIACHAIN_API_TRUSTED_PROXIES` in StatefulSet `name`, if set.
async fn trusted_proxies(client: &Client, name: &str) -> Option<String> {
    let sts = Api::<StatefulSet>::namespaced(client.clone(), NS)
        .get(name)
        .await
        .unwrap();
    sts.spec?.template.spec?.containers[0]
        .env
        .as_ref()?
        .iter()
        .find(|e| e.name == "MEDIACHAIN_API_TRUSTED_PROXIES")
        .and_then(|e| e.value.clone())
}
