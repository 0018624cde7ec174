//! `GET /v1/journal/export?toHeight=H`: the journal as a CAR v1 file (a backup, a bootstrap
//! image for a new peer, an IPFS export), streamed: its root is the canonical block at `H` (the
//! tip by default), and it holds every block down to genesis with the objects their
//! transactions reference. The root is fixed when the request arrives; everything under it is
//! content-addressed and never changes, so the file is a consistent view while the peer keeps
//! committing. At most [`MAX_EXPORTS`] run at once (then 503 with `Retry-After`).

use std::sync::Arc;

use futures::StreamExt;
use serde::Deserialize;
use tokio::sync::Semaphore;
use warp::filters::BoxedFilter;
use warp::http::{header, HeaderValue, StatusCode};
use warp::reply::Response;
use warp::{Filter, Reply};

use super::problem::{answer, ApiError};
use super::{with, Api};
use crate::backup::export::{car_stream, root_at, ExportError, CONTENT_TYPE};

/// Exports streaming at the same time, per peer.
pub const MAX_EXPORTS: usize = 2;

/// Response header naming the root block.
pub const ROOT_HEADER: &str = "x-mediachain-root";
/// Response header giving the root block's height.
pub const HEIGHT_HEADER: &str = "x-mediachain-height";

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ExportQuery {
    to_height: Option<u64>,
}

/// The export route.
pub fn routes(api: Api) -> BoxedFilter<(Response,)> {
    let slots = Arc::new(Semaphore::new(MAX_EXPORTS));
    warp::path!("v1" / "journal" / "export")
        .and(warp::get())
        .and(with(api))
        .and(warp::query::<ExportQuery>())
        .and_then(move |api: Api, q: ExportQuery| {
            let slots = slots.clone();
            async move { answer(export(&api, slots, q)) }
        })
        .boxed()
}

fn export(api: &Api, slots: Arc<Semaphore>, q: ExportQuery) -> Result<Response, ApiError> {
    let permit = slots.try_acquire_owned().map_err(|_| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            format!("{MAX_EXPORTS} exports are already running; retry later"),
        )
        .retry_after(10)
    })?;
    let (root, height) = api
        .node
        .with_journal(|journal| root_at(journal.index(), q.to_height))
        .map_err(|e| match e {
            ExportError::AboveTip { .. } => ApiError::not_found(e.to_string()),
            other => ApiError::internal(other),
        })?;
    let body = car_stream(api.node.store().clone(), (root, height)).map(move |chunk| {
        let _held = &permit; // released when the response ends or the client goes away
        chunk
    });
    let mut response = warp::reply::stream(body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    let disposition = format!("attachment; filename=\"journal-{height}.car\"");
    for (name, value) in [
        (ROOT_HEADER, root.to_string()),
        (HEIGHT_HEADER, height.to_string()),
        (header::CONTENT_DISPOSITION.as_str(), disposition),
    ] {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    }
    Ok(response)
}
