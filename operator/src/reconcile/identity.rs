//! Per-peer identities (pure): which Level-1 keys and certificates each peer's Secret must hold.
//!
//! Rules: an existing key is never regenerated (a Secret with an unreadable key is an error the
//! user resolves); a certificate is re-issued with the same key when it expires within
//! `renewBeforeHours`, when it no longer verifies (e.g. a new principal or root), or when it was
//! not issued by the current principal. A peer certificate never outlives the principal's.

use std::path::Path;

use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use mediachain::trust::{keyfile, Certificate, Chain, Level, PublicKey, RevocationSet, SecretKey};

use super::validate::Valid;
use crate::naming;
use crate::{Error, Result};

/// Identity Secret key holding the peer's PKCS#8 PEM key.
pub const PEER_KEY: &str = "peer.key";
/// Identity Secret key holding the peer's chain (leaf first).
pub const PEER_CHAIN: &str = "peer.chain";
/// Backdating of `notBefore`, to tolerate clock skew between nodes.
pub const CLOCK_SKEW_SECS: u64 = 300;

/// What happened to an identity in this pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// A new key and certificate were issued.
    Issued,
    /// The certificate was renewed before expiry (same key).
    Renewed,
    /// The certificate did not verify against the current principal and root; re-issued (same key).
    Reissued,
    /// The peer's key is revoked (`revocations.pem`): a new key and certificate were issued.
    Revoked,
}

/// An identity change, for events and logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Identity Secret name.
    pub secret: String,
    /// The peer's PeerId.
    pub peer_id: String,
    /// What happened.
    pub kind: ChangeKind,
}

/// The desired content of one identity Secret.
#[derive(Clone)]
pub struct Identity {
    /// Peer ordinal.
    pub ordinal: i32,
    /// Secret name.
    pub secret: String,
    /// PKCS#8 PEM key (existing text kept byte for byte).
    pub key_pem: String,
    /// Chain PEM (existing text kept byte for byte unless re-issued).
    pub chain_pem: String,
    /// PeerId of the key.
    pub peer_id: String,
    /// End of the leaf certificate's validity, Unix seconds.
    pub not_after: u64,
    /// When the certificate was issued, Unix seconds (0: unknown, issued by an older operator).
    pub issued_at: u64,
    /// What changed in this pass, if anything.
    pub change: Option<ChangeKind>,
    /// The last key of this peer that was revoked and replaced, if any (kept on the Secret).
    pub revoked: Option<RevokedKey>,
}

/// A peer key that was revoked and replaced by the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokedKey {
    /// PeerId of the revoked key.
    pub peer_id: String,
    /// The revocation's reason, as the list gives it (at most [`MAX_REASON`] characters).
    pub reason: String,
    /// When the operator replaced it, Unix seconds.
    pub replaced_at: u64,
}

/// Longest revocation reason kept on a Secret and in status.
pub const MAX_REASON: usize = 256;

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("secret", &self.secret)
            .field("peer_id", &self.peer_id)
            .field("not_after", &self.not_after)
            .field("change", &self.change)
            .finish_non_exhaustive()
    }
}

/// Plans the identity of `ordinal`, given its existing Secret (if any).
pub fn plan(
    valid: &Valid,
    ordinal: i32,
    secret: String,
    existing: Option<&Secret>,
    now: u64,
    keygen: &mut dyn FnMut() -> SecretKey,
) -> Result<Identity> {
    let mut id = plan_key(valid, ordinal, secret, existing, now, keygen)?;
    id.revoked = match id.change {
        Some(ChangeKind::Revoked) => existing.and_then(|e| revoked_key(valid, e, now)),
        _ => existing.and_then(recorded_revocation),
    };
    Ok(id)
}

/// The key of `existing` as revoked now: its PeerId and the revocation's reason.
fn revoked_key(valid: &Valid, existing: &Secret, now: u64) -> Option<RevokedKey> {
    let chain = Chain::from_pem(&data_text(existing, PEER_CHAIN)?).ok()?;
    let leaf = chain.leaf()?;
    let (_, reason) = valid.principal.revoked.revocation_of(&leaf.body, now)?;
    Some(RevokedKey {
        peer_id: leaf.body.subject.to_string(),
        reason: reason.chars().take(MAX_REASON).collect(),
        replaced_at: now,
    })
}

/// The revoked key recorded on an identity Secret by an earlier pass.
fn recorded_revocation(existing: &Secret) -> Option<RevokedKey> {
    let annotations = existing.annotations();
    Some(RevokedKey {
        peer_id: annotations.get(naming::REVOKED_PEER_ID_ANNOTATION)?.clone(),
        reason: annotations
            .get(naming::REVOKED_REASON_ANNOTATION)
            .map(|r| r.chars().take(MAX_REASON).collect())
            .unwrap_or_default(),
        replaced_at: annotations
            .get(naming::REVOKED_AT_ANNOTATION)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
    })
}

/// The latest end of validity a certificate issued now can have: the configured validity,
/// capped at the principal's.
fn achievable(valid: &Valid, now: u64) -> u64 {
    let principal_not_after = valid
        .principal
        .chain
        .leaf()
        .map_or(0, |leaf| leaf.body.not_after);
    now.saturating_add(u64::from(valid.resource.spec.trust.certificate_validity_hours) * 3600)
        .min(principal_not_after)
}

/// Whether `chain` still certifies `subject`: `Ok(not_after)` when it verifies against the
/// root, was issued by the current principal and is not due for renewal; otherwise what a new
/// certificate for `subject` would be (`Renewed`: ours but due; `Reissued`: it no longer
/// verifies or another principal issued it).
pub(super) fn judge(
    valid: &Valid,
    chain: Option<&Chain>,
    subject: &PublicKey,
    now: u64,
) -> std::result::Result<u64, ChangeKind> {
    let principal = &valid.principal;
    let renew_before = u64::from(valid.resource.spec.trust.renew_before_hours) * 3600;
    let Some(chain) = chain else {
        return Err(ChangeKind::Reissued);
    };
    let verified = chain.verify(
        &principal.root,
        &RevocationSet::new(principal.root),
        now,
        Level::Peer,
    );
    let (Ok(certified), Some(leaf)) = (verified, chain.leaf()) else {
        return Err(ChangeKind::Reissued);
    };
    let ours = certified == *subject && leaf.body.issuer == principal.key.public();
    let fresh = leaf.body.not_after.saturating_sub(now) > renew_before
        || leaf.body.not_after >= achievable(valid, now);
    match (ours, fresh) {
        (true, true) => Ok(leaf.body.not_after),
        (true, false) => Err(ChangeKind::Renewed),
        (false, _) => Err(ChangeKind::Reissued),
    }
}

/// Whether the principal or the root revoked `subject` by `now`, and why.
pub(super) fn revocation(valid: &Valid, subject: &PublicKey, now: u64) -> Option<String> {
    let principal = &valid.principal;
    let body = mediachain::trust::CertificateBody {
        level: Level::Peer,
        issuer: principal.key.public(),
        subject: *subject,
        not_before: 0,
        not_after: 0,
    };
    principal
        .revoked
        .revocation_of(&body, now)
        .map(|(_, reason)| reason.chars().take(MAX_REASON).collect())
}

fn plan_key(
    valid: &Valid,
    ordinal: i32,
    secret: String,
    existing: Option<&Secret>,
    now: u64,
    keygen: &mut dyn FnMut() -> SecretKey,
) -> Result<Identity> {
    let Some(existing) = existing else {
        let (key, pem) = new_key(&secret, keygen)?;
        return Ok(issue(
            valid,
            ordinal,
            secret,
            key.public(),
            pem,
            now,
            ChangeKind::Issued,
        ));
    };
    let corrupt = |detail: String| Error::CorruptIdentity {
        name: secret.clone(),
        detail,
    };
    let key_pem =
        data_text(existing, PEER_KEY).ok_or_else(|| corrupt(format!("no UTF-8 `{PEER_KEY}`")))?;
    let key =
        keyfile::parse(Path::new(PEER_KEY), &key_pem, None).map_err(|e| corrupt(e.to_string()))?;
    let chain_pem = data_text(existing, PEER_CHAIN);
    let chain = chain_pem
        .as_deref()
        .and_then(|pem| Chain::from_pem(pem).ok());
    let revoked = chain.as_ref().and_then(|c| c.leaf()).is_some_and(|leaf| {
        leaf.body.subject == key.public()
            && valid
                .principal
                .revoked
                .revocation_of(&leaf.body, now)
                .is_some()
    });
    if revoked {
        let (key, pem) = new_key(&secret, keygen)?;
        return Ok(issue(
            valid,
            ordinal,
            secret,
            key.public(),
            pem,
            now,
            ChangeKind::Revoked,
        ));
    }
    let verdict = judge(valid, chain.as_ref(), &key.public(), now);
    match (verdict, chain_pem) {
        (Ok(not_after), Some(chain_pem)) => Ok(Identity {
            ordinal,
            peer_id: key.public().to_string(),
            issued_at: issued_at(existing),
            secret,
            key_pem,
            chain_pem,
            not_after,
            change: None,
            revoked: None,
        }),
        (verdict, _) => {
            let kind = verdict.err().unwrap_or(ChangeKind::Reissued);
            Ok(issue(
                valid,
                ordinal,
                secret,
                key.public(),
                key_pem,
                now,
                kind,
            ))
        }
    }
}

/// When the certificate of an identity object was issued (its annotation; 0: unknown).
pub(super) fn issued_at(object: &impl ResourceExt) -> u64 {
    object
        .annotations()
        .get(naming::ISSUED_AT_ANNOTATION)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Issues a certificate for `subject` now, as long as the configuration and the principal
/// allow.
pub(super) fn issue(
    valid: &Valid,
    ordinal: i32,
    secret: String,
    subject: PublicKey,
    key_pem: String,
    now: u64,
    kind: ChangeKind,
) -> Identity {
    let principal = &valid.principal;
    let not_after = achievable(valid, now);
    let cert = Certificate::issue(
        &principal.key,
        subject,
        Level::Peer,
        now.saturating_sub(CLOCK_SKEW_SECS),
        not_after,
    );
    let chain = Chain::extend(cert, &principal.chain);
    Identity {
        ordinal,
        secret,
        key_pem,
        chain_pem: chain.to_pem(),
        peer_id: subject.to_string(),
        not_after,
        issued_at: now,
        change: Some(kind),
        revoked: None,
    }
}

/// A new key for Secret `secret` and its PKCS#8 PEM text.
fn new_key(secret: &str, keygen: &mut dyn FnMut() -> SecretKey) -> Result<(SecretKey, String)> {
    let key = keygen();
    let pem = keyfile::to_plain_pem(&key).map_err(|detail| Error::Build {
        what: format!("Secret {secret}"),
        detail: format!("encoding a new key: {detail}"),
    })?;
    Ok((key, pem.to_string()))
}

fn data_text(secret: &Secret, key: &str) -> Option<String> {
    let bytes = secret.data.as_ref()?.get(key)?;
    String::from_utf8(bytes.0.clone()).ok()
}
