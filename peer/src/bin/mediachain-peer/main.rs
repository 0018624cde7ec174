//! `mediachain-peer`: the long-lived tier-1 peer of a Mediachain network.
//!
//! `mediachain-peer run` loads its key, Level-1 chain and the pinned root, opens the datastore and
//! journal in the data directory, joins the overlay from its seeds, commits blocks in its turn
//! and serves the client API with `/healthz`, `/readyz` and `/metrics`. SIGTERM (or Ctrl-C)
//! flushes, leaves the overlay and exits 0. The deployment contract is docs/peer-contract.md.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use mediachain::api::ApiConfig;
use mediachain::daemon::{Daemon, DaemonSpec};
use mediachain::node::config::{Config, RunArgs};
use mediachain::store::Store;
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
    /// Write the journal to a CAR v1 file (backup, bootstrap image, IPFS export).
    Export(mediachain::backup::cli::ExportArgs),
    /// Verify a CAR export completely and install it into an empty data directory.
    Import(mediachain::backup::cli::ImportArgs),
    /// One scheduled backup: export a peer's journal into a directory, keep the newest N, report
    /// the outcome as one JSON line (the operator's backup CronJob).
    Backup(mediachain::backup::scheduled::BackupArgs),
}

/// The log filter when `MEDIACHAIN_LOG` is unset. One line per HTTP request (warp's
/// `processing request`) would cost more than the request under load, and warp logs every 5xx,
/// a `/readyz` 503 included, at ERROR: its request log is off (internal failures are logged by
/// the API itself); add `warp::filters::trace=info` to see it.
const DEFAULT_LOG: &str = "info,libp2p_gossipsub=error,libp2p_swarm=warn,warp::filters::trace=off";

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

/// Waits for SIGTERM, Ctrl-C or the closing of the lifeline (`parent_gone`, see
/// `mediachain::lifeline`; it never fires when the lifeline is not armed).
async fn shutdown_signal(parent_gone: tokio::sync::oneshot::Receiver<()>) {
    let parent_gone = async {
        if parent_gone.await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {},
                    _ = term.recv() => {},
                    () = parent_gone => {},
                }
            }
            Err(_) => {
                tokio::select! {
                    _ = ctrl_c => {},
                    () = parent_gone => {},
                }
            }
        }
    }
    #[cfg(not(unix))]
    tokio::select! {
        _ = ctrl_c => {},
        () = parent_gone => {},
    }
}

/// How long a peer whose lifeline closed may take to leave the overlay and flush before it exits
/// anyway.
const LIFELINE_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

fn main() -> ExitCode {
    init_tracing();
    // Started with a lifeline (by a test or `mediachain devnet`): shut down when the parent dies.
    let (parent_gone_tx, parent_gone) = tokio::sync::oneshot::channel();
    mediachain::lifeline::arm(LIFELINE_GRACE, move || {
        let _ = parent_gone_tx.send(());
    });
    let cli = Cli::parse();
    let (args, check_only) = match cli.command {
        Command::Run(args) => (args, false),
        Command::Check(args) => (args, true),
        Command::Export(args) => return mediachain::backup::cli::export(args),
        Command::Import(args) => return mediachain::backup::cli::import(args),
        Command::Backup(args) => return mediachain::backup::scheduled::backup(args),
    };
    let config = match args.validate() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let api = match ApiConfig::from_env() {
        Ok(api) => api,
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
    match runtime.block_on(run(config, api, parent_gone)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("{e}");
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

async fn run(
    config: Config,
    api: ApiConfig,
    parent_gone: tokio::sync::oneshot::Receiver<()>,
) -> Result<(), String> {
    std::fs::create_dir_all(&config.data_dir)
        .map_err(|e| format!("data directory {}: {e}", config.data_dir.display()))?;
    let store = Store::open(&config.data_dir.join("store"), config.max_object_size)
        .map_err(|e| e.to_string())?;
    let daemon = Daemon::start(DaemonSpec::from_config(&config, store, api))
        .await
        .map_err(|e| e.to_string())?;
    // Where `mediachain-peer export --data-dir` finds this peer while it holds the datastore.
    if let Err(e) = mediachain::backup::cli::record_api_address(&config.data_dir, daemon.api_addr) {
        warn!(error = %e, "cannot record the API address in the data directory");
    }
    shutdown_signal(parent_gone).await;
    info!("shutting down: leaving the overlay and flushing");
    daemon.stop().await.map_err(|e| e.to_string())?;
    info!("stopped");
    Ok(())
}
