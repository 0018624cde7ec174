//! The stored objects, kept in two sled trees by size: objects of at most
//! [`LARGE_OBJECT_BYTES`] in `objects`, larger ones in `objects-large` (key-value separation, as
//! WiscKey, FAST '16, keeps large values out of the LSM tree that holds the small ones).
//!
//! sled keeps up to 16 entries in a leaf and rewrites a leaf whole when it consolidates it; a
//! leaf over a quarter of a log segment (128 KiB) is written as a file of its own. Mixed in one
//! tree, a few 64 KiB uploads make the leaves around them hundreds of KiB, and every later
//! small write that lands in such a leaf pages it in and rewrites it: an upload flood slowed
//! honest writers of 1 KiB objects long after it stopped (BENCHMARKS.md, "edge_abuse"). With
//! the split, a leaf of the small tree stays under 16 x (4 KiB + key) = 65 KiB.
//!
//! A CID's bytes have one size, so an object is in the tree its size chooses; stores written
//! before the split hold large objects in `objects` too, so reads look in both trees, and an
//! insert of a large object first asks whether `objects` already has it.

use sled::{IVec, Tree};

use super::StoreError;

/// Objects larger than this many bytes are kept in the large tree.
pub const LARGE_OBJECT_BYTES: usize = 4 * 1024;

/// The small and the large objects' trees.
#[derive(Clone)]
pub(super) struct ObjectTrees {
    small: Tree,
    large: Tree,
}

impl ObjectTrees {
    /// Opens (or creates) both trees of `db`.
    pub(super) fn open(db: &sled::Db) -> Result<Self, StoreError> {
        Ok(Self {
            small: db.open_tree("objects")?,
            large: db.open_tree("objects-large")?,
        })
    }

    /// The tree an object of `size` bytes belongs in.
    pub(super) fn tree_for(&self, size: usize) -> &Tree {
        if size > LARGE_OBJECT_BYTES {
            &self.large
        } else {
            &self.small
        }
    }

    /// Both trees, small first.
    pub(super) fn trees(&self) -> [&Tree; 2] {
        [&self.small, &self.large]
    }

    /// Stores `bytes` under `key` (not flushed); whether it was new.
    pub(super) fn insert(&self, key: &[u8], bytes: &[u8]) -> Result<bool, StoreError> {
        let tree = self.tree_for(bytes.len());
        if std::ptr::eq(tree, &self.large) && self.small.contains_key(key)? {
            return Ok(false);
        }
        Ok(tree.insert(key, bytes)?.is_none())
    }

    /// The bytes stored under `key`.
    pub(super) fn get(&self, key: &[u8]) -> Result<Option<IVec>, StoreError> {
        match self.small.get(key)? {
            Some(bytes) => Ok(Some(bytes)),
            None => Ok(self.large.get(key)?),
        }
    }

    /// Whether anything is stored under `key`.
    pub(super) fn contains(&self, key: &[u8]) -> Result<bool, StoreError> {
        Ok(self.small.contains_key(key)? || self.large.contains_key(key)?)
    }

    /// Number of objects (counts every entry of both trees).
    pub(super) fn len(&self) -> usize {
        self.small.len() + self.large.len()
    }

    /// Whether no object is stored.
    pub(super) fn is_empty(&self) -> bool {
        self.small.is_empty() && self.large.is_empty()
    }

    /// Every `(key, bytes)` of both trees in key order.
    pub(super) fn iter(&self) -> impl Iterator<Item = sled::Result<(IVec, IVec)>> {
        Merged {
            small: self.small.iter().peekable(),
            large: self.large.iter().peekable(),
        }
    }

    /// Writes `entries` with one batch per tree (not flushed).
    pub(super) fn apply(&self, entries: Vec<(Vec<u8>, Vec<u8>)>) -> Result<(), StoreError> {
        let (mut small, mut large) = (sled::Batch::default(), sled::Batch::default());
        for (key, bytes) in entries {
            if bytes.len() > LARGE_OBJECT_BYTES {
                large.insert(key, bytes);
            } else {
                small.insert(key, bytes);
            }
        }
        self.small.apply_batch(small)?;
        self.large.apply_batch(large)?;
        Ok(())
    }
}

type Entries = std::iter::Peekable<sled::Iter>;

/// Two trees' entries merged in key order (a key is in one tree only).
struct Merged {
    small: Entries,
    large: Entries,
}

impl Iterator for Merged {
    type Item = sled::Result<(IVec, IVec)>;

    fn next(&mut self) -> Option<Self::Item> {
        let small_first = match (self.small.peek(), self.large.peek()) {
            (Some(Ok((small, _))), Some(Ok((large, _)))) => small <= large,
            // An error is passed on as soon as it is met.
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
        let trees = ObjectTrees::open(&db).unwrap();
        (dir, db, trees)
    }

    #[test]
    fn objects_go_to_the_tree_their_size_chooses_and_are_read_from_either() {
        let (_dir, db, trees) = trees();
        let small = vec![1u8; LARGE_OBJECT_BYTES];
        let large = vec![2u8; LARGE_OBJECT_BYTES + 1];
        assert!(trees.insert(b"s", &small).unwrap());
        assert!(trees.insert(b"l", &large).unwrap());
        assert!(!trees.insert(b"l", &large).unwrap(), "stored already");
        let tree = |name: &str| db.open_tree(name).unwrap();
        assert_eq!(tree("objects").get(b"s").unwrap().unwrap(), small[..]);
        assert_eq!(tree("objects-large").get(b"l").unwrap().unwrap(), large[..]);
        assert!(!tree("objects").contains_key(b"l").unwrap());
        assert_eq!(trees.get(b"l").unwrap().unwrap(), large[..]);
        assert!(trees.contains(b"s").unwrap() && trees.contains(b"l").unwrap());
        assert!(!trees.contains(b"x").unwrap() && trees.get(b"x").unwrap().is_none());
        assert_eq!(trees.len(), 2);
    }

    #[test]
    fn a_large_object_stored_before_the_split_is_found_and_not_stored_twice() {
        let (_dir, db, trees) = trees();
        let large = vec![3u8; LARGE_OBJECT_BYTES * 2];
        db.open_tree("objects")
            .unwrap()
            .insert(b"old", &large[..])
            .unwrap();
        assert_eq!(trees.get(b"old").unwrap().unwrap(), large[..]);
        assert!(!trees.insert(b"old", &large).unwrap());
        assert!(db.open_tree("objects-large").unwrap().is_empty());
        assert_eq!(trees.len(), 1);
    }

    #[test]
    fn both_trees_are_read_in_one_key_order() {
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
