//! Mediachain at scale: the tier-1 peer library.
//!
//! Layered bottom-up, every dependency pointing down:
//! - [`model`]: the datastore objects, their DAG-CBOR encoding and CIDv1 names;
//! - [`trust`]: keys, the certificate tower, revocation lists and proof of work;
//! - [`store`]: the sled-backed content-addressed datastore (feature `store`).
//!
//! The protocol layers (`model`, `trust`) are pure: no I/O beyond reading and writing the
//! files a caller names, so the operator can depend on them without sled, libp2p or warp.

#[cfg(feature = "node")]
pub mod api;
#[cfg(any(feature = "client", feature = "node"))]
pub mod client;
pub mod journal;
pub mod model;
#[cfg(feature = "node")]
pub mod node;
#[cfg(feature = "store")]
pub mod store;
pub mod time;
pub mod trust;
