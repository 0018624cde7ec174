//! Transactions waiting for a block, in arrival order, bounded by count and by encoded bytes.

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
    max_bytes: usize,
}

impl Mempool {
    /// An empty pool holding at most `capacity` transactions of at most `max_bytes` encoded
    /// bytes together.
    pub fn new(capacity: usize, max_bytes: usize) -> Self {
        Self {
            order: VecDeque::new(),
            txs: HashMap::new(),
            bytes: 0,
            oldest: None,
            capacity,
            max_bytes,
        }
    }

    /// Adds a transaction at `now`; false if it is already pending or the pool is full (by
    /// count, or by bytes with it).
    pub fn insert(&mut self, id: TxId, tx: Transaction, now: Instant) -> bool {
        let size = tx.to_bytes().len();
        if self.txs.len() >= self.capacity || self.bytes + size > self.max_bytes {
            return false;
        }
        self.insert_sized(id, tx, size, now)
    }

    /// Adds a transaction a reorganisation orphaned at `now`, full or not (orphans are bounded
    /// by what blocks held, and a full pool never drops one); false if it is already pending.
    pub fn insert_orphan(&mut self, id: TxId, tx: Transaction, now: Instant) -> bool {
        let size = tx.to_bytes().len();
        self.insert_sized(id, tx, size, now)
    }

    fn insert_sized(&mut self, id: TxId, tx: Transaction, size: usize, now: Instant) -> bool {
        if self.txs.contains_key(&id) {
            return false;
        }
        if self.txs.is_empty() {
            self.oldest = Some(now);
        }
        self.bytes += size;
        self.order.push_back(id);
        self.txs.insert(id, (tx, size));
        true
    }

    /// Whether the transaction is pending.
    pub fn contains(&self, id: &TxId) -> bool {
        self.txs.contains_key(id)
    }

    /// Whether the pool is full (by count or by bytes).
    pub fn is_full(&self) -> bool {
        self.txs.len() >= self.capacity || self.bytes >= self.max_bytes
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

    /// Pending transactions, oldest first, at most `max` of them and only until their encoded
    /// sizes reach `bytes` (the one that crosses it included); they stay pending. A block's
    /// builder stops at its byte budget: copying more (a full pool holds tens of thousands)
    /// only cost a clone and an index lookup each per block.
    pub fn candidates(&self, max: usize, bytes: usize) -> Vec<Transaction> {
        let mut total = 0;
        self.order
            .iter()
            .filter_map(|id| self.txs.get(id))
            .take(max)
            .take_while(|(_, size)| {
                let before = total;
                total += size;
                before < bytes
            })
            .map(|(tx, _)| tx.clone())
            .collect()
    }

    /// Every pending transaction, in no particular order.
    pub fn transactions(&self) -> impl Iterator<Item = &Transaction> {
        self.txs.values().map(|(tx, _)| tx)
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::model::{nil_cid, JournalEntry};
    use crate::trust::{Chain, SecretKey};

    /// A distinct (unsigned-chain) transaction per `n`: the pool never verifies.
    fn tx(n: u64) -> (TxId, Transaction) {
        let entries = vec![JournalEntry::Insert {
            reference: nil_cid(),
            timestamp: n,
        }];
        let tx =
            Transaction::create(&SecretKey::generate(), &Chain::default(), entries, n, 0).unwrap();
        (tx.id(), tx)
    }

    #[test]
    fn a_full_pool_refuses_until_a_slot_is_freed_and_never_takes_a_duplicate() {
        let t0 = Instant::now();
        let mut pool = Mempool::new(2, usize::MAX);
        let (a, b, c) = (tx(1), tx(2), tx(3));
        assert!(pool.insert(a.0, a.1.clone(), t0));
        assert!(!pool.insert(a.0, a.1.clone(), t0), "duplicate taken");
        assert!(pool.insert(b.0, b.1.clone(), t0 + Duration::from_secs(1)));
        assert!(pool.is_full());
        assert!(!pool.insert(c.0, c.1.clone(), t0), "over capacity");
        assert_eq!(pool.len(), 2);
        assert!(!pool.contains(&c.0));
        let orphan = tx(4);
        assert!(
            pool.insert_orphan(orphan.0, orphan.1.clone(), t0),
            "an orphan always"
        );
        assert!(!pool.insert_orphan(orphan.0, orphan.1.clone(), t0), "once");
        assert_eq!(pool.len(), 3);
        pool.remove([&orphan.0]);
        pool.remove([&a.0]);
        assert!(!pool.is_full());
        assert!(pool.insert(c.0, c.1.clone(), t0));
        assert_eq!(pool.len(), 2);
    }

    #[test]
    fn candidates_come_oldest_first_and_sizes_and_age_follow_the_contents() {
        let t0 = Instant::now();
        let mut pool = Mempool::new(10, usize::MAX);
        let txs: Vec<_> = (1..=3).map(tx).collect();
        for (i, (id, tx)) in txs.iter().enumerate() {
            assert!(pool.insert(*id, tx.clone(), t0 + Duration::from_secs(i as u64)));
        }
        let ids = |v: Vec<Transaction>| v.iter().map(Transaction::id).collect::<Vec<_>>();
        assert_eq!(
            ids(pool.candidates(2, usize::MAX)),
            vec![txs[0].0, txs[1].0]
        );
        let size = |i: usize| txs[i].1.to_bytes().len();
        // The byte bound: up to the transaction that reaches it.
        assert_eq!(ids(pool.candidates(10, 1)), vec![txs[0].0]);
        assert_eq!(ids(pool.candidates(10, size(0))), vec![txs[0].0]);
        assert_eq!(
            ids(pool.candidates(10, size(0) + 1)),
            vec![txs[0].0, txs[1].0]
        );
        assert_eq!(ids(pool.candidates(10, 0)), vec![]);
        assert_eq!(pool.bytes(), size(0) + size(1) + size(2));
        assert_eq!(pool.oldest(), Some(t0));
        pool.remove([&txs[1].0]);
        assert_eq!(
            ids(pool.candidates(10, usize::MAX)),
            vec![txs[0].0, txs[2].0]
        );
        assert_eq!(pool.bytes(), size(0) + size(2));
        pool.remove([&txs[0].0, &txs[2].0]);
        assert!(pool.is_empty());
        assert_eq!((pool.bytes(), pool.oldest()), (0, None));
    }

    #[test]
    fn a_pool_full_by_bytes_refuses_what_would_cross_the_bound() {
        let t0 = Instant::now();
        let txs: Vec<_> = (1..=3).map(tx).collect();
        let size = txs[0].1.to_bytes().len();
        let mut pool = Mempool::new(100, 2 * size + size / 2);
        assert!(pool.insert(txs[0].0, txs[0].1.clone(), t0));
        assert!(pool.insert(txs[1].0, txs[1].1.clone(), t0));
        assert!(!pool.is_full());
        assert!(
            !pool.insert(txs[2].0, txs[2].1.clone(), t0),
            "over the byte bound"
        );
        assert!(!pool.contains(&txs[2].0));
        // An orphan is taken over the bound, and then the pool is full.
        assert!(pool.insert_orphan(txs[2].0, txs[2].1.clone(), t0));
        assert!(pool.is_full());
        pool.remove([&txs[0].0, &txs[2].0]);
        assert!(!pool.is_full());
        assert_eq!(pool.bytes(), txs[1].1.to_bytes().len());
    }
}
