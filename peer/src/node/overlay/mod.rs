//! The overlay: the peer's libp2p network around a [`Node`](super::Node), split into a pure peer
//! policy and a thin driver.
//!
//! - [`policy`] decides everything about peers (admission state, strikes and bans, claimed
//!   heights and what is verified of them, readiness and the commit gate, the N-cut neighbour
//!   selection, batching): inputs and `now` in, effects out, no I/O.
//! - The [`engine`] joins the policy to the node over an abstract transport: it answers
//!   requests, turns what arrives into policy inputs and executes the effects. The simulator
//!   runs the same engine over simulated links.
//! - The driver ([`Overlay`], in `driver`) owns the swarm ([`swarm`]) and is the engine's
//!   transport; the verification [`worker`] checks what peers send off the event loop; the
//!   rest of the peer talks to it through its command [`handle`].
//!
//! What the overlay does:
//! - **Admission**: on every new connection both sides exchange `Hello` with their Level-1
//!   chain; a peer whose chain does not verify for its PeerId (no certificate, wrong level,
//!   expired, revoked, unknown root) or whose genesis differs is refused, counted and
//!   disconnected. Nothing but a hello is taken from a peer before it is admitted; unadmitted
//!   connections are closed after [`policy::peers::ADMISSION_TIMEOUT`].
//! - **Membership**: peers gossip signed identity records; every peer learns every peer, and the
//!   known, fresh set is the committer rotation.
//! - **Connectivity**: each peer keeps its neighbours in the Harary graph over the membership
//!   ([`policy::connectivity`]), so the overlay survives any N failures with O(N) connections
//!   per peer; lost connections are redialled from records and seeds.
//! - **Sync**: a peer behind fetches canonical ranges, a block whose parent is unknown makes it
//!   fetch the parent (walking back to the fork point), and every block comes with the objects
//!   its transactions reference. Gossip is only a fast path; sync repairs what it drops.
//! - **Heights**: a height another peer claims counts for readiness and the commit gate only
//!   once the claimed block's header is verified ([`policy::heights`]).
//! - **Object fetch**: a submission referencing an object a client stored at another peer makes
//!   this peer ask its admitted peers for it, one after the other.
//! - **Misbehaviour**: invalid blocks or transactions, garbage and false claims earn strikes; at
//!   [`policy::peers::MAX_STRIKES`] the peer is disconnected and banned for
//!   [`policy::peers::BAN_TIME`].

mod driver;
pub mod engine;
pub mod handle;
pub mod pending;
pub mod policy;
pub mod protocol;
pub mod swarm;
pub mod worker;

use std::time::Duration;

use libp2p::Multiaddr;

use super::config::Config;
pub use driver::Overlay;
pub use handle::{Command, OverlayHandle};

/// How often a peer gossips its identity record.
pub const RECORD_INTERVAL: Duration = Duration::from_secs(5);

/// Why the overlay could not start.
#[derive(Debug, thiserror::Error)]
pub enum OverlayError {
    /// libp2p refused the setup.
    #[error("overlay setup: {0}")]
    Setup(String),
}

/// What the overlay needs from the configuration.
#[derive(Debug, Clone)]
pub struct OverlayConfig {
    /// Listen address.
    pub listen: Multiaddr,
    /// Advertised address.
    pub external_address: Option<Multiaddr>,
    /// Seeds.
    pub seeds: Vec<Multiaddr>,
    /// Seeds file (re-read).
    pub seeds_file: Option<std::path::PathBuf>,
    /// N of N-cut.
    pub target_connectivity: usize,
    /// Connection limits and the handshake timeout.
    pub limits: swarm::Limits,
}

impl OverlayConfig {
    /// The overlay part of a peer's configuration.
    pub fn from_config(config: &Config) -> Self {
        Self {
            listen: config.listen.clone(),
            external_address: config.external_address.clone(),
            seeds: config.seeds.clone(),
            seeds_file: config.seeds_file.clone(),
            target_connectivity: config.target_connectivity,
            limits: config.overlay_limits,
        }
    }
}
