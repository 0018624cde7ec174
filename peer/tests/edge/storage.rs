//! Storage under abusive writers (`api::storage`, `store::uploads`, `node::uploads`): a quota of
//! unreferenced upload bytes per client address, uploads nobody commits collected after the
//! grace period (never what a committed or pending transaction references), `507` before the
//! volume is full, and objects from gossip stored only once their transaction verified.

use std::time::Duration;

use mediachain::api::ApiConfig;
use mediachain::client::Client;
use mediachain::daemon::local::LocalOptions;
use mediachain::journal::{Transaction, TxId};
use mediachain::model::{codec, Artefact, Cid, JournalEntry, Object, RAW};
use mediachain::node::TxBundle;
use mediachain::store::UploadLimits;
use mediachain::trust::SecretKey;
use serde_bytes::ByteBuf;

use super::*;

/// Posts `bytes` as `kind` for the client `forwarded` (through the trusted loopback proxy);
/// the status and the problem's reason.
async fn upload(url: &str, forwarded: &str, kind: &str, bytes: Vec<u8>) -> (u16, String) {
    let response = reqwest::Client::new()
        .post(format!("{url}/v1/objects"))
        .header("x-forwarded-for", forwarded)
        .header("content-type", kind)
        .body(bytes)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body: serde_json::Value = response.json().await.unwrap();
    (status, body["reason"].as_str().unwrap_or_default().into())
}

/// A blob of `size` bytes unique to `tag`, and its CID.
fn blob(tag: &str, size: usize) -> (Cid, Vec<u8>) {
    let mut bytes = tag.as_bytes().to_vec();
    bytes.resize(size, b'.');
    (codec::cid_of(RAW, &bytes), bytes)
}

/// An artefact linking `data`: its CID and DAG-CBOR.
fn artefact(name: &str, data: Cid) -> (Cid, Vec<u8>) {
    let encoded = Object::Artefact(Artefact {
        data: Some(data),
        ..Artefact::named(name)
    })
    .encode()
    .unwrap();
    (encoded.cid, encoded.bytes)
}

/// A new client's transaction inserting `canonical`.
async fn insert(client: &Client, canonical: Cid) -> Transaction {
    let key = SecretKey::generate();
    let (chain, _) = client.register(&key).await.unwrap();
    let now = mediachain::time::now();
    let entries = vec![JournalEntry::Insert {
        reference: canonical,
        timestamp: now,
    }];
    Transaction::create(&key, &chain, entries, now, work::TX_BITS).unwrap()
}

/// Waits (bounded) until `id` is committed at `client`'s peer.
async fn committed(client: &Client, id: &TxId) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !client.status(id).await.unwrap().is_committed() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{id} was not committed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Whether `cid` is served.
async fn served(url: &str, cid: &Cid) -> bool {
    let response = reqwest::get(format!("{url}/v1/objects/{cid}"))
        .await
        .unwrap();
    response.status() == 200
}

const BLOB: &str = "application/octet-stream";
const CBOR: &str = "application/cbor";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_holds_at_most_its_quota_of_uploads_nobody_committed() {
    let config = ApiConfig {
        upload_limits: UploadLimits {
            per_client: 4096,
            total: 1 << 20,
        },
        trusted_proxies: "127.0.0.0/8".parse().unwrap(),
        ..ApiConfig::unlimited()
    };
    let peer = peer_with(config).await;
    let (a, b) = ("203.0.113.1", "203.0.113.2");
    let (data, bytes) = blob("data", 3000);
    assert_eq!(upload(&peer.url, a, BLOB, bytes.clone()).await.0, 201);
    let (work, work_bytes) = artefact("a work", data);
    assert_eq!(upload(&peer.url, a, CBOR, work_bytes).await.0, 201);
    let (more, more_bytes) = blob("more", 3000);
    assert_eq!(
        upload(&peer.url, a, BLOB, more_bytes.clone()).await,
        (507, "quota-exceeded".into())
    );
    assert!(
        !served(&peer.url, &more).await,
        "a refused upload stores nothing"
    );
    // Another address has its own quota; an object already stored costs nothing.
    assert_eq!(upload(&peer.url, b, BLOB, bytes).await.0, 200);
    assert_eq!(upload(&peer.url, b, BLOB, blob("b", 3000).1).await.0, 201);
    assert_eq!(
        metric(
            &peer,
            "mediachain_storage_writes_refused_total{reason=\"quota-exceeded\"}"
        ),
        1.0
    );

    // Once a committed transaction references the work (and through it its data), they no
    // longer count against the address.
    let client = Client::new(&peer.url).unwrap();
    let tx = insert(&client, work).await;
    client.submit(&tx).await.unwrap();
    committed(&client, &tx.id()).await;
    // (released right after the block is on the chain, as its event is published)
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while upload(&peer.url, a, BLOB, more_bytes.clone()).await.0 != 201 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the committed uploads still count against their address"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        metric(&peer, "mediachain_upload_bytes_unreferenced"),
        6000.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_nobody_references_are_collected_after_the_grace_period() {
    let options = LocalOptions {
        api: ApiConfig {
            upload_grace: Duration::from_secs(1),
            ..ApiConfig::unlimited()
        },
        // The test commits, so that a transaction can stay pending.
        auto_commit: false,
        block_interval: Duration::from_millis(1),
        ..LocalOptions::default()
    };
    let peer = peer_with_options(options).await;
    let client = Client::new(&peer.url).unwrap();
    let local = "127.0.0.1";

    // A committed work and the data it links to.
    let (data, bytes) = blob("committed data", 100);
    upload(&peer.url, local, BLOB, bytes).await;
    let (work, bytes) = artefact("committed", data);
    upload(&peer.url, local, CBOR, bytes).await;
    let tx = insert(&client, work).await;
    client.submit(&tx).await.unwrap();
    let node = peer.node.clone();
    tokio::task::spawn_blocking(move || {
        let deadline = std::time::Instant::now() + PATIENCE;
        while node.try_commit().unwrap().is_none() {
            assert!(std::time::Instant::now() < deadline, "nothing committed");
            std::thread::sleep(Duration::from_millis(1));
        }
    })
    .await
    .unwrap();
    committed(&client, &tx.id()).await;

    // A work a pending transaction inserts, stale by the time the upload below is.
    let (pending, bytes) = artefact("pending", blob("x", 1).0);
    upload(&peer.url, local, CBOR, bytes).await;
    client
        .submit(&insert(&client, pending).await)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let (stray, bytes) = blob("nobody's", 100);
    upload(&peer.url, local, BLOB, bytes).await;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while served(&peer.url, &stray).await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the stray upload was never collected"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for kept in [data, work, pending] {
        assert!(served(&peer.url, &kept).await, "{kept} was collected");
    }
    // The pass counts what it collected after its deletions return: wait for the count too.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while metric(&peer, "mediachain_uploads_collected_total") < 1.0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the collected upload was never counted"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(metric(&peer, "mediachain_uploads_collected_total"), 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_are_refused_with_507_while_the_volume_is_nearly_full() {
    let config = ApiConfig {
        min_free_bytes: u64::MAX,
        ..ApiConfig::unlimited()
    };
    let peer = peer_with(config).await;
    let objects = peer.node.store().len();
    let (cid, bytes) = blob("refused", 10);
    assert_eq!(
        upload(&peer.url, "", BLOB, bytes).await,
        (507, "low-disk-space".into())
    );
    let client = Client::new(&peer.url).unwrap();
    let tx = insert(&client, cid).await;
    let refused = client.submit(&tx).await.unwrap_err();
    assert_eq!(
        refused.problem().map(|p| (p.status, p.reason.clone())),
        Some((507, Some("low-disk-space".to_string())))
    );
    assert_eq!(peer.node.store().len(), objects, "nothing stored");
    assert_eq!(
        metric(
            &peer,
            "mediachain_storage_writes_refused_total{reason=\"low-disk-space\"}"
        ),
        2.0
    );
    // Reads are served.
    assert!(client.head().await.is_ok());
}

/// A bundle as a peer gossips it: `tx` with the objects `objects`.
fn bundle(tx: Transaction, objects: &[&(Cid, Vec<u8>)]) -> Vec<TxBundle> {
    let objects = objects
        .iter()
        .map(|(cid, bytes)| (*cid, ByteBuf::from(bytes.clone())))
        .collect();
    vec![TxBundle { tx, objects }]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gossiped_objects_are_stored_only_once_their_transaction_verifies() {
    let peer = peer_with(ApiConfig::unlimited()).await;
    let client = Client::new(&peer.url).unwrap();
    let data = blob("gossiped data", 50);
    let work = artefact("gossiped", data.0);
    let junk = blob("junk riding along", 50);

    let mut forged = insert(&client, work.0).await;
    forged.signature[0] ^= 1;
    let node = peer.node.clone();
    let outcome = node.receive_txs(bundle(forged, &[&work, &data]));
    assert!(matches!(outcome[0], Ok(Err(_))), "{outcome:?}");
    for (cid, _) in [&work, &data] {
        assert!(
            !node.store().has(cid).unwrap(),
            "stored before verification"
        );
    }

    let honest = insert(&client, work.0).await;
    let outcome = node.receive_txs(bundle(honest, &[&work, &data, &junk]));
    assert!(matches!(outcome[0], Ok(Ok(_))), "{outcome:?}");
    assert!(node.store().has(&work.0).unwrap() && node.store().has(&data.0).unwrap());
    assert!(
        !node.store().has(&junk.0).unwrap(),
        "an object the transaction does not reference was stored"
    );
}
