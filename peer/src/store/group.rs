//! Group commit: writers that finished their writes at about the same time share one flush, as
//! a database's group commit (PostgreSQL's `commit_delay` without the delay, InnoDB's binlog
//! group commit) does. Each writer calls [`GroupCommit::sync`] after its write; the first one
//! in leads a flush, those arriving while it runs wait for it to end, and then one of them leads
//! the next flush, which covers all their writes. No writer returns before a flush that *started
//! after its write* has succeeded, so nothing is acknowledged before it is durable; under load
//! there are at most two flushes in flight per burst of writers instead of one per writer.

use std::sync::{Condvar, Mutex, MutexGuard};

/// Where the writers and their flushes stand.
#[derive(Debug, Default)]
struct State {
    /// Writes that called [`GroupCommit::sync`] so far (each one's ticket is its number).
    written: u64,
    /// Every write up to this ticket is durable.
    durable: u64,
    /// Whether a flush is running.
    flushing: bool,
    /// Flushes run.
    flushes: u64,
}

/// The flushes of one store, shared by its writers.
#[derive(Debug, Default)]
pub(super) struct GroupCommit {
    state: Mutex<State>,
    ended: Condvar,
}

impl GroupCommit {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Blocks until the write the caller just finished is durable: `flush` (which makes every
    /// write finished before it started durable) has run to success after the call began, led
    /// by this caller or by another. A failed flush fails its leader only; the writers waiting
    /// for it try again, one of them leading.
    pub(super) fn sync<E>(&self, flush: impl Fn() -> Result<(), E>) -> Result<(), E> {
        let mut state = self.lock();
        state.written += 1;
        let ticket = state.written;
        loop {
            if state.durable >= ticket {
                return Ok(());
            }
            if state.flushing {
                state = self.ended.wait(state).unwrap_or_else(|p| p.into_inner());
                continue;
            }
            // Lead: every write that took its ticket by now finished before this flush starts.
            let covers = state.written;
            state.flushing = true;
            state.flushes += 1;
            drop(state);
            let flushed = flush();
            state = self.lock();
            state.flushing = false;
            if flushed.is_ok() {
                state.durable = state.durable.max(covers);
            }
            self.ended.notify_all();
            flushed?;
        }
    }

    /// Flushes run so far.
    pub(super) fn flushes(&self) -> u64 {
        self.lock().flushes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{mpsc, Arc};
    use std::time::Duration;

    /// A store's writes and flushes as the test sees them: the writes finished so far, and per
    /// flush that ended the writes finished before it started.
    #[derive(Default)]
    struct Disk {
        finished: Mutex<Vec<u64>>,
        flushed: Mutex<Vec<Vec<u64>>>,
    }

    #[test]
    fn writers_arriving_during_a_flush_share_the_next_one_and_none_returns_before_its_write_is_flushed(
    ) {
        let group = Arc::new(GroupCommit::default());
        let disk = Arc::new(Disk::default());
        // The first flush is held until the other writers have arrived and are waiting.
        let (release, held) = mpsc::channel::<()>();
        let held = Arc::new(Mutex::new(Some(held)));
        let writer = |n: u64| {
            let (group, disk, held) = (group.clone(), disk.clone(), held.clone());
            std::thread::spawn(move || {
                disk.finished.lock().unwrap().push(n);
                group
                    .sync(|| {
                        let covers = disk.finished.lock().unwrap().clone();
                        if let Some(held) = held.lock().unwrap().take() {
                            held.recv_timeout(Duration::from_secs(10)).unwrap();
                        }
                        disk.flushed.lock().unwrap().push(covers);
                        Ok::<_, ()>(())
                    })
                    .unwrap();
                // Its write is covered by a flush that has ended.
                let flushed = disk.flushed.lock().unwrap();
                assert!(
                    flushed.iter().any(|covers| covers.contains(&n)),
                    "write {n} returned before a flush covered it: {flushed:?}"
                );
            })
        };
        let first = writer(1);
        while group.flushes() == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
        let others: Vec<_> = (2..=8).map(writer).collect();
        // Every other writer is waiting (its ticket taken) before the first flush ends.
        while group.lock().written < 8 {
            std::thread::sleep(Duration::from_millis(1));
        }
        release.send(()).unwrap();
        first.join().unwrap();
        for other in others {
            other.join().unwrap();
        }
        assert_eq!(
            group.flushes(),
            2,
            "eight writers, the last seven arriving during the first flush: {:?}",
            disk.flushed.lock().unwrap()
        );
    }

    #[test]
    fn a_failed_flush_fails_its_leader_and_the_next_writer_flushes_again() {
        let group = GroupCommit::default();
        assert_eq!(group.sync(|| Err("disk full")), Err("disk full"));
        assert_eq!(group.sync(|| Ok::<_, &str>(())), Ok(()));
        assert_eq!(group.flushes(), 2);
        let state = group.lock();
        assert_eq!((state.written, state.durable), (2, 2));
    }
}
