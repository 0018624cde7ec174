//! Transactions: `POST /v1/transactions` takes a client-signed transaction with its proof of
//! work as canonical DAG-CBOR (`application/cbor`) and answers `202 Accepted` with its id;
//! `GET /v1/transactions/{id}` says where it stands (pending, committed in block X, merged,
//! rejected with the reason). A refused transaction is never queued or relayed.

use std::net::IpAddr;
use std::sync::Arc;

use warp::filters::BoxedFilter;
use warp::http::{header, HeaderValue, StatusCode};
use warp::reply::Response;
use warp::Filter;

use super::fair::{Standing, Writer};
use super::offload::Lane;
use super::origin;
use super::problem::{answer, ApiError};
use super::{body, content_type, json, storage, with, Api};
use crate::client::wire::{TxState, CBOR};
use crate::journal::{Transaction, TxId, TxRejection};
use crate::model::JournalEntry;
use crate::node::TxStatus;

/// The transaction routes.
pub fn routes(api: Api) -> BoxedFilter<(Response,)> {
    let trusted = Arc::new(api.config.trusted_proxies.clone());
    let submit = warp::path!("v1" / "transactions")
        .and(warp::post())
        .and(with(api.clone()))
        .and(origin::client(trusted))
        .and(content_type())
        .and(body(&api, api.config.max_body_bytes))
        .and_then(|api, client, kind, body| async move {
            answer(submit(api, client, kind, body).await)
        });
    let status = warp::path!("v1" / "transactions" / String)
        .and(warp::get())
        .and(with(api))
        .and_then(|id: String, api| async move {
            answer(status(api, &id).map(|s| json(StatusCode::OK, &s)))
        });
    submit.or(status).unify().boxed()
}

/// The HTTP status and problem slug of a refused transaction.
pub fn rejection_problem(reason: &TxRejection) -> ApiError {
    let (status, slug) = match reason {
        TxRejection::BadSignature => (StatusCode::FORBIDDEN, "bad-signature"),
        TxRejection::Certificate(_) | TxRejection::CertificateMismatch { .. } => {
            (StatusCode::FORBIDDEN, "certificate")
        }
        TxRejection::ProofOfWork(_) => (StatusCode::FORBIDDEN, "proof-of-work"),
        TxRejection::Duplicate(_) => (StatusCode::CONFLICT, "duplicate"),
        TxRejection::AlreadyInserted(_) | TxRejection::StaleHead(_) => {
            (StatusCode::CONFLICT, "conflict")
        }
        TxRejection::Busy => (StatusCode::SERVICE_UNAVAILABLE, "busy"),
        TxRejection::UnknownObject(_) | TxRejection::NotInserted(_) => {
            (StatusCode::UNPROCESSABLE_ENTITY, "unknown-reference")
        }
        TxRejection::FromTheFuture { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "timestamp"),
        _ => (StatusCode::UNPROCESSABLE_ENTITY, "invalid-transaction"),
    };
    let error = ApiError::new(status, slug, reason.to_string());
    if matches!(reason, TxRejection::Busy) {
        error.retry_after(1)
    } else {
        error
    }
}

/// Objects a submission may fetch from other peers (a client behind a load balancer may have
/// stored them at any peer of the network).
const MAX_FETCHED_OBJECTS: usize = 16;

/// Submits `tx`; when it references an object this peer lacks, fetches it from other peers and
/// tries again. An admitted transaction goes to the overlay to be gossiped.
async fn submit_fetching(
    api: &Api,
    writer: Writer,
    tx: Transaction,
) -> Result<Result<crate::journal::TxId, TxRejection>, ApiError> {
    let mut fetched = 0;
    loop {
        let node = api.node.clone();
        let attempt = tx.clone();
        let outcome = api
            .offload
            .run_for(Lane::Write, writer, move || {
                node.submit(attempt).map_err(ApiError::internal)
            })
            .await?;
        match outcome {
            Err(TxRejection::UnknownObject(cid)) if fetched < MAX_FETCHED_OBJECTS => {
                if !api.overlay.fetch_object(cid).await {
                    return Ok(Err(TxRejection::UnknownObject(cid)));
                }
                fetched += 1;
            }
            Ok(bundle) => {
                let id = bundle.tx.id();
                // A stopped overlay (shutdown) leaves the transaction to this peer's blocks.
                api.overlay.publish_tx(bundle).await;
                return Ok(Ok(id));
            }
            Err(reason) => return Ok(Err(reason)),
        }
    }
}

async fn submit(
    api: Api,
    client: Option<IpAddr>,
    kind: String,
    body: Result<Vec<u8>, ApiError>,
) -> Result<Response, ApiError> {
    if kind != CBOR && kind != "application/dag-cbor" {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            format!("send the transaction as {CBOR} (canonical DAG-CBOR), not `{kind}`"),
        ));
    }
    let body = body?;
    let checked = api.clone();
    api.offload
        .run(Lane::Write, move || storage::check_free_space(&checked))
        .await?;
    let tx = Transaction::from_bytes(&body).map_err(|e| {
        api.metrics.reject("transaction", "malformed");
        ApiError::bad_request("malformed-transaction", e)
    })?;
    // A transaction is a registered client's signed work: good standing in the write lane.
    let writer = Writer {
        client,
        standing: Standing::Good,
    };
    let outcome = submit_fetching(&api, writer, tx).await?;
    match outcome {
        Ok(id) => {
            // `transactions_admitted` is counted by the overlay when it takes the transaction.
            let mut response = json(
                StatusCode::ACCEPTED,
                &TxState {
                    id: id.to_string(),
                    state: "pending".into(),
                    height: None,
                    block: None,
                    reason: None,
                    merged: false,
                },
            );
            if let Ok(location) = HeaderValue::from_str(&format!("/v1/transactions/{id}")) {
                response.headers_mut().insert(header::LOCATION, location);
            }
            Ok(response)
        }
        Err(reason) => {
            api.metrics.reject("transaction", reason.label());
            Err(rejection_problem(&reason))
        }
    }
}

/// Where transaction `id` stands.
pub fn status(api: Api, id: &str) -> Result<TxState, ApiError> {
    let tx_id: TxId = id
        .parse()
        .map_err(|e: String| ApiError::bad_request("invalid-transaction-id", e))?;
    let status = api.node.tx_status(&tx_id).map_err(ApiError::internal)?;
    let mut state = TxState {
        id: tx_id.to_string(),
        state: String::new(),
        height: None,
        block: None,
        reason: None,
        merged: false,
    };
    match status {
        TxStatus::Pending => state.state = "pending".into(),
        TxStatus::Unknown => state.state = "unknown".into(),
        TxStatus::Rejected { reason } => {
            state.state = "rejected".into();
            state.reason = Some(reason);
        }
        TxStatus::Committed { height, block } => {
            let merged = merged(&api, &block, &tx_id);
            state.state = if merged { "merged" } else { "committed" }.into();
            state.merged = merged;
            state.height = Some(height);
            state.block = Some(block);
        }
        TxStatus::Final { height, block } => {
            state.merged = merged(&api, &block, &tx_id);
            state.state = "final".into();
            state.height = Some(height);
            state.block = Some(block);
        }
    }
    Ok(state)
}

/// Whether one of the transaction's updates was reconciled by a chainMerge in its block.
fn merged(api: &Api, block: &str, id: &TxId) -> bool {
    let Ok(cid) = block.parse() else {
        return false;
    };
    api.node.with_journal(|journal| {
        let Ok(block) = journal.load_block(&cid) else {
            return false;
        };
        let Some(tx) = block.transactions.iter().find(|t| t.id() == *id) else {
            return false;
        };
        tx.body.entries.iter().any(|entry| {
            match entry {
            JournalEntry::Update { chain, .. } => block.entries.iter().any(|e| {
                matches!(e, JournalEntry::ChainMerge { chain_merge, .. } if chain_merge == chain)
            }),
            _ => false,
        }
        })
    })
}
