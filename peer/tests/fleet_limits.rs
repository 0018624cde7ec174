//! The overlay's connection limits on a real `mediachain-peer` process: a refused dialer denied
//! for a growing back-off, the per-peer and total limits, the limit on pending incoming
//! handshakes in total and per address, and the handshake timeout that frees a pending slot a
//! silent socket holds.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod support;

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use mediachain::node::overlay::pending::MAX_PENDING_PER_ADDRESS;
use mediachain::node::overlay::swarm::MAX_PENDING_INCOMING;
use support::fleet::{metric_sum, Fleet};
use support::rogue::Rogue;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpSocket, TcpStream};

/// Sum of `mediachain_rejected_total{kind=.., reason=..}` at peer `i`.
async fn rejected(fleet: &Fleet, i: usize, kind: &str, reason: &str) -> f64 {
    metric_sum(
        &fleet.metrics(i).await,
        &format!("mediachain_rejected_total{{kind=\"{kind}\",reason=\"{reason}\"}}"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_dialer_that_redials_at_once_is_denied_for_a_growing_back_off() {
    let mut fleet = Fleet::new(1);
    fleet.start(0);
    fleet.wait_ready(&[0]).await;
    // A dialer without a certificate of this network redials within 100 ms of every close,
    // for 6.5 s.
    let mut rogue = Rogue::uncertified();
    let window = std::time::Instant::now() + Duration::from_millis(6500);
    let mut dials = 0;
    while std::time::Instant::now() < window {
        if rogue.swarm.network_info().num_peers() == 0 {
            rogue.dial(&fleet.peers[0].addr());
            dials += 1;
        }
        rogue.run_for(Duration::from_millis(100)).await;
    }
    let refused = rejected(&fleet, 0, "peer", "admission").await;
    let denied = rejected(&fleet, 0, "connection", "blocked").await;
    eprintln!("{dials} dials: {refused} admissions refused, {denied} connections denied");
    // Back-offs of 1, 2 and 4 s leave 3 windows for a connection in 6.5 s (a slower machine
    // only lowers that), each refused at most twice (its hello request and its answer to the
    // peer's hello); without a back-off every dial would be refused, with a fixed 1 s
    // back-off at least 7 times.
    assert!(
        (1.0..=6.0).contains(&refused),
        "{refused} refusals in {dials} dials\n{}",
        fleet.logs()
    );
    assert!(
        denied >= 1.0,
        "dials in the back-off are denied before any protocol runs ({denied} of {dials})"
    );
    assert!(!rogue.admitted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_per_peer_limit_are_denied() {
    let mut fleet = Fleet::new(1);
    fleet.start(0);
    fleet.wait_ready(&[0]).await;
    // A certified peer (admission lets it in) opens six connections at once.
    let mut rogue = Rogue::certified(&fleet);
    for _ in 0..6 {
        rogue.dial(&fleet.peers[0].addr());
    }
    rogue.run_for(Duration::from_secs(3)).await;
    let open = rogue.swarm.network_info().num_peers();
    let held = rogue
        .swarm
        .network_info()
        .connection_counters()
        .num_established();
    let limited = rejected(&fleet, 0, "connection", "limit").await;
    assert_eq!(open, 1, "the peer stays connected");
    assert!(held <= 2, "{held} connections held\n{}", fleet.logs());
    assert!(limited >= 4.0, "{limited} connections denied by the limit");
}

/// `n` TCP connections to peer 0 of `fleet` from address `from` (any loopback address: all of
/// 127.0.0.0/8 reaches the peer) that never start the handshake.
async fn silent_sockets(fleet: &Fleet, from: &str, n: usize) -> Vec<TcpStream> {
    let peer = &fleet.peers[0];
    let target: SocketAddr = format!("{}:{}", peer.p2p_host, peer.p2p_port)
        .parse()
        .unwrap();
    let from: IpAddr = from.parse().unwrap();
    let mut sockets = vec![];
    for _ in 0..n {
        let socket = TcpSocket::new_v4().unwrap();
        socket.bind(SocketAddr::new(from, 0)).unwrap();
        sockets.push(socket.connect(target).await.unwrap());
    }
    sockets
}

/// Waits (bounded) until peer 0 denied `expected` connections for `reason`; the count then.
async fn denials(fleet: &Fleet, reason: &str, expected: usize) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut denied = rejected(fleet, 0, "connection", reason).await;
    while denied < expected as f64 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        denied = rejected(fleet, 0, "connection", reason).await;
    }
    denied
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_handshakes_past_the_pending_incoming_limit_are_denied() {
    let mut fleet = Fleet::new(1);
    // A handshake timeout far longer than the test: on a loaded machine opening the sockets can
    // outlast the default (5 s), and a timed-out socket frees its slot for one that should be
    // denied.
    fleet.extra_args = args(&[("--overlay-handshake-timeout", "120s")]);
    fleet.start(0);
    fleet.wait_ready(&[0]).await;
    // TCP connections that never start the handshake stay pending, from addresses that each
    // stay within their own limit: the first MAX_PENDING_INCOMING are held, each one past them
    // is denied at once.
    let extra = 8;
    let per_address = MAX_PENDING_PER_ADDRESS as usize;
    let addresses = (MAX_PENDING_INCOMING as usize + extra).div_ceil(per_address);
    let mut silent = vec![];
    for a in 0..addresses {
        silent.extend(silent_sockets(&fleet, &format!("127.0.1.{}", a + 1), per_address).await);
    }
    let limited = denials(&fleet, "limit", extra).await;
    assert_eq!(
        limited, extra as f64,
        "connections denied by the pending-incoming limit"
    );
    assert_eq!(rejected(&fleet, 0, "connection", "address").await, 0.0);
    // Once they go (the peer saw every held one fail its handshake), an honest peer is let in.
    drop(silent);
    let failed = denials(&fleet, "handshake", MAX_PENDING_INCOMING as usize).await;
    assert!(
        failed >= MAX_PENDING_INCOMING as f64,
        "{failed} handshakes failed"
    );
    let mut rogue = Rogue::certified(&fleet);
    rogue
        .join(&fleet.peers[0].addr(), Duration::from_secs(20))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_holding_silent_handshakes_leaves_the_other_pending_slots_to_others() {
    let mut fleet = Fleet::new(1);
    fleet.extra_args = args(&[("--overlay-handshake-timeout", "120s")]);
    fleet.start(0);
    fleet.wait_ready(&[0]).await;
    // A stranger at 127.0.0.2 opens more silent sockets than there are pending slots: it holds
    // MAX_PENDING_PER_ADDRESS of them, the rest are denied at once.
    let many = MAX_PENDING_INCOMING as usize + 8;
    let stranger = silent_sockets(&fleet, "127.0.0.2", many).await;
    let past = many - MAX_PENDING_PER_ADDRESS as usize;
    let denied = denials(&fleet, "address", past).await;
    assert_eq!(
        denied, past as f64,
        "connections denied by the per-address limit"
    );
    assert_eq!(rejected(&fleet, 0, "connection", "limit").await, 0.0);
    // While the stranger still holds its sockets, a peer at another address (127.0.0.1) gets
    // in: without the per-address limit the stranger held every pending slot.
    let mut honest = Rogue::certified(&fleet);
    honest
        .join(&fleet.peers[0].addr(), Duration::from_secs(20))
        .await;
    drop(stranger);
}

/// `--flag value` pairs as a fleet's extra arguments.
fn args(pairs: &[(&str, &str)]) -> Vec<String> {
    pairs
        .iter()
        .flat_map(|(flag, value)| [flag.to_string(), value.to_string()])
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_sockets_holding_every_pending_slot_are_closed_after_the_handshake_timeout() {
    let mut fleet = Fleet::new(1);
    let pending = 8;
    fleet.extra_args = args(&[
        ("--overlay-handshake-timeout", "1s"),
        ("--overlay-max-pending-incoming", &pending.to_string()),
    ]);
    fleet.start(0);
    fleet.wait_ready(&[0]).await;
    // A stranger opens TCP connections and never starts the handshake: the first `pending`
    // hold every pending slot (the next ones are denied by the limit).
    let target = format!("{}:{}", fleet.peers[0].p2p_host, fleet.peers[0].p2p_port);
    let opened = Instant::now();
    let mut silent = vec![];
    for _ in 0..pending + 2 {
        silent.push(tokio::net::TcpStream::connect(&target).await.unwrap());
    }
    // The peer closes each of them once the timeout (1 s) passes: well before libp2p's own
    // 10 s, which held them (and kept every new peer out) without the setting.
    let deadline = opened + Duration::from_secs(7);
    for (i, socket) in silent.iter_mut().enumerate() {
        let left = deadline.saturating_duration_since(Instant::now());
        let mut byte = [0u8; 1];
        match tokio::time::timeout(left, socket.read(&mut byte)).await {
            Ok(Ok(0) | Err(_)) => {}
            Ok(Ok(_)) => panic!("silent socket {i} was sent data"),
            Err(_) => panic!(
                "silent socket {i} still open {:?} after it was opened\n{}",
                opened.elapsed(),
                fleet.logs()
            ),
        }
    }
    // The counters move when the overlay's event loop handles the failed connections, which can
    // trail the closed sockets on a loaded machine: wait for them (bounded).
    let counted = Instant::now() + Duration::from_secs(20);
    let (timed_out, limited, metrics) = loop {
        let metrics = fleet.metrics(0).await;
        let timed_out = metric_sum(
            &metrics,
            "mediachain_rejected_total{kind=\"connection\",reason=\"handshake\"}",
        );
        let limited = metric_sum(
            &metrics,
            "mediachain_rejected_total{kind=\"connection\",reason=\"limit\"}",
        );
        if (timed_out >= pending as f64 && limited >= 1.0) || Instant::now() >= counted {
            break (timed_out, limited, metrics);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let rejections: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("mediachain_rejected_total"))
        .collect();
    assert!(
        timed_out >= pending as f64,
        "{timed_out} handshakes timed out; rejections: {rejections:#?}"
    );
    assert!(
        limited >= 1.0,
        "the pending slots were all taken ({limited} denied); rejections: {rejections:#?}"
    );
    // The stranger still holds its sockets (closed at the peer's end); an honest peer gets in.
    let mut honest = Rogue::certified(&fleet);
    honest
        .join(&fleet.peers[0].addr(), Duration::from_secs(20))
        .await;
    drop(silent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_total_limit_are_denied_until_one_closes() {
    let mut fleet = Fleet::new(1);
    // Target connectivity 1 keeps at most 3 neighbours: the lowest total limit allowed.
    fleet.extra_args = args(&[
        ("--target-connectivity", "1"),
        ("--overlay-max-connections", "3"),
    ]);
    fleet.start(0);
    fleet.wait_ready(&[0]).await;
    let addr = fleet.peers[0].addr();
    // Three certified peers take every connection and keep them alive (heartbeats, gossip).
    let mut held = vec![];
    for _ in 0..3 {
        let mut rogue = Rogue::certified(&fleet);
        rogue.join(&addr, Duration::from_secs(30)).await;
        held.push(tokio::spawn(async move {
            loop {
                rogue.run_for(Duration::from_secs(1)).await;
            }
        }));
    }
    // A fourth is denied once its handshake completes, and never admitted.
    let mut fourth = Rogue::certified(&fleet);
    fourth.dial(&addr);
    let deadline = Instant::now() + Duration::from_secs(20);
    while rejected(&fleet, 0, "connection", "limit").await < 1.0 && Instant::now() < deadline {
        fourth.run_for(Duration::from_millis(200)).await;
    }
    assert!(
        rejected(&fleet, 0, "connection", "limit").await >= 1.0,
        "the fourth connection was denied by the limit\n{}",
        fleet.logs()
    );
    assert!(!fourth.admitted, "a peer past the limit was admitted");
    assert_eq!(
        metric_sum(&fleet.metrics(0).await, "mediachain_peers_connected "),
        3.0
    );
    // One of the three leaves: once the peer has seen it go, the fourth gets its place.
    held.remove(0).abort();
    fleet
        .wait_for(
            "the peer to see one of the three leave",
            Duration::from_secs(30),
            || async { metric_sum(&fleet.metrics(0).await, "mediachain_peers_connected ") == 2.0 },
        )
        .await;
    fourth.join(&addr, Duration::from_secs(30)).await;
    for task in held {
        task.abort();
    }
}
