//! The peers' workload (pure): the StatefulSet, its pod template (the peer container, its
//! environment, probes and volumes), placement and `spec.podOverrides` applied.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    StatefulSet, StatefulSetPersistentVolumeClaimRetentionPolicy, StatefulSetSpec,
    StatefulSetUpdateStrategy,
};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource, EnvVar,
    EnvVarSource, HTTPGetAction, KeyToPath, ObjectFieldSelector, PersistentVolumeClaim,
    PersistentVolumeClaimSpec, PodSecurityContext, PodSpec, PodTemplateSpec, Probe,
    ProjectedVolumeSource, SeccompProfile, SecretProjection, SecurityContext, Volume, VolumeMount,
    VolumeProjection, VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::build::{meta, Mounted};
use super::identity;
use super::validate::{Valid, REVOCATIONS};
use super::Settings;
use crate::crd::KeyCustody;
use crate::naming::{self, HTTP_PORT, P2P_PORT};
use crate::overrides;
use crate::peer_key;
use crate::{Error, Result};

/// UID and GID the peer runs as (any non-root id works, per the peer contract).
pub const PEER_UID: i64 = 10001;
/// Name of the peer container.
pub const CONTAINER: &str = "peer";
/// Name of the data volume claim template.
pub const DATA_VOLUME: &str = "data";

/// The restricted container security context every container the operator runs gets (no
/// privilege escalation, read-only root, non-root, no capabilities).
pub(super) fn container_security() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        read_only_root_filesystem: Some(true),
        run_as_non_root: Some(true),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".into()]),
            ..Capabilities::default()
        }),
        ..SecurityContext::default()
    }
}

/// The pod security context of every pod the operator runs: the peer's UID/GID, owning its
/// volumes, under the runtime's default seccomp profile.
pub(super) fn pod_security() -> PodSecurityContext {
    PodSecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(PEER_UID),
        run_as_group: Some(PEER_UID),
        fs_group: Some(PEER_UID),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".into(),
            ..SeccompProfile::default()
        }),
        ..PodSecurityContext::default()
    }
}

/// Whether the peers make their own keys (`trust.keyCustody: Pod`).
pub(super) fn pod_custody(valid: &Valid) -> bool {
    valid.resource.spec.trust.key_custody == KeyCustody::Pod
}

pub(super) fn env(name: &str, value: impl Into<String>) -> EnvVar {
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
        // With `spec.exposure` each pod reads its own advertised address from its file of
        // `R-exposure` (the peer's `--config` file; an env var would win over it).
        if spec.exposure.is_some() {
            env(
                "MEDIACHAIN_CONFIG",
                format!("{}/$(POD_NAME).yaml", super::exposure::EXPOSURE_DIR),
            )
        } else {
            env(
                "MEDIACHAIN_EXTERNAL_ADDRESS",
                format!(
                    "/dns4/$(POD_NAME).{}.{}.svc.{}/tcp/{P2P_PORT}",
                    naming::headless_service(mp),
                    valid.namespace,
                    settings.cluster_domain
                ),
            )
        },
        env(
            "MEDIACHAIN_TARGET_CONNECTIVITY",
            spec.connectivity.target_connectivity.to_string(),
        ),
        env("MEDIACHAIN_LOG_FORMAT", "json"),
    ];
    if pod_custody(valid) {
        env_vars.push(env("MEDIACHAIN_KEY", peer_key::KEY_PATH));
        env_vars.push(env(
            "MEDIACHAIN_CHAIN",
            format!("{}/$(POD_NAME).chain", peer_key::CHAINS_DIR),
        ));
    }
    env_vars.extend(super::proxies::env(mp, settings));
    if valid.network_params.is_some() {
        env_vars.push(env(
            "MEDIACHAIN_NETWORK_PARAMS",
            format!(
                "/etc/mediachain/trust/{}",
                super::public_trust::NETWORK_PARAMS
            ),
        ));
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
    let mut container = Container {
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
        security_context: Some(container_security()),
        volume_mounts: Some(vec![
            if pod_custody(valid) {
                // The key is on the data volume; the chains are public.
                mount("chains", peer_key::CHAINS_DIR)
            } else {
                // Each pod sees only its own identity: the projected volume holds one
                // directory per peer and the mount selects the pod's own by name.
                VolumeMount {
                    sub_path_expr: Some("$(POD_NAME)".into()),
                    ..mount("identity", "/etc/mediachain/identity")
                }
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
    };
    if spec.exposure.is_some() {
        if let Some(mounts) = container.volume_mounts.as_mut() {
            mounts.push(mount("exposure", super::exposure::EXPOSURE_DIR));
        }
    }
    container
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
    let identities = if pod_custody(valid) {
        Volume {
            name: "chains".into(),
            config_map: Some(ConfigMapVolumeSource {
                name: naming::chains_config_map(mp),
                default_mode: Some(0o444),
                ..ConfigMapVolumeSource::default()
            }),
            ..Volume::default()
        }
    } else {
        Volume {
            name: "identity".into(),
            projected: Some(ProjectedVolumeSource {
                default_mode: Some(0o400),
                sources: Some(sources),
            }),
            ..Volume::default()
        }
    };
    let exposure = Volume {
        name: "exposure".into(),
        config_map: Some(ConfigMapVolumeSource {
            name: naming::exposure_config_map(mp),
            ..ConfigMapVolumeSource::default()
        }),
        ..Volume::default()
    };
    let mut volumes = vec![
        identities,
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
    ];
    if mp.spec.exposure.is_some() {
        volumes.push(exposure);
    }
    volumes
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
            security_context: Some(pod_security()),
            init_containers: super::pod_identity::init_containers(valid, settings),
            containers: vec![peer_container(valid, settings)],
            volumes: Some(volumes(valid, mounted)),
            ..PodSpec::default()
        }),
    };
    let mut template = template;
    if let (Some(meta), Some(pod)) = (template.metadata.as_mut(), template.spec.as_mut()) {
        super::placement::apply(mp, meta, pod)?;
        let annotations = meta.annotations.get_or_insert_with(BTreeMap::new);
        if let Some(digest) = super::public_trust::revocations_digest(valid) {
            annotations.insert(naming::REVOCATIONS_DIGEST_ANNOTATION.into(), digest);
        }
        annotations.insert(
            naming::PRINCIPAL_ANNOTATION.into(),
            valid.principal.key.public().to_string(),
        );
    }
    if let Some(patch) = &mp.spec.pod_overrides {
        let build_err = |detail: String| Error::Build {
            what: "the pod template with spec.podOverrides".into(),
            detail,
        };
        let mut value = serde_json::to_value(&template).map_err(|e| build_err(e.to_string()))?;
        overrides::merge(&mut value, patch);
        template = serde_json::from_value(value).map_err(|e| build_err(e.to_string()))?;
    }
    // Last: the init container is the peer container as finally built (overrides included).
    if let Some(pod) = template.spec.as_mut() {
        super::bootstrap::add(mp, pod);
    }
    Ok(template)
}

pub(super) fn statefulset(
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
