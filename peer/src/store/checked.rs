//! Bytes named and checked by the store in one pass, so that an upload is hashed once: the API
//! names a body with [`Store::check`] (its SHA-256 is its CID) and stores what it got back with
//! [`Store::put_checked_uploads`], which trusts the name because only the store makes one.
//! It must never hand out a [`Checked`] whose CID was not computed from, or verified against,
//! its bytes.

use super::{Store, StoreError};
use crate::model::{codec, Cid, Object, DAG_CBOR};

/// Bytes with the CID they hash to, checked as [`Store::verify`] checks them; made only by the
/// store ([`Store::check`]).
#[derive(Debug, Clone, Copy)]
pub struct Checked<'a> {
    cid: Cid,
    bytes: &'a [u8],
}

impl<'a> Checked<'a> {
    /// The CID the bytes hash to.
    pub fn cid(&self) -> Cid {
        self.cid
    }

    /// The bytes.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }
}

impl Store {
    /// `bytes` named under `codec_id` by their SHA-256 (their one hashing) and checked as
    /// [`Store::verify`] checks them: the size, the codec (dag-cbor or raw) and the DAG-CBOR.
    pub fn check<'a>(&self, codec_id: u64, bytes: &'a [u8]) -> Result<Checked<'a>, StoreError> {
        let cid = codec::cid_of(codec_id, bytes);
        self.verify_kind(&cid, bytes.len())?;
        self.verify_encoding(&cid, bytes)?;
        Ok(Checked { cid, bytes })
    }

    /// `bytes`, a Mediachain object in canonical DAG-CBOR, named and checked as
    /// [`Store::check`] does with one decoding: the one that validates the encoding also yields
    /// the value checked to be an object (an upload is hashed once and decoded once).
    pub fn check_object<'a>(&self, bytes: &'a [u8]) -> Result<Checked<'a>, StoreError> {
        let cid = codec::cid_of(DAG_CBOR, bytes);
        self.verify_kind(&cid, bytes.len())?;
        let ipld = codec::decode(bytes).map_err(|source| StoreError::InvalidDagCbor {
            cid: cid.to_string(),
            source,
        })?;
        Object::from_ipld(ipld).map_err(|source| StoreError::NotAnObject {
            cid: cid.to_string(),
            source,
        })?;
        Ok(Checked { cid, bytes })
    }

    /// `object` encoded by the store into `out` (its canonical DAG-CBOR, as the store's own
    /// encoder writes it) and named: one encoding and one hashing, no decoding. For an upload
    /// sent in another form (DAG-JSON), decoded once by its route into `object`.
    pub fn check_encoding<'a>(
        &self,
        object: &Object,
        out: &'a mut Vec<u8>,
    ) -> Result<Checked<'a>, StoreError> {
        let encoded = object.encode().map_err(|source| StoreError::NotAnObject {
            cid: "(unencodable)".to_string(),
            source,
        })?;
        *out = encoded.bytes;
        self.verify_kind(&encoded.cid, out.len())?;
        Ok(Checked {
            cid: encoded.cid,
            bytes: out,
        })
    }

    /// `bytes` under a CID the caller supplied, verified (hash included).
    pub(super) fn checked<'a>(
        &self,
        cid: &Cid,
        bytes: &'a [u8],
    ) -> Result<Checked<'a>, StoreError> {
        self.verify(cid, bytes)?;
        Ok(Checked { cid: *cid, bytes })
    }
}
