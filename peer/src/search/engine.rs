//! The tantivy index on disk: its schema, the documents it holds and the reads the follower
//! and the queries need. Two kinds of document share one index so that they commit together:
//! one per canonical (its [`Record`]) and one per block the index has followed (its height,
//! CID and undo record). A tantivy commit is atomic, so after a crash the index is exactly as
//! at its last commit: some block height of some chain, never half of one.
//!
//! This module knows nothing of the chain: [`super::follow`] decides what to write.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use serde::{Deserialize, Serialize};
use tantivy::collector::TopDocs;
use tantivy::query::{Query, TermQuery};
use tantivy::schema::{
    Field, IndexRecordOption, Schema, Value, FAST, INDEXED, STORED, STRING, TEXT,
};
use tantivy::{
    DocAddress, DocSet, Index, IndexReader, IndexWriter, Order, ReloadPolicy, Searcher,
    SegmentOrdinal, TantivyDocument, Term, TERMINATED,
};

use super::record::{Record, Standing};
use super::SearchError;
use crate::model::Cid;

/// Memory the writer may use before it flushes a segment.
const WRITER_BUDGET: usize = 64 * 1024 * 1024;

/// How one entry of a followed block changed a canonical (to undo it on a reorganisation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Undo {
    /// The canonical.
    pub canonical: Cid,
    /// Where it stood before (`None`: not inserted).
    pub before: Option<Standing>,
}

/// The fields of the schema.
#[derive(Clone, Copy)]
pub(crate) struct Fields {
    /// `c` (a canonical) or `b` (a followed block).
    pub kind: Field,
    pub canonical: Field,
    pub head: Field,
    pub subject: Field,
    pub text: Field,
    pub meta: Field,
    pub creator: Field,
    pub height: Field,
    pub block: Field,
    pub time: Field,
    pub undo: Field,
}

fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let fields = Fields {
        kind: b.add_text_field("kind", STRING),
        canonical: b.add_text_field("canonical", STRING | STORED),
        head: b.add_text_field("head", STORED),
        subject: b.add_text_field("subject", STRING | STORED),
        text: b.add_text_field("text", TEXT),
        meta: b.add_text_field("meta", STORED),
        creator: b.add_text_field("creator", STRING | STORED),
        height: b.add_u64_field("height", INDEXED | FAST | STORED),
        block: b.add_text_field("block", STORED),
        time: b.add_u64_field("time", INDEXED | FAST | STORED),
        undo: b.add_bytes_field("undo", STORED),
    };
    (b.build(), fields)
}

/// The index on disk, with its only writer. Reads see the last commit and never wait for the
/// writer; one follower at a time writes ([`super::SearchService`] sees to it).
pub struct Engine {
    index: Index,
    reader: IndexReader,
    writer: Mutex<IndexWriter>,
    commits: AtomicU64,
    pub(crate) fields: Fields,
}

fn cid_of(text: Option<&str>) -> Result<Cid, SearchError> {
    text.and_then(|t| t.parse().ok())
        .ok_or_else(|| SearchError::Corrupt("a stored CID does not parse".into()))
}

fn segment_ord(ord: usize) -> Result<SegmentOrdinal, SearchError> {
    SegmentOrdinal::try_from(ord)
        .map_err(|_| SearchError::Corrupt(format!("segment ordinal {ord} out of range")))
}

impl Engine {
    /// Opens the index in `dir`, creating an empty one when there is none (`true` then). An
    /// index that does not open (corrupt, or another schema) is an error: the caller rebuilds.
    pub fn open(dir: &Path) -> Result<(Self, bool), SearchError> {
        let (schema, fields) = schema();
        std::fs::create_dir_all(dir).map_err(|e| SearchError::io(dir, e))?;
        let exists = dir.join("meta.json").exists();
        let index = if exists {
            let index = Index::open_in_dir(dir)?;
            if index.schema() != schema {
                return Err(SearchError::Corrupt("the index has another schema".into()));
            }
            index
        } else {
            Index::create_in_dir(dir, schema)?
        };
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        let writer = index.writer_with_num_threads(1, WRITER_BUDGET)?;
        Ok((
            Self {
                index,
                reader,
                writer: Mutex::new(writer),
                commits: AtomicU64::new(0),
                fields,
            },
            !exists,
        ))
    }

    fn writer(&self) -> MutexGuard<'_, IndexWriter> {
        self.writer.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A searcher over the last commit.
    pub fn searcher(&self) -> Searcher {
        self.reader.searcher()
    }

    /// The index (for query parsing).
    pub fn index(&self) -> &Index {
        &self.index
    }

    fn term(&self, field: Field, text: &str) -> Term {
        Term::from_field_text(field, text)
    }

    fn first(&self, query: &dyn Query) -> Result<Option<TantivyDocument>, SearchError> {
        let searcher = self.searcher();
        let top = searcher.search(query, &TopDocs::with_limit(1).order_by_score())?;
        match top.first() {
            Some((_, address)) => Ok(Some(searcher.doc(*address)?)),
            None => Ok(None),
        }
    }

    /// Where `canonical` stands in the last commit.
    pub fn standing(&self, canonical: &Cid) -> Result<Option<Standing>, SearchError> {
        let query = TermQuery::new(
            self.term(self.fields.canonical, &canonical.to_string()),
            IndexRecordOption::Basic,
        );
        self.first(&query)?
            .map(|doc| self.standing_of(&doc))
            .transpose()
    }

    pub(crate) fn standing_of(&self, doc: &TantivyDocument) -> Result<Standing, SearchError> {
        let f = &self.fields;
        Ok(Standing {
            head: cid_of(doc.get_first(f.head).and_then(|v| v.as_str()))?,
            height: doc
                .get_first(f.height)
                .and_then(|v| v.as_u64())
                .unwrap_or(0),
            block: cid_of(doc.get_first(f.block).and_then(|v| v.as_str()))?,
            time_ms: doc.get_first(f.time).and_then(|v| v.as_u64()).unwrap_or(0),
        })
    }

    fn height_query(&self, height: u64) -> TermQuery {
        TermQuery::new(
            Term::from_field_u64(self.fields.height, height),
            IndexRecordOption::Basic,
        )
    }

    fn block_query(&self, height: u64) -> tantivy::query::BooleanQuery {
        use tantivy::query::{BooleanQuery, Occur};
        BooleanQuery::new(vec![
            (
                Occur::Must,
                Box::new(TermQuery::new(
                    self.term(self.fields.kind, "b"),
                    IndexRecordOption::Basic,
                )),
            ),
            (Occur::Must, Box::new(self.height_query(height))),
        ])
    }

    /// The CID of the followed block at `height`, its undo record left undecoded (what a
    /// step's search for the common ancestor compares).
    pub fn followed_at(&self, height: u64) -> Result<Option<Cid>, SearchError> {
        self.first(&self.block_query(height))?
            .map(|doc| cid_of(doc.get_first(self.fields.block).and_then(|v| v.as_str())))
            .transpose()
    }

    /// The followed block at `height` and its undo record.
    pub fn block_at(&self, height: u64) -> Result<Option<(Cid, Vec<Undo>)>, SearchError> {
        let Some(doc) = self.first(&self.block_query(height))? else {
            return Ok(None);
        };
        let cid = cid_of(doc.get_first(self.fields.block).and_then(|v| v.as_str()))?;
        let undo = doc
            .get_first(self.fields.undo)
            .and_then(|v| v.as_bytes())
            .unwrap_or_default();
        let undo = serde_json::from_slice(undo)
            .map_err(|e| SearchError::Corrupt(format!("undo record of height {height}: {e}")))?;
        Ok(Some((cid, undo)))
    }

    /// The height of the newest followed block.
    pub fn tip(&self) -> Result<Option<u64>, SearchError> {
        let searcher = self.searcher();
        let query = TermQuery::new(self.term(self.fields.kind, "b"), IndexRecordOption::Basic);
        let top: Vec<(Option<u64>, DocAddress)> = searcher.search(
            &query,
            &TopDocs::with_limit(1).order_by_fast_field("height", Order::Desc),
        )?;
        Ok(top.first().and_then(|(height, _)| *height))
    }

    /// Forgets the followed block at `height`.
    pub fn delete_block(&self, height: u64) -> Result<(), SearchError> {
        self.writer()
            .delete_query(Box::new(self.block_query(height)))?;
        Ok(())
    }

    /// Records a followed block.
    pub fn add_block(&self, height: u64, cid: &Cid, undo: &[Undo]) -> Result<(), SearchError> {
        let f = self.fields;
        let mut doc = TantivyDocument::new();
        doc.add_text(f.kind, "b");
        doc.add_u64(f.height, height);
        doc.add_text(f.block, cid.to_string());
        let undo = serde_json::to_vec(undo).map_err(|e| SearchError::Corrupt(e.to_string()))?;
        doc.add_bytes(f.undo, &undo);
        self.writer().add_document(doc)?;
        Ok(())
    }

    /// Where each of `canonicals` stands in the last commit (a canonical with no record there
    /// is not in the map). Each is looked up straight in every segment's term dictionary, its
    /// postings read unscored: no query, weight or scorer to build (a `TermSetQuery` over a
    /// step's canonicals built an FST of them, dearer than the look-ups it saved).
    pub fn standings(&self, canonicals: &[Cid]) -> Result<HashMap<Cid, Standing>, SearchError> {
        let searcher = self.searcher();
        let mut unfound: Vec<(Cid, Term)> = canonicals
            .iter()
            .map(|c| (*c, self.term(self.fields.canonical, &c.to_string())))
            .collect();
        let mut standings = HashMap::with_capacity(canonicals.len());
        for (ord, segment) in searcher.segment_readers().iter().enumerate() {
            if unfound.is_empty() {
                break;
            }
            let terms = segment.inverted_index(self.fields.canonical)?;
            let alive = segment.alive_bitset();
            let mut found = Vec::new();
            for (i, (canonical, term)) in unfound.iter().enumerate() {
                let postings = terms
                    .read_postings(term, IndexRecordOption::Basic)
                    .map_err(tantivy::TantivyError::from)?;
                let Some(mut postings) = postings else {
                    continue;
                };
                // A canonical has one live document; deleted ones stay until a merge.
                let mut doc = postings.doc();
                while doc != TERMINATED && alive.is_some_and(|a| a.is_deleted(doc)) {
                    doc = postings.advance();
                }
                if doc == TERMINATED {
                    continue;
                }
                let address = DocAddress::new(segment_ord(ord)?, doc);
                let stored: TantivyDocument = searcher.doc(address)?;
                standings.insert(*canonical, self.standing_of(&stored)?);
                found.push(i);
            }
            for i in found.into_iter().rev() {
                unfound.swap_remove(i);
            }
        }
        Ok(standings)
    }

    /// Writes the record of `canonical` (`None`: none), replacing the one the last commit holds
    /// when `recorded` (`false` only when it holds none: the delete is then skipped).
    pub fn put(
        &self,
        canonical: &Cid,
        record: Option<&Record>,
        recorded: bool,
    ) -> Result<(), SearchError> {
        let f = self.fields;
        if recorded {
            self.writer()
                .delete_term(self.term(f.canonical, &canonical.to_string()));
        }
        let Some(record) = record else {
            return Ok(());
        };
        let mut doc = TantivyDocument::new();
        doc.add_text(f.kind, "c");
        doc.add_text(f.canonical, record.canonical.to_string());
        doc.add_text(f.head, record.standing.head.to_string());
        doc.add_text(
            f.subject,
            match record.subject {
                super::record::Subject::Entity => "entity",
                super::record::Subject::Artefact => "artefact",
            },
        );
        for text in &record.text {
            doc.add_text(f.text, text);
        }
        let meta = serde_json::to_string(&record.meta).unwrap_or_default();
        doc.add_text(f.meta, meta);
        for creator in &record.creators {
            doc.add_text(f.creator, creator.to_string());
        }
        doc.add_u64(f.height, record.standing.height);
        doc.add_text(f.block, record.standing.block.to_string());
        doc.add_u64(f.time, record.standing.time_ms);
        self.writer().add_document(doc)?;
        Ok(())
    }

    /// Removes every document committed so far (a rebuild starts from here; what is added
    /// after it in the same commit stays, and a crash before the commit keeps the old index).
    pub fn clear(&self) -> Result<(), SearchError> {
        self.writer()
            .delete_query(Box::new(tantivy::query::AllQuery))?;
        Ok(())
    }

    /// Makes every change since the last commit durable and visible, at once.
    pub fn commit(&self) -> Result<(), SearchError> {
        self.writer().commit()?;
        self.reader.reload()?;
        self.commits.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Commits made since the index was opened.
    pub fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    /// Drops every change since the last commit.
    pub fn rollback(&self) -> Result<(), SearchError> {
        self.writer().rollback()?;
        Ok(())
    }
}
