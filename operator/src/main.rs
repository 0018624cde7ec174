//! `mediachain-operator`: runs the MediachainPeer controller while holding the leader Lease,
//! and serves `/metrics`, `/healthz` and `/readyz`.
//!
//! Environment: `POD_NAMESPACE` (Lease namespace, default `default`), `POD_NAME` (Lease holder,
//! default the host name), `METRICS_ADDR` (default `0.0.0.0:8080`; port 0 binds
//! a free port, logged as the `addr` of "serving /metrics..."), `CLUSTER_DOMAIN` (default
//! `cluster.local`), `LEASE_NAME` (default `mediachain-operator`), `WATCH_NAMESPACE` (only that namespace; default
//! all), `HEIGHT_REFRESH_SECONDS` (live-status scrape cadence, default 20),
//! `INGRESS_TRUSTED_PROXIES` (comma-separated networks of the ingress controller's pods, trusted
//! by the peers of resources with an Ingress; default none), `OPERATOR_IMAGE` (this binary's
//! image, run by the peers' key init containers under `keyCustody: Pod`), `LOG_FORMAT=json`,
//! `RUST_LOG`.
//!
//! `mediachain-operator peer-key` and `mediachain-operator await-chain` are the init containers
//! of peer pods under `keyCustody: Pod` ([`mediachain_operator::peer_key`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use mediachain_operator::controller::{self, Context, Leadership};
use mediachain_operator::metrics::Metrics;
use mediachain_operator::reconcile::{proxies, Settings};
use mediachain_operator::telemetry;

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

fn main() -> std::process::ExitCode {
    // In a peer's pod (`keyCustody: Pod`): `peer-key` and `await-chain` init containers.
    let args: Vec<String> = std::env::args().collect();
    if let Some(code) = mediachain_operator::peer_key::run_subcommand(&args) {
        return code;
    }
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(operator()),
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn operator() -> std::process::ExitCode {
    telemetry::init_logging();
    // Started by a test with a lifeline: exit with the test process (docs/testing.md).
    mediachain::lifeline::arm(Duration::ZERO, || {});
    let addr: SocketAddr = match env_or("METRICS_ADDR", "0.0.0.0:8080").parse() {
        Ok(addr) => addr,
        Err(e) => {
            tracing::error!(error = %e, "METRICS_ADDR is not an address");
            return std::process::ExitCode::from(2);
        }
    };
    let client = match kube::Client::try_default().await {
        Ok(client) => client,
        Err(e) => {
            tracing::error!(error = %e, "no Kubernetes client configuration");
            return std::process::ExitCode::from(2);
        }
    };
    let metrics = Arc::new(Metrics::default());
    // Bound here so that port 0 works: the bound address is logged (tests read it).
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(listener) => listener,
        Err(e) => {
            tracing::error!(error = %e, %addr, "cannot bind METRICS_ADDR");
            return std::process::ExitCode::from(2);
        }
    };
    match listener.local_addr() {
        Ok(bound) => tracing::info!(addr = %bound, "serving /metrics, /healthz and /readyz"),
        Err(e) => tracing::warn!(error = %e, "serving /metrics, /healthz and /readyz"),
    }
    tokio::spawn(telemetry::serve(listener, metrics.clone()));

    let holder = std::env::var("POD_NAME")
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| format!("mediachain-operator-{}", std::process::id()));
    let leadership = Leadership::new(
        client.clone(),
        &env_or("POD_NAMESPACE", "default"),
        &env_or("LEASE_NAME", "mediachain-operator"),
        &holder,
        Duration::from_secs(15),
    );
    tracing::info!(%holder, "waiting for the leader Lease");
    tokio::select! {
        () = leadership.acquire() => {}
        _ = tokio::signal::ctrl_c() => return std::process::ExitCode::SUCCESS,
    }
    metrics.leader.set(1);
    tracing::info!(%holder, "leading");

    let height_refresh = match std::env::var("HEIGHT_REFRESH_SECONDS") {
        Ok(text) => match text.parse::<u64>() {
            Ok(secs) if secs > 0 => Duration::from_secs(secs),
            _ => {
                tracing::error!(%text, "HEIGHT_REFRESH_SECONDS must be a positive number of seconds");
                return std::process::ExitCode::from(2);
            }
        },
        Err(_) => mediachain_operator::reconcile::HEIGHT_REFRESH,
    };
    let ingress_trusted_proxies: Vec<String> = env_or("INGRESS_TRUSTED_PROXIES", "")
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(String::from)
        .collect();
    if let Err(e) = proxies::check("INGRESS_TRUSTED_PROXIES", &ingress_trusted_proxies) {
        tracing::error!(error = %e, "INGRESS_TRUSTED_PROXIES is not a list of networks");
        return std::process::ExitCode::from(2);
    }
    let settings = Settings {
        cluster_domain: env_or("CLUSTER_DOMAIN", "cluster.local"),
        height_refresh,
        metrics_url: None,
        ingress_trusted_proxies,
        operator_image: std::env::var("OPERATOR_IMAGE")
            .ok()
            .filter(|i| !i.is_empty()),
        operator_namespace: Some(env_or("POD_NAMESPACE", "default")),
        ..Settings::default()
    };
    let namespace = std::env::var("WATCH_NAMESPACE")
        .ok()
        .filter(|ns| !ns.is_empty());
    tracing::info!(
        namespace = namespace.as_deref().unwrap_or("(all)"),
        "watching"
    );
    let ctx = Arc::new(Context::new(client, metrics.clone(), settings).with_namespace(namespace));
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let controller = tokio::spawn(controller::run(ctx, async move {
        let _ = stop_rx.await;
    }));
    let code = tokio::select! {
        () = leadership.hold() => {
            tracing::error!("lost the leader Lease; exiting so that another replica leads");
            std::process::ExitCode::FAILURE
        }
        _ = shutdown_signal() => std::process::ExitCode::SUCCESS,
    };
    metrics.leader.set(0);
    let _ = stop_tx.send(());
    let _ = tokio::time::timeout(Duration::from_secs(20), controller).await;
    leadership.step_down().await;
    code
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        if let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
