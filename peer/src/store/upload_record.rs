//! One upload's record (when, how many bytes, which client) and its key in the `uploads` tree.

use std::net::{IpAddr, Ipv6Addr};

use crate::model::Cid;
use crate::store::StoreError;

/// The first byte of every record's key (other keys of the tree are markers such as the
/// released height).
pub(super) const RECORD: u8 = b'u';

/// What the store remembers of one upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Record {
    /// When it was uploaded or last used (by a pending transaction).
    pub(super) at: u64,
    /// Its bytes.
    pub(super) size: u64,
    /// The client (bucketed address) it is charged to.
    pub(super) client: IpAddr,
}

impl Record {
    /// Its 32 bytes as stored: when, size, client as an IPv6 address (IPv4 mapped).
    pub(super) fn encode(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        out[..8].copy_from_slice(&self.at.to_be_bytes());
        out[8..16].copy_from_slice(&self.size.to_be_bytes());
        let v6 = match self.client {
            IpAddr::V4(v4) => v4.to_ipv6_mapped(),
            IpAddr::V6(v6) => v6,
        };
        out[16..].copy_from_slice(&v6.octets());
        out
    }

    /// The record of [`Record::encode`]'s bytes.
    pub(super) fn decode(bytes: &[u8]) -> Result<Self, StoreError> {
        let damaged = || StoreError::Damaged(format!("upload record {}", hex::encode(bytes)));
        let bytes: &[u8; 32] = bytes.try_into().map_err(|_| damaged())?;
        let word = |i: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&bytes[i..i + 8]);
            u64::from_be_bytes(w)
        };
        let mut v6 = [0u8; 16];
        v6.copy_from_slice(&bytes[16..]);
        let v6 = Ipv6Addr::from(v6);
        let client = v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4);
        Ok(Self {
            at: word(0),
            size: word(8),
            client,
        })
    }
}

/// The key of the record of upload `cid`.
pub(super) fn record_key(cid: &Cid) -> Vec<u8> {
    let mut key = vec![RECORD];
    key.extend_from_slice(&cid.to_bytes());
    key
}
