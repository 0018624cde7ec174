//! The rate limit's gate (`api::gate`): a client over its rate is answered `429` only after the
//! refusal delay, on a connection kept open, before any route reads its request; other clients
//! are answered meanwhile.

use std::time::{Duration, Instant};

use mediachain::api::ApiConfig;
use tokio::io::AsyncWriteExt;

use super::*;

const GET_HEAD: &str = "GET /v1/journal/head HTTP/1.1\r\nhost: peer\r\n\r\n";

/// A peer allowing each client 2 requests (no refill during the test), refusals held `delay`.
async fn strict(delay: Duration) -> Edge {
    let config = ApiConfig {
        rate_per_second: 0.001,
        burst: 2.0,
        refusal_delay: delay,
        ..ApiConfig::default()
    };
    peer_with(config).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_over_its_rate_waits_for_its_429_while_others_are_answered_at_once() {
    let delay = Duration::from_millis(1500);
    let peer = strict(delay).await;
    let mut abuser = send_from(peer.addr, 21, "").await;
    for _ in 0..2 {
        assert!(exchange(&mut abuser, GET_HEAD)
            .await
            .starts_with("HTTP/1.1 200"));
    }
    let held = tokio::spawn(async move {
        let started = Instant::now();
        let first = exchange(&mut abuser, GET_HEAD).await;
        let first_after = started.elapsed();
        // The connection stays open: the next refusal is held as long on the same socket.
        let started = Instant::now();
        let second = exchange(&mut abuser, GET_HEAD).await;
        (first, first_after, second, started.elapsed())
    });
    // Another client is answered while the abuser's refusal is held.
    let mut honest = send_from(peer.addr, 22, "").await;
    assert!(exchange(&mut honest, GET_HEAD)
        .await
        .starts_with("HTTP/1.1 200"));
    assert!(!held.is_finished(), "the refusal was not held");

    let (first, first_after, second, second_after) =
        tokio::time::timeout(PATIENCE, held).await.unwrap().unwrap();
    for (answer, after) in [(&first, first_after), (&second, second_after)] {
        assert!(answer.starts_with("HTTP/1.1 429"), "{answer}");
        assert!(
            answer.to_ascii_lowercase().contains("retry-after: "),
            "{answer}"
        );
        assert!(answer.contains("\"reason\":\"rate-limited\""), "{answer}");
        assert!(after >= delay, "answered after {after:?}, under the delay");
    }
    assert_eq!(
        metric(
            &peer,
            "mediachain_http_requests_total{kind=\"/v1/journal/head\",reason=\"429\"}"
        ),
        2.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_upload_is_answered_without_its_body_being_read_and_closed() {
    let peer = strict(Duration::from_millis(200)).await;
    let mut client = send_from(peer.addr, 23, "").await;
    for _ in 0..2 {
        assert!(exchange(&mut client, GET_HEAD)
            .await
            .starts_with("HTTP/1.1 200"));
    }
    // Headers of a 100 kB upload and none of its body: only the gate can answer this.
    let head = "POST /v1/objects HTTP/1.1\r\nhost: peer\r\n\
                content-type: application/octet-stream\r\ncontent-length: 100000\r\n\r\n";
    client.write_all(head.as_bytes()).await.unwrap();
    let answer = read_until_closed(&mut client).await;
    assert!(answer.starts_with("HTTP/1.1 429"), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("connection: close"),
        "{answer}"
    );
    assert_eq!(
        metric(
            &peer,
            "mediachain_http_requests_total{kind=\"/v1/objects\",reason=\"429\"}"
        ),
        1.0
    );
    // Nothing was stored: the upload never reached its route.
    assert_eq!(metric(&peer, "mediachain_upload_bytes_unreferenced"), 0.0);
}
