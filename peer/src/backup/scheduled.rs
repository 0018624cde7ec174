//! `mediachain-peer backup`: one scheduled backup, as the operator's CronJob runs it. Exports a
//! peer's journal (`export --peer`) into a directory under a name that sorts by time, points
//! `latest.car` at it (a hard link, replaced atomically), deletes all but the newest `--keep`
//! backups, and reports the outcome as one JSON line (`--report`, e.g. `/dev/termination-log`,
//! where Kubernetes keeps it as the container's termination message for the operator to read).
//!
//! Only files named `journal-<time>.car` (and their `.partial` leftovers) are ever deleted.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::SystemTime;

use super::cli::{export_to_file, ExportArgs};
use super::report::Report;

/// Prefix of the backup files' names.
pub const PREFIX: &str = "journal-";
/// Suffix of the backup files' names.
pub const SUFFIX: &str = ".car";
/// The hard link to the newest backup.
pub const LATEST: &str = "latest.car";

/// `mediachain-peer backup`.
#[derive(Debug, clap::Args)]
pub struct BackupArgs {
    /// The peer (or the network's client Service) to export from, e.g. http://sample:8080.
    #[arg(long)]
    pub peer: String,
    /// The directory of the backups (a mounted volume).
    #[arg(long)]
    pub dir: PathBuf,
    /// How many backups to keep: older `journal-*.car` files are deleted.
    #[arg(long, default_value_t = 7, value_parser = clap::value_parser!(u32).range(1..))]
    pub keep: u32,
    /// Where to write the outcome as one JSON line, e.g. /dev/termination-log.
    #[arg(long)]
    pub report: Option<PathBuf>,
}

/// The file name of a backup started at `at`: `journal-2026-12-02T01-15-00Z.car` (names sort
/// in time order).
pub fn file_name(at: SystemTime) -> String {
    let stamp = humantime::format_rfc3339_seconds(at).to_string();
    format!("{PREFIX}{}{SUFFIX}", stamp.replace(':', "-"))
}

/// Whether `name` is a backup file's name.
fn is_backup(name: &str) -> bool {
    name.starts_with(PREFIX) && name.ends_with(SUFFIX) && name.len() > PREFIX.len() + SUFFIX.len()
}

/// The backups in `dir` beyond the newest `keep`, oldest first.
pub fn beyond(dir: &Path, keep: usize) -> std::io::Result<Vec<String>> {
    let mut names: Vec<String> = std::fs::read_dir(dir)?
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| is_backup(name))
        .collect();
    names.sort();
    let extra = names.len().saturating_sub(keep);
    names.truncate(extra);
    Ok(names)
}

/// Deletes leftovers of interrupted backups (`journal-*.car.partial`).
fn remove_partials(dir: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if name.starts_with(PREFIX) && name.ends_with(".car.partial") {
            std::fs::remove_file(dir.join(&name))?;
        }
    }
    Ok(())
}

/// Points `dir/latest.car` at `file` (a hard link made under a temporary name, then renamed
/// over the old one: readers see the old or the new backup, never none).
fn link_latest(dir: &Path, file: &str) -> std::io::Result<()> {
    let tmp = dir.join(format!("{LATEST}.tmp"));
    let _ = std::fs::remove_file(&tmp);
    std::fs::hard_link(dir.join(file), &tmp)?;
    std::fs::rename(&tmp, dir.join(LATEST))
}

async fn run_backup(args: &BackupArgs, at: SystemTime) -> Result<Report, String> {
    let io = |what: &str, e: std::io::Error| format!("{what} in {}: {e}", args.dir.display());
    remove_partials(&args.dir).map_err(|e| io("removing leftovers", e))?;
    let file = file_name(at);
    let out = args.dir.join(&file);
    let export = ExportArgs {
        data_dir: None,
        peer: Some(args.peer.clone()),
        out: out.clone(),
        to_height: None,
    };
    let written = export_to_file(&export).await?;
    let bytes = std::fs::metadata(&out)
        .map_err(|e| io("reading the size of the backup", e))?
        .len();
    link_latest(&args.dir, &file).map_err(|e| io("linking latest.car", e))?;
    let keep = usize::try_from(args.keep).unwrap_or(usize::MAX);
    let pruned = beyond(&args.dir, keep).map_err(|e| io("listing backups", e))?;
    for old in &pruned {
        std::fs::remove_file(args.dir.join(old)).map_err(|e| io("pruning backups", e))?;
    }
    let time = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    Ok(Report::Written {
        file,
        time,
        height: written.height,
        root: written.root.to_string(),
        bytes,
        pruned,
    })
}

/// Runs `mediachain-peer backup`: 0 written, 1 failed (the report says why either way).
pub fn backup(args: BackupArgs) -> ExitCode {
    let at = SystemTime::now();
    let outcome = super::cli::runtime().and_then(|rt| rt.block_on(run_backup(&args, at)));
    let (report, code) = match outcome {
        Ok(report) => (report, ExitCode::SUCCESS),
        Err(error) => {
            eprintln!("error: {error}");
            // Kubernetes keeps at most 4 KiB of a termination message.
            let error = error.chars().take(2000).collect();
            (Report::Failed { error }, ExitCode::from(1))
        }
    };
    let line = serde_json::to_string(&report)
        .unwrap_or_else(|e| format!("{{\"failed\":{{\"error\":\"{e}\"}}}}"));
    println!("{line}");
    if let Some(path) = &args.report {
        if let Err(e) = std::fs::write(path, format!("{line}\n")) {
            eprintln!("error: writing the report to {}: {e}", path.display());
            return ExitCode::from(1);
        }
    }
    code
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::time::Duration;

    #[test]
    fn names_sort_in_time_order_and_only_backups_are_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let names: Vec<String> = [0u64, 59, 3600, 86_400 * 40]
            .iter()
            .map(|s| file_name(start + Duration::from_secs(*s)))
            .collect();
        assert_eq!(names[0], "journal-2027-01-15T08-00-00Z.car");
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(sorted, names, "lexical order is time order");
        for name in names.iter().rev() {
            std::fs::write(dir.path().join(name), b"car").unwrap();
        }
        for other in [
            "latest.car",
            "notes.txt",
            "journal-.car",
            "journal-x.car.partial",
        ] {
            std::fs::write(dir.path().join(other), b"x").unwrap();
        }
        assert_eq!(beyond(dir.path(), 2).unwrap(), names[..2].to_vec());
        assert_eq!(beyond(dir.path(), 4).unwrap(), Vec::<String>::new());
        remove_partials(dir.path()).unwrap();
        assert!(!dir.path().join("journal-x.car.partial").exists());
        assert!(dir.path().join("latest.car").exists() && dir.path().join("notes.txt").exists());
    }

    #[test]
    fn latest_is_replaced_by_a_link_to_the_newest_backup() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("journal-a.car"), b"first").unwrap();
        std::fs::write(dir.path().join("journal-b.car"), b"second").unwrap();
        link_latest(dir.path(), "journal-a.car").unwrap();
        link_latest(dir.path(), "journal-b.car").unwrap();
        assert_eq!(std::fs::read(dir.path().join(LATEST)).unwrap(), b"second");
        // Pruning the old backup leaves latest intact.
        std::fs::remove_file(dir.path().join("journal-b.car")).unwrap();
        assert_eq!(std::fs::read(dir.path().join(LATEST)).unwrap(), b"second");
    }

    #[test]
    fn a_failed_backup_reports_why_and_prunes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let old = file_name(SystemTime::UNIX_EPOCH);
        std::fs::write(dir.path().join(&old), b"car").unwrap();
        let report = dir.path().join("termination-log");
        let args = BackupArgs {
            // Nothing listens on port 9 of loopback.
            peer: "http://127.0.0.1:9".into(),
            dir: dir.path().to_path_buf(),
            keep: 1,
            report: Some(report.clone()),
        };
        assert_eq!(backup(args), ExitCode::from(1));
        let line: Report = serde_json::from_str(&std::fs::read_to_string(report).unwrap()).unwrap();
        assert!(
            matches!(&line, Report::Failed { error } if error.contains("127.0.0.1:9")),
            "{line:?}"
        );
        assert!(dir.path().join(&old).exists(), "kept");
        let partials = std::fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".partial")
            })
            .count();
        assert_eq!(partials, 0, "no partial file left behind");
    }
}
