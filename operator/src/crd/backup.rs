//! `spec.backup`, `spec.bootstrap` and `status.lastBackup`: scheduled backups of the journal to
//! CAR files and new peers seeded from one (docs/backup.md). Types only.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Scheduled backups: a CronJob runs `mediachain-peer backup` against the resource's client
/// Service, writing `journal-<time>.car` (and `latest.car`, a link to the newest) to a volume.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupSpec {
    /// When to back up, in cron syntax (the CronJob's schedule), e.g. `0 3 * * *`.
    #[schemars(length(min = 1))]
    pub schedule: String,
    /// How many backups to keep (the newest); older ones are deleted after each backup.
    #[serde(default = "default_keep")]
    #[schemars(range(min = 1, max = 1000))]
    pub keep: u32,
    /// The PersistentVolumeClaim (same namespace, created by you) the backups are written to.
    /// It outlives the resource: restore a new resource from it with `spec.bootstrap.file`.
    pub claim_name: String,
    /// Pause the schedule (running backups finish).
    #[serde(default)]
    pub suspend: bool,
}

/// Seed every new peer's empty data directory from a CAR export before it first starts (an
/// init container running `mediachain-peer import --if-empty`, which verifies every block and
/// object). A peer that already has data is left as it is. Give exactly one of `file` and `url`.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BootstrapSpec {
    /// A CAR file on a PersistentVolumeClaim, e.g. a backup (`latest.car`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<BootstrapFile>,
    /// The URL of a CAR export inside the cluster, e.g.
    /// `http://other-network:8080/v1/journal/export`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// A CAR file on a volume.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BootstrapFile {
    /// The PersistentVolumeClaim holding it (mounted read-only).
    pub claim_name: String,
    /// Its path inside the volume, e.g. `latest.car`.
    pub path: String,
}

/// The newest successful backup, as the backup job reported it.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupStatus {
    /// When it was taken (RFC 3339).
    pub time: String,
    /// Height of the exported block (the file's root).
    pub height: u64,
    /// CID of that block.
    pub root: String,
    /// Size of the file, bytes.
    pub size_bytes: u64,
    /// File name in the backup volume.
    pub file: String,
}

fn default_keep() -> u32 {
    7
}
