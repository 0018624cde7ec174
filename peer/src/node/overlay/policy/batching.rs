//! Batching of transactions this peer admitted, for gossip: many transactions per message (one
//! per message caps throughput), each message under [`MAX_BATCH_BYTES`]. Pure.

use crate::node::TxBundle;

/// Most bytes of transactions and objects in one gossip message.
pub const MAX_BATCH_BYTES: usize = 1024 * 1024;

/// The size a bundle takes in a batch: its transaction and objects (with their CIDs).
pub fn bundle_size(bundle: &TxBundle) -> usize {
    bundle.tx.to_bytes().len()
        + bundle
            .objects
            .iter()
            .map(|(_, bytes)| bytes.len() + 40)
            .sum::<usize>()
}

/// Items waiting to be gossiped, with their sizes.
#[derive(Debug)]
pub struct Batcher<T> {
    pending: Vec<(T, usize)>,
}

impl<T> Default for Batcher<T> {
    fn default() -> Self {
        Self { pending: vec![] }
    }
}

impl<T> Batcher<T> {
    /// Queues `item` of `size` bytes.
    pub fn push(&mut self, item: T, size: usize) {
        self.pending.push((item, size));
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Takes everything queued, in order, cut into batches of at most [`MAX_BATCH_BYTES`] (an
    /// item larger than that travels alone).
    pub fn take(&mut self) -> Vec<Vec<T>> {
        let mut batches = vec![];
        let mut batch = vec![];
        let mut size = 0;
        for (item, s) in std::mem::take(&mut self.pending) {
            if size + s > MAX_BATCH_BYTES && !batch.is_empty() {
                batches.push(std::mem::take(&mut batch));
                size = 0;
            }
            size += s;
            batch.push(item);
        }
        if !batch.is_empty() {
            batches.push(batch);
        }
        batches
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_stay_under_the_limit_and_keep_the_order() {
        let mut batcher = Batcher::default();
        assert!(batcher.take().is_empty());
        let sizes = [400_000, 400_000, 400_000, 10, 2 * MAX_BATCH_BYTES, 10];
        for s in sizes {
            batcher.push(s, s);
        }
        let batches = batcher.take();
        assert!(batcher.is_empty());
        assert_eq!(
            batches,
            vec![
                vec![400_000, 400_000],
                vec![400_000, 10],
                vec![2 * MAX_BATCH_BYTES],
                vec![10]
            ]
        );
        for batch in &batches[..2] {
            assert!(batch.iter().sum::<usize>() <= MAX_BATCH_BYTES);
        }
    }
}
