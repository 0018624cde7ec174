//! A started peer process until it listens: the ports it binds, and a start that failed because
//! another process had taken one of them (docs/testing.md, "Ports").

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

/// A port for a peer's overlay, chosen before the peer starts because every other peer's seed
/// list must name it (the overlay records no bound address to read back). Another process may
/// take it before the peer binds it: `Fleet::start` then sees the peer fail to listen and
/// retries.
pub fn overlay_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The first of `n` consecutive loopback ports that were free when checked. devnet's interface
/// is fixed base ports (the endpoints a user is told), so they are chosen before it runs and
/// another process may take one meanwhile: its callers retry on new ones then.
pub fn free_ports(n: u16) -> u16 {
    loop {
        let base = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if base > 65000 {
            continue;
        }
        let ok = (0..n).all(|i| std::net::TcpListener::bind(("127.0.0.1", base + i)).is_ok());
        if ok {
            return base;
        }
    }
}

/// How a start attempt ended.
pub enum Started {
    /// Listening: the API on this port.
    Listening(u16),
    /// It exited because a port was taken; the log of this attempt.
    PortTaken(String),
    /// It exited for another reason; its status and the log of this attempt.
    Failed(ExitStatus, String),
}

/// What an `address in use` failure of a peer looks like in its log.
fn port_taken(log: &str) -> bool {
    log.contains("Address already in use") || log.contains("os error 98")
}

/// Waits (60 s at most) until `child` records its API address in `record` (after both its
/// listeners are bound) or exits; `log` is its log file, whose part from `log_start` on is this
/// attempt's. Returns the outcome and the child while it runs.
pub fn wait(
    mut child: Child,
    record: &Path,
    log: &Path,
    log_start: usize,
) -> (Started, Option<Child>) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(port) = std::fs::read_to_string(record)
            .ok()
            .and_then(|text| text.trim().parse::<SocketAddr>().ok())
            .map(|addr| addr.port())
        {
            return (Started::Listening(port), Some(child));
        }
        if let Ok(Some(status)) = child.try_wait() {
            let text = std::fs::read(log).unwrap_or_default();
            let text =
                String::from_utf8_lossy(text.get(log_start..).unwrap_or_default()).into_owned();
            let started = if port_taken(&text) {
                Started::PortTaken(text)
            } else {
                Started::Failed(status, text)
            };
            return (started, None);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let text = std::fs::read_to_string(log).unwrap_or_default();
            panic!("timed out after 60 s waiting for the peer to listen:\n{text}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
