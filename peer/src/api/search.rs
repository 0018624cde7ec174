//! `GET /v1/search?q=&creator=&canonical=&from=&to=&limit=&cursor=`: questions to the peer's
//! query index ([`crate::search`]). Full text in `q` (tantivy's syntax), artefacts by `creator`
//! (an entity's canonical), by the time their current head was committed (`from`, `to`: RFC 3339)
//! and canonicals by CID prefix (`canonical`), a page of `limit` hits after `cursor`. Served
//! behind the edge's limits like every route; the search runs on the blocking pool against the
//! index's last commit and never takes the node's lock.

use serde::Deserialize;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::Filter;

use super::objects::parse_cid;
use super::offload::Lane;
use super::problem::{answer, ApiError};
use super::{json, with, Api};
use crate::client::wire::{SearchHit, SearchPage};
use crate::search::{Page, SearchError, SearchQuery};

#[derive(Debug, Deserialize)]
struct Params {
    q: Option<String>,
    creator: Option<String>,
    canonical: Option<String>,
    from: Option<String>,
    to: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
}

/// The search route.
pub fn routes(api: Api) -> BoxedFilter<(Response,)> {
    warp::path!("v1" / "search")
        .and(warp::get())
        .and(with(api))
        .and(warp::query::<Params>())
        .and_then(|api: Api, params: Params| async move { answer(search(api, params).await) })
        .boxed()
}

fn invalid(detail: impl Into<String>) -> ApiError {
    ApiError::bad_request("invalid-search", detail)
}

fn time_ms(name: &str, text: Option<&str>) -> Result<Option<u64>, ApiError> {
    let Some(text) = text else {
        return Ok(None);
    };
    let time = humantime::parse_rfc3339_weak(text.trim()).map_err(|e| {
        invalid(format!(
            "{name}: {e} (use RFC 3339, e.g. 2026-12-02T04:00:00Z)"
        ))
    })?;
    let ms = time
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| invalid(format!("{name} is before 1970")))?
        .as_millis();
    Ok(Some(u64::try_from(ms).unwrap_or(u64::MAX)))
}

fn query_of(params: &Params) -> Result<SearchQuery, ApiError> {
    let offset = match params.cursor.as_deref() {
        None | Some("") => 0,
        Some(cursor) => cursor
            .parse()
            .map_err(|_| invalid("cursor: not a cursor this peer handed out"))?,
    };
    Ok(SearchQuery {
        text: params.q.clone(),
        creator: params.creator.as_deref().map(parse_cid).transpose()?,
        prefix: params.canonical.clone(),
        from_ms: time_ms("from", params.from.as_deref())?,
        to_ms: time_ms("to", params.to.as_deref())?,
        limit: params.limit.unwrap_or(20),
        offset,
    })
}

fn committed(ms: u64) -> String {
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
    humantime::format_rfc3339_millis(time).to_string()
}

fn page_of(page: Page, height: u64) -> SearchPage {
    SearchPage {
        hits: page
            .hits
            .into_iter()
            .map(|hit| SearchHit {
                canonical: hit.canonical.to_string(),
                subject: hit.subject,
                head: hit.standing.head.to_string(),
                meta: serde_json::from_str(&hit.meta).unwrap_or_default(),
                creators: hit.creators,
                block: hit.standing.block.to_string(),
                height: hit.standing.height,
                committed: committed(hit.standing.time_ms),
            })
            .collect(),
        total: page.total as u64,
        next: page.next.map(|offset| offset.to_string()),
        height,
    }
}

async fn search(api: Api, params: Params) -> Result<Response, ApiError> {
    let query = query_of(&params)?;
    let Some(index) = api.search.clone() else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "search-unavailable",
            "this peer runs without a query index",
        ));
    };
    let page = api
        .offload
        .run(Lane::Read, move || {
            let height = index.height().map_err(ApiError::internal)?.unwrap_or(0);
            match index.search(&query) {
                Ok(page) => Ok(page_of(page, height)),
                Err(SearchError::BadQuery(detail)) => Err(invalid(detail)),
                Err(error) => Err(ApiError::internal(error)),
            }
        })
        .await?;
    Ok(json(StatusCode::OK, &page))
}
