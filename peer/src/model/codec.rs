//! DAG-CBOR encoding and CIDv1 naming of IPLD values.
//!
//! Every object is encoded as canonical DAG-CBOR and named by a CIDv1 with the dag-cbor codec and
//! a sha2-256 multihash, so objects are byte-compatible with IPFS. Decoding is strict: input that
//! is not in canonical form is refused, which makes "decode then encode" the identity on bytes and
//! gives every object exactly one name. Decoding never panics on untrusted input.

use ipld_core::cid::Cid;
use ipld_core::ipld::Ipld;
use multihash_codetable::{Code, MultihashDigest};

/// Multicodec code of DAG-CBOR.
pub const DAG_CBOR: u64 = 0x71;
/// Multicodec code of raw bytes (blobs).
pub const RAW: u64 = 0x55;
/// Multihash code of sha2-256.
pub const SHA2_256: u64 = 0x12;

/// Why bytes could not be decoded as an IPLD value.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The bytes are not DAG-CBOR at all.
    #[error("not valid DAG-CBOR: {0}")]
    Malformed(String),
    /// The bytes decode, but are not the canonical encoding of what they contain.
    #[error("DAG-CBOR is not in canonical form (map keys out of order, non-minimal lengths or trailing bytes)")]
    NotCanonical,
    /// The value could not be encoded (only possible for values DAG-CBOR cannot carry).
    #[error("cannot encode as DAG-CBOR: {0}")]
    Encode(String),
}

/// Encodes an IPLD value as canonical DAG-CBOR.
pub fn encode(value: &Ipld) -> Result<Vec<u8>, CodecError> {
    serde_ipld_dagcbor::to_vec(value).map_err(|e| CodecError::Encode(e.to_string()))
}

/// Decodes canonical DAG-CBOR into an IPLD value, refusing any non-canonical input.
pub fn decode(bytes: &[u8]) -> Result<Ipld, CodecError> {
    let value: Ipld =
        serde_ipld_dagcbor::from_slice(bytes).map_err(|e| CodecError::Malformed(e.to_string()))?;
    if encode(&value)? != bytes {
        return Err(CodecError::NotCanonical);
    }
    Ok(value)
}

/// Decodes DAG-CBOR bytes already validated by [`decode`] (what a store accepted), without
/// checking again that they are canonical.
pub fn decode_validated(bytes: &[u8]) -> Result<Ipld, CodecError> {
    serde_ipld_dagcbor::from_slice(bytes).map_err(|e| CodecError::Malformed(e.to_string()))
}

/// The CIDv1 (given codec, sha2-256) of some bytes.
pub fn cid_of(codec: u64, bytes: &[u8]) -> Cid {
    Cid::new_v1(codec, Code::Sha2_256.digest(bytes))
}

/// The CIDv1 (dag-cbor, sha2-256) of already encoded DAG-CBOR bytes.
pub fn dag_cbor_cid(bytes: &[u8]) -> Cid {
    cid_of(DAG_CBOR, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn map_keys_are_sorted_length_first() {
        let mut map = BTreeMap::new();
        map.insert("bb".to_string(), Ipld::Integer(1));
        map.insert("a".to_string(), Ipld::Integer(2));
        map.insert("c".to_string(), Ipld::Integer(3));
        let bytes = encode(&Ipld::Map(map)).unwrap();
        // a3 61'a' 02 61'c' 03 62'bb' 01
        assert_eq!(hex::encode(bytes), "a361610261630362626201");
    }

    #[test]
    fn non_canonical_input_is_refused() {
        // {"bb":1,"a":2}: keys in bytewise rather than length-first order.
        assert!(decode(&hex::decode("a262626201616102").unwrap()).is_err());
        // The integer 1 in a two-byte form.
        let err = decode(&hex::decode("1801").unwrap()).unwrap_err();
        assert!(
            matches!(err, CodecError::NotCanonical | CodecError::Malformed(_)),
            "{err}"
        );
        let mut trailing = encode(&Ipld::Integer(1)).unwrap();
        trailing.push(0);
        assert!(decode(&trailing).is_err());
    }

    #[test]
    fn cid_is_v1_dag_cbor_sha256() {
        let cid = dag_cbor_cid(b"\xa0");
        assert_eq!(cid.version(), ipld_core::cid::Version::V1);
        assert_eq!(cid.codec(), DAG_CBOR);
        assert_eq!(cid.hash().code(), SHA2_256);
    }
}
