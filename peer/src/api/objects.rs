//! The datastore over HTTP: `POST /v1/objects` stores an object or blob and returns its CID
//! (checking a client-supplied `?cid=`), `GET /v1/objects/{cid}` returns it.
//!
//! Bodies: `application/cbor` (a Mediachain object in canonical DAG-CBOR, stored as sent),
//! `application/json` (a Mediachain object in DAG-JSON, stored as canonical DAG-CBOR) or
//! `application/octet-stream` (a raw blob). Objects are checked before anything is written, and
//! each upload counts against its client's quota until a committed transaction references it
//! ([`super::storage`]).
//!
//! A batch (`application/vnd.mediachain.objects+cbor`: a DAG-CBOR array of byte strings, each
//! an object in canonical DAG-CBOR) stores many objects in one request, all or none, with one
//! flush: at most [`MAX_BATCH_OBJECTS`] objects and `max_batch_bytes`, within the quota.
//!
//! Before its body is read an upload takes one of its client's upload slots (at most
//! `max_uploads_per_client` at once: nginx's `limit_conn` keyed by client address on an upload
//! location), held until it is stored; a client over its share is answered `429` with
//! `Retry-After`. There is no total of slots, which slow uploads from many addresses could
//! hold: what is being stored is bounded by the write lane of the blocking pool, where decoding,
//! hashing and storing run; reads run in its read lane ([`super::offload`]).

use std::net::IpAddr;
use std::sync::Arc;

use prometheus_client::metrics::gauge::Gauge;
use serde::Deserialize;
use warp::filters::BoxedFilter;
use warp::http::{header, HeaderValue, StatusCode};
use warp::reply::Response;
use warp::Filter;

use super::body::body_after;
use super::config::MAX_BATCH_OBJECTS;
use super::offload::Lane;
use super::problem::{answer, ApiError};
use super::slots::Slot;
use super::{content_type, json, origin, storage, with, Api};
use crate::client::wire::{Stored, StoredBatch, CBOR, OBJECTS_BATCH};
use crate::model::{codec, Cid, Ipld, Object, DAG_CBOR};
use crate::store::{Checked, StoreError};

/// Query of `POST /v1/objects`.
#[derive(Debug, Deserialize)]
struct PutQuery {
    /// The CID the client computed; refused if the bytes hash to another.
    cid: Option<String>,
}

/// Query of `GET /v1/objects/{cid}`.
#[derive(Debug, Deserialize)]
struct GetQuery {
    /// `json` for DAG-JSON, otherwise the stored bytes.
    format: Option<String>,
}

/// The object routes.
pub fn routes(api: Api) -> BoxedFilter<(Response,)> {
    // Allow for DAG-JSON's verbosity over the stored DAG-CBOR.
    let limit = api.node.store().max_object_size().saturating_mul(4);
    let trusted = Arc::new(api.config.trusted_proxies.clone());
    let batch = warp::path!("v1" / "objects")
        .and(warp::post())
        .and(warp::header::exact_ignore_case(
            "content-type",
            OBJECTS_BATCH,
        ))
        .and(with(api.clone()))
        .and(origin::client(trusted.clone()))
        .and(body_after(
            &api,
            api.config.max_batch_bytes,
            admission(&api, trusted.clone()),
        ))
        .and_then(|api, client, body| async move { answer(put_batch(api, client, body).await) });
    let put = warp::path!("v1" / "objects")
        .and(warp::post())
        .and(with(api.clone()))
        .and(origin::client(trusted.clone()))
        .and(warp::query::<PutQuery>())
        .and(content_type())
        .and(body_after(&api, limit, admission(&api, trusted)))
        .and_then(|api, client, query, kind, body| async move {
            answer(put(api, client, query, kind, body).await)
        });
    let get = warp::path!("v1" / "objects" / String)
        .and(warp::get())
        .and(with(api))
        .and(warp::query::<GetQuery>())
        .and(warp::header::optional::<String>("accept"))
        .and_then(|cid: String, api, query, accept| async move {
            answer(get(api, cid, query, accept).await)
        });
    batch.or(put).unify().or(get).unify().boxed()
}

/// An upload's slot, counted in `mediachain_uploads_in_progress` while held.
struct UploadSlot {
    _slot: Slot,
    gauge: Gauge,
}

impl Drop for UploadSlot {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}

/// Seconds a client refused an upload slot is told to wait.
const UPLOAD_RETRY_AFTER: u64 = 1;

/// An upload's admission from its head alone, before any byte of the body is read: its quota
/// ([`storage::check_claim`]: the client, the `Content-Length`, the `Content-Type` and a
/// `?cid=`), then an upload slot, held until the upload is stored.
fn admission(
    api: &Api,
    trusted: Arc<origin::TrustedProxies>,
) -> impl Filter<Extract = (Result<UploadSlot, ApiError>,), Error = warp::Rejection> + Clone {
    with(api.clone())
        .and(origin::client(trusted))
        .and(content_type())
        .and(warp::header::optional::<u64>("content-length"))
        .and(
            warp::query::<PutQuery>()
                .or(warp::any().map(|| PutQuery { cid: None }))
                .unify(),
        )
        .map(
            |api: Api, client, kind: String, length: Option<u64>, query: PutQuery| {
                let least = storage::least_charge(&kind, length);
                storage::check_claim(&api, client, least, query.cid.as_deref())?;
                // The slots have no total: the only refusal is the client's own cap.
                let slot = api.uploads.enter(client).map_err(|_| {
                    api.metrics.edge.refuse_write("too-many-uploads");
                    ApiError::new(
                        StatusCode::TOO_MANY_REQUESTS,
                        "too-many-uploads",
                        "this client has the most uploads in progress a client may have; retry \
                         after the seconds of Retry-After",
                    )
                    .retry_after(UPLOAD_RETRY_AFTER)
                })?;
                let gauge = api.metrics.edge.uploads_in_progress.clone();
                gauge.inc();
                Ok(UploadSlot { _slot: slot, gauge })
            },
        )
}

/// Parses a CID from a path or query.
pub fn parse_cid(text: &str) -> Result<Cid, ApiError> {
    text.parse::<Cid>()
        .map_err(|e| ApiError::bad_request("invalid-cid", format!("`{text}` is not a CID: {e}")))
}

pub(crate) fn store_error(error: StoreError) -> ApiError {
    match error {
        StoreError::TooLarge { .. } => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too-large",
            error.to_string(),
        ),
        StoreError::CidMismatch { .. } => {
            ApiError::unprocessable("cid-mismatch", error.to_string())
        }
        StoreError::UnsupportedCid { .. } => {
            ApiError::bad_request("invalid-cid", error.to_string())
        }
        StoreError::InvalidDagCbor { .. } | StoreError::NotAnObject { .. } => {
            ApiError::bad_request("malformed-object", error.to_string())
        }
        StoreError::Open { .. }
        | StoreError::Io(_)
        | StoreError::Volume { .. }
        | StoreError::Damaged(_) => ApiError::internal(error),
    }
}

/// The request body as the store checked it: a DAG-CBOR object as sent (decoded once, by the
/// store's check), a DAG-JSON object (decoded once, here) re-encoded by the store, or a raw blob.
fn check_body<'a>(
    store: &crate::store::Store,
    kind: &str,
    body: &'a mut Vec<u8>,
) -> Result<Checked<'a>, ApiError> {
    match kind {
        CBOR | "application/dag-cbor" => store.check_object(body).map_err(store_error),
        "application/json" | "application/dag-json" => {
            let ipld: Ipld = serde_ipld_dagjson::from_slice(body).map_err(|e| {
                ApiError::bad_request("malformed-body", format!("not DAG-JSON: {e}"))
            })?;
            let object = Object::from_ipld(ipld).map_err(|e| {
                ApiError::bad_request("malformed-object", format!("not a Mediachain object: {e}"))
            })?;
            // Encoded and named once; not decoded again.
            store.check_encoding(&object, body).map_err(store_error)
        }
        "application/octet-stream" => store.check(crate::model::RAW, body).map_err(store_error),
        other => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            format!(
                "Content-Type `{other}` is not accepted: send application/cbor, application/json \
                 or application/octet-stream"
            ),
        )),
    }
}

async fn put(
    api: Api,
    client: Option<IpAddr>,
    query: PutQuery,
    kind: String,
    body: Result<(UploadSlot, Vec<u8>), ApiError>,
) -> Result<Response, ApiError> {
    let (slot, mut body) = body?;
    let writer = api.clone();
    let (cid, size, created) = api
        .offload
        .run_for(Lane::Write, storage::writer(&api, client), move || {
            let _slot = slot;
            // The body's one hashing and decoding: the store names it and stores it under
            // that name.
            let object = check_body(writer.node.store(), &kind, &mut body)?;
            let size = object.bytes().len();
            let actual = object.cid();
            if let Some(claimed) = &query.cid {
                let claimed = parse_cid(claimed)?;
                if claimed != actual {
                    return Err(ApiError::unprocessable(
                        "cid-mismatch",
                        format!("the object's CID is {actual}, not the {claimed} supplied"),
                    ));
                }
            }
            let created = storage::put_upload(&writer, client, object)?;
            Ok((actual, size, created))
        })
        .await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let mut response = json(
        status,
        &Stored {
            cid: cid.to_string(),
            size,
            created,
        },
    );
    if let Ok(location) = HeaderValue::from_str(&format!("/v1/objects/{cid}")) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

/// Stores a batch of objects, all or none.
async fn put_batch(
    api: Api,
    client: Option<IpAddr>,
    body: Result<(UploadSlot, Vec<u8>), ApiError>,
) -> Result<Response, ApiError> {
    let (slot, body) = body?;
    let writer = api.clone();
    let stored = api
        .offload
        .run_for(Lane::Write, storage::writer(&api, client), move || {
            let _slot = slot;
            let list = decode_batch(&body)?;
            let store = writer.node.store();
            // Each object named and decoded once, by the store's check.
            let objects = list
                .iter()
                .enumerate()
                .map(|(i, bytes)| {
                    store.check_object(bytes).map_err(|e| {
                        let error = store_error(e);
                        ApiError {
                            detail: format!("object {i} of the batch: {}", error.detail),
                            ..error
                        }
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            let created = storage::put_uploads(&writer, client, &objects)?;
            Ok(objects
                .iter()
                .zip(created)
                .map(|(object, created)| Stored {
                    cid: object.cid().to_string(),
                    size: object.bytes().len(),
                    created,
                })
                .collect())
        })
        .await?;
    Ok(json(StatusCode::OK, &StoredBatch { stored }))
}

/// The objects of a batch body (each then named and checked by the store).
fn decode_batch(body: &[u8]) -> Result<Vec<serde_bytes::ByteBuf>, ApiError> {
    let list: Vec<serde_bytes::ByteBuf> = serde_ipld_dagcbor::from_slice(body).map_err(|e| {
        ApiError::bad_request(
            "malformed-body",
            format!("a batch is a DAG-CBOR array of byte strings: {e}"),
        )
    })?;
    if list.len() > MAX_BATCH_OBJECTS {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too-many-objects",
            format!(
                "a batch holds at most {MAX_BATCH_OBJECTS} objects, not {}",
                list.len()
            ),
        ));
    }
    Ok(list)
}

async fn get(
    api: Api,
    cid: String,
    query: GetQuery,
    accept: Option<String>,
) -> Result<Response, ApiError> {
    let cid = parse_cid(&cid)?;
    let wants_json = query.format.as_deref() == Some("json")
        || accept.is_some_and(|a| a.contains("application/json") && !a.contains(CBOR));
    let store = api.node.store().clone();
    let (content_type, body) = api
        .offload
        .run(Lane::Read, move || {
            let bytes = store.get(&cid).map_err(store_error)?.ok_or_else(|| {
                ApiError::not_found(format!("object {cid} is not in this peer's store"))
            })?;
            if cid.codec() != DAG_CBOR {
                return Ok(("application/octet-stream", bytes));
            }
            if !wants_json {
                return Ok((CBOR, bytes));
            }
            let ipld = codec::decode(&bytes).map_err(ApiError::internal)?;
            let text = serde_ipld_dagjson::to_vec(&ipld).map_err(ApiError::internal)?;
            Ok(("application/json", text))
        })
        .await?;
    let mut response = Response::new(body.into());
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    Ok(response)
}
