//! The documents of `GET /v1/search`.

use serde::{Deserialize, Serialize};

/// One hit of `GET /v1/search`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SearchHit {
    /// The canonical.
    pub canonical: String,
    /// `entity` or `artefact`.
    pub subject: String,
    /// Its current head (the Nil CID when no cell was journaled yet).
    pub head: String,
    /// Its metadata resolved: each key's value from the newest cell holding it.
    pub meta: serde_json::Map<String, serde_json::Value>,
    /// Entities its `artefactCreatedBy` cells name.
    pub creators: Vec<String>,
    /// The block that committed its current head.
    pub block: String,
    /// That block's height.
    pub height: u64,
    /// That block's time (RFC 3339).
    pub committed: String,
}

/// `GET /v1/search`: a page of hits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SearchPage {
    /// The hits: by relevance for a text query, else newest commit first.
    pub hits: Vec<SearchHit>,
    /// Matching canonicals in all.
    pub total: u64,
    /// The cursor of the next page (absent on the last one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
    /// The height the index has followed the chain to.
    pub height: u64,
}
