//! The operator's RBAC (`operator/rbac.yaml`): the controller reconciles under its leader
//! lease with only its rules, with a watch namespace it needs and touches only that namespace,
//! and a node running a peer cannot read the principal key.

use super::*;

/// The documents of `operator/rbac.yaml`.
fn rbac_documents() -> Vec<serde_json::Value> {
    use serde::Deserialize;
    serde_yaml::Deserializer::from_str(include_str!("../../rbac.yaml"))
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

/// A client that acts as the operator's ServiceAccount.
async fn operator_client(server: &ApiServer) -> Client {
    let user = format!("system:serviceaccount:{OPERATOR_NS}:mediachain-operator");
    support::impersonating(server, user, None).await
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
async fn with_watch_namespace_the_controller_needs_and_touches_only_that_namespace() {
    use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
    let Some((server, admin)) = cluster().await else {
        return;
    };
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

#[tokio::test]
async fn a_node_running_a_peer_cannot_read_the_principal_key() {
    let Some(server) = support::node_authorized_cluster().await else {
        return;
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

    let kubelet = support::kubelet(&server, "node-a").await;
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
