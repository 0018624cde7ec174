//! Reading the CLI's inputs: files, public keys, passphrases, durations.

use std::path::Path;

use mediachain::trust::keyfile;
use mediachain::trust::{PublicKey, SecretKey};
use zeroize::Zeroizing;

use crate::error::CliError;

/// Environment variable holding a key passphrase (for scripts; prefer `--passphrase-file`).
pub const PASSPHRASE_ENV: &str = "MEDIACHAIN_PASSPHRASE";

/// Reads a whole text file.
pub fn read_text(path: &Path) -> Result<String, CliError> {
    std::fs::read_to_string(path).map_err(|e| CliError::Input(format!("{}: {e}", path.display())))
}

/// A public key given as a PeerId, as hex, or as a file holding either.
pub fn public_key(arg: &str) -> Result<PublicKey, CliError> {
    if let Ok(key) = arg.parse() {
        return Ok(key);
    }
    let path = Path::new(arg);
    if path.is_file() {
        let text = read_text(path)?;
        if text.contains("PRIVATE KEY") {
            return Err(CliError::Input(format!(
                "{arg}: is a private key file; give the public key (see `mediachain key show`)"
            )));
        }
        return text
            .parse()
            .map_err(|e| CliError::Input(format!("{arg}: {e}")));
    }
    Err(CliError::Input(format!(
        "`{arg}` is neither a public key (PeerId or 64 hex digits) nor a file holding one"
    )))
}

/// Where a passphrase comes from.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct PassphraseArgs {
    /// File whose first line is the passphrase (otherwise $MEDIACHAIN_PASSPHRASE, otherwise a prompt).
    #[arg(long, value_name = "FILE")]
    pub passphrase_file: Option<std::path::PathBuf>,
}

impl PassphraseArgs {
    /// The passphrase: from the file, the environment, or an interactive prompt.
    pub fn get(&self, prompt: &str) -> Result<Zeroizing<String>, CliError> {
        if let Some(path) = &self.passphrase_file {
            let text = Zeroizing::new(read_text(path)?);
            let line = text.lines().next().unwrap_or_default();
            return Ok(Zeroizing::new(line.to_string()));
        }
        if let Ok(value) = std::env::var(PASSPHRASE_ENV) {
            return Ok(Zeroizing::new(value));
        }
        rpassword::prompt_password(prompt).map(Zeroizing::new).map_err(|e| {
            CliError::Passphrase(format!(
                "a passphrase is required and none could be read ({e}); use --passphrase-file or ${PASSPHRASE_ENV}"
            ))
        })
    }
}

/// Loads a secret key, asking for the passphrase only if the file is encrypted.
pub fn secret_key(path: &Path, passphrase: &PassphraseArgs) -> Result<SecretKey, CliError> {
    let text = Zeroizing::new(read_text(path)?);
    let secret = if keyfile::is_encrypted(&text) {
        let pass = passphrase.get(&format!("Passphrase for {}: ", path.display()))?;
        keyfile::parse(path, &text, Some(&pass))?
    } else {
        keyfile::parse(path, &text, None)?
    };
    Ok(secret)
}
