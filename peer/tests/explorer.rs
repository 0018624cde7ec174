//! The explorer in a real browser: headless Chromium (Debian's package) driven by
//! playwright-core (`tests/explorer/explorer.mjs`; scripts/browser.sh installs both) against a
//! `mediachain devnet` of real peer processes. The page must show a transaction submitted after
//! it loaded (live, from the event stream), find its artefact by a word of its name through the
//! search box, and open its history; a screenshot is kept as a test artefact
//! (`<target dir>/test-artefacts/explorer.png`). Without the browser the test fails, unless
//! `MEDIACHAIN_SKIP_BROWSER=1` asks to skip it.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use mediachain::client::Client;
use mediachain::journal::Transaction;
use mediachain::model::{nil_cid, Artefact, CellKind, ChainCell, Cid, Entity, Object};
use mediachain::trust::SecretKey;

mod support;

use support::listening;

/// Longest any single step may take.
const PATIENCE: Duration = Duration::from_secs(120);

/// A devnet process: its peers serve until it is killed (their lifeline is its life).
struct Devnet {
    child: Child,
    api: u16,
}

impl Drop for Devnet {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `mediachain devnet` (2 peers) in `dir` and waits until its main job is confirmed,
/// on new ports when one was taken meanwhile (three tries).
fn devnet(dir: &Path) -> Devnet {
    let peer = assert_cmd::cargo::cargo_bin("mediachain-peer");
    for attempt in 0..3 {
        let (api, p2p) = (listening::free_ports(2), listening::free_ports(2));
        let log = dir.join(format!("devnet-{attempt}.log"));
        let out = std::fs::File::create(&log).unwrap();
        let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("mediachain"));
        cmd.current_dir(dir)
            .args(["devnet", "--dir", "net", "--peers", "2"])
            .args([
                "--api-port",
                &api.to_string(),
                "--p2p-port",
                &p2p.to_string(),
            ])
            .args([
                "--registration-pow-bits",
                "8",
                "--transaction-pow-bits",
                "4",
            ])
            .args(["--block-interval", "200ms"])
            .env("MEDIACHAIN_PEER_BIN", &peer)
            .stdout(out.try_clone().unwrap())
            .stderr(out);
        let child = mediachain::lifeline::tie(&mut cmd).spawn().unwrap();
        let mut devnet = Devnet { child, api };
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if text.contains("confirmed: transaction") {
                return devnet;
            }
            if devnet.child.try_wait().unwrap().is_some() {
                if text.contains("Address already in use") {
                    break;
                }
                panic!("devnet failed:\n{text}");
            }
            assert!(
                Instant::now() < deadline,
                "devnet not ready in 300 s:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    panic!("devnet found a port taken on three sets of free ports");
}

/// Inserts an artefact named `name` created by a new entity, through `url`; the transaction id.
async fn submit_artefact(url: &str, name: &str) -> String {
    let client = Client::new(url).unwrap();
    let key = SecretKey::generate();
    let (chain, _) = client.register(&key).await.unwrap();
    let put = |object: Object| {
        let client = &client;
        async move {
            let cid: Cid = client
                .put_object(&object)
                .await
                .unwrap()
                .cid
                .parse()
                .unwrap();
            cid
        }
    };
    let entity = put(Object::Entity(Entity::named("Explorer Test Author"))).await;
    let artefact = put(Object::Artefact(Artefact::named(name))).await;
    let created = ChainCell::new(CellKind::ArtefactCreatedBy { entity }, artefact, nil_cid());
    let cell = put(Object::Cell(created)).await;
    let now = mediachain::time::now();
    let entries = support::work::work_entries(entity, artefact, cell, now);
    let bits = client.info().await.unwrap().transaction_pow_bits;
    let tx = Transaction::create(&key, &chain, entries, now, bits).unwrap();
    client.submit(&tx).await.unwrap();
    tx.id().to_string()
}

/// Where the test keeps its screenshot.
fn artefacts_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("test-artefacts")
}

#[test]
fn the_explorer_shows_a_new_transaction_live_finds_its_artefact_and_opens_its_history() {
    let (Some(chromium), Some(playwright)) = (
        std::env::var_os("MEDIACHAIN_CHROMIUM"),
        std::env::var_os("MEDIACHAIN_PLAYWRIGHT"),
    ) else {
        support::skip::skip_or_fail(
            "MEDIACHAIN_SKIP_BROWSER",
            "no Chromium and playwright-core (run scripts/test.sh, or eval \"$(scripts/browser.sh)\")",
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let devnet = devnet(dir.path());
    let url = format!("http://127.0.0.1:{}", devnet.api);
    let screenshot = dir.path().join("explorer.png");
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/explorer/explorer.mjs");
    let mut cmd = Command::new("node");
    cmd.arg(script)
        .env("EXPLORER_URL", format!("{url}/"))
        .env("MEDIACHAIN_CHROMIUM", chromium)
        .env("MEDIACHAIN_PLAYWRIGHT", playwright)
        .env("EXPLORER_SCREENSHOT", &screenshot)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
    let mut browser = cmd.spawn().unwrap();
    let mut input = browser.stdin.take().unwrap();
    let (said, lines) = mpsc::channel();
    let output = BufReader::new(browser.stdout.take().unwrap());
    std::thread::spawn(move || {
        for line in output.lines().map_while(Result::ok) {
            let _ = said.send(line);
        }
    });
    let expect = |word: &str| {
        let line = lines
            .recv_timeout(PATIENCE)
            .unwrap_or_else(|_| panic!("the browser script said nothing for {PATIENCE:?}"));
        assert_eq!(line, word, "the browser script failed");
    };

    expect("READY");
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let name = format!("Lighthouse Nocturne {stamp}");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let id = runtime.block_on(submit_artefact(&url, &name));
    writeln!(input, "TX {id} nocturne {name}").unwrap();
    expect("DONE");
    assert!(browser.wait().unwrap().success());

    let png = std::fs::read(&screenshot).unwrap();
    assert!(png.starts_with(b"\x89PNG"), "not a PNG screenshot");
    let kept = artefacts_dir();
    std::fs::create_dir_all(&kept).unwrap();
    std::fs::write(kept.join("explorer.png"), &png).unwrap();
    eprintln!("screenshot kept at {}", kept.join("explorer.png").display());
}
