//! The gate every request passes once its head is read and before the routes see it: the
//! per-client rate limit ([`super::ratelimit`]), enforced so that refusing costs the peer as
//! little as possible and gains an abusive client nothing.
//!
//! - **Before routing.** The gate reads only the request's path (probes are exempt) and, from a
//!   trusted proxy, its `X-Forwarded-For` ([`super::origin`]); a refused request never reaches
//!   warp's filters, its handlers or the node.
//! - **Pre-rendered.** The `429` problem document is rendered once per process; a refusal is a
//!   status, two headers and a shared body.
//! - **Delayed (tarpit).** The `429` is held for [`ApiConfig::refusal_delay`] before it is sent,
//!   as HAProxy's `http-request tarpit` and nginx's `limit_req` (which queues excess requests
//!   rather than answering them at once) do. HTTP/1.1 answers a connection's requests in order,
//!   so a client waiting for its answers gets at most one refusal per connection per delay:
//!   with the per-client connection cap, one address costs the peer at most
//!   `max_connections_per_client` refusals per delay, however fast it asks. A held connection
//!   counts as waiting on its client, so the connection table may evict it for a newcomer.
//!   The connection stays open (keep-alive: a closed connection would only be reopened, and an
//!   accept costs more than a held request) unless the request came with a body, which the
//!   gate never reads: hyper then closes it after the answer.
//!
//! Refusals are counted in `mediachain_http_requests_total{kind=<route>,reason="429"}`, as any
//! answer. This module never touches the node.

use std::net::SocketAddr;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use bytes::Bytes;
use warp::http::{header, HeaderValue, Request, StatusCode};
use warp::reply::Response;

use super::origin::{bucket, client_of, TrustedProxies};
use super::problem::ApiError;
use super::ratelimit::RateLimiter;
use super::ApiConfig;
use crate::client::wire::PROBLEM_JSON;
use crate::node::metrics::{Metrics, ReasonLabel};

/// Paths never rate limited: the probes and the metrics scrape.
const EXEMPT: [&str; 3] = ["/healthz", "/readyz", "/metrics"];

/// The body of every rate-limit refusal, rendered once.
static RATE_LIMITED: LazyLock<Vec<u8>> = LazyLock::new(|| {
    let problem = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate-limited",
        "too many requests from this client address; retry after the seconds of Retry-After",
    )
    .problem();
    serde_json::to_vec(&problem).unwrap_or_default()
});

/// A refused request: when to answer, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    /// Seconds until the client's next token (`Retry-After`).
    pub retry_after: u64,
    /// How long the answer is held.
    pub delay: Duration,
}

impl Refusal {
    /// The `429` answer.
    pub fn response(&self) -> Response {
        let mut response = Response::new(Bytes::from_static(RATE_LIMITED.as_slice()).into());
        *response.status_mut() = StatusCode::TOO_MANY_REQUESTS;
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        headers.insert(header::RETRY_AFTER, HeaderValue::from(self.retry_after));
        response
    }
}

/// The gate: the rate limiter and what it needs to name a request's client.
pub struct Gate {
    limiter: RateLimiter,
    trusted: TrustedProxies,
    delay: Duration,
}

impl Gate {
    /// The gate of `config`'s rate limit, trusted proxies and refusal delay.
    pub fn new(config: &ApiConfig) -> Self {
        Self {
            limiter: RateLimiter::new(config.rate_per_second, config.burst),
            trusted: config.trusted_proxies.clone(),
            delay: config.refusal_delay,
        }
    }

    /// Lets `request`, which arrived from `remote`, through (taking a token of its client), or
    /// refuses it; a refusal is counted in `metrics`.
    pub fn check<B>(
        &self,
        remote: SocketAddr,
        request: &Request<B>,
        metrics: &Metrics,
        now: Instant,
    ) -> Result<(), Refusal> {
        let path = request.uri().path();
        if EXEMPT.contains(&path) {
            return Ok(());
        }
        let forwarded: Vec<&str> = if self.trusted.contains(&remote.ip()) {
            request
                .headers()
                .get_all("x-forwarded-for")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect()
        } else {
            vec![]
        };
        let client = bucket(client_of(remote.ip(), &forwarded, &self.trusted));
        let retry_after = match self.limiter.check(client, now) {
            Ok(()) => return Ok(()),
            Err(seconds) => seconds,
        };
        metrics
            .http_requests
            .get_or_create(&ReasonLabel {
                kind: super::openapi::route_of(path).to_string(),
                reason: "429".to_string(),
            })
            .inc();
        Err(Refusal {
            retry_after,
            delay: self.delay.min(Duration::from_secs(retry_after)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(rate: f64, burst: f64) -> ApiConfig {
        ApiConfig {
            rate_per_second: rate,
            burst,
            refusal_delay: Duration::from_secs(1),
            trusted_proxies: "10.0.0.0/8".parse().unwrap(),
            ..ApiConfig::default()
        }
    }

    fn request(path: &str, headers: &[(&str, &str)]) -> Request<()> {
        let mut builder = Request::get(path);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(()).unwrap()
    }

    #[test]
    fn a_client_past_its_burst_is_refused_with_a_held_answer_and_probes_pass() {
        let gate = Gate::new(&config(0.01, 2.0));
        let metrics = Metrics::new();
        let remote: SocketAddr = "192.0.2.7:5000".parse().unwrap();
        let now = Instant::now();
        let head = request("/v1/journal/head", &[]);
        assert!(gate.check(remote, &head, &metrics, now).is_ok());
        assert!(gate.check(remote, &head, &metrics, now).is_ok());
        let refusal = gate.check(remote, &head, &metrics, now).unwrap_err();
        assert_eq!(refusal.delay, Duration::from_secs(1));
        assert!(refusal.retry_after >= 1);
        for probe in EXEMPT {
            assert!(gate
                .check(remote, &request(probe, &[]), &metrics, now)
                .is_ok());
        }
        let other: SocketAddr = "192.0.2.8:5000".parse().unwrap();
        assert!(gate.check(other, &head, &metrics, now).is_ok());
        assert!(metrics
            .encode()
            .contains(r#"mediachain_http_requests_total{kind="/v1/journal/head",reason="429"} 1"#));
    }

    #[test]
    fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_budget() {
        let gate = Gate::new(&config(0.01, 1.0));
        let metrics = Metrics::new();
        let proxy: SocketAddr = "10.1.1.1:80".parse().unwrap();
        let now = Instant::now();
        let from = |client: &str| request("/v1/journal/head", &[("x-forwarded-for", client)]);
        assert!(gate
            .check(proxy, &from("203.0.113.1"), &metrics, now)
            .is_ok());
        assert!(gate
            .check(proxy, &from("203.0.113.2"), &metrics, now)
            .is_ok());
        assert!(gate
            .check(proxy, &from("203.0.113.1"), &metrics, now)
            .is_err());
        // The header of an untrusted connection names nobody but the connection.
        let direct: SocketAddr = "198.51.100.1:80".parse().unwrap();
        assert!(gate
            .check(direct, &from("203.0.113.3"), &metrics, now)
            .is_ok());
        assert!(gate
            .check(direct, &from("203.0.113.4"), &metrics, now)
            .is_err());
    }

    #[test]
    fn the_refusal_is_a_problem_document_with_retry_after() {
        let refusal = Refusal {
            retry_after: 3,
            delay: Duration::from_secs(1),
        };
        let response = refusal.response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], "3");
        let problem: serde_json::Value = serde_json::from_slice(&RATE_LIMITED).unwrap();
        assert_eq!(problem["reason"], "rate-limited");
        assert_eq!(problem["status"], 429);
    }
}
