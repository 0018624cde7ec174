//! Certificates of the tower of trust and chain verification up to the pinned root key.
//!
//! root -> Level 0 (principals) -> Level 1 (peers) -> Level 2 (clients). A chain is stored leaf
//! first; a Level-n chain holds n+1 certificates, the last one signed by the root. Verification
//! takes the current time as an argument and never reads the clock.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::keys::{PublicKey, SecretKey};
use super::revocation::RevocationSet;
use super::signed::{Document, DocumentError, Signed};
use crate::time::UnixSeconds;

/// A level of the tower of trust.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub enum Level {
    /// Principals: trusted organisations that admit peers. Signed by the root.
    Principal = 0,
    /// Peers of the core network. Signed by a principal.
    Peer = 1,
    /// Clients. Signed by a peer after a proof of work.
    Client = 2,
}

impl Level {
    /// The level's number (0, 1 or 2).
    pub fn number(self) -> u8 {
        self as u8
    }

    /// The level whose holders may issue certificates of this level (`None`: the root).
    pub fn issuer_level(self) -> Option<Level> {
        match self {
            Level::Principal => None,
            Level::Peer => Some(Level::Principal),
            Level::Client => Some(Level::Peer),
        }
    }
}

impl TryFrom<u8> for Level {
    type Error = String;
    fn try_from(n: u8) -> Result<Self, String> {
        match n {
            0 => Ok(Level::Principal),
            1 => Ok(Level::Peer),
            2 => Ok(Level::Client),
            _ => Err(format!("certificate level must be 0, 1 or 2, not {n}")),
        }
    }
}

impl From<Level> for u8 {
    fn from(level: Level) -> u8 {
        level.number()
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Level-{}", self.number())
    }
}

/// What a certificate states: `issuer` vouches for `subject` at `level` within a time window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertificateBody {
    /// The certified level.
    pub level: Level,
    /// The certified key.
    pub subject: PublicKey,
    /// The signing key (the root for Level 0).
    pub issuer: PublicKey,
    /// Start of validity (inclusive), Unix seconds.
    #[serde(rename = "notBefore")]
    pub not_before: UnixSeconds,
    /// End of validity (exclusive), Unix seconds.
    #[serde(rename = "notAfter")]
    pub not_after: UnixSeconds,
}

impl Document for CertificateBody {
    const CONTEXT: &'static [u8] = b"mediachain/certificate/v1";
    const PEM_LABEL: &'static str = "MEDIACHAIN CERTIFICATE";
    const WHAT: &'static str = "certificate";
}

/// A signed certificate.
pub type Certificate = Signed<CertificateBody>;

impl Certificate {
    /// Issues a certificate for `subject` at `level`, valid over `[not_before, not_after)`.
    pub fn issue(
        issuer: &SecretKey,
        subject: PublicKey,
        level: Level,
        not_before: UnixSeconds,
        not_after: UnixSeconds,
    ) -> Self {
        Signed::sign(
            CertificateBody {
                level,
                subject,
                issuer: issuer.public(),
                not_before,
                not_after,
            },
            issuer,
        )
    }
}

/// Why a certificate chain is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertError {
    /// No certificate at all.
    #[error("empty certificate chain")]
    Empty,
    /// The leaf is not of the level the caller requires.
    #[error("certificate for {subject} is {found}, but {expected} is required")]
    WrongLevel {
        /// Leaf subject.
        subject: PublicKey,
        /// Required level.
        expected: Level,
        /// Level found.
        found: Level,
    },
    /// The chain's levels or length do not descend one by one to Level 0.
    #[error("certificate chain for {subject} is malformed: {detail}")]
    Malformed {
        /// Leaf subject.
        subject: PublicKey,
        /// What is wrong.
        detail: String,
    },
    /// A certificate's issuer is not the next certificate's subject.
    #[error("certificate for {subject} was issued by {issuer}, which the chain does not certify")]
    BrokenChain {
        /// Subject of the orphaned certificate.
        subject: PublicKey,
        /// Its issuer.
        issuer: PublicKey,
    },
    /// The Level-0 certificate is not signed by the pinned root.
    #[error(
        "principal certificate for {subject} is issued by {issuer}, not by the pinned root {root}"
    )]
    UnknownRoot {
        /// Principal.
        subject: PublicKey,
        /// Its issuer.
        issuer: PublicKey,
        /// The pinned root.
        root: PublicKey,
    },
    /// A signature does not verify.
    #[error("certificate for {subject} has an invalid signature")]
    BadSignature {
        /// Subject of the bad certificate.
        subject: PublicKey,
    },
    /// A certificate's window ended.
    #[error("certificate for {subject} expired at {not_after} (Unix seconds)")]
    Expired {
        /// Subject.
        subject: PublicKey,
        /// End of validity.
        not_after: UnixSeconds,
    },
    /// A certificate's window has not begun.
    #[error("certificate for {subject} is not valid before {not_before} (Unix seconds)")]
    NotYetValid {
        /// Subject.
        subject: PublicKey,
        /// Start of validity.
        not_before: UnixSeconds,
    },
    /// A certificate in the chain was revoked.
    #[error("certificate for {subject} was revoked by {by}: {reason}")]
    Revoked {
        /// Revoked subject.
        subject: PublicKey,
        /// Who revoked it.
        by: PublicKey,
        /// Stated reason.
        reason: String,
    },
}

/// A certificate chain, leaf first.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Chain(pub Vec<Certificate>);

impl Chain {
    /// The leaf certificate, if any.
    pub fn leaf(&self) -> Option<&Certificate> {
        self.0.first()
    }

    /// The chain for a certificate issued by the holder of `issuer_chain`.
    pub fn extend(certificate: Certificate, issuer_chain: &Chain) -> Self {
        let mut certs = vec![certificate];
        certs.extend(issuer_chain.0.iter().cloned());
        Chain(certs)
    }

    /// The chain as concatenated PEM blocks, leaf first.
    pub fn to_pem(&self) -> String {
        self.0.iter().map(Certificate::to_pem).collect()
    }

    /// Reads a chain from PEM text (leaf first).
    pub fn from_pem(text: &str) -> Result<Self, DocumentError> {
        Ok(Chain(Certificate::many_from_pem(text)?))
    }

    /// Verifies the chain up to `root` at time `now`, requiring a leaf of `expected` level, and
    /// returns the leaf's subject key.
    pub fn verify(
        &self,
        root: &PublicKey,
        revocations: &RevocationSet,
        now: UnixSeconds,
        expected: Level,
    ) -> Result<PublicKey, CertError> {
        let leaf = self.leaf().ok_or(CertError::Empty)?.body.subject;
        let found = self.0[0].body.level;
        if found != expected {
            return Err(CertError::WrongLevel {
                subject: leaf,
                expected,
                found,
            });
        }
        if self.0.len() != usize::from(expected.number()) + 1 {
            return Err(CertError::Malformed {
                subject: leaf,
                detail: format!(
                    "a {expected} chain holds {} certificates, this one {}",
                    expected.number() + 1,
                    self.0.len()
                ),
            });
        }
        for (i, cert) in self.0.iter().enumerate() {
            let body = &cert.body;
            let want = expected.number() - i as u8;
            if body.level.number() != want {
                return Err(CertError::Malformed {
                    subject: leaf,
                    detail: format!("certificate {i} is {}, expected Level-{want}", body.level),
                });
            }
            let issuer = match self.0.get(i + 1) {
                Some(parent) if parent.body.subject == body.issuer => parent.body.subject,
                Some(_) => {
                    return Err(CertError::BrokenChain {
                        subject: body.subject,
                        issuer: body.issuer,
                    })
                }
                None if body.issuer == *root => *root,
                None => {
                    return Err(CertError::UnknownRoot {
                        subject: body.subject,
                        issuer: body.issuer,
                        root: *root,
                    })
                }
            };
            if !cert.signed_by(&issuer) {
                return Err(CertError::BadSignature {
                    subject: body.subject,
                });
            }
        }
        self.verify_validity(revocations, now)?;
        Ok(leaf)
    }

    /// The time-dependent half of [`Chain::verify`]: every certificate is inside its validity
    /// window at `now` and not revoked by then. Cheap; callers that cached the signature checks of
    /// a chain still run this on every use.
    pub fn verify_validity(
        &self,
        revocations: &RevocationSet,
        now: UnixSeconds,
    ) -> Result<(), CertError> {
        for cert in &self.0 {
            let body = &cert.body;
            if now < body.not_before {
                return Err(CertError::NotYetValid {
                    subject: body.subject,
                    not_before: body.not_before,
                });
            }
            if now >= body.not_after {
                return Err(CertError::Expired {
                    subject: body.subject,
                    not_after: body.not_after,
                });
            }
            if let Some((by, reason)) = revocations.revocation_of(body, now) {
                return Err(CertError::Revoked {
                    subject: body.subject,
                    by,
                    reason: reason.to_string(),
                });
            }
        }
        Ok(())
    }
}
