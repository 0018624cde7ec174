//! `POST /v1/revocations`: signed revocation lists (PEM, as `mediachain revoke` writes them) for
//! the chain. Each list is checked against the tip (signed by the root, a member's principal or
//! a member; revoking something the chain does not revoke yet) and waits for a block; every
//! peer hears it through this peer's identity records, so a member commits it even when this
//! peer holds no seat (docs/consensus.md, "Members and seats").

use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::Filter;

use super::offload::Lane;
use super::problem::{answer, ApiError};
use super::{body, json, with, Api};
use crate::client::wire::RevocationsQueued;
use crate::journal::membership::{Record, RecordRejection};
use crate::trust::RevocationList;

/// Largest body: a few lists of at most `MAX_REVOCATIONS_PER_RECORD` entries each.
const MAX_REVOCATIONS_BODY: usize = 256 * 1024;

/// The revocation route.
pub fn routes(api: Api) -> BoxedFilter<(Response,)> {
    warp::path!("v1" / "revocations")
        .and(warp::post())
        .and(with(api.clone()))
        .and(body(&api, MAX_REVOCATIONS_BODY))
        .and_then(|api: Api, body| async move {
            answer(
                publish(api, body)
                    .await
                    .map(|q| json(StatusCode::ACCEPTED, &q)),
            )
        })
        .boxed()
}

async fn publish(api: Api, body: Result<Vec<u8>, ApiError>) -> Result<RevocationsQueued, ApiError> {
    let body = body?;
    let text = String::from_utf8(body)
        .map_err(|_| ApiError::bad_request("malformed-revocations", "the body is not UTF-8 PEM"))?;
    let lists = RevocationList::many_from_pem(&text)
        .map_err(|e| ApiError::bad_request("malformed-revocations", e.to_string()))?;
    let node = api.node.clone();
    api.offload
        .run(Lane::Write, move || {
            let mut out = RevocationsQueued {
                queued: 0,
                known: 0,
            };
            for list in lists {
                match node.offer_record(Record::Revoke(list)) {
                    Ok(true) => out.queued += 1,
                    Ok(false) => {
                        return Err(ApiError::new(
                            StatusCode::SERVICE_UNAVAILABLE,
                            "busy",
                            "too many membership records wait for a block; retry later",
                        )
                        .retry_after(5))
                    }
                    Err(RecordRejection::NothingNew(_)) => out.known += 1,
                    Err(RecordRejection::NoMembership) => {
                        return Err(ApiError::unprocessable(
                            "no-membership",
                            "this network runs without network parameters: revocations are given \
                         to each peer at start (--revocations)",
                        ))
                    }
                    Err(reason) => {
                        return Err(ApiError::new(
                            StatusCode::FORBIDDEN,
                            "invalid-revocations",
                            reason.to_string(),
                        ))
                    }
                }
            }
            Ok(out)
        })
        .await
}
