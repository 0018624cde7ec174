//! Where the journal reads and writes objects: the [`Objects`] trait (the datastore implements
//! it in `crate::store`, above this layer), or a map in tests.

use std::collections::HashMap;

use crate::model::{Cid, Object};

/// Object storage as the journal needs it.
pub trait Objects {
    /// The bytes of an object.
    fn get_bytes(&self, cid: &Cid) -> Option<Vec<u8>>;
    /// Stores verified bytes under their CID (durably when this returns).
    fn put_bytes(&self, cid: &Cid, bytes: &[u8]) -> Result<(), String>;

    /// Stores bytes this process encoded itself (canonical by construction): the store may skip
    /// re-validating the encoding, but still checks the hash and the size.
    fn put_encoded(&self, cid: &Cid, bytes: &[u8]) -> Result<(), String> {
        self.put_bytes(cid, bytes)
    }

    /// The decoded Mediachain object, if present and valid.
    fn object(&self, cid: &Cid) -> Option<Object> {
        self.get_bytes(cid)
            .and_then(|bytes| Object::decode(&bytes).ok())
    }

    /// Whether an object is present.
    fn contains(&self, cid: &Cid) -> bool {
        self.get_bytes(cid).is_some()
    }
}

/// In-memory objects for the pure protocol tests.
#[derive(Debug, Default)]
pub struct MemObjects(std::sync::RwLock<HashMap<Cid, Vec<u8>>>);

impl MemObjects {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// Stores a model object and returns its CID.
    pub fn insert(&self, object: &Object) -> Cid {
        let Ok(encoded) = object.encode() else {
            return crate::model::nil_cid();
        };
        let _ = self.put_bytes(&encoded.cid, &encoded.bytes);
        encoded.cid
    }
}

impl Objects for MemObjects {
    fn get_bytes(&self, cid: &Cid) -> Option<Vec<u8>> {
        self.0.read().ok()?.get(cid).cloned()
    }
    fn put_bytes(&self, cid: &Cid, bytes: &[u8]) -> Result<(), String> {
        self.0
            .write()
            .map_err(|e| e.to_string())?
            .insert(*cid, bytes.to_vec());
        Ok(())
    }
}
