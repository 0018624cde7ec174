//! The verification worker's queue as the policy sees it: how many jobs the worker holds, and
//! the blocks waiting for room. Gossiped transactions find room or are dropped (sync repairs
//! what gossip loses); blocks wait in a bounded backlog (the oldest is evicted and fetched again
//! by sync). The worker never holds more than [`WORKER_QUEUE`] jobs. Pure.

use std::collections::VecDeque;

use libp2p::gossipsub::MessageId;
use libp2p::PeerId;

use crate::node::BlockBundle;

/// Jobs the verification worker holds at most.
pub const WORKER_QUEUE: usize = 64;
/// Blocks waiting for room in the worker's queue, at most.
pub const MAX_BACKLOG: usize = 512;
/// Bytes of the blocks (and their objects) waiting for room, at most: a bundle weighs up to
/// the codec's 10 MiB.
pub const MAX_BACKLOG_BYTES: usize = 128 << 20;

/// Work for the verification worker.
#[derive(Debug, Clone)]
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

/// Jobs at the worker and blocks waiting for it.
#[derive(Debug, Default)]
pub struct Verifier {
    busy: usize,
    backlog: VecDeque<Job>,
    backlog_bytes: usize,
}

impl Job {
    /// The bytes it holds.
    pub fn size(&self) -> usize {
        match self {
            Job::Txs { data, .. } => data.len(),
            Job::Block { bundle, .. } => bundle.size(),
        }
    }
}

impl Verifier {
    /// A gossiped transaction batch: the job to start, or `None` when the worker is full (the
    /// batch is dropped).
    pub fn txs(&mut self, job: Job) -> Option<Job> {
        if self.busy < WORKER_QUEUE {
            self.busy += 1;
            Some(job)
        } else {
            None
        }
    }

    /// A block to verify: started at once if the worker has room and nothing waits, else
    /// queued. Returns the job to start, and how many of the oldest waiting blocks the
    /// backlog evicted to stay within [`MAX_BACKLOG`] and [`MAX_BACKLOG_BYTES`].
    pub fn block(&mut self, job: Job) -> (Option<Job>, usize) {
        if self.busy < WORKER_QUEUE && self.backlog.is_empty() {
            self.busy += 1;
            return (Some(job), 0);
        }
        self.backlog_bytes += job.size();
        self.backlog.push_back(job);
        let mut evicted = 0;
        while self.backlog.len() > MAX_BACKLOG || self.backlog_bytes > MAX_BACKLOG_BYTES {
            let Some(oldest) = self.backlog.pop_front() else {
                break;
            };
            self.backlog_bytes = self.backlog_bytes.saturating_sub(oldest.size());
            evicted += 1;
        }
        (None, evicted)
    }

    /// The worker finished a job: the waiting blocks that now fit, in arrival order.
    pub fn finished(&mut self) -> Vec<Job> {
        self.busy = self.busy.saturating_sub(1);
        let mut start = vec![];
        while self.busy < WORKER_QUEUE {
            let Some(job) = self.backlog.pop_front() else {
                break;
            };
            self.backlog_bytes = self.backlog_bytes.saturating_sub(job.size());
            self.busy += 1;
            start.push(job);
        }
        start
    }

    /// Jobs the worker holds.
    pub fn busy(&self) -> usize {
        self.busy
    }

    /// Blocks waiting for room.
    pub fn waiting(&self) -> usize {
        self.backlog.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(n: u8) -> Job {
        Job::Block {
            peer: PeerId::random(),
            bundle: BlockBundle {
                block: vec![n],
                objects: vec![],
            },
        }
    }

    fn byte(job: &Job) -> u8 {
        match job {
            Job::Block { bundle, .. } => bundle.block[0],
            Job::Txs { .. } => 0,
        }
    }

    #[test]
    fn the_worker_never_holds_more_than_its_queue_and_the_backlog_is_bounded() {
        let mut verifier = Verifier::default();
        for _ in 0..WORKER_QUEUE {
            assert!(verifier.block(block(0)).0.is_some());
        }
        let txs = Job::Txs {
            source: PeerId::random(),
            message: MessageId::new(b"m"),
            data: vec![],
        };
        assert!(verifier.txs(txs).is_none(), "gossip dropped when full");
        let mut evictions = 0;
        for n in 0..=MAX_BACKLOG {
            let (started, evicted) = verifier.block(block((n % 250) as u8 + 1));
            assert!(started.is_none());
            evictions += evicted;
        }
        assert_eq!(
            (verifier.busy(), verifier.waiting()),
            (WORKER_QUEUE, MAX_BACKLOG)
        );
        assert_eq!(evictions, 1, "the oldest waiting block went");
        let next = verifier.finished();
        assert_eq!(next.len(), 1, "one slot freed, one block started");
        assert_eq!(
            byte(&next[0]),
            2,
            "in arrival order, after the evicted first"
        );
    }

    #[test]
    fn the_backlog_is_bounded_in_bytes() {
        let mut verifier = Verifier::default();
        for _ in 0..WORKER_QUEUE {
            assert!(verifier.block(block(0)).0.is_some());
        }
        let big = |n: u8| Job::Block {
            peer: PeerId::random(),
            bundle: BlockBundle {
                block: vec![n; MAX_BACKLOG_BYTES / 3 + 1],
                objects: vec![],
            },
        };
        let evicted: usize = (1..=3).map(|n| verifier.block(big(n)).1).sum();
        assert_eq!(evicted, 1, "three thirds and a bit are over the bound");
        assert_eq!(verifier.waiting(), 2);
        assert_eq!(byte(&verifier.finished()[0]), 2, "the oldest went");
    }
}
