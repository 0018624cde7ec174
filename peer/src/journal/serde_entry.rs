//! Serde support for [`JournalEntry`] through its IPLD form, so blocks and transactions can
//! derive their DAG-CBOR encoding.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::model::{Ipld, JournalEntry, Object};

impl Serialize for JournalEntry {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_ipld().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for JournalEntry {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match Object::from_ipld(Ipld::deserialize(deserializer)?) {
            Ok(Object::Entry(entry)) => Ok(entry),
            Ok(_) => Err(serde::de::Error::custom(
                "expected a journal entry (insert, update or chainMerge)",
            )),
            Err(e) => Err(serde::de::Error::custom(e)),
        }
    }
}
