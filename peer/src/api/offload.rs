//! Work the handlers move off the runtime's worker threads: datastore reads and writes (a
//! write waits for its flush), hashing and decoding of large bodies, verification. It runs on
//! tokio's blocking pool in three lanes, [`Lane::Read`], [`Lane::Write`] and [`Lane::Replay`],
//! each with its own bound, so that a flood of writes or of event-stream replays never queues
//! the reads behind it and the few worker threads stay free to read requests and answer the
//! cheap ones.
//!
//! Each lane runs at most [`ApiConfig::blocking_threads`] jobs at once and lets at most
//! [`ApiConfig::blocking_queue`] more wait; a job past that is refused at once with `503` and
//! `Retry-After` (reason `busy`), never queued without bound, as a bounded thread pool's
//! rejection policy (nginx's `thread_pool ... max_queue`) does. Refusals are counted in
//! `mediachain_http_requests_total{reason="503"}` as any answer.

use std::sync::Arc;

use tokio::sync::Semaphore;
use warp::http::StatusCode;

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

/// The bound of one lane.
struct Bound {
    /// Jobs running (one permit each).
    running: Arc<Semaphore>,
    /// Jobs running or waiting (one permit each): past it, refused.
    admitted: Arc<Semaphore>,
}

impl Bound {
    fn new(threads: usize, queue: usize) -> Self {
        // A semaphore holds at most `MAX_PERMITS` (a setting past it means "unbounded").
        let threads = threads.clamp(1, Semaphore::MAX_PERMITS);
        let admitted = threads.saturating_add(queue).min(Semaphore::MAX_PERMITS);
        Self {
            running: Arc::new(Semaphore::new(threads)),
            admitted: Arc::new(Semaphore::new(admitted)),
        }
    }
}

/// The lanes of the blocking pool.
pub struct Offload {
    read: Bound,
    write: Bound,
    replay: Bound,
}

/// Seconds a refused client is told to wait.
const RETRY_AFTER: u64 = 1;

impl Offload {
    /// The lanes of `config`'s [`ApiConfig::blocking_threads`] and
    /// [`ApiConfig::blocking_queue`].
    pub fn new(config: &ApiConfig) -> Self {
        Self {
            read: Bound::new(config.blocking_threads, config.blocking_queue),
            write: Bound::new(config.blocking_threads, config.blocking_queue),
            replay: Bound::new(config.blocking_threads, config.blocking_queue),
        }
    }

    /// Runs `f` in `lane` once a thread of it is free; `503` at once if the lane's queue is
    /// full.
    pub async fn run<T: Send + 'static>(
        &self,
        lane: Lane,
        f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let bound = match lane {
            Lane::Read => &self.read,
            Lane::Write => &self.write,
            Lane::Replay => &self.replay,
        };
        let Ok(admitted) = bound.admitted.clone().try_acquire_owned() else {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "busy",
                "this peer's queue for this kind of work is full; retry after the seconds of \
                 Retry-After",
            )
            .retry_after(RETRY_AFTER));
        };
        // The semaphores are never closed.
        let running = bound
            .running
            .clone()
            .acquire_owned()
            .await
            .map_err(ApiError::internal)?;
        tokio::task::spawn_blocking(move || {
            let _held = (admitted, running);
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
        while offload.write.admitted.available_permits() > 0 {
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
        assert_eq!(offload.write.admitted.available_permits(), 2);
        // A setting past what a semaphore holds is taken as its most, not a panic.
        let unbounded = Offload::new(&ApiConfig {
            blocking_threads: usize::MAX,
            blocking_queue: usize::MAX,
            ..ApiConfig::default()
        });
        assert_eq!(unbounded.run(Lane::Read, || Ok(6)).await.unwrap(), 6);
    }
}
