//! A peer's query index kept up with its node: opened (or rebuilt from the journal when missing
//! or unreadable) at start, then caught up when the node adds a block, at most once every
//! [`COMMIT_INTERVAL`] (blocks coalesce into one commit), on a slow tick, and once more at
//! shutdown (a reorganisation is seen as the chain's blocks changing at heights the index
//! followed). Searches read the last commit and never wait for the follower or the node, so
//! they may lag the chain by about [`COMMIT_INTERVAL`] plus one step.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{broadcast, watch};
use tokio::time::Instant;
use tracing::{info, warn};

use super::engine::Engine;
use super::follow::{sync, ChainSource, Synced};
use super::query::{search, Page, SearchQuery};
use super::SearchError;
use crate::journal::{Block, IndexRead};
use crate::model::{Cid, Object};
use crate::node::{Node, NodeEvent};

/// Memory one follower step may hold before it commits (see [`super::follow::HELD_PER_ENTRY`]):
/// over 16,000 entries (each under 1 KiB); a catch-up of a longer chain commits once per step.
pub const STEP_BYTES: usize = 16 * 1024 * 1024;
/// Least time between two catch-ups of the follower (each commits at most once unless it is
/// more than [`STEP_BYTES`] behind): a tantivy commit writes a segment and syncs the disk, far
/// too much to pay for every block.
pub const COMMIT_INTERVAL: Duration = Duration::from_secs(1);
/// How often the follower looks at the chain when no block event arrives.
pub const TICK: Duration = Duration::from_secs(1);

/// The query index of a peer.
pub struct SearchService {
    engine: Engine,
    dir: PathBuf,
    /// One follower at a time.
    following: Mutex<()>,
}

/// A chain the follower keeps up with: read through [`ChainSource`], announcing each change.
pub trait Followed: ChainSource + Send + Sync + 'static {
    /// Events sent when the chain changes (their content is not read: the follower reads the
    /// chain itself).
    fn changes(&self) -> broadcast::Receiver<NodeEvent>;
}

impl Followed for Node {
    fn changes(&self) -> broadcast::Receiver<NodeEvent> {
        self.subscribe()
    }
}

impl ChainSource for Node {
    fn tip_height(&self) -> Result<u64, SearchError> {
        Ok(self.tip().map_err(SearchError::chain)?.1)
    }

    fn block_at(&self, height: u64) -> Result<Option<Cid>, SearchError> {
        self.with_journal(|journal| journal.index().block_at(height))
            .map_err(SearchError::chain)
    }

    fn block(&self, cid: &Cid) -> Result<Block, SearchError> {
        let bytes = self
            .store()
            .get(cid)
            .map_err(SearchError::chain)?
            .ok_or_else(|| SearchError::Chain(format!("block {cid} is not in the datastore")))?;
        Block::from_stored(&bytes).map_err(SearchError::chain)
    }

    fn object(&self, cid: &Cid) -> Option<Object> {
        crate::journal::Objects::object(self.store(), cid)
    }
}

impl SearchService {
    /// Opens the index in `dir`; one that does not open is deleted and rebuilt (from nothing:
    /// the follower fills it).
    pub fn open(dir: &Path) -> Result<Arc<Self>, SearchError> {
        let engine = match Engine::open(dir) {
            Ok((engine, created)) => {
                if created {
                    info!(dir = %dir.display(), "search index created; it is built from the journal");
                }
                engine
            }
            Err(error) => {
                warn!(%error, dir = %dir.display(), "search index unreadable: rebuilding it");
                std::fs::remove_dir_all(dir).map_err(|e| SearchError::io(dir, e))?;
                Engine::open(dir)?.0
            }
        };
        Ok(Arc::new(Self {
            engine,
            dir: dir.to_path_buf(),
            following: Mutex::new(()),
        }))
    }

    /// Where the index lives.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Answers a question from the last commit.
    pub fn search(&self, query: &SearchQuery) -> Result<Page, SearchError> {
        search(&self.engine, query)
    }

    /// The height the index has followed to.
    pub fn height(&self) -> Result<Option<u64>, SearchError> {
        self.engine.tip()
    }

    /// Commits of the index since it was opened.
    pub fn commits(&self) -> u64 {
        self.engine.commits()
    }

    /// Follows `source` up to its tip (in steps of [`STEP_BYTES`], one commit each); what the
    /// steps did together.
    pub fn catch_up(&self, source: &impl ChainSource) -> Result<Synced, SearchError> {
        let _one = self.following.lock().unwrap_or_else(|p| p.into_inner());
        let mut total = Synced {
            undone: 0,
            applied: 0,
            height: 0,
            behind: true,
        };
        while total.behind {
            let step = sync(&self.engine, source, STEP_BYTES)?;
            total = Synced {
                undone: total.undone + step.undone,
                applied: total.applied + step.applied,
                ..step
            };
        }
        Ok(total)
    }

    /// Forgets everything and builds the index again from `source`.
    pub fn rebuild(&self, source: &impl ChainSource) -> Result<Synced, SearchError> {
        {
            let _one = self.following.lock().unwrap_or_else(|p| p.into_inner());
            self.engine.clear()?;
            self.engine.commit()?;
        }
        self.catch_up(source)
    }

    /// Keeps the index up with `node` until `stop` says so, then catches up once more.
    pub async fn follow<F: Followed>(
        self: Arc<Self>,
        node: Arc<F>,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut events = node.changes();
        loop {
            let began = Instant::now();
            self.clone().step(node.clone()).await;
            // A block event or the tick, but no sooner than the interval after this catch-up
            // began: the blocks that arrive meanwhile wait for the next commit.
            let stopping = tokio::select! {
                changed = stop.changed() => changed.is_err() || *stop.borrow(),
                event = events.recv() => matches!(event, Err(broadcast::error::RecvError::Closed)),
                _ = tokio::time::sleep(TICK) => false,
            };
            let stopping = stopping
                || tokio::select! {
                    changed = stop.changed() => changed.is_err() || *stop.borrow(),
                    _ = tokio::time::sleep_until(began + COMMIT_INTERVAL) => false,
                };
            if stopping {
                self.step(node).await;
                return;
            }
        }
    }

    /// One catch-up on a blocking thread; failures are logged (the next one tries again).
    async fn step<F: Followed>(self: Arc<Self>, node: Arc<F>) {
        match tokio::task::spawn_blocking(move || self.catch_up(node.as_ref())).await {
            Ok(Ok(done)) if done.applied + done.undone > 0 => {
                tracing::debug!(
                    height = done.height,
                    applied = done.applied,
                    undone = done.undone,
                    "search index followed the chain"
                );
            }
            Ok(Ok(_)) => {}
            Ok(Err(error)) => warn!(%error, "search index could not follow the chain"),
            Err(error) => warn!(%error, "search index task failed"),
        }
    }
}
