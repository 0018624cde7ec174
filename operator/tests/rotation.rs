//! Principal rotation (issue 17 item 2) on a real kube-apiserver and kube-controller-manager
//! (its StatefulSet controller replaces the pods; the kubelet's part, readiness, is played
//! here): a resource under principal A is rotated to principal B of the same root in two phases.
//! Every peer's certificate is re-issued under B once, with the same key; the peers restart one
//! at a time, highest ordinal first, each next one only once the previous is ready; the phase
//! stays `Rotating` until the last peer runs B's certificate and is ready, then `Retired`
//! (condition, Event); A's Secret is then not needed, nothing the operator owns goes through A,
//! and a steady resource costs no writes.
//!
//! Needs the harness binaries and `KUBE_CONTROLLER_MANAGER_BIN`; fails without them unless
//! `MEDIACHAIN_SKIP_KUBE=1`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client, ResourceExt};
use mediachain::trust::{Chain, Level, RevocationSet};
use mediachain_operator::crd::{MediachainPeer, PrincipalRotationStatus, RotationPhase};
use mediachain_operator::reconcile::Settings;
use serde_json::json;
use support::{kubelet_reports, wait_until, NS};

const PEERS: i32 = 4;

/// Each pod's uid (`None`: no pod of that ordinal now).
async fn uids(client: &Client) -> Vec<Option<String>> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    let mut out = Vec::new();
    for i in 0..PEERS {
        out.push(
            pods.get_opt(&format!("alpha-{i}"))
                .await
                .unwrap()
                .and_then(|p| p.uid()),
        );
    }
    out
}

async fn rotation(client: &Client) -> Option<PrincipalRotationStatus> {
    support::peer(client, NS, "alpha")
        .await?
        .status?
        .principal_rotation
}

/// Every identity Secret's (key, chain) as seen by a watch, in order of change.
type Seen = Arc<Mutex<BTreeMap<String, Vec<(Vec<u8>, Vec<u8>)>>>>;

/// Records every distinct (key, chain) content of the identity Secrets of `alpha`.
fn watch_identities(client: &Client) -> Seen {
    let seen: Seen = Arc::default();
    let record = seen.clone();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), NS);
    let config = watcher::Config::default().labels("app.kubernetes.io/instance=alpha");
    tokio::spawn(async move {
        let mut stream = watcher(secrets, config).applied_objects().boxed();
        while let Some(Ok(secret)) = stream.next().await {
            let data = secret.data.clone().unwrap_or_default();
            let (Some(key), Some(chain)) = (data.get("peer.key"), data.get("peer.chain")) else {
                continue;
            };
            let mut seen = record.lock().unwrap();
            let versions = seen.entry(secret.name_any()).or_default();
            let content = (key.0.clone(), chain.0.clone());
            if versions.last() != Some(&content) {
                versions.push(content);
            }
        }
    });
    seen
}

/// The issuer of a chain in PEM bytes.
fn issuer(chain: &[u8]) -> String {
    let chain = Chain::from_pem(std::str::from_utf8(chain).unwrap()).unwrap();
    chain.leaf().unwrap().body.issuer.to_string()
}

#[tokio::test]
async fn a_principal_rotates_in_two_phases_one_peer_at_a_time() {
    let Some((server, client)) = support::cluster_with_principal(61).await else {
        return;
    };
    let _kcm = server
        .start_controller_manager(&["garbagecollector", "statefulset"])
        .unwrap();
    let old = support::trust(61);
    let new = old.successor(70, support::now() - 3600, support::now() + 400 * 86_400);
    let (a, b) = (
        old.principal.public().to_string(),
        new.principal.public().to_string(),
    );
    let seen = watch_identities(&client);
    let settings = Settings {
        height_refresh: Duration::from_secs(2),
        ..Settings::default()
    };
    let controller = support::run_controller(support::context_with(&client, settings));
    support::ready_peers(&client, NS, "alpha", PEERS as usize).await;
    let peer_ids = wait_until(60, "4 identities under A", || async {
        let status = support::peer(&client, NS, "alpha").await?.status?;
        let ids: Vec<String> = status.peers.iter().map(|p| p.peer_id.clone()).collect();
        (ids.len() == PEERS as usize).then_some(ids)
    })
    .await;
    Api::<Secret>::namespaced(client.clone(), NS)
        .create(&PostParams::default(), &new.secret(NS, "principal-b"))
        .await
        .unwrap();

    let before = uids(&client).await;
    Api::<MediachainPeer>::namespaced(client.clone(), NS)
        .patch(
            "alpha",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"trust": {
                "principalSecretName": "principal-b",
                "retiringPrincipalSecretName": "principal",
            }}})),
        )
        .await
        .unwrap();
    let started = wait_until(90, "phase Rotating", || async {
        rotation(&client)
            .await
            .filter(|r| r.phase == RotationPhase::Rotating)
    })
    .await;
    assert_eq!(
        (started.from.as_str(), started.to.as_str()),
        (a.as_str(), b.as_str())
    );

    // One peer at a time, highest first: each replaced only once the previous is ready again;
    // the phase stays Rotating until the last peer runs B's certificate and is ready.
    for ordinal in (0..PEERS).rev() {
        let now = wait_until(60, &format!("alpha-{ordinal} replaced"), || async {
            let now = uids(&client).await;
            let replaced = now[ordinal as usize].is_some()
                && now[ordinal as usize] != before[ordinal as usize];
            replaced.then_some(now)
        })
        .await;
        for i in 0..ordinal {
            assert_eq!(
                now[i as usize], before[i as usize],
                "alpha-{i} restarted out of turn"
            );
        }
        // The pass that replaced it counted the peers above it (its status write may lag the
        // replacement on a busy machine)...
        let expected = (RotationPhase::Rotating, PEERS - 1 - ordinal);
        let counted = |r: &PrincipalRotationStatus| (r.phase, r.rotated_peers) == expected;
        wait_until(
            30,
            &format!("{expected:?} before alpha-{ordinal} is ready"),
            || async { rotation(&client).await.filter(counted) },
        )
        .await;
        // ... and, deliberately given time to go on or retire A early, does neither.
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert_eq!(
            uids(&client).await[..ordinal as usize],
            before[..ordinal as usize]
        );
        let phase = rotation(&client).await.unwrap();
        assert!(
            counted(&phase),
            "phase before alpha-{ordinal} is ready: {phase:?}; identities seen {:?}",
            seen.lock()
                .unwrap()
                .iter()
                .map(|(n, v)| (n.clone(), v.len()))
                .collect::<Vec<_>>()
        );
        kubelet_reports(&client, NS, &format!("alpha-{ordinal}"), true).await;
    }
    let retired = wait_until(90, "phase Retired", || async {
        rotation(&client)
            .await
            .filter(|r| r.phase == RotationPhase::Retired)
    })
    .await;
    assert_eq!(retired.rotated_peers, PEERS);
    let status = support::peer(&client, NS, "alpha")
        .await
        .unwrap()
        .status
        .unwrap();
    let condition = status
        .conditions
        .iter()
        .find(|c| c.type_ == "PrincipalRotated")
        .unwrap();
    assert_eq!(
        (condition.status.as_str(), condition.reason.as_str()),
        ("True", "Retired")
    );
    let same_ids: Vec<String> = status.peers.iter().map(|p| p.peer_id.clone()).collect();
    assert_eq!(same_ids, peer_ids, "a PeerId changed");
    wait_until(10, "one PrincipalRetired Event", || async {
        (support::events(&client, NS, "PrincipalRetired").await.len() == 1).then_some(())
    })
    .await;
    assert_eq!(
        support::events(&client, NS, "PrincipalRotationStarted")
            .await
            .len(),
        1
    );

    // Every identity went from A to B exactly once, with the same key; the chains verify.
    let root = old.root.public();
    for (name, versions) in seen.lock().unwrap().iter() {
        let issuers: Vec<String> = versions.iter().map(|(_, c)| issuer(c)).collect();
        assert_eq!(
            issuers,
            vec![a.clone(), b.clone()],
            "{name}: issued {issuers:?}"
        );
        assert_eq!(versions[0].0, versions[1].0, "{name}: the key changed");
        let chain = Chain::from_pem(std::str::from_utf8(&versions[1].1).unwrap()).unwrap();
        chain
            .verify(
                &root,
                &RevocationSet::new(root),
                support::now(),
                Level::Peer,
            )
            .unwrap();
    }
    assert_eq!(seen.lock().unwrap().len(), PEERS as usize);

    // A's Secret is no longer needed: deleted, and the field removed, nothing breaks and
    // nothing the operator owns goes through A.
    Api::<Secret>::namespaced(client.clone(), NS)
        .delete("principal", &Default::default())
        .await
        .unwrap();
    Api::<MediachainPeer>::namespaced(client.clone(), NS)
        .patch(
            "alpha",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"trust": {"retiringPrincipalSecretName": null}}})),
        )
        .await
        .unwrap();
    let generation = support::peer(&client, NS, "alpha")
        .await
        .unwrap()
        .metadata
        .generation;
    wait_until(30, "the spec without A observed, not Degraded", || async {
        let status = support::peer(&client, NS, "alpha").await?.status?;
        let degraded = status.conditions.iter().find(|c| c.type_ == "Degraded")?;
        (status.observed_generation == generation && degraded.status == "False").then_some(())
    })
    .await;
    assert_eq!(
        rotation(&client).await,
        Some(retired),
        "the completed rotation stays on record"
    );
    let sts = Api::<StatefulSet>::namespaced(client.clone(), NS)
        .get("alpha")
        .await
        .unwrap();
    let template = sts
        .spec
        .unwrap()
        .template
        .metadata
        .unwrap()
        .annotations
        .unwrap();
    assert_eq!(template["mediachain.io/principal"], b);
    for secret in Api::<Secret>::namespaced(client.clone(), NS)
        .list(&Default::default())
        .await
        .unwrap()
    {
        for (key, value) in secret.data.clone().unwrap_or_default() {
            let text = String::from_utf8_lossy(&value.0);
            if let Ok(chain) = Chain::from_pem(&text) {
                let subjects: BTreeSet<String> =
                    chain.0.iter().map(|c| c.body.subject.to_string()).collect();
                assert!(
                    !subjects.contains(&a),
                    "{}/{key} goes through A",
                    secret.name_any()
                );
            }
        }
    }
    let trust = Api::<ConfigMap>::namespaced(client.clone(), NS)
        .get("alpha-trust")
        .await
        .unwrap();
    assert!(trust.data.unwrap().values().all(|v| !v.contains(&a)));

    // Steady after the rotation: passes every 2 s write nothing and restart nothing.
    let steady = support::versions(&client, NS, "alpha").await;
    let pods = uids(&client).await;
    tokio::time::sleep(Duration::from_secs(7)).await;
    assert_eq!(
        support::versions(&client, NS, "alpha").await,
        steady,
        "writes while steady"
    );
    assert_eq!(uids(&client).await, pods);
    controller.stop().await;
}
