//! The sled-backed content-addressed datastore.
//!
//! Objects are stored under their CID and are verified on the way in: the CID must be a CIDv1
//! with a sha2-256 multihash that matches the bytes, its codec must be dag-cbor (then the bytes
//! must be canonical DAG-CBOR) or raw, and the bytes must fit the size limit. A `put` that returned
//! is on disk (the log is flushed before returning); a bulk import flushes once per batch.
//! All use of sled lives here, so the engine can change without touching protocol code.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};
use tracing::{debug, info};

use crate::model::{codec, Cid, CodecError, Encoded, ModelError, Object, DAG_CBOR, RAW};

mod checked;
mod evidence;
mod finality;
mod group;
mod index;
mod object_files;
mod object_trees;
mod objects;
mod orphans;
mod records;
mod uploads;
pub use checked::Checked;
pub use evidence::{EvidenceSummary, KeptEvidence};
pub use index::SledIndex;
pub use object_trees::LARGE_OBJECT_BYTES;
pub use uploads::{UploadError, UploadLimits, Uploaded};

/// Default largest object accepted, in bytes (1 MiB).
pub const DEFAULT_MAX_OBJECT_SIZE: usize = 1024 * 1024;

/// Why the store refused or failed an operation.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be opened.
    #[error("cannot open datastore at {path}: {source}")]
    Open {
        /// Store directory.
        path: PathBuf,
        /// sled's error.
        source: sled::Error,
    },
    /// A read or write failed.
    #[error("datastore I/O error: {0}")]
    Io(#[from] sled::Error),
    /// The bytes do not hash to the claimed CID.
    #[error("object does not match its CID: claimed {claimed}, the bytes hash to {actual}")]
    CidMismatch {
        /// The CID given.
        claimed: String,
        /// The CID of the bytes.
        actual: String,
    },
    /// The object is over the size limit.
    #[error("object {cid} is {size} bytes, over the limit of {limit} bytes")]
    TooLarge {
        /// The object's CID.
        cid: String,
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The CID is not of a kind this store holds.
    #[error("unsupported CID {cid}: {reason}")]
    UnsupportedCid {
        /// The CID.
        cid: String,
        /// Why.
        reason: &'static str,
    },
    /// dag-cbor bytes that are not canonical DAG-CBOR.
    #[error("object {cid} is labelled dag-cbor but is not: {source}")]
    InvalidDagCbor {
        /// The CID.
        cid: String,
        /// The decoding error.
        source: CodecError,
    },
    /// A stored object is not a Mediachain object.
    #[error("object {cid} is not a Mediachain object: {source}")]
    NotAnObject {
        /// The CID.
        cid: String,
        /// The model error.
        source: ModelError,
    },
    /// The volume's free space could not be read.
    #[error("cannot read the free space of {path}: {source}")]
    Volume {
        /// Store directory.
        path: PathBuf,
        /// The system's error.
        source: std::io::Error,
    },
    /// A key in the database is not a CID (the files were damaged).
    #[error("datastore is damaged: key {0} is not a CID")]
    Damaged(String),
}

/// Counts of a bulk import.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// Objects written.
    pub added: u64,
    /// Objects already present.
    pub present: u64,
    /// Bytes written.
    pub bytes: u64,
}

/// The content-addressed datastore.
#[derive(Clone)]
pub struct Store {
    db: sled::Db,
    objects: object_trees::ObjectTrees,
    uploads: Arc<uploads::Uploads>,
    /// The flushes of the writes that are durable when they return, shared.
    commits: Arc<group::GroupCommit>,
    path: PathBuf,
    max_object_size: usize,
}

/// Bytes of sled's page cache (sled's own default, 1 GiB, lets a long-running peer's memory
/// grow with its journal; reads beyond the cache go to the OS page cache).
pub const CACHE_BYTES: u64 = 64 * 1024 * 1024;

impl Store {
    /// Opens (or creates) the store in directory `path`.
    pub fn open(path: &Path, max_object_size: usize) -> Result<Self, StoreError> {
        let db = open_db(path).map_err(|source| StoreError::Open {
            path: path.into(),
            source,
        })?;
        let objects = object_trees::ObjectTrees::open(&db, path)?;
        let uploads = Arc::new(uploads::Uploads::open(&db)?);
        debug!(path = %path.display(), objects = objects.len(), "datastore opened");
        Ok(Self {
            db,
            objects,
            uploads,
            commits: Arc::default(),
            path: path.into(),
            max_object_size,
        })
    }

    /// Bytes available to this process on the store's volume (`statvfs`: blocks available to
    /// unprivileged users times the fragment size).
    pub fn available_bytes(&self) -> Result<u64, StoreError> {
        let stat = rustix::fs::statvfs(&self.path).map_err(|e| StoreError::Volume {
            path: self.path.clone(),
            source: e.into(),
        })?;
        Ok(stat.f_bavail.saturating_mul(stat.f_frsize))
    }

    /// The largest object accepted, in bytes.
    pub fn max_object_size(&self) -> usize {
        self.max_object_size
    }

    /// Checks that `bytes` may be stored under `cid`.
    pub fn verify(&self, cid: &Cid, bytes: &[u8]) -> Result<(), StoreError> {
        self.verify_hash(cid, bytes)?;
        self.verify_encoding(cid, bytes)
    }

    /// The DAG-CBOR validation of [`Store::verify`] (nothing to check for raw bytes).
    fn verify_encoding(&self, cid: &Cid, bytes: &[u8]) -> Result<(), StoreError> {
        if cid.codec() == DAG_CBOR {
            codec::decode(bytes).map_err(|source| StoreError::InvalidDagCbor {
                cid: cid.to_string(),
                source,
            })?;
        }
        Ok(())
    }

    /// The checks of [`Store::verify`] except DAG-CBOR validation: size, CID kind, hash.
    fn verify_hash(&self, cid: &Cid, bytes: &[u8]) -> Result<(), StoreError> {
        self.verify_kind(cid, bytes.len())?;
        let digest: [u8; 32] = Sha256::digest(bytes).into();
        if cid.hash().digest() != digest {
            return Err(StoreError::CidMismatch {
                claimed: cid.to_string(),
                actual: codec::cid_of(cid.codec(), bytes).to_string(),
            });
        }
        Ok(())
    }

    /// The checks of [`Store::verify`] that need no hashing: the size and the CID's kind.
    fn verify_kind(&self, cid: &Cid, size: usize) -> Result<(), StoreError> {
        if size > self.max_object_size {
            return Err(StoreError::TooLarge {
                cid: cid.to_string(),
                size,
                limit: self.max_object_size,
            });
        }
        if cid.version() != ipld_core::cid::Version::V1 {
            return Err(StoreError::UnsupportedCid {
                cid: cid.to_string(),
                reason: "only CIDv1 is accepted",
            });
        }
        if cid.hash().code() != codec::SHA2_256 || cid.hash().size() != 32 {
            return Err(StoreError::UnsupportedCid {
                cid: cid.to_string(),
                reason: "only sha2-256 multihashes are accepted",
            });
        }
        let codec = cid.codec();
        if codec != DAG_CBOR && codec != RAW {
            return Err(StoreError::UnsupportedCid {
                cid: cid.to_string(),
                reason: "only dag-cbor and raw codecs are accepted",
            });
        }
        Ok(())
    }

    /// Stores `bytes` under `cid` after verifying them; durable when it returns.
    /// Returns whether the object was new.
    pub fn put(&self, cid: &Cid, bytes: &[u8]) -> Result<bool, StoreError> {
        self.verify(cid, bytes)?;
        let created = self.objects.insert(&cid.to_bytes(), bytes)?;
        self.sync()?;
        Ok(created)
    }

    /// Makes every write this thread finished durable, sharing the flush with the writers that
    /// finished theirs at about the same time ([`group`]).
    fn sync(&self) -> Result<(), StoreError> {
        self.commits.sync(|| self.db.flush().map(drop))?;
        Ok(())
    }

    /// Flushes run for writes that are durable when they return (each shared by the writers
    /// that finished at about the same time).
    pub fn group_flushes(&self) -> u64 {
        self.commits.flushes()
    }

    /// [`Store::put`] without waiting for the disk: durable at the next flush (any flushing
    /// put, the index's apply, or [`Store::flush`]). For copies of objects that other peers
    /// hold too (gossip, sync), where a flush per object would cost more than the object.
    pub fn put_unflushed(&self, cid: &Cid, bytes: &[u8]) -> Result<bool, StoreError> {
        self.verify(cid, bytes)?;
        self.objects.insert(&cid.to_bytes(), bytes)
    }

    /// Stores bytes this process encoded itself with the model's canonical encoder: checks
    /// size, CID and hash but skips re-validating the DAG-CBOR. Durable when it returns.
    pub fn put_encoded(&self, cid: &Cid, bytes: &[u8]) -> Result<bool, StoreError> {
        self.verify_hash(cid, bytes)?;
        let created = self.objects.insert(&cid.to_bytes(), bytes)?;
        self.sync()?;
        Ok(created)
    }

    /// Stores a blob under its raw-codec CID.
    pub fn put_blob(&self, bytes: &[u8]) -> Result<Cid, StoreError> {
        let cid = codec::cid_of(RAW, bytes);
        self.put(&cid, bytes)?;
        Ok(cid)
    }

    /// Encodes and stores a Mediachain object.
    pub fn put_object(&self, object: &Object) -> Result<Cid, StoreError> {
        let Encoded { cid, bytes } = object.encode().map_err(|source| StoreError::NotAnObject {
            cid: "(unencodable)".to_string(),
            source,
        })?;
        self.put(&cid, &bytes)?;
        Ok(cid)
    }

    /// The bytes stored under `cid`.
    pub fn get(&self, cid: &Cid) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.objects.get(&cid.to_bytes())?.map(|v| v.to_vec()))
    }

    /// The Mediachain object stored under `cid`.
    pub fn get_object(&self, cid: &Cid) -> Result<Option<Object>, StoreError> {
        self.get(cid)?
            .map(|bytes| {
                Object::decode(&bytes).map_err(|source| StoreError::NotAnObject {
                    cid: cid.to_string(),
                    source,
                })
            })
            .transpose()
    }

    /// Whether an object is stored under `cid`.
    pub fn has(&self, cid: &Cid) -> Result<bool, StoreError> {
        self.objects.contains(&cid.to_bytes())
    }

    /// Number of objects.
    pub fn len(&self) -> usize {
        self.objects.len()
    }

    /// Whether the store is empty.
    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }

    /// Every `(cid, bytes)` in CID byte order.
    pub fn iter(&self) -> impl Iterator<Item = Result<(Cid, Vec<u8>), StoreError>> + '_ {
        self.objects.iter().map(|entry| {
            let (key, value) = entry?;
            let cid =
                Cid::try_from(key.as_ref()).map_err(|_| StoreError::Damaged(hex::encode(&key)))?;
            Ok((cid, value.to_vec()))
        })
    }

    /// Imports many objects, verifying each, writing and flushing `batch_size` at a time and
    /// calling `progress` after each durable batch. Stops at the first invalid object; every batch
    /// reported before it is on disk.
    pub fn import<I>(
        &self,
        objects: I,
        batch_size: usize,
        mut progress: impl FnMut(&ImportReport),
    ) -> Result<ImportReport, StoreError>
    where
        I: IntoIterator<Item = (Cid, Vec<u8>)>,
    {
        let mut report = ImportReport::default();
        let mut batch = vec![];
        let mut flush = |batch: &mut Vec<(Vec<u8>, Vec<u8>)>,
                         report: &ImportReport|
         -> Result<(), StoreError> {
            self.objects.apply(std::mem::take(batch))?;
            self.db.flush()?;
            progress(report);
            Ok(())
        };
        for (cid, bytes) in objects {
            self.verify(&cid, &bytes)?;
            if self.has(&cid)? {
                report.present += 1;
                continue;
            }
            report.added += 1;
            report.bytes += bytes.len() as u64;
            batch.push((cid.to_bytes(), bytes));
            if batch.len() >= batch_size.max(1) {
                flush(&mut batch, &report)?;
            }
        }
        if !batch.is_empty() {
            flush(&mut batch, &report)?;
        }
        info!(
            added = report.added,
            present = report.present,
            bytes = report.bytes,
            "import finished"
        );
        Ok(report)
    }

    /// The persistent journal index kept in the same database.
    pub fn index(&self) -> Result<SledIndex, StoreError> {
        SledIndex::open(self.db.clone())
    }

    /// Forces everything written so far to disk.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }
}

/// How long [`open_db`] waits for the database's file lock.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Opens the sled database at `path`, waiting up to [`LOCK_WAIT`] for its file lock: sled's
/// background threads may still hold a just-dropped handle's lock for a moment (a store closed
/// and reopened in one process); a lock held longer (another process) is the error.
fn open_db(path: &Path) -> sled::Result<sled::Db> {
    let deadline = std::time::Instant::now() + LOCK_WAIT;
    loop {
        match sled::Config::new()
            .path(path)
            .cache_capacity(CACHE_BYTES)
            .open()
        {
            Err(sled::Error::Io(e))
                if e.to_string().contains("could not acquire lock")
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Entity;

    fn store(dir: &tempfile::TempDir) -> Store {
        Store::open(dir.path(), 1024).unwrap()
    }

    #[test]
    fn objects_come_back_by_cid_after_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let object = Object::Entity(Entity::named("Ada"));
        let cid = {
            let s = store(&dir);
            let cid = s.put_object(&object).unwrap();
            assert!(
                !s.put(&cid, &object.encode().unwrap().bytes).unwrap(),
                "second put is not new"
            );
            cid
        };
        let s = store(&dir);
        assert!(s.has(&cid).unwrap());
        assert_eq!(s.get_object(&cid).unwrap(), Some(object));
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn mismatched_cid_is_refused_and_nothing_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(&dir);
        let claimed = codec::cid_of(RAW, b"one");
        let err = s.put(&claimed, b"two").unwrap_err();
        assert!(err.to_string().contains("does not match its CID"), "{err}");
        assert!(!s.has(&claimed).unwrap());
        assert!(s.is_empty());
    }

    #[test]
    fn oversize_and_non_dag_cbor_objects_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(&dir);
        let big = vec![7u8; 1025];
        assert!(matches!(
            s.put_blob(&big),
            Err(StoreError::TooLarge {
                size: 1025,
                limit: 1024,
                ..
            })
        ));
        let garbage = b"\xff\xff";
        let labelled = codec::cid_of(DAG_CBOR, garbage);
        assert!(matches!(
            s.put(&labelled, garbage),
            Err(StoreError::InvalidDagCbor { .. })
        ));
        let v0_like = Cid::new_v1(0x70, *labelled.hash());
        assert!(matches!(
            s.put(&v0_like, garbage),
            Err(StoreError::UnsupportedCid { .. })
        ));
    }

    #[test]
    fn import_reports_progress_and_skips_duplicates() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(&dir);
        let blobs: Vec<_> = (0..25u32)
            .map(|i| {
                let bytes = i.to_le_bytes().to_vec();
                (codec::cid_of(RAW, &bytes), bytes)
            })
            .collect();
        let mut reports = vec![];
        let report = s.import(blobs.clone(), 10, |r| reports.push(*r)).unwrap();
        assert_eq!(report.added, 25);
        assert_eq!(
            reports.iter().map(|r| r.added).collect::<Vec<_>>(),
            vec![10, 20, 25]
        );
        let again = s.import(blobs, 10, |_| {}).unwrap();
        assert_eq!((again.added, again.present), (0, 25));
        assert_eq!(s.iter().count(), 25);
    }
}
