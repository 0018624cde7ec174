//! The reconcile pipeline, one module per step:
//! [`dereference`] (read what the resource points to) -> [`validate`] (pure) -> [`build`] (pure:
//! the desired objects) -> [`apply`] (the only step that writes) -> [`status`].
//!
//! [`run`] chains the steps for one resource; the controller wraps it with events, metrics and
//! the error policy.

pub mod apply;
pub mod build;
pub mod dereference;
pub mod identity;
pub mod observe;
pub mod status;
pub mod validate;

#[cfg(test)]
mod tests;

use kube::Client;

use crate::crd::{MediachainPeer, MediachainPeerStatus};
use crate::Result;

/// Settings of the operator process that shape the built objects.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The cluster's DNS domain (`cluster.local`).
    pub cluster_domain: String,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            cluster_domain: "cluster.local".into(),
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
}

/// The `/metrics` URLs of the resource's peers (stable pod DNS names).
fn metrics_urls(mp: &MediachainPeer, settings: &Settings) -> Vec<String> {
    let ns = mp.metadata.namespace.clone().unwrap_or_default();
    (0..mp.spec.replicas.clamp(0, validate::MAX_REPLICAS))
        .map(|i| {
            let host = crate::naming::pod_dns(mp, i, &ns, &settings.cluster_domain);
            format!("http://{host}:{}/metrics", crate::naming::HTTP_PORT)
        })
        .collect()
}

/// Runs the whole pipeline once for `mp`; `now` is Unix seconds.
pub async fn run(
    client: &Client,
    mp: &MediachainPeer,
    settings: &Settings,
    now: u64,
) -> Result<Outcome> {
    let found = dereference::dereference(client, mp).await?;
    let valid = validate::validate(mp, &found, now)?;
    let desired = build::build(
        &valid,
        &found,
        settings,
        now,
        &mut mediachain::trust::SecretKey::generate,
    )?;
    let identity_changes = desired.identity_changes();
    let applied = apply::apply(client, mp, desired).await?;
    let ready = applied
        .statefulset
        .status
        .as_ref()
        .and_then(|s| s.ready_replicas)
        .unwrap_or(0);
    let height = if ready > 0 {
        observe::journal_height(&metrics_urls(mp, settings)).await
    } else {
        None
    };
    let status = status::write(client, mp, &applied, height, now).await?;
    Ok(Outcome {
        status,
        identity_changes,
        deleted_identities: applied.deleted_identities,
    })
}
