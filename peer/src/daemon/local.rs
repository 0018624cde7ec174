//! A single in-process peer on loopback: for tests, benchmarks and examples.
//!
//! It builds a fresh trust tower (root -> principal -> this peer), opens a real sled store in the
//! given directory and starts the real [`Daemon`]: the overlay listening on `127.0.0.1:0` without
//! seeds (a network of one, ready and synced by itself), the same commit loop with its sync
//! guard, and the API on `127.0.0.1:0`. Only the configuration files are missing.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use libp2p::multiaddr::Protocol;
use libp2p::Multiaddr;

use super::{Daemon, DaemonError, DaemonSpec};
use crate::api::ApiConfig;
use crate::journal::Rules;
use crate::node::metrics::Metrics;
use crate::node::overlay::{OverlayConfig, OverlayHandle};
use crate::node::{Health, Node, NodeParams};
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
    /// Run the daemon's commit loop (otherwise the caller commits with `node.try_commit()`).
    pub auto_commit: bool,
    /// Keep a query index (in `<dir>/search`).
    pub search: bool,
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
            search: true,
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
    /// Its overlay's command handle.
    pub overlay: OverlayHandle,
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
    daemon: Daemon,
}

/// Why a local peer did not start.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    /// The daemon did not start.
    #[error(transparent)]
    Daemon(#[from] DaemonError),
    /// The store did not open.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
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
            mempool_bytes: usize::MAX,
            network_params: None,
        };
        let mut rules = Rules::new(
            &options.network,
            root.public(),
            options.transaction_pow_bits,
        );
        // A block is an object of the store: it must fit the store's limit.
        rules.max_block_bytes = rules.max_block_bytes.min(options.max_object_size);
        let store = Store::open(dir, options.max_object_size)?;
        let listen = Multiaddr::empty()
            .with(Protocol::Ip4(Ipv4Addr::LOCALHOST))
            .with(Protocol::Tcp(0));
        let daemon = Daemon::start(DaemonSpec {
            params,
            key: peer.clone(),
            chain: l1.clone(),
            rules,
            store,
            overlay: OverlayConfig {
                listen,
                external_address: None,
                seeds: vec![],
                seeds_file: None,
                target_connectivity: 3,
                limits: Default::default(),
            },
            api_listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            api: options.api,
            commit: options.auto_commit,
            search_dir: options.search.then(|| dir.join("search")),
        })
        .await?;
        let addr = daemon.api_addr;
        Ok(Self {
            addr,
            url: format!("http://{addr}"),
            node: daemon.node.clone(),
            overlay: daemon.overlay.clone(),
            metrics: daemon.metrics.clone(),
            health: daemon.health.clone(),
            root,
            principal: (principal, l0),
            peer: (peer, l1),
            daemon,
        })
    }

    /// Stops serving and committing, and flushes the store.
    pub async fn stop(self) {
        if let Err(error) = self.daemon.stop().await {
            tracing::warn!(%error, "local peer did not stop cleanly");
        }
    }
}
