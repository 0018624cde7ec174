//! Specs refused with the field named, a missing or unusable principal reported, certificates
//! never outliving the principal.

use super::*;

#[test]
fn impossible_specs_are_rejected_with_the_field_named() {
    let trust = trust();
    type Mutation = fn(&mut MediachainPeer);
    let cases: Vec<(&str, Mutation)> = vec![
        ("spec.replicas", |mp| mp.spec.replicas = 0),
        ("metadata.name", |mp| mp.metadata.name = Some("a.b".into())),
        ("metadata.name", |mp| {
            mp.metadata.name = Some("9lives".into())
        }),
        ("spec.replicas", |mp| mp.spec.replicas = 100_000),
        ("spec.network", |mp| mp.spec.network = "Not_A_Name".into()),
        ("spec.storage.size", |mp| {
            mp.spec.storage.size = "lots".into()
        }),
        ("spec.clientService.type", |mp| {
            mp.spec.client_service.type_ = "Magic".into()
        }),
        ("maxUnavailable", |mp| {
            mp.spec.disruption_budget.max_unavailable = 9
        }),
        ("renewBeforeHours", |mp| {
            mp.spec.trust.renew_before_hours = 10_000
        }),
        ("spec.podOverrides", |mp| {
            mp.spec.pod_overrides = Some(serde_json::json!(["not", "an", "object"]))
        }),
    ];
    for (field, mutate) in cases {
        let mut mp = fixture("basic");
        mutate(&mut mp);
        let err = validate(&mp, &found_with(&trust, &mp), NOW).unwrap_err();
        assert!(
            matches!(&err, Error::InvalidSpec(msg) if msg.contains(field)),
            "{field}: {err}"
        );
    }
}

#[test]
fn a_missing_or_unusable_principal_is_reported() {
    let trust = trust();
    let mp = fixture("basic");
    let mut found = found_with(&trust, &mp);
    found.principal = None;
    assert!(matches!(
        validate(&mp, &found, NOW),
        Err(Error::MissingPrincipalSecret { .. })
    ));

    let mut secret = trust.secret("media", "principal");
    secret.data.as_mut().unwrap().insert(
        "principal.key".into(),
        k8s_openapi::ByteString(b"nope".to_vec()),
    );
    found.principal = Some(secret);
    let err = validate(&mp, &found, NOW).unwrap_err();
    assert!(
        matches!(&err, Error::InvalidPrincipal { detail, .. } if detail.contains("principal.key"))
    );

    // A principal key that the chain does not certify.
    let other = TrustFixture::new(9, NOW - DAY, NOW + DAY);
    let mut secret = trust.secret("media", "principal");
    let foreign = other.secret("media", "x").data.unwrap()["principal.key"].clone();
    secret
        .data
        .as_mut()
        .unwrap()
        .insert("principal.key".into(), foreign);
    found.principal = Some(secret);
    assert!(matches!(
        validate(&mp, &found, NOW),
        Err(Error::InvalidPrincipal { .. })
    ));

    // An expired principal certificate.
    found.principal = Some(trust.secret("media", "principal"));
    assert!(matches!(
        validate(&mp, &found, NOW + 400 * DAY),
        Err(Error::InvalidPrincipal { .. })
    ));
}

#[test]
fn peer_certificates_never_outlive_the_principal() {
    let trust = TrustFixture::new(3, NOW - DAY, NOW + 10 * DAY);
    let mp = fixture("basic");
    let (_, desired) = valid_and_built(&mp, &found_with(&trust, &mp), NOW);
    assert_eq!(desired.identities[0].0.not_after, NOW + 10 * DAY);
    // ...and a certificate that cannot be extended is not re-issued on every pass.
    let found = as_found(&found_with(&trust, &mp), &desired);
    let (_, again) = valid_and_built(&mp, &found, NOW + DAY);
    assert!(again.identity_changes().is_empty());
}
