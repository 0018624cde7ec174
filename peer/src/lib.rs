//! Mediachain at scale: the tier-1 peer library.
//!
//! Layered bottom-up, every dependency pointing down (a layer never names one above it):
//! - [`model`]: the datastore objects, their DAG-CBOR encoding and CIDv1 names;
//! - [`trust`]: keys, the certificate tower, revocation lists and proof of work;
//! - [`journal`]: the pure journal (transactions, blocks, verification, fork choice), over the
//!   storage traits it defines (`journal::objects::Objects`, `journal::index::Index`);
//! - [`network`]: the parameters every member of a network agrees on (name, root key, initial
//!   members, consensus settings) and the genesis block derived from them;
//! - `store`: the sled-backed content-addressed datastore, implementing those traits (feature
//!   `store`);
//! - `node`: the peer's state (`node::Node`) and its libp2p overlay: a pure peer policy
//!   (`node::overlay::policy`) joined to the node by an engine (`node::overlay::engine`) over a
//!   driver that owns the swarm (feature `node`);
//! - `search`: the query index every peer derives from its chain and datastore (tantivy);
//! - `api`, `client`: the HTTP API over a node, and its client library;
//! - `daemon`: node, overlay, commit loop and API wired together, the one loop every caller
//!   (the `mediachain-peer` binary, tests, benchmarks) runs.
//!
//! docs/architecture.md walks through the layers and the path of a transaction.
//!
//! The protocol layers (`model`, `trust`, `journal`, `network`) are pure: no I/O beyond reading
//! and writing the files a caller names, so the operator can depend on them without sled, libp2p
//! or warp.

#[cfg(feature = "node")]
pub mod api;
pub mod backup;
#[cfg(any(feature = "client", feature = "node"))]
pub mod client;
#[cfg(feature = "node")]
pub mod daemon;
pub mod journal;
pub mod lifeline;
pub mod model;
pub mod network;
#[cfg(feature = "node")]
pub mod node;
#[cfg(feature = "node")]
pub mod search;
#[cfg(feature = "store")]
pub mod store;
pub mod time;
pub mod trust;
