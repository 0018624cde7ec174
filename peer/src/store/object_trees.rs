//! The stored objects, kept by size: objects of at most [`LARGE_OBJECT_BYTES`] in the sled tree
//! `objects`, larger ones as files ([`ObjectFiles`]: key-value separation, as WiscKey, FAST '16,
//! keeps large values out of the tree that holds the small ones).
//!
//! sled keeps up to 16 entries in a leaf and rewrites a leaf whole when it consolidates it; a
//! leaf over a quarter of a log segment (128 KiB) is written as a file of its own. Mixed in one
//! tree, a few 64 KiB uploads make the leaves around them hundreds of KiB, and every later
//! small write that lands in such a leaf pages it in and rewrites it: an upload flood slowed
//! honest writers of 1 KiB objects long after it stopped. A sled tree of their own (the first
//! split) still sent the large values through sled's log, whose flushes the small writes wait
//! for, and through its page cache (BENCHMARKS.md, "edge_abuse"). With the small objects alone,
//! a leaf of `objects` stays under 16 x (4 KiB + key) = 65 KiB.
//!
//! A CID's bytes have one size, so an object is where its size chooses; stores written before
//! the split hold large objects in `objects` too, so reads look in both places, and an insert of
//! a large object first asks whether `objects` already has it. A store written by the first
//! split (a sled tree `objects-large`) has that tree moved into files when it opens.

use std::io;
use std::path::Path;

use sled::{IVec, Tree};

use super::object_files::ObjectFiles;
use super::StoreError;

/// Objects larger than this many bytes are kept as files.
pub const LARGE_OBJECT_BYTES: usize = 4 * 1024;

/// The small objects' tree and the large objects' files.
#[derive(Clone)]
pub(super) struct ObjectTrees {
    small: Tree,
    large: ObjectFiles,
}

fn io_error(error: io::Error) -> StoreError {
    StoreError::Io(sled::Error::Io(error))
}

impl ObjectTrees {
    /// Opens (or creates) the tree of `db` and the directory `objects-large` in `dir`.
    pub(super) fn open(db: &sled::Db, dir: &Path) -> Result<Self, StoreError> {
        let trees = Self {
            small: db.open_tree("objects")?,
            large: ObjectFiles::open(&dir.join("objects-large")).map_err(io_error)?,
        };
        const FIRST_SPLIT: &[u8] = b"objects-large";
        if db.tree_names().iter().any(|name| name == FIRST_SPLIT) {
            for entry in db.open_tree(FIRST_SPLIT)?.iter() {
                let (key, bytes) = entry?;
                trees.large.insert(&key, &bytes).map_err(io_error)?;
            }
            db.drop_tree(FIRST_SPLIT)?;
        }
        Ok(trees)
    }

    /// The small objects' tree (a store's tests take objects out of it behind its back).
    #[cfg(test)]
    pub(super) fn small(&self) -> &Tree {
        &self.small
    }

    /// Stores `bytes` under `key` (a small object is not flushed; a large one is durable);
    /// whether it was new.
    pub(super) fn insert(&self, key: &[u8], bytes: &[u8]) -> Result<bool, StoreError> {
        if bytes.len() <= LARGE_OBJECT_BYTES {
            return Ok(self.small.insert(key, bytes)?.is_none());
        }
        if self.small.contains_key(key)? {
            return Ok(false);
        }
        self.large.insert(key, bytes).map_err(io_error)
    }

    /// The bytes stored under `key`.
    pub(super) fn get(&self, key: &[u8]) -> Result<Option<IVec>, StoreError> {
        match self.small.get(key)? {
            Some(bytes) => Ok(Some(bytes)),
            None => self.large.get(key).map_err(io_error),
        }
    }

    /// Whether anything is stored under `key`.
    pub(super) fn contains(&self, key: &[u8]) -> Result<bool, StoreError> {
        Ok(self.small.contains_key(key)? || self.large.contains(key).map_err(io_error)?)
    }

    /// Deletes what is stored under `key` (the small one not flushed); whether there was
    /// anything.
    pub(super) fn remove(&self, key: &[u8]) -> Result<bool, StoreError> {
        let small = self.small.remove(key)?.is_some();
        Ok(self.large.remove(key).map_err(io_error)? || small)
    }

    /// Number of objects.
    pub(super) fn len(&self) -> usize {
        self.small.len() + self.large.len()
    }

    /// Whether no object is stored.
    pub(super) fn is_empty(&self) -> bool {
        self.small.is_empty() && self.large.len() == 0
    }

    /// Every `(key, bytes)` in key order (a large object deleted meanwhile is left out).
    pub(super) fn iter(&self) -> impl Iterator<Item = sled::Result<(IVec, IVec)>> {
        let large: Box<dyn Iterator<Item = sled::Result<(IVec, IVec)>> + Send> =
            match self.large.keys() {
                Ok(keys) => {
                    let files = self.large.clone();
                    Box::new(
                        keys.into_iter()
                            .filter_map(move |key| match files.get(&key) {
                                Ok(Some(bytes)) => Some(Ok((key.into(), bytes))),
                                Ok(None) => None,
                                Err(error) => Some(Err(sled::Error::Io(error))),
                            }),
                    )
                }
                Err(error) => Box::new(std::iter::once(Err(sled::Error::Io(error)))),
            };
        Merged {
            small: self.small.iter().peekable(),
            large: large.peekable(),
        }
    }

    /// Writes `entries`: the small ones in one batch (not flushed), the large ones durably.
    pub(super) fn apply(&self, entries: Vec<(Vec<u8>, Vec<u8>)>) -> Result<(), StoreError> {
        let mut small = sled::Batch::default();
        for (key, bytes) in entries {
            if bytes.len() > LARGE_OBJECT_BYTES {
                self.insert(&key, &bytes)?;
            } else {
                small.insert(key, bytes);
            }
        }
        self.small.apply_batch(small)?;
        Ok(())
    }
}

type Entries<I> = std::iter::Peekable<I>;

/// The small and the large objects merged in key order (a key is in one place only).
struct Merged<L: Iterator> {
    small: Entries<sled::Iter>,
    large: Entries<L>,
}

impl<L: Iterator<Item = sled::Result<(IVec, IVec)>>> Iterator for Merged<L> {
    type Item = sled::Result<(IVec, IVec)>;

    fn next(&mut self) -> Option<Self::Item> {
        let small_first = match (self.small.peek(), self.large.peek()) {
            (Some(Ok((small, _))), Some(Ok((large, _)))) => small <= large,
            (Some(Err(_)), _) | (_, None) => true,
            (None, Some(_)) | (_, Some(Err(_))) => false,
        };
        if small_first {
            self.small.next()
        } else {
            self.large.next()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trees() -> (tempfile::TempDir, sled::Db, ObjectTrees) {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::Config::new().path(dir.path()).open().unwrap();
        let trees = ObjectTrees::open(&db, dir.path()).unwrap();
        (dir, db, trees)
    }

    #[test]
    fn objects_go_where_their_size_chooses_and_are_read_from_either() {
        let (dir, db, trees) = trees();
        let small = vec![1u8; LARGE_OBJECT_BYTES];
        let large = vec![2u8; LARGE_OBJECT_BYTES + 1];
        assert!(trees.insert(b"s", &small).unwrap());
        assert!(trees.insert(b"l", &large).unwrap());
        assert!(!trees.insert(b"l", &large).unwrap(), "stored already");
        let objects = db.open_tree("objects").unwrap();
        assert_eq!(objects.get(b"s").unwrap().unwrap(), small[..]);
        assert!(!objects.contains_key(b"l").unwrap());
        let file = dir.path().join("objects-large").join("6").join("6c");
        assert_eq!(std::fs::read(file).unwrap(), large);
        assert_eq!(trees.get(b"l").unwrap().unwrap(), large[..]);
        assert!(trees.contains(b"s").unwrap() && trees.contains(b"l").unwrap());
        assert!(!trees.contains(b"x").unwrap() && trees.get(b"x").unwrap().is_none());
        assert_eq!(trees.len(), 2);
        assert!(trees.remove(b"l").unwrap() && trees.remove(b"s").unwrap());
        assert!(!trees.remove(b"l").unwrap() && trees.is_empty());
    }

    #[test]
    fn large_objects_stored_before_either_split_are_found_and_not_stored_twice() {
        let dir = tempfile::tempdir().unwrap();
        let large = vec![3u8; LARGE_OBJECT_BYTES * 2];
        {
            let db = sled::Config::new().path(dir.path()).open().unwrap();
            let tree = |name: &str| db.open_tree(name).unwrap();
            tree("objects").insert(b"old", &large[..]).unwrap();
            tree("objects-large").insert(b"first", &large[..]).unwrap();
            db.flush().unwrap();
        }
        let db = sled::Config::new().path(dir.path()).open().unwrap();
        let trees = ObjectTrees::open(&db, dir.path()).unwrap();
        assert_eq!(trees.get(b"old").unwrap().unwrap(), large[..]);
        assert!(!trees.insert(b"old", &large).unwrap());
        // The first split's tree moved into files.
        assert!(!db.tree_names().iter().any(|n| n == b"objects-large"));
        assert_eq!(trees.get(b"first").unwrap().unwrap(), large[..]);
        assert_eq!(trees.len(), 2);
    }

    #[test]
    fn small_and_large_objects_are_read_in_one_key_order() {
        let (_dir, _db, trees) = trees();
        let entries: Vec<(Vec<u8>, Vec<u8>)> = (0u8..20)
            .map(|k| {
                let size = if k % 3 == 0 {
                    LARGE_OBJECT_BYTES + 1
                } else {
                    1
                };
                (vec![k], vec![k; size])
            })
            .collect();
        // Written in reverse order, half in a batch.
        let (batch, single) = entries.split_at(10);
        trees.apply(batch.to_vec()).unwrap();
        for (key, bytes) in single.iter().rev() {
            trees.insert(key, bytes).unwrap();
        }
        let read: Vec<(Vec<u8>, Vec<u8>)> = trees
            .iter()
            .map(|entry| {
                let (key, bytes) = entry.unwrap();
                (key.to_vec(), bytes.to_vec())
            })
            .collect();
        assert_eq!(read, entries);
    }
}
