//! Serde support for [`JournalEntry`], so blocks and transactions can derive their DAG-CBOR
//! encoding. Encoding writes the fields straight to the encoder (blocks and transactions carry
//! thousands of entries: building each entry's IPLD map first cost a fifth of a replica's
//! verify+apply time); the bytes are those of the entry's IPLD form ([`JournalEntry::to_ipld`]),
//! the encoder ordering the keys canonically. Decoding goes through the IPLD form, whose reader
//! checks every field.

use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::model::{Ipld, JournalEntry, Object};

impl Serialize for JournalEntry {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            JournalEntry::Insert {
                reference,
                timestamp,
            } => {
                let mut map = serializer.serialize_map(Some(3))?;
                map.serialize_entry("type", "insert")?;
                map.serialize_entry("ref", reference)?;
                map.serialize_entry("timestamp", timestamp)?;
                map.end()
            }
            JournalEntry::Update {
                reference,
                chain,
                chain_previous,
                timestamp,
            } => {
                let mut map = serializer.serialize_map(Some(5))?;
                map.serialize_entry("type", "update")?;
                map.serialize_entry("ref", reference)?;
                map.serialize_entry("chain", chain)?;
                map.serialize_entry("chainPrevious", chain_previous)?;
                map.serialize_entry("timestamp", timestamp)?;
                map.end()
            }
            JournalEntry::ChainMerge {
                reference,
                chain,
                chain_previous,
                chain_merge,
                timestamp,
            } => {
                let mut map = serializer.serialize_map(Some(6))?;
                map.serialize_entry("type", "chainMerge")?;
                map.serialize_entry("ref", reference)?;
                map.serialize_entry("chain", chain)?;
                map.serialize_entry("chainPrevious", chain_previous)?;
                map.serialize_entry("chainMerge", chain_merge)?;
                map.serialize_entry("timestamp", timestamp)?;
                map.end()
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::codec;

    fn cid(n: u8) -> crate::model::Cid {
        codec::cid_of(codec::RAW, &[n])
    }

    #[test]
    fn entries_encode_to_the_bytes_of_their_ipld_form_and_decode_back() {
        let entries = [
            JournalEntry::Insert {
                reference: cid(1),
                timestamp: 1_700_000_000,
            },
            JournalEntry::Update {
                reference: cid(1),
                chain: cid(2),
                chain_previous: cid(3),
                timestamp: u64::MAX,
            },
            JournalEntry::ChainMerge {
                reference: cid(1),
                chain: cid(2),
                chain_previous: cid(3),
                chain_merge: cid(4),
                timestamp: 0,
            },
        ];
        for entry in entries {
            let direct = serde_ipld_dagcbor::to_vec(&entry).unwrap();
            let via_ipld = serde_ipld_dagcbor::to_vec(&entry.to_ipld()).unwrap();
            assert_eq!(direct, via_ipld, "{entry:?}");
            let back: JournalEntry = serde_ipld_dagcbor::from_slice(&direct).unwrap();
            assert_eq!(back, entry);
        }
    }
}
