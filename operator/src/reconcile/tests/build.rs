//! What a pass builds: every owned object of the basic and full fixtures, a second pass over
//! its own output changing nothing, placement merged with the defaults, the seed list of a
//! network.

use super::*;

#[test]
fn basic_fixture_builds_every_owned_object() {
    let trust = trust();
    let mp = fixture("basic");
    let (_, desired) = valid_and_built(&mp, &found_with(&trust, &mp), NOW);

    assert_eq!(desired.identities.len(), 3);
    for (ordinal, (id, secret)) in desired.identities.iter().enumerate() {
        assert_eq!(secret.name_any(), format!("alpha-{ordinal}-identity"));
        assert_eq!(id.change, Some(ChangeKind::Issued));
        let key = keyfile::parse("k".as_ref(), &secret_text(secret, PEER_KEY), None).unwrap();
        let chain = Chain::from_pem(&secret_text(secret, PEER_CHAIN)).unwrap();
        let root = trust.root.public();
        let subject = chain
            .verify(&root, &RevocationSet::new(root), NOW, Level::Peer)
            .expect("the issued chain verifies up to the root");
        assert_eq!(subject, key.public());
        assert_eq!(id.peer_id, key.public().to_string());
        let owner = &secret.owner_references()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.controller),
            ("MediachainPeer", Some(true))
        );
    }

    let sts = &desired.statefulset;
    let spec = sts.spec.as_ref().unwrap();
    assert_eq!(spec.replicas, Some(3));
    assert_eq!(spec.service_name.as_deref(), Some("alpha-peers"));
    let retention = spec
        .persistent_volume_claim_retention_policy
        .as_ref()
        .unwrap();
    assert_eq!(retention.when_deleted.as_deref(), Some("Delete"));
    assert_eq!(retention.when_scaled.as_deref(), Some("Retain"));
    let claim = &spec.volume_claim_templates.as_ref().unwrap()[0];
    let requests = claim
        .spec
        .as_ref()
        .unwrap()
        .resources
        .as_ref()
        .unwrap()
        .requests
        .as_ref();
    assert_eq!(requests.unwrap()["storage"].0, "10Gi");
    let pod = spec.template.spec.as_ref().unwrap();
    assert_eq!(
        pod.security_context.as_ref().unwrap().run_as_non_root,
        Some(true)
    );
    assert!(pod.affinity.as_ref().unwrap().pod_anti_affinity.is_some());
    let container = &pod.containers[0];
    let sc = container.security_context.as_ref().unwrap();
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    let path = |p: &Option<k8s_openapi::api::core::v1::Probe>| {
        p.as_ref()
            .unwrap()
            .http_get
            .as_ref()
            .unwrap()
            .path
            .clone()
            .unwrap()
    };
    assert_eq!(path(&container.liveness_probe), "/healthz");
    assert_eq!(path(&container.readiness_probe), "/readyz");
    // No pod references the principal Secret: its public parts come from the trust ConfigMap.
    let volumes = pod.volumes.as_ref().unwrap();
    assert!(volumes.iter().all(|v| v.secret.is_none()));
    let trust_volume = volumes.iter().find(|v| v.name == "trust").unwrap();
    assert_eq!(
        trust_volume.config_map.as_ref().unwrap().name,
        "alpha-trust"
    );
    let trust_data = desired.trust.data.as_ref().unwrap();
    assert_eq!(
        trust_data["root.pub"].trim(),
        trust.root.public().to_string()
    );
    assert!(trust_data.values().all(|v| !v.contains("PRIVATE KEY")));
    let mounts = container.volume_mounts.as_ref().unwrap();
    let identity = mounts.iter().find(|m| m.name == "identity").unwrap();
    assert_eq!(identity.mount_path, "/etc/mediachain/identity");
    assert_eq!(identity.sub_path_expr.as_deref(), Some("$(POD_NAME)"));

    let seeds = &desired.seeds.data.as_ref().unwrap()["seeds.txt"];
    assert_eq!(desired.seeds.name_any(), "testnet-seeds");
    for i in 0..3 {
        assert!(seeds.contains(&format!(
            "/dns4/alpha-{i}.alpha-peers.media.svc.cluster.local/tcp/4001\n"
        )));
    }
    let headless = desired.headless_service.spec.as_ref().unwrap();
    assert_eq!(headless.cluster_ip.as_deref(), Some("None"));
    assert_eq!(headless.publish_not_ready_addresses, Some(true));
    let pdb = desired.pdb.as_ref().unwrap().spec.as_ref().unwrap();
    assert_eq!(
        pdb.max_unavailable,
        Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(1))
    );
    assert!(desired.ingress.is_none());
    assert!(desired.obsolete_identities.is_empty());
}

#[test]
fn full_fixture_sets_ingress_service_parameters_and_overrides() {
    let trust = trust();
    let mp = fixture("full");
    let (_, desired) = valid_and_built(&mp, &found_with(&trust, &mp), NOW);

    let ingress = desired.ingress.as_ref().unwrap().spec.as_ref().unwrap();
    assert_eq!(ingress.ingress_class_name.as_deref(), Some("nginx"));
    assert_eq!(
        ingress.tls.as_ref().unwrap()[0].secret_name.as_deref(),
        Some("api-tls")
    );
    let svc = desired.client_service.spec.as_ref().unwrap();
    assert_eq!(svc.type_.as_deref(), Some("LoadBalancer"));
    assert_eq!(
        desired.client_service.annotations()["example.com/lb"],
        "internal"
    );

    let spec = desired.statefulset.spec.as_ref().unwrap();
    let pod = spec.template.spec.as_ref().unwrap();
    assert_eq!(pod.priority_class_name.as_deref(), Some("mediachain"));
    let env = env_of(&pod.containers[0]);
    assert_eq!(env["RUST_LOG"], "debug", "override appended");
    assert_eq!(env["MEDIACHAIN_NETWORK"], "testnet", "generated env kept");
    assert_eq!(env["MEDIACHAIN_BLOCK_INTERVAL"], "2s");
    assert_eq!(env["MEDIACHAIN_COMMIT_TIMEOUT"], "10s");
    assert_eq!(env["MEDIACHAIN_TRANSACTION_POW_BITS"], "8");
    assert_eq!(env["MEDIACHAIN_TARGET_CONNECTIVITY"], "2");
    // Seeds outside the cluster are in the seed file the peers re-read, not in the template.
    assert!(!env.contains_key("MEDIACHAIN_SEEDS"));
    assert!(desired.seeds.data.as_ref().unwrap()["seeds.txt"]
        .lines()
        .any(|l| l == "/dns4/seed.example.org/tcp/4001"));
    assert_eq!(
        env["MEDIACHAIN_EXTERNAL_ADDRESS"],
        "/dns4/$(POD_NAME).beta-peers.media.svc.cluster.local/tcp/4001"
    );
    assert_eq!(
        pod.containers[0].image.as_deref(),
        Some("registry.example/mediachain-peer:0.1.0")
    );
    let retention = spec
        .persistent_volume_claim_retention_policy
        .as_ref()
        .unwrap();
    assert_eq!(retention.when_deleted.as_deref(), Some("Retain"));
    assert_eq!(retention.when_scaled.as_deref(), Some("Delete"));
    let claim = spec.volume_claim_templates.as_ref().unwrap()[0]
        .spec
        .as_ref()
        .unwrap();
    assert_eq!(claim.storage_class_name.as_deref(), Some("fast"));
    // Issued certificates honour the requested validity.
    assert_eq!(desired.identities[0].0.not_after, NOW + 720 * 3600);
}

#[test]
fn a_second_pass_over_its_own_output_changes_nothing() {
    let trust = trust();
    let mp = fixture("basic");
    let found = found_with(&trust, &mp);
    let (valid, first) = valid_and_built(&mp, &found, NOW);
    let found = as_found(&found, &first);
    let second = build(
        &valid,
        &found,
        &Settings::default(),
        NOW + 60,
        &mut keygen(),
    )
    .unwrap();
    assert!(second.identity_changes().is_empty());
    assert_eq!(first.identities.len(), 3);
    assert_eq!(second.identities.len(), first.identities.len());
    for ((_, a), (_, b)) in first.identities.iter().zip(&second.identities) {
        assert_eq!(a, b, "identity Secrets are byte-for-byte stable");
    }
    assert_eq!(first.statefulset, second.statefulset);
    assert_eq!(first.seeds, second.seeds);
}

#[test]
fn placement_merges_with_the_default_anti_affinity_and_zone_spread() {
    let trust = trust();
    let mut mp = fixture("basic");
    let pod_of = |d: &Desired| d.statefulset.spec.clone().unwrap().template;
    let (_, plain) = valid_and_built(&mp, &found_with(&trust, &mp), NOW);
    let spread = pod_of(&plain)
        .spec
        .unwrap()
        .topology_spread_constraints
        .unwrap();
    assert_eq!(spread.len(), 1);
    assert_eq!(spread[0].topology_key, "topology.kubernetes.io/zone");

    mp.spec.placement = serde_json::from_value(serde_json::json!({
        "nodeSelector": {"pool": "ledger"},
        "tolerations": [{"key": "dedicated", "value": "mediachain", "effect": "NoSchedule"}],
        "affinity": {
            "nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd"]}]}]}},
            "podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 50, "podAffinityTerm": {"topologyKey": "rack", "labelSelector": {"matchLabels": {"app": "x"}}}}]},
        },
        "topologySpreadConstraints": [],
        "priorityClassName": "ledger-critical",
        "podLabels": {"team": "media", "app.kubernetes.io/instance": "hijack"},
        "podAnnotations": {"example.com/audit": "yes"},
        "imagePullSecrets": [{"name": "registry"}],
        "env": [{"name": "RUST_BACKTRACE", "value": "1"}],
    }))
    .unwrap();
    let (_, placed) = valid_and_built(&mp, &found_with(&trust, &mp), NOW);
    let template = pod_of(&placed);
    let meta = template.metadata.unwrap();
    let pod = template.spec.unwrap();
    let labels = meta.labels.unwrap();
    assert_eq!(labels["team"], "media");
    assert_eq!(
        labels["app.kubernetes.io/instance"], "alpha",
        "selector labels win"
    );
    assert_eq!(meta.annotations.unwrap()["example.com/audit"], "yes");
    assert_eq!(pod.node_selector.unwrap()["pool"], "ledger");
    assert_eq!(
        pod.tolerations.unwrap()[0].key.as_deref(),
        Some("dedicated")
    );
    let affinity = pod.affinity.unwrap();
    assert!(affinity.node_affinity.is_some());
    let anti = affinity
        .pod_anti_affinity
        .unwrap()
        .preferred_during_scheduling_ignored_during_execution
        .unwrap();
    let keys: Vec<_> = anti
        .iter()
        .map(|t| t.pod_affinity_term.topology_key.as_str())
        .collect();
    assert_eq!(
        keys,
        vec!["kubernetes.io/hostname", "rack"],
        "added, not replaced"
    );
    assert!(pod.topology_spread_constraints.is_none(), "[] means none");
    assert_eq!(pod.priority_class_name.as_deref(), Some("ledger-critical"));
    assert_eq!(pod.image_pull_secrets.unwrap()[0].name, "registry");
    let env = pod.containers[0].env.as_ref().unwrap();
    assert!(env.iter().any(|e| e.name == "RUST_BACKTRACE"));
    assert!(env.iter().any(|e| e.name == "MEDIACHAIN_NETWORK"));

    mp.spec.placement.env = vec![k8s_openapi::api::core::v1::EnvVar {
        name: "MEDIACHAIN_NETWORK".into(),
        value: Some("other".into()),
        ..Default::default()
    }];
    let valid = validate(&mp, &found_with(&trust, &mp), NOW).unwrap();
    let err = build(
        &valid,
        &found_with(&trust, &mp),
        &Settings::default(),
        NOW,
        &mut keygen(),
    )
    .unwrap_err();
    assert!(
        matches!(&err, Error::InvalidSpec(m) if m.contains("MEDIACHAIN_NETWORK")),
        "{err}"
    );
}

#[test]
fn the_seed_list_covers_every_member_of_the_network_in_a_stable_order() {
    let trust = trust();
    let mut alpha = fixture("basic");
    let mut beta = fixture("full"); // seeds: [/dns4/seed.example.org/tcp/4001]
    beta.spec.replicas = 2;
    alpha.spec.seeds = vec![
        "/ip4/198.51.100.9/tcp/30500".into(),
        "/dns4/seed.example.org/tcp/4001".into(),
    ];
    let mut other = fixture("basic");
    other.metadata.name = Some("gamma".into());
    other.spec.network = "othernet".into();
    other.spec.seeds = vec!["/dns4/othernet.example/tcp/4001".into()];
    let mut found = found_with(&trust, &alpha);
    found.network_members = vec![beta.clone(), alpha.clone(), other];
    let (_, from_alpha) = valid_and_built(&alpha, &found, NOW);
    let mut found_beta = found.clone();
    found_beta.network_members.reverse();
    let (_, from_beta) = valid_and_built(&beta, &found_beta, NOW);
    assert_eq!(
        from_alpha.seeds, from_beta.seeds,
        "every member builds the same ConfigMap"
    );
    let text = &from_alpha.seeds.data.as_ref().unwrap()["seeds.txt"];
    let lines: Vec<_> = text.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(lines.len(), 7);
    assert!(lines[0].starts_with("/dns4/alpha-0.alpha-peers."));
    assert!(lines[4].starts_with("/dns4/beta-1.beta-peers."));
    // Then every member's spec.seeds, sorted, each once; not those of another network.
    assert_eq!(
        lines[5..],
        [
            "/dns4/seed.example.org/tcp/4001",
            "/ip4/198.51.100.9/tcp/30500"
        ]
    );
    assert!(!text.contains("gamma") && !text.contains("othernet"));
    assert_eq!(from_alpha.seeds.owner_references().len(), 2);
}
