//! Step 4: the only step that writes. Server-side applies every desired object with the
//! operator's field manager (idempotent: an unchanged object is not rewritten, its
//! resourceVersion stays), and deletes what the spec no longer asks for.
//!
//! Order: identity Secrets, seed list and Services before the StatefulSet (its pods mount
//! them), then the budget, Ingress and backup CronJob, then deletions and restarts. Never takes over an object
//! it does not own: an existing object of the same name that this resource does not control
//! stops the pass with [`Error::NotOwned`].

use std::fmt::Debug;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, Service};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::NamespaceResourceScope;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::build::Desired;
use crate::crd::{MediachainPeer, PeerIdentityStatus, RevokedPeerStatus};
use crate::naming::{self, FIELD_MANAGER};
use crate::{Error, Result};

/// What applying produced, for the status step.
#[derive(Debug, Clone)]
pub struct Applied {
    /// The StatefulSet as the API server returned it (with its status).
    pub statefulset: StatefulSet,
    /// Every current peer's identity, ordinal order.
    pub peers: Vec<PeerIdentityStatus>,
    /// The current peers' revoked and replaced keys, ordinal order.
    pub revoked: Vec<RevokedPeerStatus>,
    /// Identity Secrets deleted in this pass.
    pub deleted_identities: Vec<String>,
    /// Pods deleted in this pass so that they restart with a renewed certificate.
    pub restarted: Vec<String>,
    /// The overlay addresses this cluster's peers advertise to other clusters.
    pub external_seeds: Vec<String>,
}

/// Applies `desired` for `mp`.
pub async fn apply(client: &Client, mp: &MediachainPeer, desired: Desired) -> Result<Applied> {
    // Destructured field by field: a new field of `Desired` must be applied here.
    let Desired {
        identities,
        pod_identities,
        chains,
        refused_requests: _,
        rollout_stuck: _,
        rotation: _,
        network_policy,
        exposure,
        obsolete_services,
        obsolete_identities,
        seeds,
        trust,
        headless_service,
        client_service,
        statefulset,
        pdb,
        ingress,
        restarts,
        backup,
    } = desired;
    let ns = mp
        .namespace()
        .ok_or_else(|| Error::InvalidSpec("the resource has no namespace".into()))?;

    for (_, secret) in &identities {
        ensure_ours(client, &ns, secret, mp).await?;
        write_identity(client, &ns, secret).await?;
    }
    if let Some(chains) = &chains {
        ensure_ours(client, &ns, chains, mp).await?;
        server_side_apply(client, &ns, chains).await?;
    }
    let mut peers = Vec::with_capacity(identities.len() + pod_identities.len());
    let mut revoked = Vec::new();
    for identity in identities.iter().map(|(id, _)| id).chain(&pod_identities) {
        peers.push(PeerIdentityStatus {
            name: naming::pod(mp, identity.ordinal),
            peer_id: identity.peer_id.clone(),
            certificate_not_after: identity.not_after,
        });
        if let Some(key) = &identity.revoked {
            revoked.push(RevokedPeerStatus {
                name: naming::pod(mp, identity.ordinal),
                peer_id: key.peer_id.clone(),
                reason: key.reason.clone(),
                replaced_at: key.replaced_at,
            });
        }
    }
    for config_map in [&seeds, &trust] {
        ensure_ours(client, &ns, config_map, mp).await?;
        server_side_apply(client, &ns, config_map).await?;
    }
    let exposed = exposure.iter().flat_map(|e| &e.services);
    for service in [&headless_service, &client_service]
        .into_iter()
        .chain(exposed)
    {
        ensure_ours(client, &ns, service, mp).await?;
        server_side_apply(client, &ns, service).await?;
    }
    let external_seeds = match &exposure {
        Some(plan) => {
            ensure_ours(client, &ns, &plan.config_map, mp).await?;
            server_side_apply(client, &ns, &plan.config_map).await?;
            plan.external_seeds.clone()
        }
        None => {
            let name = naming::exposure_config_map(mp);
            delete_owned::<ConfigMap>(client, &ns, &name, mp).await?;
            Vec::new()
        }
    };
    for name in obsolete_services {
        delete_owned::<Service>(client, &ns, &name, mp).await?;
    }
    ensure_ours(client, &ns, &statefulset, mp).await?;
    let statefulset = server_side_apply(client, &ns, &statefulset).await?;
    match pdb {
        Some(pdb) => {
            ensure_ours(client, &ns, &pdb, mp).await?;
            server_side_apply(client, &ns, &pdb).await?;
        }
        None => {
            delete_owned::<PodDisruptionBudget>(client, &ns, &naming::workload(mp), mp).await?;
        }
    }
    match ingress {
        Some(ingress) => {
            ensure_ours(client, &ns, &ingress, mp).await?;
            server_side_apply(client, &ns, &ingress).await?;
        }
        None => {
            delete_owned::<Ingress>(client, &ns, &naming::workload(mp), mp).await?;
        }
    }
    match network_policy {
        Some(policy) => {
            ensure_ours(client, &ns, &policy, mp).await?;
            server_side_apply(client, &ns, &policy).await?;
        }
        None => {
            delete_owned::<NetworkPolicy>(client, &ns, &naming::workload(mp), mp).await?;
        }
    }
    match backup {
        Some(cron_job) => {
            ensure_ours(client, &ns, &cron_job, mp).await?;
            server_side_apply(client, &ns, &cron_job).await?;
        }
        None => {
            let name = super::backup::cron_job_name(mp);
            delete_owned::<CronJob>(client, &ns, &name, mp).await?;
        }
    }
    let mut deleted_identities = Vec::new();
    for name in obsolete_identities {
        if delete_owned::<Secret>(client, &ns, &name, mp).await? {
            deleted_identities.push(name);
        }
    }
    let mut restarted = Vec::new();
    for pod in restarts {
        if delete_owned::<Pod>(client, &ns, &pod, mp).await? {
            restarted.push(pod);
        }
    }
    Ok(Applied {
        statefulset,
        peers,
        revoked,
        deleted_identities,
        restarted,
        external_seeds,
    })
}

/// Whether `object` belongs to `mp`: controlled by it (owner reference with `controller` and
/// its uid), a pod of its StatefulSet, the network's seed list (labelled by the operator with
/// `mp`'s network), or an identity Secret retained from a deleted resource of the same name
/// (`whenDeleted: Retain`: no owner, the operator's labels).
pub fn is_ours<K: Resource<DynamicType = ()>>(object: &K, mp: &MediachainPeer) -> bool {
    let controlled_by = |uid: Option<&String>| {
        object
            .owner_references()
            .iter()
            .any(|o| o.controller == Some(true) && Some(&o.uid) == uid)
    };
    if controlled_by(mp.meta().uid.as_ref()) {
        return true;
    }
    let labels = object.labels();
    let label = |key: &str| labels.get(key).map(String::as_str);
    let managed = label("app.kubernetes.io/managed-by") == Some(naming::MANAGER);
    let network = label(naming::NETWORK_LABEL) == Some(mp.spec.network.as_str());
    let instance = label("app.kubernetes.io/instance") == Some(naming::workload(mp).as_str());
    match K::kind(&()).as_ref() {
        "ConfigMap" => {
            managed
                && network
                && object.meta().name.as_deref()
                    == Some(naming::seeds_config_map(&mp.spec.network).as_str())
        }
        "Secret" => {
            managed
                && instance
                && labels.contains_key(naming::ORDINAL_LABEL)
                && !object
                    .owner_references()
                    .iter()
                    .any(|o| o.controller == Some(true))
        }
        // Pods are controlled by the StatefulSet, which the resource controls.
        "Pod" => {
            instance
                && object
                    .owner_references()
                    .iter()
                    .any(|o| o.kind == "StatefulSet" && o.name == naming::workload(mp))
        }
        _ => false,
    }
}

/// Refuses to go on when an object named like `object` exists and is not [`is_ours`].
async fn ensure_ours<K>(client: &Client, ns: &str, object: &K, mp: &MediachainPeer) -> Result<()>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + DeserializeOwned
        + Clone
        + Debug,
{
    let name = object.name_any();
    let kind = K::kind(&());
    let api: Api<K> = Api::namespaced(client.clone(), ns);
    let Some(existing) = api
        .get_metadata_opt(&name)
        .await
        .map_err(Error::kube(format!("reading {kind} {ns}/{name}")))?
    else {
        return Ok(());
    };
    if is_ours(&existing, mp) {
        return Ok(());
    }
    let owners = existing
        .owner_references()
        .iter()
        .map(|o| format!("{} {}", o.kind, o.name))
        .collect::<Vec<_>>();
    Err(Error::NotOwned {
        kind: kind.into_owned(),
        name: format!("{ns}/{name}"),
        owners: if owners.is_empty() {
            "no owner".into()
        } else {
            owners.join(", ")
        },
    })
}

/// Writes an identity Secret without ever bringing back a stale one: a Secret the pass read
/// (`resourceVersion` set) is replaced only at that version, a new one is only created. Either
/// precondition failing (deleted, replaced or created meanwhile) is [`Error::Changed`]. An
/// unchanged Secret is not rewritten (the API server keeps its resourceVersion).
async fn write_identity(client: &Client, ns: &str, secret: &Secret) -> Result<()> {
    let name = secret.name_any();
    let api: Api<Secret> = Api::namespaced(client.clone(), ns);
    let params = PostParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..PostParams::default()
    };
    let written = match secret.metadata.resource_version {
        Some(_) => api.replace(&name, &params, secret).await,
        None => api.create(&params, secret).await,
    };
    match written {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 409 || e.code == 404 => Err(Error::Changed {
            kind: "Secret".into(),
            name: format!("{ns}/{name}"),
        }),
        Err(e) => Err(Error::kube(format!("writing Secret {ns}/{name}"))(e)),
    }
}

/// Server-side applies `object` (forcing ownership of the fields it sets) and returns the
/// object as stored.
pub async fn server_side_apply<K>(client: &Client, ns: &str, object: &K) -> Result<K>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Serialize
        + DeserializeOwned
        + Clone
        + Debug,
{
    let name = object.name_any();
    let api: Api<K> = Api::namespaced(client.clone(), ns);
    api.patch(
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(object),
    )
    .await
    .map_err(Error::kube(format!(
        "applying {} {ns}/{name}",
        K::kind(&())
    )))
}

/// Deletes `name` if it exists and `mp` is its controller; returns whether it was deleted.
async fn delete_owned<K>(client: &Client, ns: &str, name: &str, mp: &MediachainPeer) -> Result<bool>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + DeserializeOwned
        + Clone
        + Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), ns);
    let kind = K::kind(&());
    let Some(existing) = api
        .get_opt(name)
        .await
        .map_err(Error::kube(format!("reading {kind} {ns}/{name}")))?
    else {
        return Ok(false);
    };
    if !is_ours(&existing, mp) {
        return Ok(false);
    }
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(false),
        Err(e) => Err(Error::kube(format!("deleting {kind} {ns}/{name}"))(e)),
    }
}
