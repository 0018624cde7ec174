//! Wire messages of the overlay.
//!
//! Request-response (`/mediachain/sync/1`) carries admission (`Hello`), sync (canonical block
//! ranges, block bundles) and object fetch (an object a client stored at another peer). Gossipsub carries transaction batches, finality votes, block announcements (CID and
//! height only: bodies are fetched, since gossip messages are small and may be dropped) and
//! signed peer records. Gossip payloads and block bundles are DAG-CBOR.

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use crate::model::Cid;

/// The request-response protocol name.
pub const SYNC_PROTOCOL: &str = "/mediachain/sync/1";
/// Most block CIDs in one range response.
pub const MAX_RANGE: u64 = 256;

/// What a peer says about itself when connecting.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Hello {
    /// Network name.
    pub network: String,
    /// Genesis CID bytes.
    pub genesis: ByteBuf,
    /// The peer's Level-1 chain, PEM.
    pub chain: String,
    /// The peer's tip height.
    pub height: u64,
    /// The peer's tip CID bytes (a peer at the same height on another branch is found by it).
    pub tip: ByteBuf,
    /// Digests of each section of the peer's network parameters, if a file defines them (a
    /// refusal for another genesis names the sections that differ).
    #[serde(default)]
    pub params: Option<Box<crate::network::SectionDigests>>,
}

/// A request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Request {
    /// Admission: here is my certificate, show me yours.
    Hello(Hello),
    /// CIDs of canonical blocks from a height.
    Range {
        /// First height.
        from: u64,
        /// How many at most.
        max: u64,
    },
    /// One block with the objects its transactions reference.
    Block {
        /// CID bytes.
        cid: ByteBuf,
        /// The block alone, without the objects: the asker holds them already (it is in sync,
        /// so it had the block's transactions by gossip with their objects), as a compact block
        /// of BIP 152 relies on the receiver's mempool. Absent from older peers' requests,
        /// which get the objects.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        lean: bool,
    },
    /// One object of the datastore.
    Object {
        /// CID bytes.
        cid: ByteBuf,
    },
}

/// A response.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Response {
    /// Admission accepted: my certificate.
    Hello(Hello),
    /// Refused, with the reason.
    Refused(String),
    /// Canonical block CIDs (bytes), in height order.
    Range(Vec<ByteBuf>),
    /// A DAG-CBOR `BlockBundle`, if the block is known.
    Block(Option<ByteBuf>),
    /// The object's bytes, if the peer holds it.
    Object(Option<ByteBuf>),
}

/// Gossip: a committed block's announcement.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Announce {
    /// Block CID.
    pub cid: Cid,
    /// Its height.
    pub height: u64,
}

/// Gossip: a peer's identity record (signed by gossipsub with the peer's key).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PeerRecord {
    /// The Level-1 chain, PEM.
    pub chain: String,
    /// Addresses to dial it at.
    pub addrs: Vec<String>,
    /// Its tip height.
    pub height: u64,
    /// Its tip CID.
    pub tip: Cid,
    /// When the record was made (makes every record a new gossip message).
    pub timestamp: u64,
    /// Membership records the peer holds for a coming block (its own join request, revocations
    /// it was given), each canonical DAG-CBOR: every member hears them, so one commits them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub records: Vec<ByteBuf>,
}

/// Gossip: finality votes (a peer's new vote, or the votes it holds, re-sent so peers that
/// missed them, joined late or healed from a partition can count).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Votes {
    /// The votes.
    pub votes: Vec<crate::journal::vote::Vote>,
}

/// Encodes a gossip payload.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    serde_ipld_dagcbor::to_vec(value).unwrap_or_default()
}

/// Decodes a gossip payload from untrusted bytes.
pub fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, String> {
    serde_ipld_dagcbor::from_slice(bytes).map_err(|e| e.to_string())
}
