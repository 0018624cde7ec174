//! Logging (tracing, JSON when `LOG_FORMAT=json`) and the HTTP server for `/metrics`,
//! `/healthz` and `/readyz`.

use std::sync::Arc;

use tracing_subscriber::EnvFilter;
use warp::Filter;

use crate::metrics::Metrics;

/// Installs the global tracing subscriber (`RUST_LOG` filter, default `info`).
pub fn init_logging() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    if std::env::var("LOG_FORMAT").as_deref() == Ok("json") {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Serves `/metrics` (Prometheus text), `/healthz` and `/readyz` on `listener` until the process
/// ends. Binding is the caller's, so that it can refuse a taken address and report the bound one.
pub fn serve(
    listener: tokio::net::TcpListener,
    metrics: Arc<Metrics>,
) -> impl std::future::Future<Output = ()> {
    let metrics_route = warp::path("metrics").and(warp::path::end()).map(move || {
        warp::reply::with_header(
            metrics.encode(),
            warp::http::header::CONTENT_TYPE,
            warp::http::HeaderValue::from_static(
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            ),
        )
    });
    let health = warp::path("healthz")
        .and(warp::path::end())
        .map(|| String::from("ok"));
    let ready = warp::path("readyz")
        .and(warp::path::end())
        .map(|| String::from("ok"));
    let routes = warp::get().and(metrics_route.or(health).or(ready));
    warp::serve(routes).incoming(listener).run()
}
