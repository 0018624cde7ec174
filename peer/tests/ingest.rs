//! `mediachain ingest` against a fleet of real peer processes: a catalogue with bad rows, and a
//! run killed mid-way then resumed, checked against what the peers' chains hold (every artefact
//! and every entity inserted exactly once).

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

#[path = "support/fleet.rs"]
mod fleet;
#[path = "support/listening.rs"]
mod listening;

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mediachain::client::Client;
use mediachain::trust::{keyfile, SecretKey};

/// A started 2-peer fleet and a registered client's key and chain in its directory.
async fn fleet_and_client() -> fleet::Fleet {
    let mut fleet = fleet::Fleet::new(2);
    fleet.start_all();
    fleet.wait_ready(&[0, 1]).await;
    let key = SecretKey::generate();
    let (chain, _) = fleet.peers[0].client().register(&key).await.unwrap();
    let dir = fleet.path().to_path_buf();
    std::fs::write(
        dir.join("client.key"),
        keyfile::to_plain_pem(&key).unwrap().as_bytes(),
    )
    .unwrap();
    std::fs::write(dir.join("client.chain"), chain.to_pem()).unwrap();
    fleet
}

fn ingest(fleet: &fleet::Fleet, input: &str, extra: &[&str]) -> Command {
    let peers = format!("{},{}", fleet.peers[0].api(), fleet.peers[1].api());
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mediachain"));
    cmd.current_dir(fleet.path())
        .args(["ingest", input, "--peers", &peers, "--json"])
        .args([
            "--map",
            "name=title",
            "--map",
            "creator=artist",
            "--map",
            "created=year",
        ])
        .args(extra);
    cmd
}

/// Runs to the end (bounded) and returns the JSON summary.
fn run(mut cmd: Command) -> serde_json::Value {
    let mut child = mediachain::lifeline::tie(&mut cmd)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(300);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "ingest did not finish in 300 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

/// Every `insert` on peer `client`'s chain: canonical -> how many times.
async fn inserts(client: &Client) -> HashMap<String, usize> {
    let mut count = HashMap::new();
    let mut from = 0;
    loop {
        let page = client.blocks(from, 100).await.unwrap().blocks;
        let Some(last) = page.last() else { break };
        from = last.height + 1;
        for entry in page.iter().flat_map(|b| &b.entries) {
            if entry.kind == "insert" {
                *count.entry(entry.reference.clone()).or_default() += 1;
            }
        }
    }
    count
}

/// Waits until both peers hold `n` inserts (the second may be a block behind).
async fn both_hold(fleet: &fleet::Fleet, n: usize) -> HashMap<String, usize> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let a = inserts(&fleet.peers[0].client()).await;
        let b = inserts(&fleet.peers[1].client()).await;
        if (a.len() >= n && a == b) || Instant::now() > deadline {
            assert_eq!(a, b, "both peers hold the same inserts");
            return a;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn write_csv(path: &Path, rows: usize, creators: usize) {
    let mut text = String::from("title,artist,year\n");
    for n in 0..rows {
        text.push_str(&format!("Work {n},Artist {},{}\n", n % creators, 1800 + n));
    }
    std::fs::write(path, text).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_catalogue_with_bad_rows_is_ingested_once_with_the_bad_rows_reported() {
    let fleet = fleet_and_client().await;
    let path = fleet.path().join("works.csv");
    write_csv(&path, 40, 7);
    // Bad rows: no title (line 42), a field missing (line 43), a title only (no creator).
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str(",Nobody,1900\nOnly two,fields\n\"Untitled, attributed\",,\n");
    std::fs::write(&path, text).unwrap();

    let summary = run(ingest(&fleet, "works.csv", &["--rows-per-tx", "6"]));
    assert_eq!(summary["rows_read"], 43, "{summary}");
    let skipped = summary["skipped"].as_array().unwrap();
    assert_eq!(skipped.len(), 2, "{summary}");
    assert_eq!(skipped[0]["line"], 42);
    assert!(skipped[0]["reason"]
        .as_str()
        .unwrap()
        .contains("no artefact name"));
    assert_eq!(skipped[1]["line"], 43);
    assert!(skipped[1]["reason"]
        .as_str()
        .unwrap()
        .contains("2 fields where the header has 3"));
    assert_eq!(summary["rows_failed"], 0, "{summary}");
    assert_eq!(summary["artefacts_committed"], 41, "{summary}");
    assert_eq!(summary["cells_committed"], 40, "{summary}");
    assert_eq!(summary["entities_committed"], 7, "{summary}");

    let held = both_hold(&fleet, 48).await;
    assert_eq!(held.len(), 48, "41 artefacts and 7 entities");
    assert!(
        held.values().all(|n| *n == 1),
        "each inserted once: {held:?}"
    );

    // Again: the journal says everything is done; nothing is sent.
    let again = run(ingest(&fleet, "works.csv", &[]));
    assert_eq!(again["rows_committed_before"], 41, "{again}");
    assert_eq!(
        again["rows_read"], 2,
        "only the bad rows are read again: {again}"
    );
    assert_eq!(again["rows_skipped"], 2, "{again}");
    assert_eq!(again["rows_failed"], 0, "{again}");
    assert_eq!(again["transactions_committed"], 0, "{again}");

    // Another catalogue naming the same artists and one more: those the index holds are
    // looked up and only linked (one new entity), whatever window of rows first meets them.
    let mut more = String::from("title,artist,year\n");
    for n in 0..16 {
        more.push_str(&format!("More {n},Artist {},{}\n", n % 8, 1900 + n));
    }
    std::fs::write(fleet.path().join("more.csv"), more).unwrap();
    let summary = run(ingest(&fleet, "more.csv", &["--rows-per-tx", "5"]));
    assert_eq!(summary["artefacts_committed"], 16, "{summary}");
    assert_eq!(summary["entities_committed"], 1, "{summary}");
    let held = both_hold(&fleet, 48 + 16 + 1).await;
    assert!(
        held.values().all(|n| *n == 1),
        "each inserted once: {held:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_killed_mid_way_resumes_without_duplicating_anything() {
    let fleet = fleet_and_client().await;
    let path = fleet.path().join("works.csv");
    let (rows, creators) = (400, 30);
    write_csv(&path, rows, creators);
    let journal = fleet.path().join("works.csv.journal");
    let slow = ["--rows-per-tx", "3", "--in-flight", "1"];

    let mut cmd = ingest(&fleet, "works.csv", &slow);
    let mut child = mediachain::lifeline::tie(&mut cmd)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let text = std::fs::read_to_string(&journal).unwrap_or_default();
        if text.matches("\"confirmed\"").count() >= 5 {
            break;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "ingest ended before it was killed"
        );
        assert!(
            Instant::now() < deadline,
            "no 5 confirmations in 120 s:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL: a crash, with transactions in flight
    child.wait().unwrap();

    let resumed = run(ingest(&fleet, "works.csv", &[]));
    let before = resumed["rows_committed_before"].as_u64().unwrap() as usize;
    assert!(before >= 15, "{resumed}");
    assert!(before < rows, "{resumed}");
    assert_eq!(resumed["rows_failed"], 0, "{resumed}");
    assert_eq!(
        resumed["artefacts_committed"].as_u64().unwrap() as usize + before,
        rows,
        "{resumed}"
    );
    let held = both_hold(&fleet, rows + creators).await;
    assert_eq!(held.len(), rows + creators, "every artefact and entity");
    assert!(
        held.values().all(|n| *n == 1),
        "each inserted once: {held:?}"
    );
}
