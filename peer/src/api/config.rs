//! Settings of the HTTP API and its edge limits, read from the environment (`MEDIACHAIN_API_*`).
//!
//! The defaults are those a reverse proxy would use in front of an application (nginx,
//! Traefik): see `docs/peer-contract.md` for the table of every limit and its variable. Parsing
//! is strict: a value that does not parse is an error naming the variable, never ignored.

use std::time::Duration;

use super::origin::TrustedProxies;
use crate::store::UploadLimits;

/// Settings of the API.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Sustained requests per second allowed per client (0: unlimited).
    pub rate_per_second: f64,
    /// Requests a client may burst above the sustained rate.
    pub burst: f64,
    /// Sustained registrations per second allowed per client (0: unlimited).
    pub registration_rate: f64,
    /// Registrations a client may burst above the sustained rate.
    pub registration_burst: f64,
    /// How long a request refused by the rate limit waits before its `429` is sent (a tarpit:
    /// a client waiting for its answers is slowed to one refusal per connection per delay).
    pub refusal_delay: Duration,
    /// Largest request body (transactions, registrations); objects are bounded by the
    /// datastore's object size limit.
    pub max_body_bytes: usize,
    /// Largest batch upload (`POST /v1/objects` of many objects); it holds at most
    /// [`MAX_BATCH_OBJECTS`] objects, each within the datastore's object size limit.
    pub max_batch_bytes: usize,
    /// Networks of the reverse proxies whose `X-Forwarded-For` entries are believed.
    pub trusted_proxies: TrustedProxies,
    /// Longest time from the first byte of a request to the end of its headers.
    pub header_timeout: Duration,
    /// Longest time from the end of a request's headers to the end of its body.
    pub body_timeout: Duration,
    /// Time every request body gets before [`ApiConfig::body_min_rate`] applies.
    pub body_grace: Duration,
    /// Bytes per second a body must average after the grace period: each such amount received
    /// extends its deadline by a second (0: only the body timeout applies).
    pub body_min_rate: u64,
    /// A connection with no byte moving either way for this long is closed (between requests,
    /// or a client that stopped reading a response).
    pub idle_timeout: Duration,
    /// Most open connections; past it a connection waiting on the client holding the most is
    /// evicted for a newcomer, or the newcomer gets `503` and is closed.
    pub max_connections: usize,
    /// Most open connections from one client address (trusted proxies are exempt).
    pub max_connections_per_client: usize,
    /// Most open event streams; past it `429`.
    pub max_streams: usize,
    /// Most open event streams of one client; past it `429`.
    pub max_streams_per_client: usize,
    /// An event stream whose client accepts no event for this long (its buffer full) is ended;
    /// the client resumes from its `Last-Event-ID`.
    pub stream_send_timeout: Duration,
    /// Bytes of uploads no committed transaction references, per client and in total.
    pub upload_limits: UploadLimits,
    /// Uploads no transaction referenced for this long are collected.
    pub upload_grace: Duration,
    /// Client writes are refused (`507`) while the data volume has less free space than this.
    pub min_free_bytes: u64,
    /// Most uploads of one client being received or stored at once; past it `429` before the
    /// body is read (nginx's `limit_conn` on the upload location).
    pub max_uploads_per_client: usize,
    /// Jobs each lane of the blocking pool (reads; writes and their hashing) runs at once
    /// (`super::offload`).
    pub blocking_threads: usize,
    /// Jobs that may wait for a thread in each lane; past it `503`.
    pub blocking_queue: usize,
}

/// Environment variable overriding the per-client rate limit: `RATE[:BURST]` requests per
/// second per client address, `0` to disable.
pub const RATE_LIMIT_ENV: &str = "MEDIACHAIN_API_RATE_LIMIT";
/// Environment variable: [`ApiConfig::refusal_delay`] (e.g. `1s`; `0s` answers at once).
pub const REFUSAL_DELAY_ENV: &str = "MEDIACHAIN_API_REFUSAL_DELAY";
/// Environment variable: `RATE[:BURST]` registrations per second per client address.
pub const REGISTRATION_RATE_ENV: &str = "MEDIACHAIN_API_REGISTRATION_RATE";
/// Environment variable: comma-separated networks (CIDR) of trusted reverse proxies.
pub const TRUSTED_PROXIES_ENV: &str = "MEDIACHAIN_API_TRUSTED_PROXIES";
/// Environment variable: [`ApiConfig::max_batch_bytes`] (bytes, or with a `KiB`/`MiB` suffix).
pub const MAX_BATCH_BYTES_ENV: &str = "MEDIACHAIN_API_MAX_BATCH_BYTES";
/// Most objects in one batch upload.
pub const MAX_BATCH_OBJECTS: usize = 4096;
/// Environment variable: [`ApiConfig::header_timeout`] (e.g. `30s`).
pub const HEADER_TIMEOUT_ENV: &str = "MEDIACHAIN_API_HEADER_TIMEOUT";
/// Environment variable: [`ApiConfig::body_timeout`] (e.g. `60s`).
pub const BODY_TIMEOUT_ENV: &str = "MEDIACHAIN_API_BODY_TIMEOUT";
/// Environment variable: [`ApiConfig::body_grace`] (e.g. `20s`).
pub const BODY_GRACE_ENV: &str = "MEDIACHAIN_API_BODY_GRACE";
/// Environment variable: [`ApiConfig::body_min_rate`] (bytes per second, `0` to disable).
pub const BODY_MIN_RATE_ENV: &str = "MEDIACHAIN_API_BODY_MIN_RATE";
/// Environment variable: [`ApiConfig::idle_timeout`] (e.g. `75s`).
pub const IDLE_TIMEOUT_ENV: &str = "MEDIACHAIN_API_IDLE_TIMEOUT";
/// Environment variable: [`ApiConfig::max_connections`].
pub const MAX_CONNECTIONS_ENV: &str = "MEDIACHAIN_API_MAX_CONNECTIONS";
/// Environment variable: [`ApiConfig::max_connections_per_client`].
pub const MAX_CONNECTIONS_PER_CLIENT_ENV: &str = "MEDIACHAIN_API_MAX_CONNECTIONS_PER_CLIENT";

/// Environment variable: [`ApiConfig::max_streams`].
pub const MAX_STREAMS_ENV: &str = "MEDIACHAIN_API_MAX_STREAMS";
/// Environment variable: [`ApiConfig::max_streams_per_client`].
pub const MAX_STREAMS_PER_CLIENT_ENV: &str = "MEDIACHAIN_API_MAX_STREAMS_PER_CLIENT";
/// Environment variable: [`ApiConfig::stream_send_timeout`] (e.g. `10s`).
pub const STREAM_SEND_TIMEOUT_ENV: &str = "MEDIACHAIN_API_STREAM_SEND_TIMEOUT";

/// Environment variable: per-client quota of [`ApiConfig::upload_limits`] (bytes, or with a
/// `KiB`/`MiB`/`GiB` suffix).
pub const UPLOAD_QUOTA_ENV: &str = "MEDIACHAIN_API_UPLOAD_QUOTA";
/// Environment variable: total of [`ApiConfig::upload_limits`].
pub const UPLOAD_TOTAL_ENV: &str = "MEDIACHAIN_API_UPLOAD_TOTAL";
/// Environment variable: [`ApiConfig::upload_grace`] (e.g. `24h`).
pub const UPLOAD_GRACE_ENV: &str = "MEDIACHAIN_API_UPLOAD_GRACE";
/// Environment variable: [`ApiConfig::min_free_bytes`].
pub const MIN_FREE_SPACE_ENV: &str = "MEDIACHAIN_API_MIN_FREE_SPACE";

/// Environment variable: [`ApiConfig::max_uploads_per_client`].
pub const MAX_UPLOADS_PER_CLIENT_ENV: &str = "MEDIACHAIN_API_MAX_UPLOADS_PER_CLIENT";
/// Environment variable: [`ApiConfig::blocking_threads`].
pub const BLOCKING_THREADS_ENV: &str = "MEDIACHAIN_API_BLOCKING_THREADS";
/// Environment variable: [`ApiConfig::blocking_queue`] (`0`: refuse whatever finds every
/// thread busy).
pub const BLOCKING_QUEUE_ENV: &str = "MEDIACHAIN_API_BLOCKING_QUEUE";

/// A setting of the environment that does not parse.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {variable}=`{value}`: {detail}")]
pub struct ApiConfigError {
    /// The variable at fault.
    pub variable: &'static str,
    /// Its value.
    pub value: String,
    /// What is wrong.
    pub detail: String,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            rate_per_second: 200.0,
            burst: 400.0,
            // Six a minute, ten at once: a client registers once per key.
            registration_rate: 0.1,
            registration_burst: 10.0,
            // HAProxy's `timeout tarpit` is typically a few seconds; one is Retry-After's least.
            refusal_delay: Duration::from_secs(1),
            max_body_bytes: 1024 * 1024,
            max_batch_bytes: 16 * 1024 * 1024,
            trusted_proxies: TrustedProxies::default(),
            // hyper's default; nginx uses 60 s.
            header_timeout: Duration::from_secs(30),
            // nginx's client_body_timeout and Traefik's readTimeout.
            body_timeout: Duration::from_secs(60),
            // Apache's mod_reqtimeout default, `body=20,MinRate=500`.
            body_grace: Duration::from_secs(20),
            body_min_rate: 500,
            // nginx's keepalive_timeout.
            idle_timeout: Duration::from_secs(75),
            max_connections: 1024,
            max_connections_per_client: 64,
            max_streams: 512,
            max_streams_per_client: 8,
            stream_send_timeout: Duration::from_secs(10),
            upload_limits: UploadLimits {
                per_client: 64 * MIB,
                total: 1024 * MIB,
            },
            upload_grace: Duration::from_secs(24 * 3600),
            min_free_bytes: 256 * MIB,
            // `mediachain ingest` sends 8 at once. No total: uploads whose bodies are still
            // arriving cost only a connection (capped, and evicted when slow), and those being
            // stored are bounded by the write lane of the blocking pool.
            max_uploads_per_client: 8,
            // Most jobs wait on the disk, not the CPU; a write lane of 8 shares each flush
            // among up to 8 writers (the store's group commit).
            blocking_threads: 8,
            blocking_queue: 64,
        }
    }
}

const MIB: u64 = 1024 * 1024;

/// A number of bytes: digits with an optional `KiB`, `MiB` or `GiB` suffix.
fn bytes(text: &str) -> Result<u64, String> {
    let digits = text.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = match text[digits.len()..].to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kib" | "k" => 1024,
        "mib" | "m" => MIB,
        "gib" | "g" => 1024 * MIB,
        other => return Err(format!("unknown unit `{other}` (use KiB, MiB or GiB)")),
    };
    let n: u64 = digits.trim().parse().map_err(|e| format!("{e}"))?;
    n.checked_mul(unit).ok_or_else(|| "too large".to_string())
}

/// Reads `variable` and parses it with `parse` when set.
fn read<T>(
    variable: &'static str,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Result<Option<T>, ApiConfigError> {
    match std::env::var(variable) {
        Ok(value) => parse(value.trim())
            .map(Some)
            .map_err(|detail| ApiConfigError {
                variable,
                value,
                detail,
            }),
        Err(_) => Ok(None),
    }
}

fn duration(text: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(text).map_err(|e| e.to_string())?;
    if d.is_zero() {
        return Err("must be longer than zero".into());
    }
    Ok(d)
}

fn count(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

/// `RATE[:BURST]`; the burst defaults to twice the rate.
fn rate(text: &str) -> Result<(f64, f64), String> {
    let mut parts = text.split(':');
    let rate: f64 = parts
        .next()
        .unwrap_or_default()
        .trim()
        .parse()
        .map_err(|e| format!("RATE: {e}"))?;
    let burst = match parts.next() {
        Some(b) => b.trim().parse().map_err(|e| format!("BURST: {e}"))?,
        None => (rate * 2.0).max(1.0),
    };
    if !(rate >= 0.0 && burst >= 0.0) {
        return Err("RATE and BURST must be zero or more".into());
    }
    Ok((rate, burst))
}

impl ApiConfig {
    /// The defaults, overridden by the `MEDIACHAIN_API_*` variables that are set.
    pub fn from_env() -> Result<Self, ApiConfigError> {
        let mut c = Self::default();
        if let Some((rate, burst)) = read(RATE_LIMIT_ENV, rate)? {
            (c.rate_per_second, c.burst) = (rate, burst);
        }
        if let Some((rate, burst)) = read(REGISTRATION_RATE_ENV, rate)? {
            (c.registration_rate, c.registration_burst) = (rate, burst);
        }
        if let Some(d) = read(REFUSAL_DELAY_ENV, |t| {
            humantime::parse_duration(t).map_err(|e| e.to_string())
        })? {
            c.refusal_delay = d;
        }
        if let Some(proxies) = read(TRUSTED_PROXIES_ENV, |t| t.parse())? {
            c.trusted_proxies = proxies;
        }
        if let Some(n) = read(MAX_BATCH_BYTES_ENV, bytes)? {
            c.max_batch_bytes = usize::try_from(n).unwrap_or(usize::MAX);
        }
        if let Some(d) = read(HEADER_TIMEOUT_ENV, duration)? {
            c.header_timeout = d;
        }
        if let Some(d) = read(BODY_TIMEOUT_ENV, duration)? {
            c.body_timeout = d;
        }
        if let Some(d) = read(BODY_GRACE_ENV, duration)? {
            c.body_grace = d;
        }
        if let Some(n) = read(BODY_MIN_RATE_ENV, bytes)? {
            c.body_min_rate = n;
        }
        if let Some(d) = read(IDLE_TIMEOUT_ENV, duration)? {
            c.idle_timeout = d;
        }
        if let Some(n) = read(MAX_CONNECTIONS_ENV, count)? {
            c.max_connections = n;
        }
        if let Some(n) = read(MAX_CONNECTIONS_PER_CLIENT_ENV, count)? {
            c.max_connections_per_client = n;
        }
        if let Some(n) = read(MAX_STREAMS_ENV, count)? {
            c.max_streams = n;
        }
        if let Some(n) = read(MAX_STREAMS_PER_CLIENT_ENV, count)? {
            c.max_streams_per_client = n;
        }
        if let Some(d) = read(STREAM_SEND_TIMEOUT_ENV, duration)? {
            c.stream_send_timeout = d;
        }
        if let Some(n) = read(UPLOAD_QUOTA_ENV, bytes)? {
            c.upload_limits.per_client = n;
        }
        if let Some(n) = read(UPLOAD_TOTAL_ENV, bytes)? {
            c.upload_limits.total = n;
        }
        if let Some(d) = read(UPLOAD_GRACE_ENV, duration)? {
            c.upload_grace = d;
        }
        if let Some(n) = read(MIN_FREE_SPACE_ENV, bytes)? {
            c.min_free_bytes = n;
        }
        if let Some(n) = read(MAX_UPLOADS_PER_CLIENT_ENV, count)? {
            c.max_uploads_per_client = n;
        }
        if let Some(n) = read(BLOCKING_THREADS_ENV, count)? {
            c.blocking_threads = n;
        }
        if let Some(n) = read(BLOCKING_QUEUE_ENV, |t| {
            t.parse::<usize>().map_err(|e| e.to_string())
        })? {
            c.blocking_queue = n;
        }
        Ok(c)
    }

    /// No rate limit, no per-client caps and no upload quota (tests and benchmarks on
    /// loopback); the free-space reserve stays.
    pub fn unlimited() -> Self {
        Self {
            rate_per_second: 0.0,
            registration_rate: 0.0,
            max_connections_per_client: usize::MAX,
            max_streams_per_client: usize::MAX,
            max_uploads_per_client: usize::MAX,
            upload_limits: UploadLimits {
                per_client: u64::MAX,
                total: u64::MAX,
            },
            ..Self::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_durations_and_counts_parse_strictly() {
        assert_eq!(rate("50"), Ok((50.0, 100.0)));
        assert_eq!(rate("50:10"), Ok((50.0, 10.0)));
        assert_eq!(rate("0"), Ok((0.0, 1.0)));
        assert!(rate("fast").is_err());
        assert!(rate("-1").is_err());
        assert_eq!(duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(duration("0s").is_err());
        assert!(duration("soon").is_err());
        assert_eq!(count("3"), Ok(3));
        assert_eq!(bytes("512"), Ok(512));
        assert_eq!(bytes("64MiB"), Ok(64 * MIB));
        assert_eq!(bytes("2g"), Ok(2048 * MIB));
        assert!(bytes("5 parsecs").is_err());
        assert!(bytes("MiB").is_err());
        assert!(count("0").is_err());
    }
}
