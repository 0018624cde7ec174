//! The HTTP API over real HTTP against a real in-process peer (sled files, commit loop).

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

#[path = "api/explorer.rs"]
mod explorer;
#[path = "api/reorg.rs"]
mod reorg;
#[path = "api/retry.rs"]
mod retry;
#[path = "api/search.rs"]
mod search;
mod support;

use futures::StreamExt;
use mediachain::api::ApiConfig;
use mediachain::client::wire::{Problem, PROBLEM_JSON};
use mediachain::client::{Client, ClientError};
use mediachain::daemon::local::{LocalOptions, LocalPeer};
use mediachain::journal::{Transaction, TxId};
use mediachain::model::{
    nil_cid, Artefact, CellKind, ChainCell, Cid, Entity, JournalEntry, Object,
};
use mediachain::time;
use mediachain::trust::{Chain, Level, RevocationSet, SecretKey};
use support::work::work_entries;

async fn peer(dir: &tempfile::TempDir) -> LocalPeer {
    LocalPeer::start(dir.path(), LocalOptions::default())
        .await
        .unwrap()
}

/// A registered client: its key and Level-2 chain.
async fn registered(client: &Client) -> (SecretKey, Chain) {
    let key = SecretKey::generate();
    let (chain, _) = client.register(&key).await.unwrap();
    (key, chain)
}

/// Stores an entity, an artefact and the artefact's artefactCreatedBy cell.
async fn write_work(client: &Client, name: &str) -> (Cid, Cid, Cid) {
    let entity = client
        .put_object(&Object::Entity(Entity::named(&format!("{name} author"))))
        .await
        .unwrap();
    let entity: Cid = entity.cid.parse().unwrap();
    let artefact = client
        .put_object(&Object::Artefact(Artefact::named(name)))
        .await
        .unwrap();
    let artefact: Cid = artefact.cid.parse().unwrap();
    let cell = ChainCell::new(CellKind::ArtefactCreatedBy { entity }, artefact, nil_cid());
    let cell: Cid = client
        .put_object(&Object::Cell(cell))
        .await
        .unwrap()
        .cid
        .parse()
        .unwrap();
    (entity, artefact, cell)
}

/// Sends raw bytes and reads the whole answer.
async fn raw_request(addr: std::net::SocketAddr, request: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = vec![];
    let _ = stream.read_to_end(&mut answer).await;
    String::from_utf8_lossy(&answer).to_string()
}

async fn problem_of(response: reqwest::Response) -> (u16, Problem) {
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(content_type, PROBLEM_JSON);
    (status, response.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_issues_a_level_2_chain_that_verifies_to_the_root() {
    let dir = tempfile::tempdir().unwrap();
    let peer = peer(&dir).await;
    let client = Client::new(&peer.url).unwrap();
    let key = SecretKey::generate();
    let (chain, registration) = client.register(&key).await.unwrap();
    assert_eq!(registration.level, 2);
    assert_eq!(registration.client, key.public().to_string());
    assert_eq!(registration.issuer, peer.node.public_key().to_string());
    let revocations = RevocationSet::new(peer.root.public());
    assert_eq!(
        chain.verify(
            &peer.root.public(),
            &revocations,
            time::now(),
            Level::Client
        ),
        Ok(key.public())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_without_valid_work_or_with_a_forged_or_stale_challenge_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let peer = peer(&dir).await;
    let client = Client::new(&peer.url).unwrap();
    let http = reqwest::Client::new();
    let url = format!("{}/v1/registration", peer.url);
    let key = SecretKey::generate().public().to_string();
    let challenge = client.challenge().await.unwrap();

    // No work at all (nonce 0 with 0 bits claimed).
    let response = http
        .post(&url)
        .json(&serde_json::json!({"client": key, "challenge": challenge.challenge, "pow": {"bits": 0, "nonce": 0}}))
        .send()
        .await
        .unwrap();
    let (status, problem) = problem_of(response).await;
    assert_eq!(status, 403);
    assert_eq!(problem.reason.as_deref(), Some("proof-of-work"));
    assert!(problem.detail.contains("required"), "{}", problem.detail);

    // A challenge this peer never issued.
    let mut forged = hex::decode(&challenge.challenge).unwrap();
    forged[10] ^= 0xff;
    let response = http
        .post(&url)
        .json(&serde_json::json!({"client": key, "challenge": hex::encode(forged), "pow": {"bits": 8, "nonce": 1}}))
        .send()
        .await
        .unwrap();
    let (status, problem) = problem_of(response).await;
    assert_eq!(status, 403);
    assert_eq!(problem.reason.as_deref(), Some("foreign-challenge"));

    // A stale challenge (issued by this peer 20 minutes ago) with valid work for it.
    let (peer_key, peer_chain) = peer.peer.clone();
    let registrar = mediachain::node::registration::Registrar::new(peer_key, peer_chain, 8, 3600);
    let old = registrar.challenge(time::now() - 1200);
    let client_key = SecretKey::generate();
    let resource = mediachain::client::registration_resource(&client_key.public(), &old);
    let stamp =
        mediachain::trust::pow::solve(mediachain::trust::pow::Purpose::Registration, &resource, 8)
            .unwrap();
    let response = http
        .post(&url)
        .json(&serde_json::json!({"client": client_key.public().to_string(), "challenge": hex::encode(&old), "pow": {"bits": stamp.bits, "nonce": stamp.nonce}}))
        .send()
        .await
        .unwrap();
    let (status, problem) = problem_of(response).await;
    assert_eq!(
        (status, problem.reason.as_deref()),
        (403, Some("stale-challenge"))
    );

    // Malformed bodies and keys.
    let response = http.post(&url).body("{not json").send().await.unwrap();
    assert_eq!(problem_of(response).await.0, 400);
    let response = http
        .post(&url)
        .json(&serde_json::json!({"client": "nobody", "challenge": challenge.challenge, "pow": {"bits": 8, "nonce": 1}}))
        .send()
        .await
        .unwrap();
    let (status, problem) = problem_of(response).await;
    assert_eq!(
        (status, problem.reason.as_deref()),
        (400, Some("invalid-key"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_round_trip_as_cbor_json_and_blobs_and_bad_ones_store_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let peer = peer(&dir).await;
    let client = Client::new(&peer.url).unwrap();
    let http = reqwest::Client::new();

    let artefact = Object::Artefact(Artefact::named("Mona Lisa"));
    let encoded = artefact.encode().unwrap();
    let stored = client.put_object(&artefact).await.unwrap();
    assert_eq!(stored.cid, encoded.cid.to_string());
    assert!(stored.created);
    assert!(!client.put_object(&artefact).await.unwrap().created);
    assert_eq!(
        client.get_object(&encoded.cid).await.unwrap(),
        encoded.bytes
    );
    let json = client.get_object_json(&encoded.cid).await.unwrap();
    assert_eq!(json["type"], "artefact");
    assert_eq!(json["meta"]["name"], "Mona Lisa");

    // DAG-JSON in: stored as the same canonical DAG-CBOR.
    let response = http
        .post(format!("{}/v1/objects", peer.url))
        .header("content-type", "application/json")
        .body(r#"{"type":"artefact","meta":{"name":"Mona Lisa"}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let again: mediachain::client::wire::Stored = response.json().await.unwrap();
    assert_eq!(again.cid, encoded.cid.to_string());

    // A blob.
    let blob = client
        .put_bytes("application/octet-stream", b"raw pixels".to_vec(), None)
        .await
        .unwrap();
    let blob_cid: Cid = blob.cid.parse().unwrap();
    assert_eq!(blob_cid.codec(), mediachain::model::RAW);
    assert_eq!(client.get_object(&blob_cid).await.unwrap(), b"raw pixels");

    let before = peer.node.store().len();
    // A CID that does not match.
    let other = Object::Entity(Entity::named("Leonardo")).cid().unwrap();
    let err = client
        .put_bytes("application/cbor", encoded.bytes.clone(), Some(other))
        .await
        .unwrap_err();
    assert_eq!(err.problem().unwrap().status, 422);
    assert_eq!(
        err.problem().unwrap().reason.as_deref(),
        Some("cid-mismatch")
    );
    // Not a Mediachain object / not canonical / not JSON.
    for (kind, body) in [
        ("application/cbor", b"\xa1\x61a\x01".to_vec()),
        ("application/cbor", b"\xff\xff".to_vec()),
        ("application/json", br#"{"type":"spaceship"}"#.to_vec()),
        ("application/json", b"{".to_vec()),
    ] {
        let err = client.put_bytes(kind, body, None).await.unwrap_err();
        assert_eq!(err.problem().unwrap().status, 400, "{err}");
    }
    // Over the size limit (the local peer allows 64 KiB).
    let err = client
        .put_bytes("application/octet-stream", vec![7; 65 * 1024], None)
        .await
        .unwrap_err();
    assert_eq!(err.problem().unwrap().status, 413);
    // An unsupported media type.
    let err = client
        .put_bytes("text/plain", b"hello".to_vec(), None)
        .await
        .unwrap_err();
    assert_eq!(err.problem().unwrap().status, 415);
    assert_eq!(
        peer.node.store().len(),
        before,
        "a refused object was stored"
    );

    // Unknown and invalid CIDs.
    let response = http
        .get(format!("{}/v1/objects/{other}", peer.url))
        .send()
        .await
        .unwrap();
    assert_eq!(problem_of(response).await.0, 404);
    let response = http
        .get(format!("{}/v1/objects/not-a-cid", peer.url))
        .send()
        .await
        .unwrap();
    let (status, problem) = problem_of(response).await;
    assert_eq!(
        (status, problem.reason.as_deref()),
        (400, Some("invalid-cid"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_submitted_transaction_is_confirmed_through_the_stream_and_indexed() {
    let dir = tempfile::tempdir().unwrap();
    let peer = peer(&dir).await;
    let client = Client::new(&peer.url).unwrap();
    let (key, chain) = registered(&client).await;
    let info = client.info().await.unwrap();
    let (entity, artefact, cell) = write_work(&client, "Starry Night").await;

    let from = client.head().await.unwrap().height + 1;
    let tx = Transaction::create(
        &key,
        &chain,
        work_entries(entity, artefact, cell, time::now()),
        time::now(),
        info.transaction_pow_bits,
    )
    .unwrap();
    let pending = client.submit(&tx).await.unwrap();
    assert_eq!(pending.id, tx.id().to_string());
    assert_eq!(pending.state, "pending");

    let confirmation = support::wait::within(
        "the confirmation",
        client.await_confirmation(&tx.id(), from),
    )
    .await
    .unwrap();
    assert_eq!(confirmation.state.state, "committed");
    let block = confirmation.block.unwrap();
    assert!(block.transactions.contains(&tx.id().to_string()));
    assert_eq!(confirmation.state.height, Some(block.height));
    assert_eq!(
        confirmation.state.block.as_deref(),
        Some(block.cid.as_str())
    );
    assert_eq!(block.entries.len(), 3);

    // The index and the chain walk.
    let index = client.index(&artefact).await.unwrap();
    assert_eq!(index.head, cell.to_string());
    let history = client.history(&artefact, 10).await.unwrap();
    assert_eq!(history.object["meta"]["name"], "Starry Night");
    assert_eq!(history.cells.len(), 1);
    assert_eq!(history.cells[0].cid, cell.to_string());
    assert_eq!(history.cells[0].object["type"], "artefactCreatedBy");
    assert_eq!(history.cells[0].object["entity"]["/"], entity.to_string());

    // Blocks by height, and the head.
    let blocks = client.blocks(0, 100).await.unwrap().blocks;
    assert_eq!(blocks[0].height, 0);
    assert_eq!(blocks.last().unwrap().cid, block.cid);
    let head = client.head().await.unwrap();
    assert_eq!((head.cid, head.height), (block.cid.clone(), block.height));

    // Submitting it again is a conflict that changes nothing.
    let err = client.submit(&tx).await.unwrap_err();
    assert_eq!(err.problem().unwrap().status, 409);
    assert_eq!(client.head().await.unwrap().height, block.height);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_transactions_get_problems_and_are_never_queued() {
    let dir = tempfile::tempdir().unwrap();
    let peer = peer(&dir).await;
    let client = Client::new(&peer.url).unwrap();
    let http = reqwest::Client::new();
    let (key, chain) = registered(&client).await;
    let bits = client.info().await.unwrap().transaction_pow_bits;
    let (entity, artefact, cell) = write_work(&client, "Guernica").await;
    let entries = work_entries(entity, artefact, cell, time::now());

    let expect = |err: ClientError, status: u16, reason: &str| {
        let problem = err.problem().unwrap_or_else(|| panic!("{err}")).clone();
        assert_eq!(
            (problem.status, problem.reason.as_deref()),
            (status, Some(reason)),
            "{}",
            problem.detail
        );
        problem
    };

    // A wrong signature.
    let mut forged = Transaction::create(&key, &chain, entries.clone(), time::now(), bits).unwrap();
    forged.signature[0] ^= 1;
    expect(
        client.submit(&forged).await.unwrap_err(),
        403,
        "bad-signature",
    );

    // Insufficient proof of work.
    let lazy = Transaction::create(&key, &chain, entries.clone(), time::now(), 0).unwrap();
    expect(
        client.submit(&lazy).await.unwrap_err(),
        403,
        "proof-of-work",
    );

    // A certificate of the wrong level: the peer's own Level-1 chain.
    let (peer_key, peer_chain) = peer.peer.clone();
    let wrong =
        Transaction::create(&peer_key, &peer_chain, entries.clone(), time::now(), bits).unwrap();
    let problem = expect(client.submit(&wrong).await.unwrap_err(), 403, "certificate");
    assert!(
        problem.detail.to_lowercase().contains("level"),
        "{}",
        problem.detail
    );

    // Someone else's certificate.
    let stranger = SecretKey::generate();
    let stolen =
        Transaction::create(&stranger, &chain, entries.clone(), time::now(), bits).unwrap();
    expect(
        client.submit(&stolen).await.unwrap_err(),
        403,
        "certificate",
    );

    // Unknown references.
    let ghost = Object::Artefact(Artefact::named("never stored"))
        .cid()
        .unwrap();
    let unknown = Transaction::create(
        &key,
        &chain,
        vec![JournalEntry::Insert {
            reference: ghost,
            timestamp: time::now(),
        }],
        time::now(),
        bits,
    )
    .unwrap();
    expect(
        client.submit(&unknown).await.unwrap_err(),
        422,
        "unknown-reference",
    );

    // Malformed bodies and media types.
    let url = format!("{}/v1/transactions", peer.url);
    let response = http
        .post(&url)
        .header("content-type", "application/cbor")
        .body(vec![0xa1, 0x00])
        .send()
        .await
        .unwrap();
    assert_eq!(
        problem_of(response).await.1.reason.as_deref(),
        Some("malformed-transaction")
    );
    let response = http
        .post(&url)
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(problem_of(response).await.0, 415);
    // Over the body limit: refused from the Content-Length alone, before the body is read (a
    // raw request, since the peer answers and closes while a client would still be writing).
    let head = raw_request(
        peer.addr,
        "POST /v1/transactions HTTP/1.1\r\nhost: peer\r\ncontent-type: application/cbor\r\n\
         content-length: 2097152\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 413"), "{head}");
    assert!(head.contains("application/problem+json"), "{head}");

    assert_eq!(peer.node.pending(), 0, "a refused transaction was queued");
    for tx in [&forged, &lazy, &wrong, &stolen] {
        let state = client.status(&tx.id()).await.unwrap();
        assert!(!state.is_committed(), "{state:?}");
    }
    let state = client.status(&unknown.id()).await.unwrap();
    assert_eq!(state.state, "rejected");
    assert!(state.reason.unwrap().contains("not in the datastore"));
    let response = http
        .get(format!("{}/v1/transactions/xyz", peer.url))
        .send()
        .await
        .unwrap();
    assert_eq!(problem_of(response).await.0, 400);
    let never = client.status(&TxId([9; 32])).await.unwrap();
    assert_eq!(never.state, "unknown");
    assert_eq!(client.head().await.unwrap().height, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_stream_resumes_from_a_height_and_filters_by_canonical() {
    let dir = tempfile::tempdir().unwrap();
    let peer = peer(&dir).await;
    let client = Client::new(&peer.url).unwrap();
    let (key, chain) = registered(&client).await;
    let bits = client.info().await.unwrap().transaction_pow_bits;
    let mut artefacts = vec![];
    for name in ["first", "second"] {
        let (entity, artefact, cell) = write_work(&client, name).await;
        let from = client.head().await.unwrap().height + 1;
        let tx = Transaction::create(
            &key,
            &chain,
            work_entries(entity, artefact, cell, time::now()),
            time::now(),
            bits,
        )
        .unwrap();
        client.submit(&tx).await.unwrap();
        let confirmation = support::wait::within(
            "the confirmation",
            client.await_confirmation(&tx.id(), from),
        )
        .await
        .unwrap();
        artefacts.push((artefact, confirmation.block.unwrap()));
    }

    // Everything from genesis, in order.
    let mut all = client.events(Some(0), &[], &[]).await.unwrap();
    let mut heights = vec![];
    for _ in 0..3 {
        heights.push(
            support::wait::within("a block event", all.next())
                .await
                .unwrap()
                .unwrap()
                .height,
        );
    }
    assert_eq!(heights, vec![0, 1, 2]);

    // Only the blocks about the second artefact, from genesis.
    let (second, second_block) = &artefacts[1];
    let mut filtered = client.events(Some(0), &[*second], &[]).await.unwrap();
    let first = support::wait::within("a filtered event", filtered.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.cid, second_block.cid);

    // Resuming after a height, then a live block arrives.
    let mut resumed = client
        .events(Some(second_block.height + 1), &[], &[])
        .await
        .unwrap();
    let (entity, artefact, cell) = write_work(&client, "third").await;
    let tx = Transaction::create(
        &key,
        &chain,
        work_entries(entity, artefact, cell, time::now()),
        time::now(),
        bits,
    )
    .unwrap();
    client.submit(&tx).await.unwrap();
    let live = support::wait::within("a live event after resuming", resumed.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(live.height, second_block.height + 1);
    assert_eq!(live.transactions, vec![tx.id().to_string()]);

    // Last-Event-ID resumes after the given height.
    let response = reqwest::Client::new()
        .get(format!("{}/v1/events", peer.url))
        .header("last-event-id", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut body = response.bytes_stream();
    let mut text = String::new();
    while !text.contains("\n\n") {
        text.push_str(&String::from_utf8_lossy(
            &support::wait::within("a chunk of the event stream", body.next())
                .await
                .unwrap()
                .unwrap(),
        ));
    }
    assert!(text.contains("id:2"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_over_its_rate_gets_429_while_probes_still_answer() {
    let dir = tempfile::tempdir().unwrap();
    let options = LocalOptions {
        api: ApiConfig {
            rate_per_second: 0.01, // one token per 100 s: no refill during the test
            burst: 3.0,
            ..ApiConfig::default()
        },
        ..LocalOptions::default()
    };
    let peer = LocalPeer::start(dir.path(), options).await.unwrap();
    let http = reqwest::Client::new();
    let url = format!("{}/v1/journal/head", peer.url);
    for _ in 0..3 {
        assert_eq!(http.get(&url).send().await.unwrap().status(), 200);
    }
    let response = http.get(&url).send().await.unwrap();
    let retry: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry >= 1);
    let (status, problem) = problem_of(response).await;
    assert_eq!(
        (status, problem.reason.as_deref()),
        (429, Some("rate-limited"))
    );
    let health = http
        .get(format!("{}/healthz", peer.url))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_metrics_and_the_openapi_document_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let peer = peer(&dir).await;
    let http = reqwest::Client::new();
    let get = |path: &str| http.get(format!("{}{path}", peer.url)).send();
    assert_eq!(get("/healthz").await.unwrap().status(), 200);
    assert_eq!(get("/readyz").await.unwrap().status(), 200);
    peer.health.set_ready(false);
    assert_eq!(get("/readyz").await.unwrap().status(), 503);
    peer.health.set_ready(true);

    assert_eq!(get("/v1/journal/head").await.unwrap().status(), 200);
    let metrics = get("/metrics").await.unwrap().text().await.unwrap();
    assert!(metrics.contains("mediachain_journal_height"), "{metrics}");
    assert!(
        metrics.contains(r#"mediachain_http_requests_total{kind="/v1/journal/head",reason="200"}"#),
        "{metrics}"
    );

    let doc: serde_json::Value = get("/v1/openapi.json").await.unwrap().json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/v1/registration/challenge",
        "/v1/registration",
        "/v1/objects",
        "/v1/objects/{cid}",
        "/v1/transactions",
        "/v1/transactions/{id}",
        "/v1/journal/head",
        "/v1/journal/blocks",
        "/v1/journal/index/{canonical}",
        "/v1/journal/history/{canonical}",
        "/v1/events",
        "/healthz",
        "/readyz",
        "/metrics",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} is not documented");
    }

    let response = get("/v1/nowhere").await.unwrap();
    assert_eq!(problem_of(response).await.0, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_updates_of_one_head_are_committed_and_merged() {
    let dir = tempfile::tempdir().unwrap();
    let options = LocalOptions {
        auto_commit: false,
        block_interval: std::time::Duration::ZERO,
        ..LocalOptions::default()
    };
    let peer = LocalPeer::start(dir.path(), options).await.unwrap();
    let client = Client::new(&peer.url).unwrap();
    let bits = client.info().await.unwrap().transaction_pow_bits;
    let (alice, alice_chain) = registered(&client).await;
    let (bob, bob_chain) = registered(&client).await;
    let (entity, artefact, cell) = write_work(&client, "The Kiss").await;
    let first = Transaction::create(
        &alice,
        &alice_chain,
        work_entries(entity, artefact, cell, time::now()),
        time::now(),
        bits,
    )
    .unwrap();
    client.submit(&first).await.unwrap();
    let node = peer.node.clone();
    tokio::task::spawn_blocking(move || node.try_commit().unwrap().unwrap())
        .await
        .unwrap();

    // Alice and Bob both update the head `cell` before either is committed.
    let mut txs = vec![];
    for (key, chain, name) in [
        (&alice, &alice_chain, "gold leaf"),
        (&bob, &bob_chain, "oil"),
    ] {
        let update = ChainCell::new(CellKind::ArtefactUpdate, artefact, cell)
            .with_meta(mediachain::model::Meta::named(name));
        let update: Cid = client
            .put_object(&Object::Cell(update))
            .await
            .unwrap()
            .cid
            .parse()
            .unwrap();
        let entries = vec![JournalEntry::Update {
            reference: artefact,
            chain: update,
            chain_previous: cell,
            timestamp: time::now(),
        }];
        let tx = Transaction::create(key, chain, entries, time::now(), bits).unwrap();
        assert_eq!(client.submit(&tx).await.unwrap().state, "pending");
        txs.push(tx);
    }
    let node = peer.node.clone();
    tokio::task::spawn_blocking(move || node.try_commit().unwrap().unwrap())
        .await
        .unwrap();

    let mut states: Vec<String> = vec![];
    for tx in &txs {
        let state = client.status(&tx.id()).await.unwrap();
        assert_eq!(state.height, Some(2));
        states.push(state.state);
    }
    states.sort();
    assert_eq!(states, vec!["committed", "merged"]);
    // No metadata is lost: the head is the link cell, on top of the base update, and it links
    // the merged orphan update through `chainMerge`.
    let history = client.history(&artefact, 10).await.unwrap();
    let kinds: Vec<&str> = history
        .cells
        .iter()
        .map(|c| c.object["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds[0], "artefactChainLink", "{kinds:?}");
    assert_eq!(kinds.len(), 3, "{kinds:?}");
    assert!(history.cells[0].object["chainMerge"]["/"].is_string());
}
