//! The cache of verification results that depend only on the bytes checked (certificate
//! chains, transaction signatures), so that a transaction checked at admission costs little
//! when its block arrives.

use std::collections::{HashMap, HashSet};

use sha2::{Digest, Sha256};

use super::Rules;
use crate::journal::transaction::{Transaction, TxId};
use crate::time::UnixSeconds;
use crate::trust::{CertError, Certificate, Chain, Level, PublicKey};

/// Cache of verification results that depend only on the bytes checked: certificate chains
/// whose signatures and structure were verified, and transaction signatures found valid (a
/// transaction is checked at admission and again in every block that carries it). Shared by
/// threads: verification itself runs outside the locks. Bounded: each map is emptied when full.
#[derive(Debug, Default)]
pub struct ChainCache {
    verified: std::sync::RwLock<HashMap<[u8; 32], PublicKey>>,
    signatures: std::sync::RwLock<HashSet<[u8; 32]>>,
}

/// Entries each map of a [`ChainCache`] holds before it is emptied.
const CACHE_CAPACITY: usize = 100_000;

impl ChainCache {
    /// Forgets everything (the rules changed).
    pub fn clear(&self) {
        if let Ok(mut verified) = self.verified.write() {
            verified.clear();
        }
        if let Ok(mut signatures) = self.signatures.write() {
            signatures.clear();
        }
    }

    /// Whether `tx`'s signature over its body (canonical bytes `body`, id `id`) is valid,
    /// remembering valid ones (the key covers the body's hash, which names the signer, and the
    /// signature).
    pub(super) fn transaction_signature_valid(
        &self,
        tx: &Transaction,
        id: &TxId,
        body: &[u8],
    ) -> bool {
        let key = signature_key(id, &tx.signature);
        if self.signature_known(&key) {
            return true;
        }
        if !tx.signature_valid_over(body) {
            return false;
        }
        self.remember_signature(key);
        true
    }

    /// Whether the transaction signature under `key` ([`signature_key`]) was found valid.
    pub(super) fn signature_known(&self, key: &[u8; 32]) -> bool {
        self.signatures.read().is_ok_and(|s| s.contains(key))
    }

    /// Remembers a transaction signature found valid.
    pub(super) fn remember_signature(&self, key: [u8; 32]) {
        if let Ok(mut signatures) = self.signatures.write() {
            if signatures.len() >= CACHE_CAPACITY {
                signatures.clear();
            }
            signatures.insert(key);
        }
    }

    /// Verifies `chain` as a `level` chain at time `at`, reusing earlier signature checks.
    pub fn verify(
        &self,
        rules: &Rules,
        chain: &[Certificate],
        level: Level,
        at: UnixSeconds,
    ) -> Result<PublicKey, CertError> {
        let mut hasher = Sha256::new();
        hasher.update([level.number()]);
        // Every field of every certificate (fixed-width, so no two chains hash alike).
        for cert in chain {
            let b = &cert.body;
            hasher.update([b.level.number()]);
            hasher.update(b.subject.as_bytes());
            hasher.update(b.issuer.as_bytes());
            hasher.update(b.not_before.to_be_bytes());
            hasher.update(b.not_after.to_be_bytes());
            hasher.update((cert.signature.len() as u64).to_be_bytes());
            hasher.update(&cert.signature);
        }
        let key: [u8; 32] = hasher.finalize().into();
        let chain = Chain(chain.to_vec());
        let cached = self.verified.read().ok().and_then(|v| v.get(&key).copied());
        if let Some(subject) = cached {
            chain.verify_validity(&rules.revocations, at)?;
            return Ok(subject);
        }
        let subject = chain.verify(&rules.root, &rules.revocations, at, level)?;
        if let Ok(mut verified) = self.verified.write() {
            if verified.len() >= CACHE_CAPACITY {
                verified.clear();
            }
            verified.insert(key, subject);
        }
        Ok(subject)
    }
}

/// The signature cache's key of a transaction: its id (the body's hash, which names the signer)
/// and its signature.
pub(super) fn signature_key(id: &TxId, signature: &[u8]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(id.0);
    hasher.update(signature);
    hasher.finalize().into()
}
