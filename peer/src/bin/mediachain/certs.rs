//! `mediachain cert ...` and `mediachain revoke`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Subcommand;
use mediachain::time;
use mediachain::trust::{
    keyfile, Certificate, Chain, Level, Revocation, RevocationList, RevocationSet,
};

use crate::error::CliError;
use crate::input::{self, PassphraseArgs};

fn parse_level(s: &str) -> Result<Level, String> {
    let n: u8 = s
        .parse()
        .map_err(|_| format!("`{s}` is not a level: use 0, 1 or 2"))?;
    Level::try_from(n)
}

/// Certificate commands.
#[derive(Subcommand)]
pub enum CertCommand {
    /// Issue a certificate: Level 0 is signed by the root key, Level 1 by a principal (Level-0
    /// holder), Level 2 by a peer (Level-1 holder). Writes the whole chain, leaf first, as PEM.
    Issue {
        /// The issuer's private key (the root key for Level 0).
        #[arg(long)]
        issuer_key: PathBuf,
        /// The issuer's own certificate chain (not needed for Level 0).
        #[arg(long)]
        issuer_chain: Option<PathBuf>,
        /// The subject's public key: PeerId, 64 hex digits, or a file holding one.
        #[arg(long)]
        subject: String,
        /// Level to certify: 0, 1 or 2.
        #[arg(long, value_parser = parse_level)]
        level: Level,
        /// How long the certificate is valid, e.g. `90d`, `1year`, `12h`.
        #[arg(long, default_value = "365d", value_parser = humantime::parse_duration)]
        valid_for: Duration,
        /// Where to write the chain.
        #[arg(long, short)]
        out: PathBuf,
        #[command(flatten)]
        passphrase: PassphraseArgs,
    },
    /// Verify a certificate chain up to the pinned root; prints the subject's PeerId.
    Verify {
        /// The chain file (PEM, leaf first).
        #[arg(long)]
        chain: PathBuf,
        /// The pinned root public key: PeerId, hex, or a file holding one (e.g. root.pub).
        #[arg(long)]
        root: String,
        /// The level the leaf must have.
        #[arg(long, value_parser = parse_level)]
        level: Level,
        /// Revocation lists to honour (repeatable).
        #[arg(long = "revocations")]
        revocations: Vec<PathBuf>,
        /// Verify at this time (Unix seconds) instead of now.
        #[arg(long)]
        at: Option<u64>,
    },
    /// Print the certificates of a chain.
    Show {
        /// The chain file.
        chain: PathBuf,
    },
}

/// Arguments of `mediachain revoke`.
#[derive(clap::Args)]
pub struct RevokeArgs {
    /// The revoking key: the root, or the issuer of the revoked certificate.
    #[arg(long)]
    issuer_key: PathBuf,
    /// The revocation list to extend (created if missing; must be the issuer's).
    #[arg(long)]
    list: PathBuf,
    /// The revoked public key: PeerId, hex, or a file holding one.
    #[arg(long)]
    subject: String,
    /// Why (recorded in the list).
    #[arg(long, default_value = "revoked by operator")]
    reason: String,
    /// Also send the list to the running network through the peer at --peer: it goes on the
    /// chain, and every peer refuses the revoked key from the block after it (needs network
    /// parameters).
    #[arg(long)]
    publish: bool,
    #[command(flatten)]
    passphrase: PassphraseArgs,
}

fn read_chain(path: &Path) -> Result<Chain, CliError> {
    Chain::from_pem(&input::read_text(path)?)
        .map_err(|e| CliError::Input(format!("{}: {e}", path.display())))
}

fn read_revocations(path: &Path) -> Result<RevocationList, CliError> {
    let mut lists = RevocationList::many_from_pem(&input::read_text(path)?)
        .map_err(|e| CliError::Input(format!("{}: {e}", path.display())))?;
    lists
        .pop()
        .ok_or_else(|| CliError::Input(format!("{}: empty revocation list file", path.display())))
}

/// Runs a certificate command.
pub fn run(cmd: CertCommand) -> Result<(), CliError> {
    match cmd {
        CertCommand::Issue {
            issuer_key,
            issuer_chain,
            subject,
            level,
            valid_for,
            out,
            passphrase,
        } => {
            let issuer = input::secret_key(&issuer_key, &passphrase)?;
            let subject = input::public_key(&subject)?;
            let parent = match (level.issuer_level(), issuer_chain) {
                (None, None) => Chain::default(),
                (None, Some(_)) => {
                    return Err(CliError::Input(
                        "a Level-0 certificate is signed by the root: drop --issuer-chain".into(),
                    ))
                }
                (Some(needed), None) => {
                    return Err(CliError::Input(format!(
                    "issuing {level} needs --issuer-chain: the issuer's {needed} certificate chain"
                )))
                }
                (Some(needed), Some(path)) => {
                    let chain = read_chain(&path)?;
                    let leaf = chain.leaf().ok_or_else(|| {
                        CliError::Input(format!("{}: empty chain", path.display()))
                    })?;
                    if leaf.body.level != needed {
                        return Err(CliError::Rejected(format!(
                            "{level} certificates are issued by {needed} holders; {} holds a {} certificate",
                            path.display(),
                            leaf.body.level
                        )));
                    }
                    if leaf.body.subject != issuer.public() {
                        return Err(CliError::Rejected(format!(
                            "{} certifies {}, not the issuer key {}",
                            path.display(),
                            leaf.body.subject,
                            issuer.public()
                        )));
                    }
                    chain
                }
            };
            let now = time::now();
            let cert = Certificate::issue(
                &issuer,
                subject,
                level,
                now,
                now.saturating_add(valid_for.as_secs()),
            );
            let chain = Chain::extend(cert, &parent);
            keyfile::write_secret(&out, &chain.to_pem(), true)?;
            println!("issued {level} certificate for {subject}");
            Ok(())
        }
        CertCommand::Verify {
            chain,
            root,
            level,
            revocations,
            at,
        } => {
            let chain = read_chain(&chain)?;
            let root = input::public_key(&root)?;
            let mut set = RevocationSet::new(root);
            for path in &revocations {
                set.add(&read_revocations(path)?)
                    .map_err(|e| CliError::Rejected(format!("{}: {e}", path.display())))?;
            }
            let subject = chain
                .verify(&root, &set, at.unwrap_or_else(time::now), level)
                .map_err(|e| CliError::Rejected(e.to_string()))?;
            println!("valid {level} certificate for {subject}");
            Ok(())
        }
        CertCommand::Show { chain } => {
            for cert in read_chain(&chain)?.0 {
                let b = &cert.body;
                println!(
                    "{}  subject={}  issuer={}  notBefore={}  notAfter={}",
                    b.level,
                    b.subject,
                    b.issuer,
                    humantime::format_rfc3339_seconds(
                        std::time::UNIX_EPOCH + Duration::from_secs(b.not_before)
                    ),
                    humantime::format_rfc3339_seconds(
                        std::time::UNIX_EPOCH + Duration::from_secs(b.not_after)
                    ),
                );
            }
            Ok(())
        }
    }
}

/// Runs `mediachain revoke`.
pub fn revoke(args: RevokeArgs, peer: &str) -> Result<(), CliError> {
    let issuer = input::secret_key(&args.issuer_key, &args.passphrase)?;
    let subject = input::public_key(&args.subject)?;
    let now = time::now();
    let current = if args.list.exists() {
        let list = read_revocations(&args.list)?;
        if list.body.issuer != issuer.public() || !list.signed_by(&issuer.public()) {
            return Err(CliError::Rejected(format!(
                "{} is the revocation list of {}, not of {}",
                args.list.display(),
                list.body.issuer,
                issuer.public()
            )));
        }
        list
    } else {
        RevocationList::empty(&issuer, now)
    };
    let next = current.with(
        &issuer,
        Revocation {
            subject,
            revoked_at: now,
            reason: args.reason,
        },
        now,
    );
    keyfile::write_secret(&args.list, &next.to_pem(), true)?;
    println!("revoked {subject} (list sequence {})", next.body.sequence);
    if args.publish {
        publish(&next, peer)?;
    }
    Ok(())
}

/// Sends `list` to the peer at `peer` for the chain.
fn publish(list: &RevocationList, peer: &str) -> Result<(), CliError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Network(format!("cannot start the runtime: {e}")))?;
    let client = mediachain::client::Client::new(peer).map_err(crate::client::client_error)?;
    let queued = runtime
        .block_on(client.publish_revocations(&list.to_pem()))
        .map_err(crate::client::client_error)?;
    if queued.known > 0 {
        println!("published to {peer}: every revocation of the list is on the chain already");
    } else {
        println!("published to {peer}: waiting for a block (every peer refuses the key from the block after it)");
    }
    Ok(())
}
