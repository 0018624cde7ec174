//! [`Client`]: typed calls to one peer's `/v1` API, retrying what the peer refused for now
//! ([`RetryPolicy`]).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use rand_core::RngCore;
use reqwest::header::{CONTENT_TYPE, RETRY_AFTER};
use reqwest::{RequestBuilder, Response, StatusCode};
use serde::de::DeserializeOwned;
use tracing::{debug, debug_span, Instrument};

use super::retry::RetryPolicy;
use super::wire::{
    Blocks, EvidenceSummary, Head, History, IndexEntry, Info, Problem, RevocationsQueued,
    SearchPage, Stored, StoredBatch, TxState, CBOR, OBJECTS_BATCH,
};
use crate::journal::{Transaction, TxId};
use crate::model::{Cid, Object};
use crate::trust::PowError;

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

/// A client of one peer.
///
/// Requests the peer refuses for now are retried as its [`RetryPolicy`] says (by default
/// [`RetryPolicy::default`]): `429 Too Many Requests`, and `503 Service Unavailable` with
/// `Retry-After`. Only requests that may be repeated are: every `GET` (reads and the
/// view-update stream), object uploads ([`Client::put_object`], [`Client::put_bytes`],
/// [`Client::put_with_progress`], [`Client::put_objects`]: content-addressed, a second copy is
/// the same object), transaction submissions ([`Client::submit`]: a transaction is named by
/// its hash and a peer never admits one twice) and revocation lists
/// ([`Client::publish_revocations`]: signed lists, one already queued is counted as known).
/// A registration ([`Client::register_with`]) is never retried: it spends its challenge.
#[derive(Debug, Clone)]
pub struct Client {
    pub(super) base: String,
    pub(super) http: reqwest::Client,
    retry: RetryPolicy,
}

pub(super) type Result<T> = std::result::Result<T, ClientError>;

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
            retry: RetryPolicy::default(),
        })
    }

    /// This client retrying as `retry` says ([`RetryPolicy::NEVER`]: every refusal is
    /// returned at once).
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// The peer's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    pub(super) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends the request `build` makes, again (built anew) while the peer refuses it for now
    /// and the retry policy allows: for requests that may be repeated only (see [`Client`]).
    pub(super) async fn send(
        &self,
        build: impl Fn() -> RequestBuilder,
        url: &str,
    ) -> Result<Response> {
        let span = debug_span!("peer_request", url);
        async {
            let mut attempt = 1;
            loop {
                let response = self.send_once(build(), url).await?;
                if response.status().is_success() {
                    return Ok(response);
                }
                let status = response.status().as_u16();
                let after = response.headers().get(RETRY_AFTER);
                let after = after.and_then(|v| v.to_str().ok()).map(str::to_string);
                let Some(wait) = self.retry.wait(attempt, status, after.as_deref(), jitter())
                else {
                    return Err(refusal(response).await);
                };
                debug!(status, attempt, ?wait, "the peer refused for now; retrying");
                // Read the refusal so the connection can carry the next attempt.
                let _ = response.bytes().await;
                tokio::time::sleep(wait).await;
                attempt += 1;
            }
        }
        .instrument(span)
        .await
    }

    /// Sends `request` once: its response, whatever its status (a connection that fails is
    /// [`ClientError::Unreachable`]).
    pub(super) async fn send_once(&self, request: RequestBuilder, url: &str) -> Result<Response> {
        request
            .send()
            .await
            .map_err(|source| ClientError::Unreachable {
                url: url.to_string(),
                source,
            })
    }

    pub(super) async fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        let url = self.url(path);
        let response = self.send(|| self.http.get(&url), &url).await?;
        decode(response).await
    }

    /// `GET /v1/info`.
    pub async fn info(&self) -> Result<Info> {
        self.get_json("/v1/info").await
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

    /// [`Client::put_bytes`], calling `progress(sent, total)` as the body goes out (from 0
    /// again when the upload is retried).
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
        const CHUNK: usize = 64 * 1024;
        let bytes = Bytes::from(bytes);
        let total = bytes.len() as u64;
        let progress = Arc::new(progress);
        // Each attempt streams the same bytes anew (slices share them).
        let upload = || {
            let chunks: Vec<Bytes> = (0..bytes.len())
                .step_by(CHUNK)
                .map(|at| bytes.slice(at..bytes.len().min(at + CHUNK)))
                .collect();
            let (progress, mut sent) = (progress.clone(), 0u64);
            let body = futures::stream::iter(chunks).map(move |chunk| {
                sent += chunk.len() as u64;
                progress(sent, total);
                Ok::<_, std::io::Error>(chunk)
            });
            self.http
                .post(&url)
                .header(CONTENT_TYPE, content_type)
                .header(reqwest::header::CONTENT_LENGTH, total)
                .body(reqwest::Body::wrap_stream(body))
        };
        decode(self.send(upload, &url).await?).await
    }

    /// Stores many objects (each in canonical DAG-CBOR) in one request, all or none (the peer's
    /// batch limits apply: docs/peer-contract.md); where each was stored, in order.
    pub async fn put_objects(&self, objects: &[&[u8]]) -> Result<Vec<Stored>> {
        let url = self.url("/v1/objects");
        let list: Vec<&serde_bytes::Bytes> =
            objects.iter().map(|b| serde_bytes::Bytes::new(b)).collect();
        let body = serde_ipld_dagcbor::to_vec(&list)
            .map_err(|e| ClientError::Protocol(format!("batch does not encode: {e}")))?;
        let body = Bytes::from(body);
        let request = || {
            let request = self.http.post(&url).header(CONTENT_TYPE, OBJECTS_BATCH);
            request.body(body.clone())
        };
        let batch: StoredBatch = decode(self.send(request, &url).await?).await?;
        Ok(batch.stored)
    }

    /// The stored bytes of `cid`.
    pub async fn get_object(&self, cid: &Cid) -> Result<Vec<u8>> {
        let url = self.url(&format!("/v1/objects/{cid}"));
        let response = self.send(|| self.http.get(&url), &url).await?;
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
        let body = Bytes::from(tx.to_bytes());
        let request = || {
            let request = self.http.post(&url).header(CONTENT_TYPE, CBOR);
            request.body(body.clone())
        };
        decode(self.send(request, &url).await?).await
    }

    /// Sends signed revocation lists (PEM) for the chain (`POST /v1/revocations`).
    pub async fn publish_revocations(&self, pem: &str) -> Result<RevocationsQueued> {
        let url = self.url("/v1/revocations");
        let request = || {
            let request = self.http.post(&url);
            let request = request.header(CONTENT_TYPE, "application/x-pem-file");
            request.body(pem.to_string())
        };
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
        let response = self
            .send(|| self.http.get(&url).query(params), &url)
            .await?;
        decode(response).await
    }

    /// Whether `/readyz` answers 200.
    pub async fn ready(&self) -> bool {
        match self.http.get(self.url("/readyz")).send().await {
            Ok(response) => response.status() == StatusCode::OK,
            Err(_) => false,
        }
    }
}

/// A draw in [0, 1) spreading retries of many clients refused at once.
fn jitter() -> f64 {
    f64::from(rand_core::OsRng.next_u32()) / (f64::from(u32::MAX) + 1.0)
}

/// `response` if it is a success, else its refusal.
pub(super) async fn accepted(response: Response) -> Result<Response> {
    if response.status().is_success() {
        Ok(response)
    } else {
        Err(refusal(response).await)
    }
}

/// The error of a refused request: its problem document (or one made of its status and body).
async fn refusal(response: Response) -> ClientError {
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    ClientError::Problem(
        serde_json::from_str::<Problem>(&text).unwrap_or_else(|_| Problem {
            kind: "about:blank".into(),
            title: status.canonical_reason().unwrap_or("Error").into(),
            status: status.as_u16(),
            detail: text.trim().to_string(),
            reason: None,
        }),
    )
}

pub(super) async fn decode<T: DeserializeOwned>(response: Response) -> Result<T> {
    let url = response.url().to_string();
    let bytes = response
        .bytes()
        .await
        .map_err(|source| ClientError::Unreachable { url, source })?;
    serde_json::from_slice(&bytes).map_err(|e| ClientError::Protocol(e.to_string()))
}
