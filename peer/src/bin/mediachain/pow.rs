//! `mediachain pow ...`.

use clap::{Subcommand, ValueEnum};
use mediachain::trust::pow::{self, PowStamp, Purpose};

use crate::error::CliError;

/// What the proof of work authorises.
#[derive(Clone, Copy, ValueEnum)]
pub enum PurposeArg {
    /// Level-2 registration of a client key.
    Registration,
    /// Submission of a transaction.
    Transaction,
}

impl From<PurposeArg> for Purpose {
    fn from(p: PurposeArg) -> Self {
        match p {
            PurposeArg::Registration => Purpose::Registration,
            PurposeArg::Transaction => Purpose::Transaction,
        }
    }
}

/// Proof-of-work commands.
#[derive(Subcommand)]
pub enum PowCommand {
    /// Find a nonce of the given difficulty for a resource; prints the nonce.
    Solve {
        /// What the work authorises.
        #[arg(long, value_enum)]
        purpose: PurposeArg,
        /// The resource, as hex (client key + challenge, or transaction hash).
        #[arg(long)]
        resource: String,
        /// Difficulty in leading zero bits (each bit doubles the expected work).
        #[arg(long)]
        bits: u8,
    },
    /// Check a nonce; exits 1 if it does not solve the challenge.
    Check {
        /// What the work authorises.
        #[arg(long, value_enum)]
        purpose: PurposeArg,
        /// The resource, as hex.
        #[arg(long)]
        resource: String,
        /// Required difficulty in bits.
        #[arg(long)]
        bits: u8,
        /// The nonce to check.
        #[arg(long)]
        nonce: u64,
    },
}

fn resource(hex_text: &str) -> Result<Vec<u8>, CliError> {
    hex::decode(hex_text.trim())
        .map_err(|e| CliError::Input(format!("--resource must be hex: {e}")))
}

/// Runs a proof-of-work command.
pub fn run(cmd: PowCommand) -> Result<(), CliError> {
    match cmd {
        PowCommand::Solve {
            purpose,
            resource: text,
            bits,
        } => {
            let started = std::time::Instant::now();
            let stamp = pow::solve(purpose.into(), &resource(&text)?, bits)
                .map_err(|e| CliError::Input(e.to_string()))?;
            eprintln!("solved {bits} bits in {:.2?}", started.elapsed());
            println!("{}", stamp.nonce);
            Ok(())
        }
        PowCommand::Check {
            purpose,
            resource: text,
            bits,
            nonce,
        } => {
            pow::verify(
                &PowStamp { bits, nonce },
                purpose.into(),
                &resource(&text)?,
                bits,
            )
            .map_err(|e| CliError::Rejected(e.to_string()))?;
            println!("valid");
            Ok(())
        }
    }
}
