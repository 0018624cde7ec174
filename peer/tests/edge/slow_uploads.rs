//! Slow uploads: the minimum body rate after a grace period (`api::body`) and eviction at the
//! connection cap (`api::connections`).

use std::time::Duration;

use mediachain::api::ApiConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::*;

const GET_HEALTHZ: &str = "GET /healthz HTTP/1.1\r\nhost: peer\r\n\r\n";

/// The head of an upload of `length` bytes.
fn upload_head(length: usize) -> String {
    format!(
        "POST /v1/objects HTTP/1.1\r\nhost: peer\r\ncontent-type: application/octet-stream\r\n\
         content-length: {length}\r\n\r\n"
    )
}

/// Whether the peer closed `stream` (within a short wait; data read is discarded).
async fn closed(stream: &mut TcpStream) -> bool {
    let mut buffer = [0u8; 1024];
    loop {
        match tokio::time::timeout(Duration::from_millis(300), stream.read(&mut buffer)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_under_the_minimum_rate_is_dropped_after_the_grace_period_and_a_steady_one_completes(
) {
    let config = ApiConfig {
        body_grace: Duration::from_millis(500),
        body_min_rate: 1000,
        // Far longer than the test waits: only the rate rule can drop the slow upload.
        body_timeout: Duration::from_secs(60),
        ..ApiConfig::unlimited()
    };
    let peer = peer_with(config).await;

    // 20 bytes every 100 ms: 200 bytes per second, under the minimum of 1,000.
    let slow = send(peer.addr, &upload_head(100_000)).await;
    let (mut read, mut write) = slow.into_split();
    let trickle = tokio::spawn(async move {
        for _ in 0..300 {
            if write.write_all(&[b'x'; 20]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let mut answer = vec![];
    let ended = tokio::time::timeout(PATIENCE, read.read_to_end(&mut answer)).await;
    assert!(ended.is_ok(), "the slow upload was kept open");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("body-too-slow"), "{answer}");
    trickle.abort();
    metric_reaches(
        &peer,
        "mediachain_http_connections_dropped_total{reason=\"body-too-slow\"}",
        1.0,
    )
    .await;

    // 600 bytes every 200 ms (3,000 per second) for 2 s: past the grace period, above the rate.
    let objects = peer.node.store().len();
    let mut steady = send(peer.addr, &upload_head(6_000)).await;
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        steady.write_all(&[b'y'; 600]).await.unwrap();
    }
    let answer = exchange(&mut steady, "").await;
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    assert_eq!(peer.node.store().len(), objects + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_cap_the_slowest_upload_of_the_client_holding_most_makes_room_for_a_newcomer() {
    let config = ApiConfig {
        max_connections: 4,
        body_grace: Duration::from_secs(60),
        ..ApiConfig::unlimited()
    };
    let peer = peer_with(config).await;
    let evicted = "mediachain_http_connections_dropped_total{reason=\"evicted\"}";

    // One address takes the whole cap with uploads that send 3 bytes, oldest first.
    let mut slow = vec![];
    for _ in 0..4 {
        slow.push(send_from(peer.addr, 2, &format!("{}abc", upload_head(100_000))).await);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    metric_reaches(&peer, "mediachain_http_connections_open", 4.0).await;

    // Another address is served: the first (slowest) upload was evicted for it.
    let mut honest = send_from(peer.addr, 3, "").await;
    assert!(exchange(&mut honest, GET_HEALTHZ)
        .await
        .starts_with("HTTP/1.1 200"));
    assert_eq!(metric(&peer, evicted), 1.0);
    assert!(
        closed(&mut slow[0]).await,
        "the oldest slow upload is closed"
    );
    assert!(!closed(&mut slow[1]).await, "the others stay");

    // The address holding 3 gets no room from one holding 1: it is refused.
    let refused = read_until_closed(&mut send_from(peer.addr, 2, "").await).await;
    assert!(refused.starts_with("HTTP/1.1 503"), "{refused}");

    // Each new address takes from the one holding most, until every address holds one.
    let mut newcomer = send_from(peer.addr, 4, "").await;
    assert!(exchange(&mut newcomer, GET_HEALTHZ)
        .await
        .starts_with("HTTP/1.1 200"));
    let mut last = send_from(peer.addr, 5, "").await;
    assert!(exchange(&mut last, GET_HEALTHZ)
        .await
        .starts_with("HTTP/1.1 200"));
    assert_eq!(metric(&peer, evicted), 3.0);
    let full = read_until_closed(&mut send_from(peer.addr, 6, "").await).await;
    assert!(full.starts_with("HTTP/1.1 503"), "{full}");
    // The honest client's idle keep-alive connection was never taken.
    assert!(exchange(&mut honest, GET_HEALTHZ)
        .await
        .starts_with("HTTP/1.1 200"));
}
