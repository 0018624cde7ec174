//! Uploads: objects clients stored through the API that no committed transaction references yet.
//!
//! Each upload is recorded (when, how many bytes, which client) in the `uploads` tree, written
//! before the object itself (a crash leaves at most a record without its object, collected as any
//! stale upload), so that a client's unreferenced bytes are bounded (a quota per client address and
//! a total for the peer) and uploads nobody commits can be collected after a grace period. An
//! upload is charged before it is written, under the usage's lock, and written without it (a
//! flood's large writes never hold up other clients' admissions); whoever else names an object
//! being written (another upload, a release, a collection) waits for that write. An upload leaves
//! the records when a block joining the canonical chain references it ([`Store::release_uploads`],
//! which also records the height it released through, so a restart replays what a crash
//! interrupted); a pending transaction keeps it fresh ([`Store::touch_uploads`]); a stale one is
//! deleted, then its record ([`Store::collect_upload`]). Objects that came from peers are never
//! recorded: this module only ever deletes what a client uploaded and nothing committed since.

use std::net::IpAddr;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use sled::Tree;

use self::record::{record_key, Record, RECORD};
use self::usage::{lock, Shares, Usage};
use super::{Checked, Store, StoreError, LARGE_OBJECT_BYTES};
use crate::model::Cid;

const RELEASED: &[u8] = b"m:released";

/// Limits on the bytes of uploads no committed transaction references.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploadLimits {
    /// Bytes one client address may have unreferenced.
    pub per_client: u64,
    /// Bytes all clients together may have unreferenced.
    pub total: u64,
}

/// Why an upload was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// The client's quota is used up.
    #[error(
        "client {client} has {used} bytes of uploads that no committed transaction references; \
         {size} more would pass its quota of {quota} bytes"
    )]
    Quota {
        /// The client (bucketed address).
        client: IpAddr,
        /// Its unreferenced bytes.
        used: u64,
        /// The upload's size.
        size: u64,
        /// The quota.
        quota: u64,
    },
    /// The peer's total for unreferenced uploads is used up.
    #[error(
        "this peer holds {used} bytes of uploads that no committed transaction references; \
         {size} more would pass its limit of {limit} bytes"
    )]
    Full {
        /// Unreferenced bytes of all clients.
        used: u64,
        /// The upload's size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// The store refused the object or failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What [`Store::put_uploads`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uploaded {
    /// Per object, in order, whether it was new (an object named twice is new once).
    pub created: Vec<bool>,
    /// The client's bytes of unreferenced uploads after the write.
    pub used: u64,
    /// All clients' bytes of unreferenced uploads after the write.
    pub total: u64,
}

/// The upload records of a store and the usage they add up to.
pub(super) struct Uploads {
    tree: Tree,
    usage: Mutex<Usage>,
    /// Signalled when uploads finish writing (their objects leave [`Usage::writing`]).
    written: Condvar,
    /// The usage's shares, read without its lock.
    shares: Arc<Mutex<Shares>>,
}

impl Uploads {
    pub(super) fn open(db: &sled::Db) -> Result<Self, StoreError> {
        let tree = db.open_tree("uploads")?;
        let mut usage = Usage::default();
        for entry in tree.scan_prefix([RECORD]) {
            let (_, value) = entry?;
            usage.add(&Record::decode(&value)?);
        }
        Ok(Self {
            tree,
            shares: usage.shares.clone(),
            usage: Mutex::new(usage),
            written: Condvar::new(),
        })
    }

    fn usage(&self) -> MutexGuard<'_, Usage> {
        self.usage.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The usage once none of `cids` is being written by an upload: waits for those writes
    /// (only when two uploads, or an upload and a release, name the same object at once).
    fn settled(&self, cids: &[Cid]) -> MutexGuard<'_, Usage> {
        let mut usage = self.usage();
        while !usage.writing.is_empty() && cids.iter().any(|cid| usage.writing.contains(cid)) {
            usage = self.written.wait(usage).unwrap_or_else(|p| p.into_inner());
        }
        usage
    }
}

impl Store {
    /// Stores a client's upload of `bytes` under `cid` (verified as [`Store::put`] does) and
    /// records it against `client`, unless that passes `limits`. An object already stored is
    /// not charged. Durable when it returns; whether the object was new.
    pub fn put_upload(
        &self,
        cid: &Cid,
        bytes: &[u8],
        client: IpAddr,
        now: u64,
        limits: UploadLimits,
    ) -> Result<bool, UploadError> {
        let uploaded = self.put_uploads(&[(*cid, bytes)], client, now, limits)?;
        Ok(uploaded.created.first().copied().unwrap_or(false))
    }

    /// Stores many uploads of `client` as [`Store::put_upload`] does one, all or none: every
    /// object is verified first and the new ones together must fit `limits` before any is
    /// written; durable when it returns (a flush shared with the writers that finished at about
    /// the same time: [`group`](super::group)). The usage it reports is the client's once its
    /// write is done.
    pub fn put_uploads(
        &self,
        objects: &[(Cid, &[u8])],
        client: IpAddr,
        now: u64,
        limits: UploadLimits,
    ) -> Result<Uploaded, UploadError> {
        let checked = objects
            .iter()
            .map(|(cid, bytes)| self.checked(cid, bytes))
            .collect::<Result<Vec<_>, _>>()?;
        self.put_checked_uploads(&checked, client, now, limits)
    }

    /// [`Store::put_uploads`] of objects the store has already named and checked
    /// ([`Store::check`]): nothing is hashed again.
    pub fn put_checked_uploads(
        &self,
        objects: &[Checked<'_>],
        client: IpAddr,
        now: u64,
        limits: UploadLimits,
    ) -> Result<Uploaded, UploadError> {
        let cids: Vec<Cid> = objects.iter().map(Checked::cid).collect();
        let mut created = Vec::with_capacity(objects.len());
        let mut new: Vec<(Cid, &[u8])> = vec![];
        let records: Vec<Record> = {
            let mut usage = self.uploads.settled(&cids);
            let mut named = std::collections::HashSet::new();
            for (cid, object) in cids.iter().zip(objects) {
                let fresh = named.insert(*cid) && !self.has(cid)?;
                created.push(fresh);
                if fresh {
                    new.push((*cid, object.bytes()));
                }
            }
            if new.is_empty() {
                let (used, total) = usage.of(client);
                return Ok(Uploaded {
                    created,
                    used,
                    total,
                });
            }
            let size: u64 = new.iter().map(|(_, bytes)| bytes.len() as u64).sum();
            usage.admits(client, size, limits)?;
            // Charged now and written without the lock, so that one client's large write
            // never holds up another's admission; un-charged below if the write fails.
            let records: Vec<Record> = new
                .iter()
                .map(|(_, bytes)| Record {
                    at: now,
                    size: bytes.len() as u64,
                    client,
                })
                .collect();
            for ((cid, _), record) in new.iter().zip(&records) {
                usage.add(record);
                usage.writing.insert(*cid);
            }
            records
        };
        let written = self.write_uploads(&new, &records);
        let (used, total) = {
            let mut usage = self.uploads.usage();
            for (cid, _) in &new {
                usage.writing.remove(cid);
            }
            if let Err((recorded, _)) = &written {
                for record in &records[*recorded..] {
                    usage.remove(record);
                }
            }
            usage.of(client)
        };
        self.uploads.written.notify_all();
        written.map_err(|(_, error)| error)?;
        // Large objects are durable already, and their records were flushed before them.
        if new
            .iter()
            .any(|(_, bytes)| bytes.len() <= LARGE_OBJECT_BYTES)
        {
            self.sync()?;
        }
        Ok(Uploaded {
            created,
            used,
            total,
        })
    }

    /// Writes the records of uploads, then their objects, not in a sled transaction: one holds
    /// sled's process-wide write lock, stopping every read and write of the peer for as long as
    /// a large object takes to write. sled recovers a prefix of its log, and the records are
    /// flushed before any large object's file is written, so a crash (or a failed write) leaves
    /// at most records whose objects are missing, which count against their client until
    /// collected as any stale upload. On failure, how many records were written.
    fn write_uploads(
        &self,
        new: &[(Cid, &[u8])],
        records: &[Record],
    ) -> Result<(), (usize, StoreError)> {
        for (written, ((cid, _), record)) in new.iter().zip(records).enumerate() {
            self.uploads
                .tree
                .insert(record_key(cid), &record.encode()[..])
                .map_err(|e| (written, e.into()))?;
        }
        // A large object is a file, durable at once: its record must be durable first.
        if new
            .iter()
            .any(|(_, bytes)| bytes.len() > LARGE_OBJECT_BYTES)
        {
            self.sync().map_err(|e| (records.len(), e))?;
        }
        for (cid, bytes) in new {
            self.objects
                .insert(&cid.to_bytes(), bytes)
                .map_err(|e| (records.len(), e))?;
        }
        Ok(())
    }

    /// Whether `size` more bytes of new uploads of `client` fit `limits` now (what
    /// [`Store::put_uploads`] would refuse them with), without writing anything and without
    /// waiting: the usage as of now, uploads being written included.
    pub fn upload_room(
        &self,
        client: IpAddr,
        size: u64,
        limits: UploadLimits,
    ) -> Result<(), UploadError> {
        lock(&self.uploads.shares).admits(client, size, limits)
    }

    /// Bytes of uploads no committed transaction references: of `client`, and in total.
    pub fn upload_usage(&self, client: IpAddr) -> (u64, u64) {
        self.uploads.usage().of(client)
    }

    /// Whether any upload is unreferenced (most peers: none, and the checks are skipped).
    pub fn has_uploads(&self) -> bool {
        self.uploads.usage().records > 0
    }

    /// Forgets the uploads among `cids` (a canonical block at `height` references them: they
    /// are kept for good and no longer count against anyone) and records that every canonical
    /// block up to `height` is released. Returns how many were released.
    pub fn release_uploads(&self, cids: &[Cid], height: u64) -> Result<usize, StoreError> {
        let mut usage = self.uploads.settled(cids);
        let mut batch = sled::Batch::default();
        let mut released = vec![];
        for cid in cids {
            let key = record_key(cid);
            if let Some(value) = self.uploads.tree.get(&key)? {
                released.push(Record::decode(&value)?);
                batch.remove(key);
            }
        }
        batch.insert(RELEASED, &height.to_be_bytes()[..]);
        self.uploads.tree.apply_batch(batch)?;
        for record in &released {
            usage.remove(record);
        }
        Ok(released.len())
    }

    /// The height up to which canonical blocks released their uploads (`None`: never).
    pub fn uploads_released_through(&self) -> Result<Option<u64>, StoreError> {
        let Some(value) = self.uploads.tree.get(RELEASED)? else {
            return Ok(None);
        };
        let bytes: [u8; 8] = value
            .as_ref()
            .try_into()
            .map_err(|_| StoreError::Damaged("released height".into()))?;
        Ok(Some(u64::from_be_bytes(bytes)))
    }

    /// Marks the uploads among `cids` as used at `now` (a pending transaction references them),
    /// so that no collection takes them within the grace period.
    pub fn touch_uploads(&self, cids: &[Cid], now: u64) -> Result<(), StoreError> {
        let _usage = self.uploads.usage();
        for cid in cids {
            let key = record_key(cid);
            if let Some(value) = self.uploads.tree.get(&key)? {
                let record = Record {
                    at: now,
                    ..Record::decode(&value)?
                };
                self.uploads.tree.insert(key, &record.encode()[..])?;
            }
        }
        Ok(())
    }

    /// Up to `max` uploads last used at or before `before`, scanning at most `max * 4` records
    /// from where the previous call stopped (so each pass does bounded work and every record is
    /// reached in turn).
    pub fn stale_uploads(&self, before: u64, max: usize) -> Result<Vec<Cid>, StoreError> {
        let mut usage = self.uploads.usage();
        let start = std::mem::take(&mut usage.cursor);
        let mut out = vec![];
        let mut scanned = 0usize;
        let mut next = vec![];
        let range = self.uploads.tree.range(start.clone()..);
        for entry in range {
            let (key, value) = entry?;
            if key.first() != Some(&RECORD) {
                continue;
            }
            if scanned >= max.saturating_mul(4) || out.len() >= max {
                next = key.to_vec();
                break;
            }
            scanned += 1;
            if Record::decode(&value)?.at <= before {
                let cid =
                    Cid::try_from(&key[1..]).map_err(|_| StoreError::Damaged(hex::encode(&key)))?;
                out.push(cid);
            }
        }
        usage.cursor = next;
        Ok(out)
    }

    /// Deletes the upload `cid` and then its record, if it is still an upload last used at or
    /// before `before` (sled recovers a prefix of its log, so a crash between the two leaves a
    /// record without its object, collected again). Whether it was deleted.
    pub fn collect_upload(&self, cid: &Cid, before: u64) -> Result<bool, StoreError> {
        let mut usage = self.uploads.settled(std::slice::from_ref(cid));
        let key = record_key(cid);
        let Some(value) = self.uploads.tree.get(&key)? else {
            return Ok(false);
        };
        let record = Record::decode(&value)?;
        if record.at > before {
            return Ok(false);
        }
        self.objects.remove(&cid.to_bytes())?;
        self.uploads.tree.remove(key)?;
        usage.remove(&record);
        Ok(true)
    }
}

#[path = "upload_record.rs"]
mod record;
#[cfg(test)]
#[path = "uploads_tests.rs"]
mod tests;
#[path = "upload_usage.rs"]
mod usage;
