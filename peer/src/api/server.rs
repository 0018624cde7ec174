//! The HTTP/1.1 server of the API: warp's filter served by hyper through this module's own
//! accept loop, so that every connection is bounded in number and in time.
//!
//! - At most [`ApiConfig::max_connections`] connections, and
//!   [`ApiConfig::max_connections_per_client`] from one client address (trusted proxies are
//!   exempt: they carry many clients). At the total cap a connection waiting on the client
//!   holding the most is evicted for the newcomer ([`super::connections`]); a connection that
//!   can be given no room is answered `503` with `Retry-After` and closed at once.
//! - A connection moves through phases — idle (between requests), reading a head, reading a
//!   body, serving a request ([`super::activity`]) — and each has a deadline: the head must be
//!   complete within [`ApiConfig::header_timeout`] of its first byte, a connection where no byte
//!   moved either way for [`ApiConfig::idle_timeout`] is closed (a keep-alive that expired, or a
//!   client that stopped reading its response). The body's deadlines (a minimum rate after a
//!   grace period, a longest time) are enforced where bodies are read ([`super::body`], `408`).
//!
//! - Each request passes the [`super::gate`] (the per-client rate limit) once its head is read
//!   and before the routes see it; a refused one is answered by a held, pre-rendered `429`.
//!
//! Every connection the edge drops is counted by reason in `mediachain_http_connections_dropped`.
//! This module never looks at what a request asks for: that is the routes' job.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use tower_service::Service;
use tracing::{debug, warn};
use warp::http::StatusCode;

use super::activity::{Activity, BodyReading, Finished, Tracked};
use super::connections::{Admitted, Connections};
use super::gate::Gate;
use super::origin::{bucket, Remote};
use super::problem::ApiError;
use super::{ApiConfig, Routes};
use crate::node::metrics::Metrics;

/// Largest request head (request line and headers), as nginx's `large_client_header_buffers`.
const MAX_HEAD_BYTES: usize = 64 * 1024;

/// Answers a connection the edge will not serve with `503` and closes it (best effort: the
/// answer is written only if the socket takes it at once).
fn refuse(stream: TcpStream, metrics: &Metrics, reason: &'static str) {
    metrics.edge.drop_connection(reason);
    let problem = ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        reason,
        "too many open connections; retry later",
    )
    .problem();
    let body = serde_json::to_vec(&problem).unwrap_or_default();
    let mut answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: {}\r\nretry-after: 1\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n",
        crate::client::wire::PROBLEM_JSON,
        body.len()
    )
    .into_bytes();
    answer.extend_from_slice(&body);
    let _ = stream.try_write(&answer);
}

/// Serves `routes` on an already bound listener until `shutdown` completes, then lets the open
/// requests finish (callers bound that wait).
pub fn serve_listener(
    listener: TcpListener,
    routes: Routes,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> impl Future<Output = ()> + Send {
    tracing::info!(addr = ?listener.local_addr().ok(), "HTTP API listening");
    async move {
        let Routes {
            filter,
            config,
            metrics,
        } = routes;
        let service = warp::service(filter);
        let graceful = GracefulShutdown::new();
        let connections =
            Connections::new(config.max_connections, config.max_connections_per_client);
        let gate = Arc::new(Gate::new(&config));
        let mut shutdown = pin!(shutdown);
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                () = &mut shutdown => break,
            };
            let (stream, remote) = match accepted {
                Ok(pair) => pair,
                Err(error) => {
                    // Out of file descriptors (or similar): let connections close first.
                    warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            // Trusted proxies carry many clients: they count in the total only.
            let client =
                (!config.trusted_proxies.contains(&remote.ip())).then(|| bucket(remote.ip()));
            let activity = Activity::new();
            let admitted = match connections.enter(client, activity.clone()) {
                Ok((admitted, evicted)) => {
                    if evicted {
                        metrics.edge.drop_connection("evicted");
                    }
                    admitted
                }
                Err(refusal) => {
                    refuse(stream, &metrics, refusal.reason());
                    continue;
                }
            };
            let connection = Connection {
                service: service.clone(),
                gate: gate.clone(),
                config: config.clone(),
                metrics: metrics.clone(),
                remote,
            };
            tokio::spawn(connection.run(stream, activity, graceful.watcher(), admitted));
        }
        drop(listener);
        graceful.shutdown().await;
    }
}

/// One accepted connection, served by `S` (warp's filter as a service).
struct Connection<S> {
    service: S,
    gate: Arc<Gate>,
    config: Arc<ApiConfig>,
    metrics: Arc<Metrics>,
    remote: SocketAddr,
}

impl<S> Connection<S>
where
    S: Service<hyper::Request<Incoming>, Response = warp::reply::Response, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send,
{
    async fn run(
        self,
        stream: TcpStream,
        activity: Arc<Activity>,
        watcher: Watcher,
        admitted: Admitted,
    ) {
        let Self {
            service,
            gate,
            config,
            metrics,
            remote,
        } = self;
        metrics.edge.connections_open.inc();
        let io = TokioIo::new(Tracked {
            inner: stream,
            activity: activity.clone(),
        });
        let handler = {
            let (activity, metrics) = (activity.clone(), metrics.clone());
            hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
                activity.serving();
                let verdict = gate.check(remote, &request, &metrics, std::time::Instant::now());
                request.extensions_mut().insert(Remote(remote));
                request
                    .extensions_mut()
                    .insert(BodyReading(activity.clone()));
                let mut service = service.clone();
                let activity = activity.clone();
                async move {
                    let response = match verdict {
                        Ok(()) => service.call(request).await?,
                        Err(refusal) => {
                            // The tarpit: the request (and its body) is dropped unread.
                            drop(request);
                            activity.held();
                            tokio::time::sleep(refusal.delay).await;
                            activity.serving();
                            refusal.response()
                        }
                    };
                    Ok::<_, Infallible>(response.map(|inner| Finished { inner, activity }))
                }
            })
        };
        let mut http = hyper::server::conn::http1::Builder::new();
        http.header_read_timeout(None).max_buf_size(MAX_HEAD_BYTES);
        let mut conn = pin!(watcher.watch(http.serve_connection(io, handler)));
        let dropped = loop {
            let (deadline, _) = activity.deadline(&config);
            tokio::select! {
                result = conn.as_mut() => {
                    if let Err(error) = result {
                        debug!(%remote, %error, "connection ended with an error");
                    }
                    break None;
                }
                // Counted by the table when it evicted the connection.
                () = admitted.evicted.notified() => break None,
                () = tokio::time::sleep_until(deadline) => {
                    let (deadline, reason) = activity.deadline(&config);
                    if deadline <= Instant::now() {
                        break Some(reason);
                    }
                }
            }
        };
        if let Some(reason) = dropped {
            debug!(%remote, reason, "connection dropped");
            metrics.edge.drop_connection(reason);
        }
        metrics.edge.connections_open.dec();
    }
}
