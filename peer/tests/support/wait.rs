//! A deadline on every wait of a test: a commit bug fails the test with what it waited for
//! instead of hanging it.

#![allow(dead_code)]

use std::future::Future;
use std::time::Duration;

/// How long a single wait of an in-process test may take.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// Awaits `future`, failing the test (naming `what`) after [`DEADLINE`].
pub async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    match tokio::time::timeout(DEADLINE, future).await {
        Ok(value) => value,
        Err(_) => panic!("timed out after {DEADLINE:?} waiting for {what}"),
    }
}
