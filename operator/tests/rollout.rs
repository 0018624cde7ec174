//! Peer-aware upgrades (issue 17 item 3) on a real kube-apiserver and kube-controller-manager
//! (its StatefulSet controller replaces the pods; the kubelet's part, readiness, is played here):
//! an image change reaches one peer at a time, highest ordinal first, the next only once the
//! restarted one is ready again; a peer that does not come back holds the rollout and is named
//! in `Degraded/RolloutStuck`; `spec.paused` stops every change.
//!
//! Needs the harness binaries and `KUBE_CONTROLLER_MANAGER_BIN`; fails without them unless
//! `MEDIACHAIN_SKIP_KUBE=1`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use mediachain_operator::reconcile::Settings;
use serde_json::json;
use support::{kubelet_reports, wait_until, NS};

const OLD: &str = "mediachain-peer:1";
const NEW: &str = "mediachain-peer:2";

/// The image of each of the resource's `count` pods (`None`: no pod of that ordinal now).
async fn images(client: &Client, count: i32) -> Vec<Option<String>> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    let mut out = Vec::new();
    for i in 0..count {
        let pod = pods.get_opt(&format!("alpha-{i}")).await.unwrap();
        out.push(pod.and_then(|p| p.spec?.containers.first()?.image.clone()));
    }
    out
}

async fn patch_spec(client: &Client, spec: serde_json::Value) {
    Api::<mediachain_operator::crd::MediachainPeer>::namespaced(client.clone(), NS)
        .patch(
            "alpha",
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": spec })),
        )
        .await
        .unwrap();
}

async fn degraded(client: &Client) -> Option<(String, String, String)> {
    let status = support::peer(client, NS, "alpha").await?.status?;
    let c = status.conditions.iter().find(|c| c.type_ == "Degraded")?;
    Some((c.status.clone(), c.reason.clone(), c.message.clone()))
}

#[tokio::test]
async fn an_image_change_rolls_one_peer_at_a_time_and_a_stuck_peer_is_named() {
    let Some((server, client)) = support::cluster_with_principal(51).await else {
        return;
    };
    let _kcm = server
        .start_controller_manager(&["garbagecollector", "statefulset"])
        .unwrap();
    let settings = Settings {
        rollout_stuck_after: Duration::from_secs(4),
        ..Settings::default()
    };
    let controller = support::run_controller(support::context_with(&client, settings));
    support::create_peer_in(
        &client,
        NS,
        "alpha",
        json!({"network": "testnet", "replicas": 4, "image": OLD, "storage": {"size": "1Gi"},
            "trust": {"principalSecretName": "principal"}}),
    )
    .await;
    let all_old = vec![Some(OLD.to_string()); 4];
    wait_until(60, "4 pods of the old image", || async {
        (images(&client, 4).await == all_old).then_some(())
    })
    .await;
    for i in 0..4 {
        kubelet_reports(&client, NS, &format!("alpha-{i}"), true).await;
    }

    patch_spec(&client, json!({"image": NEW})).await;
    for (step, ordinal) in (0..4).rev().enumerate() {
        // The next peer (highest ordinal first) is replaced; the ones below keep the old image.
        let want: Vec<Option<String>> = (0..4)
            .map(|i| Some(if i >= ordinal { NEW } else { OLD }.to_string()))
            .collect();
        wait_until(60, &format!("alpha-{ordinal} at the new image"), || async {
            (images(&client, 4).await == want).then_some(())
        })
        .await;
        if step == 0 {
            // Not ready again: the rollout holds and names the peer.
            let (status, _, message) = wait_until(30, "Degraded/RolloutStuck", || async {
                degraded(&client).await.filter(|d| d.1 == "RolloutStuck")
            })
            .await;
            assert_eq!(status, "True");
            assert!(message.contains("alpha-3"), "{message}");
            tokio::time::sleep(Duration::from_secs(3)).await;
            assert_eq!(
                images(&client, 4).await,
                want,
                "the rollout went on past a stuck peer"
            );
        }
        kubelet_reports(&client, NS, &format!("alpha-{ordinal}"), true).await;
    }
    wait_until(30, "the rollout complete and Degraded cleared", || async {
        let (status, _, _) = degraded(&client).await?;
        let progressing = support::peer(&client, NS, "alpha")
            .await?
            .status?
            .conditions
            .into_iter()
            .find(|c| c.type_ == "Progressing")?;
        (status == "False" && progressing.reason == "RolloutComplete").then_some(())
    })
    .await;

    // Maintenance: nothing changes while paused, and the change goes on once unpaused.
    patch_spec(
        &client,
        json!({"paused": true, "image": "mediachain-peer:3"}),
    )
    .await;
    wait_until(20, "state Paused", || async {
        let status = support::peer(&client, NS, "alpha").await?.status?;
        (status.state.as_deref() == Some("Paused")).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let sts = Api::<StatefulSet>::namespaced(client.clone(), NS)
        .get("alpha")
        .await
        .unwrap();
    let template_image = sts.spec.unwrap().template.spec.unwrap().containers[0]
        .image
        .clone();
    assert_eq!(
        template_image.as_deref(),
        Some(NEW),
        "a paused resource was changed"
    );
    patch_spec(&client, json!({"paused": false})).await;
    roll_through(&client, 4, 4, "mediachain-peer:3").await;

    // A scale-up with a template change in one edit: the added peer starts on the new template
    // (the old one mounts no identity for it), before any running peer is touched.
    patch_spec(
        &client,
        json!({"replicas": 5, "image": "mediachain-peer:4"}),
    )
    .await;
    let added = wait_until(60, "alpha-4 created", || async {
        Api::<Pod>::namespaced(client.clone(), NS)
            .get_opt("alpha-4")
            .await
            .unwrap()
    })
    .await;
    let image = added.spec.as_ref().unwrap().containers[0].image.clone();
    assert_eq!(
        (image.as_deref(), mounts_own_identity(&added)),
        (Some("mediachain-peer:4"), true),
        "a pod added by a scale-up started on the old template"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        images(&client, 4).await,
        vec![Some("mediachain-peer:3".to_string()); 4],
        "a running peer was replaced before the added one was ready"
    );
    kubelet_reports(&client, NS, "alpha-4", true).await;
    roll_through(&client, 5, 4, "mediachain-peer:4").await;
    controller.stop().await;
}

/// Plays the kubelet through a rollout of `image` over `replicas` peers: waits for each of the
/// `pending` highest-first ordinals not yet updated to run it, then reports it ready.
async fn roll_through(client: &Client, replicas: i32, pending: i32, image: &str) {
    for ordinal in (0..pending).rev() {
        wait_until(60, &format!("alpha-{ordinal} at {image}"), || async {
            let now = images(client, replicas).await;
            let want = (0..replicas)
                .all(|i| (now[i as usize].as_deref() == Some(image)) == (i >= ordinal));
            want.then_some(())
        })
        .await;
        kubelet_reports(client, NS, &format!("alpha-{ordinal}"), true).await;
    }
}

/// Whether a pod's identity volume mounts its own peer's Secret.
fn mounts_own_identity(pod: &Pod) -> bool {
    let own = format!(
        "{}-identity",
        pod.metadata.name.as_deref().unwrap_or_default()
    );
    pod.spec
        .iter()
        .flat_map(|s| s.volumes.iter().flatten())
        .filter_map(|v| v.projected.as_ref()?.sources.as_ref())
        .flatten()
        .any(|source| source.secret.as_ref().is_some_and(|s| s.name == own))
}
