//! Step 5: the resource's status. [`compute`] and [`compute_failure`] are pure; [`write`] and
//! [`write_failure`] patch the status subresource only when something changed.
//!
//! Conditions keep their `lastTransitionTime` unless their status flips, so a steady resource
//! gets no status write at all (no churn, no self-triggered reconciles).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::chrono::{DateTime, Utc};
use kube::api::{Patch, PatchParams};
use kube::{Api, Client, Resource, ResourceExt};

use super::apply::Applied;
use crate::crd::{MediachainPeer, MediachainPeerStatus};
use crate::naming::FIELD_MANAGER;
use crate::{Error, Result};

/// Condition type: every peer passes its readiness probe.
pub const READY: &str = "Ready";
/// Condition type: a rollout or scale is under way.
pub const PROGRESSING: &str = "Progressing";
/// Condition type: the operator cannot realise the spec.
pub const DEGRADED: &str = "Degraded";
/// Condition type: the principal's own certificate expires within [`PRINCIPAL_WARNING_SECS`].
pub const PRINCIPAL_EXPIRING: &str = "PrincipalExpiring";
/// How long before the principal's certificate expires the operator warns (30 days): peer
/// certificates are capped at the principal's, so after it nothing can be renewed.
pub const PRINCIPAL_WARNING_SECS: u64 = 30 * 86_400;

/// What the pass observed besides the applied objects.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    /// The journal height just scraped from the peers (`None`: not scraped or no answer; the
    /// last known height is kept).
    pub height: Option<u64>,
    /// The finalised height just scraped (`None`: not scraped, or no peer exports it yet).
    pub finalized_height: Option<u64>,
    /// End of validity of the principal's certificate, Unix seconds.
    pub principal_not_after: u64,
    /// Finished backup runs (`spec.backup`).
    pub backup_runs: Vec<super::backup::Run>,
    /// Digest of the network parameters the peers run, if any.
    pub network_digest: Option<String>,
    /// The peer holding a rollout back for too long, and why (`Degraded/RolloutStuck`).
    pub rollout_stuck: Option<String>,
    /// The evidence every peer holds (`None`: not scraped, or some peer did not answer).
    pub evidence: Option<super::evidence::Culprits>,
    /// The principal rotation after this pass (`None`: none on record).
    pub rotation: Option<crate::crd::PrincipalRotationStatus>,
}

/// Whether the principal's certificate expires within [`PRINCIPAL_WARNING_SECS`] of `now`.
pub fn principal_expiring(principal_not_after: u64, now: u64) -> bool {
    principal_not_after.saturating_sub(now) < PRINCIPAL_WARNING_SECS
}

/// The status after a successful apply.
pub fn compute(
    mp: &MediachainPeer,
    applied: &Applied,
    observed: Observed,
    now: DateTime<Utc>,
) -> MediachainPeerStatus {
    let prev = mp.status.clone().unwrap_or_default();
    let generation = mp.meta().generation;
    let want = mp.spec.replicas;
    let sts = &applied.statefulset;
    let st = sts.status.clone().unwrap_or_default();
    let ready = st.ready_replicas.unwrap_or(0);
    let updated = st.updated_replicas.unwrap_or(0);
    let seen =
        st.observed_generation.is_some() && st.observed_generation >= sts.metadata.generation;
    let same_revision = st.update_revision.is_none() || st.update_revision == st.current_revision;
    let rolled_out = seen && st.replicas == want && updated == want && same_revision;

    let mut conditions = prev.conditions.clone();
    let ready_cond = if ready >= want {
        (
            true,
            "AllPeersReady",
            format!("{ready} of {want} peers ready"),
        )
    } else {
        (
            false,
            "PeersNotReady",
            format!("{ready} of {want} peers ready"),
        )
    };
    set(&mut conditions, READY, ready_cond, generation, now);
    let progressing = if rolled_out && ready >= want {
        (
            false,
            "RolloutComplete",
            format!("{want} peers at the current revision"),
        )
    } else if !seen {
        (
            true,
            "Reconciling",
            "the StatefulSet controller has not seen the latest spec yet".into(),
        )
    } else {
        (
            true,
            "RollingOut",
            format!(
                "{} running, {updated} updated, {ready} ready, {want} wanted",
                st.replicas
            ),
        )
    };
    set(&mut conditions, PROGRESSING, progressing, generation, now);
    let degraded = match &observed.rollout_stuck {
        Some(why) => (true, "RolloutStuck", why.clone()),
        None => (false, "AsExpected", "all owned objects are applied".into()),
    };
    set(&mut conditions, DEGRADED, degraded, generation, now);
    let expiring = principal_expiring(observed.principal_not_after, now_secs(now));
    let until = time(observed.principal_not_after).to_rfc3339();
    let principal = if expiring {
        (
            true,
            "ExpiresSoon",
            format!("the principal's certificate expires at {until}: issue a new one (peer certificates cannot outlive it)"),
        )
    } else {
        (
            false,
            "ValidLongEnough",
            format!("the principal's certificate is valid until {until}"),
        )
    };
    set(
        &mut conditions,
        PRINCIPAL_EXPIRING,
        principal,
        generation,
        now,
    );
    let last_backup = super::backup::update_status(
        mp,
        prev.last_backup.as_ref(),
        &observed.backup_runs,
        &mut conditions,
        now,
    );
    let evidence = super::evidence::update_status(
        &prev.evidence,
        observed.evidence.as_ref(),
        &applied.peers,
        &mut conditions,
        generation,
        now,
    );
    match &observed.rotation {
        Some(rotation) => set(
            &mut conditions,
            super::rotation::PRINCIPAL_ROTATED,
            super::rotation::condition(rotation),
            generation,
            now,
        ),
        None => conditions.retain(|c| c.type_ != super::rotation::PRINCIPAL_ROTATED),
    }
    let rotating = observed
        .rotation
        .as_ref()
        .is_some_and(|r| r.phase == crate::crd::RotationPhase::Rotating);
    let backup_failing = conditions
        .iter()
        .any(|c| c.type_ == super::backup::BACKUP_FAILING && c.status == "True");
    let state = if observed.rollout_stuck.is_some() {
        "RolloutStuck"
    } else if !evidence.is_empty() {
        "EvidenceRecorded"
    } else if rotating {
        "RotatingPrincipal"
    } else if expiring && ready >= want {
        "PrincipalExpiring"
    } else if backup_failing && ready >= want {
        "BackupFailing"
    } else if ready >= want {
        "AllPeersReady"
    } else {
        "PeersNotReady"
    };
    MediachainPeerStatus {
        observed_generation: generation,
        conditions,
        replicas: st.replicas,
        ready_replicas: ready,
        peers: applied.peers.clone(),
        revoked_peers: applied.revoked.clone(),
        network_parameters_digest: observed.network_digest,
        external_seeds: applied.external_seeds.clone(),
        journal_height: observed.height.or(prev.journal_height),
        finalized_height: observed.finalized_height.or(prev.finalized_height),
        evidence,
        certificates_expire: soonest_expiry(&applied.peers, now),
        last_backup,
        principal_rotation: observed.rotation,
        state: Some(state.into()),
        selector: Some(crate::naming::selector_string(mp)),
    }
}

/// The soonest end of validity of the peers' certificates, for `kubectl get` (`in 89d`,
/// `in 30h`, `in 45m`, `expired`): the coarser the farther, so it changes (and costs a status
/// write) at most once a day until the last two days.
pub fn soonest_expiry(
    peers: &[crate::crd::PeerIdentityStatus],
    now: DateTime<Utc>,
) -> Option<String> {
    let soonest = peers.iter().map(|p| p.certificate_not_after).min()?;
    let left = soonest.saturating_sub(now_secs(now));
    Some(match left {
        0 => "expired".to_string(),
        // Rounded up: a certificate issued for whole days reads the same until a day has
        // passed (rounded down, it would change a second after issuance: a second write).
        l if l >= 2 * 86_400 => format!("in {}d", l.div_ceil(86_400)),
        l if l >= 2 * 3600 => format!("in {}h", l.div_ceil(3600)),
        l => format!("in {}m", l.div_ceil(60)),
    })
}

/// The status of a paused resource (`spec.paused`): counts from the StatefulSet as it is,
/// `Progressing` false with reason `Paused`, everything else kept.
pub fn compute_paused(
    mp: &MediachainPeer,
    sts: Option<&k8s_openapi::api::apps::v1::StatefulSet>,
    now: DateTime<Utc>,
) -> MediachainPeerStatus {
    let prev = mp.status.clone().unwrap_or_default();
    let generation = mp.meta().generation;
    let st = sts.and_then(|s| s.status.clone()).unwrap_or_default();
    let mut conditions = prev.conditions.clone();
    set(
        &mut conditions,
        PROGRESSING,
        (
            false,
            "Paused",
            "spec.paused is set: the operator applies no change".into(),
        ),
        generation,
        now,
    );
    MediachainPeerStatus {
        observed_generation: generation,
        conditions,
        replicas: st.replicas,
        ready_replicas: st.ready_replicas.unwrap_or(0),
        state: Some("Paused".into()),
        selector: Some(crate::naming::selector_string(mp)),
        ..prev
    }
}

/// Writes the status of a paused resource.
pub async fn write_paused(
    client: &Client,
    mp: &MediachainPeer,
    sts: Option<&k8s_openapi::api::apps::v1::StatefulSet>,
    now: u64,
) -> Result<MediachainPeerStatus> {
    let status = compute_paused(mp, sts, time(now));
    patch(client, mp, &status).await?;
    Ok(status)
}

/// The status after a failed pass: `Degraded` with the error's category as reason. `Ready`
/// keeps what it said (running peers keep running); peers and counts are kept.
pub fn compute_failure(
    mp: &MediachainPeer,
    error: &Error,
    now: DateTime<Utc>,
) -> MediachainPeerStatus {
    let prev = mp.status.clone().unwrap_or_default();
    let generation = mp.meta().generation;
    let reason = error.category();
    let mut conditions = prev.conditions.clone();
    if !conditions.iter().any(|c| c.type_ == READY) {
        set(
            &mut conditions,
            READY,
            (false, reason, error.to_string()),
            generation,
            now,
        );
    }
    set(
        &mut conditions,
        PROGRESSING,
        (
            false,
            reason,
            "reconcile is blocked, see the Degraded condition".into(),
        ),
        generation,
        now,
    );
    set(
        &mut conditions,
        DEGRADED,
        (true, reason, error.to_string()),
        generation,
        now,
    );
    MediachainPeerStatus {
        observed_generation: generation,
        conditions,
        state: Some(reason.into()),
        selector: Some(crate::naming::selector_string(mp)),
        ..prev
    }
}

/// Sets condition `type_` to `(status, reason, message)`. `lastTransitionTime` is `now` only
/// when the condition is new or its status flips; otherwise it is kept.
pub fn set(
    conditions: &mut Vec<Condition>,
    type_: &str,
    (status, reason, message): (bool, &str, String),
    generation: Option<i64>,
    now: DateTime<Utc>,
) {
    let status = if status { "True" } else { "False" }.to_string();
    let transition = conditions
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or(Time(now));
    let condition = Condition {
        type_: type_.into(),
        status,
        reason: reason.into(),
        message,
        observed_generation: generation,
        last_transition_time: transition,
    };
    match conditions.iter_mut().find(|c| c.type_ == type_) {
        Some(existing) => *existing = condition,
        None => conditions.push(condition),
    }
}

/// Computes and writes the status after a successful apply.
pub async fn write(
    client: &Client,
    mp: &MediachainPeer,
    applied: &Applied,
    observed: Observed,
    now: u64,
) -> Result<MediachainPeerStatus> {
    let status = compute(mp, applied, observed, time(now));
    patch(client, mp, &status).await?;
    Ok(status)
}

/// Computes and writes the status after a failed pass.
pub async fn write_failure(
    client: &Client,
    mp: &MediachainPeer,
    error: &Error,
    now: u64,
) -> Result<()> {
    let status = compute_failure(mp, error, time(now));
    patch(client, mp, &status).await
}

fn now_secs(now: DateTime<Utc>) -> u64 {
    u64::try_from(now.timestamp()).unwrap_or(0)
}

/// The Kubernetes time of Unix seconds `now`.
pub fn time(now: u64) -> DateTime<Utc> {
    DateTime::from_timestamp(i64::try_from(now).unwrap_or(i64::MAX), 0).unwrap_or_default()
}

async fn patch(client: &Client, mp: &MediachainPeer, status: &MediachainPeerStatus) -> Result<()> {
    if mp.status.as_ref() == Some(status) {
        return Ok(());
    }
    let ns = mp.namespace().unwrap_or_default();
    let name = mp.name_any();
    let api: Api<MediachainPeer> = Api::namespaced(client.clone(), &ns);
    let body = serde_json::json!({
        "apiVersion": MediachainPeer::api_version(&()),
        "kind": MediachainPeer::kind(&()),
        "status": status,
    });
    api.patch_status(
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(body),
    )
    .await
    .map_err(Error::kube(format!(
        "writing the status of MediachainPeer {ns}/{name}"
    )))?;
    Ok(())
}
