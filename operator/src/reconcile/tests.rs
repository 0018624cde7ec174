//! Specifications of the pure steps (validate, build, status), from YAML fixtures, no client.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetStatus};
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use mediachain::trust::{keyfile, Chain, Level, RevocationSet};

use super::apply::Applied;
use super::build::{build, Desired};
use super::dereference::{Found, PodState};
use super::identity::{ChangeKind, PEER_CHAIN, PEER_KEY};
use super::status;
use super::validate::{validate, Valid};
use super::Settings;
use crate::crd::MediachainPeer;
use crate::naming;
use crate::testing::TrustFixture;
use crate::Error;

pub(super) const NOW: u64 = 1_800_000_000;
const DAY: u64 = 86_400;

pub(super) fn fixture(name: &str) -> MediachainPeer {
    let text = match name {
        "basic" => include_str!("../../tests/fixtures/basic.yaml"),
        "full" => include_str!("../../tests/fixtures/full.yaml"),
        _ => panic!("no fixture {name}"),
    };
    serde_yaml::from_str(text).expect("fixture parses")
}

pub(super) fn trust() -> TrustFixture {
    TrustFixture::new(7, NOW - DAY, NOW + 365 * DAY)
}

pub(super) fn found_with(trust: &TrustFixture, mp: &MediachainPeer) -> Found {
    Found {
        principal: Some(trust.secret("media", "principal")),
        network_members: vec![mp.clone()],
        ..Found::default()
    }
}

pub(super) fn keygen() -> impl FnMut() -> mediachain::trust::SecretKey {
    let mut n = 100u8;
    move || {
        n += 1;
        mediachain::trust::SecretKey::from_seed(&[n; 32])
    }
}

/// Pods `<name>-0..count`, created at `created` and ready.
pub(super) fn running_pods(name: &str, count: i32, created: u64) -> BTreeMap<String, PodState> {
    (0..count)
        .map(|i| {
            (
                format!("{name}-{i}"),
                PodState {
                    created,
                    ready: true,
                    peer_started: Some(created),
                    revision: None,
                },
            )
        })
        .collect()
}

pub(super) fn valid_and_built(mp: &MediachainPeer, found: &Found, now: u64) -> (Valid, Desired) {
    let valid = validate(mp, found, now).expect("valid");
    let desired = build(&valid, found, &Settings::default(), now, &mut keygen()).expect("built");
    (valid, desired)
}

fn secret_text(secret: &Secret, key: &str) -> String {
    String::from_utf8(secret.data.as_ref().unwrap()[key].0.clone()).unwrap()
}

/// The identity Secrets of `desired`, as the API server would return them next time.
pub(super) fn as_found(found: &Found, desired: &Desired) -> Found {
    let mut next = found.clone();
    next.identities = desired
        .identities
        .iter()
        .map(|(_, s)| (s.name_any(), s.clone()))
        .collect();
    next
}

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
    let env: BTreeMap<_, _> = pod.containers[0]
        .env
        .as_ref()
        .unwrap()
        .iter()
        .map(|e| (e.name.clone(), e.value.clone().unwrap_or_default()))
        .collect();
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
fn a_certificate_near_expiry_is_renewed_with_the_same_key() {
    let trust = trust();
    let mp = fixture("basic"); // 90 days validity, renewed 30 days before expiry
    let found = found_with(&trust, &mp);
    let (valid, first) = valid_and_built(&mp, &found, NOW);
    let found = as_found(&found, &first);
    let later = NOW + 61 * DAY;
    let mut never = || -> mediachain::trust::SecretKey { panic!("must not generate a key") };
    let renewed = build(&valid, &found, &Settings::default(), later, &mut never).unwrap();
    assert_eq!(first.identities.len(), 3);
    assert_eq!(renewed.identities.len(), first.identities.len());
    for ((old, old_secret), (new, new_secret)) in first.identities.iter().zip(&renewed.identities) {
        assert_eq!(new.change, Some(ChangeKind::Renewed));
        assert_eq!(old.peer_id, new.peer_id);
        assert_eq!(
            secret_text(old_secret, PEER_KEY),
            secret_text(new_secret, PEER_KEY)
        );
        assert_eq!(new.not_after, later + 90 * 24 * 3600);
    }
    assert_eq!(
        first.statefulset.spec.as_ref().unwrap().template,
        renewed.statefulset.spec.as_ref().unwrap().template,
        "a renewal does not roll every peer through the pod template"
    );
}

#[test]
fn a_renewed_certificate_restarts_only_its_own_peer_once_the_others_are_ready() {
    let trust = trust();
    let mp = fixture("basic"); // 3 peers, maxUnavailable 1
    let found = found_with(&trust, &mp);
    let (valid, first) = valid_and_built(&mp, &found, NOW);
    let mut found = as_found(&found, &first);
    found.pods = running_pods("alpha", 3, NOW + 10);
    // Peer 1's Secret is lost and issued again: only pod alpha-1 runs an outdated identity.
    found.identities.remove("alpha-1-identity");
    let later = NOW + DAY;
    let again = build(&valid, &found, &Settings::default(), later, &mut keygen()).unwrap();
    assert_eq!(again.identity_changes().len(), 1);
    assert_eq!(again.restarts, vec!["alpha-1".to_string()]);

    // Not while another peer is not ready, nor while one is missing.
    found.pods.get_mut("alpha-2").unwrap().ready = false;
    let waiting = build(&valid, &found, &Settings::default(), later, &mut keygen()).unwrap();
    assert!(waiting.restarts.is_empty());
    found.pods.remove("alpha-2");
    let waiting = build(&valid, &found, &Settings::default(), later, &mut keygen()).unwrap();
    assert!(waiting.restarts.is_empty());

    // All three renewed at once: one restart per pass (maxUnavailable 1), peer by peer.
    let found = {
        let mut f = as_found(&found_with(&trust, &mp), &first);
        f.pods = running_pods("alpha", 3, NOW + 10);
        f
    };
    let renewal = NOW + 61 * DAY;
    let renewed = build(&valid, &found, &Settings::default(), renewal, &mut keygen()).unwrap();
    assert_eq!(renewed.identity_changes().len(), 3);
    assert_eq!(renewed.restarts, vec!["alpha-0".to_string()]);
    // The next pass sees alpha-0 re-created after the renewal: alpha-1 is next.
    let mut next = as_found(&found, &renewed);
    next.pods.insert(
        "alpha-0".into(),
        PodState {
            created: renewal + 5,
            ready: true,
            peer_started: Some(renewal + 5),
            revision: None,
        },
    );
    let after = build(
        &valid,
        &next,
        &Settings::default(),
        renewal + 10,
        &mut keygen(),
    )
    .unwrap();
    assert!(after.identity_changes().is_empty());
    assert_eq!(after.restarts, vec!["alpha-1".to_string()]);
}

#[test]
fn a_new_principal_reissues_certificates_but_keeps_keys() {
    let mp = fixture("basic");
    let old = trust();
    let found = found_with(&old, &mp);
    let (_, first) = valid_and_built(&mp, &found, NOW);
    let new = TrustFixture::new(42, NOW - DAY, NOW + 365 * DAY);
    let mut found = as_found(&found_with(&new, &mp), &first);
    found.network_members = vec![mp.clone()];
    let (_, second) = valid_and_built(&mp, &found, NOW);
    assert_eq!(first.identities.len(), 3);
    assert_eq!(second.identities.len(), first.identities.len());
    for ((a, _), (b, _)) in first.identities.iter().zip(&second.identities) {
        assert_eq!(b.change, Some(ChangeKind::Reissued));
        assert_eq!(a.peer_id, b.peer_id);
    }
}

#[test]
fn a_revoked_peer_gets_a_new_key_and_a_new_list_rolls_the_peers_through_the_template() {
    use mediachain::trust::{Revocation, RevocationList};
    let trust = trust();
    let mp = fixture("basic");
    let found = found_with(&trust, &mp);
    let (_, first) = valid_and_built(&mp, &found, NOW);
    let revoked_id: mediachain::trust::PublicKey = first.identities[1].0.peer_id.parse().unwrap();
    let list = RevocationList::empty(&trust.principal, NOW).with(
        &trust.principal,
        Revocation {
            subject: revoked_id,
            revoked_at: NOW,
            reason: "node compromised".into(),
        },
        NOW,
    );
    let mut found = as_found(&found, &first);
    found.pods = running_pods("alpha", 3, NOW + 10);
    found.statefulset = Some(first.statefulset.clone());
    let principal = found.principal.as_mut().unwrap();
    principal.data.as_mut().unwrap().insert(
        "revocations.pem".into(),
        k8s_openapi::ByteString(list.to_pem().into_bytes()),
    );
    let later = NOW + 60;
    let (valid, second) = {
        let valid = validate(&mp, &found, later).unwrap();
        let desired = build(&valid, &found, &Settings::default(), later, &mut keygen()).unwrap();
        (valid, desired)
    };
    let changes = second.identity_changes();
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(changes[0].kind, ChangeKind::Revoked);
    assert_eq!(changes[0].secret, "alpha-1-identity");
    assert_ne!(second.identities[1].0.peer_id, revoked_id.to_string());
    assert_eq!(
        second.identities[0].0.peer_id,
        first.identities[0].0.peer_id
    );
    assert_eq!(
        second.identities[1].0.revoked,
        Some(super::identity::RevokedKey {
            peer_id: revoked_id.to_string(),
            reason: "node compromised".into(),
            replaced_at: later,
        })
    );
    assert!(second.trust.data.as_ref().unwrap()["revocations.pem"].contains("REVOCATION"));
    // Peers load the list only at start: it is in the pod template (its digest), so the
    // StatefulSet restarts every peer one at a time; the operator deletes no pod itself.
    let digest = super::build::revocations_digest(&second.statefulset);
    assert_eq!(
        digest.map(str::to_string),
        Some(hex::encode(<sha2::Sha256 as sha2::Digest>::digest(
            list.to_pem().as_bytes()
        )))
    );
    assert_eq!(super::build::revocations_digest(&first.statefulset), None);
    assert!(second.restarts.is_empty(), "{:?}", second.restarts);

    // The new key is not revoked: the next pass changes nothing, keeps the revoked key on
    // record, and deletes no pod while the StatefulSet is still rolling.
    let mut next = as_found(&found, &second);
    let mut rolling = second.statefulset.clone();
    rolling.status = Some(StatefulSetStatus {
        current_revision: Some("alpha-old".into()),
        update_revision: Some("alpha-new".into()),
        ..StatefulSetStatus::default()
    });
    next.statefulset = Some(rolling);
    let again = build(
        &valid,
        &next,
        &Settings::default(),
        later + 60,
        &mut keygen(),
    )
    .unwrap();
    assert!(again.identity_changes().is_empty());
    assert!(again.restarts.is_empty(), "{:?}", again.restarts);
    assert_eq!(
        again.identities[1].0.revoked,
        second.identities[1].0.revoked
    );

    // A list whose signature does not verify is refused, not ignored.
    let mut forged = list.clone();
    forged.body.sequence += 7;
    let principal = found.principal.as_mut().unwrap();
    principal.data.as_mut().unwrap().insert(
        "revocations.pem".into(),
        k8s_openapi::ByteString(forged.to_pem().into_bytes()),
    );
    assert!(matches!(
        validate(&mp, &found, later),
        Err(Error::InvalidPrincipal { ref detail, .. }) if detail.contains("revocations.pem")
    ));
}

#[test]
fn a_corrupt_identity_key_is_an_error_never_a_new_key() {
    let trust = trust();
    let mp = fixture("basic");
    let mut found = found_with(&trust, &mp);
    let (valid, first) = valid_and_built(&mp, &found, NOW);
    found = as_found(&found, &first);
    let secret = found.identities.get_mut("alpha-1-identity").unwrap();
    secret.data.as_mut().unwrap().insert(
        PEER_KEY.into(),
        k8s_openapi::ByteString(b"garbage".to_vec()),
    );
    let err = build(&valid, &found, &Settings::default(), NOW, &mut keygen()).unwrap_err();
    assert!(matches!(err, Error::CorruptIdentity { ref name, .. } if name == "alpha-1-identity"));
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

#[test]
fn scale_down_deletes_identities_only_with_delete_policy_and_after_the_pod_is_gone() {
    let trust = trust();
    let mut mp = fixture("full"); // whenScaled: Delete, 5 replicas
    let found = found_with(&trust, &mp);
    let (_, five) = valid_and_built(&mp, &found, NOW);
    let mut found = as_found(&found, &five);
    mp.spec.replicas = 3;
    found.pods = running_pods("beta", 4, NOW - DAY);
    let (_, three) = valid_and_built(&mp, &found, NOW);
    assert_eq!(
        three.obsolete_identities,
        vec!["beta-4-identity".to_string()]
    );

    let mut retained = mp.clone();
    retained.spec.storage.retention.when_scaled = crate::crd::RetentionPolicy::Retain;
    let (_, kept) = valid_and_built(&retained, &found, NOW);
    assert!(kept.obsolete_identities.is_empty());
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

fn running(replicas: i32, generation: i64, status: Option<(i32, i64)>) -> StatefulSet {
    StatefulSet {
        metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            generation: Some(generation),
            ..Default::default()
        },
        spec: Some(k8s_openapi::api::apps::v1::StatefulSetSpec {
            replicas: Some(replicas),
            ..Default::default()
        }),
        status: status.map(|(running, observed)| StatefulSetStatus {
            replicas: running,
            observed_generation: Some(observed),
            ..Default::default()
        }),
    }
}

#[test]
fn scale_down_goes_in_steps_of_max_unavailable_once_each_batch_is_gone() {
    use super::build::stepped_replicas;
    let mut mp = fixture("basic");
    mp.spec.replicas = 2;
    let mut found = Found {
        pods: running_pods("alpha", 5, NOW),
        ..Found::default()
    };
    assert_eq!(stepped_replicas(&mp, &found), 2, "no StatefulSet yet");
    found.statefulset = Some(running(5, 3, Some((5, 3))));
    assert_eq!(
        stepped_replicas(&mp, &found),
        4,
        "one peer at a time by default"
    );
    found.statefulset = Some(running(4, 4, Some((5, 3))));
    assert_eq!(
        stepped_replicas(&mp, &found),
        4,
        "previous step not observed yet"
    );
    found.statefulset = Some(running(4, 4, Some((5, 4))));
    assert_eq!(
        stepped_replicas(&mp, &found),
        4,
        "previous batch still running"
    );
    found.statefulset = Some(running(4, 4, Some((4, 4))));
    found.pods.get_mut("alpha-1").unwrap().ready = false;
    assert_eq!(
        stepped_replicas(&mp, &found),
        4,
        "a peer that stays is not ready"
    );
    found.pods.get_mut("alpha-1").unwrap().ready = true;
    assert_eq!(stepped_replicas(&mp, &found), 3);
    mp.spec.disruption_budget.max_unavailable = 3;
    assert_eq!(
        stepped_replicas(&mp, &found),
        2,
        "never below the wanted count"
    );
    mp.spec.replicas = 9;
    assert_eq!(stepped_replicas(&mp, &found), 9, "scale up at once");
    found.statefulset = Some(running(5, 1, None));
    mp.spec.replicas = 1;
    assert_eq!(
        stepped_replicas(&mp, &found),
        1,
        "never observed: no pods to protect"
    );
}

#[test]
fn scaling_down_then_up_within_issued_identities_keeps_the_pod_template() {
    let trust = trust();
    let mut mp = fixture("basic"); // whenScaled: Retain
    mp.spec.replicas = 5;
    let found = found_with(&trust, &mp);
    let (_, five) = valid_and_built(&mp, &found, NOW);
    let found = as_found(&found, &five);
    let template = |d: &Desired| d.statefulset.spec.as_ref().unwrap().template.clone();

    mp.spec.replicas = 3;
    let (_, three) = valid_and_built(&mp, &found, NOW);
    assert_eq!(three.statefulset.spec.as_ref().unwrap().replicas, Some(3));
    assert_eq!(
        template(&three),
        template(&five),
        "no rolling restart on scale-down"
    );
    mp.spec.replicas = 4;
    let (_, four) = valid_and_built(&mp, &found, NOW);
    assert!(
        four.identity_changes().is_empty(),
        "peer 3 gets its old identity back"
    );
    assert_eq!(
        template(&four),
        template(&five),
        "no rolling restart on scale-up"
    );

    // With whenScaled: Delete the removed identities go once their pods are gone, and the
    // template drops them.
    mp.spec.storage.retention.when_scaled = crate::crd::RetentionPolicy::Delete;
    mp.spec.replicas = 3;
    let (_, deleted) = valid_and_built(&mp, &found, NOW);
    assert_eq!(deleted.obsolete_identities.len(), 2);
    assert_ne!(template(&deleted), template(&five));
}

fn applied(sts_status: StatefulSetStatus, generation: i64) -> Applied {
    Applied {
        statefulset: StatefulSet {
            metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                generation: Some(generation),
                ..Default::default()
            },
            status: Some(sts_status),
            ..Default::default()
        },
        revoked: Vec::new(),
        peers: Vec::new(),
        deleted_identities: Vec::new(),
        restarted: Vec::new(),
        external_seeds: Vec::new(),
    }
}

/// An observation with `height` and a principal valid for a year.
fn observed(height: Option<u64>) -> status::Observed {
    status::Observed {
        height,
        finalized_height: None,
        principal_not_after: NOW + 365 * DAY,
        backup_runs: Vec::new(),
        network_digest: None,
        rollout_stuck: None,
        evidence: None,
        rotation: None,
    }
}

#[test]
fn conditions_change_their_transition_time_only_on_transitions() {
    let mut mp = fixture("basic");
    let t0 = status::time(NOW);
    let rolling = applied(
        StatefulSetStatus {
            observed_generation: Some(1),
            replicas: 3,
            ready_replicas: Some(1),
            updated_replicas: Some(3),
            ..Default::default()
        },
        1,
    );
    let first = status::compute(&mp, &rolling, observed(None), t0);
    let cond = |s: &crate::crd::MediachainPeerStatus, t: &str| {
        s.conditions.iter().find(|c| c.type_ == t).unwrap().clone()
    };
    assert_eq!(cond(&first, status::READY).status, "False");
    assert_eq!(cond(&first, status::PROGRESSING).status, "True");
    assert_eq!(first.observed_generation, Some(1));

    mp.status = Some(first.clone());
    let again = status::compute(&mp, &rolling, observed(None), status::time(NOW + 30));
    assert_eq!(
        again, first,
        "same observation, same status: nothing to write"
    );

    let done = applied(
        StatefulSetStatus {
            observed_generation: Some(1),
            replicas: 3,
            ready_replicas: Some(3),
            updated_replicas: Some(3),
            ..Default::default()
        },
        1,
    );
    let t1 = status::time(NOW + 60);
    let ready = status::compute(&mp, &done, observed(Some(17)), t1);
    assert_eq!(cond(&ready, status::READY).status, "True");
    assert_eq!(cond(&ready, status::READY).last_transition_time.0, t1);
    assert_eq!(cond(&ready, status::PROGRESSING).status, "False");
    assert_eq!(
        cond(&ready, status::DEGRADED).last_transition_time.0,
        t0,
        "Degraded stayed False: its transition time is kept"
    );
    assert_eq!(ready.ready_replicas, 3);
    assert_eq!(ready.journal_height, Some(17));
    mp.status = Some(ready);
    let silent = status::compute(&mp, &done, observed(None), status::time(NOW + 90));
    assert_eq!(
        silent.journal_height,
        Some(17),
        "the last known height is kept"
    );
}

#[test]
fn a_failure_sets_degraded_with_the_error_category_and_keeps_ready() {
    let mut mp = fixture("basic");
    let ready = status::compute(
        &mp,
        &applied(
            StatefulSetStatus {
                observed_generation: Some(1),
                replicas: 3,
                ready_replicas: Some(3),
                updated_replicas: Some(3),
                ..Default::default()
            },
            1,
        ),
        observed(None),
        status::time(NOW),
    );
    mp.status = Some(ready);
    let err = Error::InvalidSpec("spec.replicas is 0".into());
    let failed = status::compute_failure(&mp, &err, status::time(NOW + 5));
    let degraded = failed
        .conditions
        .iter()
        .find(|c| c.type_ == status::DEGRADED)
        .unwrap();
    assert_eq!(
        (degraded.status.as_str(), degraded.reason.as_str()),
        ("True", "InvalidSpec")
    );
    assert!(degraded.message.contains("spec.replicas"));
    let ready = failed
        .conditions
        .iter()
        .find(|c| c.type_ == status::READY)
        .unwrap();
    assert_eq!(ready.status, "True", "running peers keep running");
    assert_eq!(naming::workload(&mp), "alpha");
}

mod arbitrary_content {
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
}

#[test]
fn the_soonest_certificate_expiry_reads_as_people_count() {
    let peer = |not_after: u64| crate::crd::PeerIdentityStatus {
        name: "alpha-0".into(),
        peer_id: "p".into(),
        certificate_not_after: not_after,
    };
    let now = status::time(NOW);
    let at = |secs: u64| status::soonest_expiry(&[peer(NOW + 90 * DAY), peer(NOW + secs)], now);
    assert_eq!(at(89 * DAY + 5), Some("in 90d".into()));
    assert_eq!(at(89 * DAY), Some("in 89d".into()));
    // Just issued for 90 days, and a second later: the same words (no second status write).
    assert_eq!(at(90 * DAY), at(90 * DAY - 1));
    assert_eq!(at(2 * DAY), Some("in 2d".into()));
    assert_eq!(at(30 * 3600), Some("in 30h".into()));
    assert_eq!(at(45 * 60 - 10), Some("in 45m".into()));
    assert_eq!(
        status::soonest_expiry(&[peer(NOW - 1)], now),
        Some("expired".into())
    );
    assert_eq!(status::soonest_expiry(&[], now), None);
}
