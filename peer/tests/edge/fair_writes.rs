//! The write lane's fair queue (`api::fair`) over real sockets: while one address floods the
//! write lane (more uploads at once than its threads and queue hold, so the flood is being
//! refused `503 busy`), an honest writer from another address has every upload stored, each
//! taking the place of the flood's newest waiting upload instead of finding the queue full.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use mediachain::api::ApiConfig;

use super::upfront::{blob, upload_request};
use super::*;

/// Uploads the flood keeps in flight at once.
const FLOOD_IN_FLIGHT: usize = 24;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_flooding_the_write_lane_cannot_starve_an_honest_writer() {
    let config = ApiConfig {
        blocking_threads: 1,
        blocking_queue: 4,
        ..ApiConfig::unlimited()
    };
    let peer = peer_with(config).await;
    let stop = Arc::new(AtomicBool::new(false));
    let (stored, busy) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let flood: Vec<_> = (0..FLOOD_IN_FLIGHT)
        .map(|task| {
            let (addr, stop, stored, busy) =
                (peer.addr, stop.clone(), stored.clone(), busy.clone());
            tokio::spawn(async move {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    let (_, bytes) = blob(&format!("flood {task} {n}"), 16 * 1024);
                    n += 1;
                    let mut stream = send_from(addr, 70, "").await;
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
    // The flood is going: the write lane is full and refusing it.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while busy.load(Ordering::Relaxed) == 0 || stored.load(Ordering::Relaxed) == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the flood never filled the lane"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let busy_before = busy.load(Ordering::Relaxed);
    let mut honest = send_from(peer.addr, 200, "").await;
    for i in 0..20 {
        let (cid, bytes) = blob(&format!("honest {i}"), 1000);
        let answer = exchange(&mut honest, &upload_request("/v1/objects", &bytes)).await;
        assert!(
            answer.starts_with("HTTP/1.1 201"),
            "honest upload {i} not stored during the flood: {answer}"
        );
        assert!(answer.contains(&cid), "{answer}");
    }
    // The flood was still being refused while the honest writer was served.
    assert!(
        busy.load(Ordering::Relaxed) > busy_before,
        "the flood had stopped"
    );
    stop.store(true, Ordering::Relaxed);
    for task in flood {
        task.await.unwrap();
    }
}
