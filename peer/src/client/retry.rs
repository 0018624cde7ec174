//! When to try a refused request again: the peer answers `429 Too Many Requests` when a client
//! is over one of its shares (the rate limit, the uploads in progress a client may have, 8 by
//! default, its event streams) and `503 Service Unavailable` with `Retry-After` when it is busy
//! (a full blocking pool or mempool); waiting is then the cure (docs/peer-contract.md).
//!
//! Pure: the wait is a function of the policy, the attempt, the answer's status and
//! `Retry-After` and a random draw; [`super::Client`] sleeps and tries again. It never decides
//! that a request may be repeated (the client only sends those that may through it), never
//! retries a broken connection or any other refusal, and never waits longer than the policy's
//! cap.

use std::time::Duration;

/// How a [`super::Client`] retries the requests a peer refused for now.
///
/// A `429` is retried after its `Retry-After` (or, without one, after a back-off doubling from
/// [`RetryPolicy::backoff`], jittered: from half to all of it); a `503` only with a
/// `Retry-After`. A `Retry-After` is honoured plus up to a quarter more (spreading clients
/// refused together); one asking for more than [`RetryPolicy::max_wait`] is not waited for
/// (the refusal is returned: a shorter wait would be refused again). Only the seconds form of
/// `Retry-After` is read (what the peer sends); a date counts as none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Tries of one request in all (1: never retried).
    pub attempts: u32,
    /// The longest wait before one retry.
    pub max_wait: Duration,
    /// The first back-off of a `429` without `Retry-After`.
    pub backoff: Duration,
}

impl Default for RetryPolicy {
    /// Six tries, waits of at most 10 s (about a minute in all at worst), back-off from 250 ms.
    fn default() -> Self {
        Self {
            attempts: 6,
            max_wait: Duration::from_secs(10),
            backoff: Duration::from_millis(250),
        }
    }
}

impl RetryPolicy {
    /// Never retry: every refusal is returned at once.
    pub const NEVER: Self = Self {
        attempts: 1,
        max_wait: Duration::ZERO,
        backoff: Duration::ZERO,
    };

    /// The wait before trying again a request whose try number `attempt` (from 1) was answered
    /// `status` with `retry_after` (the header's value, if any), given a random `draw` in
    /// [0, 1); `None` when it is not tried again.
    pub fn wait(
        &self,
        attempt: u32,
        status: u16,
        retry_after: Option<&str>,
        draw: f64,
    ) -> Option<Duration> {
        if attempt >= self.attempts {
            return None;
        }
        let seconds = retry_after.and_then(|v| v.trim().parse::<u64>().ok());
        let draw = draw.clamp(0.0, 1.0);
        let wait = match (status, seconds) {
            (429 | 503, Some(seconds)) => {
                let asked = Duration::from_secs(seconds);
                if asked > self.max_wait {
                    return None;
                }
                asked + asked.mul_f64(draw / 4.0)
            }
            (429, None) => {
                let doublings = (attempt - 1).min(16);
                let step = self.backoff.saturating_mul(1 << doublings);
                let step = step.min(self.max_wait);
                step.mul_f64(0.5 + draw / 2.0)
            }
            _ => return None,
        };
        Some(wait.min(self.max_wait))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: RetryPolicy = RetryPolicy {
        attempts: 4,
        max_wait: Duration::from_secs(10),
        backoff: Duration::from_millis(100),
    };

    #[test]
    fn a_retry_after_is_honoured_with_up_to_a_quarter_more_and_never_past_the_cap() {
        assert_eq!(
            POLICY.wait(1, 429, Some("2"), 0.0),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            POLICY.wait(1, 503, Some(" 2 "), 0.999),
            Some(Duration::from_secs(2).mul_f64(1.0 + 0.999 / 4.0))
        );
        assert_eq!(
            POLICY.wait(1, 429, Some("9"), 0.999),
            Some(Duration::from_secs(10)),
            "the jitter stops at the cap"
        );
        assert_eq!(POLICY.wait(1, 429, Some("11"), 0.0), None);
        assert_eq!(POLICY.wait(1, 503, Some("11"), 0.0), None);
    }

    #[test]
    fn a_429_without_retry_after_backs_off_doubling_and_jittered_up_to_the_cap() {
        let waits: Vec<_> = (1..4).map(|a| POLICY.wait(a, 429, None, 0.0)).collect();
        let half = |ms| Some(Duration::from_millis(ms) / 2);
        assert_eq!(waits, vec![half(100), half(200), half(400)]);
        assert_eq!(
            POLICY.wait(1, 429, Some("Wed, 21 Oct 2026 07:28:00 GMT"), 0.999),
            Some(Duration::from_millis(100).mul_f64(0.5 + 0.999 / 2.0)),
            "a date counts as no Retry-After"
        );
        let patient = RetryPolicy {
            attempts: 40,
            ..POLICY
        };
        assert_eq!(
            patient.wait(30, 429, None, 0.999),
            Some(Duration::from_secs(10).mul_f64(0.5 + 0.999 / 2.0))
        );
    }

    #[test]
    fn only_refusals_for_now_are_retried_and_only_as_often_as_the_policy_says() {
        assert_eq!(
            POLICY.wait(1, 503, None, 0.5),
            None,
            "503 without Retry-After"
        );
        for status in [400, 403, 404, 409, 413, 422, 500, 502, 507] {
            assert_eq!(POLICY.wait(1, status, Some("1"), 0.5), None, "{status}");
        }
        assert!(POLICY.wait(3, 429, Some("1"), 0.5).is_some());
        assert_eq!(
            POLICY.wait(4, 429, Some("1"), 0.5),
            None,
            "the fourth try was the last"
        );
        assert_eq!(RetryPolicy::NEVER.wait(1, 429, Some("0"), 0.5), None);
    }
}
