//! The datastore as the journal's object storage: the journal defines what it needs
//! ([`Objects`]) and this layer, above it, provides it, so the journal never names the store.

use super::Store;
use crate::journal::objects::Objects;
use crate::model::{Cid, Object};

impl Objects for Store {
    fn get_bytes(&self, cid: &Cid) -> Option<Vec<u8>> {
        self.get(cid).ok().flatten()
    }
    fn put_bytes(&self, cid: &Cid, bytes: &[u8]) -> Result<(), String> {
        self.put(cid, bytes).map(|_| ()).map_err(|e| e.to_string())
    }
    fn put_encoded(&self, cid: &Cid, bytes: &[u8]) -> Result<(), String> {
        Store::put_encoded(self, cid, bytes)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
    /// Bytes stored here were validated as canonical DAG-CBOR on the way in (`Store::verify`,
    /// or this process's own encoder), so they are decoded without re-encoding them.
    fn object(&self, cid: &Cid) -> Option<Object> {
        self.get_bytes(cid)
            .and_then(|bytes| Object::decode_validated(&bytes).ok())
    }
    fn contains(&self, cid: &Cid) -> bool {
        self.has(cid).unwrap_or(false)
    }
}
