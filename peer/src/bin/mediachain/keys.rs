//! `mediachain key ...` and `mediachain root ...`.

use std::path::PathBuf;

use clap::Subcommand;
use mediachain::trust::keyfile::{self, KdfParams};
use mediachain::trust::SecretKey;

use crate::error::CliError;
use crate::input::{self, PassphraseArgs};

/// Key commands.
#[derive(Subcommand)]
pub enum KeyCommand {
    /// Generate an ed25519 key and write it as PKCS#8 PEM (mode 0600); prints its PeerId.
    Generate {
        /// Where to write the private key.
        #[arg(long, short)]
        out: PathBuf,
        /// Encrypt the key with a passphrase (Argon2id + XChaCha20-Poly1305).
        #[arg(long)]
        encrypt: bool,
        /// Replace an existing file.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        passphrase: PassphraseArgs,
    },
    /// Print the PeerId and hex public key of a private key file.
    Show {
        /// The private key file.
        key: PathBuf,
        #[command(flatten)]
        passphrase: PassphraseArgs,
    },
}

/// Root commands.
#[derive(Subcommand)]
pub enum RootCommand {
    /// Create the root key pair in DIR: `root.key` (encrypted, mode 0600) and `root.pub` (its PeerId).
    ///
    /// The root public key is the network's identity: pin it in every node's configuration.
    /// Keep `root.key` offline; it is used only to issue Level-0 certificates and revocations.
    Init {
        /// Directory to write into (created if missing).
        #[arg(long)]
        dir: PathBuf,
        /// Replace an existing root key (this creates a new network!).
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        passphrase: PassphraseArgs,
    },
}

fn write_key(
    out: &std::path::Path,
    key: &SecretKey,
    passphrase: Option<&str>,
    force: bool,
) -> Result<(), CliError> {
    let text = match passphrase {
        Some(pass) => {
            if pass.is_empty() {
                return Err(CliError::Passphrase("refusing an empty passphrase".into()));
            }
            zeroize::Zeroizing::new(
                keyfile::encrypt(key, pass, KdfParams::default()).map_err(CliError::Input)?,
            )
        }
        None => keyfile::to_plain_pem(key).map_err(CliError::Input)?,
    };
    keyfile::write_secret(out, &text, force)?;
    Ok(())
}

/// Runs a key command.
pub fn run_key(cmd: KeyCommand) -> Result<(), CliError> {
    match cmd {
        KeyCommand::Generate {
            out,
            encrypt,
            force,
            passphrase,
        } => {
            let key = SecretKey::generate();
            let pass = if encrypt {
                Some(passphrase.get("New passphrase: ")?)
            } else {
                None
            };
            write_key(&out, &key, pass.as_deref().map(String::as_str), force)?;
            println!("{}", key.public());
            Ok(())
        }
        KeyCommand::Show { key, passphrase } => {
            let key = input::secret_key(&key, &passphrase)?;
            println!("peer-id: {}", key.public());
            println!("public-key: {}", hex::encode(key.public().as_bytes()));
            Ok(())
        }
    }
}

/// Runs a root command.
pub fn run_root(cmd: RootCommand) -> Result<(), CliError> {
    match cmd {
        RootCommand::Init {
            dir,
            force,
            passphrase,
        } => {
            std::fs::create_dir_all(&dir)
                .map_err(|e| CliError::Input(format!("{}: {e}", dir.display())))?;
            let key = SecretKey::generate();
            let pass = passphrase.get("New root passphrase: ")?;
            write_key(&dir.join("root.key"), &key, Some(&pass), force)?;
            let public = dir.join("root.pub");
            std::fs::write(&public, format!("{}\n", key.public()))
                .map_err(|e| CliError::Input(format!("{}: {e}", public.display())))?;
            println!("{}", key.public());
            Ok(())
        }
    }
}
