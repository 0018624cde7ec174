//! A peer's query index kept up with its node: opened (or rebuilt from the journal when missing
//! or unreadable) at start, then caught up after every block the node adds and on a slow tick
//! (a reorganisation is seen as the chain's blocks changing at heights the index followed).
//! Searches read the last commit and never wait for the follower or the node.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{broadcast, watch};
use tracing::{info, warn};

use super::engine::Engine;
use super::follow::{sync, ChainSource, Synced};
use super::query::{search, Page, SearchQuery};
use super::SearchError;
use crate::journal::{Block, IndexRead};
use crate::model::{Cid, Object};
use crate::node::Node;

/// Blocks one follower step applies before it commits.
pub const BATCH_BLOCKS: u64 = 256;
/// How often the follower looks at the chain when no block event arrives.
pub const TICK: Duration = Duration::from_secs(1);

/// The query index of a peer.
pub struct SearchService {
    engine: Engine,
    dir: PathBuf,
    /// One follower at a time.
    following: Mutex<()>,
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
        Block::from_bytes(&bytes).map_err(SearchError::chain)
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

    /// Follows `source` up to its tip (in steps of [`BATCH_BLOCKS`]); what the last step did.
    pub fn catch_up(&self, source: &impl ChainSource) -> Result<Synced, SearchError> {
        let _one = self.following.lock().unwrap_or_else(|p| p.into_inner());
        let mut total = Synced {
            undone: 0,
            applied: 0,
            height: 0,
            behind: true,
        };
        while total.behind {
            let step = sync(&self.engine, source, BATCH_BLOCKS)?;
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

    /// Keeps the index up with `node` until `stop` says so.
    pub async fn follow(self: Arc<Self>, node: Arc<Node>, mut stop: watch::Receiver<bool>) {
        let mut events = node.subscribe();
        let mut tick = tokio::time::interval(TICK);
        loop {
            let this = self.clone();
            let source = node.clone();
            match tokio::task::spawn_blocking(move || this.catch_up(source.as_ref())).await {
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
            tokio::select! {
                changed = stop.changed() => if changed.is_err() || *stop.borrow() { return },
                event = events.recv() => if let Err(broadcast::error::RecvError::Closed) = event { return },
                _ = tick.tick() => {}
            }
        }
    }
}
