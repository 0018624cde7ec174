//! The client commands: `keygen`, `register`, `put`, `submit`, `status`, `watch`, `get`,
//! `history`, `search` and `head`, all talking to one peer's HTTP API (`--peer`, `$MEDIACHAIN_PEER`).

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use futures::StreamExt;
use mediachain::client::wire::CBOR;
use mediachain::client::{Client, ClientError};
use mediachain::journal::{Transaction, TxId};
use mediachain::model::{Cid, Ipld, JournalEntry, Object};
use mediachain::time;
use mediachain::trust::{keyfile, Chain, SecretKey};

use crate::error::CliError;
use crate::input;

/// Default peer API address.
pub const DEFAULT_PEER: &str = "http://127.0.0.1:8080";

/// Which peer to talk to.
#[derive(Args, Debug, Clone)]
pub struct PeerArgs {
    /// Base URL of the peer's HTTP API.
    #[arg(long, env = "MEDIACHAIN_PEER", default_value = DEFAULT_PEER, global = true)]
    pub peer: String,
}

/// A client command.
#[derive(Subcommand)]
pub enum ClientCommand {
    /// Generate a client key (PKCS#8 PEM, mode 0600); prints its PeerId. Same as `key generate`.
    Keygen {
        /// Where to write the key.
        #[arg(long, short, default_value = "client.key")]
        out: PathBuf,
        /// Replace an existing file.
        #[arg(long)]
        force: bool,
    },
    /// Register a client key with a peer: solves the peer's proof-of-work challenge and writes
    /// the Level-2 certificate chain the peer signs.
    Register {
        /// The client's key.
        #[arg(long, default_value = "client.key")]
        key: PathBuf,
        /// Where to write the certificate chain (PEM).
        #[arg(long, short, default_value = "client.chain")]
        out: PathBuf,
    },
    /// Store an object or a file on the peer; prints its CID. Shows progress on long uploads.
    Put {
        /// A file to store as a raw blob.
        #[arg(long, conflicts_with = "json", required_unless_present = "json")]
        file: Option<PathBuf>,
        /// A Mediachain object in DAG-JSON (`-` for standard input), stored as DAG-CBOR.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Progress on standard error even when it is not a terminal.
        #[arg(long)]
        progress: bool,
    },
    /// Sign and submit a transaction (insert entities/artefacts, update their chains); prints
    /// its id, and with --wait its state once final (in a final block, never reverted), or with
    /// --wait committed as soon as a block commits it (faster; a committed block may still be
    /// replaced by a reorganisation).
    Submit {
        /// The client's key.
        #[arg(long, default_value = "client.key")]
        key: PathBuf,
        /// The client's Level-2 chain (from `register`).
        #[arg(long, default_value = "client.chain")]
        chain: PathBuf,
        /// Journal an `insert` of this entity or artefact CID (repeatable).
        #[arg(long = "insert", value_name = "CID")]
        inserts: Vec<String>,
        /// Journal an `update` to this chain cell CID (repeatable); its `ref` and `chain`
        /// fields give the canonical and the previous head.
        #[arg(long = "update", value_name = "CELL")]
        updates: Vec<String>,
        /// Wait and print the transaction's state: `final` (the default: in a final block; on
        /// a network without finality, committed is the strongest answer) or `committed`.
        #[arg(long, value_name = "STATE", num_args = 0..=1, default_missing_value = "final")]
        wait: Option<WaitFor>,
    },
    /// Print where a transaction stands (pending, committed, merged, final, rejected, unknown).
    Status {
        /// Transaction id (64 hex digits).
        id: String,
    },
    /// Follow the view-update stream: one JSON line per block joining the canonical chain.
    Watch {
        /// Replay from this height first (default: only new blocks).
        #[arg(long)]
        from: Option<u64>,
        /// Only blocks about this canonical (repeatable).
        #[arg(long = "canonical", value_name = "CID")]
        canonicals: Vec<String>,
        /// Only blocks committing this transaction (repeatable).
        #[arg(long = "tx", value_name = "ID")]
        txs: Vec<String>,
        /// Stop after this many blocks.
        #[arg(long)]
        count: Option<usize>,
    },
    /// Fetch an object: its bytes (to --out or standard output), or DAG-JSON with --json.
    Get {
        /// The CID.
        cid: String,
        /// Print DAG-JSON.
        #[arg(long)]
        json: bool,
        /// Write the bytes to this file.
        #[arg(long, short)]
        out: Option<PathBuf>,
    },
    /// Print the history of an entity or artefact: the object and its chain of cells.
    History {
        /// The canonical CID.
        canonical: String,
        /// Most cells.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Search the peer's query index: full text over entity and artefact metadata, artefacts
    /// by creator, by commit time, canonicals by CID prefix. Prints a page of hits as JSON
    /// (its `next` is the --cursor of the following page).
    Search {
        /// Full-text query (words, "phrases", AND/OR, -word).
        query: Option<String>,
        /// Artefacts created by this entity (canonical CID).
        #[arg(long)]
        creator: Option<String>,
        /// Canonicals whose CID starts with this prefix.
        #[arg(long)]
        canonical: Option<String>,
        /// Current head committed at or after this time (RFC 3339).
        #[arg(long)]
        from: Option<String>,
        /// Current head committed before this time (RFC 3339).
        #[arg(long)]
        to: Option<String>,
        /// Hits per page (1 to 100).
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// The `next` of the previous page.
        #[arg(long)]
        cursor: Option<String>,
    },
    /// Print the head of the journal.
    Head,
}

/// Maps a client failure to the CLI's categories.
pub fn client_error(err: ClientError) -> CliError {
    match &err {
        ClientError::Problem(problem) => match problem.status {
            400 | 404 | 413 | 415 => CliError::Input(err.to_string()),
            500..=599 if problem.status != 503 => CliError::Network(err.to_string()),
            _ => CliError::Rejected(err.to_string()),
        },
        ClientError::Unreachable { .. } | ClientError::Protocol(_) => {
            CliError::Network(err.to_string())
        }
        ClientError::Pow(_) => CliError::Rejected(err.to_string()),
    }
}

fn cid(text: &str) -> Result<Cid, CliError> {
    text.parse()
        .map_err(|e| CliError::Input(format!("`{text}` is not a CID: {e}")))
}

fn tx_id(text: &str) -> Result<TxId, CliError> {
    text.parse()
        .map_err(|e| CliError::Input(format!("`{text}`: {e}")))
}

fn print_json<T: serde::Serialize>(value: &T) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(value).map_err(|e| CliError::Input(e.to_string()))?;
    println!("{text}");
    Ok(())
}

/// Reads a client's Level-2 chain.
pub fn read_chain(path: &Path) -> Result<Chain, CliError> {
    Chain::from_pem(&input::read_text(path)?)
        .map_err(|e| CliError::Input(format!("{}: {e}", path.display())))
}

/// Runs a client command against `peer`.
pub fn run(cmd: ClientCommand, peer: &PeerArgs) -> Result<(), CliError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| CliError::Network(format!("cannot start the runtime: {e}")))?;
    runtime.block_on(run_async(cmd, peer))
}

async fn run_async(cmd: ClientCommand, peer: &PeerArgs) -> Result<(), CliError> {
    let client = Client::new(&peer.peer).map_err(client_error)?;
    match cmd {
        ClientCommand::Keygen { out, force } => {
            let key = SecretKey::generate();
            let text = keyfile::to_plain_pem(&key).map_err(CliError::Input)?;
            keyfile::write_secret(&out, &text, force)?;
            println!("{}", key.public());
            Ok(())
        }
        ClientCommand::Register { key, out } => {
            let key = input::secret_key(&key, &input::PassphraseArgs::default())?;
            let (chain, registration) = client.register(&key).await.map_err(client_error)?;
            std::fs::write(&out, chain.to_pem())
                .map_err(|e| CliError::Input(format!("{}: {e}", out.display())))?;
            eprintln!(
                "registered {} at Level {} (issued by {}, valid until {}); chain written to {}",
                registration.client,
                registration.level,
                registration.issuer,
                registration.not_after,
                out.display()
            );
            println!("{}", registration.client);
            Ok(())
        }
        ClientCommand::Put {
            file,
            json,
            progress,
        } => put(&client, file, json, progress).await,
        ClientCommand::Submit {
            key,
            chain,
            inserts,
            updates,
            wait,
        } => submit(&client, &key, &chain, &inserts, &updates, wait).await,
        ClientCommand::Status { id } => {
            let state = client.status(&tx_id(&id)?).await.map_err(client_error)?;
            print_json(&state)
        }
        ClientCommand::Watch {
            from,
            canonicals,
            txs,
            count,
        } => {
            let canonicals = canonicals
                .iter()
                .map(|c| cid(c))
                .collect::<Result<Vec<_>, _>>()?;
            let txs = txs
                .iter()
                .map(|t| tx_id(t))
                .collect::<Result<Vec<_>, _>>()?;
            let mut stream = client
                .events(from, &canonicals, &txs)
                .await
                .map_err(client_error)?;
            let mut seen = 0;
            while count.is_none_or(|c| seen < c) {
                let Some(block) = stream.next().await else {
                    return Err(CliError::Network("the peer closed the stream".into()));
                };
                let block = block.map_err(client_error)?;
                let line =
                    serde_json::to_string(&block).map_err(|e| CliError::Input(e.to_string()))?;
                println!("{line}");
                let _ = std::io::stdout().flush();
                seen += 1;
            }
            Ok(())
        }
        ClientCommand::Get {
            cid: text,
            json,
            out,
        } => {
            let cid = cid(&text)?;
            if json {
                let value = client.get_object_json(&cid).await.map_err(client_error)?;
                return print_json(&value);
            }
            let bytes = client.get_object(&cid).await.map_err(client_error)?;
            match out {
                Some(path) => std::fs::write(&path, &bytes)
                    .map_err(|e| CliError::Input(format!("{}: {e}", path.display()))),
                None => std::io::stdout()
                    .write_all(&bytes)
                    .map_err(|e| CliError::Input(format!("standard output: {e}"))),
            }
        }
        ClientCommand::History { canonical, limit } => {
            let history = client
                .history(&cid(&canonical)?, limit)
                .await
                .map_err(client_error)?;
            print_json(&history)
        }
        ClientCommand::Search {
            query,
            creator,
            canonical,
            from,
            to,
            limit,
            cursor,
        } => {
            let mut params = vec![("limit", limit.to_string())];
            let optional = [
                ("q", query),
                ("creator", creator),
                ("canonical", canonical),
                ("from", from),
                ("to", to),
                ("cursor", cursor),
            ];
            params.extend(
                optional
                    .into_iter()
                    .filter_map(|(name, value)| value.map(|v| (name, v))),
            );
            print_json(&client.search(&params).await.map_err(client_error)?)
        }
        ClientCommand::Head => print_json(&client.head().await.map_err(client_error)?),
    }
}

async fn put(
    client: &Client,
    file: Option<PathBuf>,
    json: Option<PathBuf>,
    progress: bool,
) -> Result<(), CliError> {
    let (content_type, bytes, cid) = if let Some(path) = json {
        let text = if path.as_os_str() == "-" {
            std::io::read_to_string(std::io::stdin())
                .map_err(|e| CliError::Input(format!("standard input: {e}")))?
        } else {
            input::read_text(&path)?
        };
        let ipld: Ipld = serde_ipld_dagjson::from_slice(text.as_bytes())
            .map_err(|e| CliError::Input(format!("{}: not DAG-JSON: {e}", path.display())))?;
        let object = Object::from_ipld(ipld)
            .map_err(|e| CliError::Input(format!("{}: {e}", path.display())))?;
        let encoded = object
            .encode()
            .map_err(|e| CliError::Input(format!("{}: {e}", path.display())))?;
        (CBOR, encoded.bytes, Some(encoded.cid))
    } else if let Some(path) = file {
        let bytes = std::fs::read(&path)
            .map_err(|e| CliError::Input(format!("{}: {e}", path.display())))?;
        let cid = mediachain::model::codec::cid_of(mediachain::model::RAW, &bytes);
        ("application/octet-stream", bytes, Some(cid))
    } else {
        return Err(CliError::Input("give --file or --json".into()));
    };
    let show = progress || (std::io::stderr().is_terminal() && bytes.len() > 256 * 1024);
    let stored = client
        .put_with_progress(content_type, bytes, cid, move |sent, total| {
            if show {
                let percent = (sent * 100).checked_div(total).unwrap_or(100);
                eprint!("\ruploading: {sent}/{total} bytes ({percent}%)");
                if sent == total {
                    eprintln!();
                }
            }
        })
        .await
        .map_err(client_error)?;
    println!("{}", stored.cid);
    Ok(())
}

/// Builds the entries of a transaction: inserts, then updates read from their cells.
pub async fn entries(
    client: &Client,
    inserts: &[Cid],
    updates: &[Cid],
) -> Result<Vec<JournalEntry>, CliError> {
    let timestamp = time::now();
    let mut entries: Vec<JournalEntry> = inserts
        .iter()
        .map(|&reference| JournalEntry::Insert {
            reference,
            timestamp,
        })
        .collect();
    for &cell_cid in updates {
        let bytes = client.get_object(&cell_cid).await.map_err(client_error)?;
        let Ok(Object::Cell(cell)) = Object::decode(&bytes) else {
            return Err(CliError::Input(format!("{cell_cid} is not a chain cell")));
        };
        entries.push(JournalEntry::Update {
            reference: cell.reference,
            chain: cell_cid,
            chain_previous: cell.chain,
            timestamp,
        });
    }
    Ok(entries)
}

async fn submit(
    client: &Client,
    key: &Path,
    chain: &Path,
    inserts: &[String],
    updates: &[String],
    wait: Option<WaitFor>,
) -> Result<(), CliError> {
    if inserts.is_empty() && updates.is_empty() {
        return Err(CliError::Input(
            "nothing to submit: give --insert CID and/or --update CELL".into(),
        ));
    }
    let key = input::secret_key(key, &input::PassphraseArgs::default())?;
    let chain = read_chain(chain)?;
    let inserts = inserts
        .iter()
        .map(|c| cid(c))
        .collect::<Result<Vec<_>, _>>()?;
    let updates = updates
        .iter()
        .map(|c| cid(c))
        .collect::<Result<Vec<_>, _>>()?;
    let info = client.info().await.map_err(client_error)?;
    let entries = entries(client, &inserts, &updates).await?;
    let tx = Transaction::create(
        &key,
        &chain,
        entries,
        time::now(),
        info.transaction_pow_bits,
    )
    .map_err(|e| CliError::Rejected(e.to_string()))?;
    let from = client.head().await.map_err(client_error)?.height + 1;
    let state = client.submit(&tx).await.map_err(client_error)?;
    println!("{}", state.id);
    if let Some(wait) = wait {
        let confirmation = client
            .await_confirmation(&tx.id(), from)
            .await
            .map_err(client_error)?;
        if !confirmation.state.is_committed() {
            print_json(&confirmation.state)?;
            return Err(CliError::Rejected(format!(
                "transaction {} was not committed: {}{}",
                state.id,
                confirmation.state.state,
                confirmation
                    .state
                    .reason
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default()
            )));
        }
        if wait == WaitFor::Final && !confirmation.state.is_final() {
            let head = client.head().await.map_err(client_error)?;
            if head.finalized.is_none() {
                eprintln!("this network has no finality (no network parameters): committed is the strongest answer");
            } else {
                let state = client
                    .await_final(&tx.id(), FINAL_WAIT)
                    .await
                    .map_err(client_error)?;
                print_json(&state)?;
                return Ok(());
            }
        }
        print_json(&confirmation.state)?;
    }
    Ok(())
}

/// Longest wait for a committed transaction to become final.
const FINAL_WAIT: std::time::Duration = std::time::Duration::from_secs(300);

/// What `submit --wait` waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum WaitFor {
    /// A block committed it (it may still be replaced by a reorganisation).
    Committed,
    /// A final block holds it: never reverted.
    Final,
}
