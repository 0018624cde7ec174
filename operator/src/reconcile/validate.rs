//! Step 2 (pure): check the spec and the principal Secret, and turn them into typed values.
//!
//! Never talks to the cluster and never panics on any content: every problem becomes an
//! [`Error`] whose message tells the user what to change.

use std::path::Path;

use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use mediachain::trust::{
    keyfile, Chain, Level, PublicKey, RevocationList, RevocationSet, SecretKey,
};

use super::dereference::Found;
use crate::crd::{MediachainPeer, MediachainPeerSpec};
use crate::{Error, Result};

/// Most peers one resource may run.
pub const MAX_REPLICAS: i32 = 256;
/// Longest resource name: pod names, `<name>-<ordinal>-identity` and the StatefulSet's
/// `controller-revision-hash` label must stay within Kubernetes' 63-character limits.
pub const MAX_NAME_LEN: usize = 40;
/// Longest network name (`<network>-seeds` and the network label must stay valid).
pub const MAX_NETWORK_LEN: usize = 57;

/// Principal Secret key holding the Level-0 key.
pub const PRINCIPAL_KEY: &str = "principal.key";
/// Principal Secret key holding the Level-0 certificate chain.
pub const PRINCIPAL_CHAIN: &str = "principal.chain";
/// Principal Secret key holding the root PeerId.
pub const ROOT_PUB: &str = "root.pub";
/// Optional principal Secret key holding signed revocation lists.
pub const REVOCATIONS: &str = "revocations.pem";

/// The network's principal: the key that signs peer certificates and its own chain.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The Level-0 secret key.
    pub key: SecretKey,
    /// Its chain (one Level-0 certificate signed by the root).
    pub chain: Chain,
    /// The pinned root public key.
    pub root: PublicKey,
    /// The Secret's `revocations.pem` (signed revocation lists, public), if any: copied to the
    /// trust ConfigMap the peers mount.
    pub revocations: Option<String>,
    /// The revocations of those lists, checked against the peers' keys (a revoked peer gets a
    /// new key).
    pub revoked: RevocationSet,
}

/// A resource that passed validation.
#[derive(Debug, Clone)]
pub struct Valid {
    /// The resource.
    pub resource: MediachainPeer,
    /// Its namespace.
    pub namespace: String,
    /// The principal.
    pub principal: Principal,
    /// The network's parameters, checked (`None`: the spec names none).
    pub network_params: Option<super::network_params::Checked>,
    /// The principal being retired (`spec.trust.retiringPrincipalSecretName`), checked.
    pub retiring: Option<super::rotation::Retiring>,
}

/// Validates the resource and its principal Secret at time `now` (Unix seconds).
pub fn validate(mp: &MediachainPeer, found: &Found, now: u64) -> Result<Valid> {
    let namespace = mp
        .namespace()
        .ok_or_else(|| Error::InvalidSpec("the resource has no namespace".into()))?;
    check_spec(&mp.name_any(), &mp.spec)?;
    check_collisions(mp, &found.namespace_members)?;
    let name = &mp.spec.trust.principal_secret_name;
    let secret = found
        .principal
        .as_ref()
        .ok_or_else(|| Error::MissingPrincipalSecret {
            namespace: namespace.clone(),
            name: name.clone(),
        })?;
    let principal = principal(name, secret, now)?;
    let network_params = super::network_params::check(mp, found, principal.root)?;
    let retiring = super::rotation::check(mp, found, &principal, &namespace)?;
    Ok(Valid {
        resource: mp.clone(),
        namespace,
        principal,
        network_params,
        retiring,
    })
}

/// Checks the spec alone.
pub fn check_spec(name: &str, spec: &MediachainPeerSpec) -> Result<()> {
    let bad = |msg: String| Err(Error::InvalidSpec(msg));
    if name.len() > MAX_NAME_LEN
        || !is_dns_label(name)
        || !name.starts_with(|c: char| c.is_ascii_lowercase())
    {
        return bad(format!(
            "metadata.name `{name}` must be at most {MAX_NAME_LEN} lowercase letters, digits or '-', starting with a letter (it names Services and pods)"
        ));
    }
    if !is_dns_label(&spec.network) || spec.network.len() > MAX_NETWORK_LEN {
        return bad(format!(
            "spec.network `{}` must be 1-{MAX_NETWORK_LEN} lowercase letters, digits or '-', starting and ending with a letter or digit",
            spec.network
        ));
    }
    if !(1..=MAX_REPLICAS).contains(&spec.replicas) {
        return bad(format!(
            "spec.replicas is {}, it must be between 1 and {MAX_REPLICAS}",
            spec.replicas
        ));
    }
    if spec.image.trim().is_empty() {
        return bad("spec.image is empty".into());
    }
    if let Some(policy) = &spec.image_pull_policy {
        if !["Always", "IfNotPresent", "Never"].contains(&policy.as_str()) {
            return bad(format!(
                "spec.imagePullPolicy `{policy}` must be Always, IfNotPresent or Never"
            ));
        }
    }
    if !is_quantity(&spec.storage.size) {
        return bad(format!(
            "spec.storage.size `{}` is not a quantity such as 10Gi",
            spec.storage.size
        ));
    }
    if spec.trust.principal_secret_name.is_empty() {
        return bad("spec.trust.principalSecretName is empty".into());
    }
    if spec.trust.certificate_validity_hours == 0 {
        return bad("spec.trust.certificateValidityHours must be positive".into());
    }
    if spec.trust.renew_before_hours >= spec.trust.certificate_validity_hours {
        return bad(format!(
            "spec.trust.renewBeforeHours ({}) must be less than certificateValidityHours ({}), or certificates would be renewed on every reconcile",
            spec.trust.renew_before_hours, spec.trust.certificate_validity_hours
        ));
    }
    if !["ClusterIP", "NodePort", "LoadBalancer"].contains(&spec.client_service.type_.as_str()) {
        return bad(format!(
            "spec.clientService.type `{}` must be ClusterIP, NodePort or LoadBalancer",
            spec.client_service.type_
        ));
    }
    if let Some(ingress) = &spec.ingress {
        if ingress.host.is_empty() || !ingress.host.split('.').all(is_dns_label) {
            return bad(format!(
                "spec.ingress.host `{}` is not a DNS name",
                ingress.host
            ));
        }
        super::proxies::check("spec.ingress.trustedProxies", &ingress.trusted_proxies)
            .map_err(Error::InvalidSpec)?;
    }
    if let Some(exposure) = &spec.exposure {
        super::exposure::check(exposure, spec.replicas).map_err(Error::InvalidSpec)?;
    }
    let budget = &spec.disruption_budget;
    let n = i64::from(spec.connectivity.target_connectivity);
    if budget.enabled
        && (budget.max_unavailable < 0 || i64::from(budget.max_unavailable) > n.max(1))
    {
        return bad(format!(
            "spec.disruptionBudget.maxUnavailable is {}; it must be between 0 and connectivity.targetConnectivity ({n}) to keep the N-cut guarantee",
            budget.max_unavailable
        ));
    }
    let durations = [
        (
            "spec.consensus.blockInterval",
            &spec.consensus.block_interval,
        ),
        (
            "spec.consensus.commitTimeout",
            &spec.consensus.commit_timeout,
        ),
    ];
    for (field, value) in durations {
        if let Some(value) = value {
            if !is_duration(value) {
                return bad(format!(
                    "{field} `{value}` is not a duration such as 500ms, 1s, 2m"
                ));
            }
        }
    }
    for seed in &spec.seeds {
        if !seed.starts_with('/') || seed.contains(char::is_whitespace) {
            return bad(format!("spec.seeds: `{seed}` is not a multiaddr"));
        }
    }
    if let Some(backup) = &spec.backup {
        super::backup::check(backup).map_err(Error::InvalidSpec)?;
    }
    if let Some(bootstrap) = &spec.bootstrap {
        super::bootstrap::check(bootstrap).map_err(Error::InvalidSpec)?;
    }
    if let Some(overrides) = &spec.pod_overrides {
        if !overrides.is_object() {
            return bad("spec.podOverrides must be an object (a partial PodTemplateSpec)".into());
        }
    }
    Ok(())
}

/// Refuses a resource whose objects' names collide with another resource's in the namespace:
/// `R`'s headless Service is `R-peers`, the client Service of a resource named `R-peers`. Of the
/// two, the younger one (creation time, then name) is refused; the older keeps running.
pub fn check_collisions(mp: &MediachainPeer, members: &[MediachainPeer]) -> Result<()> {
    let name = mp.name_any();
    let age = |m: &MediachainPeer| (m.creation_timestamp().map(|t| t.0), m.name_any());
    for other in members.iter().filter(|o| o.uid() != mp.uid()) {
        let theirs = other.name_any();
        let service = if theirs == format!("{name}-peers") {
            theirs.clone()
        } else if name == format!("{theirs}-peers") {
            name.clone()
        } else {
            continue;
        };
        if age(mp) > age(other) {
            return Err(Error::InvalidSpec(format!(
                "metadata.name `{name}` collides with MediachainPeer `{theirs}`: both would own the Service `{service}`; delete this resource and choose another name"
            )));
        }
    }
    Ok(())
}

/// Reads and checks the principal Secret: the key parses, the chain is a valid Level-0 chain
/// up to `root.pub` at `now`, and it certifies that key.
pub fn principal(name: &str, secret: &Secret, now: u64) -> Result<Principal> {
    let invalid = |detail: String| Error::InvalidPrincipal {
        name: name.to_string(),
        detail,
    };
    let text = |key: &str| -> Result<String> {
        let data = secret
            .data
            .as_ref()
            .and_then(|d| d.get(key))
            .ok_or_else(|| invalid(format!("has no `{key}` key")))?;
        String::from_utf8(data.0.clone()).map_err(|_| invalid(format!("`{key}` is not UTF-8")))
    };
    let key_text = text(PRINCIPAL_KEY)?;
    let key = keyfile::parse(Path::new(PRINCIPAL_KEY), &key_text, None)
        .map_err(|e| invalid(format!("`{PRINCIPAL_KEY}` is not a usable key: {e}")))?;
    let root: PublicKey = text(ROOT_PUB)?
        .trim()
        .parse()
        .map_err(|e| invalid(format!("`{ROOT_PUB}` is not a public key: {e}")))?;
    let chain = Chain::from_pem(&text(PRINCIPAL_CHAIN)?).map_err(|e| {
        invalid(format!(
            "`{PRINCIPAL_CHAIN}` is not a certificate chain: {e}"
        ))
    })?;
    let subject = chain
        .verify(&root, &RevocationSet::new(root), now, Level::Principal)
        .map_err(|e| invalid(format!("`{PRINCIPAL_CHAIN}` does not verify: {e}")))?;
    if subject != key.public() {
        return Err(invalid(format!(
            "`{PRINCIPAL_CHAIN}` certifies {subject}, but `{PRINCIPAL_KEY}` is the key of {}",
            key.public()
        )));
    }
    let revocations = match secret.data.as_ref().and_then(|d| d.get(REVOCATIONS)) {
        Some(bytes) => Some(
            String::from_utf8(bytes.0.clone())
                .map_err(|_| invalid(format!("`{REVOCATIONS}` is not UTF-8")))?,
        ),
        None => None,
    };
    let mut revoked = RevocationSet::new(root);
    if let Some(text) = &revocations {
        let lists = RevocationList::many_from_pem(text).map_err(|e| {
            invalid(format!(
                "`{REVOCATIONS}` is not a list of signed revocation lists: {e}"
            ))
        })?;
        for list in &lists {
            revoked
                .add(list)
                .map_err(|e| invalid(format!("`{REVOCATIONS}`: {e}")))?;
        }
    }
    Ok(Principal {
        key,
        chain,
        root,
        revocations,
        revoked,
    })
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// A positive duration as the peer reads it: digits then `ms`, `s`, `m` or `h` (e.g. `1s`).
fn is_duration(s: &str) -> bool {
    let digits = s.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = &s[digits.len()..];
    !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && digits.bytes().any(|b| b != b'0')
        && ["ms", "s", "m", "h"].contains(&unit)
}

fn is_quantity(s: &str) -> bool {
    let digits = s.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let suffix = &s[digits.len()..];
    !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && [
            "", "k", "M", "G", "T", "P", "E", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei",
        ]
        .contains(&suffix)
}
