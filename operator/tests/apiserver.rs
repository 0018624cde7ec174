//! The operator against a real etcd + kube-apiserver (the `kube-harness` crate).
//!
//! There is no controller manager here: StatefulSets create no pods and the garbage collector
//! does not run. These tests assert on the objects the operator writes and on owner references
//! (what the garbage collector acts on); readiness, scale-down steps, restarts and deletion run
//! on a real kube-controller-manager in `tests/controller_manager.rs`.
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

const NS: &str = "media";

mod support;

async fn start() -> Option<ApiServer> {
    match ApiServer::start_or_skip().await {
        Ok(server) => server,
        Err(e) => panic!("cannot start the kube-apiserver harness: {e}"),
    }
}

/// Installs the CRD and the test namespace.
async fn install(client: &Client) {
    install_crd(client, NS).await.unwrap();
}

fn now() -> u64 {
    mediachain::time::now()
}

fn trust() -> TrustFixture {
    TrustFixture::new(11, now() - 3600, now() + 365 * 86_400)
}

async fn create_principal(client: &Client, trust: &TrustFixture) {
    Api::<Secret>::namespaced(client.clone(), NS)
        .create(&PostParams::default(), &trust.secret(NS, "principal"))
        .await
        .unwrap();
}

async fn create_peer(client: &Client, name: &str, spec: serde_json::Value) -> MediachainPeer {
    let mp: MediachainPeer = serde_json::from_value(json!({
        "apiVersion": "mediachain.io/v1alpha1",
        "kind": "MediachainPeer",
        "metadata": {"name": name, "namespace": NS},
        "spec": spec,
    }))
    .unwrap();
    Api::<MediachainPeer>::namespaced(client.clone(), NS)
        .create(&PostParams::default(), &mp)
        .await
        .unwrap()
}

fn context(client: &Client) -> Arc<Context> {
    Arc::new(Context::new(
        client.clone(),
        Arc::new(Metrics::default()),
        Settings::default(),
    ))
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

#[tokio::test]
async fn create_reconcile_scale_and_update_a_network() {
    let Some(server) = start().await else { return };
    let client = server.client();
    install(&client).await;
    let trust = trust();
    create_principal(&client, &trust).await;
    let created = create_peer(
        &client,
        "alpha",
        json!({
            "network": "testnet",
            "replicas": 3,
            "image": "mediachain-peer:test",
            "trust": {"principalSecretName": "principal"},
            "ingress": {"host": "api.media.example.org", "className": "nginx",
                "trustedProxies": ["10.244.0.0/16", "fd00:10:244::/56"]},
            "placement": {
                "nodeSelector": {"pool": "ledger"},
                "affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                    {"topologyKey": "topology.kubernetes.io/zone", "labelSelector": {"matchLabels": {"app": "other"}}}]}},
                "podLabels": {"team": "media"},
                "imagePullSecrets": [{"name": "registry"}],
                "env": [{"name": "RUST_BACKTRACE", "value": "1"}],
            },
            "podOverrides": {"spec": {
                "tolerations": [{"key": "dedicated", "value": "mediachain", "effect": "NoSchedule"}],
                "containers": [{"name": "peer", "env": [{"name": "RUST_LOG", "value": "debug"}]}],
            }},
        }),
    )
    .await;
    let ctx = context(&client);

    // Create: every owned object exists, owned by the resource.
    let mp = reconcile(&ctx, "alpha").await.unwrap();
    let uid = created.uid().unwrap();
    let status = mp.status.clone().expect("status written");
    assert_eq!(status.observed_generation, Some(1));
    assert_eq!(condition(&status, "Ready"), ("False", "PeersNotReady"));
    assert_eq!(condition(&status, "Progressing").0, "True");
    assert_eq!(condition(&status, "Degraded"), ("False", "AsExpected"));
    assert_eq!(status.peers.len(), 3);

    let secrets: Api<Secret> = Api::namespaced(client.clone(), NS);
    let root = trust.root.public();
    for (i, peer) in status.peers.iter().enumerate() {
        let secret = secrets.get(&format!("alpha-{i}-identity")).await.unwrap();
        let chain = String::from_utf8(secret.data.as_ref().unwrap()["peer.chain"].0.clone());
        let chain = Chain::from_pem(&chain.unwrap()).unwrap();
        let subject = chain
            .verify(&root, &RevocationSet::new(root), now(), Level::Peer)
            .unwrap();
        assert_eq!(subject.to_string(), peer.peer_id);
        assert_eq!(secret.owner_references()[0].uid, uid);
    }
    let sts = Api::<StatefulSet>::namespaced(client.clone(), NS)
        .get("alpha")
        .await
        .unwrap();
    assert_eq!(sts.spec.as_ref().unwrap().replicas, Some(3));
    // The overridden template was accepted by the apiserver's validation.
    let pod = sts.spec.as_ref().unwrap().template.spec.clone().unwrap();
    assert_eq!(
        pod.tolerations.unwrap()[0].key.as_deref(),
        Some("dedicated")
    );
    // Placement merged into the template (the apiserver validated the result).
    assert_eq!(pod.node_selector.clone().unwrap()["pool"], "ledger");
    let anti = pod.affinity.clone().unwrap().pod_anti_affinity.unwrap();
    assert_eq!(
        anti.preferred_during_scheduling_ignored_during_execution
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        anti.required_during_scheduling_ignored_during_execution
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        pod.topology_spread_constraints.clone().unwrap()[0].topology_key,
        "topology.kubernetes.io/zone"
    );
    let env = pod.containers[0].env.clone().unwrap();
    assert!(env.iter().any(|e| e.name == "RUST_BACKTRACE"));
    assert!(env.iter().any(|e| e.name == "RUST_LOG"));
    assert!(env.iter().any(|e| e.name == "MEDIACHAIN_NETWORK"));
    assert_eq!(sts.owner_references()[0].uid, uid);
    assert_eq!(
        sts.managed_fields()[0].manager.as_deref(),
        Some("mediachain-operator")
    );
    let services: Api<Service> = Api::namespaced(client.clone(), NS);
    let headless = services.get("alpha-peers").await.unwrap();
    assert_eq!(headless.spec.unwrap().cluster_ip.as_deref(), Some("None"));
    services.get("alpha").await.unwrap();
    Api::<PodDisruptionBudget>::namespaced(client.clone(), NS)
        .get("alpha")
        .await
        .unwrap();
    Api::<Ingress>::namespaced(client.clone(), NS)
        .get("alpha")
        .await
        .unwrap();
    assert_eq!(
        trusted_proxies(&client, "alpha").await.as_deref(),
        Some("10.244.0.0/16,fd00:10:244::/56"),
        "behind the Ingress the peers trust the controller's networks"
    );
    let seeds = Api::<ConfigMap>::namespaced(client.clone(), NS)
        .get("testnet-seeds")
        .await
        .unwrap();
    assert_eq!(
        seeds.data.unwrap()["seeds.txt"]
            .lines()
            .filter(|l| l.starts_with("/dns4/"))
            .count(),
        3
    );
    assert!(event_reasons(&client, "alpha")
        .await
        .contains(&"IdentityIssued".to_string()));

    // Apply order: what the pods mount (identities, seed list) and the Services exist before
    // the StatefulSet that makes the pods (etcd revisions order the writes).
    let revision = |v: &BTreeMap<String, String>, key: &str| -> u64 {
        v.get(key)
            .unwrap_or_else(|| panic!("no {key}"))
            .parse()
            .unwrap()
    };
    let written = support::versions(&client, NS, "alpha").await;
    let sts_written = revision(&written, "StatefulSet/alpha");
    for earlier in [
        "Secret/alpha-0-identity",
        "Secret/alpha-2-identity",
        "ConfigMap/testnet-seeds",
        "Service/alpha-peers",
        "Service/alpha",
    ] {
        assert!(
            revision(&written, earlier) < sts_written,
            "{earlier} is written before the StatefulSet"
        );
    }

    // Idempotence: a second pass changes nothing at all.
    let before = support::versions(&client, NS, "alpha").await;
    reconcile(&ctx, "alpha").await.unwrap();
    assert_eq!(support::versions(&client, NS, "alpha").await, before);

    // Scale up through the /scale subresource (`kubectl scale mcp alpha --replicas 5`): new
    // peers get identities, existing keys are untouched.
    let keys = identity_keys(&client, "alpha").await;
    let peers: Api<MediachainPeer> = Api::namespaced(client.clone(), NS);
    let scale = peers.get_scale("alpha").await.unwrap();
    assert_eq!(scale.spec.unwrap().replicas, Some(3));
    assert_eq!(
        scale.status.unwrap().selector.as_deref(),
        Some("app.kubernetes.io/instance=alpha,app.kubernetes.io/name=mediachain-peer")
    );
    peers
        .patch_scale(
            "alpha",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 5}})),
        )
        .await
        .unwrap();
    let mp = reconcile(&ctx, "alpha").await.unwrap();
    let after = identity_keys(&client, "alpha").await;
    assert_eq!(after.len(), 5);
    for (name, key) in &keys {
        assert_eq!(&after[name], key, "{name} kept its key");
    }
    let status = mp.status.unwrap();
    assert_eq!(status.observed_generation, Some(2));
    assert_eq!(condition(&status, "Ready"), ("False", "PeersNotReady"));
    let sts = Api::<StatefulSet>::namespaced(client.clone(), NS)
        .get("alpha")
        .await
        .unwrap();
    assert_eq!(sts.spec.unwrap().replicas, Some(5));

    // Dropping the Ingress and the budget from the spec deletes them.
    patch_spec(
        &client,
        "alpha",
        json!({"ingress": null, "disruptionBudget": {"enabled": false}}),
    )
    .await;
    reconcile(&ctx, "alpha").await.unwrap();
    assert!(Api::<Ingress>::namespaced(client.clone(), NS)
        .get_opt("alpha")
        .await
        .unwrap()
        .is_none());
    assert_eq!(
        trusted_proxies(&client, "alpha").await,
        None,
        "without an Ingress no proxy is trusted"
    );
    assert!(Api::<PodDisruptionBudget>::namespaced(client.clone(), NS)
        .get_opt("alpha")
        .await
        .unwrap()
        .is_none());

    // A second member of the network joins the shared seed list, owned by both.
    create_peer(
        &client,
        "beta",
        json!({
            "network": "testnet",
            "replicas": 2,
            "trust": {"principalSecretName": "principal"},
        }),
    )
    .await;
    reconcile(&ctx, "beta").await.unwrap();
    let seeds = Api::<ConfigMap>::namespaced(client.clone(), NS)
        .get("testnet-seeds")
        .await
        .unwrap();
    assert_eq!(seeds.owner_references().len(), 2);
    let text = seeds.data.unwrap()["seeds.txt"].clone();
    assert!(text.contains("/dns4/alpha-3.alpha-peers.media.svc.cluster.local/tcp/4001"));
    assert!(text.contains("/dns4/beta-1.beta-peers.media.svc.cluster.local/tcp/4001"));
}

#[tokio::test]
async fn bad_specs_are_reported_as_conditions_and_events() {
    let Some(server) = start().await else { return };
    let client = server.client();
    install(&client).await;
    create_peer(
        &client,
        "gamma",
        json!({
            "network": "testnet",
            "replicas": 2,
            "trust": {"principalSecretName": "principal"},
        }),
    )
    .await;
    let ctx = context(&client);
    let api: Api<MediachainPeer> = Api::namespaced(client.clone(), NS);

    // No principal Secret yet.
    let err = reconcile(&ctx, "gamma").await.unwrap_err();
    assert_eq!(err.category(), "MissingPrincipalSecret");
    let status = api.get("gamma").await.unwrap().status.unwrap();
    assert_eq!(
        condition(&status, "Degraded"),
        ("True", "MissingPrincipalSecret")
    );
    assert_eq!(condition(&status, "Ready").0, "False");
    assert!(event_reasons(&client, "gamma")
        .await
        .contains(&"MissingPrincipalSecret".to_string()));
    assert!(Api::<StatefulSet>::namespaced(client.clone(), NS)
        .get_opt("gamma")
        .await
        .unwrap()
        .is_none());
    // The same failure again does not rewrite the status.
    let rv = api.get("gamma").await.unwrap().resource_version();
    reconcile(&ctx, "gamma").await.unwrap_err();
    assert_eq!(api.get("gamma").await.unwrap().resource_version(), rv);

    // A principal Secret whose key is garbage.
    let trust = trust();
    let mut secret = trust.secret(NS, "principal");
    secret.data.as_mut().unwrap().insert(
        "principal.key".into(),
        k8s_openapi::ByteString(
            b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n".to_vec(),
        ),
    );
    let secrets: Api<Secret> = Api::namespaced(client.clone(), NS);
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    let err = reconcile(&ctx, "gamma").await.unwrap_err();
    assert_eq!(err.category(), "InvalidPrincipal");
    let status = api.get("gamma").await.unwrap().status.unwrap();
    assert_eq!(condition(&status, "Degraded"), ("True", "InvalidPrincipal"));
    assert!(event_reasons(&client, "gamma")
        .await
        .contains(&"InvalidPrincipal".to_string()));

    // Fixed principal, impossible replicas.
    secrets
        .replace(
            "principal",
            &PostParams::default(),
            &trust.secret(NS, "principal"),
        )
        .await
        .unwrap();
    // Impossible replicas and changes of immutable fields are refused by the CRD schema.
    for (spec, expected) in [
        (json!({"replicas": -3}), "spec.replicas"),
        (json!({"replicas": 100000}), "spec.replicas"),
        (json!({"network": "othernet"}), "network is immutable"),
        (
            json!({"storage": {"size": "20Gi"}}),
            "storage.size is immutable",
        ),
        // Absent at creation, set later: refused too (it would wedge every StatefulSet apply).
        (
            json!({"storage": {"storageClassName": "fast"}}),
            "storage.storageClassName is immutable",
        ),
        (
            json!({"clientService": {"type": "Magic"}}),
            "spec.clientService.type",
        ),
    ] {
        let err = api
            .patch(
                "gamma",
                &PatchParams::default(),
                &Patch::Merge(json!({ "spec": spec })),
            )
            .await
            .expect_err("the apiserver refuses the spec");
        assert!(err.to_string().contains(expected), "{expected}: {err}");
    }

    // What only the operator can judge: a budget that could break the N-cut guarantee.
    patch_spec(
        &client,
        "gamma",
        json!({"disruptionBudget": {"maxUnavailable": 9}}),
    )
    .await;
    let err = reconcile(&ctx, "gamma").await.unwrap_err();
    assert_eq!(err.category(), "InvalidSpec");
    let status = api.get("gamma").await.unwrap().status.unwrap();
    assert_eq!(condition(&status, "Degraded"), ("True", "InvalidSpec"));
    assert_eq!(status.observed_generation, Some(2));
    assert_eq!(status_column(&client, "gamma").await, "InvalidSpec");
    assert!(status
        .conditions
        .iter()
        .any(|c| c.message.contains("maxUnavailable")));

    // Everything fixed: Degraded clears.
    patch_spec(
        &client,
        "gamma",
        json!({"disruptionBudget": {"maxUnavailable": 1}}),
    )
    .await;
    let status = reconcile(&ctx, "gamma").await.unwrap().status.unwrap();
    assert_eq!(condition(&status, "Degraded"), ("False", "AsExpected"));
    assert_eq!(status.observed_generation, Some(3));
    assert_eq!(status_column(&client, "gamma").await, "PeersNotReady");
    assert_eq!(status.peers.len(), 2);
}

#[tokio::test]
async fn identity_secrets_survive_reconciles_and_outlive_their_pods() {
    let Some(server) = start().await else { return };
    let client = server.client();
    install(&client).await;
    create_principal(&client, &trust()).await;
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
    let Some(server) = start().await else { return };
    let client = server.client();
    install(&client).await;
    create_principal(&client, &trust()).await;
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

/// One network's members share its parameters file: the peers get it, status publishes its
/// digest, and a member that disagrees (other parameters, none, another network, consensus
/// settings of its own, a file changed under running peers) is refused with a condition and an
/// event, never run.
#[tokio::test]
async fn members_of_a_network_share_its_parameters_or_are_refused() {
    use mediachain::network::NetworkParams;
    use mediachain::trust::{Certificate, SecretKey};
    let Some(server) = start().await else { return };
    let client = server.client();
    install(&client).await;
    let trust = trust();
    create_principal(&client, &trust).await;
    // The file a network's founders agree on: one initial member certified by the principal.
    let key = SecretKey::from_seed(&[5; 32]);
    let cert = Certificate::issue(
        &trust.principal,
        key.public(),
        Level::Peer,
        now() - 60,
        now() + 30 * 86_400,
    );
    let params = NetworkParams::new(
        "orgnet",
        trust.root.public(),
        vec![Chain::extend(cert, &trust.chain)],
    );
    let mut stricter = params.clone();
    stricter.consensus.transaction_pow_bits = 13;
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), NS);
    for (name, p) in [("orgnet-params", &params), ("orgnet-stricter", &stricter)] {
        let map: ConfigMap = serde_json::from_value(json!({
            "metadata": {"name": name},
            "data": {"network.yaml": p.to_yaml().unwrap()},
        }))
        .unwrap();
        maps.create(&PostParams::default(), &map).await.unwrap();
    }
    let spec = |network: &str, map: Option<&str>| {
        let mut spec = json!({
            "network": network,
            "replicas": 1,
            "trust": {"principalSecretName": "principal"},
        });
        if let Some(map) = map {
            spec["networkParameters"] = json!({"configMapName": map});
        }
        spec
    };
    let ctx = context(&client);

    create_peer(&client, "alpha", spec("orgnet", Some("orgnet-params"))).await;
    let alpha = reconcile(&ctx, "alpha").await.unwrap();
    let digest = hex::encode(params.digest());
    let status = alpha.status.unwrap();
    assert_eq!(
        status.network_parameters_digest.as_deref(),
        Some(digest.as_str())
    );
    let trust_map = maps.get("alpha-trust").await.unwrap();
    assert_eq!(
        trust_map.data.unwrap()["network.yaml"],
        params.to_yaml().unwrap()
    );
    let sts = Api::<StatefulSet>::namespaced(client.clone(), NS)
        .get("alpha")
        .await
        .unwrap();
    let env = sts.spec.unwrap().template.spec.unwrap().containers[0]
        .env
        .clone()
        .unwrap();
    let file = env.iter().find(|e| e.name == "MEDIACHAIN_NETWORK_PARAMS");
    assert_eq!(
        file.and_then(|e| e.value.as_deref()),
        Some("/etc/mediachain/trust/network.yaml")
    );

    let refused = |name: &'static str, needle: &'static str| {
        let ctx = ctx.clone();
        let client = client.clone();
        async move {
            let err = reconcile(&ctx, name).await.unwrap_err();
            assert!(matches!(err, Error::NetworkMismatch(_)), "{name}: {err}");
            assert!(err.to_string().contains(needle), "{name}: {err}");
            let status = Api::<MediachainPeer>::namespaced(client.clone(), NS)
                .get(name)
                .await
                .unwrap()
                .status
                .unwrap();
            assert_eq!(
                condition(&status, "Degraded"),
                ("True", "NetworkParametersMismatch")
            );
            assert!(event_reasons(&client, name)
                .await
                .contains(&"NetworkParametersMismatch".to_string()));
        }
    };
    create_peer(&client, "beta", spec("orgnet", Some("orgnet-stricter"))).await;
    refused(
        "beta",
        "MediachainPeer alpha of network orgnet runs parameters",
    )
    .await;
    create_peer(&client, "gamma", spec("orgnet", None)).await;
    refused("gamma", "none (genesis from the network name)").await;
    create_peer(&client, "delta", spec("othernet", Some("orgnet-params"))).await;
    refused("delta", "those of network `orgnet`").await;
    let mut repeated = spec("orgnet", Some("orgnet-params"));
    repeated["consensus"] = json!({"transactionPowBits": 12});
    create_peer(&client, "epsilon", repeated).await;
    refused("epsilon", "spec.consensus.transactionPowBits").await;
    // None of them runs, and they never block the running one.
    let statefulsets: Api<StatefulSet> = Api::namespaced(client.clone(), NS);
    for name in ["beta", "gamma", "delta", "epsilon"] {
        assert!(
            statefulsets.get_opt(name).await.unwrap().is_none(),
            "{name}"
        );
    }
    reconcile(&ctx, "alpha").await.unwrap();

    // The file changed under running peers: refused, not rolled out as a new genesis.
    maps.patch(
        "orgnet-params",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"network.yaml": stricter.to_yaml().unwrap()}})),
    )
    .await
    .unwrap();
    refused("alpha", "parameters are fixed when a network is created").await;

    // Parameters cannot be added to (or removed from) an existing resource.
    let err = Api::<MediachainPeer>::namespaced(client.clone(), NS)
        .patch(
            "gamma",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"spec": {"networkParameters": {"configMapName": "orgnet-params"}}}),
            ),
        )
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("spec.networkParameters is immutable"),
        "{err}"
    );
}

/// The documents of `operator/rbac.yaml`.
fn rbac_documents() -> Vec<serde_json::Value> {
    use serde::Deserialize;
    serde_yaml::Deserializer::from_str(include_str!("../rbac.yaml"))
        .map(|doc| serde_json::to_value(serde_yaml::Value::deserialize(doc).unwrap()).unwrap())
        .collect()
}

/// Installs `operator/rbac.yaml` (with the admin client).
async fn install_rbac(client: &Client) {
    use k8s_openapi::api::core::v1::ServiceAccount;
    use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};

    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some(OPERATOR_NS.into()),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    };
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
    let pp = PostParams::default();
    for value in rbac_documents() {
        let kind = value["kind"].as_str().unwrap().to_string();
        match kind.as_str() {
            "ServiceAccount" => {
                let o: ServiceAccount = serde_json::from_value(value).unwrap();
                Api::<ServiceAccount>::namespaced(client.clone(), OPERATOR_NS)
                    .create(&pp, &o)
                    .await
                    .unwrap();
            }
            "ClusterRole" => {
                let o: ClusterRole = serde_json::from_value(value).unwrap();
                Api::<ClusterRole>::all(client.clone())
                    .create(&pp, &o)
                    .await
                    .unwrap();
            }
            "ClusterRoleBinding" => {
                let o: ClusterRoleBinding = serde_json::from_value(value).unwrap();
                Api::<ClusterRoleBinding>::all(client.clone())
                    .create(&pp, &o)
                    .await
                    .unwrap();
            }
            "Role" => {
                let o: Role = serde_json::from_value(value).unwrap();
                Api::<Role>::namespaced(client.clone(), OPERATOR_NS)
                    .create(&pp, &o)
                    .await
                    .unwrap();
            }
            "RoleBinding" => {
                let o: RoleBinding = serde_json::from_value(value).unwrap();
                Api::<RoleBinding>::namespaced(client.clone(), OPERATOR_NS)
                    .create(&pp, &o)
                    .await
                    .unwrap();
            }
            other => panic!("rbac.yaml: unexpected kind {other}"),
        }
    }
}

/// A client acting as `user` in `groups`, impersonated by the admin.
async fn impersonating(server: &ApiServer, user: String, groups: Option<Vec<String>>) -> Client {
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

/// A client that acts as the operator's ServiceAccount.
async fn operator_client(server: &ApiServer) -> Client {
    let user = format!("system:serviceaccount:{OPERATOR_NS}:mediachain-operator");
    impersonating(server, user, None).await
}

const OPERATOR_NS: &str = "mediachain-system";

#[tokio::test]
async fn the_controller_reconciles_under_a_leader_lease_with_only_its_rbac() {
    let Some(server) = start().await else { return };
    let admin = server.client();
    install(&admin).await;
    install_rbac(&admin).await;
    create_principal(&admin, &trust()).await;
    // Everything below acts as the operator's ServiceAccount, with only operator/rbac.yaml.
    let client = operator_client(&server).await;

    let lease = |holder: &str| {
        Leadership::new(
            client.clone(),
            OPERATOR_NS,
            "mediachain-operator",
            holder,
            Duration::from_secs(15),
        )
    };
    let (first, second) = (lease("one"), lease("two"));
    tokio::time::timeout(Duration::from_secs(10), first.acquire())
        .await
        .expect("the first candidate leads");
    assert!(
        !second.try_acquire().await,
        "the second candidate cannot take the Lease while the first holds it"
    );

    let ctx = context(&client);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(controller::run(ctx, async move {
        let _ = stopped.await;
    }));
    create_peer(
        &admin,
        "epsilon",
        json!({
            "network": "devnet",
            "replicas": 1,
            "ingress": {"host": "epsilon.example.org"},
            "backup": {"schedule": "@daily", "claimName": "epsilon-backups"},
            "storage": {"retention": {"whenScaled": "Delete"}},
            "trust": {"principalSecretName": "principal"},
        }),
    )
    .await;
    let api: Api<MediachainPeer> = Api::namespaced(admin.clone(), NS);
    let reconciled = await_condition(api.clone(), "epsilon", |mp: Option<&MediachainPeer>| {
        mp.and_then(|mp| mp.status.as_ref())
            .is_some_and(|s| s.observed_generation == Some(1) && s.peers.len() == 1)
    });
    tokio::time::timeout(Duration::from_secs(30), reconciled)
        .await
        .expect("the controller wrote the status")
        .unwrap();
    assert!(event_reasons(&admin, "epsilon")
        .await
        .contains(&"IdentityIssued".to_string()));

    // Spec changes are picked up by the watch: scale up, then down (deleting identities and
    // the Ingress exercises the delete rules).
    patch_spec(&admin, "epsilon", json!({"replicas": 2})).await;
    let scaled = await_condition(api.clone(), "epsilon", |mp: Option<&MediachainPeer>| {
        mp.and_then(|mp| mp.status.as_ref())
            .is_some_and(|s| s.observed_generation == Some(2) && s.peers.len() == 2)
    });
    tokio::time::timeout(Duration::from_secs(30), scaled)
        .await
        .expect("the controller followed the spec")
        .unwrap();
    assert!(Api::<CronJob>::namespaced(admin.clone(), NS)
        .get_opt("epsilon-backup")
        .await
        .unwrap()
        .is_some());
    patch_spec(
        &admin,
        "epsilon",
        json!({"replicas": 1, "ingress": null, "backup": null}),
    )
    .await;
    let secrets: Api<Secret> = Api::namespaced(admin.clone(), NS);
    let deleted = await_condition(secrets, "epsilon-1-identity", |s: Option<&Secret>| {
        s.is_none()
    });
    tokio::time::timeout(Duration::from_secs(30), deleted)
        .await
        .expect("the removed peer's identity is deleted")
        .unwrap();
    assert!(Api::<Ingress>::namespaced(admin.clone(), NS)
        .get_opt("epsilon")
        .await
        .unwrap()
        .is_none());
    assert!(Api::<CronJob>::namespaced(admin.clone(), NS)
        .get_opt("epsilon-backup")
        .await
        .unwrap()
        .is_none());
    let status = api.get("epsilon").await.unwrap().status.unwrap();
    assert_eq!(condition(&status, "Degraded"), ("False", "AsExpected"));

    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .expect("the controller stops on shutdown")
        .unwrap();
    first.step_down().await;
    tokio::time::timeout(Duration::from_secs(10), second.acquire())
        .await
        .expect("the second candidate takes over after step-down");
}

#[tokio::test]
async fn a_leader_notices_when_its_lease_is_taken() {
    let Some(server) = start().await else { return };
    let client = server.client();
    install(&client).await;
    let leader = Leadership::new(
        client.clone(),
        NS,
        "lease-test",
        "one",
        Duration::from_secs(3),
    );
    tokio::time::timeout(Duration::from_secs(10), leader.acquire())
        .await
        .expect("acquired");
    let holding = tokio::spawn(async move { leader.hold().await });
    // Two renewals (every TTL/3 = 1 s) are seen on the Lease while `hold` keeps running.
    let leases = Api::<k8s_openapi::api::coordination::v1::Lease>::namespaced(client.clone(), NS);
    let renew_time = || async {
        let lease = leases.get("lease-test").await.unwrap().spec.unwrap();
        assert_eq!(lease.holder_identity.as_deref(), Some("one"));
        lease.renew_time.map(|t| t.0)
    };
    let mut renewals = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut last = renew_time().await;
    while renewals.len() < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the Lease was not renewed twice in 20 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        let current = renew_time().await;
        if current != last {
            renewals.push(current);
            last = current;
        }
    }
    assert!(!holding.is_finished(), "renewals keep the Lease");

    // Another holder takes the Lease (as after a partition): `hold` must return.
    let now = k8s_openapi::chrono::Utc::now()
        .to_rfc3339_opts(k8s_openapi::chrono::SecondsFormat::Micros, true);
    leases
        .patch(
            "lease-test",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"holderIdentity": "intruder", "renewTime": now, "leaseDurationSeconds": 60}})),
        )
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(10), holding)
        .await
        .expect("the old leader stops leading")
        .unwrap();
}

#[tokio::test]
async fn foreign_objects_are_never_taken_over_and_colliding_names_are_refused() {
    let Some(server) = start().await else { return };
    let client = server.client();
    install(&client).await;
    create_principal(&client, &trust()).await;
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

#[tokio::test]
async fn with_watch_namespace_the_controller_needs_and_touches_only_that_namespace() {
    use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
    let Some(server) = start().await else { return };
    let admin = server.client();
    install(&admin).await;
    create_principal(&admin, &trust()).await;
    let other = Namespace {
        metadata: ObjectMeta {
            name: Some("other".into()),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    };
    Api::<Namespace>::all(admin.clone())
        .create(&PostParams::default(), &other)
        .await
        .unwrap();
    // The operator's rules, granted by a Role in `media` only (as the chart does with
    // watchNamespace), to its ServiceAccount.
    let rules = rbac_documents()
        .into_iter()
        .find(|d| d["kind"] == "ClusterRole")
        .unwrap()["rules"]
        .clone();
    let role: Role = serde_json::from_value(json!({
        "metadata": {"name": "mediachain-operator", "namespace": NS},
        "rules": rules,
    }))
    .unwrap();
    Api::<Role>::namespaced(admin.clone(), NS)
        .create(&PostParams::default(), &role)
        .await
        .unwrap();
    let binding: RoleBinding = serde_json::from_value(json!({
        "metadata": {"name": "mediachain-operator", "namespace": NS},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "mediachain-operator"},
        "subjects": [{"kind": "ServiceAccount", "name": "mediachain-operator", "namespace": OPERATOR_NS}],
    }))
    .unwrap();
    Api::<RoleBinding>::namespaced(admin.clone(), NS)
        .create(&PostParams::default(), &binding)
        .await
        .unwrap();
    let spec =
        json!({"network": "devnet", "replicas": 1, "trust": {"principalSecretName": "principal"}});
    let elsewhere: MediachainPeer = serde_json::from_value(json!({
        "apiVersion": "mediachain.io/v1alpha1", "kind": "MediachainPeer",
        "metadata": {"name": "iota", "namespace": "other"}, "spec": spec,
    }))
    .unwrap();
    Api::<MediachainPeer>::namespaced(admin.clone(), "other")
        .create(&PostParams::default(), &elsewhere)
        .await
        .unwrap();
    create_peer(&admin, "iota", spec).await;

    let client = operator_client(&server).await;
    let ctx = Arc::new(
        Context::new(client, Arc::new(Metrics::default()), Settings::default())
            .with_namespace(Some(NS.into())),
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(controller::run(ctx, async move {
        let _ = stopped.await;
    }));
    let api: Api<MediachainPeer> = Api::namespaced(admin.clone(), NS);
    let reconciled = await_condition(api, "iota", |mp: Option<&MediachainPeer>| {
        mp.and_then(|mp| mp.status.as_ref())
            .is_some_and(|s| s.peers.len() == 1)
    });
    tokio::time::timeout(Duration::from_secs(30), reconciled)
        .await
        .expect("the controller reconciled the resource of its namespace")
        .unwrap();
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .expect("the controller stops on shutdown")
        .unwrap();
    let untouched = Api::<MediachainPeer>::namespaced(admin.clone(), "other")
        .get("iota")
        .await
        .unwrap();
    assert!(untouched.status.is_none());
    assert!(Api::<StatefulSet>::namespaced(admin.clone(), "other")
        .get_opt("iota")
        .await
        .unwrap()
        .is_none());
}

/// A client acting as the kubelet of node `node` (user `system:node:<node>`, group
/// `system:nodes`).
async fn node_client(server: &ApiServer, node: &str) -> Client {
    let groups = vec!["system:nodes".into(), "system:authenticated".into()];
    impersonating(server, format!("system:node:{node}"), Some(groups)).await
}

#[tokio::test]
async fn a_node_running_a_peer_cannot_read_the_principal_key() {
    let server = match ApiServer::start_with_options_or_skip(kube_harness::Options {
        node_authorization: true,
    })
    .await
    {
        Ok(Some(server)) => server,
        Ok(None) => return,
        Err(e) => panic!("cannot start the kube-apiserver harness: {e}"),
    };
    let admin = server.client();
    install(&admin).await;
    create_principal(&admin, &trust()).await;
    let spec =
        json!({"network": "devnet", "replicas": 2, "trust": {"principalSecretName": "principal"}});
    create_peer(&admin, "mu", spec.clone()).await;
    create_peer(&admin, "nu", spec).await;
    let ctx = context(&admin);
    reconcile(&ctx, "mu").await.unwrap();
    reconcile(&ctx, "nu").await.unwrap();

    // Pod mu-0 as its StatefulSet makes it, bound to node-a (there is no scheduler).
    let sts = Api::<StatefulSet>::namespaced(admin.clone(), NS)
        .get("mu")
        .await
        .unwrap();
    let template = sts.spec.unwrap().template;
    let mut pod_spec = template.spec.unwrap();
    pod_spec.node_name = Some("node-a".into());
    pod_spec.hostname = Some("mu-0".into());
    // The StatefulSet controller adds the claim of its volume claim template.
    let claim: k8s_openapi::api::core::v1::Volume = serde_json::from_value(json!({
        "name": "data", "persistentVolumeClaim": {"claimName": "data-mu-0"},
    }))
    .unwrap();
    pod_spec.volumes.get_or_insert_with(Vec::new).push(claim);
    let pod = Pod {
        metadata: ObjectMeta {
            name: Some("mu-0".into()),
            namespace: Some(NS.into()),
            labels: template.metadata.and_then(|m| m.labels),
            ..ObjectMeta::default()
        },
        spec: Some(pod_spec),
        ..Pod::default()
    };
    Api::<Pod>::namespaced(admin.clone(), NS)
        .create(&PostParams::default(), &pod)
        .await
        .unwrap();

    let kubelet = node_client(&server, "node-a").await;
    let secrets: Api<Secret> = Api::namespaced(kubelet.clone(), NS);
    let forbidden = |result: Result<Secret, kube::Error>| matches!(result, Err(kube::Error::Api(ref e)) if e.code == 403);
    // What the pod needs: its key, the public trust material, the seed list.
    secrets
        .get("mu-0-identity")
        .await
        .expect("the node reads its pod's key");
    let config_maps: Api<ConfigMap> = Api::namespaced(kubelet.clone(), NS);
    config_maps
        .get("mu-trust")
        .await
        .expect("the trust ConfigMap");
    config_maps
        .get("devnet-seeds")
        .await
        .expect("the seed list");
    // The principal key is out of reach, as is any peer of a resource without a pod there.
    assert!(
        forbidden(secrets.get("principal").await),
        "principal Secret readable"
    );
    assert!(
        forbidden(secrets.get("nu-0-identity").await),
        "another resource's key readable"
    );
    // A Secret the operator does not create either.
    let data = config_maps.get("mu-trust").await.unwrap().data.unwrap();
    assert!(data.values().all(|v| !v.contains("PRIVATE KEY")));
}
