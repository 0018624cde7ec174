//! Step 3 (pure): the objects a valid resource must own, built from the resource, what
//! `dereference` found and the operator's settings. No I/O; key generation is injected.
//!
//! [`Desired`] is `#[must_use]` and `apply` destructures it field by field, so a built object
//! that is never applied fails to compile (unused variable under `-D warnings`). This module
//! plans the identities, the scale-down steps and the restarts; the workload
//! ([`super::workload`]) and the network-facing objects ([`super::services`]) are built beside it.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::ByteString;
use kube::{Resource, ResourceExt};
use mediachain::trust::SecretKey;

use super::dereference::Found;
use super::identity::{self, Change, Identity};
use super::services::{client_service, headless_service, ingress, pdb, seeds};
use super::validate::{Valid, MAX_REPLICAS};
use super::workload::statefulset;
use super::Settings;
use crate::crd::{KeyCustody, MediachainPeer, RetentionPolicy};
use crate::naming;
use crate::{Error, Result};

pub use super::workload::{CONTAINER, DATA_VOLUME, PEER_UID};

/// Every object a resource owns, as it should be.
#[must_use = "built objects must be applied"]
#[derive(Debug, Clone)]
pub struct Desired {
    /// Per-peer identity Secrets with their plans, ordinal order.
    pub identities: Vec<(Identity, Secret)>,
    /// Identity Secrets of removed peers to delete (scale-down with `whenScaled: Delete`, pod gone).
    pub obsolete_identities: Vec<String>,
    /// Peers certified from their pods' requests (`keyCustody: Pod`), ordinal order.
    pub pod_identities: Vec<Identity>,
    /// The peers' chains (`keyCustody: Pod`; `None` under `Operator`).
    pub chains: Option<ConfigMap>,
    /// Pods whose key request is refused, with the reason (`keyCustody: Pod`).
    pub refused_requests: Vec<(String, String)>,
    /// The per-peer overlay Services and advertised addresses (`spec.exposure`).
    pub exposure: Option<super::exposure::Plan>,
    /// Per-peer Services no longer wanted (scale-down, exposure removed).
    pub obsolete_services: Vec<String>,
    /// The peer holding a rollout back for too long, and why (`Degraded/RolloutStuck`).
    pub rollout_stuck: Option<String>,
    /// The network's seed list.
    pub seeds: ConfigMap,
    /// The public trust material the peers mount (root key, revocations).
    pub trust: ConfigMap,
    /// The headless Service of the overlay.
    pub headless_service: Service,
    /// The client Service.
    pub client_service: Service,
    /// The peers.
    pub statefulset: StatefulSet,
    /// The disruption budget (`None`: delete it if present).
    pub pdb: Option<PodDisruptionBudget>,
    /// The NetworkPolicy (`None`: delete it if present).
    pub network_policy: Option<k8s_openapi::api::networking::v1::NetworkPolicy>,
    /// The Ingress (`None`: delete it if present).
    pub ingress: Option<Ingress>,
    /// Pods to delete so that the StatefulSet restarts them with their renewed certificate.
    pub restarts: Vec<String>,
    /// The backup CronJob (`None`: delete it if present).
    pub backup: Option<CronJob>,
    /// The principal rotation's status after this pass (`None`: no rotation on record).
    pub rotation: Option<crate::crd::PrincipalRotationStatus>,
}

impl Desired {
    /// The identity changes this pass will make.
    pub fn identity_changes(&self) -> Vec<Change> {
        self.identities
            .iter()
            .map(|(id, _)| id)
            .chain(&self.pod_identities)
            .filter_map(|id| {
                id.change.map(|kind| Change {
                    secret: id.secret.clone(),
                    peer_id: id.peer_id.clone(),
                    kind,
                })
            })
            .collect()
    }
}

/// Builds the desired objects of a valid resource.
pub fn build(
    valid: &Valid,
    found: &Found,
    settings: &Settings,
    now: u64,
    keygen: &mut dyn FnMut() -> SecretKey,
) -> Result<Desired> {
    let mp = &valid.resource;
    let owner = mp
        .controller_owner_ref(&())
        .ok_or_else(|| Error::InvalidSpec("the resource has no name or uid yet".into()))?;

    let replicas = stepped_replicas(mp, found);
    let pod_custody = mp.spec.trust.key_custody == KeyCustody::Pod;
    if pod_custody && settings.operator_image.is_none() {
        return Err(Error::InvalidSpec(
            "trust.keyCustody: Pod needs the operator's image for the peers' init containers (env OPERATOR_IMAGE, set by the chart)".into(),
        ));
    }
    let pod_plan = if pod_custody {
        super::pod_identity::plan(valid, found, replicas, now)
    } else {
        super::pod_identity::Plan::default()
    };
    let mut identities = Vec::new();
    for ordinal in (0..replicas).filter(|_| !pod_custody) {
        let name = naming::identity_secret(mp, ordinal);
        let plan = identity::plan(
            valid,
            ordinal,
            name.clone(),
            found.identities.get(&name),
            now,
            keygen,
        )?;
        let secret = over_existing(
            found.identities.get(&name),
            identity_secret(valid, &owner, &plan),
        );
        identities.push((plan, secret));
    }

    let obsolete = if replicas == mp.spec.replicas {
        obsolete_identities(mp, found)
    } else {
        Vec::new()
    };
    let mounted = mounted_identities(mp, found, &identities, &obsolete);
    let mut statefulset = statefulset(valid, &owner, replicas, &mounted, settings)?;
    let template_hash = statefulset
        .spec
        .as_ref()
        .map(|s| super::rollout::template_hash(&s.template))
        .unwrap_or_default();
    let step = super::rollout::plan(
        mp,
        found,
        &template_hash,
        replicas,
        now,
        settings.rollout_stuck_after.as_secs(),
    );
    super::rollout::apply_to(&mut statefulset, &step, template_hash);
    let exposure = super::exposure::plan(valid, &owner, found, replicas, settings, now);
    let restarts = if rolling_out(found, &statefulset) {
        Vec::new()
    } else {
        // When each peer's settings last changed: its certificate, its advertised address.
        let mut since: BTreeMap<i32, u64> = BTreeMap::new();
        let issued = identities
            .iter()
            .map(|(id, _)| id)
            .chain(&pod_plan.identities);
        let addressed = exposure.iter().flat_map(|e| &e.changed_at);
        for (ordinal, at) in issued
            .map(|id| (id.ordinal, id.issued_at))
            .chain(addressed.map(|(o, at)| (*o, *at)))
        {
            let entry = since.entry(ordinal).or_insert(0);
            *entry = (*entry).max(at);
        }
        restarts(mp, found, &since, replicas)
    };
    let new_principal = valid.principal.key.public();
    let rotation = match &valid.retiring {
        Some(retiring) => {
            let planned: Vec<&Identity> = identities
                .iter()
                .map(|(id, _)| id)
                .chain(&pod_plan.identities)
                .collect();
            Some(super::rotation::phase(
                mp,
                found,
                retiring,
                &new_principal,
                &planned,
                replicas,
            ))
        }
        None => super::rotation::kept(mp, &new_principal),
    };
    let obsolete_services = super::exposure::obsolete_services(found, exposure.as_ref());
    let chains = pod_custody
        .then(|| super::pod_identity::config_map(valid, &owner, found, &pod_plan, replicas));
    Ok(Desired {
        rotation,
        rollout_stuck: step.stuck,
        restarts,
        exposure,
        obsolete_services,
        chains,
        pod_identities: pod_plan.identities,
        refused_requests: pod_plan.refused,
        obsolete_identities: obsolete,
        seeds: seeds(valid, found, replicas, settings),
        trust: super::public_trust::config_map(valid, &owner),
        headless_service: headless_service(valid, &owner),
        client_service: client_service(valid, &owner),
        statefulset,
        pdb: pdb(valid, &owner),
        ingress: ingress(valid, &owner),
        network_policy: super::network_policy::network_policy(valid, &owner, settings),
        backup: super::backup::cron_job(valid, &owner, settings),
        identities,
    })
}

/// The StatefulSet's replicas for this pass. Scaling up is immediate (peers start in
/// parallel). Scaling down removes at most `disruptionBudget.maxUnavailable` peers (at least
/// one) per step, and takes the next step only once the StatefulSet has removed the previous
/// batch and every peer that stays is ready, so that the overlay is never cut by a mass removal.
pub fn stepped_replicas(mp: &MediachainPeer, found: &Found) -> i32 {
    let wanted = mp.spec.replicas;
    let Some(sts) = &found.statefulset else {
        return wanted;
    };
    let current = sts.spec.as_ref().and_then(|s| s.replicas).unwrap_or(wanted);
    if wanted >= current {
        return wanted;
    }
    let Some(status) = sts
        .status
        .as_ref()
        .filter(|s| s.observed_generation.is_some())
    else {
        // Never observed by its controller: no pods were made from it yet.
        return wanted;
    };
    let observed = status.observed_generation >= sts.metadata.generation;
    if !observed || status.replicas > current {
        return current;
    }
    let step = mp.spec.disruption_budget.max_unavailable.max(1);
    let next = wanted.max(current.saturating_sub(step));
    let staying_ready =
        (0..next).all(|i| found.pods.get(&naming::pod(mp, i)).is_some_and(|p| p.ready));
    if staying_ready {
        next
    } else {
        current
    }
}

/// The revocation digest of a StatefulSet's pod template (`None`: no list).
pub fn revocations_digest(sts: &StatefulSet) -> Option<&str> {
    sts.spec
        .as_ref()
        .and_then(|s| s.template.metadata.as_ref())
        .and_then(|m| m.annotations.as_ref())
        .and_then(|a| a.get(naming::REVOCATIONS_DIGEST_ANNOTATION))
        .map(String::as_str)
}

/// Whether the StatefulSet replaces its pods now or is about to: its template changes in this
/// pass (revocation lists, principal, image, ...), or its controller has not finished the last
/// rollout. A rollout restarts every peer one at a time anyway (each with the current
/// certificate), so the operator deletes none itself: two restarts at once could exceed the
/// disruption budget.
fn rolling_out(found: &Found, desired: &StatefulSet) -> bool {
    let Some(sts) = &found.statefulset else {
        return false;
    };
    let hash = |sts: &StatefulSet| {
        sts.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(super::rollout::TEMPLATE_HASH_ANNOTATION))
            .cloned()
    };
    // Until its controller observed the latest template, its revisions say nothing yet.
    let unobserved = sts.status.as_ref().is_some_and(|s| {
        s.observed_generation.is_some() && s.observed_generation < sts.metadata.generation
    });
    hash(sts) != hash(desired)
        || super::rollout::partition(sts) > 0
        || super::rollout::partition(desired) > 0
        || unobserved
        || sts
            .status
            .as_ref()
            .is_some_and(|s| s.update_revision.is_some() && s.update_revision != s.current_revision)
}

/// Pods running a certificate or an advertised address older than their peer's (`since`: when
/// each peer's last changed), to delete so that the StatefulSet restarts them: only those peers, at most
/// `disruptionBudget.maxUnavailable` (at least one) at a time, and only while every other peer
/// is ready.
fn restarts(
    mp: &MediachainPeer,
    found: &Found,
    since: &BTreeMap<i32, u64>,
    replicas: i32,
) -> Vec<String> {
    let pod_custody = mp.spec.trust.key_custody == KeyCustody::Pod;
    let stale: Vec<String> = since
        .iter()
        .filter_map(|(ordinal, since)| {
            let pod = naming::pod(mp, *ordinal);
            let state = found.pods.get(&pod)?;
            // A pod mounts its Secret when created; under `Pod` custody the peer reads its
            // chain when it starts (a pod waiting for its first chain is not stale).
            let stale = if pod_custody {
                state.peer_started.is_some_and(|t| t < *since)
            } else {
                state.created < *since
            };
            stale.then_some(pod)
        })
        .collect();
    let others_ready = (0..replicas)
        .map(|i| naming::pod(mp, i))
        .filter(|pod| !stale.contains(pod))
        .all(|pod| found.pods.get(&pod).is_some_and(|p| p.ready));
    let missing = (0..replicas)
        .filter(|i| !found.pods.contains_key(&naming::pod(mp, *i)))
        .count();
    let budget = usize::try_from(mp.spec.disruption_budget.max_unavailable.max(1)).unwrap_or(1);
    if !others_ready || missing > 0 {
        return Vec::new();
    }
    stale.into_iter().take(budget).collect()
}

/// A peer identity mounted in the pod template.
#[derive(Debug, Clone)]
pub(super) struct Mounted {
    pub(super) ordinal: i32,
    pub(super) secret: String,
}

/// The identities the pod template mounts: the current peers' and the retained ones of
/// removed peers (optional sources: harmless for pods that do not exist). Keeping retained
/// identities in the template means that scaling down, then up again within the range already
/// issued, leaves the template unchanged: no rolling restart of the running peers.
fn mounted_identities(
    mp: &MediachainPeer,
    found: &Found,
    identities: &[(Identity, Secret)],
    obsolete: &[String],
) -> Vec<Mounted> {
    let mut mounted: Vec<Mounted> = identities
        .iter()
        .map(|(id, _)| Mounted {
            ordinal: id.ordinal,
            secret: id.secret.clone(),
        })
        .collect();
    let issued = i32::try_from(identities.len()).unwrap_or(i32::MAX);
    for secret in found.identities.values() {
        let Some(ordinal) = secret
            .labels()
            .get(naming::ORDINAL_LABEL)
            .and_then(|o| o.parse::<i32>().ok())
        else {
            continue;
        };
        let name = secret.name_any();
        if ordinal < issued
            || ordinal >= MAX_REPLICAS
            || obsolete.contains(&name)
            || name != naming::identity_secret(mp, ordinal)
        {
            continue;
        }
        mounted.push(Mounted {
            ordinal,
            secret: name,
        });
    }
    mounted.sort_by_key(|m| m.ordinal);
    mounted
}

pub(super) fn meta(valid: &Valid, name: String, owner: &OwnerReference) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: Some(valid.namespace.clone()),
        labels: Some(naming::labels(&valid.resource)),
        owner_references: Some(vec![owner.clone()]),
        ..ObjectMeta::default()
    }
}

/// A peer's identity Secret. Under `whenDeleted: Retain` it has no owner, so that deleting the
/// resource keeps the peer's key with its volume, and a resource re-created with the same name
/// resumes the same identities.
fn identity_secret(valid: &Valid, owner: &OwnerReference, id: &Identity) -> Secret {
    let mp = &valid.resource;
    let mut meta = meta(valid, id.secret.clone(), owner);
    if mp.spec.storage.retention.when_deleted == RetentionPolicy::Retain {
        meta.owner_references = None;
    }
    let labels = meta.labels.get_or_insert_with(BTreeMap::new);
    labels.insert(naming::PEER_LABEL.into(), naming::pod(mp, id.ordinal));
    labels.insert(naming::ORDINAL_LABEL.into(), id.ordinal.to_string());
    let mut annotations = BTreeMap::from([
        (naming::PEER_ID_ANNOTATION.into(), id.peer_id.clone()),
        (
            naming::NOT_AFTER_ANNOTATION.into(),
            id.not_after.to_string(),
        ),
        (
            naming::ISSUED_AT_ANNOTATION.into(),
            id.issued_at.to_string(),
        ),
    ]);
    if let Some(revoked) = &id.revoked {
        annotations.extend([
            (
                naming::REVOKED_PEER_ID_ANNOTATION.to_string(),
                revoked.peer_id.clone(),
            ),
            (
                naming::REVOKED_REASON_ANNOTATION.to_string(),
                revoked.reason.clone(),
            ),
            (
                naming::REVOKED_AT_ANNOTATION.to_string(),
                revoked.replaced_at.to_string(),
            ),
        ]);
    }
    meta.annotations = Some(annotations);
    Secret {
        metadata: meta,
        type_: Some("Opaque".into()),
        data: Some(BTreeMap::from([
            (
                identity::PEER_KEY.into(),
                ByteString(id.key_pem.as_bytes().to_vec()),
            ),
            (
                identity::PEER_CHAIN.into(),
                ByteString(id.chain_pem.as_bytes().to_vec()),
            ),
        ])),
        ..Secret::default()
    }
}

/// The identity Secret to write. A new identity: `desired` (no `resourceVersion`: it is only
/// created). An existing one: the Secret as read, at the version read (it is only replaced at
/// that version, so a Secret deleted or changed meanwhile is never brought back from a stale
/// read), with the desired data, owners, and labels and annotations added to the others'.
fn over_existing(existing: Option<&Secret>, desired: Secret) -> Secret {
    let Some(existing) = existing else {
        return desired;
    };
    let mut merged = existing.clone();
    merged.metadata.managed_fields = None;
    merged.metadata.owner_references = desired.metadata.owner_references;
    merged
        .metadata
        .labels
        .get_or_insert_with(BTreeMap::new)
        .extend(desired.metadata.labels.unwrap_or_default());
    merged
        .metadata
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .extend(desired.metadata.annotations.unwrap_or_default());
    merged.data = desired.data;
    merged.string_data = None;
    merged
}

/// Identity Secrets beyond `replicas` that may go: only with `whenScaled: Delete`, and never
/// while the peer's pod still exists (it may still be terminating with the key mounted).
fn obsolete_identities(mp: &MediachainPeer, found: &Found) -> Vec<String> {
    if mp.spec.storage.retention.when_scaled != RetentionPolicy::Delete {
        return Vec::new();
    }
    found
        .identities
        .values()
        .filter_map(|secret| {
            let ordinal: i32 = secret.labels().get(naming::ORDINAL_LABEL)?.parse().ok()?;
            let removed = ordinal >= mp.spec.replicas;
            let pod_gone = !found.pods.contains_key(&naming::pod(mp, ordinal));
            (removed && pod_gone).then(|| secret.name_any())
        })
        .collect()
}
