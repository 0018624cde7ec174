//! Where the binaries come from, and tests skipped on request.

use std::fs;
use std::io;
use std::path::PathBuf;

use crate::{Error, Result, ETCD_BIN, KUBE_APISERVER_BIN, SKIP_ENV};

/// Paths of the binaries the harness runs.
#[derive(Debug, Clone)]
pub struct Binaries {
    /// `kube-apiserver`.
    pub kube_apiserver: PathBuf,
    /// `etcd`.
    pub etcd: PathBuf,
}

impl Binaries {
    /// Reads `KUBE_APISERVER_BIN` and `ETCD_BIN`, checking that both files exist.
    pub fn from_env() -> Result<Self> {
        Self::from_vars(|var| std::env::var_os(var))
    }

    /// As [`Binaries::from_env`], with the variables read through `var` (a test's environment).
    pub fn from_vars(var: impl Fn(&str) -> Option<std::ffi::OsString>) -> Result<Self> {
        Ok(Self {
            kube_apiserver: binary_from_var(KUBE_APISERVER_BIN, var(KUBE_APISERVER_BIN))?,
            etcd: binary_from_var(ETCD_BIN, var(ETCD_BIN))?,
        })
    }
}

fn binary_from_var(var: &'static str, value: Option<std::ffi::OsString>) -> Result<PathBuf> {
    let value = value.ok_or_else(|| Error::MissingBinary {
        var,
        problem: "is not set".into(),
    })?;
    let path = PathBuf::from(value);
    if !path.is_file() {
        return Err(Error::MissingBinary {
            var,
            problem: format!("names {}, which is not a file", path.display()),
        });
    }
    Ok(path)
}

/// True when `MEDIACHAIN_SKIP_KUBE` asks to skip tests needing a real API server.
pub fn skip_requested() -> bool {
    matches!(
        std::env::var(SKIP_ENV).as_deref(),
        Ok("1") | Ok("true") | Ok("yes")
    )
}

/// Environment variable naming a file where each skipped test appends one `SKIPPED:` line
/// (`.ci/run` sets it, lists the lines and counts those tests as skipped, not passed).
pub const SKIP_LOG_ENV: &str = "MEDIACHAIN_SKIP_LOG";

/// Says that the running test is skipped and why: prints `SKIPPED: test <name>: <why>` and
/// appends that line to the file named by `MEDIACHAIN_SKIP_LOG`, if set.
pub fn record_skip(why: &str) {
    let test = std::thread::current()
        .name()
        .unwrap_or("(unnamed)")
        .to_string();
    let line = format!("SKIPPED: test {test}: {why}");
    eprintln!("{line}");
    if let Some(path) = std::env::var_os(SKIP_LOG_ENV) {
        let appended = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut f| io::Write::write_all(&mut f, format!("{line}\n").as_bytes()));
        if let Err(e) = appended {
            panic!(
                "cannot record the skip in {}: {e}",
                PathBuf::from(path).display()
            );
        }
    }
}
