//! Specifications of `spec.backup` and `spec.bootstrap`, and of the metrics label the chart's
//! ServiceMonitor selects (pure steps, no client).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use k8s_openapi::api::core::v1::{Container, PodSpec};
use kube::ResourceExt;

use super::{fixture, found_with, keygen, trust, NOW};
use crate::crd::{BackupSpec, BackupStatus, BootstrapFile, BootstrapSpec, MediachainPeer};
use crate::reconcile::backup::{self, Run, BACKUP_FAILING};
use crate::reconcile::build::{build, Desired};
use crate::reconcile::status;
use crate::reconcile::validate::validate;
use crate::reconcile::Settings;
use crate::Error;

fn built(mp: &MediachainPeer) -> Desired {
    let trust = trust();
    let found = found_with(&trust, mp);
    let valid = validate(mp, &found, NOW).expect("valid");
    build(&valid, &found, &Settings::default(), NOW, &mut keygen()).expect("built")
}

fn with_backup(mut mp: MediachainPeer) -> MediachainPeer {
    mp.spec.backup = Some(BackupSpec {
        schedule: "0 3 * * *".into(),
        keep: 4,
        claim_name: "beta-backups".into(),
        suspend: false,
    });
    mp
}

fn pod_spec(desired: &Desired) -> PodSpec {
    let spec = desired.statefulset.spec.clone().unwrap();
    spec.template.spec.unwrap()
}

#[test]
fn a_backup_spec_builds_a_cron_job_exporting_from_the_client_service() {
    let mp = with_backup(fixture("full"));
    let cron = built(&mp).backup.expect("a CronJob");
    assert_eq!(cron.name_any(), "beta-backup");
    assert_eq!(cron.owner_references()[0].name, "beta");
    assert_eq!(cron.owner_references()[0].controller, Some(true));
    let spec = cron.spec.unwrap();
    assert_eq!(spec.schedule, "0 3 * * *");
    assert_eq!(spec.concurrency_policy.as_deref(), Some("Forbid"));
    let job = spec.job_template.spec.unwrap();
    assert_eq!(job.backoff_limit, Some(0));
    let template = job.template;
    let labels = template.metadata.unwrap().labels.unwrap();
    assert_eq!(labels["app.kubernetes.io/name"], backup::BACKUP_APP);
    assert_eq!(labels["app.kubernetes.io/instance"], "beta");
    assert_ne!(
        labels["app.kubernetes.io/name"], "mediachain-peer",
        "the peers' Services, budget and StatefulSet must not select backup pods"
    );
    let pod = template.spec.unwrap();
    assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
    assert_eq!(pod.automount_service_account_token, Some(false));
    let c = &pod.containers[0];
    assert_eq!(
        c.image.as_deref(),
        Some("registry.example/mediachain-peer:0.1.0")
    );
    assert_eq!(
        c.args.clone().unwrap(),
        [
            "backup",
            "--peer",
            "http://beta.media.svc.cluster.local:8080",
            "--dir",
            "/backups",
            "--keep",
            "4",
            "--report",
            "/dev/termination-log"
        ]
    );
    let volume = &pod.volumes.unwrap()[0];
    assert_eq!(
        volume.persistent_volume_claim.as_ref().unwrap().claim_name,
        "beta-backups"
    );
    assert!(
        built(&fixture("full")).backup.is_none(),
        "no spec, no CronJob"
    );
}

fn mounts(c: &Container) -> Vec<(String, String)> {
    c.volume_mounts
        .iter()
        .flatten()
        .map(|m| (m.name.clone(), m.mount_path.clone()))
        .collect()
}

#[test]
fn bootstrap_imports_before_the_peer_starts_with_its_settings_and_mounts() {
    let mut mp = fixture("full");
    mp.spec.bootstrap = Some(BootstrapSpec {
        file: Some(BootstrapFile {
            claim_name: "beta-backups".into(),
            path: "latest.car".into(),
        }),
        url: None,
    });
    let pod = pod_spec(&built(&mp));
    let init = &pod.init_containers.as_ref().expect("an init container")[0];
    let peer = &pod.containers[0];
    assert_eq!(
        init.args.clone().unwrap(),
        ["import", "--if-empty", "/bootstrap/latest.car"]
    );
    assert_eq!(init.env, peer.env, "verifies with the peer's own settings");
    assert_eq!(init.image, peer.image);
    let mut expected = mounts(peer);
    expected.push(("bootstrap".into(), "/bootstrap".into()));
    assert_eq!(mounts(init), expected, "the peer's mounts plus the file's");
    assert!(init.readiness_probe.is_none() && init.ports.is_none());
    let volume = pod
        .volumes
        .as_ref()
        .unwrap()
        .iter()
        .find(|v| v.name == "bootstrap")
        .unwrap();
    let claim = volume.persistent_volume_claim.as_ref().unwrap();
    assert_eq!(
        (claim.claim_name.as_str(), claim.read_only),
        ("beta-backups", Some(true))
    );

    mp.spec.bootstrap = Some(BootstrapSpec {
        file: None,
        url: Some("http://alpha.media:8080/v1/journal/export".into()),
    });
    let pod = pod_spec(&built(&mp));
    let init = &pod.init_containers.as_ref().unwrap()[0];
    assert_eq!(
        init.args.clone().unwrap()[2],
        "http://alpha.media:8080/v1/journal/export"
    );
    assert!(!pod.volumes.unwrap().iter().any(|v| v.name == "bootstrap"));

    assert!(pod_spec(&built(&fixture("full"))).init_containers.is_none());
}

#[test]
fn bad_backup_and_bootstrap_specs_are_refused_with_the_field_named() {
    let trust = trust();
    let refused = |mp: &MediachainPeer| match validate(mp, &found_with(&trust, mp), NOW) {
        Err(Error::InvalidSpec(m)) => m,
        other => panic!("expected InvalidSpec, got {other:?}"),
    };
    let mut mp = with_backup(fixture("basic"));
    mp.spec.backup.as_mut().unwrap().schedule = "every night".into();
    assert!(refused(&mp).contains("spec.backup.schedule"));
    mp.spec.backup.as_mut().unwrap().schedule = "@daily".into();
    mp.spec.backup.as_mut().unwrap().claim_name = String::new();
    assert!(refused(&mp).contains("spec.backup.claimName"));

    let file = |path: &str| BootstrapFile {
        claim_name: "b".into(),
        path: path.into(),
    };
    let mut mp = fixture("basic");
    for (bootstrap, field) in [
        (
            BootstrapSpec {
                file: None,
                url: None,
            },
            "exactly one",
        ),
        (
            BootstrapSpec {
                file: Some(file("x.car")),
                url: Some("http://a".into()),
            },
            "exactly one",
        ),
        (
            BootstrapSpec {
                file: Some(file("../etc/passwd")),
                url: None,
            },
            "spec.bootstrap.file.path",
        ),
        (
            BootstrapSpec {
                file: None,
                url: Some("ftp://a/x.car".into()),
            },
            "spec.bootstrap.url",
        ),
    ] {
        mp.spec.bootstrap = Some(bootstrap);
        let message = refused(&mp);
        assert!(message.contains(field), "{message}");
    }
}

fn run(pod: &str, finished: u64, exit_code: i32, message: &str) -> Run {
    Run {
        pod: pod.into(),
        finished,
        exit_code,
        message: message.into(),
    }
}

fn written(file: &str, time: u64, height: u64) -> String {
    format!(
        r#"{{"written":{{"file":"{file}","time":{time},"height":{height},"root":"bafyroot","bytes":2048,"pruned":[]}}}}"#
    )
}

fn backup_condition(status: &crate::crd::MediachainPeerStatus) -> (String, String, String) {
    let c = status
        .conditions
        .iter()
        .find(|c| c.type_ == BACKUP_FAILING)
        .expect("a BackupFailing condition");
    (c.status.clone(), c.reason.clone(), c.message.clone())
}

fn status_after(mp: &MediachainPeer, runs: Vec<Run>) -> crate::crd::MediachainPeerStatus {
    let mut conditions = mp.status.clone().unwrap_or_default().conditions;
    let prev = mp.status.clone().unwrap_or_default().last_backup;
    let last = backup::update_status(mp, prev.as_ref(), &runs, &mut conditions, status::time(NOW));
    crate::crd::MediachainPeerStatus {
        conditions,
        last_backup: last,
        ..Default::default()
    }
}

#[test]
fn the_status_shows_the_newest_good_backup_and_a_condition_when_the_newest_run_failed() {
    let mut mp = with_backup(fixture("basic"));
    let first = status_after(&mp, vec![]);
    assert_eq!(backup_condition(&first).1, "NoBackupYet");
    assert_eq!(first.last_backup, None);

    let ok = run(
        "alpha-backup-1-x",
        NOW - 600,
        0,
        &written("journal-1.car", NOW - 610, 5),
    );
    let failed = run(
        "alpha-backup-2-y",
        NOW - 60,
        1,
        r#"{"failed":{"error":"export from http://alpha:8080: connection refused"}}"#,
    );
    let s = status_after(&mp, vec![failed.clone(), ok.clone()]);
    assert_eq!(
        s.last_backup,
        Some(BackupStatus {
            time: status::time(NOW - 610).to_rfc3339(),
            height: 5,
            root: "bafyroot".into(),
            size_bytes: 2048,
            file: "journal-1.car".into(),
        })
    );
    let (state, reason, message) = backup_condition(&s);
    assert_eq!((state.as_str(), reason.as_str()), ("True", "BackupFailed"));
    assert!(message.contains("alpha-backup-2-y") && message.contains("connection refused"));

    // A killed run (no report) is a failure too; garbage never becomes a backup.
    let killed = run("alpha-backup-3-z", NOW - 30, 137, "");
    let s = status_after(&mp, vec![ok.clone(), killed]);
    assert!(backup_condition(&s).2.contains("no report"));
    let liar = run(
        "alpha-backup-4-w",
        NOW - 20,
        1,
        &written("journal-9.car", NOW - 25, 9),
    );
    let s = status_after(&mp, vec![ok.clone(), liar]);
    assert_eq!(
        s.last_backup.unwrap().height,
        5,
        "a failed run's report is not a backup"
    );

    // The next good run clears the condition; the status remembers what the pods forget.
    mp.status = Some(status_after(&mp, vec![ok.clone(), failed]));
    let good = run(
        "alpha-backup-5-v",
        NOW - 5,
        0,
        &written("journal-2.car", NOW - 9, 8),
    );
    let s = status_after(&mp, vec![good]);
    assert_eq!(backup_condition(&s).0, "False");
    assert_eq!(s.last_backup.as_ref().unwrap().height, 8);
    mp.status = Some(s);
    let s = status_after(&mp, vec![ok]);
    assert_eq!(
        s.last_backup.as_ref().unwrap().height,
        8,
        "an older run never replaces a newer backup"
    );

    // Without spec.backup the condition goes, the last backup stays.
    mp.spec.backup = None;
    mp.status = Some(s);
    let s = status_after(&mp, vec![]);
    assert!(s.conditions.iter().all(|c| c.type_ != BACKUP_FAILING));
    assert_eq!(s.last_backup.unwrap().height, 8);
}

#[test]
fn only_the_headless_service_is_labelled_for_scraping_so_each_peer_is_scraped_once() {
    let desired = built(&fixture("basic"));
    let label = |s: &k8s_openapi::api::core::v1::Service| {
        s.labels().get(crate::naming::METRICS_LABEL).cloned()
    };
    assert_eq!(label(&desired.headless_service).as_deref(), Some("peers"));
    assert_eq!(label(&desired.client_service), None);
}
