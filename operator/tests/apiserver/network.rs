//! A network's members share its parameters file, or are refused.

use super::*;

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
