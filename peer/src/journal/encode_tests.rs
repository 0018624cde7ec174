//! The direct encodings give serde's bytes for every shape of transaction and block.

use proptest::prelude::*;

use super::*;
use crate::journal::membership::Record;
use crate::journal::transaction::TxId;
use crate::journal::vote::{Checkpoint, Vote};
use crate::model::codec::{cid_of, DAG_CBOR, RAW};
use crate::trust::{CertificateBody, Chain, Level, PublicKey, SecretKey};

fn serde_bytes<T: serde::Serialize>(value: &T) -> Vec<u8> {
    serde_ipld_dagcbor::to_vec(value).unwrap()
}

fn keys() -> Vec<PublicKey> {
    (0..3).map(|_| SecretKey::generate().public()).collect()
}

fn cid(n: u64) -> Cid {
    // Both codecs, and digests of different inputs.
    let codec = if n % 2 == 0 { RAW } else { DAG_CBOR };
    cid_of(codec, &n.to_be_bytes())
}

fn an_entry() -> impl Strategy<Value = JournalEntry> {
    let t = prop_oneof![0..24u64, any::<u64>()];
    (
        0..3u8,
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
        t,
    )
        .prop_map(|(kind, a, b, c, d, timestamp)| match kind {
            0 => JournalEntry::Insert {
                reference: cid(a),
                timestamp,
            },
            1 => JournalEntry::Update {
                reference: cid(a),
                chain: cid(b),
                chain_previous: cid(c),
                timestamp,
            },
            _ => JournalEntry::ChainMerge {
                reference: cid(a),
                chain: cid(b),
                chain_previous: cid(c),
                chain_merge: cid(d),
                timestamp,
            },
        })
}

fn a_certificate(keys: Vec<PublicKey>) -> impl Strategy<Value = Certificate> {
    (
        0..3u8,
        0..3usize,
        0..3usize,
        any::<u64>(),
        any::<u64>(),
        prop::collection::vec(any::<u8>(), 0..80),
    )
        .prop_map(move |(level, s, i, not_before, not_after, signature)| {
            let level = [Level::Principal, Level::Peer, Level::Client][level as usize];
            Certificate {
                body: CertificateBody {
                    level,
                    subject: keys[s],
                    issuer: keys[i],
                    not_before,
                    not_after,
                },
                signature,
            }
        })
}

fn a_transaction() -> impl Strategy<Value = Transaction> {
    let keys = keys();
    (
        0..3usize,
        prop::collection::vec(an_entry(), 0..30),
        any::<u64>(),
        prop::collection::vec(a_certificate(keys.clone()), 0..4),
        any::<u8>(),
        any::<u64>(),
        prop::collection::vec(any::<u8>(), 0..70),
    )
        .prop_map(
            move |(client, entries, timestamp, certificate, bits, nonce, signature)| Transaction {
                body: TransactionBody {
                    client: keys[client],
                    entries,
                    timestamp,
                },
                certificate,
                pow: PowStamp { bits, nonce },
                signature,
            },
        )
}

fn a_block() -> impl Strategy<Value = Block> {
    (
        prop::collection::vec(a_transaction(), 0..4),
        prop::collection::vec(an_entry(), 0..30),
        any::<u64>(),
        any::<u64>(),
        prop::collection::vec(any::<u8>(), 0..70),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(transactions, entries, height, timestamp_ms, signature, record, parameters)| {
                let key = SecretKey::generate();
                let mut block = Block::genesis("a network", entries);
                block.chain = cid(height);
                block.height = height;
                block.timestamp_ms = timestamp_ms;
                block.committer = transactions
                    .first()
                    .map(|t: &Transaction| t.certificate.clone())
                    .unwrap_or_default();
                block.transactions = transactions;
                block.signature = signature;
                if record {
                    block.records = vec![Record::join(&key, &Chain::default(), "a network")];
                    let point = |height| Checkpoint {
                        height,
                        cid: cid(height),
                    };
                    block.finality = vec![Vote::sign(&key, "a network", point(0), point(4))];
                }
                if parameters {
                    block.parameters = Some(serde_bytes::ByteBuf::from(vec![7; 32]));
                }
                block
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn transactions_encode_to_their_serde_bytes(tx in a_transaction()) {
        prop_assert_eq!(transaction_bytes(&tx), serde_bytes(&tx));
        prop_assert_eq!(body_bytes(&tx.body), serde_bytes(&tx.body));
        prop_assert_eq!(tx.id(), TxId::of_body_bytes(&serde_bytes(&tx.body)));
    }

    #[test]
    fn blocks_encode_to_their_serde_bytes_signed_or_not(block in a_block()) {
        prop_assert_eq!(block.to_bytes(), serde_bytes(&block));
        let mut unsigned = block.clone();
        unsigned.signature.clear();
        prop_assert_eq!(block_bytes(&block, false), serde_bytes(&unsigned));
        prop_assert_eq!(Block::from_bytes(&block.to_bytes()), Ok(block));
    }
}

#[test]
fn heads_take_the_shortest_form_at_every_width() {
    for n in [
        0,
        23,
        24,
        255,
        256,
        65_535,
        65_536,
        u64::from(u32::MAX),
        u64::MAX,
    ] {
        let mut out = vec![];
        head(&mut out, UINT, n);
        assert_eq!(out, serde_bytes(&n), "{n}");
        assert_eq!(read_head(&out, 0), Some((UINT, n, out.len())), "{n}");
    }
}

#[test]
fn splicing_refuses_what_is_not_a_whole_map() {
    let map = serde_bytes(&std::collections::BTreeMap::from([("a", 1u8), ("b", 2)]));
    let mut out = vec![];
    assert_eq!(splice(&map, &mut out, |_, _| false), Some(0));
    assert_eq!(out, map);
    for broken in [
        &map[..map.len() - 1],
        &serde_bytes(&[1u8, 2])[..],
        &[0xbf][..],
    ] {
        assert_eq!(
            splice(broken, &mut vec![], |_, _| false),
            None,
            "{broken:?}"
        );
    }
    let mut longer = map.clone();
    longer.push(0);
    assert_eq!(splice(&longer, &mut vec![], |_, _| false), None);
}
