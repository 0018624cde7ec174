//! Request bodies read by the routes, bounded in size and in time. A body must arrive at a
//! minimum average rate once a grace period is over, as Apache's mod_reqtimeout
//! (`RequestReadTimeout body=20,MinRate=500`): its deadline starts at the grace period after the
//! headers and every [`ApiConfig::body_min_rate`] bytes received extend it by a second, never past
//! [`ApiConfig::body_timeout`]. A client trickling a few bytes is thus dropped after the grace
//! period, not held for the whole body timeout. While a body is read the connection is marked as
//! waiting on its client ([`BodyReading`]), which makes it a candidate for eviction when the
//! connection cap is reached (`super::connections`).

use std::time::Duration;

use futures::StreamExt;
use tokio::time::Instant;
use warp::http::StatusCode;
use warp::{Buf, Filter};

use super::activity::BodyReading;
use super::problem::ApiError;
use super::{Api, ApiConfig};

/// How long a body may take: the rules of [`ApiConfig`] that bound it in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyTime {
    /// The time every body gets, whatever its rate.
    pub grace: Duration,
    /// Bytes per second that extend the deadline by a second (0: no rate rule).
    pub min_rate: u64,
    /// The longest any body may take.
    pub timeout: Duration,
}

impl BodyTime {
    /// The rules of `config`.
    pub fn of(config: &ApiConfig) -> Self {
        Self {
            grace: config.body_grace,
            min_rate: config.body_min_rate,
            timeout: config.body_timeout,
        }
    }

    /// How long after the headers a body that has delivered `received` bytes may still take,
    /// and the reason it is dropped when that passes: `body-too-slow` (under the minimum rate)
    /// or `body-timeout` (the longest any body may take).
    pub fn allowance(&self, received: u64) -> (Duration, &'static str) {
        if self.min_rate == 0 {
            return (self.timeout, "body-timeout");
        }
        let earned = Duration::from_secs_f64(received as f64 / self.min_rate as f64);
        let by_rate = self.grace.saturating_add(earned);
        if by_rate < self.timeout {
            (by_rate, "body-too-slow")
        } else {
            (self.timeout, "body-timeout")
        }
    }
}

/// The request body, refused with 413 past `limit` bytes (whether or not a Content-Length was
/// sent, so streamed uploads are bounded too) and with 408 when it arrives too slowly (see
/// [`BodyTime`]; the connection is then closed).
pub(crate) fn body(
    api: &Api,
    limit: usize,
) -> impl Filter<Extract = (Result<Vec<u8>, ApiError>,), Error = warp::Rejection> + Clone {
    body_after(api, limit, warp::any().map(|| Ok(())).boxed())
        .map(|read: Result<((), Vec<u8>), ApiError>| read.map(|((), body)| body))
}

/// [`body`], read only if `check` (which sees the request's head) lets it through, with what
/// the check passed on (a slot held while the body is read and used): a refusal from the head
/// is answered without a byte of the body being read, so the client never sends it (an
/// `Expect: 100-continue` client is not told to continue; hyper closes the connection after
/// the answer rather than read the unread body).
pub(crate) fn body_after<C, T>(
    api: &Api,
    limit: usize,
    check: C,
) -> impl Filter<Extract = (Result<(T, Vec<u8>), ApiError>,), Error = warp::Rejection> + Clone
where
    C: Filter<Extract = (Result<T, ApiError>,), Error = warp::Rejection> + Clone,
    T: Send,
{
    let time = BodyTime::of(&api.config);
    let metrics = api.metrics.clone();
    check
        .and(warp::header::optional::<u64>("content-length"))
        .and(warp::ext::optional::<BodyReading>())
        .and(warp::body::stream())
        .then(
            move |checked: Result<T, ApiError>,
                  length: Option<u64>,
                  reading: Option<BodyReading>,
                  stream| {
                let metrics = metrics.clone();
                async move {
                    let passed = checked?;
                    if let Some(reading) = &reading {
                        reading.start();
                    }
                    let result = read_body(limit, length, stream, time).await;
                    if let Some(reading) = &reading {
                        reading.end();
                    }
                    if let Err(error) = &result {
                        if error.status == StatusCode::REQUEST_TIMEOUT {
                            metrics.edge.drop_connection(error.slug);
                        }
                    }
                    result.map(|body| (passed, body))
                }
            },
        )
}

async fn read_body<S, B>(
    limit: usize,
    length: Option<u64>,
    stream: S,
    time: BodyTime,
) -> Result<Vec<u8>, ApiError>
where
    S: futures::Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too-large",
            format!("the request body is over the limit of {limit} bytes"),
        )
    };
    if length.is_some_and(|l| l > limit as u64) {
        return Err(too_large());
    }
    let started = Instant::now();
    let mut out = Vec::with_capacity(length.map_or(0, |l| l as usize));
    let mut stream = std::pin::pin!(stream);
    loop {
        let (allowance, reason) = time.allowance(out.len() as u64);
        let next = match tokio::time::timeout_at(started + allowance, stream.next()).await {
            Ok(next) => next,
            Err(_) => {
                let detail = match reason {
                    "body-too-slow" => format!(
                        "the request body arrived slower than {} bytes per second after {:?}",
                        time.min_rate, time.grace
                    ),
                    _ => format!("the request body did not arrive within {:?}", time.timeout),
                };
                return Err(ApiError::new(StatusCode::REQUEST_TIMEOUT, reason, detail));
            }
        };
        let Some(chunk) = next else {
            return Ok(out);
        };
        let mut chunk =
            chunk.map_err(|e| ApiError::bad_request("malformed-body", format!("body: {e}")))?;
        if out.len() + chunk.remaining() > limit {
            return Err(too_large());
        }
        while chunk.has_remaining() {
            let part = chunk.chunk();
            out.extend_from_slice(part);
            let n = part.len();
            chunk.advance(n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_deadline_grows_with_the_bytes_received_up_to_the_timeout() {
        let time = BodyTime {
            grace: Duration::from_secs(20),
            min_rate: 500,
            timeout: Duration::from_secs(60),
        };
        assert_eq!(
            time.allowance(0),
            (Duration::from_secs(20), "body-too-slow")
        );
        assert_eq!(
            time.allowance(5_000),
            (Duration::from_secs(30), "body-too-slow")
        );
        assert_eq!(
            time.allowance(20_000),
            (Duration::from_secs(60), "body-timeout")
        );
        let flat = BodyTime {
            min_rate: 0,
            ..time
        };
        assert_eq!(flat.allowance(0), (Duration::from_secs(60), "body-timeout"));
    }
}
