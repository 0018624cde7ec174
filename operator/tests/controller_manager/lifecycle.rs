//! What a resource owns, on a real controller manager: pods follow the template and deletion
//! collects everything owned; a deleted member leaves the seed list and foreground deletion
//! collects it; retained identities come back with a re-created resource.

use super::*;

#[tokio::test]
async fn pods_follow_the_template_and_deletion_collects_everything_owned() {
    let Some((_server, _kcm, client)) = cluster().await else {
        return;
    };

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
