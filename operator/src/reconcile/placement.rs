//! `spec.placement` applied to the generated pod template (pure): scheduling constraints merged
//! with the operator's defaults (anti-affinity across nodes, spread across zones), extra pod
//! labels, annotations, pull secrets and environment.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Affinity, EnvVar, PodAffinityTerm, PodAntiAffinity, PodSpec, TopologySpreadConstraint,
    WeightedPodAffinityTerm,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

use crate::crd::{MediachainPeer, PlacementSpec};
use crate::naming;
use crate::{Error, Result};

/// Topology key of the default spread.
pub const ZONE: &str = "topology.kubernetes.io/zone";
/// Topology key of the default anti-affinity.
pub const HOSTNAME: &str = "kubernetes.io/hostname";

fn selector(mp: &MediachainPeer) -> LabelSelector {
    LabelSelector {
        match_labels: Some(naming::selector_labels(mp)),
        ..LabelSelector::default()
    }
}

/// The default anti-affinity: peers of one resource preferably on distinct nodes.
pub fn default_anti_affinity(mp: &MediachainPeer) -> WeightedPodAffinityTerm {
    WeightedPodAffinityTerm {
        weight: 100,
        pod_affinity_term: PodAffinityTerm {
            topology_key: HOSTNAME.into(),
            label_selector: Some(selector(mp)),
            ..PodAffinityTerm::default()
        },
    }
}

/// The default spread: at most one peer more in one zone than in another, when possible.
pub fn default_spread(mp: &MediachainPeer) -> TopologySpreadConstraint {
    TopologySpreadConstraint {
        max_skew: 1,
        topology_key: ZONE.into(),
        when_unsatisfiable: "ScheduleAnyway".into(),
        label_selector: Some(selector(mp)),
        ..TopologySpreadConstraint::default()
    }
}

/// The affinity of the pods: the user's node and pod affinity, and the default anti-affinity
/// term with the user's anti-affinity terms added.
pub fn affinity(mp: &MediachainPeer, user: Option<&Affinity>) -> Affinity {
    let user = user.cloned().unwrap_or_default();
    let user_anti = user.pod_anti_affinity.unwrap_or_default();
    let mut preferred = vec![default_anti_affinity(mp)];
    preferred.extend(
        user_anti
            .preferred_during_scheduling_ignored_during_execution
            .unwrap_or_default(),
    );
    Affinity {
        node_affinity: user.node_affinity,
        pod_affinity: user.pod_affinity,
        pod_anti_affinity: Some(PodAntiAffinity {
            preferred_during_scheduling_ignored_during_execution: Some(preferred),
            required_during_scheduling_ignored_during_execution: user_anti
                .required_during_scheduling_ignored_during_execution,
        }),
    }
}

/// Applies `mp.spec.placement` to the pod's metadata and spec (container 0 is the peer).
pub fn apply(mp: &MediachainPeer, meta: &mut ObjectMeta, pod: &mut PodSpec) -> Result<()> {
    let p: &PlacementSpec = &mp.spec.placement;
    let mut labels = p.pod_labels.clone();
    labels.extend(meta.labels.take().unwrap_or_default());
    meta.labels = Some(labels);
    if !p.pod_annotations.is_empty() {
        let mut annotations: BTreeMap<String, String> = meta.annotations.take().unwrap_or_default();
        annotations.extend(p.pod_annotations.clone());
        meta.annotations = Some(annotations);
    }
    if !p.node_selector.is_empty() {
        pod.node_selector = Some(p.node_selector.clone());
    }
    if !p.tolerations.is_empty() {
        pod.tolerations = Some(p.tolerations.clone());
    }
    pod.affinity = Some(affinity(mp, p.affinity.as_ref()));
    pod.topology_spread_constraints = match &p.topology_spread_constraints {
        None => Some(vec![default_spread(mp)]),
        Some(list) if list.is_empty() => None,
        Some(list) => Some(list.clone()),
    };
    pod.priority_class_name.clone_from(&p.priority_class_name);
    if !p.image_pull_secrets.is_empty() {
        pod.image_pull_secrets = Some(p.image_pull_secrets.clone());
    }
    if let Some(container) = pod.containers.first_mut() {
        let env = container.env.get_or_insert_with(Vec::new);
        for extra in &p.env {
            if env.iter().any(|e: &EnvVar| e.name == extra.name) {
                return Err(Error::InvalidSpec(format!(
                    "spec.placement.env: `{}` is set by the operator",
                    extra.name
                )));
            }
            env.push(extra.clone());
        }
    }
    Ok(())
}
