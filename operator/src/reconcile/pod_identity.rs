//! Identities under `spec.trust.keyCustody: Pod` (pure): each pod makes its key on its own
//! volume and publishes a signed request ([`crate::peer_key`]); the operator certifies the
//! verified key into the ConfigMap `<resource>-chains`, which every pod of the resource mounts.
//! No Secret holds a peer key, so no node and no pod can read another peer's key.
//!
//! A request counts only from a pod of the resource's StatefulSet that is bound to a node: its
//! status is written by that node's kubelet (NodeRestriction lets a node write the status of its
//! own pods only), and the signature binds the key to the pod's uid, so a request cannot be
//! replayed for another pod.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    ConfigMap, Container, EnvVar, EnvVarSource, ObjectFieldSelector, Pod, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::ResourceExt;
use mediachain::trust::{Chain, PublicKey};

use super::build::meta;
use super::dereference::Found;
use super::identity::{self, ChangeKind, Identity, RevokedKey};
use super::validate::{Valid, REVOCATIONS};
use super::Settings;
use crate::crd::{MediachainPeer, RetentionPolicy};
use crate::naming;
use crate::peer_key::{self, KeyRequest, AWAIT_CONTAINER, KEY_CONTAINER};

/// What a pod's key request came to.
pub type Request = Result<PublicKey, String>;

/// The key request of `pod`, if it published one: the verified key, or why it is refused.
/// `None` when the pod has not run its `peer-key` init container to completion yet.
pub fn request(mp: &MediachainPeer, pod: &Pod) -> Option<Request> {
    let message = request_message(pod)?;
    let owned = pod.owner_references().iter().any(|o| {
        o.controller == Some(true) && o.kind == "StatefulSet" && o.name == naming::workload(mp)
    });
    let bound = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.as_ref())
        .is_some();
    let (Some(uid), true, true) = (pod.metadata.uid.as_deref(), owned, bound) else {
        return Some(Err(
            "the pod is not a pod of the resource's StatefulSet bound to a node".into(),
        ));
    };
    let ns = pod.namespace().unwrap_or_default();
    Some(KeyRequest::verify(message, &ns, &pod.name_any(), uid).map_err(|e| e.to_string()))
}

/// The termination message of the pod's `peer-key` init container, once it succeeded.
pub fn request_message(pod: &Pod) -> Option<&str> {
    pod.status
        .as_ref()?
        .init_container_statuses
        .as_ref()?
        .iter()
        .find(|c| c.name == KEY_CONTAINER)?
        .state
        .as_ref()?
        .terminated
        .as_ref()
        .filter(|t| t.exit_code == 0)?
        .message
        .as_deref()
}

/// The key of the chains ConfigMap holding a pod's chain.
pub fn chain_key(pod: &str) -> String {
    format!("{pod}.chain")
}

/// The annotation of the chains ConfigMap holding when a pod's chain was issued.
pub fn issued_at_annotation(pod: &str) -> String {
    format!("issued-at.mediachain.io/{pod}")
}

/// The identities of the resource's peers under `keyCustody: Pod`.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// Certified peers, ordinal order (`key_pem` empty: the key never leaves its pod).
    pub identities: Vec<Identity>,
    /// Pods whose request is refused, with the reason (for Warning events).
    pub refused: Vec<(String, String)>,
}

/// Plans the chains of the first `replicas` peers from the pods' requests and the current
/// chains. A pod's verified key is certified (or its chain kept while it still certifies that
/// key and is not due); a peer without a new request keeps (and renews) its chain; a revoked
/// key is never certified (the pod's `peer-key` replaces it when it restarts).
pub fn plan(valid: &Valid, found: &Found, replicas: i32, now: u64) -> Plan {
    let mp = &valid.resource;
    let mut plan = Plan::default();
    for ordinal in 0..replicas {
        let pod = naming::pod(mp, ordinal);
        let current = current_chain(found, &pod);
        let subject = match found.key_requests.get(&pod) {
            Some(Ok(key)) => Some(*key),
            Some(Err(why)) => {
                plan.refused.push((pod.clone(), why.clone()));
                None
            }
            None => None,
        }
        .or_else(|| {
            current
                .as_ref()
                .and_then(|c| c.leaf())
                .map(|l| l.body.subject)
        });
        let Some(subject) = subject else {
            continue;
        };
        if let Some(reason) = identity::revocation(valid, &subject, now) {
            plan.refused.push((
                pod.clone(),
                format!(
                    "key {subject} is revoked ({reason}): the pod makes a new key when it restarts"
                ),
            ));
            continue;
        }
        let replaced = current
            .as_ref()
            .and_then(|c| c.leaf())
            .map(|l| l.body.subject)
            .filter(|old| *old != subject);
        let mut id = match identity::judge(valid, current.as_ref(), &subject, now) {
            Ok(not_after) => Identity {
                ordinal,
                secret: pod.clone(),
                key_pem: String::new(),
                chain_pem: current_text(found, &pod).unwrap_or_default(),
                peer_id: subject.to_string(),
                not_after,
                issued_at: issued_at(found, &pod),
                change: None,
                revoked: None,
            },
            Err(kind) => {
                let kind = match (&current, replaced) {
                    (None, _) => ChangeKind::Issued,
                    (Some(_), Some(old)) if identity::revocation(valid, &old, now).is_some() => {
                        ChangeKind::Revoked
                    }
                    (Some(_), Some(_)) => ChangeKind::Issued,
                    (Some(_), None) => kind,
                };
                identity::issue(
                    valid,
                    ordinal,
                    pod.clone(),
                    subject,
                    String::new(),
                    now,
                    kind,
                )
            }
        };
        if let Some(old) = replaced.filter(|_| id.change == Some(ChangeKind::Revoked)) {
            id.revoked = Some(RevokedKey {
                peer_id: old.to_string(),
                reason: identity::revocation(valid, &old, now).unwrap_or_default(),
                replaced_at: now,
            });
        }
        plan.identities.push(id);
    }
    plan
}

fn current_text(found: &Found, pod: &str) -> Option<String> {
    found
        .chains
        .as_ref()?
        .data
        .as_ref()?
        .get(&chain_key(pod))
        .cloned()
}

fn current_chain(found: &Found, pod: &str) -> Option<Chain> {
    Chain::from_pem(&current_text(found, pod)?).ok()
}

fn issued_at(found: &Found, pod: &str) -> u64 {
    found
        .chains
        .as_ref()
        .and_then(|c| c.annotations().get(&issued_at_annotation(pod)).cloned())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The chains ConfigMap: the planned peers' chains, and those of peers beyond `replicas` kept
/// as they are (public; a scale-up within them resumes the same keys) unless `whenScaled:
/// Delete` and their pod is gone.
pub fn config_map(
    valid: &Valid,
    owner: &OwnerReference,
    found: &Found,
    plan: &Plan,
    replicas: i32,
) -> ConfigMap {
    let mp = &valid.resource;
    let mut data = BTreeMap::new();
    let mut annotations = BTreeMap::new();
    let delete_removed = mp.spec.storage.retention.when_scaled == RetentionPolicy::Delete;
    for ordinal in replicas..super::validate::MAX_REPLICAS {
        let pod = naming::pod(mp, ordinal);
        let Some(text) = current_text(found, &pod) else {
            continue;
        };
        if delete_removed && !found.pods.contains_key(&pod) {
            continue;
        }
        annotations.insert(
            issued_at_annotation(&pod),
            issued_at(found, &pod).to_string(),
        );
        data.insert(chain_key(&pod), text);
    }
    for id in &plan.identities {
        let pod = naming::pod(mp, id.ordinal);
        annotations.insert(issued_at_annotation(&pod), id.issued_at.to_string());
        data.insert(chain_key(&pod), id.chain_pem.clone());
    }
    let mut metadata = meta(valid, naming::chains_config_map(mp), owner);
    metadata.annotations = Some(annotations);
    ConfigMap {
        metadata,
        data: Some(data),
        ..ConfigMap::default()
    }
}

fn field_env(name: &str, path: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: path.into(),
                ..ObjectFieldSelector::default()
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }
}

/// The init containers of a peer's pod under `keyCustody: Pod` (`None` otherwise): `peer-key`
/// (makes or keeps the key on the data volume, publishes the request as its termination
/// message) and `await-chain` (waits until the mounted chains hold a certificate of that key).
/// Both run the operator's image, without a service-account token.
pub fn init_containers(valid: &Valid, settings: &Settings) -> Option<Vec<Container>> {
    if !super::workload::pod_custody(valid) {
        return None;
    }
    let image = settings.operator_image.clone()?;
    let mount = |name: &str, path: &str, read_only: bool| VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        read_only: Some(read_only),
        ..VolumeMount::default()
    };
    let mut env = vec![
        field_env("POD_NAME", "metadata.name"),
        field_env("POD_NAMESPACE", "metadata.namespace"),
        field_env("POD_UID", "metadata.uid"),
        super::workload::env("MEDIACHAIN_KEY", peer_key::KEY_PATH),
        super::workload::env(
            "MEDIACHAIN_CHAIN",
            format!("{}/$(POD_NAME).chain", peer_key::CHAINS_DIR),
        ),
    ];
    if valid.principal.revocations.is_some() {
        env.push(super::workload::env(
            "MEDIACHAIN_REVOCATIONS",
            format!("/etc/mediachain/trust/{REVOCATIONS}"),
        ));
    }
    let container = |name: &str, mounts: Vec<VolumeMount>| Container {
        name: name.into(),
        image: Some(image.clone()),
        args: Some(vec![name.into()]),
        env: Some(env.clone()),
        volume_mounts: Some(mounts),
        security_context: Some(super::workload::container_security()),
        ..Container::default()
    };
    Some(vec![
        container(
            KEY_CONTAINER,
            vec![
                mount(super::workload::DATA_VOLUME, "/var/lib/mediachain", false),
                mount("trust", "/etc/mediachain/trust", true),
            ],
        ),
        container(
            AWAIT_CONTAINER,
            vec![
                mount(super::workload::DATA_VOLUME, "/var/lib/mediachain", true),
                mount("chains", peer_key::CHAINS_DIR, true),
            ],
        ),
    ])
}
