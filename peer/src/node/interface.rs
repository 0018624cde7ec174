//! What the node takes and gives, apart from [`Node`](super::Node) itself: its protocol
//! parameters, the bundles peers exchange (a transaction or block with its objects), the
//! events of its canonical chain, a transaction's status, a received block's verdict and its
//! errors.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use crate::journal::{Added, Block, BlockRejection, JournalError, Transaction};
use crate::model::Cid;
use crate::store::StoreError;
use crate::time::UnixSeconds;

/// Protocol parameters of a node.
#[derive(Debug, Clone)]
pub struct NodeParams {
    /// Network name (the genesis is derived from it).
    pub network: String,
    /// Wait that collects transactions into a block.
    pub block_interval: Duration,
    /// After this, out-of-turn committers may commit.
    pub commit_timeout: Duration,
    /// Proof-of-work bits for client registration.
    pub registration_pow_bits: u8,
    /// Proof-of-work bits per transaction.
    pub transaction_pow_bits: u8,
    /// Validity of issued client certificates, in seconds.
    pub client_cert_validity: UnixSeconds,
    /// Most pending transactions.
    pub mempool_capacity: usize,
    /// Most encoded bytes of pending transactions together.
    pub mempool_bytes: usize,
    /// The network's parameters, when a file defines them (the genesis is derived from them);
    /// `None`: the genesis is derived from the network name alone.
    pub network_params: Option<crate::network::NetworkParams>,
}

impl NodeParams {
    /// The network's genesis block: from the parameters if any, else from the name.
    pub fn genesis(&self) -> Block {
        match &self.network_params {
            Some(params) => params.genesis(),
            None => Block::genesis(&self.network, vec![]),
        }
    }
}

/// A transaction with the objects it references, as gossiped between peers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TxBundle {
    /// The transaction.
    pub tx: Transaction,
    /// `(cid, bytes)` of every object its entries reference.
    pub objects: Vec<(Cid, ByteBuf)>,
}

impl BlockBundle {
    /// Bytes it holds (the block and its objects), what it weighs in memory while it waits.
    pub fn size(&self) -> usize {
        self.block.len() + self.objects.iter().map(|(_, o)| o.len()).sum::<usize>()
    }
}

/// A block with the objects its transactions reference, as fetched during sync.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BlockBundle {
    /// The block's canonical DAG-CBOR.
    #[serde(with = "serde_bytes")]
    pub block: Vec<u8>,
    /// `(cid, bytes)` of every object its transactions reference.
    pub objects: Vec<(Cid, ByteBuf)>,
}

/// A change of the canonical chain, for clients' view updates.
#[derive(Debug, Clone)]
pub enum NodeEvent {
    /// The canonical chain gained a block (clients' view updates).
    ChainExtended {
        /// The block's CID.
        cid: Cid,
        /// The block.
        block: Arc<Block>,
    },
    /// A checkpoint became final: it and every block below it on the chain never revert.
    Finalized {
        /// The final checkpoint.
        checkpoint: crate::journal::vote::Checkpoint,
    },
}

/// Where a transaction stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "camelCase")]
pub enum TxStatus {
    /// Waiting for a block.
    Pending,
    /// In the canonical chain.
    Committed {
        /// Block height.
        height: u64,
        /// Block CID.
        block: String,
    },
    /// In a final block of the canonical chain: never reverted.
    Final {
        /// Block height.
        height: u64,
        /// Block CID.
        block: String,
    },
    /// Refused (reason given).
    Rejected {
        /// Why.
        reason: String,
    },
    /// Never seen here.
    Unknown,
}

/// Why the node failed an operation.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The journal failed.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// The datastore failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The index failed.
    #[error(transparent)]
    Index(#[from] crate::journal::index::IndexError),
}

/// A peer's block as [`Node::receive_block`] took it.
#[derive(Debug)]
pub struct ReceivedBlock {
    /// Its CID and height (`None` when it did not decode).
    pub header: Option<(Cid, u64)>,
    /// Whether its header verifies (network, committer certificate, signature): true for every
    /// block the journal took, and checked on its own for a block waiting for its parent.
    pub header_valid: bool,
    /// What the journal made of it.
    pub outcome: Result<Added, BlockRejection>,
}
