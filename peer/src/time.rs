//! Wall-clock time as whole seconds since the Unix epoch, the unit every signed object uses.

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch, as carried in certificates, revocations and journal entries.
pub type UnixSeconds = u64;

/// The current time in [`UnixSeconds`] (0 if the clock is before 1970).
pub fn now() -> UnixSeconds {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
