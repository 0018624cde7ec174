//! Client addresses behind proxies (`api::origin`), seen through the rate limiter.

use mediachain::api::ApiConfig;

use super::*;

/// A peer allowing each client 2 requests (no refill during the test).
async fn strict(trusted: &str) -> Edge {
    let config = ApiConfig {
        rate_per_second: 0.001,
        burst: 2.0,
        trusted_proxies: trusted.parse().unwrap(),
        ..ApiConfig::default()
    };
    peer_with(config).await
}

/// The status of `GET /v1/journal/head` sent with `X-Forwarded-For: forwarded`.
async fn status(http: &reqwest::Client, url: &str, forwarded: &str) -> u16 {
    http.get(format!("{url}/v1/journal/head"))
        .header("x-forwarded-for", forwarded)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_trusted_proxy_the_client_is_the_hop_the_proxy_appended() {
    let peer = strict("127.0.0.0/8").await;
    let http = reqwest::Client::new();
    // The client writes whatever it likes on the left; the proxy appends its real address.
    assert_eq!(status(&http, &peer.url, "1.1.1.1, 203.0.113.7").await, 200);
    assert_eq!(status(&http, &peer.url, "2.2.2.2, 203.0.113.7").await, 200);
    assert_eq!(status(&http, &peer.url, "3.3.3.3, 203.0.113.7").await, 429);
    // Another client behind the same proxy has its own budget.
    assert_eq!(status(&http, &peer.url, "203.0.113.8").await, 200);
    // IPv6 clients share a budget per /64.
    assert_eq!(status(&http, &peer.url, "2001:db8:0:1::1").await, 200);
    assert_eq!(status(&http, &peer.url, "2001:db8:0:1::2").await, 200);
    assert_eq!(status(&http, &peer.url, "2001:db8:0:1::3").await, 429);
    assert_eq!(status(&http, &peer.url, "2001:db8:0:2::1").await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_connection_cannot_pick_its_client_address() {
    let peer = strict("").await;
    let http = reqwest::Client::new();
    assert_eq!(status(&http, &peer.url, "203.0.113.1").await, 200);
    assert_eq!(status(&http, &peer.url, "203.0.113.2").await, 200);
    assert_eq!(status(&http, &peer.url, "203.0.113.3").await, 429);
}
