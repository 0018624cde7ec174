//! Importing an export into an empty data directory, all or nothing.
//!
//! Everything is built in a sibling directory (`<data-dir>/store.import`): every object is
//! checked against its CID as it is read, then the chain from the root block down to genesis is
//! replayed through the journal from genesis up, with the same verification as blocks from peers
//! (signatures, certificate chains at the block's time, parent links, heights, the entry rules),
//! which rebuilds the index. Only when all of it passed is the directory renamed to
//! `<data-dir>/store` (one atomic rename); any refusal removes it and leaves the data directory
//! as it was. A peer started on the result is at the root's height and syncs only what came
//! after it.

use std::path::{Path, PathBuf};

use iroh_car::CarReader;
use tokio::io::AsyncRead;
use tracing::{info, info_span};

use crate::journal::{Added, Block, BlockRejection, Journal, JournalError, Rules, Schedule};
use crate::model::{nil_cid, Cid};
use crate::store::{Store, StoreError};

/// The datastore directory inside a data directory (as `mediachain-peer run` opens it).
pub const STORE_DIR: &str = "store";
/// Where an import builds the datastore before renaming it to [`STORE_DIR`].
pub const STAGING_DIR: &str = "store.import";

/// Why an import was refused (nothing was changed).
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The data directory already has a datastore.
    #[error("{0} already holds a datastore: import only into an empty data directory")]
    NotEmpty(PathBuf),
    /// A file or directory operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The header is not a CAR v1 header.
    #[error("not a CAR v1 file: {0}")]
    Header(String),
    /// An export has exactly one root.
    #[error("the file has {0} roots; an export has exactly one, its newest block")]
    Roots(usize),
    /// The file ends inside a section or a section is malformed.
    #[error("the file is truncated or corrupt at section {section}: {detail}")]
    Car {
        /// Section number (1 is the first after the header).
        section: u64,
        /// What the CAR reader found.
        detail: String,
    },
    /// An object does not match its CID (or is over the size limit, or is not canonical).
    #[error("section {section}: object {cid} refused: {source}")]
    Object {
        /// Section number.
        section: u64,
        /// The CID the file claims.
        cid: Box<Cid>,
        /// Why.
        source: StoreError,
    },
    /// A block of the chain is not in the file.
    #[error("block {cid} ({what}) is not in the file: the file is truncated or incomplete")]
    MissingBlock {
        /// The block.
        cid: Box<Cid>,
        /// Which block it is.
        what: String,
    },
    /// The bytes under a block's CID are not a block.
    #[error("{cid} ({what}) is not a block: {detail}")]
    NotABlock {
        /// The object.
        cid: Box<Cid>,
        /// Which block it should be.
        what: String,
        /// Why.
        detail: String,
    },
    /// The chain starts at another network's genesis.
    #[error("the file's chain starts at genesis {found} (network `{found_network}`), but network `{network}` starts at {expected}: the file belongs to another network")]
    ForeignNetwork {
        /// The file's genesis.
        found: Box<Cid>,
        /// The network named in it.
        found_network: String,
        /// This network.
        network: String,
        /// This network's genesis.
        expected: Box<Cid>,
    },
    /// A block failed verification.
    #[error("block {cid} at height {height} is refused: {reason}")]
    Block {
        /// Its height.
        height: u64,
        /// The block.
        cid: Box<Cid>,
        /// Why.
        reason: Box<BlockRejection>,
    },
    /// The journal failed.
    #[error("journal: {0}")]
    Journal(#[from] JournalError),
    /// The datastore failed.
    #[error("datastore: {0}")]
    Store(#[from] StoreError),
}

/// How far an import has come.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImportProgress {
    /// Sections read and checked against their CIDs.
    pub sections: u64,
    /// Bytes of object data read.
    pub bytes: u64,
    /// Blocks verified and applied.
    pub blocks: u64,
    /// Blocks in the chain (0 while reading).
    pub total_blocks: u64,
    /// Journal entries applied.
    pub entries: u64,
}

/// What an import did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImportReport {
    /// The root block, now the tip.
    pub root: Cid,
    /// Its height.
    pub height: u64,
    /// The final counts.
    pub progress: ImportProgress,
}

/// Sections between two progress reports while reading.
const READ_REPORT_EVERY: u64 = 10_000;

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> ImportError + '_ {
    move |source| ImportError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Imports the CAR export `car` into `data_dir` (which must not hold a datastore yet) under
/// `rules` (the network, its root and revocations, the proof-of-work difficulty); `genesis` is
/// the network's genesis block. Calls `progress` as it reads and verifies. Runs the datastore's
/// blocking calls on the calling task: use it from a runtime of its own (the CLI).
pub async fn import_car<R: AsyncRead + Unpin>(
    data_dir: &Path,
    car: R,
    rules: Rules,
    genesis: &Block,
    max_object_size: usize,
    mut progress: impl FnMut(&ImportProgress),
) -> Result<ImportReport, ImportError> {
    let _span = info_span!("import", data_dir = %data_dir.display()).entered();
    let target = data_dir.join(STORE_DIR);
    let staging = data_dir.join(STAGING_DIR);
    let holds_store =
        |p: &Path| std::fs::read_dir(p).is_ok_and(|mut entries| entries.next().is_some());
    if holds_store(&target) {
        return Err(ImportError::NotEmpty(target));
    }
    let created = !data_dir.exists();
    std::fs::create_dir_all(data_dir).map_err(io_error(data_dir))?;
    if staging.exists() {
        // Left by an import that was interrupted: never visible, safe to discard.
        std::fs::remove_dir_all(&staging).map_err(io_error(&staging))?;
    }
    let outcome = build(
        &staging,
        car,
        rules,
        genesis,
        max_object_size,
        &mut progress,
    )
    .await;
    let outcome = outcome.and_then(|report| {
        if target.exists() {
            std::fs::remove_dir(&target).map_err(io_error(&target))?; // empty, checked above
        }
        std::fs::rename(&staging, &target).map_err(io_error(&target))?;
        std::fs::File::open(data_dir)
            .and_then(|dir| dir.sync_all())
            .map_err(io_error(data_dir))?;
        Ok(report)
    });
    if outcome.is_err() {
        let _ = std::fs::remove_dir_all(&staging);
        if created {
            let _ = std::fs::remove_dir(data_dir);
        }
    }
    outcome
}

/// Reads, checks and replays everything into a new datastore at `staging`.
async fn build<R: AsyncRead + Unpin>(
    staging: &Path,
    car: R,
    rules: Rules,
    genesis: &Block,
    max_object_size: usize,
    progress: &mut impl FnMut(&ImportProgress),
) -> Result<ImportReport, ImportError> {
    let store = Store::open(staging, max_object_size)?;
    let mut state = ImportProgress::default();
    let root = read_objects(&store, car, &mut state, progress).await?;
    store.flush()?;
    let (chain, found_network) = chain_to_genesis(&store, root)?;
    let found = chain[0]; // never empty: it holds at least the root
    if found != genesis.cid() {
        return Err(ImportError::ForeignNetwork {
            found: found.into(),
            found_network,
            network: rules.network.clone(),
            expected: genesis.cid().into(),
        });
    }
    let mut journal = Journal::open(
        rules,
        Schedule::new(vec![]),
        store.index()?,
        store.clone(),
        genesis,
    )?;
    state.total_blocks = chain.len() as u64;
    state.blocks = 1;
    for cid in &chain[1..] {
        let what = || "a block of the chain".to_string();
        let bytes = store.get(cid)?.ok_or_else(|| ImportError::MissingBlock {
            cid: (*cid).into(),
            what: what(),
        })?;
        let block = Block::from_bytes(&bytes).map_err(|detail| ImportError::NotABlock {
            cid: (*cid).into(),
            what: what(),
            detail,
        })?;
        let refused = |reason: BlockRejection| ImportError::Block {
            height: block.height,
            cid: (*cid).into(),
            reason: reason.into(),
        };
        match journal.add_encoded_block(&block, &bytes, crate::time::now_ms())? {
            Ok(Added::Extended) => {}
            Ok(other) => {
                return Err(refused(BlockRejection::Malformed(format!(
                    "does not extend the chain ({other:?})"
                ))))
            }
            Err(reason) => return Err(refused(reason)),
        }
        state.blocks += 1;
        state.entries += block.entries.len() as u64;
        progress(&state);
    }
    let (tip, height) = journal.tip()?;
    drop(journal);
    store.flush()?;
    info!(%tip, height, blocks = state.blocks, sections = state.sections, "import verified");
    Ok(ImportReport {
        root: tip,
        height,
        progress: state,
    })
}

/// Reads every section into `store` (each checked against its CID); returns the root.
async fn read_objects<R: AsyncRead + Unpin>(
    store: &Store,
    car: R,
    state: &mut ImportProgress,
    progress: &mut impl FnMut(&ImportProgress),
) -> Result<Cid, ImportError> {
    let mut reader = CarReader::new(car)
        .await
        .map_err(|e| ImportError::Header(e.to_string()))?;
    let root = match reader.header().roots() {
        [root] => *root,
        roots => return Err(ImportError::Roots(roots.len())),
    };
    loop {
        let section = state.sections + 1;
        let (cid, bytes) = match reader.next_block().await {
            Ok(Some(item)) => item,
            Ok(None) => break,
            Err(e) => {
                return Err(ImportError::Car {
                    section,
                    detail: e.to_string(),
                })
            }
        };
        store
            .put_unflushed(&cid, &bytes)
            .map_err(|source| ImportError::Object {
                section,
                cid: cid.into(),
                source,
            })?;
        state.sections = section;
        state.bytes += bytes.len() as u64;
        if section % READ_REPORT_EVERY == 0 {
            progress(state);
        }
    }
    progress(state);
    Ok(root)
}

/// The chain from genesis to `root` (block CIDs) and the network its genesis names.
fn chain_to_genesis(store: &Store, root: Cid) -> Result<(Vec<Cid>, String), ImportError> {
    let nil = nil_cid();
    let mut chain = vec![];
    let mut cursor = root;
    let mut what = "the root".to_string();
    loop {
        let bytes = store
            .get(&cursor)?
            .ok_or_else(|| ImportError::MissingBlock {
                cid: cursor.into(),
                what: what.clone(),
            })?;
        let block = Block::from_bytes(&bytes).map_err(|detail| ImportError::NotABlock {
            cid: cursor.into(),
            what: what.clone(),
            detail,
        })?;
        chain.push(cursor);
        if block.chain == nil {
            chain.reverse();
            return Ok((chain, block.network));
        }
        what = format!("the parent of height {}", block.height);
        cursor = block.chain;
    }
}
