//! `mediachain-peer export` and `mediachain-peer import`.
//!
//! Export reads the data directory directly when no peer runs on it. sled lets one process open
//! a datastore, so while the peer runs, export asks that peer instead: `run` records its API
//! address in `<data-dir>/api-address`, and export streams `GET /v1/journal/export` from it
//! (`--peer URL` does the same for a peer elsewhere, e.g. a backup job in the cluster). Either
//! way the file is written to `FILE.partial` and renamed when complete.
//!
//! Import takes the peer's own configuration (flags, environment, `--config`) for the network,
//! its root key and revocations, so it verifies exactly as the peer would.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;

use super::export::{root_at, write_car, ExportReport};
use super::import::{import_car, ImportError, ImportProgress, STORE_DIR};
use crate::api::export::{HEIGHT_HEADER, ROOT_HEADER};
use crate::node::config::RunArgs;
use crate::store::{Store, DEFAULT_MAX_OBJECT_SIZE};

/// The file in the data directory where a running peer records its API address.
pub const API_ADDRESS_FILE: &str = "api-address";

/// `mediachain-peer export`.
#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// The peer's data directory (if a peer runs on it, the export streams from that peer).
    #[arg(long, required_unless_present = "peer")]
    pub data_dir: Option<PathBuf>,
    /// Export from the peer whose HTTP API is at this URL instead, e.g. http://peer-0:8080.
    #[arg(long, conflicts_with = "data_dir")]
    pub peer: Option<String>,
    /// The CAR file to write.
    #[arg(long)]
    pub out: PathBuf,
    /// Export up to the block at this height [default: the tip].
    #[arg(long)]
    pub to_height: Option<u64>,
}

/// `mediachain-peer import`.
#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// The peer's settings (network, root key, revocations, data directory...).
    #[command(flatten)]
    pub run: RunArgs,
    /// Do nothing (exit 0) if the data directory already holds a datastore (init containers).
    #[arg(long)]
    pub if_empty: bool,
    /// The CAR file (an export of this network), or the URL of a peer's export, e.g.
    /// http://peer-0:8080/v1/journal/export.
    pub file: String,
}

/// Records the API address of a running peer in its data directory (an unspecified address is
/// reached on loopback).
pub fn record_api_address(data_dir: &Path, mut addr: SocketAddr) -> std::io::Result<()> {
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    std::fs::write(data_dir.join(API_ADDRESS_FILE), format!("{addr}\n"))
}

/// A single-threaded runtime for one command.
pub(super) fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))
}

fn fail(message: impl std::fmt::Display, code: u8) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(code)
}

/// Runs `mediachain-peer export`: 0 written, 1 failed.
pub fn export(args: ExportArgs) -> ExitCode {
    let started = Instant::now();
    let outcome = runtime().and_then(|rt| rt.block_on(export_to_file(&args)));
    match outcome {
        Ok(report) => {
            println!(
                "exported the journal at height {} (root {}) to {}: {} blocks and objects, {:.1} MB in {:.1}s",
                report.height,
                report.root,
                args.out.display(),
                report.sections,
                report.bytes as f64 / 1e6,
                started.elapsed().as_secs_f64()
            );
            ExitCode::SUCCESS
        }
        Err(e) => fail(e, 1),
    }
}

/// Where an export comes from.
enum Source {
    Store(Store),
    Peer(String),
}

fn source(args: &ExportArgs) -> Result<Source, String> {
    let data_dir = match (&args.peer, &args.data_dir) {
        (Some(url), _) => return Ok(Source::Peer(url.trim_end_matches('/').to_string())),
        (None, Some(dir)) => dir,
        (None, None) => return Err("give --data-dir or --peer".into()),
    };
    let store_dir = data_dir.join(STORE_DIR);
    if !store_dir.is_dir() {
        return Err(format!("{} holds no datastore", data_dir.display()));
    }
    match Store::open(&store_dir, DEFAULT_MAX_OBJECT_SIZE) {
        Ok(store) => Ok(Source::Store(store)),
        Err(e) if e.to_string().contains("could not acquire lock") => {
            let file = data_dir.join(API_ADDRESS_FILE);
            let addr = std::fs::read_to_string(&file).map_err(|read| {
                format!(
                    "a process holds {}, but {}: {read}",
                    store_dir.display(),
                    file.display()
                )
            })?;
            let url = format!("http://{}", addr.trim());
            eprintln!(
                "a peer runs on {}: exporting through its API at {url}",
                data_dir.display()
            );
            Ok(Source::Peer(url))
        }
        Err(e) => Err(e.to_string()),
    }
}

/// Exports as `args` say into `args.out` (through `args.out.partial`, renamed when complete).
pub(super) async fn export_to_file(args: &ExportArgs) -> Result<ExportReport, String> {
    let source = source(args)?;
    let partial = PathBuf::from(format!("{}.partial", args.out.display()));
    let file = tokio::fs::File::create(&partial)
        .await
        .map_err(|e| format!("{}: {e}", partial.display()))?;
    let mut out = tokio::io::BufWriter::with_capacity(1 << 20, file);
    let written = match source {
        Source::Store(store) => {
            match root_at(&store.index().map_err(|e| e.to_string())?, args.to_height) {
                Ok(root) => write_car(store, root, &mut out)
                    .await
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            }
        }
        Source::Peer(url) => download(&url, args.to_height, &mut out).await,
    };
    let finished = match written {
        Ok(report) => finish(out, &partial, &args.out).await.map(|()| report),
        Err(e) => Err(e),
    };
    if finished.is_err() {
        let _ = tokio::fs::remove_file(&partial).await;
    }
    finished
}

async fn finish(
    mut out: tokio::io::BufWriter<tokio::fs::File>,
    partial: &Path,
    target: &Path,
) -> Result<(), String> {
    let io = |e: std::io::Error| format!("{}: {e}", partial.display());
    out.flush().await.map_err(io)?;
    out.get_ref().sync_all().await.map_err(io)?;
    tokio::fs::rename(partial, target)
        .await
        .map_err(|e| format!("{}: {e}", target.display()))
}

/// Streams `GET {url}/v1/journal/export` into `out`.
async fn download(
    url: &str,
    to_height: Option<u64>,
    out: &mut (impl tokio::io::AsyncWrite + Unpin),
) -> Result<ExportReport, String> {
    let mut request = reqwest::Client::new().get(format!("{url}/v1/journal/export"));
    if let Some(h) = to_height {
        request = request.query(&[("toHeight", h)]);
    }
    let failed = |e: reqwest::Error| format!("export from {url}: {e}");
    let mut response = request.send().await.map_err(failed)?;
    if !response.status().is_success() {
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        return Err(format!("export from {url}: {status}: {body}"));
    }
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .unwrap_or_default()
    };
    let root = header(ROOT_HEADER)
        .parse()
        .map_err(|e| format!("export from {url}: bad {ROOT_HEADER} header: {e}"))?;
    let height = header(HEIGHT_HEADER)
        .parse()
        .map_err(|e| format!("export from {url}: bad {HEIGHT_HEADER} header: {e}"))?;
    let mut bytes = 0u64;
    while let Some(chunk) = response.chunk().await.map_err(failed)? {
        out.write_all(&chunk)
            .await
            .map_err(|e| format!("writing the export: {e}"))?;
        bytes += chunk.len() as u64;
    }
    Ok(ExportReport {
        root,
        height,
        sections: 0,
        bytes,
    })
}

/// Runs `mediachain-peer import`: 0 imported (or nothing to do with `--if-empty`), 1 refused,
/// 2 invalid configuration.
pub fn import(args: ImportArgs) -> ExitCode {
    let config = match args.run.validate() {
        Ok(config) => config,
        Err(e) => return fail(e, 2),
    };
    let rules = config.rules();
    // The network's genesis, as `Node::open` derives it.
    let genesis = config.genesis();
    let started = Instant::now();
    let mut last = Instant::now();
    let report = |p: &ImportProgress| {
        if last.elapsed() < Duration::from_secs(2) {
            return;
        }
        last = Instant::now();
        if p.total_blocks == 0 {
            eprintln!(
                "import: read {} blocks and objects ({:.1} MB)",
                p.sections,
                p.bytes as f64 / 1e6
            );
        } else {
            eprintln!(
                "import: verified {}/{} blocks ({} entries)",
                p.blocks, p.total_blocks, p.entries
            );
        }
    };
    let outcome = runtime().and_then(|rt| {
        rt.block_on(async {
            let reader = open(&args.file).await?;
            import_car(
                &config.data_dir,
                reader,
                rules,
                &genesis,
                config.max_object_size,
                report,
            )
            .await
            .map_err(|e| match e {
                ImportError::NotEmpty(_) if args.if_empty => String::new(),
                e => format!("{} refused: {e}", args.file),
            })
        })
    });
    match outcome {
        Ok(r) => {
            println!(
                "imported {}: tip {} at height {}, {} blocks, {} entries, {} objects ({:.1} MB) in {:.1}s",
                args.file,
                r.root,
                r.height,
                r.progress.blocks,
                r.progress.entries,
                r.progress.sections,
                r.progress.bytes as f64 / 1e6,
                started.elapsed().as_secs_f64()
            );
            ExitCode::SUCCESS
        }
        Err(e) if e.is_empty() => {
            println!(
                "{} already holds a datastore: nothing imported",
                config.data_dir.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => fail(e, 1),
    }
}

/// Reads a CAR file, or streams it from an `http(s)://` URL.
async fn open(source: &str) -> Result<Box<dyn tokio::io::AsyncRead + Unpin + Send>, String> {
    if source.starts_with("http://") || source.starts_with("https://") {
        use futures::StreamExt;
        let response = reqwest::get(source)
            .await
            .map_err(|e| format!("{source}: {e}"))?;
        if !response.status().is_success() {
            let status = response.status();
            let body = response.text().await.unwrap_or_default();
            return Err(format!("{source}: {status}: {body}"));
        }
        let body = response
            .bytes_stream()
            .map(|chunk| chunk.map_err(std::io::Error::other));
        return Ok(Box::new(tokio_util::io::StreamReader::new(Box::pin(body))));
    }
    let file = tokio::fs::File::open(source)
        .await
        .map_err(|e| format!("{source}: {e}"))?;
    Ok(Box::new(tokio::io::BufReader::with_capacity(1 << 20, file)))
}
