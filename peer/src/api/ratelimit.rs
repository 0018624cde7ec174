//! Per-client rate limiting: a token bucket per client address, refilled continuously.
//!
//! A client over its budget gets `429 Too Many Requests` with `Retry-After`, and its request is
//! not handled at all. The probes (`/healthz`, `/readyz`, `/metrics`) are never limited.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use warp::http::StatusCode;
use warp::Filter;

use super::problem::ApiError;

/// Most buckets kept: past it the full ones are dropped, then the fullest.
pub const MAX_CLIENTS: usize = 10_000;

struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Token buckets by client address.
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

impl RateLimiter {
    /// `rate` requests per second with bursts of `burst`; a rate of 0 disables limiting.
    pub fn new(rate: f64, burst: f64) -> Self {
        Self {
            rate,
            burst: burst.max(1.0),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token for `client`; on refusal, the seconds until one is available.
    pub fn check(&self, client: IpAddr, now: Instant) -> Result<(), u64> {
        if self.rate <= 0.0 {
            return Ok(());
        }
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if buckets.len() >= MAX_CLIENTS && !buckets.contains_key(&client) {
            let (rate, burst) = (self.rate, self.burst);
            // Drop the buckets that are full again: forgetting them changes nothing.
            let level = |b: &Bucket| b.tokens + now.duration_since(b.at).as_secs_f64() * rate;
            buckets.retain(|_, b| level(b) < burst);
            if buckets.len() >= MAX_CLIENTS {
                // Every client is active: forget the one with the most budget left, never one
                // that is out of budget (forgetting it would refill it).
                let fullest = buckets
                    .iter()
                    .max_by(|a, b| level(a.1).total_cmp(&level(b.1)))
                    .map(|(ip, _)| *ip);
                if let Some(ip) = fullest {
                    buckets.remove(&ip);
                }
            }
        }
        let bucket = buckets.entry(client).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.rate).min(self.burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - bucket.tokens) / self.rate).ceil().max(1.0) as u64)
        }
    }

    /// Clients with a bucket.
    pub fn clients(&self) -> usize {
        self.buckets
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .len()
    }
}

/// A filter that rejects requests over their client's budget with a 429 problem; `client` names
/// the client of a request (see [`super::origin::client`]).
pub fn filter(
    limiter: Arc<RateLimiter>,
    client: impl Filter<Extract = (Option<IpAddr>,), Error = Infallible> + Clone + Send + Sync + 'static,
) -> impl Filter<Extract = (), Error = warp::Rejection> + Clone {
    client
        .and_then(move |client: Option<IpAddr>| {
            let limiter = limiter.clone();
            async move {
                let Some(client) = client else {
                    return Ok(());
                };
                limiter.check(client, Instant::now()).map_err(|seconds| {
                    warp::reject::custom(
                        ApiError::new(
                            StatusCode::TOO_MANY_REQUESTS,
                            "rate-limited",
                            format!("too many requests from {client}; retry in {seconds} s"),
                        )
                        .retry_after(seconds),
                    )
                })
            }
        })
        .untuple_one()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_client_over_its_burst_waits_for_the_refill_while_others_are_served() {
        let limiter = RateLimiter::new(10.0, 2.0);
        let (a, b) = ("127.0.0.1".parse().unwrap(), "127.0.0.2".parse().unwrap());
        let t0 = Instant::now();
        assert_eq!(limiter.check(a, t0), Ok(()));
        assert_eq!(limiter.check(a, t0), Ok(()));
        assert_eq!(limiter.check(a, t0), Err(1));
        assert_eq!(limiter.check(b, t0), Ok(()));
        assert_eq!(limiter.check(a, t0 + Duration::from_millis(100)), Ok(()));
    }

    #[test]
    fn concurrent_requests_of_one_client_get_exactly_its_burst() {
        let limiter = Arc::new(RateLimiter::new(0.000_001, 100.0));
        let client: IpAddr = "192.0.2.1".parse().unwrap();
        let now = Instant::now();
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let limiter = limiter.clone();
                std::thread::spawn(move || {
                    (0..100)
                        .filter(|_| limiter.check(client, now).is_ok())
                        .count()
                })
            })
            .collect();
        let served: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
        assert_eq!(served, 100);
    }

    #[test]
    fn a_flood_of_new_addresses_neither_grows_the_table_nor_refills_a_drained_client() {
        let limiter = RateLimiter::new(0.001, 2.0);
        let drained: IpAddr = "192.0.2.1".parse().unwrap();
        let t0 = Instant::now();
        assert!(limiter.check(drained, t0).is_ok());
        assert!(limiter.check(drained, t0).is_ok());
        assert!(limiter.check(drained, t0).is_err());
        // More active clients than the table holds (each leaves one token of two).
        for i in 0..(MAX_CLIENTS as u32 + 100) {
            let ip = IpAddr::from(std::net::Ipv6Addr::from(u128::from(i) << 64));
            assert!(limiter.check(ip, t0).is_ok());
            assert!(limiter.clients() <= MAX_CLIENTS);
        }
        assert!(
            limiter.check(drained, t0).is_err(),
            "the drained client was refilled"
        );
    }

    #[test]
    fn a_zero_rate_never_limits() {
        let limiter = RateLimiter::new(0.0, 0.0);
        let a = "127.0.0.1".parse().unwrap();
        for _ in 0..1000 {
            assert_eq!(limiter.check(a, Instant::now()), Ok(()));
        }
    }
}
