//! Step 3 (pure): the objects a valid resource must own, built from the resource, what
//! `dereference` found and the operator's settings. No I/O; key generation is injected.
//!
//! [`Desired`] is `#[must_use]` and `apply` destructures it field by field, so a built object
//! that is never applied fails to compile (unused variable under `-D warnings`).

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    StatefulSet, StatefulSetPersistentVolumeClaimRetentionPolicy, StatefulSetSpec,
    StatefulSetUpdateStrategy,
};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource,
    EnvVar, EnvVarSource, HTTPGetAction, KeyToPath, ObjectFieldSelector, PersistentVolumeClaim,
    PersistentVolumeClaimSpec, PodSecurityContext, PodSpec, PodTemplateSpec, Probe,
    ProjectedVolumeSource, SeccompProfile, Secret, SecretProjection, SecurityContext, Service,
    ServicePort, ServiceSpec, Volume, VolumeMount, VolumeProjection, VolumeResourceRequirements,
};
use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressRule,
    IngressServiceBackend, IngressSpec, IngressTLS, ServiceBackendPort,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::ByteString;
use kube::{Resource, ResourceExt};
use mediachain::trust::SecretKey;

use super::dereference::Found;
use super::identity::{self, Change, Identity};
use super::validate::{Valid, MAX_REPLICAS, REVOCATIONS};
use super::Settings;
use crate::crd::{MediachainPeer, RetentionPolicy};
use crate::naming::{self, HTTP_PORT, P2P_PORT};
use crate::overrides;
use crate::{Error, Result};

/// UID and GID the peer runs as (any non-root id works, per the peer contract).
pub const PEER_UID: i64 = 10001;
/// Name of the peer container.
pub const CONTAINER: &str = "peer";
/// Name of the data volume claim template.
pub const DATA_VOLUME: &str = "data";

/// Every object a resource owns, as it should be.
#[must_use = "built objects must be applied"]
#[derive(Debug, Clone)]
pub struct Desired {
    /// Per-peer identity Secrets with their plans, ordinal order.
    pub identities: Vec<(Identity, Secret)>,
    /// Identity Secrets of removed peers to delete (scale-down with `whenScaled: Delete`, pod gone).
    pub obsolete_identities: Vec<String>,
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
    /// The Ingress (`None`: delete it if present).
    pub ingress: Option<Ingress>,
    /// Pods to delete so that the StatefulSet restarts them with their renewed certificate.
    pub restarts: Vec<String>,
}

impl Desired {
    /// The identity changes this pass will make.
    pub fn identity_changes(&self) -> Vec<Change> {
        self.identities
            .iter()
            .filter_map(|(id, _)| {
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
    let mut identities = Vec::new();
    for ordinal in 0..replicas {
        let name = naming::identity_secret(mp, ordinal);
        let plan = identity::plan(
            valid,
            ordinal,
            name.clone(),
            found.identities.get(&name),
            now,
            keygen,
        )?;
        let secret = identity_secret(valid, &owner, &plan);
        identities.push((plan, secret));
    }

    let obsolete = if replicas == mp.spec.replicas {
        obsolete_identities(mp, found)
    } else {
        Vec::new()
    };
    let mounted = mounted_identities(mp, found, &identities, &obsolete);
    let statefulset = statefulset(valid, &owner, replicas, &mounted, settings)?;
    let restarts = restarts(mp, found, &identities, replicas);
    Ok(Desired {
        restarts,
        obsolete_identities: obsolete,
        seeds: seeds(valid, found, replicas, settings),
        trust: super::public_trust::config_map(valid, &owner),
        headless_service: headless_service(valid, &owner),
        client_service: client_service(valid, &owner),
        statefulset,
        pdb: pdb(valid, &owner),
        ingress: ingress(valid, &owner),
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

/// Pods running a certificate older than their identity's (created before it was issued), to
/// delete so that the StatefulSet restarts them: only those peers, at most
/// `disruptionBudget.maxUnavailable` (at least one) at a time, and only while every other peer
/// is ready.
fn restarts(
    mp: &MediachainPeer,
    found: &Found,
    identities: &[(Identity, Secret)],
    replicas: i32,
) -> Vec<String> {
    let stale: Vec<String> = identities
        .iter()
        .filter_map(|(id, _)| {
            let pod = naming::pod(mp, id.ordinal);
            let state = found.pods.get(&pod)?;
            (state.created < id.issued_at).then_some(pod)
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
struct Mounted {
    ordinal: i32,
    secret: String,
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

fn meta(valid: &Valid, name: String, owner: &OwnerReference) -> ObjectMeta {
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
    meta.annotations = Some(BTreeMap::from([
        (naming::PEER_ID_ANNOTATION.into(), id.peer_id.clone()),
        (
            naming::NOT_AFTER_ANNOTATION.into(),
            id.not_after.to_string(),
        ),
        (
            naming::ISSUED_AT_ANNOTATION.into(),
            id.issued_at.to_string(),
        ),
    ]));
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

/// The seed list of the whole network: the stable DNS name of every peer of every
/// MediachainPeer of the network in the namespace, in name then ordinal order. Every member's
/// reconcile builds the same ConfigMap, owned (non-controller) by all members.
fn seeds(valid: &Valid, found: &Found, replicas: i32, settings: &Settings) -> ConfigMap {
    let mp = &valid.resource;
    let mut members: Vec<&MediachainPeer> = found
        .network_members
        .iter()
        .filter(|m| m.meta().deletion_timestamp.is_none() && m.spec.network == mp.spec.network)
        .collect();
    if !members.iter().any(|m| m.uid() == mp.uid()) {
        members.push(mp);
    }
    members.sort_by_key(|m| m.name_any());
    members.dedup_by_key(|m| m.name_any());

    let mut text = format!(
        "# Seeds of network {} (generated by mediachain-operator; do not edit)\n",
        mp.spec.network
    );
    for member in &members {
        // This resource's peers as the StatefulSet runs them now (a scale-down goes in steps).
        let count = if member.uid() == mp.uid() {
            replicas
        } else {
            member.spec.replicas
        };
        for ordinal in 0..count.clamp(0, MAX_REPLICAS) {
            let dns = naming::pod_dns(member, ordinal, &valid.namespace, &settings.cluster_domain);
            text.push_str(&format!("/dns4/{dns}/tcp/{P2P_PORT}\n"));
        }
    }
    let owners = members.iter().filter_map(|m| m.owner_ref(&())).collect();
    let mut labels = BTreeMap::from([
        (
            "app.kubernetes.io/managed-by".to_string(),
            "mediachain-operator".to_string(),
        ),
        (naming::NETWORK_LABEL.to_string(), mp.spec.network.clone()),
    ]);
    labels.insert("app.kubernetes.io/name".into(), "mediachain-peer".into());
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(naming::seeds_config_map(&mp.spec.network)),
            namespace: Some(valid.namespace.clone()),
            labels: Some(labels),
            owner_references: Some(owners),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([("seeds.txt".to_string(), text)])),
        ..ConfigMap::default()
    }
}

fn service_port(name: &str, port: i32) -> ServicePort {
    ServicePort {
        name: Some(name.into()),
        port,
        target_port: Some(IntOrString::String(name.into())),
        protocol: Some("TCP".into()),
        ..ServicePort::default()
    }
}

fn headless_service(valid: &Valid, owner: &OwnerReference) -> Service {
    let mp = &valid.resource;
    Service {
        metadata: meta(valid, naming::headless_service(mp), owner),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".into()),
            // Peers must find each other before they are ready: readiness means "admitted to
            // the overlay", which needs the other peers' addresses.
            publish_not_ready_addresses: Some(true),
            selector: Some(naming::selector_labels(mp)),
            ports: Some(vec![
                service_port("p2p", P2P_PORT),
                service_port("http", HTTP_PORT),
            ]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

fn client_service(valid: &Valid, owner: &OwnerReference) -> Service {
    let mp = &valid.resource;
    let mut metadata = meta(valid, naming::workload(mp), owner);
    if !mp.spec.client_service.annotations.is_empty() {
        metadata.annotations = Some(mp.spec.client_service.annotations.clone());
    }
    Service {
        metadata,
        spec: Some(ServiceSpec {
            type_: Some(mp.spec.client_service.type_.clone()),
            selector: Some(naming::selector_labels(mp)),
            ports: Some(vec![service_port("http", HTTP_PORT)]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

fn pdb(valid: &Valid, owner: &OwnerReference) -> Option<PodDisruptionBudget> {
    let mp = &valid.resource;
    let budget = &mp.spec.disruption_budget;
    budget.enabled.then(|| PodDisruptionBudget {
        metadata: meta(valid, naming::workload(mp), owner),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(budget.max_unavailable)),
            selector: Some(LabelSelector {
                match_labels: Some(naming::selector_labels(mp)),
                ..LabelSelector::default()
            }),
            ..PodDisruptionBudgetSpec::default()
        }),
        ..PodDisruptionBudget::default()
    })
}

fn ingress(valid: &Valid, owner: &OwnerReference) -> Option<Ingress> {
    let mp = &valid.resource;
    let spec = mp.spec.ingress.as_ref()?;
    let mut metadata = meta(valid, naming::workload(mp), owner);
    if !spec.annotations.is_empty() {
        metadata.annotations = Some(spec.annotations.clone());
    }
    Some(Ingress {
        metadata,
        spec: Some(IngressSpec {
            ingress_class_name: spec.class_name.clone(),
            tls: spec.tls_secret_name.as_ref().map(|secret| {
                vec![IngressTLS {
                    hosts: Some(vec![spec.host.clone()]),
                    secret_name: Some(secret.clone()),
                }]
            }),
            rules: Some(vec![IngressRule {
                host: Some(spec.host.clone()),
                http: Some(HTTPIngressRuleValue {
                    paths: vec![HTTPIngressPath {
                        path: Some("/".into()),
                        path_type: "Prefix".into(),
                        backend: IngressBackend {
                            service: Some(IngressServiceBackend {
                                name: naming::workload(mp),
                                port: Some(ServiceBackendPort {
                                    name: Some("http".into()),
                                    ..ServiceBackendPort::default()
                                }),
                            }),
                            ..IngressBackend::default()
                        },
                    }],
                }),
            }]),
            ..IngressSpec::default()
        }),
        ..Ingress::default()
    })
}

fn env(name: &str, value: impl Into<String>) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value.into()),
        ..EnvVar::default()
    }
}

fn http_probe(path: &str, period: i32, failures: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::String("http".into()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period),
        timeout_seconds: Some(2),
        failure_threshold: Some(failures),
        ..Probe::default()
    }
}

fn peer_container(valid: &Valid, settings: &Settings) -> Container {
    let mp = &valid.resource;
    let spec = &mp.spec;
    let mut env_vars = vec![
        EnvVar {
            name: "POD_NAME".into(),
            value_from: Some(EnvVarSource {
                field_ref: Some(ObjectFieldSelector {
                    field_path: "metadata.name".into(),
                    ..ObjectFieldSelector::default()
                }),
                ..EnvVarSource::default()
            }),
            ..EnvVar::default()
        },
        env("MEDIACHAIN_NETWORK", spec.network.clone()),
        env(
            "MEDIACHAIN_EXTERNAL_ADDRESS",
            format!(
                "/dns4/$(POD_NAME).{}.{}.svc.{}/tcp/{P2P_PORT}",
                naming::headless_service(mp),
                valid.namespace,
                settings.cluster_domain
            ),
        ),
        env(
            "MEDIACHAIN_TARGET_CONNECTIVITY",
            spec.connectivity.target_connectivity.to_string(),
        ),
        env("MEDIACHAIN_LOG_FORMAT", "json"),
    ];
    if !spec.seeds.is_empty() {
        env_vars.push(env("MEDIACHAIN_SEEDS", spec.seeds.join(",")));
    }
    if valid.principal.revocations.is_some() {
        env_vars.push(env(
            "MEDIACHAIN_REVOCATIONS",
            format!("/etc/mediachain/trust/{REVOCATIONS}"),
        ));
    }
    let c = &spec.consensus;
    let optional = [
        ("MEDIACHAIN_BLOCK_INTERVAL", c.block_interval.clone()),
        ("MEDIACHAIN_COMMIT_TIMEOUT", c.commit_timeout.clone()),
        (
            "MEDIACHAIN_REGISTRATION_POW_BITS",
            c.registration_pow_bits.map(|v| v.to_string()),
        ),
        (
            "MEDIACHAIN_TRANSACTION_POW_BITS",
            c.transaction_pow_bits.map(|v| v.to_string()),
        ),
        (
            "MEDIACHAIN_MAX_OBJECT_SIZE",
            c.max_object_size.map(|v| v.to_string()),
        ),
    ];
    env_vars.extend(
        optional
            .into_iter()
            .filter_map(|(name, value)| value.map(|v| env(name, v))),
    );

    let mount = |name: &str, path: &str| VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        read_only: Some(true),
        ..VolumeMount::default()
    };
    Container {
        name: CONTAINER.into(),
        image: Some(spec.image.clone()),
        image_pull_policy: spec.image_pull_policy.clone(),
        args: Some(vec!["run".into()]),
        env: Some(env_vars),
        ports: Some(vec![
            ContainerPort {
                name: Some("p2p".into()),
                container_port: P2P_PORT,
                protocol: Some("TCP".into()),
                ..ContainerPort::default()
            },
            ContainerPort {
                name: Some("http".into()),
                container_port: HTTP_PORT,
                protocol: Some("TCP".into()),
                ..ContainerPort::default()
            },
        ]),
        startup_probe: Some(http_probe("/healthz", 2, 30)),
        liveness_probe: Some(http_probe("/healthz", 10, 6)),
        readiness_probe: Some(http_probe("/readyz", 5, 3)),
        resources: spec.resources.clone(),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            run_as_non_root: Some(true),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".into()]),
                ..Capabilities::default()
            }),
            ..SecurityContext::default()
        }),
        volume_mounts: Some(vec![
            // Each pod sees only its own identity: the projected volume holds one directory
            // per peer and the mount selects the pod's own by name.
            VolumeMount {
                sub_path_expr: Some("$(POD_NAME)".into()),
                ..mount("identity", "/etc/mediachain/identity")
            },
            mount("trust", "/etc/mediachain/trust"),
            mount("seeds", "/etc/mediachain/seeds"),
            VolumeMount {
                read_only: None,
                ..mount(DATA_VOLUME, "/var/lib/mediachain")
            },
            VolumeMount {
                read_only: None,
                ..mount("tmp", "/tmp")
            },
        ]),
        ..Container::default()
    }
}

fn volumes(valid: &Valid, mounted: &[Mounted]) -> Vec<Volume> {
    let mp = &valid.resource;
    let sources = mounted
        .iter()
        .map(|id| {
            let dir = naming::pod(mp, id.ordinal);
            VolumeProjection {
                secret: Some(SecretProjection {
                    name: id.secret.clone(),
                    optional: Some(true),
                    items: Some(
                        [identity::PEER_KEY, identity::PEER_CHAIN]
                            .into_iter()
                            .map(|key| KeyToPath {
                                key: key.into(),
                                path: format!("{dir}/{key}"),
                                mode: Some(0o400),
                            })
                            .collect(),
                    ),
                }),
                ..VolumeProjection::default()
            }
        })
        .collect();
    vec![
        Volume {
            name: "identity".into(),
            projected: Some(ProjectedVolumeSource {
                default_mode: Some(0o400),
                sources: Some(sources),
            }),
            ..Volume::default()
        },
        Volume {
            name: "trust".into(),
            // The public parts only, from a ConfigMap the resource owns: no pod references the
            // principal Secret, so no kubelet may read the principal key.
            config_map: Some(ConfigMapVolumeSource {
                name: naming::trust_config_map(mp),
                default_mode: Some(0o444),
                ..ConfigMapVolumeSource::default()
            }),
            ..Volume::default()
        },
        Volume {
            name: "seeds".into(),
            config_map: Some(ConfigMapVolumeSource {
                name: naming::seeds_config_map(&mp.spec.network),
                ..ConfigMapVolumeSource::default()
            }),
            ..Volume::default()
        },
        Volume {
            name: "tmp".into(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Volume::default()
        },
    ]
}

fn pod_template(
    valid: &Valid,
    mounted: &[Mounted],
    settings: &Settings,
) -> Result<PodTemplateSpec> {
    let mp = &valid.resource;
    let selector = naming::selector_labels(mp);
    let mut labels = selector.clone();
    labels.insert(naming::NETWORK_LABEL.into(), mp.spec.network.clone());
    let template = PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(labels),
            ..ObjectMeta::default()
        }),
        spec: Some(PodSpec {
            automount_service_account_token: Some(false),
            enable_service_links: Some(false),
            termination_grace_period_seconds: Some(30),
            security_context: Some(PodSecurityContext {
                run_as_non_root: Some(true),
                run_as_user: Some(PEER_UID),
                run_as_group: Some(PEER_UID),
                fs_group: Some(PEER_UID),
                seccomp_profile: Some(SeccompProfile {
                    type_: "RuntimeDefault".into(),
                    ..SeccompProfile::default()
                }),
                ..PodSecurityContext::default()
            }),
            containers: vec![peer_container(valid, settings)],
            volumes: Some(volumes(valid, mounted)),
            ..PodSpec::default()
        }),
    };
    let mut template = template;
    if let (Some(meta), Some(pod)) = (template.metadata.as_mut(), template.spec.as_mut()) {
        super::placement::apply(mp, meta, pod)?;
    }
    let Some(patch) = &mp.spec.pod_overrides else {
        return Ok(template);
    };
    let build_err = |detail: String| Error::Build {
        what: "the pod template with spec.podOverrides".into(),
        detail,
    };
    let mut value = serde_json::to_value(&template).map_err(|e| build_err(e.to_string()))?;
    overrides::merge(&mut value, patch);
    serde_json::from_value(value).map_err(|e| build_err(e.to_string()))
}

fn statefulset(
    valid: &Valid,
    owner: &OwnerReference,
    replicas: i32,
    mounted: &[Mounted],
    settings: &Settings,
) -> Result<StatefulSet> {
    let mp = &valid.resource;
    let storage = &mp.spec.storage;
    let claim = PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some(DATA_VOLUME.into()),
            labels: Some(naming::selector_labels(mp)),
            ..ObjectMeta::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            storage_class_name: storage.storage_class_name.clone(),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([(
                    "storage".to_string(),
                    Quantity(storage.size.clone()),
                )])),
                ..VolumeResourceRequirements::default()
            }),
            ..PersistentVolumeClaimSpec::default()
        }),
        ..PersistentVolumeClaim::default()
    };
    Ok(StatefulSet {
        metadata: meta(valid, naming::workload(mp), owner),
        spec: Some(StatefulSetSpec {
            replicas: Some(replicas),
            service_name: Some(naming::headless_service(mp)),
            selector: LabelSelector {
                match_labels: Some(naming::selector_labels(mp)),
                ..LabelSelector::default()
            },
            // Peers start together: a peer is ready only once admitted to the overlay, so
            // OrderedReady would wait for the first peer forever.
            pod_management_policy: Some("Parallel".into()),
            update_strategy: Some(StatefulSetUpdateStrategy {
                type_: Some("RollingUpdate".into()),
                ..StatefulSetUpdateStrategy::default()
            }),
            persistent_volume_claim_retention_policy: Some(
                StatefulSetPersistentVolumeClaimRetentionPolicy {
                    when_deleted: Some(storage.retention.when_deleted.as_str().into()),
                    when_scaled: Some(storage.retention.when_scaled.as_str().into()),
                },
            ),
            revision_history_limit: Some(5),
            template: pod_template(valid, mounted, settings)?,
            volume_claim_templates: Some(vec![claim]),
            ..StatefulSetSpec::default()
        }),
        ..StatefulSet::default()
    })
}
