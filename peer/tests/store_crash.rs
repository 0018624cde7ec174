//! Crash safety of the datastore: what `mediachain store import` reported as durable is on disk
//! even when the process is killed with SIGKILL right after, mid-batch.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use mediachain::model::{codec, RAW};
use mediachain::store::Store;

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
