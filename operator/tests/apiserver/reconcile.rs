//! A network's life through reconcile passes: created, reconciled, scaled and updated; bad
//! specs reported as conditions and events.

use super::*;

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
