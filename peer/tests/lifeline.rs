//! The fleet's hold on its processes (docs/testing.md): processes a test starts die with it
//! (`mediachain::lifeline`: a helper test process starts a fleet peer, is SIGKILLed, and the peer
//! exits by itself; so do the peers of a SIGKILLed `mediachain devnet`), and a port taken by
//! another process is handled, not guessed around.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::fleet::Fleet;
use support::listening::overlay_port;

/// Names the directory where the helper reports the peer it started (set only for the helper).
const HELPER_ENV: &str = "MEDIACHAIN_LIFELINE_HELPER_DIR";
const HELPER: &str = "helper_starts_a_peer_and_waits_to_be_killed";

#[tokio::test]
#[ignore = "the helper process of a_peer_dies_with_its_killed_test_process, run by it"]
async fn helper_starts_a_peer_and_waits_to_be_killed() {
    let out = PathBuf::from(std::env::var(HELPER_ENV).expect("run only as the helper"));
    let mut fleet = Fleet::new(1);
    fleet.start(0);
    fleet.wait_ready(&[0]).await;
    let pid = fleet.peers[0].child.as_ref().unwrap().id();
    let report = format!("{pid}\n{}\n", fleet.path().display());
    std::fs::write(out.join("peer.tmp"), report).unwrap();
    std::fs::rename(out.join("peer.tmp"), out.join("peer")).unwrap();
    // Deliberately waits to be killed (bounded, should the test that runs it be gone).
    tokio::time::sleep(Duration::from_secs(300)).await;
}

/// Kills the parent (the helper test process or devnet) and, if the check failed, the peer it
/// left behind.
struct Cleanup {
    parent: Child,
    peer: Option<u32>,
    fleet_dir: Option<PathBuf>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = self.parent.kill();
        let _ = self.parent.wait();
        if let Some(pid) = self.peer {
            if alive(pid) {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
            }
        }
        if let Some(dir) = &self.fleet_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// SIGKILLs `cleanup`'s parent (`what`, for messages) and sees its peer exit within 30 s through
/// its lifeline, as `peer_log` says.
fn kill_parent_and_see_peer_exit(cleanup: &mut Cleanup, what: &str, peer_log: &Path) {
    let pid = cleanup.peer.expect("the peer is known");
    cleanup.parent.kill().unwrap();
    cleanup.parent.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while alive(pid) {
        assert!(
            Instant::now() < deadline,
            "the peer {pid} of the SIGKILLed {what} was still running after 30 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = std::fs::read_to_string(peer_log).unwrap();
    assert!(
        log.contains("standard input closed (the parent process is gone)"),
        "the peer did not exit through its lifeline:\n{log}"
    );
}

/// Whether process `pid` exists and is not a zombie (an orphan may wait for its reaper).
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name.
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z') && !rest.starts_with('X')),
        Err(_) => false,
    }
}

fn read_report(dir: &Path, helper: &mut Child) -> (u32, PathBuf) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Ok(text) = std::fs::read_to_string(dir.join("peer")) {
            let mut lines = text.lines();
            let pid = lines.next().unwrap().parse().unwrap();
            return (pid, PathBuf::from(lines.next().unwrap()));
        }
        let log = || std::fs::read_to_string(dir.join("helper.log")).unwrap_or_default();
        if let Some(status) = helper.try_wait().unwrap() {
            panic!(
                "the helper exited ({status}) before starting its peer:\n{}",
                log()
            );
        }
        assert!(
            Instant::now() < deadline,
            "timed out after 120 s waiting for the helper to start a ready peer:\n{}",
            log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_peer_dies_with_its_killed_test_process() {
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
        parent: helper,
        peer: None,
        fleet_dir: None,
    };
    let (pid, fleet_dir) = read_report(dir.path(), &mut cleanup.parent);
    cleanup.peer = Some(pid);
    cleanup.fleet_dir = Some(fleet_dir.clone());
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    assert!(
        alive(pid) && String::from_utf8_lossy(&cmdline).contains("mediachain-peer"),
        "the helper's peer {pid} is not running"
    );

    // SIGKILL: the helper's Drop of its fleet never runs.
    kill_parent_and_see_peer_exit(&mut cleanup, "helper", &fleet_dir.join("peer0/peer.log"));
}

#[tokio::test]
async fn a_taken_port_moves_the_peer_after_retrying_and_restarts_keep_the_rest() {
    let mut fleet = Fleet::new(1);
    // Another process holds the overlay port chosen for the peer: the first start retries, then
    // moves to a new overlay port.
    let chosen = fleet.peers[0].p2p_port;
    let squatter = std::net::TcpListener::bind(("127.0.0.1", chosen)).unwrap();
    fleet.start(0);
    fleet.wait_ready(&[0]).await;
    assert_ne!(
        fleet.peers[0].p2p_port, chosen,
        "the peer moved off the taken port"
    );
    assert!(
        std::fs::read_to_string(fleet.peers[0].log())
            .unwrap()
            .contains("Address already in use"),
        "the first attempts failed on the taken port"
    );
    drop(squatter);

    // A restart keeps both ports; with its API port taken, it moves only that one.
    let (p2p, api) = (fleet.peers[0].p2p_port, fleet.peers[0].api_port);
    fleet.kill(0);
    fleet.start(0);
    fleet.wait_ready(&[0]).await;
    assert_eq!(
        (fleet.peers[0].p2p_port, fleet.peers[0].api_port),
        (p2p, api)
    );
    fleet.kill(0);
    let squatter = std::net::TcpListener::bind(("127.0.0.1", api)).unwrap();
    fleet.start(0);
    fleet.wait_ready(&[0]).await;
    assert_eq!(fleet.peers[0].p2p_port, p2p, "the overlay port is kept");
    assert_ne!(
        fleet.peers[0].api_port, api,
        "the API moved off the taken port"
    );
    drop(squatter);
}

/// The pid of the live `mediachain-peer` whose command line names `dir`, once there is one.
fn peer_under(dir: &Path) -> Option<u32> {
    let dir = dir.display().to_string();
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let pid = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            let cmdline = String::from_utf8_lossy(&cmdline);
            (cmdline.contains("mediachain-peer") && cmdline.contains(&dir) && alive(pid))
                .then_some(pid)
        })
}

#[test]
fn the_peers_of_a_killed_devnet_stop() {
    let dir = tempfile::tempdir().unwrap();
    let net = dir.path().join("net");
    let log = std::fs::File::create(dir.path().join("devnet.log")).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mediachain"));
    cmd.arg("devnet")
        .arg("--dir")
        .arg(&net)
        .args(["--peers", "1", "--block-interval", "200ms"])
        .args(["--api-port", &overlay_port().to_string()])
        .args(["--p2p-port", &overlay_port().to_string()])
        .args([
            "--registration-pow-bits",
            "8",
            "--transaction-pow-bits",
            "4",
        ])
        .env("MEDIACHAIN_PEER_BIN", env!("CARGO_BIN_EXE_mediachain-peer"))
        .stdout(log.try_clone().unwrap())
        .stderr(log);
    // Tied to this test too, should it die before it kills devnet.
    let devnet = mediachain::lifeline::tie(&mut cmd).spawn().unwrap();
    let mut cleanup = Cleanup {
        parent: devnet,
        peer: None,
        fleet_dir: None,
    };
    let devnet_log = || std::fs::read_to_string(dir.path().join("devnet.log")).unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !devnet_log().contains("devnet: serving") {
        if let Some(status) = cleanup.parent.try_wait().unwrap() {
            panic!("devnet exited ({status}) before serving:\n{}", devnet_log());
        }
        assert!(
            Instant::now() < deadline,
            "timed out after 120 s waiting for devnet to serve:\n{}",
            devnet_log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let pid = peer_under(&net).expect("devnet's peer is running");
    cleanup.peer = Some(pid);

    // SIGKILL: devnet cannot stop its peers itself.
    kill_parent_and_see_peer_exit(&mut cleanup, "devnet", &net.join("peer-0/peer.log"));
}
