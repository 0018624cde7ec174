//! Metric labels from the route table only; probes and `/metrics` never wait on the node.

use std::time::Duration;

use mediachain::api::ApiConfig;

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_paths_share_the_other_label() {
    let peer = peer_with(ApiConfig::unlimited()).await;
    let http = reqwest::Client::new();
    for i in 0..30 {
        let path = format!("{}/v1/random-{i}/x{i}", peer.url);
        assert_eq!(http.get(path).send().await.unwrap().status(), 404);
    }
    let cid = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy";
    let object = format!("{}/v1/objects/{cid}", peer.url);
    assert_eq!(http.get(object).send().await.unwrap().status(), 404);
    let text = peer.metrics.encode();
    assert_eq!(
        metric(
            &peer,
            "mediachain_http_requests_total{kind=\"other\",reason=\"404\"}"
        ),
        30.0,
        "{text}"
    );
    assert_eq!(
        metric(
            &peer,
            "mediachain_http_requests_total{kind=\"/v1/objects/{cid}\",reason=\"404\"}"
        ),
        1.0,
        "{text}"
    );
    assert!(!text.contains("random"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_and_metrics_answer_while_the_node_is_locked() {
    let peer = peer_with(ApiConfig::unlimited()).await;
    let (locked_tx, locked_rx) = std::sync::mpsc::channel::<()>();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let node = peer.node.clone();
    let holder = tokio::task::spawn_blocking(move || {
        node.with_journal(|_| {
            locked_tx.send(()).unwrap();
            // Held until the test releases it (bounded, so a failing test still ends).
            let _ = release_rx.recv_timeout(PATIENCE);
        })
    });
    locked_rx.recv_timeout(PATIENCE).unwrap();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    for path in ["/healthz", "/readyz", "/metrics"] {
        let response = http.get(format!("{}{path}", peer.url)).send().await;
        assert_eq!(
            response.map(|r| r.status().as_u16()).ok(),
            Some(200),
            "{path} waited on the node's lock"
        );
    }
    release_tx.send(()).unwrap();
    holder.await.unwrap();
}
