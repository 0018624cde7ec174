//! Crash safety of the datastore: what `mediachain store import` reported as durable is on disk
//! even when the process is killed with SIGKILL right after, mid-batch; and every upload a
//! `mediachain-peer` answered `201` is on disk when the peer is killed with SIGKILL while
//! concurrent uploads share their flushes (the store's group commit).

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mediachain::model::{codec, Cid, RAW};
use mediachain::store::Store;
use support::fleet::Fleet;

#[test]
fn objects_reported_durable_survive_a_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let export = dir.path().join("export");
    std::fs::create_dir(&export).unwrap();
    let mut files: Vec<(String, Vec<u8>)> = (0..3000u32)
        .map(|i| {
            let bytes =
                format!("crash-test object {i} {}", "x".repeat((i % 700) as usize)).into_bytes();
            (codec::cid_of(RAW, &bytes).to_string(), bytes)
        })
        .collect();
    for (name, bytes) in &files {
        std::fs::write(export.join(name), bytes).unwrap();
    }
    files.sort(); // import goes in file-name order

    let store_dir = dir.path().join("db");
    let mut child = mediachain::lifeline::tie(&mut Command::new(env!("CARGO_BIN_EXE_mediachain")))
        .args(["store", "import", "--batch", "10", "--store"])
        .arg(&store_dir)
        .arg(&export)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut durable = 0usize;
    for line in BufReader::new(child.stderr.take().unwrap()).lines() {
        let line = line.unwrap();
        if let Some(rest) = line.strip_prefix("imported ") {
            durable = rest.split('/').next().unwrap().parse().unwrap();
            if durable >= 500 {
                child.kill().unwrap(); // SIGKILL while the next batch is being written
                break;
            }
        }
    }
    child.wait().unwrap();
    assert!(
        durable >= 500,
        "the import reported progress before it was killed (got {durable})"
    );

    let store = Store::open(&store_dir, 1 << 20).unwrap();
    for (name, bytes) in &files[..durable] {
        let cid = name.as_str().try_into().unwrap();
        assert_eq!(
            store.get(&cid).unwrap().as_deref(),
            Some(bytes.as_slice()),
            "object {name} lost"
        );
    }
    assert!(
        store.len() < files.len(),
        "the process really died before finishing"
    );
}

/// Every blob a peer acknowledged as newly stored, with its bytes.
type Acknowledged = Mutex<Vec<(Cid, Vec<u8>)>>;

/// Uploaders sending distinct blobs at once, so that their writes share flushes. Most blobs are
/// small (1 KiB): sled keeps small writes in its in-memory log buffer until a flush, so an
/// upload answered before its flush would be lost by the kill (seen: 1-10 of ~300 lost when the
/// group commit skipped the flush). Every fourth is large (8 KiB, a file of its own, durable at
/// once), and must never be on disk without its upload record, or no quota would count it and
/// no collection would ever take it.
const UPLOADERS: usize = 8;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_answered_201_survive_a_sigkill_of_the_peer() {
    let mut fleet = Fleet::new(1);
    fleet.lift_client_limits();
    fleet.start(0);
    fleet.wait_ready(&[0]).await;
    let client = fleet.peers[0].client();
    let acknowledged: Arc<Acknowledged> = Arc::default();
    let uploaders: Vec<_> = (0..UPLOADERS)
        .map(|u| {
            let (client, acknowledged) = (client.clone(), acknowledged.clone());
            tokio::spawn(async move {
                for n in 0u32.. {
                    let mut bytes = format!("upload {u}/{n} ").into_bytes();
                    bytes.resize(if n % 4 == 3 { 8192 } else { 1024 }, b'.');
                    let cid = codec::cid_of(RAW, &bytes);
                    let sent = client.put_bytes("application/octet-stream", bytes.clone(), None);
                    match tokio::time::timeout(Duration::from_secs(20), sent).await {
                        Ok(Ok(stored)) => {
                            assert!(stored.created, "upload {u}/{n} was new");
                            assert_eq!(stored.cid, cid.to_string());
                            acknowledged.lock().unwrap().push((cid, bytes));
                        }
                        // The peer was killed (or never answered): this upload is not known
                        // to be durable.
                        _ => return,
                    }
                }
            })
        })
        .collect();
    fleet
        .wait_for("300 acknowledged uploads", Duration::from_secs(60), || {
            let count = acknowledged.lock().unwrap().len();
            async move { count >= 300 }
        })
        .await;
    // SIGKILL while the uploaders are still sending.
    fleet.kill(0);
    for uploader in uploaders {
        tokio::time::timeout(Duration::from_secs(30), uploader)
            .await
            .expect("an uploader hung after the kill")
            .unwrap();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();

    let store = Store::open(&fleet.peers[0].dir.join("data").join("store"), 1 << 20).unwrap();
    let lost: Vec<String> = acknowledged
        .iter()
        .filter(|(cid, bytes)| store.get(cid).unwrap().as_deref() != Some(bytes.as_slice()))
        .map(|(cid, _)| cid.to_string())
        .collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged uploads lost: {lost:?}",
        lost.len(),
        acknowledged.len()
    );
    // Large objects here are uploads only: each is counted by its record.
    let large: u64 = store
        .iter()
        .map(|entry| entry.unwrap().1.len() as u64)
        .filter(|&size| size > mediachain::store::LARGE_OBJECT_BYTES as u64)
        .sum();
    let (_, recorded) = store.upload_usage("127.0.0.1".parse().unwrap());
    assert!(large > 0, "large uploads were stored");
    assert!(
        recorded >= large,
        "{large} bytes of large objects on disk, only {recorded} bytes recorded as uploads"
    );
}
