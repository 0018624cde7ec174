//! `mediachain ingest`: a catalogue (CSV or JSON Lines) into the journal.
//!
//! Each row becomes an artefact (`insert`) with an `artefactCreatedBy` cell (`update`) linking
//! its creator, an entity inserted the first time the run meets its name (de-duplicated by name;
//! one already in the index is only linked: the creators a window of rows meets first are looked
//! up together, concurrently). Rows are grouped into transactions of many entries
//! ([`batch`]), spread round-robin over the peers given (passing over a peer whose transactions go
//! unconfirmed past the timeout: [`peers`]), their objects uploaded concurrently and
//! the transactions kept in flight up to a bound ([`send`]). A local journal ([`journal`]) records
//! what was sent and confirmed, so that a run interrupted (Ctrl-C, a crash) resumes without
//! doing anything twice. A row that cannot be mapped is reported with its line number and
//! skipped.

mod batch;
mod journal;
mod mapping;
mod peers;
mod send;
mod source;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use futures::{StreamExt, TryStreamExt};
use indicatif::{ProgressBar, ProgressStyle};
use mediachain::client::{Client, ClientError};
use mediachain::model::{Cid, Object};
use tokio::sync::Semaphore;

use crate::client::{client_error, read_chain, PeerArgs};
use crate::error::CliError;
use crate::input;
use batch::{Batcher, Known};
use journal::{Header, Journal};
use mapping::Mapping;
use send::{Sender, Stats};
use source::Format;

const EXAMPLE: &str = "\
Example: a CSV catalogue with columns title, artist, year, spread over two peers:

  mediachain register --key client.key --out client.chain
  mediachain ingest works.csv --map name=title --map creator=artist --map created=year \\
      --peers http://127.0.0.1:8080,http://127.0.0.1:8081

Mapping fields: `name` (the artefact's name, required), `creator` (its creator's name: an
entity, inserted once per name), `creator.KEY` (the creator's meta.KEY), any other KEY (the
artefact's meta.KEY). --mapping FILE reads the same FIELD=COLUMN pairs, one a line.

Interrupted (Ctrl-C, a crash)? Run the same command again: the journal (INPUT.journal by
default) holds what was confirmed, and the run goes on from there without duplicating anything.";

/// Arguments of `mediachain ingest`.
#[derive(Args, Debug)]
#[command(after_help = EXAMPLE)]
pub struct IngestArgs {
    /// The catalogue: CSV with a header line, or JSON Lines (one object a line).
    input: PathBuf,
    /// The input format (default: from the file's extension: .csv, .jsonl, .ndjson, .json).
    #[arg(long, value_enum)]
    format: Option<Format>,
    /// A field fed by a column: FIELD=COLUMN (repeatable).
    #[arg(long = "map", value_name = "FIELD=COLUMN")]
    map: Vec<String>,
    /// A file of FIELD=COLUMN pairs, one a line (`#` comments); --map pairs override it.
    #[arg(long)]
    mapping: Option<PathBuf>,
    /// The client's key.
    #[arg(long, default_value = "client.key")]
    key: PathBuf,
    /// The client's Level-2 chain (from `register`).
    #[arg(long, default_value = "client.chain")]
    chain: PathBuf,
    /// The peers to spread transactions over (comma-separated or repeated; default: --peer).
    #[arg(long, value_delimiter = ',', value_name = "URL")]
    peers: Vec<String>,
    /// The journal of this ingestion (default: the input's path with `.journal` appended).
    #[arg(long)]
    journal: Option<PathBuf>,
    /// Most rows in one transaction (each row is one or two entries, plus its creator's insert
    /// the first time; default: as many as the peers' limit of entries per transaction takes,
    /// the cheapest for the peers: much of their work is per transaction).
    #[arg(long)]
    rows_per_tx: Option<usize>,
    /// Transactions awaiting their block, per peer.
    #[arg(long, default_value_t = 32)]
    in_flight: usize,
    /// Concurrent batch uploads (of up to 1,024 objects each) to one peer (a peer refuses a
    /// client more than 8 uploads in progress by default: `429`, retried with a back-off).
    #[arg(long, default_value_t = 8)]
    uploads: usize,
    /// Requests open at once to one peer (a peer refuses a client more than 64 connections by
    /// default; busy answers are retried with a back-off).
    #[arg(long, default_value_t = 24)]
    connections: usize,
    /// How long a transaction may go unseen before its peer is asked where it stands (a peer
    /// still holding it pending gets no new transactions for that long).
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    confirm_timeout: Duration,
    /// Print the summary as one JSON object.
    #[arg(long)]
    json: bool,
}

/// Runs `mediachain ingest`.
pub fn run(args: IngestArgs, peer: &PeerArgs) -> Result<(), CliError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Network(format!("cannot start the runtime: {e}")))?;
    runtime.block_on(run_async(args, peer))
}

async fn run_async(args: IngestArgs, peer: &PeerArgs) -> Result<(), CliError> {
    let started = Instant::now();
    let mapping = Mapping::parse(args.mapping.as_deref(), &args.map).map_err(CliError::Input)?;
    let format = match args.format.or_else(|| Format::of(&args.input)) {
        Some(f) => f,
        None => {
            return Err(CliError::Input(format!(
                "{}: say --format csv or --format jsonl",
                args.input.display()
            )))
        }
    };
    let size = std::fs::metadata(&args.input)
        .map_err(|e| CliError::Input(format!("{}: {e}", args.input.display())))?
        .len();
    let header = Header {
        input: args.input.display().to_string(),
        size,
        mapping: mapping.describe(),
    };
    let journal_path = args.journal.clone().unwrap_or_else(|| {
        let mut p = args.input.clone().into_os_string();
        p.push(".journal");
        PathBuf::from(p)
    });
    let (journal, mut resumed) = Journal::open(&journal_path, &header).map_err(CliError::Input)?;

    let urls = if args.peers.is_empty() {
        vec![peer.peer.clone()]
    } else {
        args.peers.clone()
    };
    let clients = urls
        .iter()
        .map(|u| Client::new(u).map(|c| c.with_retry(send::RETRY)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(client_error)?;
    let key = input::secret_key(&args.key, &input::PassphraseArgs::default())?;
    let chain = read_chain(&args.chain)?;
    let info = clients[0].info().await.map_err(client_error)?;
    let max_entries = info.max_entries_per_transaction;

    let total = source::rows(&args.input, format)
        .map_err(CliError::Input)?
        .count() as u64;
    let progress = progress_bar(total);
    let sender = Arc::new(Sender::new(
        clients.clone(),
        (key, chain, info.transaction_pow_bits),
        (args.uploads, args.connections),
        (journal, args.confirm_timeout),
        progress.clone(),
    ));
    for sent in sender
        .resolve(std::mem::take(&mut resumed.unresolved))
        .await
        .map_err(client_error)?
    {
        resumed.commit(&sent);
    }
    if !resumed.done.is_empty() {
        progress.suspend(|| {
            eprintln!(
                "ingest: resuming from {}: {} rows already committed",
                journal_path.display(),
                resumed.done.len()
            );
        });
    }
    progress.inc(resumed.done.len() as u64);

    let from = clients[0].head().await.map_err(client_error)?.height + 1;
    let watcher = tokio::spawn(sender.clone().watch(from));
    let sweeper = tokio::spawn(
        sender
            .clone()
            .sweep_every(Duration::from_secs(2), args.confirm_timeout),
    );
    let mut interrupts = interrupts();
    let slots = Arc::new(Semaphore::new(args.in_flight.max(1) * clients.len()));
    let known: HashMap<String, Known> = resumed
        .entities
        .iter()
        .filter_map(|(name, cid)| Some((name.clone(), Known::Committed(cid.parse::<Cid>().ok()?))))
        .collect();
    let mut batcher = Batcher::new(known, max_entries, args.rows_per_tx.unwrap_or(usize::MAX));
    let mut tasks = tokio::task::JoinSet::new();
    let mut rows = source::rows(&args.input, format).map_err(CliError::Input)?;
    'rows: while *interrupts.borrow() == 0 {
        // A window of rows is read ahead so that the creators it meets for the first time are
        // looked up together, not one round trip per creator between rows.
        let mut window = Vec::with_capacity(WINDOW);
        let mut end = false;
        while window.len() < WINDOW {
            let Some((line, row)) = rows.next() else {
                end = true;
                break;
            };
            if resumed.done.contains(&line) {
                continue;
            }
            lock_stats(&sender).rows += 1;
            match row.and_then(|r| mapping.record(&r)) {
                Ok(record) => window.push((line, record)),
                Err(e) => skip(&sender, line, e.to_string()),
            }
        }
        for (name, cid) in committed_creators(&clients[0], &batcher, &window).await? {
            batcher.committed(&name, cid);
        }
        for (line, record) in window {
            if *interrupts.borrow() > 0 {
                break 'rows;
            }
            let full = match batcher.push(line, &record, mediachain::time::now()) {
                Ok(full) => full,
                Err(e) => {
                    skip(&sender, line, e);
                    continue;
                }
            };
            if let Some(batch) = full {
                let slot = tokio::select! {
                    slot = slots.clone().acquire_owned() => slot.map_err(|e| CliError::Network(e.to_string()))?,
                    _ = interrupts.changed() => break 'rows,
                };
                tasks.spawn(sender.clone().send(batch, sender.next_peer(), slot));
            }
        }
        if end {
            break;
        }
    }
    if *interrupts.borrow() == 0 {
        if let Some(batch) = batcher.take() {
            let slot = slots
                .clone()
                .acquire_owned()
                .await
                .map_err(|e| CliError::Network(e.to_string()))?;
            tasks.spawn(sender.clone().send(batch, sender.next_peer(), slot));
        }
    }
    // Every transaction sent is resolved (seen in a block, or looked up after the timeout),
    // unless a second Ctrl-C says not to wait: the journal lets the next run finish the job.
    while (!tasks.is_empty() || sender.in_flight() > 0) && *interrupts.borrow() < 2 {
        tokio::select! {
            _ = tasks.join_next(), if !tasks.is_empty() => {}
            () = tokio::time::sleep(Duration::from_millis(100)) => {}
            _ = interrupts.changed() => {}
        }
    }
    let interrupted = *interrupts.borrow() > 0;
    watcher.abort();
    sweeper.abort();
    progress.finish_and_clear();
    if let Err(e) = lock_journal_sync(&sender) {
        return Err(CliError::Input(format!(
            "journal {}: {e}",
            journal_path.display()
        )));
    }
    let stats = std::mem::take(&mut *lock_stats(&sender));
    report(&stats, &resumed, started.elapsed(), interrupted, args.json);
    Ok(())
}

/// Counts Ctrl-C presses.
fn interrupts() -> tokio::sync::watch::Receiver<u32> {
    let (tx, rx) = tokio::sync::watch::channel(0);
    tokio::spawn(async move {
        while tokio::signal::ctrl_c().await.is_ok() {
            tx.send_modify(|n| *n += 1);
            if *tx.borrow() == 1 {
                eprintln!("ingest: stopping: waiting for the transactions in flight (Ctrl-C again to stop now)");
            }
        }
    });
    rx
}

fn lock_stats(sender: &Sender) -> std::sync::MutexGuard<'_, Stats> {
    sender
        .stats
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn lock_journal_sync(sender: &Sender) -> std::io::Result<()> {
    sender
        .journal
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .sync()
}

fn skip(sender: &Sender, line: u64, reason: String) {
    lock_stats(sender).skipped.push((line, reason));
    sender.progress.inc(1);
}

/// Rows read ahead at a time (their new creators are looked up together).
const WINDOW: usize = 2_048;
/// Index lookups of creators in flight at a time.
const LOOKUPS: usize = 32;

/// The creators first met in `window` (each name once) that the peer's index already holds,
/// with their CIDs: looked up concurrently, at most [`LOOKUPS`] at a time.
async fn committed_creators(
    client: &Client,
    batcher: &Batcher,
    window: &[(u64, mapping::Record)],
) -> Result<Vec<(String, Cid)>, CliError> {
    let mut names = std::collections::HashSet::new();
    let fresh: Vec<(String, Object)> = window
        .iter()
        .filter_map(|(_, record)| record.creator.as_ref())
        .filter_map(|creator| {
            let name = creator.meta.name().unwrap_or_default();
            (batcher.is_new(name) && names.insert(name.to_string()))
                .then(|| (name.to_string(), Object::Entity(creator.clone())))
        })
        .collect();
    let found: Vec<Option<(String, Cid)>> = futures::stream::iter(fresh)
        .map(|(name, entity)| async move {
            Ok::<_, CliError>(indexed(client, &entity).await?.map(|cid| (name, cid)))
        })
        .buffered(LOOKUPS)
        .try_collect()
        .await?;
    Ok(found.into_iter().flatten().collect())
}

/// The CID of `object` when the peer's index holds it as a canonical.
async fn indexed(client: &Client, object: &Object) -> Result<Option<Cid>, CliError> {
    let cid = object.cid().map_err(|e| CliError::Input(e.to_string()))?;
    match client.index(&cid).await {
        Ok(_) => Ok(Some(cid)),
        Err(ClientError::Problem(p)) if p.status == 404 => Ok(None),
        Err(e) => Err(client_error(e)),
    }
}

fn progress_bar(total: u64) -> ProgressBar {
    let bar = ProgressBar::new(total);
    if let Ok(style) = ProgressStyle::with_template(
        "{elapsed_precise} [{bar:30}] {pos}/{len} rows ({per_sec}, ETA {eta})",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// Prints the closing summary (or one JSON object with `json`).
fn report(
    stats: &Stats,
    resumed: &journal::Resumed,
    took: Duration,
    interrupted: bool,
    json: bool,
) {
    let failed_rows: usize = stats.failed.iter().map(|(lines, _)| lines.len()).sum();
    let secs = took.as_secs_f64();
    if json {
        let summary = serde_json::json!({
            "rows_read": stats.rows,
            "rows_skipped": stats.skipped.len(),
            "skipped": stats.skipped.iter().map(|(l, r)| serde_json::json!({"line": l, "reason": r})).collect::<Vec<_>>(),
            "rows_failed": failed_rows,
            "failed": stats.failed.iter().map(|(l, r)| serde_json::json!({"lines": l, "reason": r})).collect::<Vec<_>>(),
            "artefacts_committed": stats.artefacts,
            "cells_committed": stats.cells,
            "entities_committed": stats.entities,
            "transactions_committed": stats.transactions,
            "rows_committed_before": resumed.done.len(),
            "seconds": (secs * 10.0).round() / 10.0,
            "interrupted": interrupted,
        });
        println!("{summary}");
        return;
    }
    println!(
        "ingest: {} rows read in {secs:.1} s; committed {} artefacts, {} artefactCreatedBy cells, {} entities in {} transactions ({:.0} entries/s)",
        stats.rows,
        stats.artefacts,
        stats.cells,
        stats.entities,
        stats.transactions,
        (stats.artefacts + stats.cells + stats.entities) as f64 / secs.max(1e-3),
    );
    if !resumed.done.is_empty() {
        println!(
            "ingest: {} rows were committed by earlier runs",
            resumed.done.len()
        );
    }
    println!("ingest: {} rows skipped", stats.skipped.len());
    for (line, reason) in stats.skipped.iter().take(50) {
        println!("  line {line}: {reason}");
    }
    if stats.skipped.len() > 50 {
        println!("  ... and {} more", stats.skipped.len() - 50);
    }
    if failed_rows > 0 {
        println!("ingest: {failed_rows} rows not committed (run again to retry them):");
        for (lines, reason) in stats.failed.iter().take(20) {
            println!("  lines {:?}: {reason}", lines);
        }
    }
    if interrupted {
        println!("ingest: interrupted; run the same command again to go on");
    }
}
