//! Shared fixtures of the apiserver and controller-manager tests: resources, a running
//! controller, bounded waits, and the kubelet's part (there is none: pods are marked ready as a
//! kubelet would).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, Service};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::chrono::{SecondsFormat, Utc};
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use kube_harness::ApiServer;
use mediachain_operator::controller::{self, Context};
use mediachain_operator::crd::MediachainPeer;
use mediachain_operator::metrics::Metrics;
use mediachain_operator::reconcile::Settings;
use mediachain_operator::testing::TrustFixture;
use serde_json::json;
use tokio::task::JoinHandle;

/// The namespace of the tests' resources.
pub const NS: &str = "media";

/// Unix seconds now.
pub fn now() -> u64 {
    mediachain::time::now()
}

/// A trust fixture valid for a year.
pub fn trust(seed: u8) -> TrustFixture {
    TrustFixture::new(seed, now() - 3600, now() + 365 * 86_400)
}

/// Starts the kube-apiserver harness (`None`: skipped on request, `MEDIACHAIN_SKIP_KUBE=1`),
/// installs the CRD, and creates the principal Secret `principal` of `trust(seed)` in [`NS`].
pub async fn cluster_with_principal(seed: u8) -> Option<(ApiServer, Client)> {
    let server = match ApiServer::start_or_skip().await {
        Ok(server) => server?,
        Err(e) => panic!("cannot start the kube-apiserver harness: {e}"),
    };
    let admin = server.client();
    mediachain_operator::testing::install_crd(&admin, NS)
        .await
        .unwrap();
    create_principal(&admin, NS, &trust(seed)).await;
    Some((server, admin))
}

/// Starts the kube-apiserver harness with the Node authorizer (`None`: skipped on request).
pub async fn node_authorized_cluster() -> Option<ApiServer> {
    let options = kube_harness::Options {
        node_authorization: true,
    };
    match ApiServer::start_with_options_or_skip(options).await {
        Ok(server) => server,
        Err(e) => panic!("cannot start the kube-apiserver harness: {e}"),
    }
}

/// A client acting as `user` in `groups`, impersonated by the admin.
pub async fn impersonating(
    server: &ApiServer,
    user: String,
    groups: Option<Vec<String>>,
) -> Client {
    let kubeconfig = kube::config::Kubeconfig::read_from(server.kubeconfig_path()).unwrap();
    let mut config = kube::Config::from_custom_kubeconfig(
        kubeconfig,
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .unwrap();
    config.auth_info.impersonate = Some(user);
    config.auth_info.impersonate_groups = groups;
    Client::try_from(config).unwrap()
}

/// A client acting as the kubelet of `node` (user `system:node:<node>`, group `system:nodes`).
pub async fn kubelet(server: &ApiServer, node: &str) -> Client {
    let groups = vec!["system:nodes".into(), "system:authenticated".into()];
    impersonating(server, format!("system:node:{node}"), Some(groups)).await
}

/// Creates the principal Secret `principal` in `ns`.
pub async fn create_principal(client: &Client, ns: &str, trust: &TrustFixture) {
    Api::<Secret>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &trust.secret(ns, "principal"))
        .await
        .unwrap();
}

/// Creates MediachainPeer `name` in `ns` with `spec`.
pub async fn create_peer_in(
    client: &Client,
    ns: &str,
    name: &str,
    spec: serde_json::Value,
) -> MediachainPeer {
    let mp: MediachainPeer = serde_json::from_value(json!({
        "apiVersion": "mediachain.io/v1alpha1",
        "kind": "MediachainPeer",
        "metadata": {"name": name, "namespace": ns},
        "spec": spec,
    }))
    .unwrap();
    Api::<MediachainPeer>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &mp)
        .await
        .unwrap()
}

/// A context with default settings.
pub fn context(client: &Client) -> Arc<Context> {
    context_with(client, Settings::default())
}

/// A context with `settings`.
pub fn context_with(client: &Client, settings: Settings) -> Arc<Context> {
    Arc::new(Context::new(
        client.clone(),
        Arc::new(Metrics::default()),
        settings,
    ))
}

/// A controller running in the background until [`Running::stop`].
pub struct Running {
    stop: tokio::sync::oneshot::Sender<()>,
    task: JoinHandle<()>,
}

/// Runs the controller over `ctx`.
pub fn run_controller(ctx: Arc<Context>) -> Running {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(controller::run(ctx, async move {
        let _ = stopped.await;
    }));
    Running { stop, task }
}

impl Running {
    /// Stops the controller; fails if it ended early, panicked or does not stop in time.
    pub async fn stop(self) {
        self.stop.send(()).expect("the controller is still running");
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("the controller stops on shutdown")
            .expect("the controller did not panic");
    }
}

/// Polls `check` every 200 ms until it returns `Some`, failing after `secs` seconds.
pub async fn wait_until<T, F, Fut>(secs: u64, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {secs} s waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The resource `name` in `ns`, if it exists.
pub async fn peer(client: &Client, ns: &str, name: &str) -> Option<MediachainPeer> {
    Api::<MediachainPeer>::namespaced(client.clone(), ns)
        .get_opt(name)
        .await
        .unwrap()
}

/// Sets the pod's status as a kubelet would once its container runs: `Running` and `Ready`
/// `ready` (there is no kubelet in these tests).
pub async fn kubelet_reports(client: &Client, ns: &str, pod: &str, ready: bool) {
    let now = Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true);
    let status = if ready { "True" } else { "False" };
    Api::<Pod>::namespaced(client.clone(), ns)
        .patch_status(
            pod,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {
                "phase": "Running",
                "conditions": [
                    {"type": "Ready", "status": status, "lastTransitionTime": now},
                    {"type": "ContainersReady", "status": status, "lastTransitionTime": now},
                ],
            }})),
        )
        .await
        .unwrap();
}

/// Names of the pods of resource `name` in `ns`.
pub async fn pods_of(client: &Client, ns: &str, name: &str) -> Vec<String> {
    Api::<Pod>::namespaced(client.clone(), ns)
        .list(&ListParams::default().labels(&format!("app.kubernetes.io/instance={name}")))
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|p| p.metadata.name)
        .collect()
}

/// Creates MediachainPeer `name` in `ns` (network `testnet`, `replicas` peers, 1Gi volumes, the
/// principal Secret `principal`), waits for the StatefulSet controller to make its pods and
/// reports each ready as its kubelet would; returns the pod names.
pub async fn ready_peers(client: &Client, ns: &str, name: &str, replicas: usize) -> Vec<String> {
    create_peer_in(
        client,
        ns,
        name,
        json!({
            "network": "testnet",
            "replicas": replicas,
            "storage": {"size": "1Gi"},
            "trust": {"principalSecretName": "principal"},
        }),
    )
    .await;
    let pods = wait_until(60, &format!("{replicas} pods of {name}"), || async {
        let pods = pods_of(client, ns, name).await;
        (pods.len() == replicas).then_some(pods)
    })
    .await;
    for pod in &pods {
        kubelet_reports(client, ns, pod, true).await;
    }
    pods
}

/// resourceVersion of every object resource `name` in `ns` owns (by its instance label; every
/// ConfigMap the operator manages), and of the resource itself: equal before and after a pass
/// when the pass wrote nothing.
pub async fn versions(client: &Client, ns: &str, name: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let sel = ListParams::default().labels(&format!("app.kubernetes.io/instance={name}"));
    macro_rules! collect {
        ($kind:ty) => {
            for o in Api::<$kind>::namespaced(client.clone(), ns)
                .list(&sel)
                .await
                .unwrap()
                .items
            {
                out.insert(
                    format!("{}/{}", stringify!($kind), o.name_any()),
                    o.resource_version().unwrap(),
                );
            }
        };
    }
    collect!(Secret);
    collect!(Service);
    collect!(StatefulSet);
    collect!(PodDisruptionBudget);
    collect!(Ingress);
    for cm in Api::<ConfigMap>::namespaced(client.clone(), ns)
        .list(&ListParams::default().labels("app.kubernetes.io/managed-by=mediachain-operator"))
        .await
        .unwrap()
        .items
    {
        out.insert(
            format!("ConfigMap/{}", cm.name_any()),
            cm.resource_version().unwrap(),
        );
    }
    let mp = Api::<MediachainPeer>::namespaced(client.clone(), ns)
        .get(name)
        .await
        .unwrap();
    out.insert(
        format!("MediachainPeer/{name}"),
        mp.resource_version().unwrap(),
    );
    out
}

/// The Events of `ns` with `reason`.
pub async fn events(client: &Client, ns: &str, reason: &str) -> Vec<Event> {
    Api::<Event>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some(reason))
        .collect()
}
