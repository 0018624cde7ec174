//! Backups, restores and fast bootstrap: the journal as a CAR v1 file, the archive format of
//! IPFS. Its root is a block; it holds every block down to genesis and the objects their
//! transactions reference, each under its CIDv1, so one file is at once a backup, the image a
//! new peer starts from, and an export any IPFS tool reads.
//!
//! - [`walk`]: what an export holds, in order (pure over the journal's object store);
//! - [`export`]: writing it as CAR v1 (iroh-car) to a file or an HTTP response, in bounded
//!   memory;
//! - [`import`]: verifying a file completely and installing it into an empty data directory,
//!   atomically;
//! - [`cli`]: the `mediachain-peer export` and `import` subcommands;
//! - [`scheduled`]: `mediachain-peer backup`, one run of a scheduled backup (export, keep the
//!   newest N, report as JSON);
//! - [`report`]: that report (without the node feature: the operator reads it).
//!
//! Export only reads; import never touches an existing datastore.

#[cfg(all(feature = "node", feature = "client"))]
pub mod cli;
#[cfg(feature = "node")]
pub mod export;
#[cfg(feature = "node")]
pub mod import;
pub mod report;
#[cfg(all(feature = "node", feature = "client"))]
pub mod scheduled;
#[cfg(feature = "node")]
pub mod walk;

#[cfg(feature = "node")]
pub use export::{root_at, write_car, ExportError, ExportReport};
#[cfg(feature = "node")]
pub use import::{import_car, ImportError, ImportProgress, ImportReport};
