//! The operator with a real kube-controller-manager beside the harness's apiserver: the
//! StatefulSet controller turns the operator's StatefulSet into pods and PVCs (so the pod
//! template is accepted as real pods), and the garbage collector deletes what a deleted
//! MediachainPeer owned.
//!
//! Needs `KUBE_APISERVER_BIN` and `ETCD_BIN`, and `kube-controller-manager` from
//! `KUBE_CONTROLLER_MANAGER_BIN` or next to the apiserver binary (`bash e2e/tools.sh kind` builds
//! it). Fails without them unless `MEDIACHAIN_SKIP_KUBE=1`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

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

/// The trust fixture of the principal Secret `principal` that [`setup`] creates.
fn trust() -> TrustFixture {
    let now = mediachain::time::now();
    TrustFixture::new(21, now - 3600, now + 365 * 86_400)
}

async fn setup(client: &Client) {
    install_crd(client, NS).await.unwrap();
    let trust = trust();
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

    // Scale down with whenScaled: Retain: the pod goes, its claim and identity stay (once the
    // peer that stays is ready, as its kubelet reports).
    support::kubelet_reports(&client, NS, "zeta-0", true).await;
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

/// Starts the apiserver, the controller manager, the CRD and the principal Secret.
async fn cluster() -> Option<(ApiServer, kube_harness::ControllerManager, Client)> {
    let server = match ApiServer::start_or_skip().await {
        Ok(Some(server)) => server,
        Ok(None) => return None,
        Err(e) => panic!("cannot start the kube-apiserver harness: {e}"),
    };
    let kcm = server.start_controller_manager(CONTROLLERS).unwrap();
    let client = server.client();
    setup(&client).await;
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

#[tokio::test]
async fn a_deleted_member_leaves_the_seed_list_and_foreground_deletion_collects_it() {
    let Some((_server, _kcm, client)) = cluster().await else {
        return;
    };
    let controller = support::run_controller(support::context(&client));
    for name in ["alpha", "beta"] {
        support::create_peer_in(
            &client,
            NS,
            name,
            json!({
                "network": "testnet",
                "replicas": 2,
                "storage": {"size": "1Gi"},
                "trust": {"principalSecretName": "principal"},
            }),
        )
        .await;
    }
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), NS);
    let seeds = || async {
        let cm = cms.get_opt("testnet-seeds").await.unwrap()?;
        let text = cm.data.as_ref()?.get("seeds.txt")?.clone();
        Some((
            text.lines().filter(|l| l.starts_with("/dns4/")).count(),
            cm.metadata.owner_references.unwrap_or_default().len(),
        ))
    };
    support::wait_until(60, "4 seeds from 2 members", || async {
        (seeds().await == Some((4, 2))).then_some(())
    })
    .await;

    let peers: Api<MediachainPeer> = Api::namespaced(client.clone(), NS);
    peers
        .delete("beta", &DeleteParams::foreground())
        .await
        .unwrap();
    support::wait_until(90, "beta collected", || async {
        support::peer(&client, NS, "beta")
            .await
            .is_none()
            .then_some(())
    })
    .await;
    let sts: Api<StatefulSet> = Api::namespaced(client.clone(), NS);
    support::wait_until(60, "beta's StatefulSet and pods gone", || async {
        let gone = sts.get_opt("beta").await.unwrap().is_none()
            && support::pods_of(&client, NS, "beta").await.is_empty();
        gone.then_some(())
    })
    .await;
    support::wait_until(60, "the seed list without beta", || async {
        (seeds().await == Some((2, 1))).then_some(())
    })
    .await;
    assert!(sts.get_opt("alpha").await.unwrap().is_some());
    controller.stop().await;
}

#[tokio::test]
async fn retained_identities_come_back_with_a_re_created_resource() {
    let Some((_server, _kcm, client)) = cluster().await else {
        return;
    };
    let controller = support::run_controller(support::context(&client));
    let spec = json!({
        "network": "devnet",
        "replicas": 2,
        "storage": {"size": "1Gi", "retention": {"whenDeleted": "Retain"}},
        "trust": {"principalSecretName": "principal"},
    });
    let ids = || async {
        let status = support::peer(&client, NS, "kappa").await?.status?;
        let ids: Vec<String> = status.peers.iter().map(|p| p.peer_id.clone()).collect();
        (ids.len() == 2).then_some(ids)
    };
    support::create_peer_in(&client, NS, "kappa", spec.clone()).await;
    let before = support::wait_until(60, "2 identities", ids).await;

    Api::<MediachainPeer>::namespaced(client.clone(), NS)
        .delete("kappa", &DeleteParams::background())
        .await
        .unwrap();
    let sts: Api<StatefulSet> = Api::namespaced(client.clone(), NS);
    support::wait_until(60, "the StatefulSet collected", || async {
        sts.get_opt("kappa").await.unwrap().is_none().then_some(())
    })
    .await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), NS);
    for name in ["kappa-0-identity", "kappa-1-identity"] {
        let secret = secrets.get_opt(name).await.unwrap();
        assert!(secret.is_some(), "{name} is retained");
    }

    support::create_peer_in(&client, NS, "kappa", spec).await;
    support::wait_until(60, "the same identities", || async {
        let uid = support::peer(&client, NS, "kappa").await?.metadata.uid;
        let status_uid_matches = uid.is_some();
        let now = ids().await?;
        (status_uid_matches && now == before).then_some(())
    })
    .await;
    controller.stop().await;
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

#[tokio::test]
async fn a_new_revocation_list_replaces_the_key_and_rolls_the_peers_one_at_a_time() {
    let Some((_server, _kcm, client)) = cluster().await else {
        return;
    };
    let controller = support::run_controller(support::context(&client));
    support::ready_peers(&client, NS, "rho", 3).await;
    let before = support::wait_until(60, "Ready with 3 identities", || async {
        let status = support::peer(&client, NS, "rho").await?.status?;
        (status.ready_replicas == 3 && status.peers.len() == 3).then_some(status)
    })
    .await;
    let revoked = before.peers[1].peer_id.clone();
    let uids = pod_uids(&client, "rho").await;

    // The principal's owner revokes peer 1's key.
    let list = trust().revocations_pem(&[(&revoked, "node compromised")], support::now());
    Api::<Secret>::namespaced(client.clone(), NS)
        .patch(
            "principal",
            &PatchParams::default(),
            &Patch::Merge(json!({"stringData": {"revocations.pem": list}})),
        )
        .await
        .unwrap();

    // Status and events say so; peer 1 has a new key.
    let status = support::wait_until(60, "the revoked peer in status", || async {
        let status = support::peer(&client, NS, "rho").await?.status?;
        (!status.revoked_peers.is_empty()).then_some(status)
    })
    .await;
    assert_eq!(status.revoked_peers.len(), 1);
    let entry = &status.revoked_peers[0];
    assert_eq!(
        (
            entry.name.as_str(),
            entry.peer_id.as_str(),
            entry.reason.as_str()
        ),
        ("rho-1", revoked.as_str(), "node compromised")
    );
    assert_ne!(status.peers[1].peer_id, revoked);
    assert_eq!(status.peers[0].peer_id, before.peers[0].peer_id);
    support::wait_until(
        30,
        "IdentityRevoked and RevocationsChanged events",
        || async {
            let reasons = event_reasons(&client).await;
            let both = ["IdentityRevoked", "RevocationsChanged"]
                .iter()
                .all(|r| reasons.iter().any(|x| x == r));
            both.then_some(())
        },
    )
    .await;

    // The peers load the list at start: the StatefulSet restarts them one at a time.
    rolls_one_at_a_time(&client, &uids).await;

    // A later list (another principal's peer revoked too): the peers restart again to load it.
    let uids = pod_uids(&client, "rho").await;
    let other = mediachain::trust::SecretKey::from_seed(&[99; 32])
        .public()
        .to_string();
    let list = trust().revocations_pem(
        &[(&revoked, "node compromised"), (&other, "lost laptop")],
        support::now(),
    );
    Api::<Secret>::namespaced(client.clone(), NS)
        .patch(
            "principal",
            &PatchParams::default(),
            &Patch::Merge(json!({"stringData": {"revocations.pem": list}})),
        )
        .await
        .unwrap();
    rolls_one_at_a_time(&client, &uids).await;
    assert!(
        !event_reasons(&client)
            .await
            .iter()
            .any(|r| r == "PeerRestarted"),
        "the operator deleted a pod during the rollout"
    );
    controller.stop().await;
}

/// Waits for the StatefulSet to restart rho's peers one at a time (highest ordinal first), each
/// next one only once the previous runs ready again (the test plays the kubelet), with the
/// revocation list in their environment.
async fn rolls_one_at_a_time(client: &Client, uids: &std::collections::BTreeMap<String, String>) {
    for (i, pod) in ["rho-2", "rho-1", "rho-0"].into_iter().enumerate() {
        let fresh = support::wait_until(60, &format!("{pod} re-created"), || async {
            let now = pod_uids(client, "rho").await;
            now.get(pod)
                .is_some_and(|uid| uid != &uids[pod])
                .then_some(now)
        })
        .await;
        let spec = Api::<Pod>::namespaced(client.clone(), NS)
            .get(pod)
            .await
            .unwrap()
            .spec
            .unwrap();
        let env = spec.containers[0].env.clone().unwrap();
        assert!(env.iter().any(|e| e.name == "MEDIACHAIN_REVOCATIONS"));
        // Until it is ready, the peers not yet restarted keep running.
        let waiting = tokio::time::Instant::now() + Duration::from_secs(4);
        while tokio::time::Instant::now() < waiting {
            let now = pod_uids(client, "rho").await;
            for later in ["rho-2", "rho-1", "rho-0"].iter().skip(i + 1) {
                assert_eq!(
                    now.get(*later),
                    uids.get(*later),
                    "{later} restarted while {pod} was not ready"
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert_eq!(fresh.len(), 3);
        support::kubelet_reports(client, NS, pod, true).await;
    }
}
