//! [`Client`]: typed calls to one peer's `/v1` API.

use std::time::Duration;

use eventsource_stream::Eventsource;
use futures::{Stream, StreamExt};
use reqwest::header::CONTENT_TYPE;
use reqwest::{RequestBuilder, Response, StatusCode};
use serde::de::DeserializeOwned;

use super::wire::{
    BlockSummary, Blocks, Challenge, EvidenceSummary, FinalizedBlock, Head, History, IndexEntry,
    Info, Pow, Problem, Registration, RegistrationRequest, RevocationsQueued, SearchPage, Stored,
    StoredBatch, TxState, CBOR, OBJECTS_BATCH,
};
use crate::journal::{Transaction, TxId};
use crate::model::{Cid, Object};
use crate::trust::{pow, Chain, PowError, SecretKey};

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The peer could not be reached or the connection broke.
    #[error("cannot reach the peer at {url}: {source}")]
    Unreachable {
        /// The URL called.
        url: String,
        /// What failed.
        source: reqwest::Error,
    },
    /// The peer refused the request with a problem document.
    #[error("{} ({}): {}", .0.title, .0.status, .0.detail)]
    Problem(Problem),
    /// The peer answered something this client does not understand.
    #[error("unexpected answer from the peer: {0}")]
    Protocol(String),
    /// Solving a proof of work failed.
    #[error("proof of work: {0}")]
    Pow(#[from] PowError),
}

impl ClientError {
    /// The problem document, if the peer refused the request.
    pub fn problem(&self) -> Option<&Problem> {
        match self {
            ClientError::Problem(p) => Some(p),
            _ => None,
        }
    }
}

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

/// A client of one peer.
#[derive(Debug, Clone)]
pub struct Client {
    base: String,
    http: reqwest::Client,
}

type Result<T> = std::result::Result<T, ClientError>;

impl Client {
    /// A client of the peer at `base` (e.g. `http://127.0.0.1:8080`).
    pub fn new(base: &str) -> Result<Self> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|source| ClientError::Unreachable {
                url: base.to_string(),
                source,
            })?;
        Ok(Self {
            base: base.trim_end_matches('/').to_string(),
            http,
        })
    }

    /// The peer's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn send(&self, request: RequestBuilder, url: &str) -> Result<Response> {
        let response = request
            .send()
            .await
            .map_err(|source| ClientError::Unreachable {
                url: url.to_string(),
                source,
            })?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        Err(match serde_json::from_str::<Problem>(&text) {
            Ok(problem) => ClientError::Problem(problem),
            Err(_) => ClientError::Problem(Problem {
                kind: "about:blank".into(),
                title: status.canonical_reason().unwrap_or("Error").into(),
                status: status.as_u16(),
                detail: text.trim().to_string(),
                reason: None,
            }),
        })
    }

    async fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        let url = self.url(path);
        let response = self.send(self.http.get(&url), &url).await?;
        decode(response).await
    }

    /// `GET /v1/info`.
    pub async fn info(&self) -> Result<Info> {
        self.get_json("/v1/info").await
    }

    /// `GET /v1/registration/challenge`.
    pub async fn challenge(&self) -> Result<Challenge> {
        self.get_json("/v1/registration/challenge").await
    }

    /// Registers `key`: fetches a challenge, solves its proof of work and returns the Level-2
    /// chain the peer signed.
    pub async fn register(&self, key: &SecretKey) -> Result<(Chain, Registration)> {
        let challenge = self.challenge().await?;
        self.register_with(key, challenge).await
    }

    /// Registers `key` answering `challenge`, which any peer of the network may have issued.
    pub async fn register_with(
        &self,
        key: &SecretKey,
        challenge: Challenge,
    ) -> Result<(Chain, Registration)> {
        let bytes = hex::decode(&challenge.challenge)
            .map_err(|e| ClientError::Protocol(format!("challenge is not hex: {e}")))?;
        let resource = registration_resource(&key.public(), &bytes);
        let bits = challenge.bits;
        let stamp = tokio::task::spawn_blocking(move || {
            pow::solve(pow::Purpose::Registration, &resource, bits)
        })
        .await
        .map_err(|e| ClientError::Protocol(e.to_string()))??;
        let request = RegistrationRequest {
            client: key.public().to_string(),
            challenge: challenge.challenge,
            pow: Pow {
                bits: stamp.bits,
                nonce: stamp.nonce,
            },
        };
        let url = self.url("/v1/registration");
        let response = self.send(self.http.post(&url).json(&request), &url).await?;
        let registration: Registration = decode(response).await?;
        let chain = Chain::from_pem(&registration.certificate)
            .map_err(|e| ClientError::Protocol(format!("certificate: {e}")))?;
        Ok((chain, registration))
    }

    /// Stores a Mediachain object (as DAG-CBOR, with its CID for the peer to check).
    pub async fn put_object(&self, object: &Object) -> Result<Stored> {
        let encoded = object
            .encode()
            .map_err(|e| ClientError::Protocol(format!("object does not encode: {e}")))?;
        self.put_bytes(CBOR, encoded.bytes, Some(encoded.cid)).await
    }

    /// Stores bytes of `content_type` (`application/cbor`, `application/json` or
    /// `application/octet-stream`), optionally asking the peer to check `cid`.
    pub async fn put_bytes(
        &self,
        content_type: &str,
        bytes: Vec<u8>,
        cid: Option<Cid>,
    ) -> Result<Stored> {
        self.put_with_progress(content_type, bytes, cid, |_, _| {})
            .await
    }

    /// [`Client::put_bytes`], calling `progress(sent, total)` as the body goes out.
    pub async fn put_with_progress(
        &self,
        content_type: &str,
        bytes: Vec<u8>,
        cid: Option<Cid>,
        progress: impl Fn(u64, u64) + Send + Sync + 'static,
    ) -> Result<Stored> {
        let mut url = self.url("/v1/objects");
        if let Some(cid) = cid {
            url.push_str(&format!("?cid={cid}"));
        }
        let total = bytes.len() as u64;
        const CHUNK: usize = 64 * 1024;
        let chunks: Vec<Vec<u8>> = bytes.chunks(CHUNK).map(<[u8]>::to_vec).collect();
        let mut sent = 0u64;
        let body = futures::stream::iter(chunks).map(move |chunk| {
            sent += chunk.len() as u64;
            progress(sent, total);
            Ok::<_, std::io::Error>(chunk)
        });
        let request = self
            .http
            .post(&url)
            .header(CONTENT_TYPE, content_type)
            .header(reqwest::header::CONTENT_LENGTH, total)
            .body(reqwest::Body::wrap_stream(body));
        decode(self.send(request, &url).await?).await
    }

    /// Stores many objects (each in canonical DAG-CBOR) in one request, all or none (the peer's
    /// batch limits apply: docs/peer-contract.md); where each was stored, in order.
    pub async fn put_objects(&self, objects: &[&[u8]]) -> Result<Vec<Stored>> {
        let url = self.url("/v1/objects");
        let list: Vec<&serde_bytes::Bytes> =
            objects.iter().map(|b| serde_bytes::Bytes::new(b)).collect();
        let body = serde_ipld_dagcbor::to_vec(&list)
            .map_err(|e| ClientError::Protocol(format!("batch does not encode: {e}")))?;
        let request = self
            .http
            .post(&url)
            .header(CONTENT_TYPE, OBJECTS_BATCH)
            .body(body);
        let batch: StoredBatch = decode(self.send(request, &url).await?).await?;
        Ok(batch.stored)
    }

    /// The stored bytes of `cid`.
    pub async fn get_object(&self, cid: &Cid) -> Result<Vec<u8>> {
        let url = self.url(&format!("/v1/objects/{cid}"));
        let response = self.send(self.http.get(&url), &url).await?;
        let bytes = response
            .bytes()
            .await
            .map_err(|source| ClientError::Unreachable { url, source })?;
        Ok(bytes.to_vec())
    }

    /// The DAG-JSON of object `cid`.
    pub async fn get_object_json(&self, cid: &Cid) -> Result<serde_json::Value> {
        self.get_json(&format!("/v1/objects/{cid}?format=json"))
            .await
    }

    /// Submits a signed transaction; answers its pending state.
    pub async fn submit(&self, tx: &Transaction) -> Result<TxState> {
        let url = self.url("/v1/transactions");
        let request = self
            .http
            .post(&url)
            .header(CONTENT_TYPE, CBOR)
            .body(tx.to_bytes());
        decode(self.send(request, &url).await?).await
    }

    /// Sends signed revocation lists (PEM) for the chain (`POST /v1/revocations`).
    pub async fn publish_revocations(&self, pem: &str) -> Result<RevocationsQueued> {
        let url = self.url("/v1/revocations");
        let request = self
            .http
            .post(&url)
            .header(CONTENT_TYPE, "application/x-pem-file")
            .body(pem.to_string());
        decode(self.send(request, &url).await?).await
    }

    /// The evidence this peer keeps: counts and the newest item.
    pub async fn evidence_summary(&self) -> Result<EvidenceSummary> {
        self.get_json("/v1/evidence/summary").await
    }

    /// Where a transaction stands.
    pub async fn status(&self, id: &TxId) -> Result<TxState> {
        self.get_json(&format!("/v1/transactions/{id}")).await
    }

    /// The head of the journal.
    pub async fn head(&self) -> Result<Head> {
        self.get_json("/v1/journal/head").await
    }

    /// Canonical blocks from `from`, at most `limit`.
    pub async fn blocks(&self, from: u64, limit: u64) -> Result<Blocks> {
        self.get_json(&format!("/v1/journal/blocks?from={from}&limit={limit}"))
            .await
    }

    /// The index entry of a canonical.
    pub async fn index(&self, canonical: &Cid) -> Result<IndexEntry> {
        self.get_json(&format!("/v1/journal/index/{canonical}"))
            .await
    }

    /// The chain walk of a canonical.
    pub async fn history(&self, canonical: &Cid, limit: usize) -> Result<History> {
        self.get_json(&format!("/v1/journal/history/{canonical}?limit={limit}"))
            .await
    }

    /// `GET /v1/search` with the given query parameters (`q`, `creator`, `canonical`, `from`,
    /// `to`, `limit`, `cursor`).
    pub async fn search(&self, params: &[(&str, String)]) -> Result<SearchPage> {
        let url = self.url("/v1/search");
        let response = self.send(self.http.get(&url).query(params), &url).await?;
        decode(response).await
    }

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
        let response = self
            .send(
                self.http.get(&url).header("accept", "text/event-stream"),
                &url,
            )
            .await?;
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

    /// Whether `/readyz` answers 200.
    pub async fn ready(&self) -> bool {
        match self.http.get(self.url("/readyz")).send().await {
            Ok(response) => response.status() == StatusCode::OK,
            Err(_) => false,
        }
    }
}

/// What a registration proof of work covers: the client key's 32 bytes, then the challenge
/// (the peer's `Registrar::resource`).
pub fn registration_resource(client: &crate::trust::PublicKey, challenge: &[u8]) -> Vec<u8> {
    let mut resource = client.as_bytes().to_vec();
    resource.extend_from_slice(challenge);
    resource
}

async fn decode<T: DeserializeOwned>(response: Response) -> Result<T> {
    let url = response.url().to_string();
    let bytes = response
        .bytes()
        .await
        .map_err(|source| ClientError::Unreachable { url, source })?;
    serde_json::from_slice(&bytes).map_err(|e| ClientError::Protocol(e.to_string()))
}
