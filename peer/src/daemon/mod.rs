//! The peer daemon: one [`Node`], its overlay, its commit loop and its HTTP API, started and
//! stopped together. The `mediachain-peer` binary, the in-process [`local::LocalPeer`] of the
//! tests and the benchmarks all run this same code, so the commit loop's sync guard and the
//! overlay's readiness hold everywhere.
//!
//! The daemon wires the layers below it and decides nothing itself: the node decides what to
//! commit, the overlay what to tell peers, the API what to answer clients.

pub mod local;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::api::{self, Api, ApiConfig};
use crate::journal::Rules;
use crate::node::config::Config;
use crate::node::metrics::Metrics;
use crate::node::overlay::{Overlay, OverlayConfig, OverlayError, OverlayHandle};
use crate::node::{Health, Node, NodeError, NodeParams};
use crate::search::SearchService;
use crate::store::{Store, StoreError};
use crate::trust::{Chain, SecretKey};

/// How often the commit loop asks the node whether a block is due.
pub const COMMIT_TICK: Duration = Duration::from_millis(50);
/// How long a stopping daemon waits for its tasks before it flushes anyway.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// Pending transactions a peer holds (~1.5 KiB each in memory). Beyond, submissions are
/// refused as busy (503): under overload a peer pushes back instead of growing past its
/// memory budget.
pub const MEMPOOL_CAPACITY: usize = 50_000;
/// Encoded bytes of pending transactions a peer holds (a fleet bench transaction: ~860 bytes
/// encoded, ~1.5 KiB decoded; 16 MiB is ~10 s of full blocks at today's rates): bounds the
/// backlog of large transactions, or of many under overload, to the peer's memory budget.
/// Beyond, submissions are refused as busy (503 with `Retry-After`).
pub const MEMPOOL_BYTES: usize = 16 * 1024 * 1024;

/// Everything a daemon is started from.
#[derive(Clone)]
pub struct DaemonSpec {
    /// Protocol parameters of the node.
    pub params: NodeParams,
    /// The peer's key.
    pub key: SecretKey,
    /// The peer's Level-1 chain.
    pub chain: Chain,
    /// The verification rules (root, revocations, difficulty).
    pub rules: Rules,
    /// The opened datastore.
    pub store: Store,
    /// The overlay's addresses, seeds and connectivity target.
    pub overlay: OverlayConfig,
    /// Where the HTTP API listens (port 0: any).
    pub api_listen: SocketAddr,
    /// The HTTP API's settings.
    pub api: ApiConfig,
    /// Run the commit loop (off only in tests that commit by hand with `Node::try_commit`).
    pub commit: bool,
    /// Where the query index lives (`<data-dir>/search`); `None` runs without one (benchmarks
    /// of other parts: `/v1/search` then answers 503).
    pub search_dir: Option<PathBuf>,
}

impl DaemonSpec {
    /// The spec of a `mediachain-peer run` configuration, over its opened `store`, serving the
    /// API with `api` (see [`ApiConfig::from_env`]).
    pub fn from_config(config: &Config, store: Store, api: ApiConfig) -> Self {
        Self {
            params: NodeParams {
                network: config.network.clone(),
                block_interval: config.block_interval,
                commit_timeout: config.commit_timeout,
                registration_pow_bits: config.registration_pow_bits,
                transaction_pow_bits: config.transaction_pow_bits,
                client_cert_validity: 90 * 24 * 3600,
                mempool_capacity: MEMPOOL_CAPACITY,
                mempool_bytes: MEMPOOL_BYTES,
                network_params: config.params.clone(),
            },
            key: config.key.clone(),
            chain: config.chain.clone(),
            rules: config.rules(),
            store,
            overlay: OverlayConfig::from_config(config),
            api_listen: config.api_listen,
            api,
            commit: true,
            search_dir: config.search.then(|| config.data_dir.join("search")),
        }
    }
}

/// Why a daemon did not start or stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The journal or datastore failed to open.
    #[error("opening the journal: {0}")]
    Node(#[from] NodeError),
    /// The overlay did not start.
    #[error(transparent)]
    Overlay(#[from] OverlayError),
    /// The HTTP API could not listen.
    #[error("api-listen {addr}: {source}")]
    Listen {
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The query index could not be opened.
    #[error("opening the search index: {0}")]
    Search(#[from] crate::search::SearchError),
    /// The final flush failed.
    #[error("flushing the datastore: {0}")]
    Flush(#[from] StoreError),
}

/// A running peer.
pub struct Daemon {
    /// The node.
    pub node: Arc<Node>,
    /// The overlay's command handle.
    pub overlay: OverlayHandle,
    /// The metrics served at `/metrics`.
    pub metrics: Arc<Metrics>,
    /// Readiness and the commit gate.
    pub health: Arc<Health>,
    /// Where the HTTP API listens.
    pub api_addr: SocketAddr,
    store: Store,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

/// Resolves once `stop` says so (or its sender is gone).
async fn stopped(mut stop: watch::Receiver<bool>) {
    while !*stop.borrow_and_update() {
        if stop.changed().await.is_err() {
            return;
        }
    }
}

impl Daemon {
    /// Opens the journal, starts the overlay, the commit loop and the HTTP API (call inside a
    /// Tokio runtime).
    pub async fn start(spec: DaemonSpec) -> Result<Self, DaemonError> {
        let node = Node::open(
            spec.params,
            spec.key,
            spec.chain.clone(),
            spec.rules,
            spec.store.clone(),
        )?;
        let metrics = Arc::new(Metrics::new());
        let health = Arc::new(Health::default());
        if let Some(expiry) = spec.chain.0.iter().map(|c| c.body.not_after).min() {
            metrics
                .certificate_expiry
                .set(i64::try_from(expiry).unwrap_or(i64::MAX));
        }
        let (tip, height) = node.tip()?;
        metrics
            .journal_height
            .set(i64::try_from(height).unwrap_or(i64::MAX));
        info!(peer = %node.public_key(), network = %node.params().network, %tip, height, "peer starting");

        let (stop, stop_rx) = watch::channel(false);
        let (overlay, handle) =
            Overlay::new(node.clone(), metrics.clone(), health.clone(), spec.overlay)?;
        let mut tasks = vec![tokio::spawn(overlay.run(stopped(stop_rx.clone())))];
        if spec.commit {
            tasks.push(tokio::spawn(commit_loop(
                node.clone(),
                health.clone(),
                handle.clone(),
                metrics.clone(),
                stop_rx.clone(),
            )));
        }
        let listener = tokio::net::TcpListener::bind(spec.api_listen)
            .await
            .map_err(|source| DaemonError::Listen {
                addr: spec.api_listen,
                source,
            })?;
        let api_addr = listener
            .local_addr()
            .map_err(|source| DaemonError::Listen {
                addr: spec.api_listen,
                source,
            })?;
        tasks.push(tokio::spawn(api::storage::collect_loop(
            node.clone(),
            metrics.clone(),
            spec.api.upload_grace,
            stop_rx.clone(),
        )));
        let search = match &spec.search_dir {
            Some(dir) => {
                let search = SearchService::open(dir)?;
                tasks.push(tokio::spawn(
                    search.clone().follow(node.clone(), stop_rx.clone()),
                ));
                Some(search)
            }
            None => None,
        };
        let routes = api::routes(Api::new(
            node.clone(),
            handle.clone(),
            metrics.clone(),
            health.clone(),
            spec.api,
            search,
        ));
        tasks.push(tokio::spawn(api::serve_listener(
            listener,
            routes,
            stopped(stop_rx),
        )));
        Ok(Self {
            node,
            overlay: handle,
            metrics,
            health,
            api_addr,
            store: spec.store,
            stop,
            tasks,
        })
    }

    /// Leaves the overlay, stops committing and serving (waiting at most [`STOP_TIMEOUT`]),
    /// then flushes the datastore.
    pub async fn stop(mut self) -> Result<(), DaemonError> {
        self.health.set_ready(false);
        self.health.set_synced(false);
        let _ = self.stop.send(true);
        let tasks = std::mem::take(&mut self.tasks);
        let aborts: Vec<_> = tasks.iter().map(JoinHandle::abort_handle).collect();
        if tokio::time::timeout(STOP_TIMEOUT, futures::future::join_all(tasks))
            .await
            .is_err()
        {
            warn!("tasks did not stop in time: aborting them");
            aborts.iter().for_each(tokio::task::AbortHandle::abort);
        }
        self.store.flush()?;
        Ok(())
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Every [`COMMIT_TICK`], while the overlay reports the peer synced (a peer behind would fork the
/// chain from an old height), asks the node for a block and has the overlay announce it.
pub async fn commit_loop(
    node: Arc<Node>,
    health: Arc<Health>,
    overlay: OverlayHandle,
    metrics: Arc<Metrics>,
    stop: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(COMMIT_TICK);
    let stop = stopped(stop);
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => return,
            _ = tick.tick() => {}
        }
        if !health.is_synced() {
            continue;
        }
        let node = node.clone();
        match tokio::task::spawn_blocking(move || node.try_commit()).await {
            Ok(Ok(Some(block))) => {
                metrics.blocks_committed.inc();
                overlay.announce(block).await;
            }
            Ok(Ok(None)) => {}
            Ok(Err(error)) => warn!(%error, "commit failed"),
            Err(error) => warn!(%error, "commit task failed"),
        }
    }
}
