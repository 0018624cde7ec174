//! A block's signing bytes read off its canonical encoding: the bytes with the `signature`
//! value replaced by the empty byte string, which is exactly the canonical encoding of the block
//! with an empty signature (DAG-CBOR map keys keep their order and the map its length). A
//! receiver checks the signature over what it stores without cloning and re-encoding the block.
//!
//! Reads only; never decides whether bytes are a valid block (that is `Block::from_bytes`).

use cbor4ii::core::dec::{Decode, IgnoredAny, Read, Reference};
use cbor4ii::core::types::Map;

/// Nesting deeper than this is refused (blocks nest a few levels: block, transaction, body,
/// entries, certificate).
const MAX_DEPTH: usize = 64;

/// A reader over a slice that knows its offset.
struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
    depth: usize,
}

impl<'de> Read<'de> for Cursor<'de> {
    type Error = std::convert::Infallible;

    fn fill<'short>(&'short mut self, want: usize) -> Result<Reference<'de, 'short>, Self::Error> {
        let rest = self.bytes.get(self.at..).unwrap_or_default();
        Ok(Reference::Long(&rest[..want.min(rest.len())]))
    }

    fn advance(&mut self, n: usize) {
        self.at = self.at.saturating_add(n).min(self.bytes.len());
    }

    fn step_in(&mut self) -> bool {
        self.depth += 1;
        self.depth <= MAX_DEPTH
    }

    fn step_out(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }
}

/// The canonical encoding of a block with an empty signature, from `bytes`, the canonical
/// encoding of the signed block (`None`: `bytes` is not a map with a `signature` key).
pub(super) fn unsigned(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut reader = Cursor {
        bytes,
        at: 0,
        depth: 0,
    };
    let entries = Map::len(&mut reader).ok()??;
    for _ in 0..entries {
        let key = <&str>::decode(&mut reader).ok()?;
        let start = reader.at;
        IgnoredAny::decode(&mut reader).ok()?;
        if key == "signature" {
            let mut out = Vec::with_capacity(bytes.len());
            out.extend_from_slice(bytes.get(..start)?);
            out.push(EMPTY_BYTES);
            out.extend_from_slice(bytes.get(reader.at..)?);
            return Some(out);
        }
    }
    None
}

/// CBOR's empty byte string (major type 2, length 0).
const EMPTY_BYTES: u8 = 0x40;

#[cfg(test)]
mod tests {
    use super::unsigned;
    use crate::journal::tests::{commit, net, replica, world, NOW};
    use crate::journal::transaction::canonical;
    use crate::journal::Block;
    use crate::model::JournalEntry;

    fn empty_signature(block: &Block) -> Vec<u8> {
        canonical(&Block {
            signature: vec![],
            ..block.clone()
        })
    }

    #[test]
    fn the_signing_bytes_read_off_a_block_are_its_encoding_with_an_empty_signature() {
        let (net, world) = (net(), world());
        let mut r = replica(&net, &world);
        let tx = |client: usize, at: u64| {
            let entries = vec![JournalEntry::Insert {
                reference: world.entity,
                timestamp: at,
            }];
            net.tx(client, entries, at)
        };
        let (block, rejected) = commit(&net, &mut r, vec![tx(0, NOW), tx(1, NOW + 1)], NOW);
        assert!(rejected.is_empty() && block.transactions.len() == 2);
        assert_eq!(unsigned(&block.to_bytes()), Some(empty_signature(&block)));
        assert!(block.signature_valid_encoded(&block.to_bytes()));
        // Fields after `signature` in key order are present (`timestampMs`, `transactions`) and
        // before it (`entries`, `committer`), so the splice keeps both sides.
        let (empty, _) = commit(&net, &mut r, vec![], NOW + 2);
        assert_eq!(unsigned(&empty.to_bytes()), Some(empty_signature(&empty)));
    }

    #[test]
    fn bytes_that_are_not_a_signed_map_have_no_signing_bytes() {
        let genesis = world().genesis;
        let mut bytes = genesis.to_bytes();
        // The genesis block's signature is already empty: its signing bytes are its bytes.
        assert_eq!(unsigned(&bytes), Some(bytes.clone()));
        assert_eq!(unsigned(&canonical(&vec![1u8, 2, 3])), None);
        assert_eq!(unsigned(&canonical(&"signature")), None);
        bytes.truncate(bytes.len() / 2);
        assert_eq!(unsigned(&bytes), None);
        assert_eq!(unsigned(&[]), None);
    }

    #[test]
    fn a_tampered_encoding_fails_the_signature_check() {
        let (net, world) = (net(), world());
        let mut r = replica(&net, &world);
        let (block, _) = commit(&net, &mut r, vec![], NOW);
        let mut later = block.clone();
        later.timestamp_ms += 1;
        assert!(!block.signature_valid_encoded(&later.to_bytes()));
    }
}
