//! The write lane's fair queue (`api::fair`) over real sockets: while one address floods the
//! write lane (more uploads at once than its threads and queue hold, so the flood is being
//! refused `503 busy`), an honest writer from another address has every upload stored, each
//! taking the place of the flood's newest waiting upload instead of finding the queue full:
//! by the max-min share while the flood is of good standing, and from a flood past half its
//! quota (heavy standing) even where the max-min share would give the honest writer nothing.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use mediachain::api::ApiConfig;
use mediachain::store::UploadLimits;

use super::upfront::{blob, upload_request};
use super::*;

/// Uploads the flood keeps in flight at once.
const FLOOD_IN_FLIGHT: usize = 24;

/// Uploads of distinct `size`-byte blobs from `127.0.0.{host}`, [`FLOOD_IN_FLIGHT`] at once,
/// until stopped; every answer must be `201` or `503 busy`.
struct Flood {
    stop: Arc<AtomicBool>,
    stored: Arc<AtomicUsize>,
    busy: Arc<AtomicUsize>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Flood {
    /// Starts the flood and returns once the write lane is full and refusing it.
    async fn start(addr: SocketAddr, host: u8, size: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let (stored, busy) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let tasks = (0..FLOOD_IN_FLIGHT)
            .map(|task| {
                let (stop, stored, busy) = (stop.clone(), stored.clone(), busy.clone());
                tokio::spawn(async move {
                    let mut n = 0;
                    while !stop.load(Ordering::Relaxed) {
                        let (_, bytes) = blob(&format!("flood {task} {n}"), size);
                        n += 1;
                        let mut stream = send_from(addr, host, "").await;
                        let answer =
                            exchange(&mut stream, &upload_request("/v1/objects", &bytes)).await;
                        if answer.starts_with("HTTP/1.1 503") {
                            assert!(answer.contains("\"reason\":\"busy\""), "{answer}");
                            busy.fetch_add(1, Ordering::Relaxed);
                        } else {
                            assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
                            stored.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                })
            })
            .collect();
        let flood = Self {
            stop,
            stored,
            busy,
            tasks,
        };
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while flood.busy() == 0 || flood.stored.load(Ordering::Relaxed) == 0 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the flood never filled the lane"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        flood
    }

    /// Its uploads refused `503 busy` so far.
    fn busy(&self) -> usize {
        self.busy.load(Ordering::Relaxed)
    }

    async fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            task.await.unwrap();
        }
    }
}

/// 20 uploads from `127.0.0.200`, one at a time, each of which must be stored.
async fn honest_writer_is_served(addr: SocketAddr) {
    let mut honest = send_from(addr, 200, "").await;
    for i in 0..20 {
        let (cid, bytes) = blob(&format!("honest {i}"), 1000);
        let answer = exchange(&mut honest, &upload_request("/v1/objects", &bytes)).await;
        assert!(
            answer.starts_with("HTTP/1.1 201"),
            "honest upload {i} not stored during the flood: {answer}"
        );
        assert!(answer.contains(&cid), "{answer}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_flooding_the_write_lane_cannot_starve_an_honest_writer() {
    let config = ApiConfig {
        blocking_threads: 1,
        blocking_queue: 4,
        ..ApiConfig::unlimited()
    };
    let peer = peer_with(config).await;
    let flood = Flood::start(peer.addr, 70, 16 * 1024).await;
    let busy_before = flood.busy();
    honest_writer_is_served(peer.addr).await;
    // The flood was still being refused while the honest writer was served.
    assert!(flood.busy() > busy_before, "the flood had stopped");
    flood.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_past_half_its_quota_gives_way_to_an_honest_writer_even_holding_one_waiter() {
    // A queue of one: the flood's one waiting upload would not give way to a newcomer by the
    // max-min share (it holds one, the newcomer's client none), only by its heavy standing.
    let config = ApiConfig {
        blocking_threads: 1,
        blocking_queue: 1,
        upload_limits: UploadLimits {
            per_client: 1 << 20,
            total: 1 << 30,
        },
        ..ApiConfig::unlimited()
    };
    let peer = peer_with(config).await;
    // The flooding address stores 576 KiB first: past half its 1 MiB quota, heavy from then
    // on, with room left for 1,792 more of its 256-byte uploads.
    let mut first = send_from(peer.addr, 71, "").await;
    for i in 0..9 {
        let (_, bytes) = blob(&format!("filling {i}"), 64 * 1024);
        let answer = exchange(&mut first, &upload_request("/v1/objects", &bytes)).await;
        assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    }
    let flood = Flood::start(peer.addr, 71, 256).await;
    let busy_before = flood.busy();
    honest_writer_is_served(peer.addr).await;
    assert!(flood.busy() > busy_before, "the flood had stopped");
    flood.stop().await;
}
