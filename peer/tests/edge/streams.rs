//! Event streams: capped per client and in total (429 + Retry-After), slots freed on close.

use mediachain::api::ApiConfig;

use super::*;

/// Opens `GET /v1/events` as forwarded for `client`; the response (its body streams on).
async fn open(http: &reqwest::Client, url: &str, client: &str) -> reqwest::Response {
    http.get(format!("{url}/v1/events"))
        .header("x-forwarded-for", client)
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_are_capped_per_client_and_in_total_and_freed_on_close() {
    let config = ApiConfig {
        max_streams: 3,
        max_streams_per_client: 2,
        trusted_proxies: "127.0.0.0/8".parse().unwrap(),
        ..ApiConfig::unlimited()
    };
    let peer = peer_with(config).await;
    let http = reqwest::Client::new();
    let (a, b) = ("203.0.113.1", "203.0.113.2");
    let mut held = vec![];
    for _ in 0..2 {
        let stream = open(&http, &peer.url, a).await;
        assert_eq!(stream.status(), 200);
        held.push(stream);
    }
    let refused = open(&http, &peer.url, a).await;
    assert_eq!(refused.status(), 429);
    assert_eq!(refused.headers()["retry-after"], "5");
    let problem: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(problem["reason"], "client-over-capacity");

    let stream = open(&http, &peer.url, b).await;
    assert_eq!(stream.status(), 200);
    held.push(stream);
    let refused = open(&http, &peer.url, b).await;
    assert_eq!(refused.status(), 429);
    let problem: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(problem["reason"], "over-capacity");
    assert_eq!(metric(&peer, "mediachain_event_streams_open"), 3.0);
    assert_eq!(
        metric(
            &peer,
            "mediachain_event_streams_dropped_total{reason=\"over-capacity\"}"
        ),
        1.0
    );

    // A client that goes away frees its slot.
    drop(held.remove(0));
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let stream = open(&http, &peer.url, b).await;
        if stream.status() == 200 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the closed stream kept its slot"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
