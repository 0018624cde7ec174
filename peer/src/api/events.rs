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
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::{broadcast, mpsc};
use warp::filters::BoxedFilter;
use warp::reply::Response;
use warp::sse::Event;
use warp::{Filter, Reply};

use super::objects::parse_cid;
use super::offload::Lane;
use super::problem::{answer, ApiError};
use super::slots::{Slot, Slots};
use super::{origin, with, Api};
use crate::client::wire::{BlockSummary, FinalizedBlock};
use crate::journal::{Block, TxId};
use crate::model::Cid;
use crate::node::NodeEvent;
use warp::http::StatusCode;

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
    let slots = Slots::new(api.config.max_streams, api.config.max_streams_per_client);
    let trusted = Arc::new(api.config.trusted_proxies.clone());
    warp::path!("v1" / "events")
        .and(warp::get())
        .and(with(api))
        .and(origin::client(trusted))
        .and(warp::query::<EventsQuery>())
        .and(warp::sse::last_event_id::<u64>())
        .and_then(
            move |api: Api, client: Option<IpAddr>, q: EventsQuery, last: Option<u64>| {
                let slot = slots.enter(client);
                async move { answer(open(api, slot, q, last)) }
            },
        )
        .boxed()
}

/// Seconds a client refused a stream should wait.
const STREAM_RETRY_AFTER: u64 = 5;

fn open(
    api: Api,
    slot: Result<Slot, &'static str>,
    q: EventsQuery,
    last: Option<u64>,
) -> Result<Response, ApiError> {
    let interest = parse_interest(&q)?;
    let slot = slot.map_err(|reason| {
        api.metrics.edge.drop_stream(reason);
        ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            reason,
            "too many open event streams; retry later",
        )
        .retry_after(STREAM_RETRY_AFTER)
    })?;
    // Subscribe before reading the tip, so nothing committed in between is missed.
    let events = api.node.subscribe();
    let from = match (q.from, last) {
        (_, Some(last)) => last.saturating_add(1),
        (Some(from), None) => from,
        (None, None) => api.node.tip().map_err(ApiError::internal)?.1 + 1,
    };
    let (sender, receiver) = mpsc::channel::<Event>(256);
    let dropped = Arc::new(AtomicBool::new(false));
    let subscriber = Subscriber {
        sender,
        timeout: api.config.stream_send_timeout,
        dropped: dropped.clone(),
    };
    api.metrics.edge.streams_open.inc();
    tokio::spawn(async move {
        pump(&api, interest, from, events, &subscriber).await;
        api.metrics.edge.streams_open.dec();
        drop(slot);
    });
    let stream = futures::stream::unfold(Some(receiver), move |receiver| {
        let dropped = dropped.clone();
        async move {
            let mut receiver = receiver?;
            match receiver.recv().await {
                Some(event) => Some((Ok::<_, Infallible>(event), Some(receiver))),
                // The pump ended: say so if it gave up on this subscriber.
                None if dropped.load(Ordering::Relaxed) => Some((
                    Ok(Event::default()
                        .event("dropped")
                        .data("slow-subscriber: reconnect with Last-Event-ID to resume")),
                    None,
                )),
                None => None,
            }
        }
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

/// `event: final`: this block and every block below it never revert (no id: a resume point
/// stays a block height).
fn final_event(final_block: &FinalizedBlock) -> Event {
    Event::default()
        .event("final")
        .json_data(final_block)
        .unwrap_or_else(|_| Event::default().comment("unencodable final block"))
}

/// Where a stream's events go.
struct Subscriber {
    sender: mpsc::Sender<Event>,
    timeout: Duration,
    dropped: Arc<AtomicBool>,
}

impl Subscriber {
    /// Sends `event`; false when the subscriber went away or accepted nothing for the timeout
    /// (then it is dropped: it resumes from its last event id).
    async fn send(&self, api: &Api, event: Event) -> bool {
        let event = match self.sender.try_send(event) {
            Ok(()) => return true,
            Err(mpsc::error::TrySendError::Closed(_)) => return false,
            Err(mpsc::error::TrySendError::Full(event)) => event,
        };
        api.metrics.edge.streams_behind.inc();
        let sent = self.sender.send_timeout(event, self.timeout).await;
        api.metrics.edge.streams_behind.dec();
        match sent {
            Ok(()) => true,
            Err(mpsc::error::SendTimeoutError::Timeout(_)) => {
                api.metrics.edge.drop_stream("slow-subscriber");
                self.dropped.store(true, Ordering::Relaxed);
                false
            }
            Err(mpsc::error::SendTimeoutError::Closed(_)) => false,
        }
    }
}

/// Replay pages, read from storage off the runtime threads.
const PAGE: u64 = 100;

/// How long a replay refused by a full replay lane waits before asking again.
const REPLAY_RETRY: Duration = Duration::from_millis(200);

/// Summaries of the canonical blocks from `from` (at most [`PAGE`]): the node's lock is taken
/// only to read their CIDs; the blocks come from the store.
async fn page(api: &Api, from: u64) -> Result<Vec<BlockSummary>, ApiError> {
    let node = api.node.clone();
    api.offload
        .run(Lane::Replay, move || {
            let cids = node
                .canonical_range(from, PAGE)
                .map_err(ApiError::internal)?;
            let mut out = Vec::with_capacity(cids.len());
            for cid in cids {
                let bytes = node
                    .store()
                    .get(&cid)
                    .map_err(ApiError::internal)?
                    .ok_or_else(|| {
                        ApiError::internal(format!("canonical block {cid} not stored"))
                    })?;
                let block = Block::from_stored(&bytes).map_err(ApiError::internal)?;
                out.push(BlockSummary::of(&cid, &block));
            }
            Ok(out)
        })
        .await
}

/// Sends the canonical blocks from the cursor up to the tip. Returns false when the subscriber
/// went away or was dropped.
async fn catch_up(
    api: &Api,
    interest: &Interest,
    cursor: &mut Cursor,
    subscriber: &Subscriber,
) -> bool {
    loop {
        let batch = match page(api, cursor.next).await {
            Ok(batch) => batch,
            // The replay lane is full: ask again shortly (the stream keeps its slot).
            Err(error) if error.status == StatusCode::SERVICE_UNAVAILABLE => {
                tokio::select! {
                    () = tokio::time::sleep(REPLAY_RETRY) => continue,
                    () = subscriber.sender.closed() => return false,
                }
            }
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
            if interest.matches_summary(&summary) && !subscriber.send(api, event_of(&summary)).await
            {
                return false;
            }
        }
    }
}

async fn pump(
    api: &Api,
    interest: Interest,
    from: u64,
    mut events: broadcast::Receiver<NodeEvent>,
    subscriber: &Subscriber,
) {
    let mut cursor = Cursor {
        next: from,
        sent: BTreeMap::new(),
    };
    if !catch_up(api, &interest, &mut cursor, subscriber).await {
        return;
    }
    loop {
        let event = tokio::select! {
            event = events.recv() => event,
            () = subscriber.sender.closed() => return,
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
                        && !subscriber
                            .send(api, event_of(&BlockSummary::of(&cid, &block)))
                            .await
                    {
                        return;
                    }
                } else if !catch_up(api, &interest, &mut cursor, subscriber).await {
                    // A gap: the index has everything up to the tip.
                    return;
                }
            }
            Ok(NodeEvent::Finalized { checkpoint }) => {
                let final_block = FinalizedBlock {
                    cid: checkpoint.cid.to_string(),
                    height: checkpoint.height,
                };
                if !subscriber.send(api, final_event(&final_block)).await {
                    return;
                }
            }
            Err(broadcast::error::RecvError::Lagged(_)) => {
                if !catch_up(api, &interest, &mut cursor, subscriber).await {
                    return;
                }
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}
