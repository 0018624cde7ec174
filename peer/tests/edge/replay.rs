//! Event streams against slow subscribers and long replays (`api::events`): a subscriber that
//! reads nothing is dropped with `event: dropped` and resumes by `Last-Event-ID` without a gap;
//! a long `from=0` replay never holds the node's lock, so writes and commits proceed while it
//! streams. The chain is far larger than what the socket and the stream's queue buffer, so a
//! subscriber that reads nothing stalls its replay.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use eventsource_stream::Eventsource;
use futures::StreamExt;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use mediachain::api::ApiConfig;
use mediachain::client::Client;
use mediachain::daemon::local::{LocalOptions, LocalPeer};
use mediachain::journal::{Block, Transaction};
use mediachain::model::{Artefact, JournalEntry, Object};
use mediachain::node::Node;
use mediachain::trust::{Certificate, Chain, Level, SecretKey};

use super::*;

/// Blocks of the chain the streams replay: each event is ~7 KB of JSON (64 entries), ~7 MB in
/// all, more than a loopback socket (~3 MB), the server's buffers and the stream's queue (256
/// events) hold together.
const BLOCKS: u64 = 1000;

/// A peer for long replays: the test commits (no commit loop), blocks hold 64 entries, the
/// store lives in memory-backed files so that building the chain is quick.
async fn replay_peer(api: ApiConfig) -> Edge {
    let options = LocalOptions {
        api,
        max_object_size: 1024 * 1024,
        block_interval: Duration::from_millis(1),
        auto_commit: false,
        // Indexing 64,000 artefacts in a debug build would take the cores these timings need;
        // the query index has its own tests.
        search: false,
        ..LocalOptions::default()
    };
    peer_in(memory_dir(), options).await
}

/// A directory on tmpfs.
fn memory_dir() -> tempfile::TempDir {
    tempfile::tempdir_in("/dev/shm").unwrap()
}

/// Commits the pending transactions as soon as the block interval allows (bounded).
fn commit(node: &Node) -> std::sync::Arc<Block> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(block) = node.try_commit().unwrap() {
            return block;
        }
        assert!(Instant::now() < deadline, "no block was committed");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Grows `peer`'s chain by [`BLOCKS`] blocks of one transaction inserting 64 artefacts; the tip
/// height.
async fn grow(peer: &LocalPeer) -> u64 {
    let node = peer.node.clone();
    let (issuer, issuer_chain) = peer.peer.clone();
    tokio::task::spawn_blocking(move || {
        let key = SecretKey::generate();
        let certificate = Certificate::issue(&issuer, key.public(), Level::Client, 0, u64::MAX / 2);
        let chain = Chain::extend(certificate, &issuer_chain);
        let store = node.store();
        for block in 0..BLOCKS {
            let now = mediachain::time::now();
            let entries = (0..64)
                .map(|i| {
                    let object = Object::Artefact(Artefact::named(&format!("work {block}.{i}")));
                    let encoded = object.encode().unwrap();
                    store.put_unflushed(&encoded.cid, &encoded.bytes).unwrap();
                    JournalEntry::Insert {
                        reference: encoded.cid,
                        timestamp: now,
                    }
                })
                .collect();
            store.flush().unwrap();
            let tx = Transaction::create(&key, &chain, entries, now, work::TX_BITS).unwrap();
            node.submit(tx).unwrap().unwrap();
            commit(&node);
        }
        node.tip().unwrap().1
    })
    .await
    .unwrap()
}

/// Opens `GET /v1/events?{query}` (resuming after `last`, as `Last-Event-ID`) on a socket with
/// a small receive buffer; nothing of the body is read until the test reads it.
async fn open_unread(addr: SocketAddr, query: &str, last: Option<u64>) -> Incoming {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(addr).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    let mut request = hyper::Request::get(format!("/v1/events?{query}"))
        .header("host", "peer")
        .header("accept", "text/event-stream");
    if let Some(last) = last {
        request = request.header("last-event-id", last.to_string());
    }
    let response = tokio::time::timeout(
        PATIENCE,
        sender.send_request(request.body(String::new()).unwrap()),
    )
    .await
    .expect("no answer to the stream request")
    .unwrap();
    assert_eq!(response.status(), 200);
    response.into_body()
}

/// An event as a subscriber saw it: its name and id.
#[derive(Debug)]
struct Seen {
    kind: String,
    id: Option<u64>,
}

/// Reads the events of `body` until one satisfies `stop` or the stream ends (each wait bounded).
async fn read_events(body: Incoming, stop: impl Fn(&Seen) -> bool) -> Vec<Seen> {
    let mut events = body.into_data_stream().eventsource();
    let mut seen = vec![];
    loop {
        let next = tokio::time::timeout(PATIENCE, events.next())
            .await
            .expect("the stream went silent");
        let Some(event) = next else {
            return seen;
        };
        let event = event.unwrap();
        let event = Seen {
            id: (event.event == "block").then(|| event.id.parse().unwrap()),
            kind: event.event,
        };
        let done = stop(&event);
        seen.push(event);
        if done {
            return seen;
        }
    }
}

/// The heights of the block events.
fn heights(events: &[Seen]) -> Vec<u64> {
    events.iter().filter_map(|e| e.id).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_that_reads_nothing_is_dropped_and_resumes_without_a_gap() {
    let config = ApiConfig {
        stream_send_timeout: Duration::from_millis(500),
        ..ApiConfig::unlimited()
    };
    let peer = replay_peer(config).await;
    let tip = grow(&peer).await;

    let unread = open_unread(peer.addr, "from=0", None).await;
    metric_reaches(
        &peer,
        "mediachain_event_streams_dropped_total{reason=\"slow-subscriber\"}",
        1.0,
    )
    .await;
    // The dropped stream frees its slot (the pump ends right after counting the drop).
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while metric(&peer, "mediachain_event_streams_open") > 0.0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the stream kept its slot"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // What was buffered arrives, in order from the start, then the stream says it was dropped.
    let events = read_events(unread, |_| false).await;
    let (last, blocks) = events.split_last().unwrap();
    assert_eq!(last.kind, "dropped", "{last:?}");
    let sent = heights(blocks);
    assert_eq!(sent, (0..sent.len() as u64).collect::<Vec<_>>());
    let seen = *sent.last().unwrap();
    assert!(seen < tip, "the whole chain ({tip}) was buffered: grow it");

    // Resuming after the last event seen gives the rest, without a gap.
    let resumed = open_unread(peer.addr, "", Some(seen)).await;
    let events = read_events(resumed, |e| e.id == Some(tip)).await;
    assert_eq!(heights(&events), (seen + 1..=tip).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_and_commits_proceed_while_a_long_replay_streams() {
    let config = ApiConfig {
        // The stalled subscriber is kept for the whole test.
        stream_send_timeout: Duration::from_secs(300),
        ..ApiConfig::unlimited()
    };
    let peer = replay_peer(config).await;
    let tip = grow(&peer).await;

    // The replay stalls on a subscriber that reads nothing, somewhere in the chain.
    let stalled = open_unread(peer.addr, "from=0", None).await;
    let (done, outcome) = std::sync::mpsc::channel();
    let (url, node, metrics) = (peer.url.clone(), peer.node.clone(), peer.metrics.clone());
    tokio::spawn(async move {
        let behind = || {
            metrics
                .encode()
                .contains("mediachain_event_streams_behind 1\n")
        };
        while !behind() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let client = Client::new(&url).unwrap();
        let id = work::submit_insert(&client, "during a replay").await;
        let block = tokio::task::spawn_blocking(move || commit(&node))
            .await
            .unwrap();
        let committed = client.status(&id).await.unwrap().is_committed();
        // All of it while the replay waited for its subscriber.
        let _ = done.send((block.height, committed, behind()));
    });
    // Awaited on this thread, not on the runtime: a replay holding the node's lock would block
    // the runtime's workers (and its timers) at the first handler that takes it.
    let (height, committed, still_behind) =
        tokio::task::block_in_place(|| outcome.recv_timeout(PATIENCE * 2))
            .expect("writes and commits waited for the replay");
    assert_eq!((height, committed, still_behind), (tip + 1, true, true));

    // The replay goes on, through the block committed meanwhile, without a gap.
    let events = read_events(stalled, |e| e.id == Some(tip + 1)).await;
    assert_eq!(heights(&events), (0..=tip + 1).collect::<Vec<_>>());
}
