//! What the upload records add up to: unreferenced bytes per client and in total (the quotas'
//! measure), the count of records, the uploads being written and where the collection resumes.
//! Rebuilt from the records when the store opens; changed only under the [`Usage`]'s lock: an
//! upload is charged (reserved) before it is written, and un-charged if its write fails.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use super::{Record, UploadError, UploadLimits};
use crate::model::Cid;

/// Unreferenced bytes per client and in total, uploads being written included: changed only
/// under the lock of the [`Usage`] that holds them (so an admission and its charge are one
/// step), read also without it, by
/// [`Store::upload_room`](crate::store::Store::upload_room), which then never waits.
#[derive(Debug, Default)]
pub(super) struct Shares {
    per_client: HashMap<IpAddr, u64>,
    total: u64,
}

impl Shares {
    /// Refuses `size` more bytes of `client` past `limits`.
    pub(super) fn admits(
        &self,
        client: IpAddr,
        size: u64,
        limits: UploadLimits,
    ) -> Result<(), UploadError> {
        let (used, total) = self.of(client);
        if used.saturating_add(size) > limits.per_client {
            return Err(UploadError::Quota {
                client,
                used,
                size,
                quota: limits.per_client,
            });
        }
        if total.saturating_add(size) > limits.total {
            return Err(UploadError::Full {
                used: total,
                size,
                limit: limits.total,
            });
        }
        Ok(())
    }

    /// Unreferenced bytes of `client`, and in total.
    pub(super) fn of(&self, client: IpAddr) -> (u64, u64) {
        let used = self.per_client.get(&client).copied().unwrap_or(0);
        (used, self.total)
    }
}

/// The lock of some [`Shares`] (a panic while holding it left no half-done change: each change
/// is made under one lock).
pub(super) fn lock(shares: &Mutex<Shares>) -> MutexGuard<'_, Shares> {
    shares.lock().unwrap_or_else(|p| p.into_inner())
}

/// The upload records' usage (rebuilt from the records on open).
#[derive(Debug, Default)]
pub(super) struct Usage {
    /// The bytes per client and in total.
    pub(super) shares: Arc<Mutex<Shares>>,
    /// Upload records (those being written included).
    pub(super) records: u64,
    /// Objects being written by an upload, charged already, their writes not yet finished: no
    /// other upload, release or collection of them proceeds until they are
    /// ([`Uploads::settled`](super::Uploads::settled)).
    pub(super) writing: HashSet<Cid>,
    /// Where the next collection pass resumes its scan.
    pub(super) cursor: Vec<u8>,
}

impl Usage {
    pub(super) fn add(&mut self, record: &Record) {
        let mut shares = lock(&self.shares);
        *shares.per_client.entry(record.client).or_insert(0) += record.size;
        shares.total += record.size;
        self.records += 1;
    }

    /// Refuses `size` more bytes of `client` past `limits`.
    pub(super) fn admits(
        &self,
        client: IpAddr,
        size: u64,
        limits: UploadLimits,
    ) -> Result<(), UploadError> {
        lock(&self.shares).admits(client, size, limits)
    }

    /// Unreferenced bytes of `client`, and in total.
    pub(super) fn of(&self, client: IpAddr) -> (u64, u64) {
        lock(&self.shares).of(client)
    }

    pub(super) fn remove(&mut self, record: &Record) {
        let mut shares = lock(&self.shares);
        if let Some(used) = shares.per_client.get_mut(&record.client) {
            *used = used.saturating_sub(record.size);
            if *used == 0 {
                shares.per_client.remove(&record.client);
            }
        }
        shares.total = shares.total.saturating_sub(record.size);
        self.records = self.records.saturating_sub(1);
    }
}
