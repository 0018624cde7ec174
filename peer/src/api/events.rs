//! View updates: `GET /v1/events`, a server-sent-events stream of the blocks that join the
//! canonical chain, each an event `block` whose id is its height and whose data is a
//! `BlockSummary`. Filters: `canonical=` (blocks with entries about these canonicals) and
//! `tx=` (blocks committing these transactions), comma-separated, either matching. Resumable:
//! `from=HEIGHT` (or the `Last-Event-ID` header, resuming after it) first replays the canonical
//! chain from the index, then follows live; a reorganisation re-sends the heights it replaced.
//!
//! A client awaits confirmation by opening the stream filtered by its transaction id from the
//! height it saw before submitting. The stream never changes anything.

use std::collections::{BTreeMap, HashSet};
use std::convert::Infallible;
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::{broadcast, mpsc};
use warp::filters::BoxedFilter;
use warp::reply::Response;
use warp::sse::Event;
use warp::{Filter, Reply};

use super::journal::summaries;
use super::objects::parse_cid;
use super::problem::{answer, ApiError};
use super::{with, Api};
use crate::client::wire::BlockSummary;
use crate::journal::{Block, TxId};
use crate::model::Cid;
use crate::node::NodeEvent;

#[derive(Debug, Deserialize)]
struct EventsQuery {
    from: Option<u64>,
    canonical: Option<String>,
    tx: Option<String>,
}

/// Which blocks a subscriber wants.
#[derive(Debug, Clone, Default)]
pub struct Interest {
    canonicals: HashSet<Cid>,
    txs: HashSet<TxId>,
}

impl Interest {
    /// Whether `block` is of interest (everything, when no filter is set).
    pub fn matches(&self, block: &Block) -> bool {
        if self.canonicals.is_empty() && self.txs.is_empty() {
            return true;
        }
        block
            .entries
            .iter()
            .any(|e| self.canonicals.contains(&e.reference()))
            || (!self.txs.is_empty()
                && block
                    .transactions
                    .iter()
                    .any(|t| self.txs.contains(&t.id())))
    }

    fn matches_summary(&self, summary: &BlockSummary) -> bool {
        if self.canonicals.is_empty() && self.txs.is_empty() {
            return true;
        }
        summary
            .entries
            .iter()
            .any(|e| self.canonicals.iter().any(|c| c.to_string() == e.reference))
            || summary
                .transactions
                .iter()
                .any(|t| self.txs.iter().any(|id| id.to_string() == *t))
    }
}

fn parse_interest(q: &EventsQuery) -> Result<Interest, ApiError> {
    let mut interest = Interest::default();
    for text in q.canonical.iter().flat_map(|s| s.split(',')) {
        if !text.trim().is_empty() {
            interest.canonicals.insert(parse_cid(text.trim())?);
        }
    }
    for text in q.tx.iter().flat_map(|s| s.split(',')) {
        if !text.trim().is_empty() {
            interest.txs.insert(
                text.trim()
                    .parse()
                    .map_err(|e: String| ApiError::bad_request("invalid-transaction-id", e))?,
            );
        }
    }
    Ok(interest)
}

/// The event stream route.
pub fn routes(api: Api) -> BoxedFilter<(Response,)> {
    warp::path!("v1" / "events")
        .and(warp::get())
        .and(with(api))
        .and(warp::query::<EventsQuery>())
        .and(warp::sse::last_event_id::<u64>())
        .and_then(|api: Api, q: EventsQuery, last: Option<u64>| async move {
            answer(open(api, q, last))
        })
        .boxed()
}

fn open(api: Api, q: EventsQuery, last: Option<u64>) -> Result<Response, ApiError> {
    let interest = parse_interest(&q)?;
    // Subscribe before reading the tip, so nothing committed in between is missed.
    let events = api.node.subscribe();
    let from = match (q.from, last) {
        (_, Some(last)) => last.saturating_add(1),
        (Some(from), None) => from,
        (None, None) => api.node.tip().map_err(ApiError::internal)?.1 + 1,
    };
    let (sender, receiver) = mpsc::channel::<Event>(256);
    tokio::spawn(pump(api, interest, from, events, sender));
    let stream = futures::stream::unfold(receiver, |mut receiver| async move {
        receiver
            .recv()
            .await
            .map(|event| (Ok::<_, Infallible>(event), receiver))
    });
    Ok(warp::sse::reply(
        warp::sse::keep_alive()
            .interval(Duration::from_secs(15))
            .stream(stream),
    )
    .into_response())
}

/// What one subscriber has been sent.
struct Cursor {
    next: u64,
    sent: BTreeMap<u64, Cid>,
}

impl Cursor {
    fn record(&mut self, height: u64, cid: Cid) {
        self.sent.split_off(&height);
        self.sent.insert(height, cid);
        self.next = height + 1;
        while self.sent.len() > 1024 {
            self.sent.pop_first();
        }
    }
}

fn event_of(summary: &BlockSummary) -> Event {
    Event::default()
        .event("block")
        .id(summary.height.to_string())
        .json_data(summary)
        .unwrap_or_else(|_| Event::default().comment("unencodable block"))
}

/// Sends the canonical blocks from the cursor up to the tip. Returns false when the subscriber
/// went away.
async fn catch_up(
    api: &Api,
    interest: &Interest,
    cursor: &mut Cursor,
    sender: &mpsc::Sender<Event>,
) -> bool {
    loop {
        let batch = match summaries(api, cursor.next, 100) {
            Ok(batch) => batch,
            Err(_) => return true,
        };
        if batch.is_empty() {
            return true;
        }
        for summary in batch {
            let Ok(cid) = summary.cid.parse::<Cid>() else {
                continue;
            };
            cursor.record(summary.height, cid);
            if interest.matches_summary(&summary) && sender.send(event_of(&summary)).await.is_err()
            {
                return false;
            }
        }
    }
}

async fn pump(
    api: Api,
    interest: Interest,
    from: u64,
    mut events: broadcast::Receiver<NodeEvent>,
    sender: mpsc::Sender<Event>,
) {
    let mut cursor = Cursor {
        next: from,
        sent: BTreeMap::new(),
    };
    if !catch_up(&api, &interest, &mut cursor, &sender).await {
        return;
    }
    loop {
        let event = tokio::select! {
            event = events.recv() => event,
            () = sender.closed() => return,
        };
        match event {
            Ok(NodeEvent::ChainExtended { cid, block }) => {
                let height = block.height;
                if cursor.sent.get(&height) == Some(&cid) || height < from {
                    continue;
                }
                if height <= cursor.next {
                    // The next block, or a reorganisation replacing a height already sent.
                    cursor.record(height, cid);
                    if interest.matches(&block)
                        && sender
                            .send(event_of(&BlockSummary::of(&cid, &block)))
                            .await
                            .is_err()
                    {
                        return;
                    }
                } else if !catch_up(&api, &interest, &mut cursor, &sender).await {
                    // A gap: the index has everything up to the tip.
                    return;
                }
            }
            Err(broadcast::error::RecvError::Lagged(_)) => {
                if !catch_up(&api, &interest, &mut cursor, &sender).await {
                    return;
                }
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}
