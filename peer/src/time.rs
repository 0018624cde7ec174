//! Wall-clock time since the Unix epoch: whole seconds in certificates, revocations and
//! transactions, milliseconds in blocks.

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch, as carried in certificates, revocations and journal entries.
pub type UnixSeconds = u64;

/// Milliseconds since the Unix epoch, as carried in blocks.
pub type UnixMillis = u64;

/// The current time in [`UnixMillis`] (0 if the clock is before 1970).
pub fn now_ms() -> UnixMillis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as UnixMillis)
        .unwrap_or(0)
}

/// The current time in [`UnixSeconds`] (0 if the clock is before 1970).
pub fn now() -> UnixSeconds {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
