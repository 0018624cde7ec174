//! Skips that must be asked for: a test that cannot run its real check fails, unless the
//! variable naming that skip is `1` (CI never sets one). A skipped test prints
//! `SKIPPED: test <name>: <why>` and appends that line to `$MEDIACHAIN_SKIP_LOG`, so that `.ci/run`
//! lists it and counts it as skipped, not passed (the same format as kube-harness's skips).

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;

/// Returns (after saying so) when `var=1` asks to skip the running test; otherwise fails the test
/// with `why` and the variable that would skip it.
pub fn skip_or_fail(var: &str, why: &str) {
    if std::env::var(var).as_deref() != Ok("1") {
        panic!("{why} ({var}=1 skips this test)");
    }
    let test = std::thread::current()
        .name()
        .unwrap_or("(unnamed)")
        .to_string();
    let line = format!("SKIPPED: test {test}: {why} ({var}=1)");
    eprintln!("{line}");
    if let Some(path) = std::env::var_os("MEDIACHAIN_SKIP_LOG") {
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .expect("open MEDIACHAIN_SKIP_LOG");
        writeln!(log, "{line}").expect("append to MEDIACHAIN_SKIP_LOG");
    }
}
