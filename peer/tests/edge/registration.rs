//! Registration: a challenge is spent by its first successful use; registrations are rate
//! limited per client address.

use mediachain::api::ApiConfig;
use mediachain::client::wire::{Challenge, Pow, RegistrationRequest};
use mediachain::node::registration::Registrar;
use mediachain::trust::{pow, SecretKey};

use super::*;

/// A registration request of a fresh key on a fresh challenge of the peer at `url`.
async fn request(http: &reqwest::Client, url: &str) -> RegistrationRequest {
    let challenge: Challenge = http
        .get(format!("{url}/v1/registration/challenge"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let client = SecretKey::generate().public();
    let bytes = hex::decode(&challenge.challenge).unwrap();
    let stamp = pow::solve(
        pow::Purpose::Registration,
        &Registrar::resource(&client, &bytes),
        challenge.bits,
    )
    .unwrap();
    RegistrationRequest {
        client: client.to_string(),
        challenge: challenge.challenge,
        pow: Pow {
            bits: stamp.bits,
            nonce: stamp.nonce,
        },
    }
}

/// Posts `request`, as forwarded for `forwarded`; the status and the problem's reason.
async fn register(
    http: &reqwest::Client,
    url: &str,
    request: &RegistrationRequest,
    forwarded: &str,
) -> (u16, String) {
    let response = http
        .post(format!("{url}/v1/registration"))
        .header("x-forwarded-for", forwarded)
        .json(request)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body: serde_json::Value = response.json().await.unwrap();
    (
        status,
        body["reason"].as_str().unwrap_or_default().to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_registration_is_refused_as_spent() {
    let peer = peer_with(ApiConfig::unlimited()).await;
    let http = reqwest::Client::new();
    let request = request(&http, &peer.url).await;
    assert_eq!(register(&http, &peer.url, &request, "").await.0, 201);
    assert_eq!(
        register(&http, &peer.url, &request, "").await,
        (409, "spent-challenge".to_string())
    );
    assert_eq!(
        metric(
            &peer,
            "mediachain_rejected_total{kind=\"registration\",reason=\"spent-challenge\"}"
        ),
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registrations_are_rate_limited_per_client_address() {
    let config = ApiConfig {
        registration_rate: 0.001,
        registration_burst: 2.0,
        trusted_proxies: "127.0.0.0/8".parse().unwrap(),
        ..ApiConfig::unlimited()
    };
    let peer = peer_with(config).await;
    let http = reqwest::Client::new();
    for _ in 0..2 {
        let request = request(&http, &peer.url).await;
        assert_eq!(
            register(&http, &peer.url, &request, "203.0.113.7").await.0,
            201
        );
    }
    let request = request(&http, &peer.url).await;
    assert_eq!(
        register(&http, &peer.url, &request, "203.0.113.7").await,
        (429, "rate-limited".to_string())
    );
    // The refused request spent nothing: the same request from another address is served.
    assert_eq!(
        register(&http, &peer.url, &request, "203.0.113.8").await.0,
        201
    );
    // Other routes are not limited by the registration budget.
    let head = http
        .get(format!("{}/v1/journal/head", peer.url))
        .header("x-forwarded-for", "203.0.113.7")
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 200);
}
