//! Transactions waiting for a block, in arrival order, bounded.

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use crate::journal::{Transaction, TxId};

/// Pending transactions.
#[derive(Debug)]
pub struct Mempool {
    order: VecDeque<TxId>,
    /// Each transaction with its encoded size.
    txs: HashMap<TxId, (Transaction, usize)>,
    bytes: usize,
    oldest: Option<Instant>,
    capacity: usize,
}

impl Mempool {
    /// An empty pool holding at most `capacity` transactions.
    pub fn new(capacity: usize) -> Self {
        Self {
            order: VecDeque::new(),
            txs: HashMap::new(),
            bytes: 0,
            oldest: None,
            capacity,
        }
    }

    /// Adds a transaction at `now`; false if it is already pending or the pool is full.
    pub fn insert(&mut self, id: TxId, tx: Transaction, now: Instant) -> bool {
        if self.txs.contains_key(&id) || self.txs.len() >= self.capacity {
            return false;
        }
        if self.txs.is_empty() {
            self.oldest = Some(now);
        }
        let size = tx.to_bytes().len();
        self.bytes += size;
        self.order.push_back(id);
        self.txs.insert(id, (tx, size));
        true
    }

    /// Whether the transaction is pending.
    pub fn contains(&self, id: &TxId) -> bool {
        self.txs.contains_key(id)
    }

    /// Whether the pool is full.
    pub fn is_full(&self) -> bool {
        self.txs.len() >= self.capacity
    }

    /// Number of pending transactions.
    pub fn len(&self) -> usize {
        self.txs.len()
    }

    /// Whether nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.txs.is_empty()
    }

    /// Encoded size of everything pending, in bytes.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// When the oldest pending transaction arrived.
    pub fn oldest(&self) -> Option<Instant> {
        self.oldest
    }

    /// Up to `max` pending transactions, oldest first (they stay pending).
    pub fn candidates(&self, max: usize) -> Vec<Transaction> {
        self.order
            .iter()
            .filter_map(|id| self.txs.get(id))
            .take(max)
            .map(|(tx, _)| tx.clone())
            .collect()
    }

    /// Removes transactions (committed or rejected).
    pub fn remove<'a>(&mut self, ids: impl IntoIterator<Item = &'a TxId>) {
        for id in ids {
            if let Some((_, size)) = self.txs.remove(id) {
                self.bytes -= size;
            }
        }
        self.order.retain(|id| self.txs.contains_key(id));
        if self.txs.is_empty() {
            self.oldest = None;
        }
    }
}
