//! Reading the journal: `GET /v1/journal/head`, `GET /v1/journal/blocks?from=&limit=` (the
//! canonical chain by height), `GET /v1/journal/blocks/{cid}`, `GET /v1/journal/index/{canonical}`
//! (the index entry) and `GET /v1/journal/history/{canonical}` (the chain walk, cells resolved).

use serde::Deserialize;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::Filter;

use super::objects::parse_cid;
use super::problem::{answer, ApiError};
use super::{json, with, Api};
use crate::client::wire::{
    BlockSummary, Blocks, FinalizedBlock, Head, History, IndexEntry, Resolved,
};
use crate::journal::IndexRead;
use crate::model::{codec, Cid};

/// Most blocks in one page.
pub const MAX_BLOCKS: u64 = 100;
/// Most cells in one history.
pub const MAX_HISTORY: usize = 1000;

#[derive(Debug, Deserialize)]
struct RangeQuery {
    from: Option<u64>,
    limit: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct HistoryQuery {
    limit: Option<usize>,
}

/// The journal routes.
pub fn routes(api: Api) -> BoxedFilter<(Response,)> {
    let head = warp::path!("v1" / "journal" / "head")
        .and(warp::get())
        .and(with(api.clone()))
        .and_then(|api: Api| async move { answer(head(&api).map(|h| json(StatusCode::OK, &h))) });
    let blocks = warp::path!("v1" / "journal" / "blocks")
        .and(warp::get())
        .and(with(api.clone()))
        .and(warp::query::<RangeQuery>())
        .and_then(|api: Api, q: RangeQuery| async move { answer(blocks(&api, q)) });
    let block = warp::path!("v1" / "journal" / "blocks" / String)
        .and(warp::get())
        .and(with(api.clone()))
        .and_then(|cid: String, api: Api| async move { answer(block(&api, &cid)) });
    let index = warp::path!("v1" / "journal" / "index" / String)
        .and(warp::get())
        .and(with(api.clone()))
        .and_then(|cid: String, api: Api| async move { answer(index(&api, &cid)) });
    let history = warp::path!("v1" / "journal" / "history" / String)
        .and(warp::get())
        .and(with(api))
        .and(warp::query::<HistoryQuery>())
        .and_then(|cid: String, api: Api, q: HistoryQuery| async move {
            answer(history(&api, &cid, q))
        });
    head.or(blocks)
        .unify()
        .or(block)
        .unify()
        .or(index)
        .unify()
        .or(history)
        .unify()
        .boxed()
}

/// The head of the canonical chain.
pub fn head(api: &Api) -> Result<Head, ApiError> {
    let (cid, height) = api.node.tip().map_err(ApiError::internal)?;
    let weight = api.node.with_journal(|journal| journal.chain_weight(&cid));
    Ok(Head {
        cid: cid.to_string(),
        height,
        weight,
        genesis: api.node.genesis().to_string(),
        pending: api.node.pending(),
        finalized: api.node.finalized().map(|c| FinalizedBlock {
            cid: c.cid.to_string(),
            height: c.height,
        }),
    })
}

/// Summaries of canonical blocks from `from`, at most `max`.
pub fn summaries(api: &Api, from: u64, max: u64) -> Result<Vec<BlockSummary>, ApiError> {
    let cids = api
        .node
        .canonical_range(from, max)
        .map_err(ApiError::internal)?;
    api.node.with_journal(|journal| {
        cids.iter()
            .map(|cid| {
                let block = journal.load_block(cid).map_err(ApiError::internal)?;
                let mut summary = BlockSummary::of(cid, &block);
                summary.weight = journal.block_weight(cid);
                Ok(summary)
            })
            .collect()
    })
}

fn blocks(api: &Api, q: RangeQuery) -> Result<Response, ApiError> {
    let limit = q.limit.unwrap_or(20);
    if limit == 0 || limit > MAX_BLOCKS {
        return Err(ApiError::bad_request(
            "invalid-query",
            format!("limit must be between 1 and {MAX_BLOCKS}"),
        ));
    }
    let blocks = summaries(api, q.from.unwrap_or(0), limit)?;
    Ok(json(StatusCode::OK, &Blocks { blocks }))
}

fn block(api: &Api, cid: &str) -> Result<Response, ApiError> {
    let cid = parse_cid(cid)?;
    let block = api
        .node
        .with_journal(|journal| Some((journal.load_block(&cid).ok()?, journal.block_weight(&cid))));
    match block {
        Some((block, weight)) => {
            let mut summary = BlockSummary::of(&cid, &block);
            summary.weight = weight;
            Ok(json(StatusCode::OK, &summary))
        }
        None => Err(ApiError::not_found(format!(
            "{cid} is not a block known here"
        ))),
    }
}

fn head_of(api: &Api, canonical: &Cid) -> Result<Cid, ApiError> {
    api.node
        .with_journal(|journal| journal.index().head(canonical))
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::not_found(format!("{canonical} is not in the journal's index")))
}

fn index(api: &Api, canonical: &str) -> Result<Response, ApiError> {
    let canonical = parse_cid(canonical)?;
    let head = head_of(api, &canonical)?;
    Ok(json(
        StatusCode::OK,
        &IndexEntry {
            canonical: canonical.to_string(),
            head: head.to_string(),
        },
    ))
}

fn dag_json(api: &Api, cid: &Cid) -> Result<serde_json::Value, ApiError> {
    let bytes = api
        .node
        .store()
        .get(cid)
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::not_found(format!("object {cid} is not in the store")))?;
    let ipld = codec::decode(&bytes).map_err(ApiError::internal)?;
    let text = serde_ipld_dagjson::to_vec(&ipld).map_err(ApiError::internal)?;
    serde_json::from_slice(&text).map_err(ApiError::internal)
}

fn history(api: &Api, canonical: &str, q: HistoryQuery) -> Result<Response, ApiError> {
    let canonical = parse_cid(canonical)?;
    let limit = q.limit.unwrap_or(100);
    if limit == 0 || limit > MAX_HISTORY {
        return Err(ApiError::bad_request(
            "invalid-query",
            format!("limit must be between 1 and {MAX_HISTORY}"),
        ));
    }
    let head = head_of(api, &canonical)?;
    let cells = api
        .node
        .with_journal(|journal| journal.history(&canonical, limit))
        .map_err(ApiError::internal)?;
    let cells = cells
        .into_iter()
        .map(|(cid, _)| {
            Ok(Resolved {
                cid: cid.to_string(),
                object: dag_json(api, &cid)?,
            })
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    Ok(json(
        StatusCode::OK,
        &History {
            canonical: canonical.to_string(),
            head: head.to_string(),
            object: dag_json(api, &canonical)?,
            cells,
        },
    ))
}
