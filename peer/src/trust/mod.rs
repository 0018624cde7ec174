//! The tower of trust: keys, certificates, revocation lists and proof of work.
//!
//! Pure protocol logic: verification takes the time as an argument and never reads the clock,
//! so every decision is deterministic and testable.

pub mod cert;
pub mod keyfile;
pub mod keys;
pub mod pow;
pub mod revocation;
pub mod signed;

pub use cert::{CertError, Certificate, CertificateBody, Chain, Level};
pub use keys::{PublicKey, SecretKey};
pub use pow::{PowError, PowStamp, Purpose};
pub use revocation::{Revocation, RevocationList, RevocationListBody, RevocationSet};
pub use signed::{DocumentError, Signed};

#[cfg(test)]
mod tests;
#[cfg(test)]
pub(crate) mod tower;
