//! Connection limits and timeouts (`api::server`).

use std::time::Duration;

use mediachain::api::ApiConfig;
use tokio::io::AsyncWriteExt;

use mediachain::daemon::local::LocalPeer;

use super::*;

const GET_HEALTHZ: &str = "GET /healthz HTTP/1.1\r\nhost: peer\r\n\r\n";

fn short(config: ApiConfig) -> ApiConfig {
    ApiConfig {
        header_timeout: Duration::from_millis(300),
        body_timeout: Duration::from_millis(300),
        idle_timeout: Duration::from_millis(300),
        ..config
    }
}

/// Waits (bounded) until at most `open` connections are counted open.
async fn connections_drop_to(peer: &LocalPeer, open: f64) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while metric(peer, "mediachain_http_connections_open") > open {
        assert!(
            tokio::time::Instant::now() < deadline,
            "closed connections stayed counted"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_finishes_its_headers_is_dropped_and_counted() {
    let peer = peer_with(short(ApiConfig::unlimited())).await;
    let mut slow = send(peer.addr, "POST /v1/objects HTTP/1.1\r\nhost: peer\r\n").await;
    let answer = read_until_closed(&mut slow).await;
    assert!(!answer.starts_with("HTTP/1.1 2"), "{answer}");
    metric_reaches(
        &peer,
        "mediachain_http_connections_dropped_total{reason=\"header-timeout\"}",
        1.0,
    )
    .await;
    // A complete request on a fresh connection is still served.
    let mut honest = send(peer.addr, "").await;
    assert!(exchange(&mut honest, GET_HEALTHZ)
        .await
        .starts_with("HTTP/1.1 200"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_whose_body_stalls_gets_408_and_the_connection_is_closed() {
    let config = ApiConfig {
        // Longer than the body timeout, so the 408 is written before the idle rule applies.
        idle_timeout: Duration::from_secs(5),
        ..short(ApiConfig::unlimited())
    };
    let peer = peer_with(config).await;
    let objects = peer.node.store().len();
    let mut slow = send(
        peer.addr,
        "POST /v1/objects HTTP/1.1\r\nhost: peer\r\ncontent-type: application/octet-stream\r\n\
         content-length: 1000\r\n\r\nabc",
    )
    .await;
    let answer = read_until_closed(&mut slow).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("body-timeout"), "{answer}");
    assert_eq!(peer.node.store().len(), objects, "nothing stored");
    metric_reaches(
        &peer,
        "mediachain_http_connections_dropped_total{reason=\"body-timeout\"}",
        1.0,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_keepalive_connection_is_closed_after_the_idle_timeout() {
    let peer = peer_with(short(ApiConfig::unlimited())).await;
    let mut client = send(peer.addr, "").await;
    assert!(exchange(&mut client, GET_HEALTHZ)
        .await
        .starts_with("HTTP/1.1 200"));
    assert_eq!(read_until_closed(&mut client).await, "");
    metric_reaches(
        &peer,
        "mediachain_http_connections_dropped_total{reason=\"keepalive-expired\"}",
        1.0,
    )
    .await;
    connections_drop_to(&peer, 0.0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_its_responses_is_dropped() {
    let peer = peer_with(short(ApiConfig::unlimited())).await;
    let blob = vec![7u8; 60 * 1024];
    let cid = peer.node.store().put_blob(&blob).unwrap();
    // Far more response bytes than the socket buffers hold, never read.
    let request = format!("GET /v1/objects/{cid} HTTP/1.1\r\nhost: peer\r\n\r\n");
    let mut stream = send(peer.addr, "").await;
    for _ in 0..400 {
        if stream.write_all(request.as_bytes()).await.is_err() {
            break;
        }
    }
    metric_reaches(
        &peer,
        "mediachain_http_connections_dropped_total{reason=\"stalled\"}",
        1.0,
    )
    .await;
    connections_drop_to(&peer, 0.0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_cap_get_503_until_one_closes() {
    let config = ApiConfig {
        max_connections: 3,
        ..ApiConfig::unlimited()
    };
    let peer = peer_with(config).await;
    let mut held = vec![];
    for _ in 0..3 {
        let mut stream = send(peer.addr, "").await;
        assert!(exchange(&mut stream, GET_HEALTHZ)
            .await
            .starts_with("HTTP/1.1 200"));
        held.push(stream);
    }
    let mut refused = send(peer.addr, "").await;
    let answer = read_until_closed(&mut refused).await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("retry-after: 1"), "{answer}");
    assert_eq!(
        metric(
            &peer,
            "mediachain_http_connections_dropped_total{reason=\"over-capacity\"}"
        ),
        1.0
    );
    drop(held.pop());
    connections_drop_to(&peer, 2.0).await;
    let mut again = send(peer.addr, "").await;
    assert!(exchange(&mut again, GET_HEALTHZ)
        .await
        .starts_with("HTTP/1.1 200"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_client_address_cannot_take_every_connection_but_a_trusted_proxy_can() {
    let config = ApiConfig {
        max_connections_per_client: 2,
        ..ApiConfig::unlimited()
    };
    let peer = peer_with(config).await;
    let mut held = vec![];
    for _ in 0..2 {
        let mut stream = send(peer.addr, "").await;
        assert!(exchange(&mut stream, GET_HEALTHZ)
            .await
            .starts_with("HTTP/1.1 200"));
        held.push(stream);
    }
    let answer = read_until_closed(&mut send(peer.addr, "").await).await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert_eq!(
        metric(
            &peer,
            "mediachain_http_connections_dropped_total{reason=\"client-over-capacity\"}"
        ),
        1.0
    );

    let config = ApiConfig {
        max_connections_per_client: 2,
        trusted_proxies: "127.0.0.0/8".parse().unwrap(),
        ..ApiConfig::unlimited()
    };
    let proxied = peer_with(config).await;
    let mut held = vec![];
    for _ in 0..4 {
        let mut stream = send(proxied.addr, "").await;
        assert!(exchange(&mut stream, GET_HEALTHZ)
            .await
            .starts_with("HTTP/1.1 200"));
        held.push(stream);
    }
}
