//! Per-peer exposure of the overlay to other clusters (`spec.exposure`, pure): one `NodePort` or
//! `LoadBalancer` Service per peer, the address each peer advertises derived from it, and this
//! cluster's external seeds for the other organisations.
//!
//! Each pod reads its advertised address from its own file of the ConfigMap `R-exposure`
//! (`<pod>.yaml`: `external-address: ...`, the peer's `--config` file, docs/peer-contract.md),
//! so one pod template serves every peer. An address is derived from:
//! - `LoadBalancer`: the Service's load-balancer ingress (IP or host name), port 4001;
//! - `NodePort`: `exposure.host` or the IP of the node that runs the pod, and the node port
//!   (`nodePortBase + ordinal`, or the one the cluster assigned).
//!
//! Until it is known the file holds the in-cluster name; once external, an address is kept
//! (with `NodePort` every node forwards the port, so a node IP stays valid after the pod
//! moves). A pod started before its address changed is restarted (see `build::restarts`).

use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::{ConfigMap, Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;

use super::build::meta;
use super::dereference::Found;
use super::validate::Valid;
use super::Settings;
use crate::crd::{ExposureSpec, MediachainPeer};
use crate::naming::{self, P2P_PORT};

/// Where `R-exposure` is mounted; a pod's file is `<dir>/<pod>.yaml`.
pub const EXPOSURE_DIR: &str = "/etc/mediachain/exposure";
/// Label of the per-peer Services (value: the resource's name), to list them.
pub const EXPOSED_LABEL: &str = "mediachain.io/exposed-peers-of";
/// The settings key of the advertised address in the peer's `--config` file.
const KEY: &str = "external-address";

/// The per-peer Services, addresses and file of a resource with `spec.exposure`.
#[derive(Debug, Clone)]
pub struct Plan {
    /// One Service per current peer, ordinal order.
    pub services: Vec<Service>,
    /// The ConfigMap `R-exposure`.
    pub config_map: ConfigMap,
    /// External addresses known, ordinal order (`status.externalSeeds`).
    pub external_seeds: Vec<String>,
    /// When each peer's address last changed (Unix seconds): a pod started before must restart.
    pub changed_at: BTreeMap<i32, u64>,
}

/// Highest node port of the default Service node-port range.
pub const MAX_NODE_PORT: i32 = 32767;

/// Checks `spec.exposure` for `replicas` peers.
pub fn check(exposure: &ExposureSpec, replicas: i32) -> Result<(), String> {
    if !["NodePort", "LoadBalancer"].contains(&exposure.type_.as_str()) {
        return Err(format!(
            "spec.exposure.type `{}` must be NodePort or LoadBalancer",
            exposure.type_
        ));
    }
    if let Some(base) = exposure.node_port_base {
        if base < 30000 || base + replicas - 1 > MAX_NODE_PORT {
            return Err(format!(
                "spec.exposure.nodePortBase {base}: the node ports {base}..{} of {replicas} peers must lie in 30000..{MAX_NODE_PORT}",
                base + replicas - 1
            ));
        }
    }
    if let Some(host) = &exposure.host {
        let dns = !host.is_empty()
            && host.len() <= 253
            && host.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            });
        if !dns && host.parse::<IpAddr>().is_err() {
            return Err(format!(
                "spec.exposure.host `{host}` is neither a DNS name nor an IP address"
            ));
        }
    }
    Ok(())
}

/// The annotation of `R-exposure` holding when a pod's address last changed.
pub fn changed_at_annotation(pod: &str) -> String {
    format!("address-at.mediachain.io/{pod}")
}

/// The in-cluster overlay address of peer `ordinal`.
pub fn internal_address(
    mp: &MediachainPeer,
    ordinal: i32,
    ns: &str,
    settings: &Settings,
) -> String {
    let dns = naming::pod_dns(mp, ordinal, ns, &settings.cluster_domain);
    format!("/dns4/{dns}/tcp/{P2P_PORT}")
}

/// A multiaddr of `host` (IP or DNS name) and `port`.
pub fn multiaddr(host: &str, port: i32) -> String {
    match host.parse::<IpAddr>() {
        Ok(IpAddr::V4(ip)) => format!("/ip4/{ip}/tcp/{port}"),
        Ok(IpAddr::V6(ip)) => format!("/ip6/{ip}/tcp/{port}"),
        Err(_) => format!("/dns4/{host}/tcp/{port}"),
    }
}

/// The Service exposing peer `ordinal`.
fn service(
    valid: &Valid,
    owner: &OwnerReference,
    exposure: &ExposureSpec,
    ordinal: i32,
) -> Service {
    let mp = &valid.resource;
    let pod = naming::pod(mp, ordinal);
    let mut metadata = meta(valid, naming::peer_service(mp, ordinal), owner);
    metadata
        .labels
        .get_or_insert_with(BTreeMap::new)
        .insert(EXPOSED_LABEL.into(), naming::workload(mp));
    if !exposure.annotations.is_empty() {
        metadata.annotations = Some(exposure.annotations.clone());
    }
    let node_port = exposure
        .node_port_base
        .filter(|_| exposure.type_ == "NodePort")
        .map(|base| base + ordinal);
    Service {
        metadata,
        spec: Some(ServiceSpec {
            type_: Some(exposure.type_.clone()),
            selector: Some(BTreeMap::from([(
                "statefulset.kubernetes.io/pod-name".to_string(),
                pod,
            )])),
            // Peers must be dialable before they are ready (admission needs the overlay).
            publish_not_ready_addresses: Some(true),
            ports: Some(vec![ServicePort {
                name: Some("p2p".into()),
                port: P2P_PORT,
                target_port: Some(IntOrString::String("p2p".into())),
                protocol: Some("TCP".into()),
                node_port,
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

/// The external address of peer `ordinal` as the cluster shows it now, if known.
fn observed(
    found: &Found,
    mp: &MediachainPeer,
    exposure: &ExposureSpec,
    ordinal: i32,
) -> Option<String> {
    let service = found.peer_services.get(&naming::peer_service(mp, ordinal));
    if exposure.type_ == "LoadBalancer" {
        let ingress = service?
            .status
            .as_ref()?
            .load_balancer
            .as_ref()?
            .ingress
            .as_ref()?
            .first()?;
        let host = ingress.ip.as_ref().or(ingress.hostname.as_ref())?;
        return Some(multiaddr(host, P2P_PORT));
    }
    let port = exposure
        .node_port_base
        .map(|base| base + ordinal)
        .or_else(|| service?.spec.as_ref()?.ports.as_ref()?.first()?.node_port)?;
    let host = match &exposure.host {
        Some(host) => host.clone(),
        None => found.host_ips.get(&naming::pod(mp, ordinal))?.clone(),
    };
    Some(multiaddr(&host, port))
}

fn file_address(text: &str) -> Option<String> {
    let prefix = format!("{KEY}: ");
    text.lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .map(|v| v.trim().to_string())
}

/// Plans the exposure of the first `replicas` peers (`None` without `spec.exposure`).
pub fn plan(
    valid: &Valid,
    owner: &OwnerReference,
    found: &Found,
    replicas: i32,
    settings: &Settings,
    now: u64,
) -> Option<Plan> {
    let mp = &valid.resource;
    let exposure = mp.spec.exposure.as_ref()?;
    let current = found.exposure.as_ref();
    let mut data = BTreeMap::new();
    let mut annotations = BTreeMap::new();
    let mut external_seeds = Vec::new();
    let mut changed_at = BTreeMap::new();
    for ordinal in 0..replicas {
        let pod = naming::pod(mp, ordinal);
        let internal = internal_address(mp, ordinal, &valid.namespace, settings);
        let previous = current
            .and_then(|c| c.data.as_ref()?.get(&format!("{pod}.yaml")).cloned())
            .and_then(|text| file_address(&text));
        let previous_external = previous.clone().filter(|a| *a != internal);
        let address = match (observed(found, mp, exposure, ordinal), previous_external) {
            // A LoadBalancer's address follows the Service; a node address is kept.
            (Some(seen), _) if exposure.type_ == "LoadBalancer" => seen,
            (_, Some(kept)) => kept,
            (Some(seen), None) => seen,
            (None, None) => internal.clone(),
        };
        let recorded = current
            .and_then(|c| c.annotations().get(&changed_at_annotation(&pod)).cloned())
            .and_then(|v| v.parse().ok());
        let since = match &previous {
            Some(previous) if *previous == address => recorded.unwrap_or(0),
            Some(_) => now,
            None => 0,
        };
        if address != internal {
            external_seeds.push(address.clone());
        }
        changed_at.insert(ordinal, since);
        annotations.insert(changed_at_annotation(&pod), since.to_string());
        data.insert(format!("{pod}.yaml"), format!("{KEY}: {address}\n"));
    }
    let mut metadata = meta(valid, naming::exposure_config_map(mp), owner);
    metadata.annotations = Some(annotations);
    Some(Plan {
        services: (0..replicas)
            .map(|ordinal| service(valid, owner, exposure, ordinal))
            .collect(),
        config_map: ConfigMap {
            metadata,
            data: Some(data),
            ..ConfigMap::default()
        },
        external_seeds,
        changed_at,
    })
}

/// Per-peer Services found that the plan no longer wants (scale-down, exposure removed).
pub fn obsolete_services(found: &Found, plan: Option<&Plan>) -> Vec<String> {
    found
        .peer_services
        .keys()
        .filter(|name| {
            !plan.is_some_and(|p| {
                p.services
                    .iter()
                    .any(|s| s.metadata.name.as_ref() == Some(name))
            })
        })
        .cloned()
        .collect()
}
