//! Questions to the index: full text over the metadata of entities and artefacts (tantivy's
//! query syntax: words, `"phrases"`, `AND`/`OR`/`-`, `field:`), artefacts by creator, by the
//! time their current head was committed, and canonicals by CID prefix; answered a page at a
//! time. Every input is bounded; a query that does not parse is an error that names the problem.

use std::ops::Bound;

use tantivy::collector::{Count, TopDocs};
use tantivy::query::{BooleanQuery, Occur, Query, QueryParser, RangeQuery, RegexQuery, TermQuery};
use tantivy::schema::{IndexRecordOption, Value};
use tantivy::{DocAddress, Order, TantivyDocument, Term};

use super::engine::Engine;
use super::record::Standing;
use super::SearchError;
use crate::model::Cid;

/// Most hits in one page.
pub const MAX_LIMIT: usize = 100;
/// Deepest hit a cursor may reach (as Elasticsearch's `max_result_window`).
pub const MAX_WINDOW: usize = 10_000;
/// Longest query text, in bytes.
pub const MAX_QUERY_BYTES: usize = 512;

/// A question.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchQuery {
    /// Full-text query over the metadata.
    pub text: Option<String>,
    /// Artefacts created by this entity.
    pub creator: Option<Cid>,
    /// Canonicals whose CID starts with this.
    pub prefix: Option<String>,
    /// Current head committed at or after (Unix milliseconds).
    pub from_ms: Option<u64>,
    /// Current head committed before (Unix milliseconds).
    pub to_ms: Option<u64>,
    /// Hits in the page (1 to [`MAX_LIMIT`]).
    pub limit: usize,
    /// Hits to skip (from the cursor).
    pub offset: usize,
}

/// One hit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    /// The canonical.
    pub canonical: Cid,
    /// `entity` or `artefact`.
    pub subject: String,
    /// Its head and the block that committed it.
    pub standing: Standing,
    /// Its metadata resolved (a JSON object of strings).
    pub meta: String,
    /// Its creators (artefacts).
    pub creators: Vec<String>,
}

/// A page of hits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// The hits: by relevance for a text query, else newest commit first.
    pub hits: Vec<Hit>,
    /// Matching canonicals in all.
    pub total: usize,
    /// Offset of the next page, when there is one within the window.
    pub next: Option<usize>,
}

impl SearchQuery {
    /// Checks the bounds of the question.
    pub fn check(&self) -> Result<(), SearchError> {
        let bad = |detail: String| Err(SearchError::BadQuery(detail));
        if self.limit == 0 || self.limit > MAX_LIMIT {
            return bad(format!("limit must be between 1 and {MAX_LIMIT}"));
        }
        if self.offset.saturating_add(self.limit) > MAX_WINDOW {
            return bad(format!(
                "results past the first {MAX_WINDOW} are not served; narrow the query"
            ));
        }
        if self
            .text
            .as_ref()
            .is_some_and(|t| t.len() > MAX_QUERY_BYTES)
        {
            return bad(format!("q is longer than {MAX_QUERY_BYTES} bytes"));
        }
        if let Some(prefix) = &self.prefix {
            if prefix.is_empty()
                || prefix.len() > 100
                || !prefix.chars().all(|c| c.is_ascii_alphanumeric())
            {
                return bad("canonical must be a CID prefix of 1 to 100 letters and digits".into());
            }
        }
        if let (Some(from), Some(to)) = (self.from_ms, self.to_ms) {
            if from >= to {
                return bad("from must be before to".into());
            }
        }
        Ok(())
    }
}

fn term_query(term: Term) -> Box<dyn Query> {
    Box::new(TermQuery::new(term, IndexRecordOption::Basic))
}

/// Answers `query` from the index's last commit.
pub fn search(engine: &Engine, query: &SearchQuery) -> Result<Page, SearchError> {
    query.check()?;
    let f = engine.fields;
    let mut clauses: Vec<(Occur, Box<dyn Query>)> =
        vec![(Occur::Must, term_query(Term::from_field_text(f.kind, "c")))];
    let text = query
        .text
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty());
    if let Some(text) = text {
        let parser = QueryParser::for_index(engine.index(), vec![f.text]);
        let parsed = parser
            .parse_query(text)
            .map_err(|e| SearchError::BadQuery(format!("q: {e}")))?;
        clauses.push((Occur::Must, parsed));
    }
    if let Some(creator) = &query.creator {
        clauses.push((
            Occur::Must,
            term_query(Term::from_field_text(f.creator, &creator.to_string())),
        ));
    }
    if let Some(prefix) = &query.prefix {
        let regex = RegexQuery::from_pattern(&format!("{prefix}.*"), f.canonical)?;
        clauses.push((Occur::Must, Box::new(regex)));
    }
    if query.from_ms.is_some() || query.to_ms.is_some() {
        let bound = |ms: Option<u64>, inclusive: bool| match ms {
            None => Bound::Unbounded,
            Some(ms) if inclusive => Bound::Included(Term::from_field_u64(f.time, ms)),
            Some(ms) => Bound::Excluded(Term::from_field_u64(f.time, ms)),
        };
        let range = RangeQuery::new(bound(query.from_ms, true), bound(query.to_ms, false));
        clauses.push((Occur::Must, Box::new(range)));
    }
    let all = BooleanQuery::new(clauses);
    let searcher = engine.searcher();
    let window = TopDocs::with_limit(query.limit).and_offset(query.offset);
    let (addresses, total): (Vec<DocAddress>, usize) = if text.is_some() {
        // A query that parsed but cannot run (a field of the wrong kind) is the asker's.
        let (top, total) = searcher
            .search(&all, &(window.order_by_score(), Count))
            .map_err(|e| SearchError::BadQuery(format!("q cannot be run: {e}")))?;
        (top.into_iter().map(|(_, a)| a).collect(), total)
    } else {
        let (top, total): (Vec<(Option<u64>, DocAddress)>, usize) = searcher.search(
            &all,
            &(window.order_by_fast_field("time", Order::Desc), Count),
        )?;
        (top.into_iter().map(|(_, a)| a).collect(), total)
    };
    let mut hits = Vec::with_capacity(addresses.len());
    for address in addresses {
        let doc: TantivyDocument = searcher.doc(address)?;
        let text_of = |field| {
            doc.get_first(field)
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_string()
        };
        hits.push(Hit {
            canonical: text_of(f.canonical)
                .parse()
                .map_err(|_| SearchError::Corrupt("a stored CID does not parse".into()))?,
            subject: text_of(f.subject),
            standing: engine.standing_of(&doc)?,
            meta: text_of(f.meta),
            creators: doc
                .get_all(f.creator)
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect(),
        });
    }
    let end = query.offset + hits.len();
    let next = (end < total && end < MAX_WINDOW && !hits.is_empty()).then_some(end);
    Ok(Page { hits, total, next })
}
