//! The client HTTP API of a peer (warp), versioned under `/v1`, plus `/healthz`, `/readyz` and
//! `/metrics`. The whole API is described by the OpenAPI document at `/v1/openapi.json`.
//!
//! One module per concern: [`registration`], [`objects`], [`transactions`], [`journal`],
//! [`export`] (backups as CAR files), [`explorer`] (the web page at `/`), [`events`] (the view-update stream), [`search`] (the query index), [`problem`] (error documents), [`openapi`],
//! [`ratelimit`] (token buckets, enforced before routing by the server's [`gate`]), [`storage`] (upload quotas, their collection, the free-space reserve) and [`offload`] (the bounded blocking pool the handlers' datastore work runs on). Handlers only translate HTTP to calls on [`Node`] and back; they never decide
//! protocol questions themselves, and a refused request never changes anything.

pub mod activity;
pub mod body;
pub mod config;
pub mod connections;
pub mod events;
pub mod evidence;
pub mod explorer;
pub mod export;
pub mod fair;
pub mod gate;
pub mod journal;
pub mod metrics;
pub mod objects;
pub mod offload;
pub mod openapi;
pub mod origin;
pub mod problem;
pub mod ratelimit;
pub mod registration;
pub mod revocations;
pub mod search;
pub mod server;
pub mod share;
pub mod slots;
pub mod storage;
pub mod transactions;

use std::sync::Arc;

use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::{Filter, Reply};

use crate::node::metrics::{Metrics, ReasonLabel};
use crate::node::overlay::OverlayHandle;
use crate::node::{Health, Node};
pub(crate) use body::body;
pub use config::{ApiConfig, ApiConfigError, RATE_LIMIT_ENV};
pub use server::serve_listener;

/// What every handler gets: one shared [`ApiState`], so the clone each request's filters take
/// is one reference count, not one per part.
#[derive(Clone)]
pub struct Api(Arc<ApiState>);

impl std::ops::Deref for Api {
    type Target = ApiState;

    fn deref(&self) -> &ApiState {
        &self.0
    }
}

/// The parts of the API's state.
pub struct ApiState {
    /// The node.
    pub node: Arc<Node>,
    /// The overlay (gossip of admitted transactions, object fetches).
    pub overlay: OverlayHandle,
    /// Its metrics.
    pub metrics: Arc<Metrics>,
    /// Its health.
    pub health: Arc<Health>,
    /// Settings.
    pub config: Arc<ApiConfig>,
    /// The query index (`None`: this peer runs without one).
    pub search: Option<Arc<crate::search::SearchService>>,
    /// The blocking pool's lanes (datastore reads and writes, hashing, verification).
    pub offload: Arc<offload::Offload>,
    /// Uploads being received or stored, per client.
    pub uploads: Arc<slots::Slots>,
}

impl Api {
    /// The state of an API with `config`, its blocking pool and upload caps made from it.
    pub fn new(
        node: Arc<Node>,
        overlay: OverlayHandle,
        metrics: Arc<Metrics>,
        health: Arc<Health>,
        config: ApiConfig,
        search: Option<Arc<crate::search::SearchService>>,
    ) -> Self {
        Self(Arc::new(ApiState {
            offload: Arc::new(offload::Offload::new(&config)),
            uploads: slots::Slots::new(usize::MAX, config.max_uploads_per_client),
            config: Arc::new(config),
            node,
            overlay,
            metrics,
            health,
            search,
        }))
    }
}

/// The boxed filter of the whole API.
pub type Filtered = BoxedFilter<(Box<dyn Reply>,)>;

/// The whole API, ready to serve: the routes and the limits the server enforces.
pub struct Routes {
    /// The routes.
    pub filter: Filtered,
    /// The settings (the server's limits among them).
    pub config: Arc<ApiConfig>,
    /// The peer's metrics.
    pub metrics: Arc<Metrics>,
}

/// The whole API over `api`'s node, overlay, metrics, health and settings.
pub fn routes(api: Api) -> Routes {
    let config = api.config.clone();
    let metrics = api.metrics.clone();
    let v1 = registration::routes(api.clone())
        .or(objects::routes(api.clone()))
        .unify()
        .or(transactions::routes(api.clone()))
        .unify()
        .or(journal::routes(api.clone()))
        .unify()
        .or(export::routes(api.clone()))
        .unify()
        .or(events::routes(api.clone()))
        .unify()
        .or(evidence::routes(api.clone()))
        .unify()
        .or(revocations::routes(api.clone()))
        .unify()
        .or(search::routes(api.clone()))
        .unify()
        .or(openapi::routes())
        .unify()
        .or(explorer::routes())
        .unify()
        .boxed();
    let probes = probes(api);
    let counted = metrics.clone();
    let filter = probes
        .or(v1)
        .unify()
        .recover(problem::recover)
        .unify()
        .with(warp::log::custom(move |info| {
            counted
                .http_requests
                .get_or_create(&ReasonLabel {
                    kind: openapi::route_of(info.path()).to_string(),
                    reason: info.status().as_str().to_string(),
                })
                .inc();
        }))
        .with(warp::trace(
            |info| tracing::info_span!("http", method = %info.method(), path = %info.path()),
        ))
        .map(|reply| Box::new(reply) as Box<dyn Reply>)
        .boxed();
    Routes {
        filter,
        config,
        metrics,
    }
}

fn probes(api: Api) -> BoxedFilter<(warp::reply::Response,)> {
    let healthz = warp::path!("healthz")
        .and(warp::get())
        .map(|| warp::reply::with_status("ok\n", StatusCode::OK).into_response());
    let health = api.health.clone();
    let readyz = warp::path!("readyz").and(warp::get()).map(move || {
        if health.is_ready() {
            warp::reply::with_status("ready\n", StatusCode::OK).into_response()
        } else {
            warp::reply::with_status("not ready\n", StatusCode::SERVICE_UNAVAILABLE).into_response()
        }
    });
    let metrics = api.metrics.clone();
    let node = api.node.clone();
    let metrics_route = warp::path!("metrics").and(warp::get()).map(move || {
        // Never waits for the node: while it is busy, the gauges keep their last values.
        if let Some((height, pending)) = node.try_height_and_pending() {
            metrics
                .journal_height
                .set(i64::try_from(height).unwrap_or(i64::MAX));
            metrics
                .mempool_size
                .set(i64::try_from(pending).unwrap_or(i64::MAX));
        }
        if let Some(finalized) = node.try_finalized_height() {
            metrics
                .finalized_height
                .set(i64::try_from(finalized).unwrap_or(i64::MAX));
        }
        if let Some(evidence) = node.evidence_summary() {
            let gauge = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
            metrics
                .evidence_culprits
                .set(gauge(evidence.culprits as u64));
            metrics.evidence_items.set(gauge(evidence.items as u64));
            let newest = evidence.newest.map_or(0, |n| n.found_at);
            metrics.evidence_newest.set(gauge(newest));
        }
        warp::reply::with_header(
            metrics.encode(),
            "content-type",
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )
        .into_response()
    });
    healthz.or(readyz).unify().or(metrics_route).unify().boxed()
}

/// A filter handing out the shared state.
pub(crate) fn with(
    api: Api,
) -> impl Filter<Extract = (Api,), Error = std::convert::Infallible> + Clone {
    warp::any().map(move || api.clone())
}

/// The request's `Content-Type` without parameters, lower-cased.
pub(crate) fn content_type() -> impl Filter<Extract = (String,), Error = warp::Rejection> + Clone {
    warp::header::optional::<String>("content-type").map(|value: Option<String>| {
        value
            .unwrap_or_default()
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase()
    })
}

/// A JSON reply with a status.
pub(crate) fn json<T: serde::Serialize>(status: StatusCode, value: &T) -> warp::reply::Response {
    warp::reply::with_status(warp::reply::json(value), status).into_response()
}
