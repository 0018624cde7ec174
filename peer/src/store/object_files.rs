//! Large objects as files, one per object, in 256 shard directories (as IPFS's flatfs
//! datastore keeps blocks: `go-ds-flatfs`, sharded by the next-to-last two characters of the
//! name): `<store>/objects-large/<shard>/<key in hex>`.
//!
//! A file is written whole to a temporary name, synced, linked under its name (which fails if
//! the object is there already, so each object is created once however many write it at once)
//! and its directory synced: an object is durable when [`ObjectFiles::insert`] returns, and a
//! crash leaves at most temporary files, removed on open. Kept out of sled, a large object's
//! bytes never pass through sled's log and page cache, so a flood of large uploads neither
//! delays the flushes of the small writes around it nor fills the cache the journal reads from
//! (BENCHMARKS.md, "edge_abuse").

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use sled::IVec;

/// The directory of large objects, and how many it holds.
#[derive(Clone)]
pub(super) struct ObjectFiles {
    dir: PathBuf,
    count: Arc<AtomicUsize>,
}

/// Tells temporary files of one process apart.
static TEMPORARY: AtomicU64 = AtomicU64::new(0);

const TEMPORARY_SUFFIX: &str = ".tmp";

impl ObjectFiles {
    /// Opens (or creates) `dir`, removing what a crash left half-written and counting the rest.
    pub(super) fn open(dir: &Path) -> io::Result<Self> {
        fs::create_dir_all(dir)?;
        let mut count = 0;
        for entry in entries(dir)? {
            if entry
                .file_name()
                .to_string_lossy()
                .ends_with(TEMPORARY_SUFFIX)
            {
                fs::remove_file(entry.path())?;
            } else {
                count += 1;
            }
        }
        Ok(Self {
            dir: dir.into(),
            count: Arc::new(AtomicUsize::new(count)),
        })
    }

    fn shard(&self, name: &str) -> PathBuf {
        let shard = name.get(name.len().saturating_sub(3)..name.len().saturating_sub(1));
        self.dir.join(shard.unwrap_or("__"))
    }

    fn path(&self, key: &[u8]) -> PathBuf {
        let name = hex::encode(key);
        self.shard(&name).join(name)
    }

    /// Stores `bytes` under `key`, durably, unless something is stored there; whether it was
    /// new.
    pub(super) fn insert(&self, key: &[u8], bytes: &[u8]) -> io::Result<bool> {
        let path = self.path(key);
        if path.exists() {
            return Ok(false);
        }
        let shard = path.parent().unwrap_or(&self.dir).to_path_buf();
        fs::create_dir_all(&shard)?;
        let temporary = shard.join(format!(
            "{}.{}{TEMPORARY_SUFFIX}",
            std::process::id(),
            TEMPORARY.fetch_add(1, Ordering::Relaxed)
        ));
        let written =
            write_synced(&temporary, bytes).and_then(|()| fs::hard_link(&temporary, &path));
        fs::remove_file(&temporary)?;
        match written {
            Ok(()) => {}
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists => return Ok(false),
            Err(error) => return Err(error),
        }
        File::open(&shard)?.sync_all()?;
        self.count.fetch_add(1, Ordering::Relaxed);
        Ok(true)
    }

    /// The object under `key`, if any.
    pub(super) fn get(&self, key: &[u8]) -> io::Result<Option<IVec>> {
        match fs::read(self.path(key)) {
            Ok(bytes) => Ok(Some(bytes.into())),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// Whether an object is stored under `key`.
    pub(super) fn contains(&self, key: &[u8]) -> io::Result<bool> {
        self.path(key).try_exists()
    }

    /// Deletes the object under `key`, durably; whether there was one.
    pub(super) fn remove(&self, key: &[u8]) -> io::Result<bool> {
        let path = self.path(key);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(error) => return Err(error),
        }
        File::open(path.parent().unwrap_or(&self.dir))?.sync_all()?;
        self.count.fetch_sub(1, Ordering::Relaxed);
        Ok(true)
    }

    /// How many objects are stored.
    pub(super) fn len(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    /// Every key, in byte order (read from the directories at once: the keys of all large
    /// objects in memory, 36-odd bytes each; their bytes are read one at a time by the caller).
    pub(super) fn keys(&self) -> io::Result<Vec<Vec<u8>>> {
        let mut keys: Vec<Vec<u8>> = entries(&self.dir)?
            .iter()
            .filter_map(|entry| hex::decode(entry.file_name().to_string_lossy().as_bytes()).ok())
            .collect();
        keys.sort_unstable();
        Ok(keys)
    }
}

/// Every file in the shard directories of `dir`.
fn entries(dir: &Path) -> io::Result<Vec<fs::DirEntry>> {
    let mut entries = vec![];
    for shard in fs::read_dir(dir)? {
        let shard = shard?;
        if shard.file_type()?.is_dir() {
            for entry in fs::read_dir(shard.path())? {
                entries.push(entry?);
            }
        }
    }
    Ok(entries)
}

fn write_synced(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = File::create(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_object_is_created_once_and_a_crash_leaves_nothing_half_written() {
        let dir = tempfile::tempdir().unwrap();
        let files = ObjectFiles::open(dir.path()).unwrap();
        assert!(files.insert(b"\x01\x02", b"one").unwrap());
        assert!(!files.insert(b"\x01\x02", b"one").unwrap());
        assert_eq!(files.get(b"\x01\x02").unwrap().unwrap(), b"one"[..]);
        assert!(files.get(b"\x09").unwrap().is_none() && !files.contains(b"\x09").unwrap());
        // Racing writers of one object: one creates it.
        let created: usize = std::thread::scope(|scope| {
            let writers: Vec<_> = (0..8)
                .map(|_| scope.spawn(|| usize::from(files.insert(b"\xaa\xbb\xcc", b"x").unwrap())))
                .collect();
            writers.into_iter().map(|w| w.join().unwrap()).sum()
        });
        assert_eq!(created, 1);
        assert_eq!(files.len(), 2);
        // A temporary file a crash left is removed on open, and not counted.
        let shard = files.path(b"\x01\x02").parent().unwrap().to_path_buf();
        fs::write(shard.join(format!("7.7{TEMPORARY_SUFFIX}")), b"half").unwrap();
        let files = ObjectFiles::open(dir.path()).unwrap();
        assert_eq!(files.len(), 2);
        assert_eq!(
            files.keys().unwrap(),
            vec![vec![1, 2], vec![0xaa, 0xbb, 0xcc]]
        );
        assert!(files.remove(b"\x01\x02").unwrap() && !files.remove(b"\x01\x02").unwrap());
        assert_eq!(files.len(), 1);
    }
}
