//! The explorer's files over real HTTP: the page at `/`, its script and style, each with the
//! Content-Security-Policy; anything else under `/explorer/` is a 404 problem.

use mediachain::api::explorer::CONTENT_SECURITY_POLICY;

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_and_its_files_are_served_with_the_security_policy() {
    let dir = tempfile::tempdir().unwrap();
    let peer = peer(&dir).await;
    let http = reqwest::Client::new();
    for (path, kind, needle) in [
        ("/", "text/html", "Mediachain explorer"),
        ("/explorer/app.js", "text/javascript", "EventSource"),
        ("/explorer/app.css", "text/css", "@media"),
        ("/explorer/icon.svg", "image/svg+xml", "<svg"),
    ] {
        let response = http
            .get(format!("{}{path}", peer.url))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let headers = response.headers().clone();
        assert!(
            headers["content-type"].to_str().unwrap().starts_with(kind),
            "{path}: {:?}",
            headers["content-type"]
        );
        assert_eq!(headers["content-security-policy"], CONTENT_SECURITY_POLICY);
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert!(response.text().await.unwrap().contains(needle), "{path}");
    }
    let missing = http
        .get(format!("{}/explorer/other.js", peer.url))
        .send()
        .await
        .unwrap();
    let (status, problem) = problem_of(missing).await;
    assert_eq!(
        (status, problem.reason.as_deref()),
        (404, Some("not-found"))
    );
}
