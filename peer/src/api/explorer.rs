//! The explorer: a web page served by every peer at `/` (its script and style at
//! `/explorer/app.js`, `/explorer/app.css` and `/explorer/icon.svg`), compiled into the binary. It shows the peer's
//! health, the newest blocks and transactions live from `/v1/events`, a block, a transaction with
//! its state, an entity's or artefact's history, and search results — using only the public API
//! from the browser. Every answer carries a Content-Security-Policy that allows this origin's
//! script, style and API and nothing else (no inline code, no other origin, no framing).
//! This module never reads the node: the page does, through the API.

use warp::filters::BoxedFilter;
use warp::http::{header, HeaderValue};
use warp::reply::Response;
use warp::{Filter, Reply};

/// The page.
pub const INDEX: &str = include_str!("explorer/index.html");
/// Its script.
pub const SCRIPT: &str = include_str!("explorer/app.js");
/// Its style sheet.
pub const STYLE: &str = include_str!("explorer/app.css");
/// Its icon.
pub const ICON: &str = include_str!("explorer/icon.svg");

/// The policy of every explorer answer: this origin's own files and API only.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; \
     form-action 'self'; frame-ancestors 'none'";

/// An asset with its type, the security policy and revalidation on every load (the assets
/// change with the binary).
fn asset(body: &'static str, content_type: &'static str) -> Response {
    let mut response = Response::new(body.into());
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// The explorer's routes: `GET /` and `GET /explorer/{file}`.
pub fn routes() -> BoxedFilter<(Response,)> {
    let index = warp::path::end()
        .and(warp::get())
        .map(|| asset(INDEX, "text/html; charset=utf-8"));
    let files = warp::path!("explorer" / String)
        .and(warp::get())
        .map(|name: String| match name.as_str() {
            "app.js" => asset(SCRIPT, "text/javascript; charset=utf-8"),
            "app.css" => asset(STYLE, "text/css; charset=utf-8"),
            "icon.svg" => asset(ICON, "image/svg+xml"),
            _ => super::problem::ApiError::not_found(format!("the explorer has no file `{name}`"))
                .into_response(),
        });
    index.or(files).unify().boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_nothing_inline_or_from_elsewhere() {
        // The policy forbids inline code: the page must not need it.
        assert!(!INDEX.contains("<script>") && !INDEX.contains("style="));
        let handlers = INDEX.split(" on").skip(1).filter(|rest| {
            let name: String = rest.chars().take_while(char::is_ascii_alphabetic).collect();
            !name.is_empty() && rest[name.len()..].starts_with('=')
        });
        assert_eq!(handlers.count(), 0, "no inline event handlers");
        for text in [INDEX, SCRIPT, STYLE] {
            assert!(!text.contains("http://") && !text.contains("https://"));
        }
        assert!(!SCRIPT.contains("innerHTML"), "data is set as text only");
    }
}
