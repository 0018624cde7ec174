//! Storage limits of client writes: a client's uploads that no committed transaction references
//! are bounded by a quota per client address and a total (`store::uploads` keeps the records),
//! uploads nobody commits are collected after a grace period ([`collect_loop`]), and client
//! writes are refused with `507` while the data volume is nearly full, so that blocks from peers
//! still have room. Refusals are counted in `mediachain_storage_writes_refused_total{reason}`.
//! This module never deletes anything itself: the node decides what is referenced.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tracing::warn;
use warp::http::StatusCode;

use super::fair::{Standing, Writer};
use super::problem::ApiError;
use super::Api;
use crate::client::wire::CBOR;
use crate::model::Cid;
use crate::node::metrics::Metrics;
use crate::node::Node;
use crate::store::{Checked, UploadError, UploadLimits};

/// Uploads looked at, at most, by one collection pass.
pub const COLLECT_PER_PASS: usize = 1000;

/// `507` while the volume has less than the configured free space (call off the runtime).
pub fn check_free_space(api: &Api) -> Result<(), ApiError> {
    let available = api
        .node
        .store()
        .available_bytes()
        .map_err(ApiError::internal)?;
    if available < api.config.min_free_bytes {
        api.metrics.edge.refuse_write("low-disk-space");
        return Err(ApiError::new(
            StatusCode::INSUFFICIENT_STORAGE,
            "low-disk-space",
            format!(
                "this peer's volume has {available} bytes free, under its reserve of {} bytes: \
                 writes are refused until space is freed",
                api.config.min_free_bytes
            ),
        ));
    }
    Ok(())
}

/// The fewest bytes a new upload of `kind` whose body is `length` bytes is charged: the body
/// itself for raw blobs and DAG-CBOR objects (stored as sent), at least one byte for the others
/// (DAG-JSON is re-encoded; a batch may name objects already stored).
pub fn least_charge(kind: &str, length: Option<u64>) -> u64 {
    match (kind, length) {
        (CBOR | "application/dag-cbor" | "application/octet-stream", Some(length)) => length,
        (_, length) => u64::from(length != Some(0)),
    }
}

/// Refuses, from its headers alone and before its body is read, an upload of `client` that
/// would be charged at least `least` bytes past its quota or the peer's total (`507`, as
/// [`put_uploads`] would refuse it once read), as nginx's `client_max_body_size` refuses a
/// `Content-Length` over its limit. Not refused: an upload whose `?cid=` (`named`) is already
/// stored (it costs nothing). This check never waits for an upload being written (it reads
/// the usage with the uploads being written charged: [`put_uploads`] still decides).
pub fn check_claim(
    api: &Api,
    client: Option<IpAddr>,
    least: u64,
    named: Option<&str>,
) -> Result<(), ApiError> {
    let store = api.node.store();
    let client = client.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    match store.upload_room(client, least, api.config.upload_limits) {
        Err(error) => {
            let stored = named
                .and_then(|cid| cid.parse::<Cid>().ok())
                .is_some_and(|cid| store.has(&cid).unwrap_or(false));
            if stored {
                return Ok(());
            }
            Err(upload_error(api, error))
        }
        Ok(()) => Ok(()),
    }
}

/// Whose an upload of `client` is, for the write lane's fair queue ([`super::fair`]): of good
/// standing while the client's unreferenced uploads are within half its quota (an honest writer
/// commits what it uploads, which releases it from the quota), heavy past that. Never waits for
/// an upload being written: the usage with the uploads being written charged.
pub fn writer(api: &Api, client: Option<IpAddr>) -> Writer {
    let half = UploadLimits {
        per_client: api.config.upload_limits.per_client / 2,
        total: u64::MAX,
    };
    let key = client.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    let standing = match api.node.store().upload_room(key, 0, half) {
        Err(_) => Standing::Heavy,
        Ok(()) => Standing::Good,
    };
    Writer { client, standing }
}

/// Stores a client's upload within its quota (call off the runtime); whether it was new.
pub fn put_upload(
    api: &Api,
    client: Option<IpAddr>,
    object: Checked<'_>,
) -> Result<bool, ApiError> {
    let created = put_uploads(api, client, &[object])?;
    Ok(created.first().copied().unwrap_or(false))
}

/// Stores a client's uploads, all or none, within its quota (call off the runtime); per object
/// whether it was new. The objects were named and checked by the store ([`Store::check`]), so
/// none is hashed again.
///
/// [`Store::check`]: crate::store::Store::check
pub fn put_uploads(
    api: &Api,
    client: Option<IpAddr>,
    objects: &[Checked<'_>],
) -> Result<Vec<bool>, ApiError> {
    check_free_space(api)?;
    // Requests without a connection address (warp's test harness) share one bucket.
    let client = client.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    let now = crate::time::now();
    let uploaded = api
        .node
        .store()
        .put_checked_uploads(objects, client, now, api.config.upload_limits)
        .map_err(|error| upload_error(api, error))?;
    api.metrics
        .edge
        .upload_bytes
        .set(i64::try_from(uploaded.total).unwrap_or(i64::MAX));
    Ok(uploaded.created)
}

fn upload_error(api: &Api, error: UploadError) -> ApiError {
    match error {
        UploadError::Quota { .. } => refused(api, "quota-exceeded", &error),
        UploadError::Full { .. } => refused(api, "uploads-full", &error),
        UploadError::Store(e) => super::objects::store_error(e),
    }
}

fn refused(api: &Api, reason: &'static str, error: &UploadError) -> ApiError {
    api.metrics.edge.refuse_write(reason);
    ApiError::new(
        StatusCode::INSUFFICIENT_STORAGE,
        reason,
        format!("{error}: submit a transaction referencing your uploads, or wait for the collection of the unreferenced ones"),
    )
}

/// Every pass interval (a quarter of the grace period, between 1 s and a minute) collects at
/// most [`COLLECT_PER_PASS`] uploads unreferenced for `grace`, until `stop` turns true.
pub async fn collect_loop(
    node: Arc<Node>,
    metrics: Arc<Metrics>,
    grace: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let interval = (grace / 4).clamp(Duration::from_secs(1), Duration::from_secs(60));
    loop {
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            _ = stop.changed() => return,
        }
        if *stop.borrow() {
            return;
        }
        let pass = node.clone();
        let seconds = grace.as_secs();
        match tokio::task::spawn_blocking(move || pass.collect_uploads(seconds, COLLECT_PER_PASS))
            .await
        {
            Ok(Ok(collected)) => {
                metrics.edge.uploads_collected.inc_by(collected as u64);
                let (_, total) = node.store().upload_usage(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
                metrics
                    .edge
                    .upload_bytes
                    .set(i64::try_from(total).unwrap_or(i64::MAX));
            }
            Ok(Err(error)) => warn!(%error, "collecting uploads failed"),
            Err(error) => warn!(%error, "collecting uploads panicked"),
        }
    }
}
