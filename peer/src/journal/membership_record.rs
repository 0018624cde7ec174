//! The membership records a block carries (docs/consensus.md, "Members and seats"): a Level-1
//! peer's signed join request and recorded revocation lists, their canonical encoding, bounds,
//! and the reasons a record is refused. What they do to the membership is [`super::Membership`]'s.

use serde::{Deserialize, Serialize};

use crate::trust::signed::Document;
use crate::trust::{CertError, Certificate, Chain, PublicKey, RevocationList, SecretKey, Signed};

/// Most membership records in one block.
pub const MAX_RECORDS_PER_BLOCK: usize = 16;
/// Most revocations in one recorded list.
pub const MAX_REVOCATIONS_PER_RECORD: usize = 256;

/// What a joining peer signs: the network and its Level-1 chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JoinBody {
    /// The network it joins (a record of another network never verifies).
    pub network: String,
    /// Its Level-1 chain, leaf first.
    pub chain: Vec<Certificate>,
}

impl Document for JoinBody {
    const CONTEXT: &'static [u8] = b"mediachain/join/v1";
    const PEM_LABEL: &'static str = "MEDIACHAIN JOIN RECORD";
    const WHAT: &'static str = "join record";
}

/// A Level-1 peer's request to join, signed with its own key.
pub type JoinRecord = Signed<JoinBody>;

/// A membership record carried by a block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Record {
    /// A peer joins.
    Join(JoinRecord),
    /// Keys are revoked.
    Revoke(RevocationList),
}

impl Record {
    /// The join record of the peer holding `key` and `chain`, for `network`.
    pub fn join(key: &SecretKey, chain: &Chain, network: &str) -> Self {
        let body = JoinBody {
            network: network.into(),
            chain: chain.0.clone(),
        };
        Record::Join(Signed::sign(body, key))
    }

    /// Canonical DAG-CBOR.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_ipld_dagcbor::to_vec(self).unwrap_or_default()
    }

    /// Decodes a record from untrusted bytes (canonical DAG-CBOR only).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, String> {
        let record: Self =
            serde_ipld_dagcbor::from_slice(bytes).map_err(|e| format!("not a record: {e}"))?;
        if record.to_bytes() != bytes {
            return Err("record is not in canonical DAG-CBOR form".into());
        }
        Ok(record)
    }
}

/// Why a membership record is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordRejection {
    /// More records than a block may carry.
    #[error("block carries {count} membership records, the limit is {limit}")]
    TooMany {
        /// Records.
        count: usize,
        /// Limit.
        limit: usize,
    },
    /// Membership records need network parameters.
    #[error("membership records need network parameters")]
    NoMembership,
    /// A join record for another network.
    #[error("join record is for network `{0}`")]
    WrongNetwork(String),
    /// The joining peer's chain is not a valid Level-1 chain of this network.
    #[error("joining peer's certificate: {0}")]
    Certificate(#[from] CertError),
    /// The join record is not signed by the peer it names.
    #[error("join record is not signed by the peer it names")]
    BadJoinSignature,
    /// The peer joined already.
    #[error("{0} is a member already")]
    AlreadyMember(PublicKey),
    /// The list's signature does not verify.
    #[error("revocation list of {0} has an invalid signature")]
    BadListSignature(PublicKey),
    /// The list's issuer may not revoke on this chain.
    #[error("{0} is neither the root, a member's principal nor a member: it revokes nothing here")]
    UnknownIssuer(PublicKey),
    /// The list is too long.
    #[error("revocation list holds {count} entries, the limit is {limit}")]
    TooLarge {
        /// Entries.
        count: usize,
        /// Limit.
        limit: usize,
    },
    /// Every revocation of the list is on the chain already.
    #[error("revocation list of {0} revokes nothing new")]
    NothingNew(PublicKey),
}
