//! Blocks of the Journal: a parent link (or Nil), height, timestamp (ms), the committer's Level-1
//! chain, the transactions it committed and the journal entries they produced, signed by the
//! committer. Blocks are DAG-CBOR objects of type `block` in the datastore.
//!
//! The genesis block (height 0, chained to Nil) is unsigned and deterministic: it is derived from
//! the network name and the bootstrap dataset, so every peer of a network computes the same CID.

use serde::{Deserialize, Serialize};

use super::encode;
use super::membership::Record;
use super::transaction::Transaction;
use super::vote::Vote;
use crate::model::{codec, nil_cid, Cid, JournalEntry};
use crate::time::{UnixMillis, UnixSeconds};
use crate::trust::{Certificate, Chain, PublicKey, SecretKey};

/// Signature context of blocks.
pub const BLOCK_CONTEXT: &[u8] = b"mediachain/block/v1";

/// A block of the journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Block {
    /// Always `block`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The parent block's CID, or Nil for the genesis block.
    pub chain: Cid,
    /// Distance from genesis (genesis is 0).
    pub height: u64,
    /// When the committer wrote the block, in milliseconds.
    #[serde(rename = "timestampMs")]
    pub timestamp_ms: UnixMillis,
    /// The network this block belongs to.
    pub network: String,
    /// The committer's Level-1 chain, leaf first (empty for genesis).
    pub committer: Vec<Certificate>,
    /// The transactions committed, in order.
    pub transactions: Vec<Transaction>,
    /// The journal entries the transactions produced (after merging), in order.
    pub entries: Vec<JournalEntry>,
    /// The committer's signature over the block with this field empty.
    #[serde(with = "serde_bytes")]
    pub signature: Vec<u8>,
    /// Genesis only, when the network is defined by a parameters file: the parameters' digest
    /// (`network::NetworkParams::digest`), so networks with different parameters have
    /// different genesis blocks. Absent from every other block.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<serde_bytes::ByteBuf>,
    /// Membership records (peers joining, revocations: `super::membership`), under network
    /// parameters only; absent when there are none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub records: Vec<Record>,
    /// A finality certificate (`super::certificate`): the votes of a supermajority link between
    /// adjacent checkpoints of this block's chain, recording its source final on the chain;
    /// absent when empty (docs/consensus.md, "Finality recorded on the chain").
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub finality: Vec<Vote>,
}

impl Block {
    /// The genesis block of `network`, journaling the bootstrap dataset `entries`.
    pub fn genesis(network: &str, entries: Vec<JournalEntry>) -> Self {
        Self {
            kind: "block".into(),
            chain: nil_cid(),
            height: 0,
            timestamp_ms: 0,
            network: network.into(),
            committer: vec![],
            transactions: vec![],
            entries,
            signature: vec![],
            parameters: None,
            records: vec![],
            finality: vec![],
        }
    }

    /// A block on top of `parent` (CID and height), signed by `committer`.
    pub fn commit(
        parent: (Cid, u64),
        network: &str,
        timestamp_ms: UnixMillis,
        committer: (&SecretKey, &Chain),
        transactions: Vec<Transaction>,
        entries: Vec<JournalEntry>,
    ) -> Self {
        Self::commit_with_records(
            parent,
            network,
            timestamp_ms,
            committer,
            (vec![], vec![]),
            transactions,
            entries,
        )
    }

    /// [`Block::commit`] of a block carrying membership `records` and a finality certificate
    /// (`extras`: records, then the certificate's votes).
    pub fn commit_with_records(
        parent: (Cid, u64),
        network: &str,
        timestamp_ms: UnixMillis,
        committer: (&SecretKey, &Chain),
        (records, finality): (Vec<Record>, Vec<Vote>),
        transactions: Vec<Transaction>,
        entries: Vec<JournalEntry>,
    ) -> Self {
        let mut block = Self {
            kind: "block".into(),
            chain: parent.0,
            height: parent.1 + 1,
            timestamp_ms,
            network: network.into(),
            committer: committer.1 .0.clone(),
            transactions,
            entries,
            signature: vec![],
            parameters: None,
            records,
            finality,
        };
        block.signature = committer
            .0
            .sign(BLOCK_CONTEXT, &block.signing_bytes())
            .to_vec();
        block
    }

    fn signing_bytes(&self) -> Vec<u8> {
        encode::block_bytes(self, false)
    }

    /// Canonical DAG-CBOR of the block.
    pub fn to_bytes(&self) -> Vec<u8> {
        encode::block_bytes(self, true)
    }

    /// The block without its transactions and entries, and without its signature unless
    /// `signed` (what `encode` has serde encode; every field is named here, so a field added to
    /// the block cannot be left out of its encoding).
    pub(super) fn without_contents(&self, signed: bool) -> Self {
        let Self {
            kind,
            chain,
            height,
            timestamp_ms,
            network,
            committer,
            transactions: _,
            entries: _,
            signature,
            parameters,
            records,
            finality,
        } = self;
        Self {
            kind: kind.clone(),
            chain: *chain,
            height: *height,
            timestamp_ms: *timestamp_ms,
            network: network.clone(),
            committer: committer.clone(),
            transactions: vec![],
            entries: vec![],
            signature: if signed { signature.clone() } else { vec![] },
            parameters: parameters.clone(),
            records: records.clone(),
            finality: finality.clone(),
        }
    }

    /// The block's CID.
    pub fn cid(&self) -> Cid {
        codec::dag_cbor_cid(&self.to_bytes())
    }

    /// Decodes a block from untrusted bytes (canonical DAG-CBOR only).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, String> {
        let block = Self::from_stored(bytes)?;
        if block.to_bytes() != bytes {
            return Err("block is not in canonical DAG-CBOR form".into());
        }
        Ok(block)
    }

    /// Decodes a block read back from this peer's datastore, which takes only canonical
    /// DAG-CBOR (and names it by its hash): the bytes are not encoded again to check their form,
    /// as [`Block::from_bytes`] does. A block is read back far more often than it is taken (the
    /// search follower, event streams, the API, the index rebuild), and that check encodes the
    /// whole block again. Never for bytes from the network or a file.
    pub fn from_stored(bytes: &[u8]) -> Result<Self, String> {
        let block: Self =
            serde_ipld_dagcbor::from_slice(bytes).map_err(|e| format!("not a block: {e}"))?;
        if block.kind != "block" {
            return Err(format!("object of type `{}` is not a block", block.kind));
        }
        Ok(block)
    }

    /// The block's time in whole seconds (certificates are checked at it).
    pub fn time(&self) -> UnixSeconds {
        self.timestamp_ms / 1000
    }

    /// The committer's key (the leaf of its chain), if any.
    pub fn committer_key(&self) -> Option<PublicKey> {
        self.committer.first().map(|c| c.body.subject)
    }

    /// The committer's chain.
    pub fn committer_chain(&self) -> Chain {
        Chain(self.committer.clone())
    }

    /// Whether the committer's signature verifies.
    pub fn signature_valid(&self) -> bool {
        let (Some(key), Ok(signature)) = (
            self.committer_key(),
            <[u8; 64]>::try_from(self.signature.as_slice()),
        ) else {
            return false;
        };
        key.verify(BLOCK_CONTEXT, &self.signing_bytes(), &signature)
    }

    /// [`Block::signature_valid`] for a block whose canonical encoding is `bytes` (what a
    /// receiver stores): the signing bytes are read off them instead of encoding the block again.
    pub fn signature_valid_encoded(&self, bytes: &[u8]) -> bool {
        let (Some(key), Ok(signature), Some(unsigned)) = (
            self.committer_key(),
            <[u8; 64]>::try_from(self.signature.as_slice()),
            super::block_bytes::unsigned(bytes),
        ) else {
            return false;
        };
        key.verify(BLOCK_CONTEXT, &unsigned, &signature)
    }

    /// Whether this is a genesis block (height 0 on Nil).
    pub fn is_genesis(&self) -> bool {
        self.height == 0 && self.chain == nil_cid()
    }
}
