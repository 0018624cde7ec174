//! The verification worker: decodes and verifies what peers send (gossiped transaction
//! batches, blocks) on a thread of its own, in arrival order, so the swarm task keeps serving
//! pings, gossip and sync while a large block is verified. The policy bounds its queue
//! ([`super::policy::verifier`]): when it is full, gossip is dropped (sync repairs what gossip
//! loses) and blocks wait in the policy's bounded backlog. The simulator runs [`verify`] in
//! place of the thread.

use std::sync::Arc;

use libp2p::gossipsub::MessageId;
use libp2p::PeerId;
use tokio::sync::mpsc;
use tracing::{info_span, warn};

use super::protocol;
use crate::journal::{TxId, TxRejection};
use crate::node::{BlockBundle, Node, NodeError, ReceivedBlock, TxBundle};

pub use super::policy::verifier::Job;

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

/// Starts the worker thread; it stops when the returned sender is dropped. The queue is
/// unbounded here because the policy never gives it more than
/// [`WORKER_QUEUE`](super::policy::verifier::WORKER_QUEUE) jobs.
pub fn spawn(
    node: Arc<Node>,
) -> std::io::Result<(mpsc::UnboundedSender<Job>, mpsc::UnboundedReceiver<Outcome>)> {
    let (jobs, mut queue) = mpsc::unbounded_channel::<Job>();
    let (outcomes, results) = mpsc::unbounded_channel();
    std::thread::Builder::new()
        .name("verifier".into())
        .spawn(move || {
            while let Some(job) = queue.blocking_recv() {
                if outcomes.send(verify(&node, job)).is_err() {
                    return;
                }
            }
        })?;
    Ok((jobs, results))
}

/// Runs one job on `node`.
pub fn verify(node: &Node, job: Job) -> Outcome {
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
