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
/// Name of the peer's finalised height gauge. MARKED PLACE (issue 17 item 5): the peer does not
/// export it yet (finality, issue 14, is being built); `status.finalizedHeight` stays unset
/// until a peer reports it, and fills in with no operator change once it does.
pub const FINALIZED_HEIGHT: &str = "mediachain_finalized_height";

/// What the peers' `/metrics` say, the highest value of each gauge over the peers that answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Observation {
    /// Highest `mediachain_journal_height`.
    pub journal_height: Option<u64>,
    /// Highest `mediachain_finalized_height`.
    pub finalized_height: Option<u64>,
}

/// The value of gauge `name` in Prometheus/OpenMetrics text, if present.
pub fn parse_gauge(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let rest = line.strip_prefix(name)?;
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

/// The value of `mediachain_journal_height` in Prometheus/OpenMetrics text, if present.
pub fn parse_journal_height(text: &str) -> Option<u64> {
    parse_gauge(text, JOURNAL_HEIGHT)
}

/// One peer's gauges, if it answers in time.
async fn scrape(
    client: &Client<hyper_util::client::legacy::connect::HttpConnector, Empty<Bytes>>,
    url: &str,
) -> Option<Observation> {
    let uri: hyper::Uri = url.parse().ok()?;
    let fetch = async {
        let response = client.get(uri).await.ok()?;
        if !response.status().is_success() {
            return None;
        }
        let body = response.into_body().collect().await.ok()?.to_bytes();
        let text = String::from_utf8_lossy(&body);
        Some(Observation {
            journal_height: parse_gauge(&text, JOURNAL_HEIGHT),
            finalized_height: parse_gauge(&text, FINALIZED_HEIGHT),
        })
    };
    tokio::time::timeout(SCRAPE_TIMEOUT, fetch)
        .await
        .ok()
        .flatten()
}

/// The highest gauges reported by the peers at `urls` (their `/metrics`).
pub async fn observe(urls: &[String]) -> Observation {
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let answers = futures::future::join_all(urls.iter().map(|url| scrape(&client, url))).await;
    answers
        .into_iter()
        .flatten()
        .fold(Observation::default(), |seen, one| Observation {
            journal_height: seen.journal_height.max(one.journal_height),
            finalized_height: seen.finalized_height.max(one.finalized_height),
        })
}

/// The highest journal height reported by the peers at `urls` (their `/metrics`), if any answers.
pub async fn journal_height(urls: &[String]) -> Option<u64> {
    observe(urls).await.journal_height
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
            parse_gauge("mediachain_finalized_height 40\n", FINALIZED_HEIGHT),
            Some(40)
        );
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
        assert_eq!(
            observe(&urls).await.finalized_height,
            None,
            "no peer exports it yet"
        );
        assert_eq!(journal_height(&urls[2..]).await, None);
    }
}
