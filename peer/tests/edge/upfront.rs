//! Uploads refused from their heads (`api::storage::check_claim`): an upload whose
//! `Content-Length` would pass its client's quota is answered `507` before a byte of its body is
//! read (an `Expect: 100-continue` client is never told to send it) and the connection is
//! closed; a client whose quota is used up is refused any upload from its head, except one whose
//! `?cid=` names an object already stored, which costs nothing.

use std::time::Duration;

use mediachain::api::ApiConfig;
use mediachain::client::wire::OBJECTS_BATCH;
use mediachain::model::{codec, RAW};
use mediachain::store::UploadLimits;

use super::*;

/// A peer allowing each client 4,096 bytes of unreferenced uploads. A body gets two minutes
/// before any rate applies, so a peer that waited for a body would answer long after
/// [`PATIENCE`].
async fn quota_4k(dir: &tempfile::TempDir) -> mediachain::daemon::local::LocalPeer {
    let config = ApiConfig {
        upload_limits: UploadLimits {
            per_client: 4096,
            total: 1 << 20,
        },
        body_grace: Duration::from_secs(120),
        body_timeout: Duration::from_secs(120),
        ..ApiConfig::default()
    };
    peer_with(dir, config).await
}

/// The head of an upload of `length` bytes of `kind`, asking to be told to continue.
fn upload_head(path: &str, kind: &str, length: usize) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nhost: peer\r\ncontent-type: {kind}\r\n\
         content-length: {length}\r\nexpect: 100-continue\r\n\r\n"
    )
}

/// A whole upload of `bytes` as a blob, on a keep-alive connection.
fn upload_request(path: &str, bytes: &[u8]) -> String {
    let mut request = upload_head(path, "application/octet-stream", bytes.len())
        .replace("expect: 100-continue\r\n", "");
    request.push_str(std::str::from_utf8(bytes).unwrap());
    request
}

/// A blob of `size` bytes unique to `tag`, and its CID.
fn blob(tag: &str, size: usize) -> (String, Vec<u8>) {
    let mut bytes = tag.as_bytes().to_vec();
    bytes.resize(size, b'.');
    (codec::cid_of(RAW, &bytes).to_string(), bytes)
}

/// Sends `head` from `127.0.0.{host}` and sends nothing more: the answer, which must come
/// without the body, and the connection closed after it.
async fn refused_from_head(addr: std::net::SocketAddr, host: u8, head: &str) -> String {
    let mut stream = send_from(addr, host, head).await;
    let answer = read_until_closed(&mut stream).await;
    assert!(
        !answer.starts_with("HTTP/1.1 100"),
        "the client was told to send its body: {answer}"
    );
    answer
}

const QUOTA_REFUSALS: &str = "mediachain_storage_writes_refused_total{reason=\"quota-exceeded\"}";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_past_its_quota_is_refused_from_its_content_length_before_its_body() {
    let dir = tempfile::tempdir().unwrap();
    let peer = quota_4k(&dir).await;
    let mut client = send_from(peer.addr, 41, "").await;
    let (_, first) = blob("first", 3000);
    let stored = exchange(&mut client, &upload_request("/v1/objects", &first)).await;
    assert!(stored.starts_with("HTTP/1.1 201"), "{stored}");

    let answer = refused_from_head(
        peer.addr,
        41,
        &upload_head("/v1/objects", "application/octet-stream", 3000),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 507"), "{answer}");
    assert!(answer.contains("\"reason\":\"quota-exceeded\""), "{answer}");
    assert_eq!(metric(&peer, QUOTA_REFUSALS), 1.0);
    assert_eq!(
        metric(&peer, "mediachain_upload_bytes_unreferenced"),
        3000.0
    );

    // What fits is read and stored; another address has its own quota.
    let (_, small) = blob("small", 1000);
    let fits = exchange(&mut client, &upload_request("/v1/objects", &small)).await;
    assert!(fits.starts_with("HTTP/1.1 201"), "{fits}");
    let mut other = send_from(peer.addr, 42, "").await;
    let (_, theirs) = blob("theirs", 3000);
    let theirs = exchange(&mut other, &upload_request("/v1/objects", &theirs)).await;
    assert!(theirs.starts_with("HTTP/1.1 201"), "{theirs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_used_up_quota_refuses_any_upload_from_its_head_but_a_stored_object_named_by_cid() {
    let dir = tempfile::tempdir().unwrap();
    let peer = quota_4k(&dir).await;
    let mut client = send_from(peer.addr, 43, "").await;
    let (cid, whole) = blob("whole quota", 4096);
    let stored = exchange(&mut client, &upload_request("/v1/objects", &whole)).await;
    assert!(stored.starts_with("HTTP/1.1 201"), "{stored}");

    // DAG-JSON is re-encoded and a batch may repeat stored objects: their stored size is not
    // known from the head, but with no byte of quota left any new object passes it.
    for kind in ["application/json", OBJECTS_BATCH] {
        let answer = refused_from_head(peer.addr, 43, &upload_head("/v1/objects", kind, 80)).await;
        assert!(answer.starts_with("HTTP/1.1 507"), "{kind}: {answer}");
    }
    assert_eq!(metric(&peer, QUOTA_REFUSALS), 2.0);

    // The same blob again costs nothing: named by its CID it is read and answered 200.
    let again = exchange(
        &mut client,
        &upload_request(&format!("/v1/objects?cid={cid}"), &whole),
    )
    .await;
    assert!(again.starts_with("HTTP/1.1 200"), "{again}");
    assert!(again.contains("\"created\":false"), "{again}");
    assert_eq!(metric(&peer, QUOTA_REFUSALS), 2.0);
}
