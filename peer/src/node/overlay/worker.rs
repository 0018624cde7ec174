//! The verification worker: decodes and verifies what peers send (gossiped transaction
//! batches, blocks) on a thread of its own, in arrival order, so the swarm task keeps serving
//! pings, gossip and sync while a large block is verified. Its queue is bounded; when it is
//! full, gossip is dropped (sync repairs what gossip loses) and blocks wait in the swarm task.

use std::sync::Arc;

use libp2p::gossipsub::MessageId;
use libp2p::PeerId;
use tokio::sync::mpsc;
use tracing::{info_span, warn};

use super::protocol;
use crate::journal::{TxId, TxRejection};
use crate::node::{BlockBundle, Node, NodeError, ReceivedBlock, TxBundle};

/// Jobs the worker may hold before gossip is dropped.
pub const QUEUE: usize = 64;

/// Work for the worker.
#[derive(Debug)]
pub enum Job {
    /// A gossiped batch of transactions (still encoded).
    Txs {
        /// The peer that forwarded it.
        source: PeerId,
        /// Its gossip id (for the validation verdict).
        message: MessageId,
        /// The encoded `Vec<TxBundle>`.
        data: Vec<u8>,
    },
    /// A block from sync or gossip.
    Block {
        /// The peer that sent it.
        peer: PeerId,
        /// The block with its objects.
        bundle: BlockBundle,
    },
}

/// One gossiped transaction: admitted, refused, or a storage failure.
pub type TxResult = Result<Result<TxId, TxRejection>, NodeError>;

/// What the worker made of a job.
#[derive(Debug)]
pub enum Outcome {
    /// A transaction batch: `None` if it did not decode, else one result per transaction.
    Txs {
        /// The peer that forwarded it.
        source: PeerId,
        /// Its gossip id.
        message: MessageId,
        /// Per transaction.
        results: Option<Vec<TxResult>>,
    },
    /// A block.
    Block {
        /// The peer that sent it.
        peer: PeerId,
        /// The bundle (kept for a block that waits for its parent).
        bundle: BlockBundle,
        /// What the node made of it.
        received: Box<Result<ReceivedBlock, NodeError>>,
    },
}

/// Starts the worker thread; it stops when the returned sender is dropped.
pub fn spawn(
    node: Arc<Node>,
) -> std::io::Result<(mpsc::Sender<Job>, mpsc::UnboundedReceiver<Outcome>)> {
    let (jobs, mut queue) = mpsc::channel::<Job>(QUEUE);
    let (outcomes, results) = mpsc::unbounded_channel();
    std::thread::Builder::new()
        .name("verifier".into())
        .spawn(move || {
            while let Some(job) = queue.blocking_recv() {
                if outcomes.send(run(&node, job)).is_err() {
                    return;
                }
            }
        })?;
    Ok((jobs, results))
}

fn run(node: &Node, job: Job) -> Outcome {
    match job {
        Job::Txs {
            source,
            message,
            data,
        } => {
            let _span = info_span!("gossip_txs", %source).entered();
            let results = protocol::decode::<Vec<TxBundle>>(&data)
                .ok()
                .map(|bundles| node.receive_txs(bundles));
            Outcome::Txs {
                source,
                message,
                results,
            }
        }
        Job::Block { peer, bundle } => {
            let _span = info_span!("peer_block", %peer).entered();
            let received = node.receive_block(&bundle);
            if let Err(e) = &received {
                warn!(error = %e, "storage failure while adding a block");
            }
            Outcome::Block {
                peer,
                bundle,
                received: Box::new(received),
            }
        }
    }
}
