//! Canonical DAG-CBOR of transactions and blocks, written straight into one buffer.
//!
//! `serde_ipld_dagcbor` sorts every map's keys by encoding each entry into a buffer of its own
//! and copying it up once per level of nesting; a transaction (a map of maps: its body, entries,
//! certificate chain and proof of work) cost about forty allocations per encoding, and a
//! transaction is encoded many times on its way (its id, its size in the mempool, its block's
//! signature, CID and canonical-form check). Here the keys are written in their canonical order
//! (shorter first, then bytewise) with no intermediate buffer. The bytes are exactly those of the
//! serde encoding (tested against it), so ids, signatures and block CIDs do not change.
//!
//! A block is encoded by serde without its transactions and entries (a small map), and the
//! values of those two keys are then replaced by their direct encodings; a field added to
//! [`Block`] is encoded by serde like the others.

use super::block::Block;
use super::transaction::{canonical, Transaction, TransactionBody};
use crate::model::{Cid, JournalEntry};
use crate::trust::{Certificate, PowStamp};

const UINT: u8 = 0;
const BYTES: u8 = 2;
const TEXT: u8 = 3;
const ARRAY: u8 = 4;
const MAP: u8 = 5;
const TAG: u8 = 6;
/// The CBOR tag of a CID (a link).
const CID_TAG: u64 = 42;

/// A major type with its argument, in the shortest form (as DAG-CBOR requires).
fn head(out: &mut Vec<u8>, major: u8, n: u64) {
    let m = major << 5;
    if n < 24 {
        out.push(m | n as u8);
    } else if let Ok(n) = u8::try_from(n) {
        out.extend_from_slice(&[m | 24, n]);
    } else if let Ok(n) = u16::try_from(n) {
        out.push(m | 25);
        out.extend_from_slice(&n.to_be_bytes());
    } else if let Ok(n) = u32::try_from(n) {
        out.push(m | 26);
        out.extend_from_slice(&n.to_be_bytes());
    } else {
        out.push(m | 27);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

fn text(out: &mut Vec<u8>, s: &str) {
    head(out, TEXT, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

fn bytes(out: &mut Vec<u8>, b: &[u8]) {
    head(out, BYTES, b.len() as u64);
    out.extend_from_slice(b);
}

fn link(out: &mut Vec<u8>, cid: &Cid) {
    head(out, TAG, CID_TAG);
    // The CID's bytes behind a zero byte (the identity multibase prefix).
    head(out, BYTES, cid.encoded_len() as u64 + 1);
    out.push(0);
    // Writing into a Vec cannot fail.
    let _ = cid.write_bytes(&mut *out);
}

fn entry(out: &mut Vec<u8>, e: &JournalEntry) {
    match e {
        JournalEntry::Insert {
            reference,
            timestamp,
        } => {
            head(out, MAP, 3);
            text(out, "ref");
            link(out, reference);
            text(out, "type");
            text(out, "insert");
            text(out, "timestamp");
            head(out, UINT, *timestamp);
        }
        JournalEntry::Update {
            reference,
            chain,
            chain_previous,
            timestamp,
        } => {
            head(out, MAP, 5);
            text(out, "ref");
            link(out, reference);
            text(out, "type");
            text(out, "update");
            text(out, "chain");
            link(out, chain);
            text(out, "timestamp");
            head(out, UINT, *timestamp);
            text(out, "chainPrevious");
            link(out, chain_previous);
        }
        JournalEntry::ChainMerge {
            reference,
            chain,
            chain_previous,
            chain_merge,
            timestamp,
        } => {
            head(out, MAP, 6);
            text(out, "ref");
            link(out, reference);
            text(out, "type");
            text(out, "chainMerge");
            text(out, "chain");
            link(out, chain);
            text(out, "timestamp");
            head(out, UINT, *timestamp);
            text(out, "chainMerge");
            link(out, chain_merge);
            text(out, "chainPrevious");
            link(out, chain_previous);
        }
    }
}

fn entries(out: &mut Vec<u8>, list: &[JournalEntry]) {
    head(out, ARRAY, list.len() as u64);
    for e in list {
        entry(out, e);
    }
}

fn certificate(out: &mut Vec<u8>, cert: &Certificate) {
    let b = &cert.body;
    head(out, MAP, 2);
    text(out, "body");
    head(out, MAP, 5);
    text(out, "level");
    head(out, UINT, u64::from(b.level.number()));
    text(out, "issuer");
    bytes(out, b.issuer.as_bytes());
    text(out, "subject");
    bytes(out, b.subject.as_bytes());
    text(out, "notAfter");
    head(out, UINT, b.not_after);
    text(out, "notBefore");
    head(out, UINT, b.not_before);
    text(out, "signature");
    bytes(out, &cert.signature);
}

fn pow(out: &mut Vec<u8>, stamp: &PowStamp) {
    head(out, MAP, 2);
    text(out, "bits");
    head(out, UINT, u64::from(stamp.bits));
    text(out, "nonce");
    head(out, UINT, stamp.nonce);
}

fn body(out: &mut Vec<u8>, body: &TransactionBody) {
    head(out, MAP, 3);
    text(out, "client");
    bytes(out, body.client.as_bytes());
    text(out, "entries");
    entries(out, &body.entries);
    text(out, "timestamp");
    head(out, UINT, body.timestamp);
}

fn transaction(out: &mut Vec<u8>, tx: &Transaction) {
    head(out, MAP, 4);
    text(out, "pow");
    pow(out, &tx.pow);
    text(out, "body");
    body(out, &tx.body);
    text(out, "signature");
    bytes(out, &tx.signature);
    text(out, "certificate");
    head(out, ARRAY, tx.certificate.len() as u64);
    for cert in &tx.certificate {
        certificate(out, cert);
    }
}

/// Canonical DAG-CBOR of a transaction body (what is signed and hashed into the id).
pub(crate) fn body_bytes(b: &TransactionBody) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + 64 * b.entries.len());
    body(&mut out, b);
    out
}

/// Canonical DAG-CBOR of a transaction.
pub(crate) fn transaction_bytes(tx: &Transaction) -> Vec<u8> {
    let mut out = Vec::with_capacity(1024);
    transaction(&mut out, tx);
    out
}

/// Canonical DAG-CBOR of `block`, or of what its committer signs (`signed: false`: the block
/// with an empty signature).
pub(crate) fn block_bytes(block: &Block, signed: bool) -> Vec<u8> {
    let header = block.without_contents(signed);
    let small = canonical(&header);
    let mut out = Vec::with_capacity(small.len() + 1024 * block.transactions.len());
    let replaced = splice(&small, &mut out, |key, out| match key {
        b"transactions" => {
            head(out, ARRAY, block.transactions.len() as u64);
            for tx in &block.transactions {
                transaction(out, tx);
            }
            true
        }
        b"entries" => {
            entries(out, &block.entries);
            true
        }
        _ => false,
    });
    if replaced == Some(2) {
        return out;
    }
    // Not reached: the header is serde's own encoding of a map holding both keys.
    let mut full = block.clone();
    if !signed {
        full.signature.clear();
    }
    canonical(&full)
}

/// Copies the encoded map `map` into `out`, letting `value` write the value of each key it
/// answers `true` for instead of the encoded one; returns how many values it replaced (`None`
/// if `map` is not a well-formed map).
fn splice(
    map: &[u8],
    out: &mut Vec<u8>,
    mut value: impl FnMut(&[u8], &mut Vec<u8>) -> bool,
) -> Option<usize> {
    let (major, pairs, mut at) = read_head(map, 0)?;
    if major != MAP {
        return None;
    }
    out.extend_from_slice(&map[..at]);
    let mut replaced = 0;
    for _ in 0..pairs {
        let key_end = item_end(map, at)?;
        let (key_major, _, key_start) = read_head(map, at)?;
        let key = (key_major == TEXT).then(|| &map[key_start..key_end]);
        let value_end = item_end(map, key_end)?;
        out.extend_from_slice(&map[at..key_end]);
        if key.is_some_and(|k| value(k, out)) {
            replaced += 1;
        } else {
            out.extend_from_slice(&map[key_end..value_end]);
        }
        at = value_end;
    }
    (at == map.len()).then_some(replaced)
}

/// The major type, argument and end of the head of the item at `at`.
fn read_head(b: &[u8], at: usize) -> Option<(u8, u64, usize)> {
    let first = *b.get(at)?;
    let (major, info) = (first >> 5, first & 0x1f);
    let width = match info {
        0..=23 => return Some((major, u64::from(info), at + 1)),
        24 => 1,
        25 => 2,
        26 => 4,
        27 => 8,
        _ => return None, // indefinite lengths are not DAG-CBOR
    };
    let arg = b.get(at + 1..at + 1 + width)?;
    let n = arg.iter().fold(0u64, |n, byte| n << 8 | u64::from(*byte));
    Some((major, n, at + 1 + width))
}

/// Where the item starting at `at` ends.
fn item_end(b: &[u8], at: usize) -> Option<usize> {
    let (major, n, next) = read_head(b, at)?;
    match major {
        BYTES | TEXT => {
            let end = next.checked_add(usize::try_from(n).ok()?)?;
            (end <= b.len()).then_some(end)
        }
        ARRAY | MAP => {
            let items = if major == MAP { n.checked_mul(2)? } else { n };
            (0..items).try_fold(next, |p, _| item_end(b, p))
        }
        TAG => item_end(b, next),
        _ => Some(next), // integers, simple values and floats: the head is the item
    }
}

#[cfg(test)]
#[path = "encode_tests.rs"]
mod tests;
