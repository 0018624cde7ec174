//! The CLI's error categories and their exit codes (listed in `--help`).

use mediachain::store::StoreError;
use mediachain::trust::keyfile::KeyFileError;

/// A failed command, by category.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Something did not verify (exit 1).
    #[error("{0}")]
    Rejected(String),
    /// Missing, unreadable or corrupt input (exit 3).
    #[error("{0}")]
    Input(String),
    /// Wrong or missing passphrase (exit 4).
    #[error("{0}")]
    Passphrase(String),
    /// The datastore failed (exit 5).
    #[error("{0}")]
    Store(String),
    /// A peer could not be reached or answered unexpectedly (exit 6).
    #[error("{0}")]
    Network(String),
}

impl CliError {
    /// The process exit code of this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Rejected(_) => 1,
            CliError::Input(_) => 3,
            CliError::Passphrase(_) => 4,
            CliError::Store(_) => 5,
            CliError::Network(_) => 6,
        }
    }
}

impl From<KeyFileError> for CliError {
    fn from(err: KeyFileError) -> Self {
        match err {
            KeyFileError::WrongPassphrase(_) | KeyFileError::PassphraseRequired(_) => {
                CliError::Passphrase(err.to_string())
            }
            _ => CliError::Input(err.to_string()),
        }
    }
}

impl From<StoreError> for CliError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Open { .. }
            | StoreError::Io(_)
            | StoreError::Volume { .. }
            | StoreError::Damaged(_) => CliError::Store(err.to_string()),
            _ => CliError::Input(err.to_string()),
        }
    }
}
