//! `mediachain-peer`: the long-lived tier-1 peer of a Mediachain network.
//!
//! `mediachain-peer run` loads its key, Level-1 chain and the pinned root, opens the datastore and
//! journal in the data directory, joins the overlay from its seeds, commits blocks in its turn
//! and serves the client API with `/healthz`, `/readyz` and `/metrics`. SIGTERM (or Ctrl-C)
//! flushes, leaves the overlay and exits 0. The deployment contract is docs/peer-contract.md.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use mediachain::journal::Rules;
use mediachain::node::config::{Config, RunArgs};
use mediachain::node::metrics::Metrics;
use mediachain::node::overlay::{Overlay, OverlayConfig};
use mediachain::node::{Health, Node, NodeParams};
use mediachain::store::Store;
use tokio::sync::watch;
use tracing::{error, info, warn};

/// The Mediachain peer daemon.
#[derive(Parser)]
#[command(
    name = "mediachain-peer",
    version,
    after_help = "Exit codes: 0 clean shutdown, 1 runtime failure, 2 invalid configuration.\nLogs: MEDIACHAIN_LOG (e.g. info, debug), MEDIACHAIN_LOG_FORMAT=json."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the peer until SIGTERM. Every flag also reads the environment variable shown.
    Run(RunArgs),
    /// Validate the configuration (load every file, verify the certificate) and exit.
    Check(RunArgs),
}

/// Pending transactions a peer holds (~1.5 KiB each in memory). Beyond, submissions are
/// refused as busy (503): under overload a peer pushes back instead of growing past its
/// memory budget.
const MEMPOOL_CAPACITY: usize = 50_000;

/// The log filter when `MEDIACHAIN_LOG` is unset. One line per HTTP request (warp's
/// `processing request`) would cost more than the request under load: add
/// `warp::filters::trace=info` to see them.
const DEFAULT_LOG: &str = "info,libp2p_gossipsub=error,libp2p_swarm=warn,warp::filters::trace=warn";

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("MEDIACHAIN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_LOG));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    if std::env::var("MEDIACHAIN_LOG_FORMAT").as_deref() == Ok("json") {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {},
                    _ = term.recv() => {},
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

fn main() -> ExitCode {
    init_tracing();
    let cli = Cli::parse();
    let (args, check_only) = match cli.command {
        Command::Run(args) => (args, false),
        Command::Check(args) => (args, true),
    };
    let config = match args.validate() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    if check_only {
        println!(
            "configuration is valid: peer {} on network `{}`",
            config.key.public(),
            config.network
        );
        return ExitCode::SUCCESS;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("{e}");
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

async fn run(config: Config) -> Result<(), String> {
    let store_dir = config.data_dir.join("store");
    std::fs::create_dir_all(&config.data_dir)
        .map_err(|e| format!("data directory {}: {e}", config.data_dir.display()))?;
    let store = Store::open(&store_dir, config.max_object_size).map_err(|e| e.to_string())?;
    let mut rules = Rules::new(&config.network, config.root, config.transaction_pow_bits);
    rules.revocations = config.revocations.clone();
    let params = NodeParams {
        network: config.network.clone(),
        block_interval: config.block_interval,
        commit_timeout: config.commit_timeout,
        registration_pow_bits: config.registration_pow_bits,
        transaction_pow_bits: config.transaction_pow_bits,
        client_cert_validity: 90 * 24 * 3600,
        mempool_capacity: MEMPOOL_CAPACITY,
    };
    let node = Node::open(
        params,
        config.key.clone(),
        config.chain.clone(),
        rules,
        store.clone(),
    )
    .map_err(|e| e.to_string())?;
    let metrics = Arc::new(Metrics::new());
    let health = Arc::new(Health::default());
    if let Some(expiry) = config.chain.0.iter().map(|c| c.body.not_after).min() {
        metrics
            .certificate_expiry
            .set(i64::try_from(expiry).unwrap_or(i64::MAX));
    }
    let (tip, height) = node.tip().map_err(|e| e.to_string())?;
    metrics.journal_height.set(height as i64);
    info!(peer = %node.public_key(), network = %config.network, %tip, height, "peer starting");

    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.changed().await;
    };

    let overlay = Overlay::new(
        node.clone(),
        metrics.clone(),
        health.clone(),
        OverlayConfig::from_config(&config),
    )
    .map_err(|e| e.to_string())?;
    let overlay_task = tokio::spawn(overlay.run(stopped(stop_rx.clone())));

    // Commits only while synced: a peer behind would fork the chain from an old height.
    let committer = {
        let node = node.clone();
        let health = health.clone();
        let mut rx = stop_rx.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(50));
            loop {
                tokio::select! {
                    _ = rx.changed() => break,
                    _ = tick.tick() => {
                        if !health.is_synced() {
                            continue;
                        }
                        let node = node.clone();
                        match tokio::task::spawn_blocking(move || node.try_commit()).await {
                            Ok(Err(e)) => warn!(error = %e, "commit failed"),
                            Err(e) => warn!(error = %e, "commit task failed"),
                            Ok(Ok(_)) => {}
                        }
                    }
                }
            }
        })
    };

    let listener = tokio::net::TcpListener::bind(config.api_listen)
        .await
        .map_err(|e| format!("api-listen {}: {e}", config.api_listen))?;
    let routes = mediachain::api::routes(node.clone(), metrics.clone(), health.clone());
    let api_task = tokio::spawn(mediachain::api::serve_listener(
        listener,
        routes,
        stopped(stop_rx.clone()),
    ));

    shutdown_signal().await;
    info!("shutting down: leaving the overlay and flushing");
    health.set_ready(false);
    health.set_synced(false);
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        let _ = committer.await;
        let _ = overlay_task.await;
        let _ = api_task.await;
    })
    .await;
    store.flush().map_err(|e| e.to_string())?;
    info!("stopped");
    Ok(())
}
