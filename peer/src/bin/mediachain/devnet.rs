//! `mediachain devnet`: a whole local network in one command.
//!
//! Creates a trust tower in a directory (root key encrypted with a generated passphrase,
//! a Level-0 principal, one Level-1 identity per peer, a seeds file) and the network's
//! parameters (`network.yaml`: every peer an initial member), starts N
//! `mediachain-peer run` processes on loopback, waits until every `/readyz` answers, then runs a
//! client through the main job — register, write an artefact with its `artefactCreatedBy` cell,
//! submit the transaction, print the confirmation from the view-update stream — and keeps the
//! network serving until Ctrl-C, printing the endpoints. Re-running it on the same directory
//! reuses the identities and the peers' data. The peers hold a lifeline to this process
//! (`mediachain::lifeline`): they stop when it exits, however it exits.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use clap::Args;
use mediachain::client::Client;
use mediachain::journal::Transaction;
use mediachain::model::{
    nil_cid, Artefact, CellKind, ChainCell, Cid, Entity, JournalEntry, Object,
};
use mediachain::time;
use mediachain::trust::keyfile::{self, KdfParams};
use mediachain::trust::{Certificate, Chain, Level, PublicKey, SecretKey};
use tokio::process::{Child, Command};

use crate::client::{client_error, read_chain};
use crate::error::CliError;
use crate::netparams::{self, DevnetParams};

/// Arguments of `mediachain devnet`.
#[derive(Args, Debug)]
pub struct DevnetArgs {
    /// Directory of the network: keys, certificates, seeds, each peer's data and log.
    #[arg(long, default_value = "devnet")]
    dir: PathBuf,
    /// Number of peers.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=16))]
    peers: u16,
    /// HTTP API port of the first peer (the others follow).
    #[arg(long, default_value_t = 8080)]
    api_port: u16,
    /// Overlay (libp2p) port of the first peer (the others follow).
    #[arg(long, default_value_t = 4001)]
    p2p_port: u16,
    /// The peer daemon binary (default: `mediachain-peer` beside this program, built first
    /// when this program runs under `cargo run`; then on PATH).
    #[arg(long, env = "MEDIACHAIN_PEER_BIN")]
    peer_bin: Option<PathBuf>,
    /// Wait that collects transactions into a block.
    #[arg(long, default_value = "500ms")]
    block_interval: String,
    /// Client registration difficulty (bits).
    #[arg(long, default_value_t = 16)]
    registration_pow_bits: u8,
    /// Per-transaction difficulty (bits).
    #[arg(long, default_value_t = 10)]
    transaction_pow_bits: u8,
    /// How long to wait for every peer to be ready.
    #[arg(long, default_value = "120s", value_parser = humantime::parse_duration)]
    ready_timeout: Duration,
    /// Stop the peers and exit after the demonstration instead of serving until Ctrl-C.
    #[arg(long)]
    exit_after_demo: bool,
}

/// One peer of the devnet.
struct Peer {
    index: u16,
    dir: PathBuf,
    id: PublicKey,
    api: String,
    p2p: String,
    child: Option<Child>,
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> CliError + '_ {
    move |e| CliError::Input(format!("{}: {e}", path.display()))
}

fn write_plain_key(path: &Path, key: &SecretKey) -> Result<(), CliError> {
    let text = keyfile::to_plain_pem(key).map_err(CliError::Input)?;
    keyfile::write_secret(path, &text, true)?;
    Ok(())
}

fn read_plain_key(path: &Path) -> Result<SecretKey, CliError> {
    Ok(keyfile::read(path, None)?)
}

/// Creates what is missing of the trust tower; returns the root key and the peers' identities.
fn tower(args: &DevnetArgs) -> Result<(PublicKey, Vec<Peer>), CliError> {
    let dir = &args.dir;
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let now = time::now();
    let year = 365 * 24 * 3600;
    let principal_key_path = dir.join("principal.key");
    let principal_chain_path = dir.join("principal.chain");
    let root_pub_path = dir.join("root.pub");
    if !principal_chain_path.exists() || !root_pub_path.exists() {
        let root = SecretKey::generate();
        let passphrase = hex::encode(SecretKey::generate().seed());
        keyfile::write_secret(&dir.join("root.passphrase"), &passphrase, true)?;
        let encrypted =
            keyfile::encrypt(&root, &passphrase, KdfParams::default()).map_err(CliError::Input)?;
        keyfile::write_secret(&dir.join("root.key"), &encrypted, true)?;
        std::fs::write(&root_pub_path, format!("{}\n", root.public()))
            .map_err(io(&root_pub_path))?;
        let principal = SecretKey::generate();
        write_plain_key(&principal_key_path, &principal)?;
        let chain = Chain(vec![Certificate::issue(
            &root,
            principal.public(),
            Level::Principal,
            now.saturating_sub(60),
            now + 10 * year,
        )]);
        std::fs::write(&principal_chain_path, chain.to_pem()).map_err(io(&principal_chain_path))?;
    }
    let root: PublicKey = crate::input::public_key(&root_pub_path.to_string_lossy())?;
    let principal = read_plain_key(&principal_key_path)?;
    let principal_chain = read_chain(&principal_chain_path)?;
    let mut peers = vec![];
    for index in 0..args.peers {
        let peer_dir = dir.join(format!("peer-{index}"));
        std::fs::create_dir_all(&peer_dir).map_err(io(&peer_dir))?;
        let key_path = peer_dir.join("peer.key");
        let chain_path = peer_dir.join("peer.chain");
        if !key_path.exists() || !chain_path.exists() {
            let key = SecretKey::generate();
            write_plain_key(&key_path, &key)?;
            let chain = Chain::extend(
                Certificate::issue(
                    &principal,
                    key.public(),
                    Level::Peer,
                    now.saturating_sub(60),
                    now + year,
                ),
                &principal_chain,
            );
            std::fs::write(&chain_path, chain.to_pem()).map_err(io(&chain_path))?;
        }
        let id = read_plain_key(&key_path)?.public();
        let p2p_port = args.p2p_port + index;
        peers.push(Peer {
            index,
            dir: peer_dir,
            id,
            api: format!("http://127.0.0.1:{}", args.api_port + index),
            p2p: format!("/ip4/127.0.0.1/tcp/{p2p_port}/p2p/{}", id.peer_id()),
            child: None,
        });
    }
    let seeds: Vec<&str> = peers.iter().map(|p| p.p2p.as_str()).collect();
    let seeds_path = dir.join("seeds.txt");
    std::fs::write(
        &seeds_path,
        format!("# the devnet's peers\n{}\n", seeds.join("\n")),
    )
    .map_err(io(&seeds_path))?;
    Ok((root, peers))
}

/// The daemon: `--peer-bin` (or `MEDIACHAIN_PEER_BIN`), else `mediachain-peer` beside this
/// program, else from PATH. Under `cargo run` (cargo sets `CARGO` and `CARGO_MANIFEST_DIR`) the
/// sibling is built first, every time, so that after a `git pull` devnet never starts an older
/// daemon than itself (cargo returns at once when it is up to date). A process started under
/// `cargo test` names the daemon with `MEDIACHAIN_PEER_BIN`: cargo holds its build lock while
/// tests run, so a nested build would wait for the test that waits for it.
fn peer_binary(args: &DevnetArgs) -> Result<PathBuf, CliError> {
    if let Some(path) = &args.peer_bin {
        return Ok(path.clone());
    }
    let Ok(exe) = std::env::current_exe() else {
        return Ok(PathBuf::from("mediachain-peer"));
    };
    let sibling = exe.with_file_name("mediachain-peer");
    if let (Some(cargo), Some(manifest)) = (
        std::env::var_os("CARGO"),
        std::env::var_os("CARGO_MANIFEST_DIR"),
    ) {
        build_sibling(&cargo, Path::new(&manifest), &exe)?;
    }
    Ok(if sibling.is_file() {
        sibling
    } else {
        PathBuf::from("mediachain-peer")
    })
}

/// `cargo build -p mediachain-peer --bin mediachain-peer` into the target directory and profile
/// `exe` (this program) was built in.
fn build_sibling(cargo: &std::ffi::OsStr, manifest_dir: &Path, exe: &Path) -> Result<(), CliError> {
    let profile_dir = exe.parent().unwrap_or(Path::new("."));
    let mut build = std::process::Command::new(cargo);
    build
        .args(["build", "--bin", "mediachain-peer", "--manifest-path"])
        .arg(manifest_dir.join("Cargo.toml"));
    if profile_dir.ends_with("release") {
        build.arg("--release");
    }
    if let Some(target_dir) = profile_dir.parent() {
        build.arg("--target-dir").arg(target_dir);
    }
    println!("devnet: started by cargo: building the current mediachain-peer ({build:?})");
    let status = build
        .status()
        .map_err(|e| CliError::Input(format!("cannot run {}: {e}", cargo.to_string_lossy())))?;
    if !status.success() {
        return Err(CliError::Input(format!(
            "building mediachain-peer failed ({status}); fix the build, or name a daemon with \
             --peer-bin"
        )));
    }
    Ok(())
}

fn spawn(
    args: &DevnetArgs,
    params: &DevnetParams,
    binary: &Path,
    peer: &mut Peer,
) -> Result<(), CliError> {
    let log_path = peer.dir.join("peer.log");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(io(&log_path))?;
    let log_err = log.try_clone().map_err(io(&log_path))?;
    let p2p_port = args.p2p_port + peer.index;
    let api_port = args.api_port + peer.index;
    let mut command = Command::new(binary);
    command.arg("run");
    match params {
        DevnetParams::File(path) => {
            command.arg("--network-params").arg(path);
        }
        DevnetParams::Legacy => {
            command
                .args(["--network", "devnet"])
                .arg("--root-key")
                .arg(args.dir.join("root.pub"))
                .args(["--block-interval", &args.block_interval])
                .args([
                    "--transaction-pow-bits",
                    &args.transaction_pow_bits.to_string(),
                ]);
        }
    }
    let child = command
        .arg("--key")
        .arg(peer.dir.join("peer.key"))
        .arg("--chain")
        .arg(peer.dir.join("peer.chain"))
        .arg("--seeds-file")
        .arg(args.dir.join("seeds.txt"))
        .args(["--listen", &format!("/ip4/127.0.0.1/tcp/{p2p_port}")])
        .args(["--api-listen", &format!("127.0.0.1:{api_port}")])
        .arg("--data-dir")
        .arg(peer.dir.join("data"))
        .args([
            "--registration-pow-bits",
            &args.registration_pow_bits.to_string(),
        ])
        // The peers' lifeline: they exit when this process does, even when it is killed.
        .stdin(Stdio::piped())
        .env(mediachain::lifeline::ENV, "1")
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(log_err))
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| {
            CliError::Input(format!(
                "cannot start {} ({e}); build it with `cargo build --release --bin mediachain-peer` \
                 or pass --peer-bin",
                binary.display()
            ))
        })?;
    peer.child = Some(child);
    Ok(())
}

fn log_tail(peer: &Peer) -> String {
    let text = std::fs::read_to_string(peer.dir.join("peer.log")).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

async fn wait_ready(peers: &mut [Peer], timeout: Duration) -> Result<(), CliError> {
    let deadline = tokio::time::Instant::now() + timeout;
    for peer in peers.iter_mut() {
        let client = Client::new(&peer.api).map_err(client_error)?;
        loop {
            if client.ready().await {
                break;
            }
            if let Some(child) = peer.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    return Err(CliError::Network(format!(
                        "peer {} exited ({status}) before it was ready; the end of {}:\n{}",
                        peer.index,
                        peer.dir.join("peer.log").display(),
                        log_tail(peer)
                    )));
                }
            }
            if tokio::time::Instant::now() > deadline {
                return Err(CliError::Network(format!(
                    "peer {} was not ready within {}; the end of its log:\n{}",
                    peer.index,
                    humantime::format_duration(timeout),
                    log_tail(peer)
                )));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    Ok(())
}

async fn stop(peers: &mut [Peer]) {
    for peer in peers.iter_mut() {
        if let Some(pid) = peer.child.as_ref().and_then(Child::id) {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
    }
    for peer in peers.iter_mut() {
        if let Some(mut child) = peer.child.take() {
            if tokio::time::timeout(Duration::from_secs(10), child.wait())
                .await
                .is_err()
            {
                let _ = child.kill().await;
            }
        }
    }
}

/// The main job, as a client: register, write, submit, await the confirmation.
async fn demonstrate(dir: &Path, peers: &[Peer]) -> Result<Cid, CliError> {
    let client = Client::new(&peers[0].api).map_err(client_error)?;
    let key_path = dir.join("client.key");
    let key = if key_path.exists() {
        read_plain_key(&key_path)?
    } else {
        let key = SecretKey::generate();
        write_plain_key(&key_path, &key)?;
        key
    };
    let (chain, registration) = client.register(&key).await.map_err(client_error)?;
    let chain_path = dir.join("client.chain");
    std::fs::write(&chain_path, chain.to_pem()).map_err(io(&chain_path))?;
    println!(
        "client: registered {} (Level-2 certificate signed by peer 0, {}) -> {}",
        registration.client,
        registration.issuer,
        chain_path.display()
    );
    // Names unique per run, so a re-run on the same network writes new objects.
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let entity = Object::Entity(Entity::named(&format!("Devnet Author {stamp}")));
    let artefact = Object::Artefact(Artefact::named(&format!("Devnet Artefact {stamp}")));
    let entity_cid: Cid = client
        .put_object(&entity)
        .await
        .map_err(client_error)?
        .cid
        .parse()
        .map_err(|e| CliError::Network(format!("peer returned a bad CID: {e}")))?;
    let artefact_cid: Cid = client
        .put_object(&artefact)
        .await
        .map_err(client_error)?
        .cid
        .parse()
        .map_err(|e| CliError::Network(format!("peer returned a bad CID: {e}")))?;
    let cell = Object::Cell(ChainCell::new(
        CellKind::ArtefactCreatedBy { entity: entity_cid },
        artefact_cid,
        nil_cid(),
    ));
    let cell_cid: Cid = client
        .put_object(&cell)
        .await
        .map_err(client_error)?
        .cid
        .parse()
        .map_err(|e| CliError::Network(format!("peer returned a bad CID: {e}")))?;
    println!("client: wrote entity {entity_cid}");
    println!("client: wrote artefact {artefact_cid}");
    println!("client: wrote artefactCreatedBy cell {cell_cid}");
    let info = client.info().await.map_err(client_error)?;
    let now = time::now();
    let entries = vec![
        JournalEntry::Insert {
            reference: entity_cid,
            timestamp: now,
        },
        JournalEntry::Insert {
            reference: artefact_cid,
            timestamp: now,
        },
        JournalEntry::Update {
            reference: artefact_cid,
            chain: cell_cid,
            chain_previous: nil_cid(),
            timestamp: now,
        },
    ];
    let bits = info.transaction_pow_bits;
    let tx =
        tokio::task::spawn_blocking(move || Transaction::create(&key, &chain, entries, now, bits))
            .await
            .map_err(|e| CliError::Network(e.to_string()))?
            .map_err(|e| CliError::Rejected(e.to_string()))?;
    let from = client.head().await.map_err(client_error)?.height + 1;
    let state = client.submit(&tx).await.map_err(client_error)?;
    println!(
        "client: submitted transaction {} ({})",
        state.id, state.state
    );
    let confirmation = client
        .await_confirmation(&tx.id(), from)
        .await
        .map_err(client_error)?;
    match confirmation.block {
        Some(block) if confirmation.state.is_committed() => {
            println!(
                "confirmed: transaction {} {} in block {} at height {} (committer {}), from the event stream of peer 0",
                state.id,
                confirmation.state.state,
                block.cid,
                block.height,
                block.committer.unwrap_or_default()
            );
        }
        _ => {
            return Err(CliError::Rejected(format!(
                "transaction {} was not committed: {}",
                state.id,
                confirmation
                    .state
                    .reason
                    .unwrap_or(confirmation.state.state)
            )))
        }
    }
    if let Some(last) = peers.last().filter(|p| p.index != 0) {
        let other = Client::new(&last.api).map_err(client_error)?;
        match tokio::time::timeout(
            Duration::from_secs(60),
            other.await_confirmation(&tx.id(), 0),
        )
        .await
        {
            Ok(Ok(c)) if c.state.is_committed() => println!(
                "replicated: peer {} reports the transaction {} at height {}",
                last.index,
                c.state.state,
                c.state.height.unwrap_or_default()
            ),
            _ => eprintln!(
                "warning: peer {} has not seen the transaction within 60 s",
                last.index
            ),
        }
    }
    // The members vote on it: final within a few epochs (docs/consensus.md, "Finality").
    let state = client
        .await_final(&tx.id(), Duration::from_secs(60))
        .await
        .map_err(client_error)?;
    let head = client.head().await.map_err(client_error)?;
    match head.finalized {
        Some(final_block) if state.is_final() => println!(
            "final: transaction {} is final (peer 0's final block {} at height {})",
            state.id, final_block.cid, final_block.height
        ),
        _ => {
            return Err(CliError::Rejected(format!(
                "transaction {} did not become final: {}",
                state.id, state.state
            )))
        }
    }
    Ok(artefact_cid)
}

/// Runs `mediachain devnet`.
pub fn run(args: DevnetArgs) -> Result<(), CliError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| CliError::Network(format!("cannot start the runtime: {e}")))?;
    runtime.block_on(run_async(args))
}

async fn run_async(args: DevnetArgs) -> Result<(), CliError> {
    let binary = peer_binary(&args)?;
    let (root, mut peers) = tower(&args)?;
    let block_interval = humantime::parse_duration(&args.block_interval)
        .map_err(|e| CliError::Input(format!("--block-interval `{}`: {e}", args.block_interval)))?;
    let peer_dirs: Vec<PathBuf> = peers.iter().map(|p| p.dir.clone()).collect();
    let settings = netparams::Settings {
        block_interval,
        transaction_pow_bits: args.transaction_pow_bits,
    };
    let params = netparams::ensure(&args.dir, root, &peer_dirs, settings)?;
    println!(
        "devnet: trust tower in {} (root {root}); starting {} peers with {}",
        args.dir.display(),
        peers.len(),
        binary.display()
    );
    let outcome = async {
        for peer in peers.iter_mut() {
            spawn(&args, &params, &binary, peer)?;
        }
        wait_ready(&mut peers, args.ready_timeout).await?;
        println!("devnet: {} peers ready", peers.len());
        demonstrate(&args.dir, &peers).await
    }
    .await;
    let artefact = match outcome {
        Ok(artefact) => artefact,
        Err(e) => {
            stop(&mut peers).await;
            return Err(e);
        }
    };
    println!();
    println!("endpoints:");
    for peer in &peers {
        println!(
            "  peer {}  {}  api {}  p2p {}  log {}",
            peer.index,
            peer.id,
            peer.api,
            peer.p2p,
            peer.dir.join("peer.log").display()
        );
    }
    println!();
    println!(
        "try:  mediachain --peer {} history {artefact}",
        peers[0].api
    );
    println!(
        "      mediachain --peer {} watch --from 0        (OpenAPI: {}/v1/openapi.json)",
        peers[0].api, peers[0].api
    );
    if args.exit_after_demo {
        stop(&mut peers).await;
        println!("devnet: stopped");
        return Ok(());
    }
    println!("devnet: serving; press Ctrl-C to stop");
    let result = serve_until_signal(&mut peers).await;
    stop(&mut peers).await;
    println!("devnet: stopped");
    result
}

async fn serve_until_signal(peers: &mut [Peer]) -> Result<(), CliError> {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| CliError::Network(e.to_string()))?;
    let mut check = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(()),
            _ = terminate.recv() => return Ok(()),
            _ = check.tick() => {
                for peer in peers.iter_mut() {
                    if let Some(child) = peer.child.as_mut() {
                        if let Ok(Some(status)) = child.try_wait() {
                            return Err(CliError::Network(format!(
                                "peer {} exited ({status}); the end of its log:\n{}",
                                peer.index,
                                log_tail(peer)
                            )));
                        }
                    }
                }
            }
        }
    }
}
