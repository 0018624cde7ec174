//! Uploads refused from their heads (`api::storage::check_claim`): an upload whose
//! `Content-Length` would pass its client's quota is answered `507` before a byte of its body is
//! read (an `Expect: 100-continue` client is never told to send it) and the connection is
//! closed; a client whose quota is used up is refused any upload from its head, except one whose
//! `?cid=` names an object already stored, which costs nothing. So is an upload of a client
//! with `max_uploads_per_client` uploads in progress (`429` with `Retry-After`).

use std::time::Duration;

use mediachain::api::ApiConfig;
use mediachain::client::wire::OBJECTS_BATCH;
use mediachain::model::{codec, RAW};
use mediachain::store::UploadLimits;

use super::*;

/// A peer allowing each client 4,096 bytes of unreferenced uploads. A body gets two minutes
/// before any rate applies, so a peer that waited for a body would answer long after
/// [`PATIENCE`].
async fn quota_4k() -> Edge {
    let config = ApiConfig {
        upload_limits: UploadLimits {
            per_client: 4096,
            total: 1 << 20,
        },
        body_grace: Duration::from_secs(120),
        body_timeout: Duration::from_secs(120),
        ..ApiConfig::default()
    };
    peer_with(config).await
}

/// The head of an upload of `length` bytes of `kind`, asking to be told to continue.
pub(super) fn upload_head(path: &str, kind: &str, length: usize) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nhost: peer\r\ncontent-type: {kind}\r\n\
         content-length: {length}\r\nexpect: 100-continue\r\n\r\n"
    )
}

/// A whole upload of `bytes` as a blob, on a keep-alive connection.
pub(super) fn upload_request(path: &str, bytes: &[u8]) -> String {
    let mut request = upload_head(path, "application/octet-stream", bytes.len())
        .replace("expect: 100-continue\r\n", "");
    request.push_str(std::str::from_utf8(bytes).unwrap());
    request
}

/// A blob of `size` bytes unique to `tag`, and its CID.
pub(super) fn blob(tag: &str, size: usize) -> (String, Vec<u8>) {
    let mut bytes = tag.as_bytes().to_vec();
    bytes.resize(size, b'.');
    (codec::cid_of(RAW, &bytes).to_string(), bytes)
}

/// Sends `head` from `127.0.0.{host}` and sends nothing more: the answer, which must come
/// without the body, and the connection closed after it.
pub(super) async fn refused_from_head(addr: std::net::SocketAddr, host: u8, head: &str) -> String {
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
    let peer = quota_4k().await;
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
    let peer = quota_4k().await;
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

const IN_PROGRESS: &str = "mediachain_uploads_in_progress";

/// Starts an upload of a 4,096-byte blob from `127.0.0.{host}` and sends half its body: it holds
/// an upload slot while the rest is awaited. The connection and the rest of the body.
async fn half_upload(
    addr: std::net::SocketAddr,
    host: u8,
    tag: &str,
) -> (tokio::net::TcpStream, String) {
    let (_, bytes) = blob(tag, 4096);
    let request = upload_request("/v1/objects", &bytes);
    let (first, rest) = request.split_at(request.len() - 2048);
    (send_from(addr, host, first).await, rest.to_string())
}

/// Sends the rest of a [`half_upload`] and reads the answer.
async fn finish(stream: &mut tokio::net::TcpStream, rest: &str) -> String {
    exchange(stream, rest).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_past_its_uploads_in_progress_is_refused_429_from_the_head_and_others_are_not() {
    let config = ApiConfig {
        max_uploads_per_client: 2,
        body_grace: Duration::from_secs(120),
        body_timeout: Duration::from_secs(120),
        ..ApiConfig::default()
    };
    let peer = peer_with(config).await;
    let (mut one, rest_one) = half_upload(peer.addr, 51, "one").await;
    let (_two, _) = half_upload(peer.addr, 51, "two").await;
    metric_reaches(&peer, IN_PROGRESS, 2.0).await;
    let refused = refused_from_head(
        peer.addr,
        51,
        &upload_head("/v1/objects", "application/octet-stream", 4096),
    )
    .await;
    assert!(refused.starts_with("HTTP/1.1 429"), "{refused}");
    assert!(
        refused.contains("\"reason\":\"too-many-uploads\""),
        "{refused}"
    );
    assert!(
        refused.to_ascii_lowercase().contains("retry-after: 1"),
        "{refused}"
    );
    assert!(
        metric(
            &peer,
            "mediachain_storage_writes_refused_total{reason=\"too-many-uploads\"}"
        ) >= 1.0
    );

    // Another client is not held back; a finished upload frees its slot.
    let mut other = send_from(peer.addr, 52, "").await;
    let (_, theirs) = blob("theirs", 1000);
    let theirs = exchange(&mut other, &upload_request("/v1/objects", &theirs)).await;
    assert!(theirs.starts_with("HTTP/1.1 201"), "{theirs}");
    let done = finish(&mut one, &rest_one).await;
    assert!(done.starts_with("HTTP/1.1 201"), "{done}");
    assert_eq!(metric(&peer, IN_PROGRESS), 1.0);
    let (_, next) = blob("next", 1000);
    let next = exchange(&mut one, &upload_request("/v1/objects", &next)).await;
    assert!(next.starts_with("HTTP/1.1 201"), "{next}");
}
