//! Two-phase rotation of the Level-0 principal (pure; operator/README.md, "Principal
//! rotation"). `spec.trust.retiringPrincipalSecretName` names the old principal while
//! `principalSecretName` names the new one, under the same root.
//!
//! Phase 1 (`Rotating`): both are trusted. Peers verify Level-1 chains up to the root whichever
//! principal issued them, so nothing changes for them; the operator re-issues every peer's
//! certificate under the new principal (same key: [`super::identity::judge`] sees another
//! issuer) and the pod template names the new principal, so the peers restart one at a time
//! through the peer-aware rollout. Phase 2 (`Retired`): once every peer runs a certificate of
//! the new principal and is ready, the old one is retired: no longer read, final for the pair.

use k8s_openapi::api::core::v1::Secret;
use mediachain::trust::{Chain, Level, PublicKey, RevocationList, RevocationSet};

use super::dereference::Found;
use super::identity::Identity;
use super::validate::{Principal, PRINCIPAL_CHAIN, REVOCATIONS, ROOT_PUB};
use crate::crd::{KeyCustody, MediachainPeer, PrincipalRotationStatus, RotationPhase};
use crate::naming;
use crate::{Error, Result};

/// The principal being retired, checked against the new one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retiring {
    /// Its PeerId.
    pub from: String,
    /// Its Secret (`spec.trust.retiringPrincipalSecretName`).
    pub secret: String,
    /// The rotation to the current principal is complete (status says so): the Secret is not
    /// read, and the phase stays `Retired`.
    pub retired: bool,
}

/// Whether the resource's status records the rotation from the Secret `secret` as complete; the
/// Secret is then not read at all.
pub fn retired_from(mp: &MediachainPeer, secret: &str) -> bool {
    mp.status
        .as_ref()
        .and_then(|s| s.principal_rotation.as_ref())
        .is_some_and(|r| r.phase == RotationPhase::Retired && r.retiring_secret_name == secret)
}

/// Checks the retiring principal of `mp` (its Secret as found) against the new `principal`;
/// `None` without a rotation. Refuses a missing or unusable Secret, another root, the same key
/// twice, a new principal whose revocation lists lack one of the old one's or revoke the old one.
pub fn check(
    mp: &MediachainPeer,
    found: &Found,
    principal: &Principal,
    namespace: &str,
) -> Result<Option<Retiring>> {
    let Some(name) = mp.spec.trust.retiring_principal_secret_name.clone() else {
        return Ok(None);
    };
    let new = principal.key.public().to_string();
    let previous = mp
        .status
        .as_ref()
        .and_then(|s| s.principal_rotation.as_ref());
    if let Some(done) = previous.filter(|_| retired_from(mp, &name)) {
        if done.to != new {
            return Err(Error::InvalidSpec(format!(
                "spec.trust.retiringPrincipalSecretName `{name}` names principal {}, whose rotation to {} is complete, but principalSecretName is now principal {new}: name the Secret of the principal being replaced, or remove the field",
                done.from, done.to
            )));
        }
        return Ok(Some(Retiring {
            from: done.from.clone(),
            secret: name,
            retired: true,
        }));
    }
    let secret =
        found
            .retiring_principal
            .as_ref()
            .ok_or_else(|| Error::MissingPrincipalSecret {
                namespace: namespace.to_string(),
                name: name.clone(),
            })?;
    let old = retiring_key(&name, secret, principal.root)?;
    if old == principal.key.public() {
        return Err(Error::InvalidSpec(format!(
            "spec.trust.retiringPrincipalSecretName `{name}` and principalSecretName `{}` hold the same principal {old}: name the new principal's Secret in principalSecretName",
            mp.spec.trust.principal_secret_name
        )));
    }
    check_revocations(mp, &name, secret, principal, old)?;
    Ok(Some(Retiring {
        from: old.to_string(),
        secret: name,
        retired: false,
    }))
}

/// The retiring principal's key: its Secret's `principal.chain` must be a Level-0 chain of
/// `root` (checked at a time inside its validity: an expired old principal may still be
/// retired), and `root.pub`, if present, must be `root`.
fn retiring_key(name: &str, secret: &Secret, root: PublicKey) -> Result<PublicKey> {
    let invalid = |detail: String| Error::InvalidPrincipal {
        name: name.to_string(),
        detail,
    };
    if let Some(text) = data_text(secret, ROOT_PUB) {
        let theirs: PublicKey = text
            .trim()
            .parse()
            .map_err(|e| invalid(format!("`{ROOT_PUB}` is not a public key: {e}")))?;
        if theirs != root {
            return Err(invalid(format!(
                "the retiring principal is under root {theirs}, the new one under {root}: a principal rotates under the same root (a new root is a new network)"
            )));
        }
    }
    let text = data_text(secret, PRINCIPAL_CHAIN)
        .ok_or_else(|| invalid(format!("has no UTF-8 `{PRINCIPAL_CHAIN}` key")))?;
    let chain = Chain::from_pem(&text).map_err(|e| {
        invalid(format!(
            "`{PRINCIPAL_CHAIN}` is not a certificate chain: {e}"
        ))
    })?;
    let leaf = chain
        .leaf()
        .ok_or_else(|| invalid(format!("`{PRINCIPAL_CHAIN}` is empty")))?;
    let at = leaf
        .body
        .not_before
        .max(leaf.body.not_after.saturating_sub(1));
    chain
        .verify(&root, &RevocationSet::new(root), at, Level::Principal)
        .map_err(|e| {
            invalid(format!(
                "`{PRINCIPAL_CHAIN}` is not a Level-0 chain of the new principal's root {root}: {e}"
            ))
        })
}

/// The new principal must keep every revocation the old one's lists make (a key the old
/// principal revoked must stay out), and must not revoke the old principal itself while peers
/// still run its certificates (each restarted peer would load the list and refuse them).
fn check_revocations(
    mp: &MediachainPeer,
    name: &str,
    secret: &Secret,
    principal: &Principal,
    old: PublicKey,
) -> Result<()> {
    let new_secret = &mp.spec.trust.principal_secret_name;
    if principal.revoked.revokes(&principal.root, &old) {
        return Err(Error::InvalidPrincipal {
            name: new_secret.clone(),
            detail: format!(
                "`{REVOCATIONS}` revokes the retiring principal {old} while peers still run its certificates: revoke it only once status.principalRotation.phase is Retired (and never on a network with parameters, where its peers' seats go with it)"
            ),
        });
    }
    let Some(text) = data_text(secret, REVOCATIONS) else {
        return Ok(());
    };
    let lists = RevocationList::many_from_pem(&text).map_err(|e| Error::InvalidPrincipal {
        name: name.to_string(),
        detail: format!("`{REVOCATIONS}` is not a list of signed revocation lists: {e}"),
    })?;
    match lists.iter().find(|list| principal.revoked.adds_to(list)) {
        Some(list) => Err(Error::InvalidPrincipal {
            name: new_secret.clone(),
            detail: format!(
                "`{REVOCATIONS}` lacks revocations of the list of {} in the retiring principal's Secret `{name}`: copy that Secret's `{REVOCATIONS}` into this one, or the keys it revokes would be let back in",
                list.body.issuer
            ),
        }),
        None => Ok(()),
    }
}

/// Whether the peer of `id` runs that certificate (certified by `to`) and is ready: its pod
/// (under `keyCustody: Pod` its peer container) started after the certificate was issued, or
/// runs the StatefulSet's update revision of a template naming `to` (written after the
/// certificates). Times are whole seconds: a start in the second of issuance proves nothing.
fn runs(mp: &MediachainPeer, found: &Found, id: &Identity, to: &PublicKey) -> bool {
    let Some(pod) = found.pods.get(&naming::pod(mp, id.ordinal)) else {
        return false;
    };
    let started = match mp.spec.trust.key_custody {
        KeyCustody::Operator => Some(pod.created),
        KeyCustody::Pod => pod.peer_started,
    };
    let new_template = found.statefulset.as_ref().is_some_and(|sts| {
        let names_to = sts
            .spec
            .as_ref()
            .and_then(|s| s.template.metadata.as_ref()?.annotations.as_ref())
            .and_then(|a| a.get(naming::PRINCIPAL_ANNOTATION))
            .is_some_and(|p| *p == to.to_string());
        let update = sts.status.as_ref().and_then(|s| s.update_revision.as_ref());
        names_to && update.is_some() && pod.revision.as_ref() == update
    });
    let after = started.is_some_and(|t| t > id.issued_at);
    id.change.is_none() && pod.ready && (after || new_template)
}

/// The rotation's status after this pass: `identities` are the peers' as planned now (issued by
/// the new principal unless re-issued in this very pass). `Retired` once every one of the
/// `replicas` peers runs its certificate and is ready; then it stays so.
pub fn phase(
    mp: &MediachainPeer,
    found: &Found,
    retiring: &Retiring,
    to: &PublicKey,
    identities: &[&Identity],
    replicas: i32,
) -> PrincipalRotationStatus {
    let previous = mp
        .status
        .as_ref()
        .and_then(|s| s.principal_rotation.as_ref());
    if let Some(done) = previous.filter(|_| retiring.retired) {
        return done.clone();
    }
    let rotated = identities
        .iter()
        .filter(|id| id.ordinal < replicas && runs(mp, found, id, to))
        .count();
    let rotated = i32::try_from(rotated).unwrap_or(i32::MAX);
    let all = rotated >= replicas && replicas == mp.spec.replicas;
    PrincipalRotationStatus {
        phase: if all {
            RotationPhase::Retired
        } else {
            RotationPhase::Rotating
        },
        from: retiring.from.clone(),
        to: to.to_string(),
        retiring_secret_name: retiring.secret.clone(),
        rotated_peers: rotated,
        peers: mp.spec.replicas,
    }
}

/// The rotation status to keep without a retiring principal in the spec: a completed rotation
/// to the current principal stays on record, anything else goes.
pub fn kept(mp: &MediachainPeer, to: &PublicKey) -> Option<PrincipalRotationStatus> {
    mp.status
        .as_ref()?
        .principal_rotation
        .clone()
        .filter(|r| r.phase == RotationPhase::Retired && r.to == to.to_string())
}

fn data_text(secret: &Secret, key: &str) -> Option<String> {
    let bytes = secret.data.as_ref()?.get(key)?;
    String::from_utf8(bytes.0.clone()).ok()
}

/// The Secret names a resource reads for its trust: the principal and, unless its rotation is
/// complete, the retiring principal (the controller maps Secret changes to resources by them).
pub fn secret_names(mp: &MediachainPeer) -> Vec<String> {
    let trust = &mp.spec.trust;
    let mut names = vec![trust.principal_secret_name.clone()];
    names.extend(
        trust
            .retiring_principal_secret_name
            .clone()
            .filter(|name| !retired_from(mp, name)),
    );
    names
}

/// Condition type: the principal rotation's phase (`False`/`Rotating`, `True`/`Retired`).
pub const PRINCIPAL_ROTATED: &str = "PrincipalRotated";

/// The `PrincipalRotated` condition of `rotation`: `(status, reason, message)`.
pub fn condition(rotation: &PrincipalRotationStatus) -> (bool, &'static str, String) {
    let PrincipalRotationStatus {
        phase,
        from,
        to,
        rotated_peers,
        peers,
        ..
    } = rotation;
    match phase {
        RotationPhase::Rotating => (
            false,
            "Rotating",
            format!("{rotated_peers} of {peers} peers run a certificate of principal {to}; principal {from} is still trusted"),
        ),
        RotationPhase::Retired => (
            true,
            "Retired",
            format!("every peer runs a certificate of principal {to}; principal {from} is retired (its Secret is no longer read)"),
        ),
    }
}

/// The Event a change of the rotation's status makes, if any: `PrincipalRotationStarted` when
/// a rotation to a principal begins, `PrincipalRetired` when it completes.
pub fn event(
    previous: Option<&PrincipalRotationStatus>,
    current: Option<&PrincipalRotationStatus>,
) -> Option<(&'static str, String)> {
    let current = current?;
    let same_pair = previous.is_some_and(|p| p.from == current.from && p.to == current.to);
    let was = previous.filter(|_| same_pair).map(|p| p.phase);
    match (was, current.phase) {
        (None, RotationPhase::Rotating) => Some((
            "PrincipalRotationStarted",
            format!(
                "rotating from principal {} to {} (Secret {} retiring): every peer's certificate is re-issued under {} and the peers restart one at a time",
                current.from, current.to, current.retiring_secret_name, current.to
            ),
        )),
        (Some(RotationPhase::Rotating) | None, RotationPhase::Retired) => Some((
            "PrincipalRetired",
            format!(
                "every one of the {} peers runs a certificate of principal {} and is ready: principal {} is retired and Secret {} is no longer read",
                current.peers, current.to, current.from, current.retiring_secret_name
            ),
        )),
        _ => None,
    }
}
