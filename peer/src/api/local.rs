//! A single in-process peer serving the API on loopback: for tests, benchmarks and examples.
//!
//! It builds a fresh trust tower (root -> principal -> this peer), opens a real sled store in the
//! given directory, serves the real routes on `127.0.0.1:0` and drives commits as the daemon's
//! commit loop does (`Node::try_commit` every 50 ms). A one-peer rotation commits on its own.
//! It is not a daemon: no overlay, no configuration files.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::{routes_with, serve_listener, ApiConfig};
use crate::journal::Rules;
use crate::node::metrics::Metrics;
use crate::node::{Health, Node, NodeError, NodeParams};
use crate::store::Store;
use crate::trust::{Certificate, Chain, Level, SecretKey};

/// Settings of a [`LocalPeer`].
#[derive(Debug, Clone)]
pub struct LocalOptions {
    /// Network name.
    pub network: String,
    /// Registration difficulty.
    pub registration_pow_bits: u8,
    /// Transaction difficulty.
    pub transaction_pow_bits: u8,
    /// Largest object.
    pub max_object_size: usize,
    /// Wait that collects transactions into a block.
    pub block_interval: Duration,
    /// Pending transactions the mempool holds.
    pub mempool_capacity: usize,
    /// API settings.
    pub api: ApiConfig,
    /// Run the commit loop (otherwise the caller commits with `node.try_commit()`).
    pub auto_commit: bool,
}

impl Default for LocalOptions {
    fn default() -> Self {
        Self {
            network: "local".into(),
            registration_pow_bits: 8,
            transaction_pow_bits: 4,
            max_object_size: 64 * 1024,
            block_interval: Duration::from_millis(50),
            mempool_capacity: 100_000,
            api: ApiConfig::unlimited(),
            auto_commit: true,
        }
    }
}

/// A running in-process peer.
pub struct LocalPeer {
    /// Where the API listens.
    pub addr: SocketAddr,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// The node.
    pub node: Arc<Node>,
    /// Its metrics.
    pub metrics: Arc<Metrics>,
    /// Its health.
    pub health: Arc<Health>,
    /// The network's root key.
    pub root: SecretKey,
    /// The Level-0 principal that certified the peer.
    pub principal: (SecretKey, Chain),
    /// The peer's key and Level-1 chain.
    pub peer: (SecretKey, Chain),
    shutdown: Option<oneshot::Sender<()>>,
    tasks: Vec<JoinHandle<()>>,
}

/// Why a local peer did not start.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    /// The store or journal failed.
    #[error(transparent)]
    Node(#[from] NodeError),
    /// The store did not open.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// The listener did not bind.
    #[error("cannot listen: {0}")]
    Io(#[from] std::io::Error),
}

impl LocalPeer {
    /// Starts a peer whose store lives in `dir` (call inside a Tokio runtime).
    pub async fn start(dir: &Path, options: LocalOptions) -> Result<Self, LocalError> {
        let root = SecretKey::generate();
        let principal = SecretKey::generate();
        let peer = SecretKey::generate();
        let forever = u64::MAX / 2;
        let l0 = Chain(vec![Certificate::issue(
            &root,
            principal.public(),
            Level::Principal,
            0,
            forever,
        )]);
        let l1 = Chain::extend(
            Certificate::issue(&principal, peer.public(), Level::Peer, 0, forever),
            &l0,
        );
        let params = NodeParams {
            network: options.network.clone(),
            block_interval: options.block_interval,
            commit_timeout: Duration::from_secs(5),
            registration_pow_bits: options.registration_pow_bits,
            transaction_pow_bits: options.transaction_pow_bits,
            client_cert_validity: 30 * 24 * 3600,
            mempool_capacity: options.mempool_capacity,
        };
        let mut rules = Rules::new(
            &options.network,
            root.public(),
            options.transaction_pow_bits,
        );
        // A block is an object of the store: it must fit the store's limit.
        rules.max_block_bytes = rules.max_block_bytes.min(options.max_object_size);
        let store = Store::open(dir, options.max_object_size)?;
        let node = Node::open(params, peer.clone(), l1.clone(), rules, store)?;
        let metrics = Arc::new(Metrics::new());
        let health = Arc::new(Health::default());
        health.set_ready(true);
        health.set_synced(true);
        let routes = routes_with(node.clone(), metrics.clone(), health.clone(), options.api);
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let (shutdown, signal) = oneshot::channel::<()>();
        let server = tokio::spawn(serve_listener(listener, routes, async move {
            let _ = signal.await;
        }));
        let mut tasks = vec![server];
        if options.auto_commit {
            tasks.push(Self::commit_loop(node.clone()));
        }
        Ok(Self {
            addr,
            url: format!("http://{addr}"),
            node,
            metrics,
            health,
            root,
            principal: (principal, l0),
            peer: (peer, l1),
            shutdown: Some(shutdown),
            tasks,
        })
    }

    /// What the daemon's commit loop does: `try_commit` every 50 ms.
    fn commit_loop(node: Arc<Node>) -> JoinHandle<()> {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(50));
            loop {
                tick.tick().await;
                let node = node.clone();
                let _ = tokio::task::spawn_blocking(move || {
                    if let Err(error) = node.try_commit() {
                        tracing::error!(%error, "commit failed");
                    }
                })
                .await;
            }
        })
    }

    /// Stops serving and committing.
    pub async fn stop(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        for task in self.tasks.drain(..) {
            task.abort();
            let _ = task.await;
        }
    }
}

impl Drop for LocalPeer {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}
