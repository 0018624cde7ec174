//! `trust.keyCustody: Pod` against a real kube-apiserver authorizing as a cluster does
//! (`--authorization-mode=Node,RBAC`, `NodeRestriction`): each peer's key is made in its pod and
//! certified from the request its node's kubelet publishes; no Secret holds a peer key, and a
//! node reads neither the principal key nor any other peer's key.
//!
//! Needs `KUBE_APISERVER_BIN` and `ETCD_BIN`; fails without them unless `MEDIACHAIN_SKIP_KUBE=1`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod, Secret};
use k8s_openapi::api::events::v1::Event;
use kube::api::{ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use mediachain::trust::{Chain, Level, RevocationSet, SecretKey};
use mediachain_operator::peer_key::{KeyRequest, AWAIT_CONTAINER, KEY_CONTAINER};
use mediachain_operator::reconcile::Settings;
use mediachain_operator::testing::install_crd;
use serde_json::json;
use support::{create_peer_in, create_principal, kubelet, trust, wait_until, NS};

/// Pod `ordinal` of StatefulSet `sts` as its controller makes it, bound to `node` (there is no
/// controller manager nor scheduler here).
async fn bind_pod(admin: &Client, sts: &StatefulSet, ordinal: usize, node: &str) -> Pod {
    let name = format!("{}-{ordinal}", sts.name_any());
    let template = sts.spec.clone().unwrap().template;
    let mut spec = template.spec.unwrap();
    spec.node_name = Some(node.into());
    spec.hostname = Some(name.clone());
    let claim = serde_json::from_value(json!({
        "name": "data", "persistentVolumeClaim": {"claimName": format!("data-{name}")},
    }))
    .unwrap();
    spec.volumes.get_or_insert_with(Vec::new).push(claim);
    let owner = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet", "name": sts.name_any(),
        "uid": sts.uid().unwrap(), "controller": true,
    }))
    .unwrap();
    let pod = Pod {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: Some(NS.into()),
            labels: template.metadata.and_then(|m| m.labels),
            owner_references: Some(vec![owner]),
            ..ObjectMeta::default()
        },
        spec: Some(spec),
        ..Pod::default()
    };
    Api::<Pod>::namespaced(admin.clone(), NS)
        .create(&PostParams::default(), &pod)
        .await
        .unwrap()
}

/// What the kubelet publishes once the pod's `peer-key` init container exited with `message`.
async fn publish_request(kubelet: &Client, pod: &str, message: &str) -> Result<Pod, kube::Error> {
    let at = "2026-01-01T00:00:00Z";
    Api::<Pod>::namespaced(kubelet.clone(), NS)
        .patch_status(
            pod,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {
                "phase": "Pending",
                "initContainerStatuses": [{
                    "name": KEY_CONTAINER, "image": "mediachain-operator:test", "imageID": "",
                    "ready": true, "restartCount": 0,
                    "state": {"terminated": {"exitCode": 0, "reason": "Completed",
                        "message": message, "startedAt": at, "finishedAt": at}},
                }],
            }})),
        )
        .await
}

fn forbidden<T>(result: Result<T, kube::Error>) -> bool {
    matches!(result, Err(kube::Error::Api(ref e)) if e.code == 403)
}

/// The chain the operator published for `pod`, if any.
async fn chain_of(admin: &Client, resource: &str, pod: &str) -> Option<Chain> {
    let chains = Api::<ConfigMap>::namespaced(admin.clone(), NS)
        .get_opt(&format!("{resource}-chains"))
        .await
        .unwrap()?;
    let text = chains.data?.get(&format!("{pod}.chain"))?.clone();
    Some(Chain::from_pem(&text).unwrap())
}

#[tokio::test]
async fn keys_made_in_pods_are_certified_and_no_node_reads_another_key() {
    let Some(server) = support::node_authorized_cluster().await else {
        return;
    };
    let admin = server.client();
    install_crd(&admin, NS).await.unwrap();
    let trust = trust(21);
    create_principal(&admin, NS, &trust).await;
    let spec = json!({"network": "devnet", "replicas": 2,
        "trust": {"principalSecretName": "principal", "keyCustody": "Pod"}});
    create_peer_in(&admin, NS, "mu", spec).await;
    let settings = Settings {
        operator_image: Some("mediachain-operator:test".into()),
        ..Settings::default()
    };
    let ctx = support::context_with(&admin, settings);
    let controller = support::run_controller(ctx);

    let sts = wait_until(20, "StatefulSet mu", || async {
        Api::<StatefulSet>::namespaced(admin.clone(), NS)
            .get_opt("mu")
            .await
            .unwrap()
    })
    .await;
    // No pod references a Secret: no key, no principal, nothing a node could be given.
    let pod_spec = sts.spec.clone().unwrap().template.spec.unwrap();
    let volumes = serde_json::to_string(&pod_spec.volumes).unwrap();
    assert!(
        !volumes.contains("secret"),
        "a volume names a Secret: {volumes}"
    );
    let init: Vec<String> = pod_spec
        .init_containers
        .unwrap_or_default()
        .iter()
        .map(|c| c.name.clone())
        .collect();
    assert_eq!(init, vec![KEY_CONTAINER, AWAIT_CONTAINER]);

    // Each kubelet registers its node, as a real one does (NodeRestriction: its own only).
    let (node_a, node_b) = (
        kubelet(&server, "node-a").await,
        kubelet(&server, "node-b").await,
    );
    for (client, name) in [(&node_a, "node-a"), (&node_b, "node-b")] {
        let node = Node {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..ObjectMeta::default()
            },
            ..Node::default()
        };
        Api::<Node>::all(client.clone())
            .create(&PostParams::default(), &node)
            .await
            .unwrap();
    }
    let pod_0 = bind_pod(&admin, &sts, 0, "node-a").await;
    let pod_1 = bind_pod(&admin, &sts, 1, "node-b").await;

    // mu-0's key, made in its pod: the request binds it to mu-0's uid.
    let key_0 = SecretKey::generate();
    let request_0 =
        serde_json::to_string(&KeyRequest::new(&key_0, NS, "mu-0", &pod_0.uid().unwrap())).unwrap();
    // Node a cannot speak for node b's pod.
    assert!(
        forbidden(publish_request(&node_a, "mu-1", &request_0).await),
        "a node wrote the status of another node's pod"
    );
    publish_request(&node_a, "mu-0", &request_0).await.unwrap();
    // Node b replays mu-0's request for its own pod: refused (another uid, another pod).
    let replay =
        serde_json::to_string(&KeyRequest::new(&key_0, NS, "mu-0", &pod_0.uid().unwrap())).unwrap();
    publish_request(&node_b, "mu-1", &replay).await.unwrap();

    // The pod watch brings the request: certified within seconds, not at the next resync.
    let chain_0 = wait_until(20, "mu-0's chain", || chain_of(&admin, "mu", "mu-0")).await;
    let root = trust.root.public();
    let certified = chain_0
        .verify(
            &root,
            &RevocationSet::new(root),
            support::now(),
            Level::Peer,
        )
        .unwrap();
    assert_eq!(certified, key_0.public());
    wait_until(20, "KeyRequestRefused for mu-1", || async {
        let events = Api::<Event>::namespaced(admin.clone(), NS)
            .list(&ListParams::default())
            .await
            .unwrap();
        events
            .items
            .iter()
            .any(|e| {
                e.reason.as_deref() == Some("KeyRequestRefused")
                    && e.note.as_deref().unwrap_or_default().contains("mu-1")
            })
            .then_some(())
    })
    .await;
    assert!(
        chain_of(&admin, "mu", "mu-1").await.is_none(),
        "a replayed request was certified"
    );

    // mu-1 publishes its own request: certified too, and both show in status.
    let key_1 = SecretKey::generate();
    let request_1 =
        serde_json::to_string(&KeyRequest::new(&key_1, NS, "mu-1", &pod_1.uid().unwrap())).unwrap();
    publish_request(&node_b, "mu-1", &request_1).await.unwrap();
    let chain_1 = wait_until(20, "mu-1's chain", || chain_of(&admin, "mu", "mu-1")).await;
    assert_eq!(chain_1.leaf().unwrap().body.subject, key_1.public());
    wait_until(20, "both peers in status", || async {
        let mp = support::peer(&admin, NS, "mu").await?;
        let peers = mp.status?.peers;
        let ids: Vec<String> = peers.iter().map(|p| p.peer_id.clone()).collect();
        (ids == vec![key_0.public().to_string(), key_1.public().to_string()]).then_some(())
    })
    .await;
    controller.stop().await;

    // What node a may read: its pod's chains, trust and seeds; not the principal, and no peer
    // key anywhere, since no Secret holds one.
    let config_maps: Api<ConfigMap> = Api::namespaced(node_a.clone(), NS);
    for name in ["mu-chains", "mu-trust", "devnet-seeds"] {
        config_maps
            .get(name)
            .await
            .unwrap_or_else(|e| panic!("node-a cannot read {name}: {e}"));
    }
    let secrets: Api<Secret> = Api::namespaced(node_a.clone(), NS);
    assert!(
        forbidden(secrets.get("principal").await),
        "principal Secret readable"
    );
    assert!(
        forbidden(secrets.list(&ListParams::default()).await),
        "Secrets listable"
    );
    let all = Api::<Secret>::namespaced(admin.clone(), NS)
        .list(&ListParams::default())
        .await
        .unwrap();
    let names: Vec<String> = all.items.iter().map(|s| s.name_any()).collect();
    assert_eq!(names, vec!["principal"], "the operator made a Secret");
    let chains = config_maps.get("mu-chains").await.unwrap().data.unwrap();
    assert!(chains.values().all(|v| !v.contains("PRIVATE KEY")));
}
