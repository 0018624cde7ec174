//! Transactions: a client's signed list of journal entries with a fresh proof of work.
//!
//! The transaction id is the sha2-256 of the body's canonical DAG-CBOR; the client signs the body
//! and the proof of work is bound to the id, so neither can be moved to another transaction.

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::encode;
use crate::model::JournalEntry;
use crate::time::UnixSeconds;
use crate::trust::{pow, Certificate, Chain, PowStamp, PublicKey, Purpose, SecretKey};

/// Signature context of transaction bodies.
pub const TX_CONTEXT: &[u8] = b"mediachain/transaction/v1";

/// The id of a transaction: sha2-256 of its body.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TxId(#[serde(with = "serde_bytes")] pub [u8; 32]);

impl TxId {
    /// The id of a transaction whose body encodes to `bytes`.
    pub fn of_body_bytes(bytes: &[u8]) -> Self {
        TxId(Sha256::digest(bytes).into())
    }
}

impl fmt::Display for TxId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for TxId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TxId({})", &hex::encode(self.0)[..12])
    }
}

impl std::str::FromStr for TxId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bytes =
            hex::decode(s).map_err(|e| format!("transaction id must be 64 hex digits: {e}"))?;
        Ok(TxId(bytes.try_into().map_err(|_| {
            "transaction id must be 32 bytes".to_string()
        })?))
    }
}

/// What the client signs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransactionBody {
    /// The client's key (the subject of its Level-2 certificate).
    pub client: PublicKey,
    /// The entries, applied in order (`insert` and `update` only).
    pub entries: Vec<JournalEntry>,
    /// When the client made the transaction.
    pub timestamp: UnixSeconds,
}

/// A signed transaction with its proof of work and the client's certificate chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Transaction {
    /// What was signed.
    pub body: TransactionBody,
    /// The client's Level-2 chain (leaf first).
    pub certificate: Vec<Certificate>,
    /// Proof of work bound to the transaction id.
    pub pow: PowStamp,
    /// The client's signature over the body.
    #[serde(with = "serde_bytes")]
    pub signature: Vec<u8>,
}

/// Canonical DAG-CBOR of a serde value whose fields are all encodable (plain structs of
/// integers, byte strings, links and entries), so encoding cannot fail.
pub(crate) fn canonical<T: Serialize>(value: &T) -> Vec<u8> {
    serde_ipld_dagcbor::to_vec(value).unwrap_or_default()
}

impl TransactionBody {
    /// The transaction id.
    pub fn id(&self) -> TxId {
        TxId::of_body_bytes(&self.to_bytes())
    }

    /// The canonical bytes that are signed and hashed into the id.
    pub fn to_bytes(&self) -> Vec<u8> {
        encode::body_bytes(self)
    }
}

impl Transaction {
    /// Builds, signs and proves a transaction (solving `pow_bits` of work).
    pub fn create(
        client: &SecretKey,
        chain: &Chain,
        entries: Vec<JournalEntry>,
        timestamp: UnixSeconds,
        pow_bits: u8,
    ) -> Result<Self, pow::PowError> {
        let body = TransactionBody {
            client: client.public(),
            entries,
            timestamp,
        };
        let body_bytes = body.to_bytes();
        let id = TxId::of_body_bytes(&body_bytes);
        let pow = pow::solve(Purpose::Transaction, &id.0, pow_bits)?;
        let signature = client.sign(TX_CONTEXT, &body_bytes).to_vec();
        Ok(Self {
            body,
            certificate: chain.0.clone(),
            pow,
            signature,
        })
    }

    /// The transaction id.
    pub fn id(&self) -> TxId {
        self.body.id()
    }

    /// The client's certificate chain.
    pub fn chain(&self) -> Chain {
        Chain(self.certificate.clone())
    }

    /// Canonical DAG-CBOR of the whole transaction.
    pub fn to_bytes(&self) -> Vec<u8> {
        encode::transaction_bytes(self)
    }

    /// Decodes a transaction from untrusted bytes (canonical DAG-CBOR only).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, String> {
        let tx: Self =
            serde_ipld_dagcbor::from_slice(bytes).map_err(|e| format!("not a transaction: {e}"))?;
        if tx.to_bytes() != bytes {
            return Err("transaction is not in canonical DAG-CBOR form".into());
        }
        Ok(tx)
    }

    /// Whether the client's signature over the body verifies.
    pub fn signature_valid(&self) -> bool {
        self.signature_valid_over(&self.body.to_bytes())
    }

    /// [`Transaction::signature_valid`] given the body's canonical bytes (computed once by
    /// callers that also need the id).
    pub fn signature_valid_over(&self, body_bytes: &[u8]) -> bool {
        let Ok(signature) = <[u8; 64]>::try_from(self.signature.as_slice()) else {
            return false;
        };
        self.body.client.verify(TX_CONTEXT, body_bytes, &signature)
    }
}
