//! `spec.backup` and `spec.bootstrap` against a real kube-apiserver (the `kube-harness` crate):
//! the CronJob and the init container the operator writes, and the status it reads back from
//! finished backup pods (their termination messages; there is no kubelet here, so the test
//! writes the pods' status as a kubelet would). The whole path, with real backups and a restore,
//! runs on kind (`e2e/suite/backup.sh`).
//!
//! Needs `KUBE_APISERVER_BIN` and `ETCD_BIN` (`eval "$(bash e2e/tools.sh harness)"`); fails
//! without them unless `MEDIACHAIN_SKIP_KUBE=1`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::chrono::{SecondsFormat, TimeZone, Utc};
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use kube_harness::ApiServer;
use mediachain::backup::report::Report;
use mediachain_operator::controller;
use mediachain_operator::crd::{MediachainPeer, MediachainPeerStatus};
use mediachain_operator::reconcile::backup::BACKUP_FAILING;
use mediachain_operator::testing::install_crd;
use serde_json::json;
use support::NS;

async fn reconcile(client: &Client, name: &str) -> MediachainPeerStatus {
    let api: Api<MediachainPeer> = Api::namespaced(client.clone(), NS);
    let mp = api.get(name).await.unwrap();
    controller::reconcile(Arc::new(mp), support::context(client))
        .await
        .unwrap();
    api.get(name).await.unwrap().status.unwrap()
}

/// A finished backup pod of resource `of`, as the kubelet leaves it: container `backup`
/// terminated with `exit_code` at `finished` (Unix seconds) and `report` as its message.
async fn finished_backup_pod(
    client: &Client,
    of: &str,
    name: &str,
    finished: u64,
    exit_code: i32,
    report: &Report,
) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {
            "app.kubernetes.io/name": "mediachain-backup",
            "app.kubernetes.io/instance": of,
        }},
        "spec": {"restartPolicy": "Never", "containers": [{"name": "backup", "image": "mediachain-peer:test"}]},
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    let at = |secs: u64| {
        Utc.timestamp_opt(i64::try_from(secs).unwrap(), 0)
            .unwrap()
            .to_rfc3339_opts(SecondsFormat::Secs, true)
    };
    let phase = if exit_code == 0 {
        "Succeeded"
    } else {
        "Failed"
    };
    pods.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"phase": phase, "containerStatuses": [{
            "name": "backup", "image": "mediachain-peer:test", "imageID": "", "ready": false,
            "restartCount": 0,
            "state": {"terminated": {
                "exitCode": exit_code, "startedAt": at(finished - 5), "finishedAt": at(finished),
                "message": serde_json::to_string(report).unwrap(),
            }},
        }]}})),
    )
    .await
    .unwrap();
}

fn written(file: &str, time: u64, height: u64) -> Report {
    Report::Written {
        file: file.into(),
        time,
        height,
        root: format!("bafyroot{height}"),
        bytes: 4096 + height,
        pruned: vec![],
    }
}

fn backup_condition(status: &MediachainPeerStatus) -> Option<(String, String, String)> {
    status
        .conditions
        .iter()
        .find(|c| c.type_ == BACKUP_FAILING)
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

#[tokio::test]
async fn backups_are_scheduled_reported_in_the_status_and_seed_new_peers() {
    let Some(server) = ApiServer::start_or_skip().await.unwrap() else {
        return;
    };
    let client = server.client();
    install_crd(&client, NS).await.unwrap();
    support::create_principal(&client, NS, &support::trust(21)).await;
    support::create_peer_in(
        &client,
        NS,
        "gamma",
        json!({
            "network": "gammanet",
            "replicas": 2,
            "trust": {"principalSecretName": "principal"},
            "backup": {"schedule": "*/5 * * * *", "keep": 2, "claimName": "gamma-backups"},
            "bootstrap": {"file": {"claimName": "gamma-backups", "path": "latest.car"}},
        }),
    )
    .await;

    // The CronJob (owned: the garbage collector removes it with the resource) and the
    // StatefulSet's init container.
    let status = reconcile(&client, "gamma").await;
    let cron = Api::<CronJob>::namespaced(client.clone(), NS)
        .get("gamma-backup")
        .await
        .unwrap();
    assert_eq!(cron.owner_references()[0].name, "gamma");
    assert_eq!(cron.spec.as_ref().unwrap().schedule, "*/5 * * * *");
    let sts = Api::<StatefulSet>::namespaced(client.clone(), NS)
        .get("gamma")
        .await
        .unwrap();
    let pod = sts.spec.unwrap().template.spec.unwrap();
    let init = &pod.init_containers.unwrap()[0];
    assert_eq!(
        init.args.clone().unwrap(),
        ["import", "--if-empty", "/bootstrap/latest.car"]
    );
    assert_eq!(
        backup_condition(&status).map(|c| c.1),
        Some("NoBackupYet".into())
    );
    assert_eq!(status.last_backup, None);

    // A good run: the status reports it.
    let now = support::now();
    finished_backup_pod(
        &client,
        "gamma",
        "gamma-backup-1",
        now - 300,
        0,
        &written("journal-a.car", now - 310, 12),
    )
    .await;
    // Another resource's backup pod is not this one's.
    finished_backup_pod(
        &client,
        "delta",
        "delta-backup-1",
        now - 10,
        0,
        &written("journal-z.car", now - 15, 99),
    )
    .await;
    let status = reconcile(&client, "gamma").await;
    let last = status.last_backup.clone().expect("the last backup");
    assert_eq!(
        (
            last.height,
            last.size_bytes,
            last.file.as_str(),
            last.root.as_str()
        ),
        (12, 4108, "journal-a.car", "bafyroot12")
    );
    let (state, reason, message) = backup_condition(&status).unwrap();
    assert_eq!(
        (state.as_str(), reason.as_str()),
        ("False", "BackupSucceeded")
    );
    assert!(message.contains("gamma-backup-1"), "{message}");

    // A failed run after it: the condition says why, the last good backup stays.
    let error = "export from http://gamma.media.svc.cluster.local:8080: 503 Service Unavailable";
    finished_backup_pod(
        &client,
        "gamma",
        "gamma-backup-2",
        now - 60,
        1,
        &Report::Failed {
            error: error.into(),
        },
    )
    .await;
    let status = reconcile(&client, "gamma").await;
    let (state, reason, message) = backup_condition(&status).unwrap();
    assert_eq!((state.as_str(), reason.as_str()), ("True", "BackupFailed"));
    assert!(
        message.contains(error) && message.contains("gamma-backup-2"),
        "{message}"
    );
    assert_eq!(status.last_backup.as_ref().unwrap().height, 12);
    let transition = status
        .conditions
        .iter()
        .find(|c| c.type_ == BACKUP_FAILING)
        .unwrap()
        .last_transition_time
        .clone();
    // Nothing new: the status is not rewritten (no churn).
    let api: Api<MediachainPeer> = Api::namespaced(client.clone(), NS);
    let version = api.get("gamma").await.unwrap().resource_version();
    let again = reconcile(&client, "gamma").await;
    assert_eq!(api.get("gamma").await.unwrap().resource_version(), version);
    assert_eq!(
        again
            .conditions
            .iter()
            .find(|c| c.type_ == BACKUP_FAILING)
            .unwrap()
            .last_transition_time,
        transition
    );

    // Backups switched off: the CronJob goes, the condition too; the last backup is kept (a
    // restore needs to know it).
    api.patch(
        "gamma",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"backup": null}})),
    )
    .await
    .unwrap();
    let status = reconcile(&client, "gamma").await;
    assert!(Api::<CronJob>::namespaced(client.clone(), NS)
        .get_opt("gamma-backup")
        .await
        .unwrap()
        .is_none());
    assert_eq!(backup_condition(&status), None);
    assert_eq!(status.last_backup.unwrap().height, 12);
}
