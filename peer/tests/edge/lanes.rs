//! The datastore work of the handlers on the blocking pool's lanes (`api::offload`), and the
//! upload slots that are per client only: a write lane with one thread and no queue answers the
//! uploads it cannot take `503` `busy` with `Retry-After` and stores nothing for them; slow
//! uploads from more addresses than any total would allow never lock an honest uploader out.

use std::time::Duration;

use mediachain::api::ApiConfig;
use mediachain::daemon::local::LocalOptions;

use super::upfront::{blob, upload_head, upload_request};
use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_past_a_full_write_lane_are_refused_503_busy_and_not_stored() {
    let config = ApiConfig {
        blocking_threads: 1,
        blocking_queue: 0,
        ..ApiConfig::unlimited()
    };
    let options = LocalOptions {
        api: config,
        max_object_size: 1 << 20,
        ..LocalOptions::default()
    };
    let peer = peer_with_options(options).await;
    // Rounds of 16 uploads of 1 MiB at once, from 16 addresses, until the lane refused one
    // (each job hashes and stores a MiB: the first round all but certainly overlaps).
    let mut refused = 0;
    for round in 0..5u8 {
        let uploads: Vec<_> = (0..16u8)
            .map(|i| {
                let (cid, bytes) = blob(&format!("round {round} upload {i}"), 1 << 20);
                let addr = peer.addr;
                tokio::spawn(async move {
                    let mut stream = send_from(addr, 70 + i, "").await;
                    let answer =
                        exchange(&mut stream, &upload_request("/v1/objects", &bytes)).await;
                    (cid, answer)
                })
            })
            .collect();
        for upload in uploads {
            let (cid, answer) = upload.await.unwrap();
            let mut reader = send(peer.addr, "").await;
            let stored = exchange(
                &mut reader,
                &format!("GET /v1/objects/{cid} HTTP/1.1\r\nhost: peer\r\n\r\n"),
            )
            .await;
            if answer.starts_with("HTTP/1.1 503") {
                refused += 1;
                assert!(answer.contains("\"reason\":\"busy\""), "{answer}");
                assert!(
                    answer.to_ascii_lowercase().contains("retry-after: 1"),
                    "{answer}"
                );
                assert!(
                    stored.starts_with("HTTP/1.1 404"),
                    "a refused upload was stored"
                );
            } else {
                assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
                assert!(stored.starts_with("HTTP/1.1 200"), "{stored}");
            }
        }
        if refused > 0 {
            break;
        }
    }
    assert!(
        refused > 0,
        "no upload found the write lane full in 5 rounds"
    );
    assert!(
        metric(
            &peer,
            "mediachain_http_requests_total{kind=\"/v1/objects\",reason=\"503\"}"
        ) >= 1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_uploads_from_many_addresses_never_lock_an_honest_uploader_out() {
    let config = ApiConfig {
        body_grace: Duration::from_secs(120),
        body_timeout: Duration::from_secs(120),
        ..ApiConfig::default()
    };
    let peer = peer_with(config).await;
    // 80 addresses each hold an upload whose body never comes: more than the total of 64 slots
    // the first version had.
    let mut held = vec![];
    for host in 100..180u8 {
        held.push(
            send_from(
                peer.addr,
                host,
                &upload_head("/v1/objects", "application/octet-stream", 4096)
                    .replace("expect: 100-continue\r\n", ""),
            )
            .await,
        );
    }
    metric_reaches(&peer, "mediachain_uploads_in_progress", 80.0).await;
    let mut honest = send_from(peer.addr, 200, "").await;
    let (_, bytes) = blob("honest", 1000);
    let answer = exchange(&mut honest, &upload_request("/v1/objects", &bytes)).await;
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    drop(held);
}
