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
    let status = status::write(client, mp, &applied, now).await?;
    Ok(Outcome {
        status,
        identity_changes,
        deleted_identities: applied.deleted_identities,
    })
}
