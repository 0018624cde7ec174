//! Step 1: read what a `MediachainPeer` points to. Reads only; never writes.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, Service};
use kube::api::ListParams;
use kube::{Api, Client, ResourceExt};

use crate::crd::{KeyCustody, MediachainPeer};
use crate::naming;
use crate::{Error, Result};

/// What the build step needs to know of one existing pod.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodState {
    /// Creation time, Unix seconds (a pod created before its certificate was issued runs the
    /// old one).
    pub created: u64,
    /// Whether its `Ready` condition is `True` (and it is not being deleted).
    pub ready: bool,
    /// When its peer container last started, Unix seconds (`None`: not running).
    pub peer_started: Option<u64>,
    /// The StatefulSet revision it runs (label `controller-revision-hash`).
    pub revision: Option<String>,
}

impl PodState {
    /// The state of `pod`.
    pub fn of(pod: &Pod) -> Self {
        let created = pod
            .metadata
            .creation_timestamp
            .as_ref()
            .and_then(|t| u64::try_from(t.0.timestamp()).ok())
            .unwrap_or(0);
        let ready = pod.metadata.deletion_timestamp.is_none()
            && pod
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        let peer_started = pod
            .status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .and_then(|c| c.iter().find(|c| c.name == super::workload::CONTAINER))
            .and_then(|c| c.state.as_ref()?.running.as_ref()?.started_at.as_ref())
            .and_then(|t| u64::try_from(t.0.timestamp()).ok());
        Self {
            created,
            ready,
            peer_started,
            revision: pod.labels().get("controller-revision-hash").cloned(),
        }
    }
}

/// Everything the later steps need from the cluster besides the resource itself.
#[derive(Debug, Clone, Default)]
pub struct Found {
    /// The principal Secret, or `None` when it does not exist.
    pub principal: Option<Secret>,
    /// The retiring principal's Secret (`spec.trust.retiringPrincipalSecretName`), unless it
    /// does not exist or its rotation is complete (then it is not read).
    pub retiring_principal: Option<Secret>,
    /// This resource's existing identity Secrets, by name.
    pub identities: BTreeMap<String, Secret>,
    /// Every MediachainPeer of the same network in the namespace (this one included).
    pub network_members: Vec<MediachainPeer>,
    /// Every MediachainPeer of the namespace (for name collisions).
    pub namespace_members: Vec<MediachainPeer>,
    /// This resource's pods that exist (in any phase), by name.
    pub pods: BTreeMap<String, PodState>,
    /// The peers' chains (`keyCustody: Pod`), if the ConfigMap exists.
    pub chains: Option<ConfigMap>,
    /// The key requests the resource's pods published (`keyCustody: Pod`), by pod name.
    pub key_requests: BTreeMap<String, super::pod_identity::Request>,
    /// The per-peer overlay Services of the resource (`spec.exposure`), by name.
    pub peer_services: BTreeMap<String, Service>,
    /// The advertised-address ConfigMap `R-exposure`, if it exists.
    pub exposure: Option<ConfigMap>,
    /// The IP of the node each scheduled pod runs on, by pod name.
    pub host_ips: BTreeMap<String, String>,
    /// The ConfigMap named by `spec.networkParameters`, if set and present.
    pub network_params: Option<ConfigMap>,
    /// The resource's StatefulSet as it is now (a scale-down proceeds in steps from it).
    pub statefulset: Option<StatefulSet>,
    /// Finished runs of the backup CronJob whose pods still exist (only with `spec.backup`).
    pub backup_runs: Vec<super::backup::Run>,
}

/// Reads the principal Secrets, the identity Secrets, the network's members and the pods.
pub async fn dereference(client: &Client, mp: &MediachainPeer) -> Result<Found> {
    let ns = mp
        .namespace()
        .ok_or_else(|| Error::InvalidSpec("MediachainPeer has no namespace".into()))?;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let principal_name = &mp.spec.trust.principal_secret_name;
    let principal = if principal_name.is_empty() {
        None
    } else {
        secrets
            .get_opt(principal_name)
            .await
            .map_err(Error::kube(format!("reading Secret {ns}/{principal_name}")))?
    };
    let retiring_principal = match &mp.spec.trust.retiring_principal_secret_name {
        Some(name) if !super::rotation::retired_from(mp, name) => secrets
            .get_opt(name)
            .await
            .map_err(Error::kube(format!("reading Secret {ns}/{name}")))?,
        _ => None,
    };

    let selector = naming::selector_string(mp);
    // Under `keyCustody: Pod` no Secret holds a peer key: none is read.
    let identities = if mp.spec.trust.key_custody == KeyCustody::Operator {
        secrets
            .list(&ListParams::default().labels(&format!("{selector},{}", naming::ORDINAL_LABEL)))
            .await
            .map_err(Error::kube(format!("listing identity Secrets in {ns}")))?
            .items
            .into_iter()
            .map(|s| (s.name_any(), s))
            .collect()
    } else {
        BTreeMap::new()
    };

    let peers: Api<MediachainPeer> = Api::namespaced(client.clone(), &ns);
    let namespace_members = peers
        .list(&ListParams::default())
        .await
        .map_err(Error::kube(format!("listing MediachainPeers in {ns}")))?
        .items;
    let network_members = namespace_members
        .iter()
        .filter(|other| other.spec.network == mp.spec.network)
        .cloned()
        .collect();

    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let listed = pods
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(Error::kube(format!("listing pods in {ns}")))?
        .items;
    let peer_pods = listed
        .iter()
        .map(|p| (p.name_any(), PodState::of(p)))
        .collect();
    let host_ips = listed
        .iter()
        .filter_map(|p| Some((p.name_any(), p.status.as_ref()?.host_ip.clone()?)))
        .collect();
    let services: Api<Service> = Api::namespaced(client.clone(), &ns);
    let peer_services = services
        .list(&ListParams::default().labels(&format!(
            "{}={}",
            super::exposure::EXPOSED_LABEL,
            naming::workload(mp)
        )))
        .await
        .map_err(Error::kube(format!("listing per-peer Services in {ns}")))?
        .items
        .into_iter()
        .map(|s| (s.name_any(), s))
        .collect();
    let exposure = if mp.spec.exposure.is_some() {
        let name = naming::exposure_config_map(mp);
        Api::<ConfigMap>::namespaced(client.clone(), &ns)
            .get_opt(&name)
            .await
            .map_err(Error::kube(format!("reading ConfigMap {ns}/{name}")))?
    } else {
        None
    };
    let pod_custody = mp.spec.trust.key_custody == KeyCustody::Pod;
    let key_requests = listed
        .iter()
        .filter(|_| pod_custody)
        .filter_map(|p| Some((p.name_any(), super::pod_identity::request(mp, p)?)))
        .collect();
    let chains = if pod_custody {
        let name = naming::chains_config_map(mp);
        Api::<ConfigMap>::namespaced(client.clone(), &ns)
            .get_opt(&name)
            .await
            .map_err(Error::kube(format!("reading ConfigMap {ns}/{name}")))?
    } else {
        None
    };

    let backup_runs = if mp.spec.backup.is_some() {
        let selector = super::backup::pod_selector(mp);
        let listed = pods
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(Error::kube(format!("listing backup pods in {ns}")))?;
        super::backup::runs(&listed.items)
    } else {
        Vec::new()
    };

    let statefulsets: Api<StatefulSet> = Api::namespaced(client.clone(), &ns);
    let sts_name = naming::workload(mp);
    let statefulset = statefulsets
        .get_opt(&sts_name)
        .await
        .map_err(Error::kube(format!("reading StatefulSet {ns}/{sts_name}")))?;

    let network_params = match &mp.spec.network_parameters {
        Some(spec) => Api::<ConfigMap>::namespaced(client.clone(), &ns)
            .get_opt(&spec.config_map_name)
            .await
            .map_err(Error::kube(format!(
                "reading ConfigMap {ns}/{}",
                spec.config_map_name
            )))?,
        None => None,
    };

    Ok(Found {
        peer_services,
        exposure,
        host_ips,
        chains,
        key_requests,
        backup_runs,
        network_params,
        statefulset,
        principal,
        retiring_principal,
        identities,
        network_members,
        namespace_members,
        pods: peer_pods,
    })
}
