//! The network's parameters: what every member of one network must agree on (its name, the
//! pinned root key, the initial members, the consensus settings), defined once and shared by the
//! peer, `mediachain devnet` and the operator. The genesis block is derived from them, so two
//! members holding different parameters have different genesis blocks and refuse each other.
//!
//! Pure: parsing, validation and digests only; reading the file is the caller's business.
//! The format is documented in `docs/network-parameters.md`.

mod params;
mod serde_text;

pub use params::{ConsensusParams, NetworkParams, ParamsError, SectionDigests, FORMAT_VERSION};

#[cfg(test)]
mod tests;
