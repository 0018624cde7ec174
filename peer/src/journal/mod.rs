//! The Journal blockchain (DESIGN sections 3 and 4), as pure, deterministic protocol logic.
//!
//! - [`transaction`]: a client's signed entries with a proof of work;
//! - [`block`]: signed blocks and the deterministic genesis;
//! - `encode`: their canonical DAG-CBOR and that of transactions, written straight into one
//!   buffer (the bytes of their serde form);
//! - [`verify`]: stateless rules and typed rejections;
//! - [`evidence`]: proof of misbehaviour found in blocks (a committer's two blocks on one parent);
//! - [`vote`] and [`finality`]: members' signed Casper FFG votes and the accounting that makes
//!   checkpoints justified and final;
//! - [`certificate`]: the finality certificate a block carries, recording finality on the chain;
//! - [`merge`]: from transactions to entries — duplicates collapse, conflicts merge;
//! - [`index`]: canonical -> head, with per-block deltas for rollback;
//! - [`fork`]: the committer rotation and fork choice;
//! - [`membership`]: members, seats and revocations as a function of the chain's records;
//! - [`timing`]: seats and the commit timing every receiver enforces under network parameters;
//! - [`ledger`]: the state machine tying them together (apply, reorganise, orphans);
//! - [`rebuild`]: the index from nothing but the newest block and the datastore.
//!
//! Nothing here touches the network; storage is reached only through the [`index::Index`] and
//! [`objects::Objects`] traits.

pub mod block;
mod block_bytes;
pub mod certificate;
mod encode;
pub mod evidence;
pub mod finality;
pub mod fork;
pub mod index;
pub mod ledger;
pub mod membership;
pub mod merge;
pub mod objects;
pub mod rebuild;
mod serde_entry;
pub mod timing;
pub mod transaction;
pub mod verify;
pub mod vote;

pub use block::Block;
pub use fork::{Schedule, TipScore};
pub use index::{Delta, Index, IndexRead, MemIndex};
pub use ledger::{Added, Journal, JournalError};
pub use objects::{MemObjects, Objects};
pub use transaction::{Transaction, TxId};
pub use verify::{BlockRejection, Rules, TxRejection};

#[cfg(test)]
pub(crate) mod tests;
