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
//! - [`cli`]: the `mediachain-peer export` and `import` subcommands.
//!
//! Export only reads; import never touches an existing datastore.

#[cfg(feature = "client")]
pub mod cli;
pub mod export;
pub mod import;
pub mod walk;

pub use export::{root_at, write_car, ExportError, ExportReport};
pub use import::{import_car, ImportError, ImportProgress, ImportReport};
