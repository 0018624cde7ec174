//! The harness's processes die with the test (docs/testing.md): a helper test process starts
//! etcd, kube-apiserver and a kube-controller-manager and is SIGKILLed, so that no `Drop` runs;
//! their supervisors must kill all three. Needs the harness binaries (see tests/apiserver.rs);
//! `MEDIACHAIN_SKIP_KUBE=1` skips.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kube_harness::ApiServer;

/// Names the directory where the helper reports its harness directory (set only for the helper).
const HELPER_ENV: &str = "KUBE_HARNESS_SUPERVISION_HELPER_DIR";
const HELPER: &str = "helper_starts_the_servers_and_waits_to_be_killed";

#[tokio::test]
#[ignore = "the helper process of the_servers_die_with_a_killed_test_process, run by it"]
async fn helper_starts_the_servers_and_waits_to_be_killed() {
    let out = PathBuf::from(std::env::var(HELPER_ENV).expect("run only as the helper"));
    let server = ApiServer::start().await.unwrap();
    let _manager = server
        .start_controller_manager(&["garbagecollector"])
        .unwrap();
    std::fs::write(out.join("dir.tmp"), server.dir().display().to_string()).unwrap();
    std::fs::rename(out.join("dir.tmp"), out.join("dir")).unwrap();
    // Deliberately waits to be killed (bounded, should the test that runs it be gone).
    tokio::time::sleep(Duration::from_secs(300)).await;
}

/// Live (not zombie) processes whose command line mentions `needle`: pid and command line.
fn processes_mentioning(needle: &str) -> Vec<(u32, String)> {
    let mut found = vec![];
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        let live = std::fs::read_to_string(entry.path().join("stat")).is_ok_and(|stat| {
            stat.rsplit_once(") ")
                .is_some_and(|(_, rest)| !rest.starts_with('Z') && !rest.starts_with('X'))
        });
        if live && cmdline.contains(needle) {
            found.push((pid, cmdline));
        }
    }
    found
}

/// Kills the helper and, if the check failed, whatever of the harness it left behind.
struct Cleanup {
    helper: Child,
    harness_dir: Option<PathBuf>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = self.helper.kill();
        let _ = self.helper.wait();
        if let Some(dir) = &self.harness_dir {
            for (pid, _) in processes_mentioning(&dir.display().to_string()) {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
            }
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn read_report(dir: &Path, helper: &mut Child) -> PathBuf {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        if let Ok(text) = std::fs::read_to_string(dir.join("dir")) {
            return PathBuf::from(text);
        }
        let log = || std::fs::read_to_string(dir.join("helper.log")).unwrap_or_default();
        if let Some(status) = helper.try_wait().unwrap() {
            panic!(
                "the helper exited ({status}) before starting the servers:\n{}",
                log()
            );
        }
        assert!(
            Instant::now() < deadline,
            "timed out after 180 s waiting for the helper to start the servers:\n{}",
            log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn the_servers_die_with_a_killed_test_process() {
    if kube_harness::skip_requested() {
        kube_harness::record_skip("MEDIACHAIN_SKIP_KUBE is set, no real kube-apiserver started");
        return;
    }
    if let Err(e) = kube_harness::Binaries::from_env() {
        panic!("cannot start the kube-apiserver harness: {e}");
    }
    let dir = tempfile::tempdir().unwrap();
    let log = std::fs::File::create(dir.path().join("helper.log")).unwrap();
    let helper = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", HELPER, "--ignored", "--nocapture"])
        .env(HELPER_ENV, dir.path())
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let mut cleanup = Cleanup {
        helper,
        harness_dir: None,
    };
    let harness_dir = read_report(dir.path(), &mut cleanup.helper);
    cleanup.harness_dir = Some(harness_dir.clone());
    let needle = harness_dir.display().to_string();
    let running = processes_mentioning(&needle);
    for program in ["etcd", "kube-apiserver", "kube-controller-manager"] {
        assert!(
            running.iter().any(|(_, cmdline)| cmdline
                .split(' ')
                .next()
                .is_some_and(|exe| exe.ends_with(program))),
            "no {program} of the helper is running: {running:#?}"
        );
    }

    cleanup.helper.kill().unwrap(); // SIGKILL: the helper's Drop of its servers never runs
    cleanup.helper.wait().unwrap();

    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = processes_mentioning(&needle);
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "30 s after the helper was SIGKILLed, its processes still run: {left:#?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
