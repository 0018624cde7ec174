//! Backups as CAR files: `GET /v1/journal/export`, `mediachain-peer export` (from a stopped
//! peer's data directory, or through the running peer) and `mediachain-peer import` (every
//! refusal leaves the data directory as it was), against real in-process peers and sled files,
//! the CLI as a process, and kubo reading the export (`IPFS_BIN`, built by `e2e/tools.sh`).

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod support;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use assert_cmd::Command;
use futures::TryStreamExt;
use iroh_car::{CarHeader, CarReader, CarWriter};
use mediachain::client::Client;
use mediachain::daemon::local::{LocalOptions, LocalPeer};
use mediachain::journal::{Block, Index, IndexRead, Transaction};
use mediachain::model::{
    codec, nil_cid, Artefact, CellKind, ChainCell, Cid, Entity, JournalEntry, Meta, Object,
};
use mediachain::store::Store;
use mediachain::trust::{keyfile, Chain, PublicKey, SecretKey};

const NETWORK: &str = "local";
const TX_BITS: u8 = 4;

/// An in-process peer whose datastore is `<dir>/data/store` (the daemon's layout), with what
/// `mediachain-peer import` needs to verify its journal.
struct Fixture {
    dir: tempfile::TempDir,
    peer: Option<LocalPeer>,
    url: String,
    root: PublicKey,
    identity: (SecretKey, Chain),
    /// Every object the journal references, with its bytes, in the order written.
    objects: Vec<(Cid, Vec<u8>)>,
}

impl Fixture {
    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Stops the peer (and closes its datastore).
    async fn stop(&mut self) {
        if let Some(peer) = self.peer.take() {
            peer.stop().await;
        }
    }

    /// The export over HTTP.
    async fn export(&self) -> Vec<u8> {
        let response = http_export(&self.url, "").await;
        assert_eq!(response.status(), 200);
        response.bytes().await.unwrap().to_vec()
    }

    /// `mediachain-peer import` with this network's settings into `data_dir`.
    fn import(&self, data_dir: &Path, file: &Path, extra: &[&str]) -> Output {
        self.import_as(NETWORK, data_dir, file, extra)
    }

    /// `mediachain-peer import` as a peer of `network` (with this network's trust).
    fn import_as(&self, network: &str, data_dir: &Path, file: &Path, extra: &[&str]) -> Output {
        let id = self.dir.path().join("identity");
        std::fs::create_dir_all(&id).unwrap();
        let (key, chain) = &self.identity;
        keyfile::write_secret(
            &id.join("peer.key"),
            &keyfile::to_plain_pem(key).unwrap(),
            true,
        )
        .unwrap();
        std::fs::write(id.join("peer.chain"), chain.to_pem()).unwrap();
        Command::cargo_bin("mediachain-peer")
            .unwrap()
            .env_clear()
            .args(["import", "--transaction-pow-bits", "4"])
            .args(["--network", network])
            .arg("--key")
            .arg(id.join("peer.key"))
            .arg("--chain")
            .arg(id.join("peer.chain"))
            .arg("--root-key")
            .arg(self.root.to_string())
            .arg("--data-dir")
            .arg(data_dir)
            .args(extra)
            .arg(file)
            .timeout(Duration::from_secs(60))
            .output()
            .unwrap()
    }

    /// Writes `bytes` as a file and imports it into a fresh directory: the import must fail
    /// with `expected` in its message and leave nothing behind.
    fn refused(&self, bytes: &[u8], expected: &str) {
        let file = self.dir.path().join("bad.car");
        std::fs::write(&file, bytes).unwrap();
        let target = self.dir.path().join("restore");
        let output = self.import(&target, &file, &[]);
        let message = stderr(&output);
        assert_eq!(output.status.code(), Some(1), "{message}");
        assert!(
            message.contains(expected),
            "expected `{expected}` in: {message}"
        );
        assert!(
            !target.exists(),
            "a refused import leaves nothing: {:?}",
            listing(&target)
        );
        // Into an existing data directory with other files: they stay exactly as they were.
        std::fs::create_dir_all(target.join("keep")).unwrap();
        std::fs::write(target.join("keep/file"), b"unchanged").unwrap();
        let before = listing(&target);
        let output = self.import(&target, &file, &[]);
        assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
        assert_eq!(listing(&target), before);
        std::fs::remove_dir_all(&target).unwrap();
    }
}

/// A peer whose journal holds `works` blocks, each journaling an entity, an artefact and its
/// `artefactCreatedBy` cell, the last one also updated a second time (a chain of two cells);
/// the first artefact is over 4 KiB (a file in the store).
async fn fixture(works: usize) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let peer = LocalPeer::start(&dir.path().join("data/store"), LocalOptions::default())
        .await
        .unwrap();
    let client = Client::new(&peer.url).unwrap();
    let (url, root, identity) = (peer.url.clone(), peer.root.public(), peer.peer.clone());
    let key = SecretKey::generate();
    let (chain, _) = client.register(&key).await.unwrap();
    let mut objects = vec![];
    let mut put = |object: Object| {
        let encoded = object.encode().unwrap();
        objects.push((encoded.cid, encoded.bytes));
        (encoded.cid, object)
    };
    let mut txs = vec![];
    for n in 0..works {
        let (entity, e) = put(Object::Entity(Entity::named(&format!("author {n}"))));
        let mut work = Artefact::named(&format!("work {n}"));
        if n == 0 {
            // Over `LARGE_OBJECT_BYTES`: a file in the store, not in sled, exported all the same.
            work.meta = work
                .meta
                .with("description", &"a long description ".repeat(300));
        }
        let (artefact, a) = put(Object::Artefact(work));
        let (cell, c) = put(Object::Cell(
            ChainCell::new(CellKind::ArtefactCreatedBy { entity }, artefact, nil_cid())
                .with_meta(Meta::named(&format!("work {n}"))),
        ));
        let mut to_store = vec![e, a, c];
        let now = mediachain::time::now();
        let mut entries = support::work::work_entries(entity, artefact, cell, now);
        if n + 1 == works {
            let (second, s) = put(Object::Cell(ChainCell::new(
                CellKind::ArtefactUpdate,
                artefact,
                cell,
            )));
            to_store.push(s);
            entries.push(JournalEntry::Update {
                reference: artefact,
                chain: second,
                chain_previous: cell,
                timestamp: now,
            });
        }
        for object in &to_store {
            client.put_object(object).await.unwrap();
        }
        txs.push(Transaction::create(&key, &chain, entries, now, TX_BITS).unwrap());
    }
    for tx in &txs {
        // One block each: wait for the commit before the next.
        client.submit(tx).await.unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !client.status(&tx.id()).await.unwrap().is_committed() {
            assert!(
                std::time::Instant::now() < deadline,
                "transaction not committed"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    assert!(
        objects
            .iter()
            .any(|(_, bytes)| bytes.len() > mediachain::store::LARGE_OBJECT_BYTES),
        "the fixture holds a large object"
    );
    Fixture {
        dir,
        peer: Some(peer),
        url,
        root,
        identity,
        objects,
    }
}

/// Every section of a CAR file: the header's roots and the `(cid, bytes)` in order.
async fn read_car(bytes: &[u8]) -> (Vec<Cid>, Vec<(Cid, Vec<u8>)>) {
    let reader = CarReader::new(bytes).await.unwrap();
    let roots = reader.header().roots().to_vec();
    (roots, reader.stream().try_collect().await.unwrap())
}

async fn write_car(root: Cid, sections: &[(Cid, Vec<u8>)]) -> Vec<u8> {
    let mut out = vec![];
    let mut car = CarWriter::new(CarHeader::new_v1(vec![root]), &mut out);
    for (cid, bytes) in sections {
        car.write(*cid, bytes).await.unwrap();
    }
    car.finish().await.unwrap();
    out
}

async fn http_export(url: &str, query: &str) -> reqwest::Response {
    reqwest::get(format!("{url}/v1/journal/export{query}"))
        .await
        .unwrap()
}

/// A directory's entries, recursively, with file sizes (to show an import changed nothing).
fn listing(dir: &Path) -> Vec<(PathBuf, u64)> {
    let mut out = vec![];
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            let meta = entry.metadata().unwrap();
            out.push((path.clone(), if meta.is_dir() { 0 } else { meta.len() }));
            if meta.is_dir() {
                out.extend(listing(&path));
            }
        }
    }
    out.sort();
    out
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_export_holds_every_block_to_genesis_and_every_referenced_object() {
    let f = fixture(3).await;
    let head = Client::new(&f.url).unwrap().head().await.unwrap();
    assert_eq!(head.height, 3);
    let response = http_export(&f.url, "").await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "application/vnd.ipld.car; version=1"
    );
    assert_eq!(response.headers()["x-mediachain-height"], "3");
    let (roots, sections) = read_car(&response.bytes().await.unwrap()).await;
    assert_eq!(
        roots,
        vec![head.cid.parse::<Cid>().unwrap()],
        "the root is the tip"
    );
    assert_eq!(sections[0].0, roots[0], "the root block comes first");
    for (cid, bytes) in &sections {
        assert_eq!(
            codec::cid_of(cid.codec(), bytes),
            *cid,
            "every section matches its CID"
        );
    }
    // Every block down to genesis, each linked to the next.
    let blocks: Vec<Block> = sections
        .iter()
        .filter_map(|(_, b)| Block::from_bytes(b).ok())
        .collect();
    assert_eq!(
        blocks.iter().map(|b| b.height).collect::<Vec<_>>(),
        vec![3, 2, 1, 0]
    );
    for pair in blocks.windows(2) {
        assert_eq!(pair[0].chain, pair[1].cid());
    }
    // Every object the transactions reference, with the bytes the client wrote, and `nil`.
    for (cid, bytes) in &f.objects {
        let found = sections.iter().find(|(c, _)| c == cid);
        assert_eq!(
            found.map(|(_, b)| b),
            Some(bytes),
            "object {cid} is exported"
        );
    }
    assert!(sections.iter().any(|(c, _)| *c == nil_cid()));

    // toHeight: the root is the block at that height, and nothing above it is included.
    let response = http_export(&f.url, "?toHeight=1").await;
    assert_eq!(response.headers()["x-mediachain-height"], "1");
    let (roots, sections) = read_car(&response.bytes().await.unwrap()).await;
    assert_eq!(roots[0], blocks[2].cid());
    assert!(!sections
        .iter()
        .any(|(c, _)| *c == blocks[0].cid() || *c == blocks[1].cid()));
    assert!(
        sections.iter().any(|(c, _)| *c == f.objects[0].0),
        "block 1's objects"
    );
    assert!(
        !sections.iter().any(|(c, _)| *c == f.objects[3].0),
        "not block 2's"
    );

    let response = http_export(&f.url, "?toHeight=4").await;
    assert_eq!(response.status(), 404);
    assert!(response
        .text()
        .await
        .unwrap()
        .contains("above the journal's tip"));

    // A new peer's data directory is seeded straight from a running peer's export.
    let target = f.dir.path().join("seeded");
    let url = format!("{}/v1/journal/export", f.url);
    let output = f.import(&target, Path::new(&url), &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(String::from_utf8_lossy(&output.stdout).contains("at height 3"));
    assert!(target.join("store").is_dir());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_peers_directory_exports_by_cli_and_imports_into_the_same_journal() {
    let mut f = fixture(2).await;
    let api = f.export().await;
    f.stop().await;
    let out = f.dir.path().join("backup.car");
    let output = Command::cargo_bin("mediachain-peer")
        .unwrap()
        .args(["export", "--data-dir"])
        .arg(f.data())
        .arg("--out")
        .arg(&out)
        .timeout(Duration::from_secs(60))
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(String::from_utf8_lossy(&output.stdout).contains("at height 2"));
    assert_eq!(
        std::fs::read(&out).unwrap(),
        api,
        "the CLI and the API write the same bytes"
    );
    assert!(!f.dir.path().join("backup.car.partial").exists());

    let restored = f.dir.path().join("restored");
    let output = f.import(&restored, &out, &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(String::from_utf8_lossy(&output.stdout).contains("at height 2"));
    assert!(!restored.join("store.import").exists());
    // The same journal: same tip, same index, every object.
    let original = Store::open(&f.data().join("store"), 1 << 20).unwrap();
    let copy = Store::open(&restored.join("store"), 1 << 20).unwrap();
    let (o, c) = (original.index().unwrap(), copy.index().unwrap());
    assert_eq!(c.tip().unwrap(), o.tip().unwrap());
    assert_eq!(c.heads().unwrap(), o.heads().unwrap());
    assert_eq!(c.canonical_count().unwrap(), o.canonical_count().unwrap());
    for (cid, bytes) in &f.objects {
        assert_eq!(copy.get(cid).unwrap().as_ref(), Some(bytes));
    }
    drop((original, copy));

    // A data directory that holds a datastore is never overwritten; --if-empty makes it a no-op.
    let before = listing(&restored);
    let output = f.import(&restored, &out, &[]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("already holds a datastore"),
        "{}",
        stderr(&output)
    );
    let output = f.import(&restored, &out, &["--if-empty"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(listing(&restored), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_file_is_refused() {
    let f = fixture(2).await;
    let car = f.export().await;
    // Cut inside a section.
    f.refused(&car[..car.len() - 10], "truncated or corrupt at section");
    // Cut at a section boundary: the last sections (genesis and `nil`) are missing.
    let (roots, sections) = read_car(&car).await;
    let cut = write_car(roots[0], &sections[..sections.len() - 2]).await;
    f.refused(
        &cut,
        "is not in the file: the file is truncated or incomplete",
    );
    // Not a CAR file at all.
    f.refused(b"hello", "not a CAR v1 file");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupted_object_is_refused_by_its_cid() {
    let f = fixture(2).await;
    let (roots, mut sections) = read_car(&f.export().await).await;
    let (cid, _) = f.objects[1].clone();
    let section = sections.iter_mut().find(|(c, _)| *c == cid).unwrap();
    let last = section.1.len() - 1;
    section.1[last] ^= 1;
    let corrupted = write_car(roots[0], &sections).await;
    f.refused(
        &corrupted,
        &format!("object {cid} refused: object does not match its CID"),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_of_another_network_is_refused() {
    let f = fixture(1).await;
    let car = f.export().await;
    let file = f.dir.path().join("other.car");
    std::fs::write(&file, &car).unwrap();
    let target = f.dir.path().join("restore");
    let mut output = f.import(&target, &file, &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    std::fs::remove_dir_all(&target).unwrap();
    // The same file under another network's settings.
    output = f.import_as("elsewhere", &target, &file, &[]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("(network `local`), but network `elsewhere` starts at"),
        "{}",
        stderr(&output)
    );
    assert!(!target.exists());
}

/// Replaces the root block of `car` by `block` (and the root by its CID).
async fn with_root(car: &[u8], block: &Block) -> Vec<u8> {
    let (_, mut sections) = read_car(car).await;
    sections[0] = (block.cid(), block.to_bytes());
    write_car(block.cid(), &sections).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_block_is_refused_by_signature_and_by_the_journal_rules() {
    let f = fixture(2).await;
    let car = f.export().await;
    let (_, sections) = read_car(&car).await;
    let tip = Block::from_bytes(&sections[0].1).unwrap();
    // An entry dropped, the signature left as it was.
    let mut forged = tip.clone();
    forged.entries.pop();
    f.refused(
        &with_root(&car, &forged).await,
        "at height 2 is refused: committer signature is invalid",
    );
    // An entry dropped and the block signed again by its committer: the signature holds, but
    // the entries are not what the transactions produce.
    let (key, chain) = &f.identity;
    let mut entries = tip.entries.clone();
    entries.pop();
    let resigned = Block::commit(
        (tip.chain, tip.height - 1),
        NETWORK,
        tip.timestamp_ms,
        (key, chain),
        tip.transactions.clone(),
        entries,
    );
    assert!(resigned.signature_valid());
    f.refused(
        &with_root(&car, &resigned).await,
        "block entries differ from what its transactions produce",
    );
    // Signed by a key that is not a peer of the network.
    let stranger = SecretKey::generate();
    let signed_elsewhere = Block::commit(
        (tip.chain, tip.height - 1),
        NETWORK,
        tip.timestamp_ms,
        (&stranger, chain),
        tip.transactions.clone(),
        tip.entries.clone(),
    );
    f.refused(
        &with_root(&car, &signed_elsewhere).await,
        "committer signature is invalid",
    );
}

/// Runs kubo's `ipfs` offline on the repository `repo`; returns stdout, failing on errors.
fn ipfs(repo: &Path, args: &[&str]) -> Vec<u8> {
    let output = std::process::Command::new(std::env::var("IPFS_BIN").unwrap_or_default())
        .env("IPFS_PATH", repo)
        .arg("--offline")
        .args(args)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "ipfs {args:?}: {}",
        stderr(&output)
    );
    output.stdout
}

fn dag_json(repo: &Path, cid: &Cid) -> serde_json::Value {
    serde_json::from_slice(&ipfs(repo, &["dag", "get", &cid.to_string()])).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubo_imports_the_export_and_returns_its_blocks_and_objects_unchanged() {
    if std::env::var_os("IPFS_BIN").is_none() {
        return support::skip::skip_or_fail(
            "MEDIACHAIN_SKIP_KUBE",
            "IPFS_BIN is not set: kubo's `ipfs` is built by `bash e2e/tools.sh` (scripts/test.sh runs it)",
        );
    }
    let f = fixture(2).await;
    let car = f.export().await;
    let file = f.dir.path().join("journal.car");
    std::fs::write(&file, &car).unwrap();
    let (roots, sections) = read_car(&car).await;
    let root = roots[0];
    let repo = f.dir.path().join("ipfs");
    let init = std::process::Command::new(std::env::var("IPFS_BIN").unwrap_or_default())
        .env("IPFS_PATH", &repo)
        .args(["init", "--profile=test"])
        .output();
    assert!(
        init.is_ok_and(|o| o.status.success()),
        "ipfs init (IPFS_BIN set?)"
    );

    // `dag import` pins the root: kubo reads every section and resolves the whole DAG offline.
    let imported = String::from_utf8(ipfs(
        &repo,
        &["dag", "import", "--stats", &file.display().to_string()],
    ))
    .unwrap();
    assert!(
        imported.contains(&format!("Pinned root\t{root}\tsuccess")),
        "{imported}"
    );
    assert!(
        imported.contains(&format!("Imported {} blocks", sections.len())),
        "{imported}"
    );
    let stat = String::from_utf8(ipfs(
        &repo,
        &["dag", "stat", "--progress=false", &root.to_string()],
    ))
    .unwrap();
    assert!(!stat.is_empty());

    // The root is the newest block, byte for byte, and kubo's DAG-JSON view of it links its parent.
    assert_eq!(
        ipfs(&repo, &["block", "get", &root.to_string()]),
        sections[0].1
    );
    let tip = Block::from_bytes(&sections[0].1).unwrap();
    let json = dag_json(&repo, &root);
    assert_eq!(json["height"], 2);
    assert_eq!(json["network"], NETWORK);
    assert_eq!(json["chain"]["/"], tip.chain.to_string());
    // Objects come back under the same CIDs with the same bytes, their links intact.
    for (cid, bytes) in &f.objects {
        assert_eq!(
            &ipfs(&repo, &["block", "get", &cid.to_string()]),
            bytes,
            "{cid}"
        );
    }
    let (artefact, cell) = (f.objects[1].0, f.objects[2].0);
    let json = dag_json(&repo, &cell);
    assert_eq!(json["ref"]["/"], artefact.to_string());
    assert_eq!(json["type"], "artefactCreatedBy");
}
