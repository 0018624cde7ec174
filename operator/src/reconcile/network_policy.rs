//! The optional NetworkPolicy of a resource (`spec.networkPolicy`, pure): ingress to its peers'
//! pods only on the overlay port from the network's peers in the namespace (and
//! `overlayFrom`), and on the HTTP port (client API, `/metrics`) from `apiFrom`, the monitoring
//! namespace, the operator's pods (they scrape `/metrics`) and the resource's own pods (the
//! backup job reads the client API). Kubelet probes come from the node and are not affected.

use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort,
    NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::build::meta;
use super::validate::Valid;
use super::Settings;
use crate::naming::{self, HTTP_PORT, P2P_PORT};

fn port(number: i32) -> NetworkPolicyPort {
    NetworkPolicyPort {
        port: Some(IntOrString::Int(number)),
        protocol: Some("TCP".into()),
        ..NetworkPolicyPort::default()
    }
}

fn pods(labels: BTreeMap<String, String>) -> NetworkPolicyPeer {
    NetworkPolicyPeer {
        pod_selector: Some(LabelSelector {
            match_labels: Some(labels),
            ..LabelSelector::default()
        }),
        ..NetworkPolicyPeer::default()
    }
}

fn namespace(name: &str) -> LabelSelector {
    LabelSelector {
        match_labels: Some(BTreeMap::from([(
            "kubernetes.io/metadata.name".to_string(),
            name.to_string(),
        )])),
        ..LabelSelector::default()
    }
}

/// The NetworkPolicy `R` (`None` without `spec.networkPolicy`: delete it if present).
pub fn network_policy(
    valid: &Valid,
    owner: &OwnerReference,
    settings: &Settings,
) -> Option<NetworkPolicy> {
    let mp = &valid.resource;
    let spec = mp.spec.network_policy.as_ref()?;
    let network_peers = pods(BTreeMap::from([(
        naming::NETWORK_LABEL.to_string(),
        mp.spec.network.clone(),
    )]));
    let mut overlay = vec![network_peers];
    overlay.extend(spec.overlay_from.iter().cloned());
    let own_pods = pods(BTreeMap::from([(
        "app.kubernetes.io/instance".to_string(),
        naming::workload(mp),
    )]));
    let mut http = vec![own_pods];
    http.extend(spec.api_from.iter().cloned());
    if let Some(ns) = &spec.metrics_namespace {
        http.push(NetworkPolicyPeer {
            namespace_selector: Some(namespace(ns)),
            ..NetworkPolicyPeer::default()
        });
    }
    if let Some(ns) = &settings.operator_namespace {
        http.push(NetworkPolicyPeer {
            namespace_selector: Some(namespace(ns)),
            pod_selector: Some(LabelSelector {
                match_labels: Some(BTreeMap::from([(
                    "app.kubernetes.io/name".to_string(),
                    "mediachain-operator".to_string(),
                )])),
                ..LabelSelector::default()
            }),
            ..NetworkPolicyPeer::default()
        });
    }
    Some(NetworkPolicy {
        metadata: meta(valid, naming::workload(mp), owner),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector {
                match_labels: Some(naming::selector_labels(mp)),
                ..LabelSelector::default()
            }),
            policy_types: Some(vec!["Ingress".into()]),
            ingress: Some(vec![
                NetworkPolicyIngressRule {
                    ports: Some(vec![port(P2P_PORT)]),
                    from: Some(overlay),
                },
                NetworkPolicyIngressRule {
                    ports: Some(vec![port(HTTP_PORT)]),
                    from: Some(http),
                },
            ]),
            ..NetworkPolicySpec::default()
        }),
    })
}
