//! The OpenAPI 3 document of the whole API, served at `GET /v1/openapi.json`.
//!
//! The document is a checked-in file (`openapi.json` beside this module); the test suite runs an
//! independent tool (schemathesis) against a live server with it, so it cannot drift silently.

use warp::filters::BoxedFilter;
use warp::reply::Response;
use warp::{Filter, Reply};

/// The document.
pub const DOCUMENT: &str = include_str!("openapi.json");

/// The route serving it.
pub fn routes() -> BoxedFilter<(Response,)> {
    warp::path!("v1" / "openapi.json")
        .and(warp::get())
        .map(|| {
            warp::reply::with_header(DOCUMENT, "content-type", "application/json").into_response()
        })
        .boxed()
}
