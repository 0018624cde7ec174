//! `spec.backup` (pure): the CronJob that backs the network's journal up to CAR files, and what
//! its finished runs tell the status (`status.lastBackup`, the `BackupFailing` condition).
//!
//! Each run is one pod of `mediachain-peer backup` against the resource's client Service
//! (`export --peer`, then keep the newest `keep` files). It writes its outcome as one JSON line
//! to `/dev/termination-log`; the kubelet keeps that as the container's termination message, so
//! the operator reads it from the finished pod's status: the job needs no credentials and no
//! RBAC. Never runs anything itself.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{CronJob, CronJobSpec, JobSpec, JobTemplateSpec};
use k8s_openapi::api::core::v1::{
    Container, EmptyDirVolumeSource, PersistentVolumeClaimVolumeSource, Pod, PodSpec,
    PodTemplateSpec, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use mediachain::backup::report::Report;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use k8s_openapi::chrono::{DateTime, Utc};
use kube::Resource;

use super::status::{self, time};
use super::validate::Valid;
use super::workload::{container_security, pod_security};
use super::Settings;
use crate::crd::{BackupStatus, MediachainPeer};
use crate::naming::{self, HTTP_PORT};

/// Condition type: the newest backup run failed.
pub const BACKUP_FAILING: &str = "BackupFailing";
/// `app.kubernetes.io/name` of the backup jobs' pods (not the peers': no Service, budget or
/// StatefulSet selects them).
pub const BACKUP_APP: &str = "mediachain-backup";
/// Where the backup volume is mounted in the job.
pub const BACKUP_DIR: &str = "/backups";
/// How long one backup may run before Kubernetes stops it (6 h).
pub const DEADLINE_SECS: i64 = 6 * 3600;
/// Finished jobs kept (each kind): their pods hold the termination messages the status reads.
pub const HISTORY: i32 = 3;

/// Name of the resource's backup CronJob (`<resource>-backup`, at most 47 characters).
pub fn cron_job_name(mp: &MediachainPeer) -> String {
    format!("{}-backup", naming::workload(mp))
}

/// Labels of the backup jobs and their pods.
pub fn labels(mp: &MediachainPeer) -> BTreeMap<String, String> {
    let mut labels = naming::labels(mp);
    labels.insert("app.kubernetes.io/name".into(), BACKUP_APP.into());
    labels.insert("app.kubernetes.io/component".into(), "backup".into());
    labels
}

/// The label selector of the resource's backup pods.
pub fn pod_selector(mp: &MediachainPeer) -> String {
    format!(
        "app.kubernetes.io/name={BACKUP_APP},app.kubernetes.io/instance={}",
        naming::workload(mp)
    )
}

/// The backup CronJob, when `spec.backup` asks for one.
pub fn cron_job(valid: &Valid, owner: &OwnerReference, settings: &Settings) -> Option<CronJob> {
    let mp = &valid.resource;
    let spec = mp.spec.backup.as_ref()?;
    let peer = format!(
        "http://{}.{}.svc.{}:{HTTP_PORT}",
        naming::workload(mp),
        valid.namespace,
        settings.cluster_domain
    );
    let mount = |name: &str, path: &str| VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        ..VolumeMount::default()
    };
    let container = Container {
        name: "backup".into(),
        image: Some(mp.spec.image.clone()),
        image_pull_policy: mp.spec.image_pull_policy.clone(),
        args: Some(
            [
                "backup",
                "--peer",
                &peer,
                "--dir",
                BACKUP_DIR,
                "--keep",
                &spec.keep.to_string(),
                "--report",
                "/dev/termination-log",
            ]
            .map(String::from)
            .to_vec(),
        ),
        termination_message_policy: Some("File".into()),
        security_context: Some(container_security()),
        volume_mounts: Some(vec![mount("backups", BACKUP_DIR), mount("tmp", "/tmp")]),
        ..Container::default()
    };
    let pull_secrets = &mp.spec.placement.image_pull_secrets;
    let pod = PodSpec {
        restart_policy: Some("Never".into()),
        automount_service_account_token: Some(false),
        enable_service_links: Some(false),
        security_context: Some(pod_security()),
        image_pull_secrets: (!pull_secrets.is_empty()).then(|| pull_secrets.clone()),
        containers: vec![container],
        volumes: Some(vec![
            Volume {
                name: "backups".into(),
                persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                    claim_name: spec.claim_name.clone(),
                    read_only: None,
                }),
                ..Volume::default()
            },
            Volume {
                name: "tmp".into(),
                empty_dir: Some(EmptyDirVolumeSource::default()),
                ..Volume::default()
            },
        ]),
        ..PodSpec::default()
    };
    let labelled = || ObjectMeta {
        labels: Some(labels(mp)),
        ..ObjectMeta::default()
    };
    Some(CronJob {
        metadata: ObjectMeta {
            name: Some(cron_job_name(mp)),
            namespace: Some(valid.namespace.clone()),
            owner_references: Some(vec![owner.clone()]),
            ..labelled()
        },
        spec: Some(CronJobSpec {
            schedule: spec.schedule.clone(),
            suspend: Some(spec.suspend),
            // One backup at a time: a slow one delays the next instead of doubling the load.
            concurrency_policy: Some("Forbid".into()),
            starting_deadline_seconds: Some(600),
            successful_jobs_history_limit: Some(HISTORY),
            failed_jobs_history_limit: Some(HISTORY),
            job_template: JobTemplateSpec {
                metadata: Some(labelled()),
                spec: Some(JobSpec {
                    // A failure is reported at once; the next scheduled run is the retry.
                    backoff_limit: Some(0),
                    active_deadline_seconds: Some(DEADLINE_SECS),
                    template: PodTemplateSpec {
                        metadata: Some(labelled()),
                        spec: Some(pod),
                    },
                    ..JobSpec::default()
                }),
            },
            ..CronJobSpec::default()
        }),
        ..CronJob::default()
    })
}

/// Checks `spec.backup`: a five-field cron schedule (or a `@` macro such as `@daily`) and a
/// claim name.
pub fn check(spec: &crate::crd::BackupSpec) -> Result<(), String> {
    let fields = spec.schedule.split_whitespace().count();
    if !(fields == 5 || (fields == 1 && spec.schedule.trim().starts_with('@'))) {
        return Err(format!(
            "spec.backup.schedule `{}` is not a cron schedule such as `0 3 * * *` or `@daily`",
            spec.schedule
        ));
    }
    if spec.claim_name.is_empty() {
        return Err(
            "spec.backup.claimName is empty: name the PersistentVolumeClaim of the backups".into(),
        );
    }
    if spec.keep == 0 {
        return Err("spec.backup.keep must be at least 1".into());
    }
    Ok(())
}

/// One finished backup run, as its pod's status tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    /// The pod.
    pub pod: String,
    /// When its container finished, Unix seconds.
    pub finished: u64,
    /// Its exit code.
    pub exit_code: i32,
    /// Its termination message (the report line), as written.
    pub message: String,
}

/// The finished runs among `pods` (pods still running, or without a terminated container, are
/// left out).
pub fn runs(pods: &[Pod]) -> Vec<Run> {
    pods.iter()
        .filter_map(|pod| {
            let status = pod.status.as_ref()?.container_statuses.as_ref()?;
            let done = status.iter().find(|c| c.name == "backup")?;
            let terminated = done.state.as_ref()?.terminated.as_ref()?;
            Some(Run {
                pod: pod.metadata.name.clone().unwrap_or_default(),
                finished: terminated
                    .finished_at
                    .as_ref()
                    .and_then(|t| u64::try_from(t.0.timestamp()).ok())
                    .unwrap_or(0),
                exit_code: terminated.exit_code,
                message: terminated.message.clone().unwrap_or_default(),
            })
        })
        .collect()
}

/// `status.lastBackup` after `runs`, and the `BackupFailing` condition set in `conditions`
/// (removed when the resource has no `spec.backup`; the last backup is kept then: a restore
/// still needs to know it).
pub fn update_status(
    mp: &MediachainPeer,
    previous: Option<&BackupStatus>,
    runs: &[Run],
    conditions: &mut Vec<Condition>,
    now: DateTime<Utc>,
) -> Option<BackupStatus> {
    if mp.spec.backup.is_none() {
        conditions.retain(|c| c.type_ != BACKUP_FAILING);
        return previous.cloned();
    }
    let (last, condition) = observe(previous, runs);
    let condition = condition.or_else(|| {
        let pending = (
            false,
            "NoBackupYet",
            "no backup has finished yet".to_string(),
        );
        (!conditions.iter().any(|c| c.type_ == BACKUP_FAILING)).then_some(pending)
    });
    if let Some(condition) = condition {
        status::set(
            conditions,
            BACKUP_FAILING,
            condition,
            mp.meta().generation,
            now,
        );
    }
    last
}

/// What the runs mean for the status: the newest successful backup (or `previous`, when it is
/// newer or no run succeeded), and the `BackupFailing` condition from the newest run (`None`:
/// no run has finished, the condition stays as it was).
pub fn observe(
    previous: Option<&BackupStatus>,
    runs: &[Run],
) -> (Option<BackupStatus>, Option<(bool, &'static str, String)>) {
    let mut sorted: Vec<&Run> = runs.iter().collect();
    sorted.sort_by_key(|r| (r.finished, r.pod.clone()));
    let mut last = previous.cloned();
    for run in &sorted {
        let Ok(Report::Written {
            file,
            time: at,
            height,
            root,
            bytes,
            ..
        }) = serde_json::from_str::<Report>(run.message.trim())
        else {
            continue;
        };
        let at = time(at).to_rfc3339();
        if run.exit_code == 0 && last.as_ref().is_none_or(|l| l.time <= at) {
            last = Some(BackupStatus {
                time: at,
                height,
                root,
                size_bytes: bytes,
                file,
            });
        }
    }
    let condition = sorted.last().map(|run| {
        let when = time(run.finished).to_rfc3339();
        if run.exit_code == 0 {
            let what = last.as_ref().map_or_else(String::new, |l| {
                format!(
                    ": {} at height {}, {} bytes",
                    l.file, l.height, l.size_bytes
                )
            });
            (
                false,
                "BackupSucceeded",
                format!("the last backup ({}) succeeded at {when}{what}", run.pod),
            )
        } else {
            let why = match serde_json::from_str::<Report>(run.message.trim()) {
                Ok(Report::Failed { error }) => error,
                _ if run.message.trim().is_empty() => "no report (killed or out of time?)".into(),
                _ => run.message.trim().to_string(),
            };
            (
                true,
                "BackupFailed",
                format!(
                    "backup {} failed at {when} (exit code {}): {why}",
                    run.pod, run.exit_code
                ),
            )
        }
    });
    (last, condition)
}
