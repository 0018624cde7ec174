//! The query index every peer keeps (feature `node`): full-text search over the metadata of
//! entities and artefacts, artefacts by creator, canonicals by commit time and CID prefix — a
//! tantivy index derived from the canonical chain and the datastore, never a second source of
//! truth. It can always be deleted and rebuilt from the journal.
//!
//! - [`record`]: what one canonical's document holds, derived from its head (pure);
//! - [`engine`]: the tantivy index on disk (schema, documents, atomic commits);
//! - [`follow`]: following the chain block by block through reorganisations (undo records);
//! - [`query`]: questions and pages of hits;
//! - [`service`]: the task that keeps a peer's index up with its node.
//!
//! Nothing here changes the chain or the datastore.

pub mod engine;
pub mod follow;
pub mod query;
pub mod record;
pub mod service;

#[cfg(test)]
mod tests;

use std::path::Path;

pub use engine::Engine;
pub use follow::{sync, ChainSource, Synced};
pub use query::{search, Hit, Page, SearchQuery};
pub use record::{Record, Standing};
pub use service::SearchService;

/// Why the index could not answer or follow.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    /// The question is malformed or over a limit (the detail says which).
    #[error("{0}")]
    BadQuery(String),
    /// The search engine failed.
    #[error("search index: {0}")]
    Engine(#[from] tantivy::TantivyError),
    /// The index directory could not be used.
    #[error("search index directory {path}: {error}")]
    Io {
        /// The directory.
        path: String,
        /// What failed.
        error: std::io::Error,
    },
    /// What the index holds does not parse: it must be rebuilt.
    #[error("search index is corrupt: {0}")]
    Corrupt(String),
    /// The chain or the datastore could not be read.
    #[error("reading the chain: {0}")]
    Chain(String),
    /// The chain kept changing while a step read it.
    #[error("the chain kept reorganising while the index followed it")]
    Unstable,
}

impl SearchError {
    fn io(path: &Path, error: std::io::Error) -> Self {
        Self::Io {
            path: path.display().to_string(),
            error,
        }
    }

    fn chain(error: impl std::fmt::Display) -> Self {
        Self::Chain(error.to_string())
    }
}
