//! Reads what the peers themselves report: the journal height, from ready peers' `/metrics`
//! (`mediachain_journal_height`, per the peer contract). Reads only; a peer that does not answer
//! in time is skipped, never an error.

use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// Time allowed for one peer's answer.
pub const SCRAPE_TIMEOUT: Duration = Duration::from_secs(2);
/// Name of the peer's journal height gauge.
pub const JOURNAL_HEIGHT: &str = "mediachain_journal_height";

/// The value of `mediachain_journal_height` in Prometheus/OpenMetrics text, if present.
pub fn parse_journal_height(text: &str) -> Option<u64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let rest = line.strip_prefix(JOURNAL_HEIGHT)?;
            // Either no labels or a label set, then the value.
            let rest = match rest.strip_prefix('{') {
                Some(labelled) => labelled.split_once('}')?.1,
                None if rest.starts_with(' ') => rest,
                None => return None,
            };
            let value: f64 = rest.split_whitespace().next()?.parse().ok()?;
            (value.is_finite() && value >= 0.0).then_some(value as u64)
        })
}

/// The highest journal height reported by the peers at `urls` (their `/metrics`), if any answers.
pub async fn journal_height(urls: &[String]) -> Option<u64> {
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let scrapes = urls.iter().map(|url| {
        let client = client.clone();
        async move {
            let uri: hyper::Uri = url.parse().ok()?;
            let fetch = async {
                let response = client.get(uri).await.ok()?;
                if !response.status().is_success() {
                    return None;
                }
                let body = response.into_body().collect().await.ok()?.to_bytes();
                parse_journal_height(&String::from_utf8_lossy(&body))
            };
            tokio::time::timeout(SCRAPE_TIMEOUT, fetch)
                .await
                .ok()
                .flatten()
        }
    });
    futures::future::join_all(scrapes)
        .await
        .into_iter()
        .flatten()
        .max()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_height_is_read_with_or_without_labels_and_comments() {
        let text = "# HELP mediachain_journal_height Height\n# TYPE mediachain_journal_height gauge\nmediachain_journal_height_other 9\nmediachain_journal_height 42\n";
        assert_eq!(parse_journal_height(text), Some(42));
        assert_eq!(
            parse_journal_height("mediachain_journal_height{network=\"t\"} 7.0\n"),
            Some(7)
        );
        assert_eq!(parse_journal_height("mediachain_peers_connected 3\n"), None);
        assert_eq!(
            parse_journal_height("mediachain_journal_height NaN\n"),
            None
        );
    }

    #[tokio::test]
    async fn the_highest_answering_peer_wins_and_silent_peers_are_skipped() {
        use warp::Filter;
        async fn serve(height: u64) -> String {
            let route =
                warp::path("metrics").map(move || format!("mediachain_journal_height {height}\n"));
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            tokio::spawn(warp::serve(route).incoming(listener).run());
            format!("http://{addr}/metrics")
        }
        let urls = vec![
            serve(5).await,
            serve(12).await,
            // Nothing listens here.
            "http://127.0.0.1:9/metrics".to_string(),
        ];
        assert_eq!(journal_height(&urls).await, Some(12));
        assert_eq!(journal_height(&urls[2..]).await, None);
    }
}
