//! Signed revocation lists and the set of revocations that chain verification honours.
//!
//! A list is signed by the root or by a principal. A revocation is honoured when it comes from
//! the root (it revokes any key) or from the issuer of the revoked certificate (a principal
//! revokes the peers it admitted, a peer the clients it registered), from its `revokedAt` on.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::cert::CertificateBody;
use super::keys::{PublicKey, SecretKey};
use super::signed::{Document, Signed};
use crate::time::UnixSeconds;

/// One revoked key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Revocation {
    /// The revoked key.
    pub subject: PublicKey,
    /// When it was revoked.
    #[serde(rename = "revokedAt")]
    pub revoked_at: UnixSeconds,
    /// Why (for operators).
    pub reason: String,
}

/// The content of a revocation list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevocationListBody {
    /// The signer of the list.
    pub issuer: PublicKey,
    /// Increases with every new version of the issuer's list.
    pub sequence: u64,
    /// When this version was signed.
    #[serde(rename = "issuedAt")]
    pub issued_at: UnixSeconds,
    /// The revoked keys.
    pub revoked: Vec<Revocation>,
}

impl Document for RevocationListBody {
    const CONTEXT: &'static [u8] = b"mediachain/revocations/v1";
    const PEM_LABEL: &'static str = "MEDIACHAIN REVOCATION LIST";
    const WHAT: &'static str = "revocation list";
}

/// A signed revocation list.
pub type RevocationList = Signed<RevocationListBody>;

impl RevocationList {
    /// An empty list of `issuer`, sequence 0.
    pub fn empty(issuer: &SecretKey, now: UnixSeconds) -> Self {
        Signed::sign(
            RevocationListBody {
                issuer: issuer.public(),
                sequence: 0,
                issued_at: now,
                revoked: vec![],
            },
            issuer,
        )
    }

    /// The next version of this list with `revocation` added (re-signed by `issuer`).
    pub fn with(&self, issuer: &SecretKey, revocation: Revocation, now: UnixSeconds) -> Self {
        let mut body = self.body.clone();
        body.sequence += 1;
        body.issued_at = now;
        body.revoked.retain(|r| r.subject != revocation.subject);
        body.revoked.push(revocation);
        Signed::sign(body, issuer)
    }
}

/// Why a revocation list was not taken into a [`RevocationSet`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RevocationError {
    /// The signature does not verify against the list's issuer.
    #[error("revocation list of {0} has an invalid signature")]
    BadSignature(PublicKey),
}

/// The revocations known to a node, indexed for O(1) lookup during verification.
#[derive(Debug, Clone)]
pub struct RevocationSet {
    root: PublicKey,
    by_issuer_and_subject: HashMap<(PublicKey, PublicKey), (UnixSeconds, String)>,
    /// The signed lists taken with [`RevocationSet::add`] (a peer puts them on the chain).
    lists: Vec<RevocationList>,
}

impl RevocationSet {
    /// No revocations yet, for the network whose root key is `root`.
    pub fn new(root: PublicKey) -> Self {
        Self {
            root,
            by_issuer_and_subject: HashMap::new(),
            lists: vec![],
        }
    }

    /// Takes a signed list. Lists only add revocations, so an older version is harmless.
    pub fn add(&mut self, list: &RevocationList) -> Result<(), RevocationError> {
        let issuer = list.body.issuer;
        if !list.signed_by(&issuer) {
            return Err(RevocationError::BadSignature(issuer));
        }
        for revocation in &list.body.revoked {
            self.by_issuer_and_subject.insert(
                (issuer, revocation.subject),
                (revocation.revoked_at, revocation.reason.clone()),
            );
        }
        self.lists.push(list.clone());
        Ok(())
    }

    /// Takes the revocations of a list whose signature the caller checked, each in force from
    /// its `revokedAt` or from `latest`, whichever comes first (a list recorded on the chain
    /// binds every block after the one recording it, whatever date it names). An entry known
    /// already keeps the earlier time.
    pub fn add_effective(&mut self, list: &RevocationList, latest: UnixSeconds) {
        let issuer = list.body.issuer;
        for revocation in &list.body.revoked {
            let at = revocation.revoked_at.min(latest);
            let entry = self
                .by_issuer_and_subject
                .entry((issuer, revocation.subject))
                .or_insert((at, revocation.reason.clone()));
            entry.0 = entry.0.min(at);
        }
    }

    /// Takes every revocation of `other` (the earlier time wins where both hold one).
    pub fn extend(&mut self, other: &RevocationSet) {
        for (pair, (at, reason)) in &other.by_issuer_and_subject {
            let entry = self
                .by_issuer_and_subject
                .entry(*pair)
                .or_insert((*at, reason.clone()));
            entry.0 = entry.0.min(*at);
        }
    }

    /// Whether `list` names a revocation this set lacks.
    pub fn adds_to(&self, list: &RevocationList) -> bool {
        list.body.revoked.iter().any(|r| {
            !self
                .by_issuer_and_subject
                .contains_key(&(list.body.issuer, r.subject))
        })
    }

    /// Whether `issuer` revoked `subject` (at any time).
    pub fn revokes(&self, issuer: &PublicKey, subject: &PublicKey) -> bool {
        self.by_issuer_and_subject
            .contains_key(&(*issuer, *subject))
    }

    /// The signed lists this set was given with [`RevocationSet::add`].
    pub fn lists(&self) -> &[RevocationList] {
        &self.lists
    }

    /// Whether a certificate's subject is revoked, at time `at`, by its issuer or by the root, and
    /// by whom. A revocation takes effect at its `revokedAt`: what the key signed before stays
    /// verifiable, so replaying history gives the same answer on every node.
    pub fn revocation_of(
        &self,
        cert: &CertificateBody,
        at: UnixSeconds,
    ) -> Option<(PublicKey, &str)> {
        [cert.issuer, self.root].into_iter().find_map(|by| {
            self.by_issuer_and_subject
                .get(&(by, cert.subject))
                .filter(|(revoked_at, _)| *revoked_at <= at)
                .map(|(_, reason)| (by, reason.as_str()))
        })
    }

    /// Number of revoked (issuer, subject) pairs.
    pub fn len(&self) -> usize {
        self.by_issuer_and_subject.len()
    }

    /// Whether no revocation is known.
    pub fn is_empty(&self) -> bool {
        self.by_issuer_and_subject.is_empty()
    }
}
