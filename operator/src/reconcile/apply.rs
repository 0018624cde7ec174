//! Step 4: the only step that writes. Server-side applies every desired object with the
//! operator's field manager (idempotent: an unchanged object is not rewritten, its
//! resourceVersion stays), and deletes what the spec no longer asks for.

use std::fmt::Debug;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::NamespaceResourceScope;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::build::Desired;
use crate::crd::{MediachainPeer, PeerIdentityStatus};
use crate::naming::{self, FIELD_MANAGER};
use crate::{Error, Result};

/// What applying produced, for the status step.
#[derive(Debug, Clone)]
pub struct Applied {
    /// The StatefulSet as the API server returned it (with its status).
    pub statefulset: StatefulSet,
    /// Every current peer's identity, ordinal order.
    pub peers: Vec<PeerIdentityStatus>,
    /// Identity Secrets deleted in this pass.
    pub deleted_identities: Vec<String>,
}

/// Applies `desired` for `mp`.
pub async fn apply(client: &Client, mp: &MediachainPeer, desired: Desired) -> Result<Applied> {
    // Destructured field by field: a new field of `Desired` must be applied here.
    let Desired {
        identities,
        obsolete_identities,
        seeds,
        headless_service,
        client_service,
        statefulset,
        pdb,
        ingress,
    } = desired;
    let ns = mp
        .namespace()
        .ok_or_else(|| Error::InvalidSpec("the resource has no namespace".into()))?;

    let mut peers = Vec::with_capacity(identities.len());
    for (identity, secret) in &identities {
        server_side_apply(client, &ns, secret).await?;
        peers.push(PeerIdentityStatus {
            name: naming::pod(mp, identity.ordinal),
            peer_id: identity.peer_id.clone(),
            certificate_not_after: identity.not_after,
        });
    }
    server_side_apply(client, &ns, &seeds).await?;
    server_side_apply(client, &ns, &headless_service).await?;
    server_side_apply(client, &ns, &client_service).await?;
    let statefulset = server_side_apply(client, &ns, &statefulset).await?;
    match pdb {
        Some(pdb) => {
            server_side_apply(client, &ns, &pdb).await?;
        }
        None => {
            delete_owned::<PodDisruptionBudget>(client, &ns, &naming::workload(mp), mp).await?;
        }
    }
    match ingress {
        Some(ingress) => {
            server_side_apply(client, &ns, &ingress).await?;
        }
        None => {
            delete_owned::<Ingress>(client, &ns, &naming::workload(mp), mp).await?;
        }
    }
    let mut deleted_identities = Vec::new();
    for name in obsolete_identities {
        if delete_owned::<Secret>(client, &ns, &name, mp).await? {
            deleted_identities.push(name);
        }
    }
    Ok(Applied {
        statefulset,
        peers,
        deleted_identities,
    })
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
    let owned = existing
        .owner_references()
        .iter()
        .any(|o| o.controller == Some(true) && Some(&o.uid) == mp.meta().uid.as_ref());
    if !owned {
        return Ok(false);
    }
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(false),
        Err(e) => Err(Error::kube(format!("deleting {kind} {ns}/{name}"))(e)),
    }
}
