//! The client library retries what a real peer refuses for now: an upload over the client's
//! uploads in progress (`429` with `Retry-After`) goes through once a slot frees, and a client
//! gives up after its policy's tries with the peer's refusal.

use std::time::Duration;

use mediachain::api::ApiConfig;
use mediachain::client::{Client, ClientError, RetryPolicy};
use mediachain::daemon::local::{LocalOptions, LocalPeer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::fleet::metric_sum;
use crate::support::wait::within;

const REFUSED: &str = "mediachain_storage_writes_refused_total{reason=\"too-many-uploads\"}";
const IN_PROGRESS: &str = "mediachain_uploads_in_progress";
const BLOB: &str = "application/octet-stream";

/// A peer that lets a client have one upload in progress at a time.
async fn one_upload_at_a_time(dir: &tempfile::TempDir) -> LocalPeer {
    let api = ApiConfig {
        max_uploads_per_client: 1,
        ..ApiConfig::unlimited()
    };
    let options = LocalOptions {
        api,
        ..LocalOptions::default()
    };
    LocalPeer::start(dir.path(), options).await.unwrap()
}

/// Waits (bounded) until the peer's metric `sample` reaches `at_least`.
async fn reaches(peer: &LocalPeer, sample: &str, at_least: f64) {
    let what = format!("{sample} to reach {at_least}");
    within(&what, async {
        while metric_sum(&peer.metrics.encode(), sample) < at_least {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

/// An upload of 2,048 bytes of which half is sent: it holds the client's upload slot until
/// [`finish`] sends the rest.
async fn held_upload(peer: &LocalPeer) -> TcpStream {
    let mut stream = TcpStream::connect(peer.addr).await.unwrap();
    let head = format!(
        "POST /v1/objects HTTP/1.1\r\nhost: peer\r\ncontent-type: {BLOB}\r\n\
         content-length: 2048\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&[b'h'; 1024]).await.unwrap();
    reaches(peer, IN_PROGRESS, 1.0).await;
    stream
}

/// Sends the rest of a [`held_upload`]; the peer's answer.
async fn finish(mut held: TcpStream) -> String {
    held.write_all(&[b'h'; 1024]).await.unwrap();
    let mut answer = vec![0; 4096];
    let read = within("the held upload's answer", held.read(&mut answer)).await;
    String::from_utf8_lossy(&answer[..read.unwrap()]).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_refused_for_the_clients_uploads_in_progress_is_stored_once_a_slot_frees() {
    let dir = tempfile::tempdir().unwrap();
    let peer = one_upload_at_a_time(&dir).await;
    let held = held_upload(&peer).await;

    // Patient enough that the refusals outlast the few steps below on a loaded machine.
    let patient = RetryPolicy {
        attempts: 30,
        ..RetryPolicy::default()
    };
    let client = Client::new(&peer.url).unwrap().with_retry(patient);
    let bytes = b"waits for a slot".to_vec();
    let upload = tokio::spawn({
        let client = client.clone();
        let bytes = bytes.clone();
        async move { client.put_bytes(BLOB, bytes, None).await }
    });
    // The peer refused it at least once (429, Retry-After: 1), then the slot frees.
    reaches(&peer, REFUSED, 1.0).await;
    let answer = finish(held).await;
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");

    let stored = within("the retried upload", upload).await.unwrap();
    let stored = stored.expect("the upload was retried until a slot freed");
    assert!(stored.created, "{stored:?}");
    let cid = stored.cid.parse().unwrap();
    assert_eq!(client.get_object(&cid).await.unwrap(), bytes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_gives_up_after_its_tries_with_the_peers_refusal() {
    let dir = tempfile::tempdir().unwrap();
    let peer = one_upload_at_a_time(&dir).await;
    let held = held_upload(&peer).await;

    let three = RetryPolicy {
        attempts: 3,
        ..RetryPolicy::default()
    };
    let client = Client::new(&peer.url).unwrap().with_retry(three);
    let refused = within(
        "three refused tries",
        client.put_bytes(BLOB, vec![7; 64], None),
    )
    .await;
    match refused {
        Err(ClientError::Problem(p)) => {
            assert_eq!(
                (p.status, p.reason.as_deref()),
                (429, Some("too-many-uploads"))
            );
        }
        other => panic!("the upload was not refused: {other:?}"),
    }
    assert_eq!(metric_sum(&peer.metrics.encode(), REFUSED), 3.0);

    // Never retried: one refusal more.
    let once = Client::new(&peer.url)
        .unwrap()
        .with_retry(RetryPolicy::NEVER);
    assert!(once.put_bytes(BLOB, vec![8; 64], None).await.is_err());
    assert_eq!(metric_sum(&peer.metrics.encode(), REFUSED), 4.0);
    let answer = finish(held).await;
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
}
