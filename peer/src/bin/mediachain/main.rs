//! `mediachain`: the command-line tool of a Mediachain network — keys, the trust tower,
//! proof of work, the local datastore, the client of a peer's HTTP API and a local devnet.

mod certs;
mod client;
mod devnet;
mod error;
mod ingest;
mod input;
mod keys;
mod netparams;
mod pow;
mod store;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use error::CliError;

const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  rejected: a certificate, revocation or proof of work did not verify
  2  usage error (bad flags or arguments)
  3  bad input: missing, unreadable or corrupt file, invalid key, CID or object
  4  passphrase problem: wrong passphrase, or none given for an encrypted key
  5  datastore failure
  6  a peer could not be reached or answered unexpectedly

Client commands talk to the peer at --peer (or $MEDIACHAIN_PEER, default http://127.0.0.1:8080).";

/// Mediachain: a permissioned peer-to-peer journal of media metadata.
///
/// Keys are ed25519; a key's identity is shown as its libp2p PeerId (12D3KooW...). The trust tower
/// is root -> Level-0 principals -> Level-1 peers -> Level-2 clients.
#[derive(Parser)]
#[command(name = "mediachain", version, after_help = EXIT_CODES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    peer: client::PeerArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Generate and inspect ed25519 keys.
    #[command(subcommand)]
    Key(keys::KeyCommand),
    /// Create the network's root key (always stored encrypted) and its public identity.
    #[command(subcommand)]
    Root(keys::RootCommand),
    /// Issue, verify and show certificates of the trust tower.
    #[command(subcommand)]
    Cert(certs::CertCommand),
    /// Revoke a key: add it to the issuer's signed revocation list (--publish: and put it on
    /// the running network's chain).
    Revoke(certs::RevokeArgs),
    /// Solve and check hashcash-style proofs of work.
    #[command(subcommand)]
    Pow(pow::PowCommand),
    /// Put, get and list objects in a local content-addressed datastore.
    #[command(subcommand)]
    Store(store::StoreCommand),
    /// Start a local network: trust tower, N peers, a client that registers, writes an
    /// artefact with its artefactCreatedBy cell and awaits the confirmation; then serve.
    Devnet(devnet::DevnetArgs),
    /// Ingest a catalogue (CSV or JSON Lines): artefacts, their creators (entities, once per
    /// name) and artefactCreatedBy cells, in transactions of many entries spread over peers;
    /// resumable after Ctrl-C or a crash.
    Ingest(ingest::IngestArgs),
    #[command(flatten)]
    Client(client::ClientCommand),
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MEDIACHAIN_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    // Started by a test or by `mediachain devnet`'s parent: exit with it (docs/testing.md).
    mediachain::lifeline::arm(std::time::Duration::ZERO, || {});
    let cli = Cli::parse();
    let result: Result<(), CliError> = match cli.command {
        Command::Key(cmd) => keys::run_key(cmd),
        Command::Root(cmd) => keys::run_root(cmd),
        Command::Cert(cmd) => certs::run(cmd),
        Command::Revoke(args) => certs::revoke(args, &cli.peer.peer),
        Command::Pow(cmd) => pow::run(cmd),
        Command::Store(cmd) => store::run(cmd),
        Command::Devnet(args) => devnet::run(args),
        Command::Ingest(args) => ingest::run(args, &cli.peer),
        Command::Client(cmd) => client::run(cmd, &cli.peer),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::from(err.exit_code())
        }
    }
}
