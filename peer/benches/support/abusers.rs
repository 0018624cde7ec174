//! The abusive clients of the edge_abuse bench, run in a process of their own until its input
//! closes, then printing what they got as one JSON line. The kinds to run are chosen by name
//! ([`Kind`]); each comes back when the peer closes it, as a real attacker would:
//! - slow uploads: 40 addresses x 40 connections sending the headers of a 100 kB upload and 3
//!   bytes of it, then nothing; a dropped one reconnects a second later (slowloris' loop);
//! - stream floods: 100 addresses x 10 event streams from height 0, never read; a refused one
//!   asks again a second later on the same connection;
//! - random paths: 4 addresses, GETs of paths that do not exist, as fast as answered;
//! - upload floods: 4 addresses, distinct 64 KiB blobs, as fast as answered.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http_body_util::BodyExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::edge_client::{connect_from, get, handshake, upload};

/// A kind of abuse, as named in `EDGE_BENCH_ABUSE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Upload heads and 3 bytes of their bodies, then nothing.
    SlowUploads,
    /// Event streams from height 0, never read.
    Streams,
    /// GETs of paths that do not exist.
    RandomPaths,
    /// Distinct 64 KiB blobs.
    Uploads,
}

impl Kind {
    /// Every kind, in the order the bench runs them alone.
    pub const ALL: [Kind; 4] = [
        Kind::SlowUploads,
        Kind::Streams,
        Kind::RandomPaths,
        Kind::Uploads,
    ];

    /// Its name.
    pub fn name(self) -> &'static str {
        match self {
            Kind::SlowUploads => "slow-uploads",
            Kind::Streams => "streams",
            Kind::RandomPaths => "random-paths",
            Kind::Uploads => "uploads",
        }
    }

    /// The kinds of a comma-separated list of names (`all`: every kind).
    pub fn parse_list(text: &str) -> Result<Vec<Kind>, String> {
        if text == "all" {
            return Ok(Self::ALL.to_vec());
        }
        text.split(',')
            .map(|name| {
                Self::ALL
                    .into_iter()
                    .find(|k| k.name() == name.trim())
                    .ok_or_else(|| format!("unknown abuse kind `{name}`"))
            })
            .collect()
    }

    /// The names of `kinds`, comma-separated (`all` for every kind).
    pub fn list_name(kinds: &[Kind]) -> String {
        if kinds.len() == Self::ALL.len() {
            return "all".into();
        }
        kinds.iter().map(|k| k.name()).collect::<Vec<_>>().join(",")
    }
}

/// What the abusers got.
#[derive(Default)]
struct Counts {
    slow_uploads_opened: AtomicU64,
    slow_uploads_dropped: AtomicU64,
    streams_opened: AtomicU64,
    streams_refused: AtomicU64,
    random_answered: AtomicU64,
    random_429: AtomicU64,
    uploads_stored: AtomicU64,
    uploads_refused: AtomicU64,
    reconnects: AtomicU64,
}

impl Counts {
    fn json(&self) -> serde_json::Value {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        serde_json::json!({
            "slow uploads opened": get(&self.slow_uploads_opened),
            "slow uploads dropped by the peer": get(&self.slow_uploads_dropped),
            "streams opened": get(&self.streams_opened),
            "streams refused": get(&self.streams_refused),
            "random-path answers": get(&self.random_answered),
            "random-path 429s": get(&self.random_429),
            "flood uploads stored": get(&self.uploads_stored),
            "flood uploads refused": get(&self.uploads_refused),
            "reconnects": get(&self.reconnects),
        })
    }
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// Runs the abusers of `kinds` against `addr` until `until` returns, then prints the counts.
pub fn process(addr: SocketAddr, kinds: &[Kind], until: impl FnOnce()) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let counts = Arc::new(Counts::default());
    runtime.block_on(async {
        for kind in kinds {
            start(*kind, addr, &stop, &counts);
        }
    });
    until();
    stop.store(true, Ordering::Relaxed);
    println!("{}", counts.json());
    runtime.shutdown_timeout(Duration::from_secs(1));
}

fn start(kind: Kind, addr: SocketAddr, stop: &Arc<AtomicBool>, counts: &Arc<Counts>) {
    match kind {
        Kind::SlowUploads => {
            for a in 0..40u8 {
                for _ in 0..40 {
                    tokio::spawn(slow_upload(addr, a, stop.clone(), counts.clone()));
                }
            }
        }
        Kind::Streams => {
            for a in 0..100u8 {
                for _ in 0..10 {
                    tokio::spawn(stream_flood(addr, a, stop.clone(), counts.clone()));
                }
            }
        }
        Kind::RandomPaths => {
            for a in 0..4u8 {
                tokio::spawn(flood(addr, 30, a, stop.clone(), counts.clone()));
            }
        }
        Kind::Uploads => {
            for a in 0..4u8 {
                tokio::spawn(flood(addr, 40, a, stop.clone(), counts.clone()));
            }
        }
    }
}

async fn slow_upload(addr: SocketAddr, a: u8, stop: Arc<AtomicBool>, counts: Arc<Counts>) {
    let head = "POST /v1/objects HTTP/1.1\r\nhost: peer\r\n\
                content-type: application/octet-stream\r\ncontent-length: 100000\r\n\r\nabc";
    while !stop.load(Ordering::Relaxed) {
        if let Some(mut stream) = connect_from(addr, 10, a + 1).await {
            if stream.write_all(head.as_bytes()).await.is_ok() {
                bump(&counts.slow_uploads_opened);
                let mut sink = [0u8; 1024];
                // Held until the peer answers or closes.
                loop {
                    tokio::select! {
                        read = stream.read(&mut sink) => {
                            if !matches!(read, Ok(n) if n > 0) {
                                break;
                            }
                        }
                        () = tokio::time::sleep(Duration::from_millis(100)) => {
                            if stop.load(Ordering::Relaxed) {
                                return;
                            }
                        }
                    }
                }
                bump(&counts.slow_uploads_dropped);
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn stream_flood(addr: SocketAddr, a: u8, stop: Arc<AtomicBool>, counts: Arc<Counts>) {
    while !stop.load(Ordering::Relaxed) {
        let Some(stream) = connect_from(addr, 20, a + 1).await else {
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        };
        let Some(mut sender) = handshake(stream).await else {
            continue;
        };
        while !stop.load(Ordering::Relaxed) {
            let Ok(response) = sender.send_request(get("/v1/events?from=0")).await else {
                break;
            };
            if response.status() == 200 {
                bump(&counts.streams_opened);
                // Never read: held until the run ends or the peer drops it.
                while !stop.load(Ordering::Relaxed) && !sender.is_closed() {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                drop(response);
                break;
            }
            bump(&counts.streams_refused);
            let _ = response.into_body().collect().await;
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        bump(&counts.reconnects);
    }
}

/// Random paths (`kind` 30) or 64 KiB uploads (`kind` 40) as fast as the peer answers.
async fn flood(addr: SocketAddr, kind: u8, a: u8, stop: Arc<AtomicBool>, counts: Arc<Counts>) {
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let Some(stream) = connect_from(addr, kind, a + 1).await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let Some(mut sender) = handshake(stream).await else {
            continue;
        };
        while !stop.load(Ordering::Relaxed) {
            n += 1;
            let request = if kind == 30 {
                get(&format!("/v1/random-{a}-{n}/x"))
            } else {
                let mut blob = vec![0u8; 64 * 1024];
                blob[..8].copy_from_slice(&n.to_le_bytes());
                blob[8] = a;
                upload(blob)
            };
            if sender.ready().await.is_err() {
                break;
            }
            let Ok(response) = sender.send_request(request).await else {
                break;
            };
            let status = response.status().as_u16();
            let _ = response.into_body().collect().await;
            match (kind, status) {
                (30, 429) => bump(&counts.random_429),
                (30, _) => bump(&counts.random_answered),
                (_, 201) => bump(&counts.uploads_stored),
                _ => bump(&counts.uploads_refused),
            }
        }
        bump(&counts.reconnects);
    }
}
