//! The datastore as the journal's object storage: the journal defines what it needs
//! ([`Objects`]) and this layer, above it, provides it, so the journal never names the store.

use super::Store;
use crate::journal::objects::Objects;
use crate::model::Cid;

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
}
