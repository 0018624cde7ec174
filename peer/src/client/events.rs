//! Following the journal: the view-update stream of a peer (`GET /v1/events`, server-sent
//! events) and waiting for a transaction's confirmation or finality on it.

use std::time::Duration;

use eventsource_stream::Eventsource;
use futures::{Stream, StreamExt};

use super::http::{Client, ClientError, Result};
use super::wire::{BlockSummary, FinalizedBlock, TxState};
use crate::journal::TxId;
use crate::model::Cid;

/// How a transaction ended up in the journal.
#[derive(Debug, Clone)]
pub struct Confirmation {
    /// Its final state (committed, merged or rejected).
    pub state: TxState,
    /// The block that committed it, as the view-update stream delivered it.
    pub block: Option<BlockSummary>,
}

/// One message of the view-update stream.
#[derive(Debug, Clone)]
pub enum ViewUpdate {
    /// `event: block`: a block joined the canonical chain.
    Block(BlockSummary),
    /// `event: final`: this block and every block below it never revert.
    Final(FinalizedBlock),
}

impl Client {
    /// The view-update stream: canonical blocks from height `from` (live only if `None`),
    /// filtered by canonicals and transaction ids (either matching; none: every block).
    pub async fn events(
        &self,
        from: Option<u64>,
        canonicals: &[Cid],
        txs: &[TxId],
    ) -> Result<impl Stream<Item = Result<BlockSummary>> + Unpin> {
        let updates = self.view_updates(from, canonicals, txs).await?;
        Ok(Box::pin(updates.filter_map(|update| async move {
            match update {
                Ok(ViewUpdate::Block(block)) => Some(Ok(block)),
                Ok(ViewUpdate::Final(_)) => None,
                Err(e) => Some(Err(e)),
            }
        })))
    }

    /// The view-update stream as [`Client::events`], with its `event: final` messages too.
    pub async fn view_updates(
        &self,
        from: Option<u64>,
        canonicals: &[Cid],
        txs: &[TxId],
    ) -> Result<impl Stream<Item = Result<ViewUpdate>> + Unpin> {
        let mut query = vec![];
        if let Some(from) = from {
            query.push(format!("from={from}"));
        }
        if !canonicals.is_empty() {
            let list: Vec<String> = canonicals.iter().map(ToString::to_string).collect();
            query.push(format!("canonical={}", list.join(",")));
        }
        if !txs.is_empty() {
            let list: Vec<String> = txs.iter().map(ToString::to_string).collect();
            query.push(format!("tx={}", list.join(",")));
        }
        let url = self.url(&format!("/v1/events?{}", query.join("&")));
        let open = || self.http.get(&url).header("accept", "text/event-stream");
        let response = self.send(open, &url).await?;
        let stream = response
            .bytes_stream()
            .eventsource()
            .filter_map(|event| async move {
                match event {
                    Ok(event) if event.event == "block" => Some(
                        serde_json::from_str::<BlockSummary>(&event.data)
                            .map(ViewUpdate::Block)
                            .map_err(|e| ClientError::Protocol(format!("block event: {e}"))),
                    ),
                    Ok(event) if event.event == "final" => Some(
                        serde_json::from_str::<FinalizedBlock>(&event.data)
                            .map(ViewUpdate::Final)
                            .map_err(|e| ClientError::Protocol(format!("final event: {e}"))),
                    ),
                    Ok(_) => None,
                    Err(e) => Some(Err(ClientError::Protocol(format!("event stream: {e}")))),
                }
            });
        Ok(Box::pin(stream))
    }

    /// Waits until transaction `id` is committed (or rejected), following the view-update
    /// stream from height `from` (the head height seen before submitting).
    pub async fn await_confirmation(&self, id: &TxId, from: u64) -> Result<Confirmation> {
        let mut stream = self.events(Some(from), &[], &[*id]).await?;
        // It may have been decided before the stream opened.
        let state = self.status(id).await?;
        if state.state == "rejected" {
            return Ok(Confirmation { state, block: None });
        }
        let id_text = id.to_string();
        let mut poll = tokio::time::interval(Duration::from_secs(2));
        loop {
            tokio::select! {
                next = stream.next() => match next {
                    Some(Ok(block)) if block.transactions.contains(&id_text) => {
                        let state = self.status_in(id, &block).await?;
                        return Ok(Confirmation { state, block: Some(block) });
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return Err(e),
                    None => return Err(ClientError::Protocol("the event stream ended".into())),
                },
                _ = poll.tick() => {
                    // A transaction refused at commit time never appears in a block.
                    let state = self.status(id).await?;
                    if state.state == "rejected" || state.state == "unknown" && state.reason.is_some() {
                        return Ok(Confirmation { state, block: None });
                    }
                }
            }
        }
    }

    /// Waits until committed transaction `id` is final (polling its status), at most `limit`;
    /// its state then. A rejected or unknown state ends the wait (with that state).
    pub async fn await_final(&self, id: &TxId, limit: Duration) -> Result<TxState> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let state = self.status(id).await?;
            if state.is_final() || !state.is_committed() && state.state != "pending" {
                return Ok(state);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(ClientError::Protocol(format!(
                    "transaction {id} was not final within {} s (state {})",
                    limit.as_secs(),
                    state.state
                )));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// The status of `id`, which `block` committed. Behind a load balancer the status request
    /// may reach a peer that has not applied the block yet: asked again for a few seconds, then
    /// the block itself is the answer (committed; whether it was `merged` is then unknown).
    async fn status_in(&self, id: &TxId, block: &BlockSummary) -> Result<TxState> {
        for _ in 0..10 {
            let state = self.status(id).await?;
            if state.is_committed() {
                return Ok(state);
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        Ok(TxState {
            id: id.to_string(),
            state: "committed".into(),
            height: Some(block.height),
            block: Some(block.cid.clone()),
            reason: None,
            merged: false,
        })
    }
}
