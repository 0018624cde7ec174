//! Backup and bootstrap with real `mediachain-peer` processes: `export --data-dir` of a running
//! peer (which holds its datastore, so the export streams from its API), then a new peer whose
//! data directory was seeded by `import` joins and fetches only the blocks committed after the
//! export.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod support;

use std::process::Command;
use std::time::Duration;

use support::fleet::{metric_sum, Fleet};
use support::work::{committed_at, submit_insert};

/// Submits `n` inserts at `fleet`'s peer 0, each once the previous one is committed there (one
/// block each), and waits until every one of `peers` has committed them.
async fn write(
    fleet: &Fleet,
    peers: &[usize],
    name: &str,
    n: usize,
) -> Vec<mediachain::journal::TxId> {
    let clients: Vec<_> = peers.iter().map(|i| fleet.peers[*i].client()).collect();
    let mut ids = vec![];
    for k in 0..n {
        let id = submit_insert(&clients[0], &format!("{name} {k}")).await;
        fleet
            .wait_for(
                &format!("{name} {k} committed at peer {}", peers[0]),
                Duration::from_secs(60),
                || committed_at(&clients[..1], &id),
            )
            .await;
        ids.push(id);
    }
    for id in &ids {
        fleet
            .wait_for(
                &format!("{name} committed at {peers:?}"),
                Duration::from_secs(60),
                || committed_at(&clients, id),
            )
            .await;
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_peer_exports_and_a_peer_bootstrapped_from_the_file_fetches_only_later_blocks() {
    let mut fleet = Fleet::new(2);
    fleet.start_all();
    fleet.wait_ready(&[0, 1]).await;
    let mut ids = write(&fleet, &[0, 1], "before the backup", 3).await;

    // Export while peer 0 runs: its datastore is locked, so the CLI goes through its API.
    let file = fleet.path().join("backup.car");
    let output = Command::new(env!("CARGO_BIN_EXE_mediachain-peer"))
        .args(["export", "--data-dir"])
        .arg(fleet.peers[0].dir.join("data"))
        .arg("--out")
        .arg(&file)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("exporting through its API"), "{stderr}");
    let height: u64 = stdout
        .split("at height ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|h| h.parse().ok())
        .unwrap_or_else(|| panic!("no height in: {stdout}"));
    assert!(height >= 1, "{stdout}");

    // A new peer's data directory is seeded from the file, with the peer's own settings.
    let late = fleet.add_peer();
    let dir = fleet.peers[late].dir.clone();
    let output = Command::new(env!("CARGO_BIN_EXE_mediachain-peer"))
        .args([
            "import",
            "--network",
            "fleet",
            "--transaction-pow-bits",
            "4",
        ])
        .arg("--key")
        .arg(dir.join("peer.key"))
        .arg("--chain")
        .arg(dir.join("peer.chain"))
        .arg("--root-key")
        .arg(fleet.path().join("root.pub"))
        .arg("--data-dir")
        .arg(dir.join("data"))
        .arg(&file)
        .env_remove("MEDIACHAIN_SEEDS_FILE")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains(&format!("at height {height}")));

    // The network moves on, then the new peer starts.
    ids.extend(write(&fleet, &[0, 1], "after the backup", 2).await);
    let tip = fleet.peers[0].client().head().await.unwrap().height;
    assert!(tip > height);
    fleet.start(late);
    fleet.wait_ready(&[late]).await;
    let late_client = [fleet.peers[late].client()];
    for id in &ids {
        fleet
            .wait_for(
                "every transaction confirmed at the new peer",
                Duration::from_secs(60),
                || committed_at(&late_client, id),
            )
            .await;
    }
    // It had everything up to the backup's height: only the later blocks came from its peers.
    let received = metric_sum(
        &fleet.metrics(late).await,
        "mediachain_blocks_received_total",
    );
    assert!(
        received >= 1.0 && received <= (tip - height) as f64,
        "received {received} blocks; the backup was at {height}, the tip at {tip}\n{}",
        fleet.logs()
    );
}
