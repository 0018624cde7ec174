//! Names and labels of the objects the operator creates, derived only from the resource.
//!
//! Seed lists and pod DNS names are computed from these, deterministically, so that every
//! reconcile (of any resource of a network) produces the same objects.

use std::collections::BTreeMap;

use crate::crd::MediachainPeer;

/// Field manager of every server-side apply.
pub const FIELD_MANAGER: &str = "mediachain-operator";
/// Label holding the network name.
pub const NETWORK_LABEL: &str = "mediachain.io/network";
/// Label of per-peer identity Secrets holding the pod name.
pub const PEER_LABEL: &str = "mediachain.io/peer";
/// Label of per-peer identity Secrets holding the ordinal.
pub const ORDINAL_LABEL: &str = "mediachain.io/ordinal";
/// Annotation of identity Secrets: the peer's PeerId.
pub const PEER_ID_ANNOTATION: &str = "mediachain.io/peer-id";
/// Annotation of identity Secrets: end of certificate validity (Unix seconds).
pub const NOT_AFTER_ANNOTATION: &str = "mediachain.io/certificate-not-after";
/// Annotation of identity Secrets: when the certificate was last issued (Unix seconds). A pod
/// created before it still runs the previous certificate and is restarted.
pub const ISSUED_AT_ANNOTATION: &str = "mediachain.io/certificate-issued-at";
/// Annotation of identity Secrets: PeerId of the peer's last key that was revoked and replaced.
pub const REVOKED_PEER_ID_ANNOTATION: &str = "mediachain.io/revoked-peer-id";
/// Annotation of identity Secrets: the reason of that revocation.
pub const REVOKED_REASON_ANNOTATION: &str = "mediachain.io/revoked-reason";
/// Annotation of identity Secrets: when that key was replaced (Unix seconds).
pub const REVOKED_AT_ANNOTATION: &str = "mediachain.io/revoked-replaced-at";
/// Pod template annotation: SHA-256 of the revocation lists the peers load at start. A new list
/// changes the template, so the StatefulSet restarts the peers one at a time to load it.
pub const REVOCATIONS_DIGEST_ANNOTATION: &str = "mediachain.io/revocations-digest";
/// Pod template annotation: PeerId of the principal that certifies the peers. A new principal
/// changes the template, so the peers restart one at a time with their re-issued certificates
/// (the peer-aware rollout).
pub const PRINCIPAL_ANNOTATION: &str = "mediachain.io/principal";
/// Label of the one Service per resource whose endpoints are every peer, ready or not (the
/// headless Service): what the chart's ServiceMonitor selects, so each peer is scraped once.
pub const METRICS_LABEL: &str = "mediachain.io/metrics";
/// Value of the managed-by label on everything the operator creates.
pub const MANAGER: &str = "mediachain-operator";
/// Overlay port.
pub const P2P_PORT: i32 = 4001;
/// HTTP port (client API, probes, metrics).
pub const HTTP_PORT: i32 = 8080;

/// Name of the StatefulSet, PodDisruptionBudget, client Service and Ingress.
pub fn workload(mp: &MediachainPeer) -> String {
    mp.metadata.name.clone().unwrap_or_default()
}

/// Name of the headless Service that gives pods stable DNS names.
pub fn headless_service(mp: &MediachainPeer) -> String {
    format!("{}-peers", workload(mp))
}

/// Pod name of a peer.
pub fn pod(mp: &MediachainPeer, ordinal: i32) -> String {
    format!("{}-{ordinal}", workload(mp))
}

/// Name of a peer's identity Secret (`<resource>-<ordinal>-identity`, per the peer contract).
pub fn identity_secret(mp: &MediachainPeer, ordinal: i32) -> String {
    format!("{}-{ordinal}-identity", workload(mp))
}

/// Name of the resource's public trust ConfigMap (`<resource>-trust`: root key, revocations).
pub fn trust_config_map(mp: &MediachainPeer) -> String {
    format!("{}-trust", workload(mp))
}

/// Name of the ConfigMap of the peers' certificate chains under `keyCustody: Pod`
/// (`<resource>-chains`, one `<pod>.chain` per peer; public).
pub fn chains_config_map(mp: &MediachainPeer) -> String {
    format!("{}-chains", workload(mp))
}

/// Name of the Service exposing one peer's overlay port (`spec.exposure`).
pub fn peer_service(mp: &MediachainPeer, ordinal: i32) -> String {
    format!("{}-p2p", pod(mp, ordinal))
}

/// Name of the ConfigMap of the peers' advertised addresses (`spec.exposure`;
/// `<resource>-exposure`, one `<pod>.yaml` per peer).
pub fn exposure_config_map(mp: &MediachainPeer) -> String {
    format!("{}-exposure", workload(mp))
}

/// Name of the network's seed-list ConfigMap (`<network>-seeds`).
pub fn seeds_config_map(network: &str) -> String {
    format!("{network}-seeds")
}

/// Stable DNS name of a peer's pod.
pub fn pod_dns(mp: &MediachainPeer, ordinal: i32, namespace: &str, cluster_domain: &str) -> String {
    format!(
        "{}.{}.{namespace}.svc.{cluster_domain}",
        pod(mp, ordinal),
        headless_service(mp)
    )
}

/// Labels selecting the pods of one resource (also set on every object it owns).
pub fn selector_labels(mp: &MediachainPeer) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".into(), "mediachain-peer".into()),
        ("app.kubernetes.io/instance".into(), workload(mp)),
    ])
}

/// Labels of every object the operator creates for a resource.
pub fn labels(mp: &MediachainPeer) -> BTreeMap<String, String> {
    let mut labels = selector_labels(mp);
    labels.insert(
        "app.kubernetes.io/managed-by".into(),
        "mediachain-operator".into(),
    );
    labels.insert(NETWORK_LABEL.into(), mp.spec.network.clone());
    labels
}

/// The pods' label selector as a string (`k=v,k=v`), for list calls and `status.selector`.
pub fn selector_string(mp: &MediachainPeer) -> String {
    selector_labels(mp)
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}
