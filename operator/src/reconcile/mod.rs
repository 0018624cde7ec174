//! The reconcile pipeline, one module per step:
//! [`dereference`] (read what the resource points to) -> [`validate`] (pure) -> [`build`] (pure:
//! the desired objects) -> [`apply`] (the only step that writes) -> [`status`].
//!
//! [`run`] chains the steps for one resource; the controller wraps it with events, metrics and
//! the error policy.

pub mod apply;
pub mod backup;
pub mod bootstrap;
pub mod build;
pub mod dereference;
pub mod evidence;
pub mod exposure;
pub mod identity;
pub mod network_params;
pub mod network_policy;
pub mod observe;
pub mod placement;
pub mod pod_identity;
pub mod proxies;
pub mod public_trust;
pub mod rollout;
pub mod rotation;
pub mod services;
pub mod status;
pub mod validate;
pub mod workload;

#[cfg(test)]
mod tests;

use std::time::Duration;

use kube::{Api, Client, ResourceExt};

use crate::crd::{MediachainPeer, MediachainPeerStatus};
use crate::Result;

/// Settings of the operator process that shape the built objects and the observation.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The cluster's DNS domain (`cluster.local`).
    pub cluster_domain: String,
    /// Shortest interval between two journal-height scrapes of one resource: the status
    /// refresh cadence (blocks never drive status writes faster than this).
    pub height_refresh: Duration,
    /// One `/metrics` URL scraped for every resource instead of the pods' stable DNS names: an
    /// operator run outside the cluster behind a proxy, and tests without cluster DNS.
    pub metrics_url: Option<String>,
    /// Networks of the ingress controller's pods, trusted by the peers of every resource with
    /// an Ingress (env `INGRESS_TRUSTED_PROXIES`, the chart's `ingressTrustedProxies`).
    pub ingress_trusted_proxies: Vec<String>,
    /// The operator's own image (env `OPERATOR_IMAGE`): the peers' key init containers under
    /// `keyCustody: Pod` run it (`mediachain-operator peer-key`, `await-chain`).
    pub operator_image: Option<String>,
    /// How long a peer restarted by a rollout may take to be ready again before the rollout is
    /// reported stuck (`Degraded/RolloutStuck`, naming the peer).
    pub rollout_stuck_after: Duration,
    /// The operator's namespace (`POD_NAMESPACE`): a NetworkPolicy lets its pods scrape the
    /// peers' `/metrics`.
    pub operator_namespace: Option<String>,
}

/// Default of [`Settings::height_refresh`].
/// 20 s: the live status (heights, readiness, soonest certificate expiry) is at most this old
/// plus one pass, within the 30 s the operators of a network expect, at one scrape of each
/// ready peer per resource per interval.
pub const HEIGHT_REFRESH: Duration = Duration::from_secs(20);

impl Default for Settings {
    fn default() -> Self {
        Self {
            cluster_domain: "cluster.local".into(),
            height_refresh: HEIGHT_REFRESH,
            metrics_url: None,
            ingress_trusted_proxies: Vec::new(),
            operator_image: None,
            rollout_stuck_after: Duration::from_secs(rollout::STUCK_AFTER_SECS),
            operator_namespace: None,
        }
    }
}

/// What a successful pass produced, for events, metrics and status.
#[derive(Debug)]
pub struct Outcome {
    /// The status that was written (or found already up to date).
    pub status: MediachainPeerStatus,
    /// Identities issued or renewed during this pass (for events).
    pub identity_changes: Vec<identity::Change>,
    /// Identity Secrets deleted after scale-down.
    pub deleted_identities: Vec<String>,
    /// End of validity of the principal's certificate, Unix seconds.
    pub principal_not_after: u64,
    /// Pods deleted so that they restart with a renewed certificate.
    pub restarted: Vec<String>,
    /// The revocation lists changed in this pass: the StatefulSet restarts the peers one at a
    /// time to load them.
    pub revocations_changed: bool,
    /// Number of revocations known (issuer, subject pairs).
    pub revocations: usize,
    /// Pods whose key request was refused, with the reason (`keyCustody: Pod`).
    pub refused_requests: Vec<(String, String)>,
    /// The peer holding a rollout back for too long, and why.
    pub rollout_stuck: Option<String>,
    /// Evidence against members that this pass put in the status for the first time.
    pub new_evidence: Vec<crate::crd::EvidenceStatus>,
    /// The Event of a principal rotation that began or completed in this pass (reason, note).
    pub rotation_event: Option<(&'static str, String)>,
}

/// The `/metrics` URLs of the resource's peers (stable pod DNS names).
fn metrics_urls(mp: &MediachainPeer, settings: &Settings) -> Vec<String> {
    if let Some(url) = &settings.metrics_url {
        return vec![url.clone()];
    }
    let ns = mp.metadata.namespace.clone().unwrap_or_default();
    (0..mp.spec.replicas.clamp(0, validate::MAX_REPLICAS))
        .map(|i| {
            let host = crate::naming::pod_dns(mp, i, &ns, &settings.cluster_domain);
            format!("http://{host}:{}/metrics", crate::naming::HTTP_PORT)
        })
        .collect()
}

/// Runs the whole pipeline once for `mp`; `now` is Unix seconds. The journal height is scraped
/// from ready peers only when `scrape` (the caller bounds how often). `None` when the resource
/// is being deleted or gone (nothing is written then).
pub async fn run(
    client: &Client,
    mp: &MediachainPeer,
    settings: &Settings,
    now: u64,
    scrape: bool,
) -> Result<Option<Outcome>> {
    // The watch may lag: a resource being deleted must not get its objects re-created while
    // the garbage collector removes them.
    let ns = mp.namespace().unwrap_or_default();
    let current = Api::<MediachainPeer>::namespaced(client.clone(), &ns)
        .get_metadata_opt(&mp.name_any())
        .await
        .map_err(crate::Error::kube(format!(
            "reading MediachainPeer {ns}/{}",
            mp.name_any()
        )))?;
    if current.is_none_or(|c| {
        c.metadata.deletion_timestamp.is_some() || c.metadata.uid != mp.metadata.uid
    }) {
        return Ok(None);
    }
    // Boxed: the steps' futures are large, and a debug build would need a deep stack.
    let found = Box::pin(dereference::dereference(client, mp)).await?;
    let valid = validate::validate(mp, &found, now)?;
    if mp.spec.paused {
        // Maintenance: nothing is applied, renewed, restarted or rolled; status only.
        let status = status::write_paused(client, mp, found.statefulset.as_ref(), now).await?;
        return Ok(Some(Outcome {
            status,
            identity_changes: Vec::new(),
            deleted_identities: Vec::new(),
            principal_not_after: valid
                .principal
                .chain
                .leaf()
                .map_or(0, |leaf| leaf.body.not_after),
            restarted: Vec::new(),
            revocations_changed: false,
            revocations: 0,
            refused_requests: Vec::new(),
            rollout_stuck: None,
            new_evidence: Vec::new(),
            rotation_event: None,
        }));
    }
    let desired = build::build(
        &valid,
        &found,
        settings,
        now,
        &mut mediachain::trust::SecretKey::generate,
    )?;
    let identity_changes = desired.identity_changes();
    let rotation = desired.rotation.clone();
    let rollout_stuck = desired.rollout_stuck.clone();
    let refused_requests = desired.refused_requests.clone();
    let revocations_changed = found.statefulset.as_ref().is_some_and(|sts| {
        build::revocations_digest(sts) != build::revocations_digest(&desired.statefulset)
    });
    let principal_not_after = valid
        .principal
        .chain
        .leaf()
        .map_or(0, |leaf| leaf.body.not_after);
    let applied = Box::pin(apply::apply(client, mp, desired)).await?;
    let ready = applied
        .statefulset
        .status
        .as_ref()
        .and_then(|s| s.ready_replicas)
        .unwrap_or(0);
    let seen = if ready > 0 && scrape {
        observe::observe(&metrics_urls(mp, settings)).await
    } else {
        observe::Observation::default()
    };
    let observed = status::Observed {
        height: seen.journal_height,
        finalized_height: seen.finalized_height,
        principal_not_after,
        backup_runs: found.backup_runs,
        network_digest: valid.network_params.as_ref().map(|p| p.digest.clone()),
        rollout_stuck: rollout_stuck.clone(),
        evidence: seen.evidence,
        rotation,
    };
    let status = status::write(client, mp, &applied, observed, now).await?;
    let known = mp.status.as_ref().map_or(&[][..], |s| &s.evidence[..]);
    let new_evidence = evidence::new_items(known, &status.evidence);
    let rotation_event = rotation::event(
        mp.status
            .as_ref()
            .and_then(|s| s.principal_rotation.as_ref()),
        status.principal_rotation.as_ref(),
    );
    Ok(Some(Outcome {
        status,
        identity_changes,
        deleted_identities: applied.deleted_identities,
        principal_not_after,
        restarted: applied.restarted,
        revocations_changed,
        revocations: valid.principal.revoked.len(),
        refused_requests,
        rollout_stuck,
        new_evidence,
        rotation_event,
    }))
}
