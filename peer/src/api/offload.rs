//! Work the handlers move off the runtime's worker threads: datastore reads and writes (a
//! write waits for its flush), hashing and decoding of large bodies, verification. It runs on
//! tokio's blocking pool in three lanes, [`Lane::Read`], [`Lane::Write`] and [`Lane::Replay`],
//! each with its own bound, so that a flood of writes or of event-stream replays never queues
//! the reads behind it and the few worker threads stay free to read requests and answer the
//! cheap ones.
//!
//! Each lane runs at most [`ApiConfig::blocking_threads`] jobs at once and lets at most
//! [`ApiConfig::blocking_queue`] more wait; a job past that is refused with `503` and
//! `Retry-After` (reason `busy`), never queued without bound, as a bounded thread pool's
//! rejection policy (nginx's `thread_pool ... max_queue`) does. The waiting jobs are queued
//! fairly per client and by standing ([`super::fair`]): a full queue gives a newcomer the place
//! of the newest job of the client waiting with the most (that job is then refused `503`), so
//! a flood from a few addresses cannot lock the others out of the write lane. Refusals are
//! counted in `mediachain_http_requests_total{reason="503"}` as any answer.

use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;
use warp::http::StatusCode;

use super::fair::{Entered, FairQueue, Writer};
use super::problem::ApiError;
use super::ApiConfig;

/// Which lane a job runs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// Reads (objects, queries): what honest readers wait for.
    Read,
    /// Writes and the CPU work before them (hashing, decoding, verification).
    Write,
    /// Pages of blocks replayed to event streams (a stream waits and asks again when refused).
    Replay,
}

/// One lane: its running jobs and its waiters, each waiting for a [`Turn`].
struct Queue {
    state: Mutex<FairQueue<oneshot::Sender<Turn>>>,
}

/// A lane's thread, held while a job runs; passed on to the next waiter when dropped (also
/// when it was sent to a waiter that gave up before taking it).
struct Turn {
    queue: Arc<Queue>,
    armed: bool,
}

impl Queue {
    fn new(threads: usize, capacity: usize) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(FairQueue::new(threads, capacity)),
        })
    }

    /// The thread of a finished job goes to the next waiter still waiting, or is freed.
    fn pass_on(self: &Arc<Self>) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        while let Some(waiter) = state.leave() {
            let turn = Turn {
                queue: self.clone(),
                armed: true,
            };
            match waiter.send(turn) {
                Ok(()) => return,
                // The waiter gave up (its request ended): the next one.
                Err(mut turn) => turn.armed = false,
            }
        }
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        if self.armed {
            self.queue.pass_on();
        }
    }
}

/// The lanes of the blocking pool.
pub struct Offload {
    read: Arc<Queue>,
    write: Arc<Queue>,
    replay: Arc<Queue>,
}

/// Seconds a refused client is told to wait.
const RETRY_AFTER: u64 = 1;

fn busy() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "busy",
        "this peer's queue for this kind of work is full; retry after the seconds of Retry-After",
    )
    .retry_after(RETRY_AFTER)
}

impl Offload {
    /// The lanes of `config`'s [`ApiConfig::blocking_threads`] and
    /// [`ApiConfig::blocking_queue`].
    pub fn new(config: &ApiConfig) -> Self {
        let lane = || Queue::new(config.blocking_threads, config.blocking_queue);
        Self {
            read: lane(),
            write: lane(),
            replay: lane(),
        }
    }

    /// Runs `f` in `lane` once a thread of it is free (as [`Offload::run_for`] with the default
    /// [`Writer`]: one shared bucket of good standing).
    pub async fn run<T: Send + 'static>(
        &self,
        lane: Lane,
        f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        self.run_for(lane, Writer::default(), f).await
    }

    /// Runs `f`, a job of `writer`, in `lane` when its turn comes ([`super::fair`]); `503` at
    /// once if the lane's queue is full and no waiter gives way, or later if a newcomer with a
    /// better claim takes its place.
    pub async fn run_for<T: Send + 'static>(
        &self,
        lane: Lane,
        writer: Writer,
        f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let queue = match lane {
            Lane::Read => &self.read,
            Lane::Write => &self.write,
            Lane::Replay => &self.replay,
        };
        let (waiter, turn) = oneshot::channel();
        let entered = queue
            .state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .enter(writer, waiter);
        let turn = match entered {
            Entered::Run => Turn {
                queue: queue.clone(),
                armed: true,
            },
            // An evicted waiter's request sees its sender dropped: `busy`.
            Entered::Queued { evicted } => {
                drop(evicted);
                turn.await.map_err(|_| busy())?
            }
            Entered::Refused => return Err(busy()),
        };
        tokio::task::spawn_blocking(move || {
            let _turn = turn;
            f()
        })
        .await
        .map_err(ApiError::internal)?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn waiting(queue: &Queue) -> usize {
        queue.state.lock().unwrap().waiting()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_lane_runs_its_threads_queues_its_queue_refuses_the_rest_and_leaves_the_other_lane_free(
    ) {
        let offload = Arc::new(Offload::new(&ApiConfig {
            blocking_threads: 1,
            blocking_queue: 1,
            ..ApiConfig::default()
        }));
        let (release, held) = std::sync::mpsc::channel::<()>();
        let (started, running) = std::sync::mpsc::channel::<()>();
        let first = tokio::spawn({
            let offload = offload.clone();
            async move {
                offload
                    .run(Lane::Write, move || {
                        started.send(()).unwrap();
                        held.recv_timeout(Duration::from_secs(10)).unwrap();
                        Ok(1)
                    })
                    .await
            }
        });
        tokio::task::spawn_blocking(move || running.recv_timeout(Duration::from_secs(10)))
            .await
            .unwrap()
            .unwrap();
        // The second waits for the thread; the third finds the queue full.
        let second = tokio::spawn({
            let offload = offload.clone();
            async move { offload.run(Lane::Write, || Ok(2)).await }
        });
        while waiting(&offload.write) < 1 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let refused = offload.run(Lane::Write, || Ok(3)).await.unwrap_err();
        assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!((refused.slug, refused.retry_after), ("busy", Some(1)));
        // Reads have their own lane.
        assert_eq!(offload.run(Lane::Read, || Ok(4)).await.unwrap(), 4);
        release.send(()).unwrap();
        assert_eq!(first.await.unwrap().unwrap(), 1);
        assert_eq!(second.await.unwrap().unwrap(), 2);
        // Every permit came back.
        assert_eq!(offload.run(Lane::Write, || Ok(5)).await.unwrap(), 5);
        assert_eq!(waiting(&offload.write), 0);
        // A setting past what a semaphore holds is taken as its most, not a panic.
        let unbounded = Offload::new(&ApiConfig {
            blocking_threads: usize::MAX,
            blocking_queue: usize::MAX,
            ..ApiConfig::default()
        });
        assert_eq!(unbounded.run(Lane::Read, || Ok(6)).await.unwrap(), 6);
    }
}
