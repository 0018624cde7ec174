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

/// The paths of the document (`/v1/objects/{cid}`), read once.
static PATHS: std::sync::LazyLock<Vec<String>> = std::sync::LazyLock::new(|| {
    serde_json::from_str::<serde_json::Value>(DOCUMENT)
        .ok()
        .and_then(|doc| {
            doc.get("paths")
                .and_then(|paths| paths.as_object())
                .map(|paths| paths.keys().cloned().collect())
        })
        .unwrap_or_default()
});

/// The route of the document that `path` matches (a `{parameter}` matches any one segment), or
/// `other`: the only values the `http_requests` metric label takes, so a client requesting random
/// paths cannot create metric series.
pub fn route_of(path: &str) -> &'static str {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    PATHS
        .iter()
        .find(|route| {
            let pattern: Vec<&str> = route.split('/').filter(|s| !s.is_empty()).collect();
            pattern.len() == segments.len()
                && pattern
                    .iter()
                    .zip(&segments)
                    .all(|(p, s)| p == s || (p.starts_with('{') && p.ends_with('}')))
        })
        .map_or("other", String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_map_to_their_route_of_the_document_and_anything_else_to_other() {
        assert!(PATHS.len() >= 15, "{:?}", *PATHS);
        for route in PATHS.iter() {
            assert_eq!(route_of(route), route.as_str());
        }
        assert_eq!(route_of("/v1/objects/bafyabc"), "/v1/objects/{cid}");
        assert_eq!(route_of("/v1/objects"), "/v1/objects");
        assert_eq!(route_of("/v1/objects/a/b"), "other");
        assert_eq!(route_of("/v1/random-7"), "other");
        assert_eq!(route_of("/"), "/");
        assert_eq!(route_of("/explorer/app.js"), "/explorer/{file}");
    }
}
