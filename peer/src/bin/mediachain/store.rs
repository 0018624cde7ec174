//! `mediachain store ...`: the local content-addressed datastore.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::Subcommand;
use mediachain::model::{codec, Cid, Ipld, Object, DAG_CBOR};
use mediachain::store::{Store, DEFAULT_MAX_OBJECT_SIZE};

use crate::error::CliError;
use crate::input;

/// Which store and its limits.
#[derive(clap::Args)]
pub struct StoreArgs {
    /// The datastore directory (created if missing).
    #[arg(long, env = "MEDIACHAIN_STORE")]
    store: PathBuf,
    /// Largest object accepted, in bytes.
    #[arg(long, default_value_t = DEFAULT_MAX_OBJECT_SIZE)]
    max_object_size: usize,
}

impl StoreArgs {
    fn open(&self) -> Result<Store, CliError> {
        Ok(Store::open(&self.store, self.max_object_size)?)
    }
}

/// Datastore commands.
#[derive(Subcommand)]
pub enum StoreCommand {
    /// Store files; prints one CID per file. Without --json a file is stored as a raw blob.
    Put {
        #[command(flatten)]
        store: StoreArgs,
        /// Each file is a Mediachain object in DAG-JSON (links as {"/": "<cid>"}); it is
        /// validated and stored as canonical DAG-CBOR.
        #[arg(long)]
        json: bool,
        /// The files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Write an object's bytes to stdout (or --out), or as DAG-JSON with --json.
    Get {
        #[command(flatten)]
        store: StoreArgs,
        /// The object's CID.
        cid: String,
        /// Print a dag-cbor object as DAG-JSON.
        #[arg(long)]
        json: bool,
        /// Write to this file instead of stdout.
        #[arg(long, short)]
        out: Option<PathBuf>,
    },
    /// Exit 0 if the object is stored, 1 if not.
    Has {
        #[command(flatten)]
        store: StoreArgs,
        /// The object's CID.
        cid: String,
    },
    /// List every CID with its size.
    Ls {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Import a directory of files each named by its CID (as exported blocks are), verifying
    /// every one; durable in batches, with progress on stderr.
    Import {
        #[command(flatten)]
        store: StoreArgs,
        /// The directory.
        dir: PathBuf,
        /// Objects written per durable batch.
        #[arg(long, default_value_t = 1000)]
        batch: usize,
    },
}

fn parse_cid(text: &str) -> Result<Cid, CliError> {
    Cid::try_from(text.trim()).map_err(|e| CliError::Input(format!("`{text}` is not a CID: {e}")))
}

fn json_object(path: &Path) -> Result<Object, CliError> {
    let text = input::read_text(path)?;
    let ipld: Ipld = serde_ipld_dagjson::from_slice(text.as_bytes())
        .map_err(|e| CliError::Input(format!("{}: not DAG-JSON: {e}", path.display())))?;
    Object::from_ipld(ipld).map_err(|e| CliError::Input(format!("{}: {e}", path.display())))
}

fn import_entries(dir: &Path) -> Result<Vec<PathBuf>, CliError> {
    let read =
        std::fs::read_dir(dir).map_err(|e| CliError::Input(format!("{}: {e}", dir.display())))?;
    let mut paths = vec![];
    for entry in read {
        let entry = entry.map_err(|e| CliError::Input(format!("{}: {e}", dir.display())))?;
        if entry.path().is_file() {
            paths.push(entry.path());
        }
    }
    paths.sort();
    Ok(paths)
}

/// Runs a datastore command.
pub fn run(cmd: StoreCommand) -> Result<(), CliError> {
    match cmd {
        StoreCommand::Put { store, json, files } => {
            let store = store.open()?;
            for path in files {
                let cid = if json {
                    store.put_object(&json_object(&path)?)?
                } else {
                    let bytes = std::fs::read(&path)
                        .map_err(|e| CliError::Input(format!("{}: {e}", path.display())))?;
                    store.put_blob(&bytes)?
                };
                println!("{cid}");
            }
            Ok(())
        }
        StoreCommand::Get {
            store,
            cid,
            json,
            out,
        } => {
            let cid = parse_cid(&cid)?;
            let bytes = store
                .open()?
                .get(&cid)?
                .ok_or_else(|| CliError::Input(format!("{cid}: not in the store")))?;
            let bytes = if json {
                if cid.codec() != DAG_CBOR {
                    return Err(CliError::Input(format!(
                        "{cid} is a raw blob, not DAG-CBOR: drop --json"
                    )));
                }
                let ipld = codec::decode(&bytes).map_err(|e| CliError::Input(e.to_string()))?;
                let mut text = serde_ipld_dagjson::to_vec(&ipld)
                    .map_err(|e| CliError::Input(e.to_string()))?;
                text.push(b'\n');
                text
            } else {
                bytes
            };
            match out {
                Some(path) => std::fs::write(&path, bytes)
                    .map_err(|e| CliError::Input(format!("{}: {e}", path.display()))),
                None => std::io::stdout()
                    .write_all(&bytes)
                    .map_err(|e| CliError::Input(format!("stdout: {e}"))),
            }
        }
        StoreCommand::Has { store, cid } => {
            let cid = parse_cid(&cid)?;
            if store.open()?.has(&cid)? {
                println!("yes");
                Ok(())
            } else {
                Err(CliError::Rejected(format!("{cid}: not in the store")))
            }
        }
        StoreCommand::Ls { store } => {
            for entry in store.open()?.iter() {
                let (cid, bytes) = entry?;
                println!("{cid}\t{}", bytes.len());
            }
            Ok(())
        }
        StoreCommand::Import { store, dir, batch } => {
            let store = store.open()?;
            let paths = import_entries(&dir)?;
            let total = paths.len();
            let mut failure = None;
            let objects = paths.into_iter().map_while(|path| {
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let read = parse_cid(&name).and_then(|cid| {
                    std::fs::read(&path)
                        .map(|bytes| (cid, bytes))
                        .map_err(|e| CliError::Input(format!("{}: {e}", path.display())))
                });
                match read {
                    Ok(entry) => Some(entry),
                    Err(e) => {
                        failure = Some(CliError::Input(format!("{}: {e}", path.display())));
                        None
                    }
                }
            });
            let report = store.import(objects, batch, |r| {
                eprintln!(
                    "imported {}/{total} (new {}, present {})",
                    r.added + r.present,
                    r.added,
                    r.present
                );
            })?;
            if let Some(err) = failure {
                return Err(err);
            }
            println!(
                "added {} objects ({} bytes), {} already present",
                report.added, report.bytes, report.present
            );
            Ok(())
        }
    }
}
