//! Peer-aware rollouts (pure): a change of the peers' pod template (image, settings, revocation
//! lists) reaches one peer at a time, and the next only once the restarted peer is ready again
//! and every other peer is too. The operator holds the StatefulSet's rolling-update `partition`
//! and lowers it by one ordinal per step, highest first; a peer that does not come back pauses
//! the rollout and is named in `Degraded/RolloutStuck`.
//!
//! A peer is ready only once it is admitted to the overlay and at the best height its peers
//! report (the peer's `/readyz`, docs/peer-contract.md), so "ready" here means "synced and
//! ready".

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use sha2::{Digest, Sha256};

use super::dereference::Found;
use crate::crd::MediachainPeer;
use crate::naming;

/// StatefulSet annotation: SHA-256 of the pod template the operator built.
pub const TEMPLATE_HASH_ANNOTATION: &str = "mediachain.io/template-hash";
/// StatefulSet annotation: when the rollout's partition was last lowered (Unix seconds).
pub const STEP_AT_ANNOTATION: &str = "mediachain.io/rollout-step-at";
/// Default time a restarted peer has to be ready again before the rollout is reported stuck.
pub const STUCK_AFTER_SECS: u64 = 600;

/// The rollout's next step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// The StatefulSet's `partition`: pods with an ordinal at or above it run the new template.
    pub partition: i32,
    /// When the partition was last lowered.
    pub step_at: u64,
    /// The peer holding the rollout back for longer than allowed, and why.
    pub stuck: Option<String>,
}

/// SHA-256 (hex) of a pod template.
pub fn template_hash(template: &PodTemplateSpec) -> String {
    let json = serde_json::to_vec(template).unwrap_or_default();
    hex::encode(Sha256::digest(json))
}

/// The StatefulSet's rolling-update partition (0 when none is set).
pub(crate) fn partition(sts: &StatefulSet) -> i32 {
    sts.spec
        .as_ref()
        .and_then(|s| {
            s.update_strategy
                .as_ref()?
                .rolling_update
                .as_ref()?
                .partition
        })
        .unwrap_or(0)
}

fn annotation<'a>(sts: &'a StatefulSet, key: &str) -> Option<&'a String> {
    sts.metadata.annotations.as_ref()?.get(key)
}

/// The next step of the rollout of `desired_hash` over `replicas` peers, `now` Unix seconds.
pub fn plan(
    mp: &MediachainPeer,
    found: &Found,
    desired_hash: &str,
    replicas: i32,
    now: u64,
    stuck_after: u64,
) -> Step {
    let Some(sts) = &found.statefulset else {
        // A new StatefulSet: every pod starts with the template; no step was taken.
        return Step {
            partition: 0,
            step_at: 0,
            stuck: None,
        };
    };
    let found_hash = annotation(sts, TEMPLATE_HASH_ANNOTATION);
    let found_partition = partition(sts);
    let step_at = annotation(sts, STEP_AT_ANNOTATION)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    if found_hash.map(String::as_str) != Some(desired_hash) {
        // A new template: the peers that exist keep theirs until the next pass takes the first
        // step, but ordinals added by a scale-up in the same pass start on it: the old template
        // may lack what they need (under `keyCustody: Operator` it mounts no identity for them).
        let existing = sts.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0);
        return Step {
            partition: existing.clamp(0, replicas),
            step_at: now,
            stuck: None,
        };
    }
    let base = found_partition.clamp(0, replicas);
    let update_revision = sts.status.as_ref().and_then(|s| s.update_revision.as_ref());
    let peer_done = |ordinal: i32| {
        found.pods.get(&naming::pod(mp, ordinal)).is_some_and(|p| {
            p.ready && p.revision.is_some() && p.revision.as_ref() == update_revision
        })
    };
    let ready = |ordinal: i32| {
        found
            .pods
            .get(&naming::pod(mp, ordinal))
            .is_some_and(|p| p.ready)
    };
    let updated_done = (base..replicas).all(peer_done);
    let others_ready = (0..base).all(ready);
    if base > 0 && updated_done && others_ready {
        return Step {
            partition: base - 1,
            step_at: now,
            stuck: None,
        };
    }
    // Only a rollout under way can be stuck (not peers that never became ready).
    let rolling = sts
        .status
        .as_ref()
        .is_some_and(|s| s.update_revision.is_some() && s.update_revision != s.current_revision);
    let stuck = (base..replicas)
        .filter(|_| rolling)
        .find(|o| !peer_done(*o))
        .filter(|_| now.saturating_sub(step_at) > stuck_after)
        .map(|o| {
            format!(
                "peer {} is not ready at the new revision {} s after its update: the rollout waits",
                naming::pod(mp, o),
                now.saturating_sub(step_at)
            )
        });
    Step {
        partition: base,
        step_at,
        stuck,
    }
}

/// Sets `step`'s partition and the rollout annotations on the StatefulSet to apply.
pub fn apply_to(sts: &mut StatefulSet, step: &Step, hash: String) {
    let annotations = sts.metadata.annotations.get_or_insert_with(BTreeMap::new);
    annotations.insert(TEMPLATE_HASH_ANNOTATION.into(), hash);
    annotations.insert(STEP_AT_ANNOTATION.into(), step.step_at.to_string());
    if let Some(strategy) = sts.spec.as_mut().and_then(|s| s.update_strategy.as_mut()) {
        strategy.rolling_update = Some(
            k8s_openapi::api::apps::v1::RollingUpdateStatefulSetStrategy {
                partition: Some(step.partition),
                ..Default::default()
            },
        );
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use k8s_openapi::api::apps::v1::{
        RollingUpdateStatefulSetStrategy, StatefulSetSpec, StatefulSetUpdateStrategy,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;
    use crate::reconcile::tests::{fixture, NOW};

    /// A StatefulSet of `replicas` peers at template `hash`, rolled out (partition 0).
    fn found(replicas: i32, hash: &str) -> Found {
        Found {
            statefulset: Some(StatefulSet {
                metadata: ObjectMeta {
                    annotations: Some(BTreeMap::from([(
                        TEMPLATE_HASH_ANNOTATION.to_string(),
                        hash.to_string(),
                    )])),
                    ..ObjectMeta::default()
                },
                spec: Some(StatefulSetSpec {
                    replicas: Some(replicas),
                    update_strategy: Some(StatefulSetUpdateStrategy {
                        rolling_update: Some(RollingUpdateStatefulSetStrategy {
                            partition: Some(0),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    ..StatefulSetSpec::default()
                }),
                status: None,
            }),
            ..Found::default()
        }
    }

    #[test]
    fn a_new_template_spares_the_running_peers_but_not_the_ones_a_scale_up_adds() {
        let mp = fixture("basic");
        let partition = |found: &Found, replicas| plan(&mp, found, "new", replicas, NOW, 600);
        // A new StatefulSet: every pod starts on the template.
        assert_eq!(partition(&Found::default(), 3).partition, 0);
        // Same peers: none is updated until the next pass takes the first step.
        let step = partition(&found(3, "old"), 3);
        assert_eq!((step.partition, step.step_at), (3, NOW));
        // Scale-up in the same edit: the added ordinals 3 and 4 start on the new template.
        assert_eq!(partition(&found(3, "old"), 5).partition, 3);
        // Scale-down in the same edit: the peers that stay keep theirs for now.
        assert_eq!(partition(&found(4, "old"), 3).partition, 3);
        // The same template: a rolled-out StatefulSet stays at 0, also when scaled up.
        assert_eq!(partition(&found(3, "new"), 5).partition, 0);
    }
}
