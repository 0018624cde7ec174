//! No object content makes validate or build panic: they return a value or an error.

use super::*;

use proptest::prelude::*;

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        ".{0,12}".prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            prop::collection::btree_map(
                prop_oneof![
                    Just("spec".to_string()),
                    Just("containers".to_string()),
                    Just("name".to_string()),
                    Just("metadata".to_string()),
                    Just("volumes".to_string()),
                    "[a-z]{1,6}",
                ],
                inner,
                0..4
            )
            .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]
    #[test]
    fn validate_and_build_never_panic(
        name in prop_oneof![3 => Just("beta".to_string()), 1 => "[a-z0-9.-]{0,50}"],
        network in prop_oneof![3 => Just("testnet".to_string()), 1 => ".{0,70}"],
        replicas in -5i32..400,
        size in prop_oneof![3 => Just("1Gi".to_string()), 1 => ".{0,8}"],
        interval in proptest::option::of(prop_oneof![Just("1s".to_string()), ".{0,6}"]),
        validity in prop_oneof![3 => Just(720u32), 1 => 0u32..100_000],
        renew in prop_oneof![3 => Just(240u32), 1 => 0u32..100_000],
        max_unavailable in -3i32..10,
        target in 0u32..6,
        overrides in proptest::option::of(json_value()),
        key_bytes in proptest::option::of(prop::collection::vec(any::<u8>(), 0..64)),
    ) {
        let trust = trust();
        let mut mp = fixture("full");
        mp.metadata.name = Some(name);
        mp.spec.network = network;
        mp.spec.replicas = replicas.min(8);
        mp.spec.storage.size = size;
        mp.spec.consensus.block_interval = interval;
        mp.spec.trust.certificate_validity_hours = validity;
        mp.spec.trust.renew_before_hours = renew;
        mp.spec.disruption_budget.max_unavailable = max_unavailable;
        mp.spec.connectivity.target_connectivity = target;
        mp.spec.pod_overrides = overrides;
        let mut found = found_with(&trust, &mp);
        if let Some(bytes) = key_bytes.filter(|_| replicas % 2 == 0) {
            let mut secret = trust.secret("media", "principal");
            secret.data.as_mut().unwrap().insert(
                "principal.key".into(),
                k8s_openapi::ByteString(bytes.clone()),
            );
            found.principal = Some(secret);
            let mut identity = Secret::default();
            identity.metadata.name = Some(format!("{}-0-identity", mp.name_any()));
            identity.data = Some(BTreeMap::from([
                (PEER_KEY.to_string(), k8s_openapi::ByteString(bytes.clone())),
                (PEER_CHAIN.to_string(), k8s_openapi::ByteString(bytes)),
            ]));
            found.identities.insert(identity.name_any(), identity);
        }
        if let Ok(valid) = validate(&mp, &found, NOW) {
            let _ = build(&valid, &found, &Settings::default(), NOW, &mut keygen());
        }
    }
}
