//! A fleet of real `mediachain-peer` processes on loopback for the multi-process tests: a trust
//! tower on disk, ports bound by the peers themselves (or retried when taken), start/stop/SIGKILL,
//! readiness polling with timeouts that say what they waited for, and the peers' logs printed
//! when a test fails. Every peer holds a lifeline to the test process (`mediachain::lifeline`):
//! it exits when the test dies, however it dies.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use mediachain::backup::cli::API_ADDRESS_FILE;
use mediachain::client::Client;
use mediachain::trust::{keyfile, Certificate, Chain, Level, SecretKey};

use super::listening::{self, overlay_port, Started};

/// One peer process.
pub struct Peer {
    pub key: SecretKey,
    pub p2p_port: u16,
    /// Its API port: 0 until its first start binds one (read back from `<data-dir>/api-address`).
    pub api_port: u16,
    pub dir: PathBuf,
    pub child: Option<Child>,
    /// The address its HTTP API listens on (loopback unless it runs in a network namespace).
    pub host: String,
    /// The address its overlay listens on.
    pub p2p_host: String,
    /// The network namespace it runs in, if any.
    pub netns: Option<String>,
}

impl Peer {
    pub fn api(&self) -> String {
        format!("http://{}:{}", self.host, self.api_port)
    }
    pub fn addr(&self) -> String {
        format!("/ip4/{}/tcp/{}", self.p2p_host, self.p2p_port)
    }
    pub fn client(&self) -> Client {
        Client::new(&self.api()).unwrap()
    }
    pub fn log(&self) -> PathBuf {
        self.dir.join("peer.log")
    }
}

/// A network's trust tower and its peers.
pub struct Fleet {
    pub dir: tempfile::TempDir,
    pub root: SecretKey,
    pub principal: SecretKey,
    pub principal_chain: Chain,
    pub peers: Vec<Peer>,
    pub extra_args: Vec<String>,
    /// Every peer's `--block-interval` (300ms unless changed before the peers start).
    pub block_interval: String,
    /// Extra environment of every peer process.
    pub env: Vec<(String, String)>,
}

/// `GET /metrics` with a bare HTTP/1.1 request (the endpoint is plain text).
pub async fn metrics_text(api: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let host = api.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(host).await.unwrap();
    let request = format!("GET /metrics HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut out = String::new();
    stream.read_to_string(&mut out).await.unwrap();
    out
}

/// Sum of the samples of every metric line starting with `prefix`.
pub fn metric_sum(text: &str, prefix: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
        .sum()
}

impl Fleet {
    /// `n` peers with Level-1 certificates from one principal (not started).
    pub fn new(n: usize) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = SecretKey::generate();
        let principal = SecretKey::generate();
        let now = mediachain::time::now();
        let principal_chain = Chain(vec![Certificate::issue(
            &root,
            principal.public(),
            Level::Principal,
            now - 60,
            now + 86_400,
        )]);
        std::fs::write(dir.path().join("root.pub"), root.public().to_string()).unwrap();
        let mut fleet = Self {
            dir,
            root,
            principal,
            principal_chain,
            peers: vec![],
            extra_args: vec![],
            block_interval: "300ms".into(),
            env: vec![],
        };
        for _ in 0..n {
            fleet.add_peer();
        }
        fleet
    }

    /// A Level-1 chain for `key` from the fleet's principal, valid for a day.
    pub fn certify(&self, key: &SecretKey) -> Chain {
        let now = mediachain::time::now();
        Chain::extend(
            Certificate::issue(
                &self.principal,
                key.public(),
                Level::Peer,
                now - 60,
                now + 86_400,
            ),
            &self.principal_chain,
        )
    }

    /// Adds a peer certified by the fleet's principal.
    pub fn add_peer(&mut self) -> usize {
        let key = SecretKey::generate();
        let chain = self.certify(&key);
        self.add_peer_with(key, chain)
    }

    /// Adds a peer with the given key and chain (possibly invalid for this network).
    pub fn add_peer_with(&mut self, key: SecretKey, chain: Chain) -> usize {
        let i = self.peers.len();
        let dir = self.dir.path().join(format!("peer{i}"));
        std::fs::create_dir_all(&dir).unwrap();
        keyfile::write_secret(
            &dir.join("peer.key"),
            &keyfile::to_plain_pem(&key).unwrap(),
            true,
        )
        .unwrap();
        std::fs::write(dir.join("peer.chain"), chain.to_pem()).unwrap();
        self.peers.push(Peer {
            key,
            p2p_port: overlay_port(),
            // Bound by the peer itself (port 0) on its first start, then read back.
            api_port: 0,
            dir,
            child: None,
            host: "127.0.0.1".into(),
            p2p_host: "127.0.0.1".into(),
            netns: None,
        });
        i
    }

    /// Starts peer `i` with every other peer as a seed and waits (bounded) until it listens.
    ///
    /// Its API binds port 0 on the first start and the port read back from
    /// `<data-dir>/api-address` is kept across restarts (clients the test made stay valid). Its
    /// overlay keeps the port chosen up front, which the other peers' seed lists name. When a
    /// port was taken by another process meanwhile, the start is retried: the same ports for a
    /// while (the taker may be a passing connection), then a new overlay port on the first start,
    /// a new API port on a restart, failing with what was taken after that.
    pub fn start(&mut self, i: usize) {
        let first = self.peers[i].api_port == 0;
        let mut moved = false;
        let mut deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let log = match self.spawn(i) {
                Started::Listening(port) => {
                    self.peers[i].api_port = port;
                    return;
                }
                Started::PortTaken(log) => log,
                Started::Failed(status, log) => {
                    panic!("peer {i} exited ({status}) before listening:\n{log}")
                }
            };
            if Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(500));
                continue;
            }
            let p = &mut self.peers[i];
            assert!(
                !moved,
                "peer {i} could not listen for 10 s on new ports either (overlay {}, api {}): \
                 taken by another process\n{log}",
                p.p2p_port, p.api_port
            );
            eprintln!(
                "peer {i}: overlay port {} or api port {} taken by another process for 10 s; \
                 moving to a new {}",
                p.p2p_port,
                p.api_port,
                if first { "overlay port" } else { "API port" }
            );
            if first {
                p.p2p_port = overlay_port();
            } else {
                p.api_port = 0;
            }
            moved = true;
            deadline = Instant::now() + Duration::from_secs(10);
        }
    }

    /// One attempt at starting peer `i`: spawns it, then waits until it records its API address
    /// (after both its listeners are bound) or exits.
    fn spawn(&mut self, i: usize) -> Started {
        let seeds: Vec<String> = self
            .peers
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, p)| p.addr())
            .collect();
        let root = self.dir.path().join("root.pub");
        let p = &mut self.peers[i];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p.log())
            .unwrap();
        let mut cmd = match &p.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns])
                    .arg(env!("CARGO_BIN_EXE_mediachain-peer"));
                c
            }
            None => Command::new(env!("CARGO_BIN_EXE_mediachain-peer")),
        };
        cmd.arg("run")
            .arg("--network")
            .arg("fleet")
            .arg("--key")
            .arg(p.dir.join("peer.key"))
            .arg("--chain")
            .arg(p.dir.join("peer.chain"))
            .arg("--listen")
            .arg(p.addr())
            .arg("--api-listen")
            .arg(format!("{}:{}", p.host, p.api_port))
            .arg("--data-dir")
            .arg(p.dir.join("data"))
            .arg("--block-interval")
            .arg(&self.block_interval)
            .arg("--commit-timeout")
            .arg("2s")
            .arg("--registration-pow-bits")
            .arg("8")
            .arg("--transaction-pow-bits")
            .arg("4")
            .args(&self.extra_args)
            .env(
                "MEDIACHAIN_LOG",
                "info,libp2p=warn,warp::filters::trace=warn",
            )
            // As in the peer image (docs/peer-contract.md): fewer glibc arenas, less memory.
            .env("MALLOC_ARENA_MAX", "2")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .env_remove("MEDIACHAIN_SEEDS_FILE")
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        if !self.extra_args.iter().any(|a| a == "--root-key") {
            cmd.arg("--root-key").arg(&root);
        }
        if !seeds.is_empty() {
            cmd.arg("--seed").arg(seeds.join(","));
        }
        // The lifeline: the peer exits when this test process dies, even by SIGKILL.
        mediachain::lifeline::tie(&mut cmd);
        let record = p.dir.join("data").join(API_ADDRESS_FILE);
        let _ = std::fs::remove_file(&record);
        let log_start = std::fs::metadata(p.log()).map_or(0, |m| m.len() as usize);
        let child = cmd.spawn().expect("start mediachain-peer");
        let (started, child) = listening::wait(child, &record, &p.log(), log_start);
        p.child = child;
        started
    }

    pub fn start_all(&mut self) {
        for i in 0..self.peers.len() {
            self.start(i);
        }
    }

    /// SIGKILL.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.peers[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then wait (bounded) for a clean exit; returns the exit status code.
    pub fn stop(&mut self, i: usize) -> Option<i32> {
        let mut child = self.peers[i].child.take()?;
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = child.kill();
        None
    }

    /// Every peer's log, for failure messages.
    pub fn logs(&self) -> String {
        self.peers
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let text = std::fs::read_to_string(p.log()).unwrap_or_default();
                let tail: Vec<&str> = text
                    .lines()
                    .filter(|l| !l.contains("http{"))
                    .rev()
                    .take(40)
                    .collect();
                format!(
                    "--- peer {i} ({}) last lines ---\n{}\n",
                    p.key.public(),
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                )
            })
            .collect()
    }

    /// Waits until `check` holds, failing with `what` and the logs after `timeout`.
    pub async fn wait_for<F, Fut>(&self, what: &str, timeout: Duration, mut check: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if check().await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!(
            "timed out after {timeout:?} waiting for {what}\n{}",
            self.logs()
        );
    }

    /// Waits until the given peers all answer /readyz.
    pub async fn wait_ready(&self, peers: &[usize]) {
        let clients: Vec<Client> = peers.iter().map(|i| self.peers[*i].client()).collect();
        self.wait_for(
            &format!("peers {peers:?} to be ready"),
            Duration::from_secs(60),
            || {
                let clients = clients.clone();
                async move {
                    for c in &clients {
                        if !c.ready().await {
                            return false;
                        }
                    }
                    true
                }
            },
        )
        .await;
    }

    /// Peer `i`'s Prometheus metrics text.
    pub async fn metrics(&self, i: usize) -> String {
        metrics_text(&self.peers[i].api()).await
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Lifts the per-client rate limit, connection cap and upload cap of the peers started
    /// after this: for a load generator that sends everything from one address.
    pub fn lift_client_limits(&mut self) {
        self.env
            .push((mediachain::api::RATE_LIMIT_ENV.into(), "0".into()));
        for cap in [
            mediachain::api::config::MAX_CONNECTIONS_PER_CLIENT_ENV,
            mediachain::api::config::MAX_UPLOADS_PER_CLIENT_ENV,
        ] {
            self.env.push((cap.into(), "100000".into()));
        }
    }

    /// Each peer's process id, in order (`None` for a stopped peer).
    pub fn pids(&self) -> Vec<Option<u32>> {
        self.peers
            .iter()
            .map(|p| p.child.as_ref().map(Child::id))
            .collect()
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for i in 0..self.peers.len() {
            self.kill(i);
        }
    }
}
