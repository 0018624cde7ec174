//! Reads what the peers themselves report: the journal and finalised heights from their
//! `/metrics` (`mediachain_journal_height`, `mediachain_finalized_height`, per the peer
//! contract) and, from a peer whose `mediachain_evidence_culprits` is above zero, its
//! `GET /v1/evidence` ([`super::evidence`]). Reads only, bounded in time and size; a peer that
//! does not answer in time is skipped, never an error.

use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use super::evidence::{self, Culprits};

/// Time allowed for one peer's answer.
pub const SCRAPE_TIMEOUT: Duration = Duration::from_secs(2);
/// Name of the peer's journal height gauge.
pub const JOURNAL_HEIGHT: &str = "mediachain_journal_height";
/// Name of the peer's finalised height gauge (0 on a network without finality).
pub const FINALIZED_HEIGHT: &str = "mediachain_finalized_height";
/// Largest `/metrics` answer read from one peer.
const MAX_METRICS_BODY: usize = 1 << 20;

/// What the peers say: the highest value of each gauge over the peers that answer, and the
/// evidence they hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observation {
    /// Highest `mediachain_journal_height`.
    pub journal_height: Option<u64>,
    /// Highest `mediachain_finalized_height`.
    pub finalized_height: Option<u64>,
    /// The evidence of every peer (`None` unless every peer asked answered in full).
    pub evidence: Option<Culprits>,
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

/// The body of `GET url` if it answers 2xx within [`SCRAPE_TIMEOUT`] and `limit` bytes.
async fn get(
    client: &Client<hyper_util::client::legacy::connect::HttpConnector, Empty<Bytes>>,
    url: &str,
    limit: usize,
) -> Option<Bytes> {
    let uri: hyper::Uri = url.parse().ok()?;
    let fetch = async {
        let response = client.get(uri).await.ok()?;
        if !response.status().is_success() {
            return None;
        }
        let body = http_body_util::Limited::new(response.into_body(), limit);
        Some(body.collect().await.ok()?.to_bytes())
    };
    tokio::time::timeout(SCRAPE_TIMEOUT, fetch)
        .await
        .ok()
        .flatten()
}

/// One peer's gauges and evidence (`None` if its `/metrics` does not answer; evidence `None`
/// if its `/v1/evidence` does not).
async fn scrape(
    client: &Client<hyper_util::client::legacy::connect::HttpConnector, Empty<Bytes>>,
    url: &str,
) -> Option<Observation> {
    let body = get(client, url, MAX_METRICS_BODY).await?;
    let text = String::from_utf8_lossy(&body);
    let mut held = Some(Culprits::new());
    if parse_gauge(&text, evidence::EVIDENCE_CULPRITS).is_some_and(|n| n > 0) {
        let base = url.strip_suffix("/metrics").unwrap_or(url);
        let answer = get(client, &format!("{base}/v1/evidence"), evidence::MAX_BODY).await;
        held = answer.and_then(|body| {
            let mut culprits = Culprits::new();
            evidence::add_answer(&mut culprits, &body).then_some(culprits)
        });
    }
    Some(Observation {
        journal_height: parse_gauge(&text, JOURNAL_HEIGHT),
        finalized_height: parse_gauge(&text, FINALIZED_HEIGHT),
        evidence: held,
    })
}

/// What the peers at `urls` (their `/metrics`) report: the highest gauges, and the evidence
/// of all of them if every one answered.
pub async fn observe(urls: &[String]) -> Observation {
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let answers = futures::future::join_all(urls.iter().map(|url| scrape(&client, url))).await;
    let mut seen = Observation {
        evidence: (!urls.is_empty()).then(Culprits::new),
        ..Observation::default()
    };
    for answer in answers {
        let Some(one) = answer else {
            seen.evidence = None;
            continue;
        };
        seen.journal_height = seen.journal_height.max(one.journal_height);
        seen.finalized_height = seen.finalized_height.max(one.finalized_height);
        seen.evidence = seen.evidence.zip(one.evidence).map(|(mut all, one)| {
            for (key, height) in one {
                evidence::note(&mut all, key, height);
            }
            all
        });
    }
    seen
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
    async fn the_highest_answering_peer_wins_and_evidence_needs_every_peer() {
        use warp::Filter;
        /// A peer's `/metrics` at `height` (finalised 2 below), holding `evidence` (JSON items).
        async fn serve(height: u64, evidence: &'static str) -> String {
            let culprits = usize::from(!evidence.is_empty());
            let metrics = warp::path("metrics").map(move || {
                format!(
                    "mediachain_journal_height {height}\nmediachain_finalized_height {}\nmediachain_evidence_culprits {culprits}\n",
                    height - 2
                )
            });
            let list = warp::path!("v1" / "evidence")
                .map(move || format!("{{\"evidence\": [{evidence}]}}"));
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            tokio::spawn(warp::serve(metrics.or(list)).incoming(listener).run());
            format!("http://{addr}/metrics")
        }
        let urls = vec![
            serve(5, "").await,
            serve(
                12,
                r#"{"culprit": "12D3KooWX", "kind": "doubleBlock", "height": 4}"#,
            )
            .await,
            // Nothing listens here.
            "http://127.0.0.1:9/metrics".to_string(),
        ];
        let all = observe(&urls).await;
        assert_eq!(
            (all.journal_height, all.finalized_height),
            (Some(12), Some(10))
        );
        assert_eq!(all.evidence, None, "a silent peer may hold evidence too");
        let answering = observe(&urls[..2]).await;
        let held: Vec<_> = answering.evidence.unwrap().into_iter().collect();
        assert_eq!(
            held,
            vec![(
                ("12D3KooWX".to_string(), "doubleBlock".to_string()),
                Some(4)
            )]
        );
        assert_eq!(journal_height(&urls[2..]).await, None);
    }
}
