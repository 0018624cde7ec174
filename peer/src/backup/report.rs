//! The outcome of one scheduled backup (`mediachain-peer backup`), as the JSON line it writes
//! to its report file: Kubernetes keeps it as the backup container's termination message, and
//! the operator reads it from there into `status.lastBackup` and the `BackupFailing` condition.
//! Compiled without the node feature, so that the operator parses the very type the peer writes.

use serde::{Deserialize, Serialize};

/// The outcome of one backup: the JSON line of `--report`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Report {
    /// The backup was written.
    Written {
        /// File name in the backup directory.
        file: String,
        /// When the export started, Unix seconds.
        time: u64,
        /// Height of the exported block (the CAR root).
        height: u64,
        /// The root block's CID.
        root: String,
        /// Size of the file in bytes.
        bytes: u64,
        /// Backups deleted to keep the newest `--keep`.
        pruned: Vec<String>,
    },
    /// The backup failed; nothing was pruned.
    Failed {
        /// What failed.
        error: String,
    },
}
