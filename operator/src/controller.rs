//! The controller: watches, the `reconcile` / `error_policy` pair, events and metrics.
//!
//! Only spec changes (a new `metadata.generation` or a new object) of a MediachainPeer trigger a
//! reconcile: the operator's own status writes do not, so observing the peers can never feed
//! back into reconciles.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeSet, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{Pod, Secret, Service};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::{metadata_watcher, watcher, Controller, WatchStreamExt};
use kube::{Api, Client, Resource, ResourceExt};
use tracing::{field, info, instrument, warn, Span};

pub use crate::leader::Leadership;

use crate::crd::MediachainPeer;
use crate::metrics::{Metrics, PeerLabels, ResourceLabels};
use crate::reconcile::{self, identity::ChangeKind, status, Settings};
use crate::{Error, Result};

/// Requeue interval of a healthy resource: certificates are checked for renewal and the
/// status refreshed at least this often.
pub const RESYNC: Duration = Duration::from_secs(300);
/// Delay before the next pass when an object changed during one ([`Error::Changed`]).
pub const CHANGED_RETRY: Duration = Duration::from_secs(1);
/// First retry delay after a failure; doubles per consecutive failure up to [`MAX_BACKOFF`].
pub const MIN_BACKOFF: Duration = Duration::from_secs(5);
/// Longest retry delay.
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// Shared state of reconciles.
pub struct Context {
    /// The API client.
    pub client: Client,
    /// Publishes Events (one recorder, so that repeated events are aggregated into series).
    pub recorder: Recorder,
    /// Where the controller watches: one namespace, or all when `None`.
    pub namespace: Option<String>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Settings shaping built objects.
    pub settings: Settings,
    /// Consecutive failures per resource, for the exponential backoff.
    failures: Mutex<HashMap<ObjectRef<MediachainPeer>, u32>>,
    /// Peers with a certificate-expiry gauge, per resource, to drop gauges of removed peers.
    gauged: Mutex<HashMap<ObjectRef<MediachainPeer>, BTreeSet<String>>>,
    /// When each resource's peers were last scraped for the journal height.
    scraped: Mutex<HashMap<ObjectRef<MediachainPeer>, Instant>>,
}

impl Context {
    /// A context for `client`, watching all namespaces.
    pub fn new(client: Client, metrics: Arc<Metrics>, settings: Settings) -> Self {
        let reporter = Reporter {
            controller: "mediachain-operator".into(),
            instance: std::env::var("POD_NAME").ok(),
        };
        Self {
            recorder: Recorder::new(client.clone(), reporter),
            namespace: None,
            client,
            metrics,
            settings,
            failures: Mutex::new(HashMap::new()),
            gauged: Mutex::new(HashMap::new()),
            scraped: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `key`'s peers may be scraped now (at most once per `settings.height_refresh`);
    /// if so, records the scrape.
    fn scrape_due(&self, key: &ObjectRef<MediachainPeer>) -> bool {
        let Ok(mut scraped) = self.scraped.lock() else {
            return false;
        };
        let due = scraped
            .get(key)
            .is_none_or(|at| at.elapsed() >= self.settings.height_refresh);
        if due {
            scraped.insert(key.clone(), Instant::now());
        }
        due
    }

    /// Restricts the controller to one namespace (`None`: all namespaces).
    pub fn with_namespace(mut self, namespace: Option<String>) -> Self {
        self.namespace = namespace;
        self
    }

    fn api<K>(&self) -> Api<K>
    where
        K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
    {
        match &self.namespace {
            Some(ns) => Api::namespaced(self.client.clone(), ns),
            None => Api::all(self.client.clone()),
        }
    }

    /// Sets the certificate-expiry gauges of `mp`'s peers and drops those of removed peers.
    fn record_expiry(&self, mp: &MediachainPeer, peers: &[crate::crd::PeerIdentityStatus]) {
        let labels = |peer: &str| PeerLabels {
            namespace: mp.namespace().unwrap_or_default(),
            name: mp.name_any(),
            peer: peer.to_string(),
        };
        let current: BTreeSet<String> = peers.iter().map(|p| p.name.clone()).collect();
        if let Ok(mut gauged) = self.gauged.lock() {
            let previous = gauged.insert(ObjectRef::from_obj(mp), current.clone());
            for gone in previous.unwrap_or_default().difference(&current) {
                self.metrics.certificate_expiry.remove(&labels(gone));
            }
        }
        for peer in peers {
            let expiry = i64::try_from(peer.certificate_not_after).unwrap_or(i64::MAX);
            self.metrics
                .certificate_expiry
                .get_or_create(&labels(&peer.name))
                .set(expiry);
        }
    }

    /// Sets the principal-expiry gauge of `mp`.
    fn record_principal_expiry(&self, mp: &MediachainPeer, not_after: u64) {
        let labels = ResourceLabels {
            namespace: mp.namespace().unwrap_or_default(),
            name: mp.name_any(),
        };
        self.metrics
            .principal_expiry
            .get_or_create(&labels)
            .set(i64::try_from(not_after).unwrap_or(i64::MAX));
    }

    async fn publish(&self, mp: &MediachainPeer, type_: EventType, reason: &str, note: String) {
        let event = Event {
            type_,
            reason: reason.into(),
            note: Some(note.chars().take(1000).collect()),
            action: "Reconcile".into(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&event, &mp.object_ref(&())).await {
            warn!(error = %e, reason, "could not publish an event");
        }
    }

    /// Records a pass of `key` and returns the delay before the next one: after a failure the
    /// [`backoff_delay`] of the consecutive failures, after a success `healthy` (and the count
    /// starts again).
    pub fn backoff(
        &self,
        key: ObjectRef<MediachainPeer>,
        failed: bool,
        healthy: Duration,
    ) -> Duration {
        let Ok(mut failures) = self.failures.lock() else {
            return MAX_BACKOFF;
        };
        if !failed {
            failures.remove(&key);
            return healthy;
        }
        let n = failures.entry(key).or_insert(0);
        *n = n.saturating_add(1);
        backoff_delay(*n)
    }
}

/// Delay before the retry after `failures` consecutive failures (1 or more): [`MIN_BACKOFF`]
/// doubled per further failure, at most [`MAX_BACKOFF`].
pub fn backoff_delay(failures: u32) -> Duration {
    let factor = 1u32 << failures.saturating_sub(1).min(16);
    MIN_BACKOFF.saturating_mul(factor).min(MAX_BACKOFF)
}

/// One reconcile pass of `mp`: runs the pipeline, publishes Events for identity changes and
/// for every error category, updates metrics. Never panics on any object content.
#[instrument(skip_all, fields(namespace = field::Empty, name = field::Empty, generation = field::Empty))]
pub async fn reconcile(mp: Arc<MediachainPeer>, ctx: Arc<Context>) -> Result<Action> {
    let span = Span::current();
    span.record("namespace", mp.namespace().unwrap_or_default());
    span.record("name", mp.name_any());
    span.record("generation", mp.meta().generation.unwrap_or_default());
    if mp.meta().deletion_timestamp.is_some() {
        // Owner references let the garbage collector remove what the resource owns.
        return Ok(Action::await_change());
    }
    let started = Instant::now();
    let now = mediachain::time::now();
    let key = ObjectRef::from_obj(&*mp);
    let scrape = ctx.scrape_due(&key);
    match reconcile::run(&ctx.client, &mp, &ctx.settings, now, scrape).await {
        Ok(None) => Ok(Action::await_change()),
        Ok(Some(outcome)) => {
            ctx.metrics.observe(started.elapsed(), None);
            ctx.record_expiry(&mp, &outcome.status.peers);
            ctx.record_principal_expiry(&mp, outcome.principal_not_after);
            if status::principal_expiring(outcome.principal_not_after, now) {
                let until = status::time(outcome.principal_not_after).to_rfc3339();
                let note = format!(
                    "the principal's certificate (Secret {}) expires at {until}: issue a new one before then, peer certificates cannot outlive it",
                    mp.spec.trust.principal_secret_name
                );
                ctx.publish(&mp, EventType::Warning, "PrincipalExpiring", note)
                    .await;
            }
            let pod_custody = mp.spec.trust.key_custody == crate::crd::KeyCustody::Pod;
            for change in &outcome.identity_changes {
                ctx.metrics.identities_issued.inc();
                let (reason, verb) = match change.kind {
                    ChangeKind::Issued if pod_custody => (
                        "IdentityIssued",
                        "certified the key the pod made (its verified request)",
                    ),
                    ChangeKind::Revoked if pod_custody => (
                        "IdentityRevoked",
                        "certified the new key the pod made (the previous key is revoked)",
                    ),
                    ChangeKind::Issued => ("IdentityIssued", "issued a new key and certificate"),
                    ChangeKind::Renewed => ("CertificateRenewed", "renewed the certificate"),
                    ChangeKind::Reissued => (
                        "CertificateReissued",
                        "re-issued the certificate (it did not verify against the current principal)",
                    ),
                    ChangeKind::Revoked => (
                        "IdentityRevoked",
                        "issued a new key and certificate (the previous key is revoked)",
                    ),
                };
                let note = format!("{}: {verb} for peer {}", change.secret, change.peer_id);
                info!(secret = %change.secret, peer_id = %change.peer_id, reason, "identity");
                ctx.publish(&mp, EventType::Normal, reason, note).await;
            }
            for (pod, why) in &outcome.refused_requests {
                let note = format!("key request of pod {pod} refused: {why}");
                warn!(%pod, %why, "key request refused");
                ctx.publish(&mp, EventType::Warning, "KeyRequestRefused", note)
                    .await;
            }
            if let Some(why) = &outcome.rollout_stuck {
                warn!(%why, "rollout stuck");
                ctx.publish(&mp, EventType::Warning, "RolloutStuck", why.clone())
                    .await;
            }
            for item in &outcome.new_evidence {
                let note = format!(
                    "a peer holds evidence that member {} broke the protocol; read it at GET /v1/evidence and revoke the key if it is confirmed",
                    reconcile::evidence::describe(item)
                );
                warn!(culprit = %item.culprit, kind = %item.kind, "evidence recorded");
                ctx.publish(&mp, EventType::Warning, "EvidenceRecorded", note)
                    .await;
            }
            if let Some((reason, note)) = &outcome.rotation_event {
                info!(reason, %note, "principal rotation");
                ctx.publish(&mp, EventType::Normal, reason, note.clone())
                    .await;
            }
            if outcome.revocations_changed {
                let note = format!(
                    "the revocation lists changed ({} revocations known): the peers restart one at a time to load them",
                    outcome.revocations
                );
                ctx.publish(&mp, EventType::Normal, "RevocationsChanged", note)
                    .await;
            }
            for pod in &outcome.restarted {
                let note =
                    format!("restarted pod {pod}: its certificate was issued after it started");
                ctx.publish(&mp, EventType::Normal, "PeerRestarted", note)
                    .await;
            }
            for name in &outcome.deleted_identities {
                let note = format!("deleted identity Secret {name} of a removed peer");
                ctx.publish(&mp, EventType::Normal, "IdentityDeleted", note)
                    .await;
            }
            // Peers that run are observed again after the height refresh interval; otherwise
            // the resync interval bounds how late a certificate renewal can be.
            let healthy = if outcome.status.ready_replicas > 0 {
                ctx.settings.height_refresh.min(RESYNC)
            } else {
                RESYNC
            };
            Ok(Action::requeue(ctx.backoff(key, false, healthy)))
        }
        Err(error @ Error::Changed { .. }) => {
            // Not a failure: the watch brings the change, and the next pass reads it.
            ctx.metrics
                .observe(started.elapsed(), Some(error.category()));
            info!(%error, "pass abandoned");
            Ok(Action::requeue(CHANGED_RETRY))
        }
        Err(error) => {
            ctx.metrics
                .observe(started.elapsed(), Some(error.category()));
            warn!(category = error.category(), %error, "reconcile failed");
            ctx.publish(&mp, EventType::Warning, error.category(), error.to_string())
                .await;
            if let Err(e) = status::write_failure(&ctx.client, &mp, &error, now).await {
                warn!(error = %e, "could not write the failure status");
            }
            Err(error)
        }
    }
}

/// Retry policy: exponential backoff per resource, from [`MIN_BACKOFF`] to [`MAX_BACKOFF`].
pub fn error_policy(mp: Arc<MediachainPeer>, _error: &Error, ctx: Arc<Context>) -> Action {
    Action::requeue(ctx.backoff(ObjectRef::from_obj(&*mp), true, RESYNC))
}

/// The predicate of MediachainPeer events that trigger reconciles: a new object or a new
/// generation (spec change). Status writes, including the operator's own, change neither.
fn spec_version(mp: &MediachainPeer) -> Option<u64> {
    let mut hash = DefaultHasher::new();
    (mp.uid(), mp.meta().generation).hash(&mut hash);
    Some(hash.finish())
}

/// Label selecting every peer pod the operator runs.
const PEER_PODS: &str = "app.kubernetes.io/name=mediachain-peer";

/// The predicate of pod events that trigger reconciles: the pod (uid), its key request and
/// the node it runs on (a `NodePort` peer advertises its node's IP).
fn key_request_version(pod: &Pod) -> Option<u64> {
    let mut hash = DefaultHasher::new();
    let host_ip = pod.status.as_ref().and_then(|s| s.host_ip.as_ref());
    (
        pod.uid(),
        reconcile::pod_identity::request_message(pod),
        host_ip,
    )
        .hash(&mut hash);
    Some(hash.finish())
}

/// Runs the controller (over `ctx.namespace`, or all namespaces) until `shutdown` resolves.
pub async fn run(
    ctx: Arc<Context>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let peers: Api<MediachainPeer> = ctx.api();
    let config = watcher::Config::default().any_semantic();
    // Owned objects all carry the managed-by label: watch only those, not every Service and
    // StatefulSet of the cluster.
    let owned = config
        .clone()
        .labels("app.kubernetes.io/managed-by=mediachain-operator");
    let (store, writer) = reflector::store();
    let resources = watcher(peers.clone(), config.clone())
        .default_backoff()
        .reflect(writer)
        .applied_objects()
        .predicate_filter(spec_version);
    // Another member's creation, spec change, deletion request or removal changes this
    // member's seed list; its status writes do not.
    let seen: Arc<Mutex<HashMap<ObjectRef<MediachainPeer>, Option<u64>>>> = Arc::default();
    let members = watcher(peers, config.clone())
        .default_backoff()
        .filter_map(move |event| {
            let seen = seen.clone();
            async move {
                let mut seen = seen.lock().ok()?;
                match event {
                    Err(e) => Some(Err(e)),
                    Ok(watcher::Event::Delete(mp)) => {
                        seen.remove(&ObjectRef::from_obj(&mp));
                        Some(Ok(mp))
                    }
                    Ok(watcher::Event::Apply(mp) | watcher::Event::InitApply(mp)) => {
                        let version = spec_version(&mp)
                            .map(|v| v ^ u64::from(mp.meta().deletion_timestamp.is_some()));
                        let previous = seen.insert(ObjectRef::from_obj(&mp), version);
                        (previous != Some(version)).then_some(Ok(mp))
                    }
                    Ok(_) => None,
                }
            }
        });
    let controller = Controller::for_stream(resources, store.clone());
    let secrets_store = store.clone();
    controller
        .owns(ctx.api::<StatefulSet>(), owned.clone())
        .owns(ctx.api::<Service>(), owned.clone())
        .owns(ctx.api::<PodDisruptionBudget>(), owned.clone())
        .owns(ctx.api::<Ingress>(), owned.clone())
        .owns(ctx.api::<NetworkPolicy>(), owned.clone())
        .owns(ctx.api::<CronJob>(), owned.clone())
        // A backup job that finishes: its pod's report goes into the status at once.
        .watches(ctx.api::<Job>(), owned.clone(), |job| {
            let labels = job.labels();
            let backup = labels.get("app.kubernetes.io/name").map(String::as_str)
                == Some(reconcile::backup::BACKUP_APP);
            let owner = labels.get("app.kubernetes.io/instance").filter(|_| backup);
            owner.map(|name| ObjectRef::new(name).within(&job.namespace().unwrap_or_default()))
        })
        // Identity Secrets (owned) and principal Secrets (referenced by name, the retiring one
        // too until its rotation is complete), metadata only:
        // a change is a trigger, the data is read by the pass that needs it. All Secrets in
        // scope, since principal Secrets carry no label of ours (WATCH_NAMESPACE narrows it).
        .watches_stream(
            metadata_watcher(ctx.api::<Secret>(), config.clone())
                .default_backoff()
                .touched_objects(),
            move |secret| {
                let ns = secret.namespace();
                let name = secret.name_any();
                let owners: Vec<String> = secret
                    .owner_references()
                    .iter()
                    .filter(|o| o.kind == "MediachainPeer")
                    .map(|o| o.name.clone())
                    .collect();
                secrets_store
                    .state()
                    .into_iter()
                    .filter(|mp| mp.namespace() == ns)
                    .filter(|mp| {
                        reconcile::rotation::secret_names(mp).contains(&name)
                            || owners.contains(&mp.name_any())
                    })
                    .map(|mp| ObjectRef::from_obj(&*mp))
                    .collect::<Vec<_>>()
            },
        )
        // Key requests (`keyCustody: Pod`): a pod whose `peer-key` init container published a
        // new request triggers the pass that certifies it, as does a pod bound to a node (its
        // advertised `NodePort` address); other pod changes do not.
        .watches_stream(
            watcher(ctx.api::<Pod>(), config.clone().labels(PEER_PODS))
                .default_backoff()
                .touched_objects()
                .predicate_filter(key_request_version),
            |pod| {
                let name = pod.labels().get("app.kubernetes.io/instance")?.clone();
                Some(ObjectRef::new(&name).within(&pod.namespace().unwrap_or_default()))
            },
        )
        // A change to one member of a network changes the seed list of all its members.
        .watches_stream(members, move |changed| {
            store
                .state()
                .into_iter()
                .filter(|mp| {
                    mp.namespace() == changed.namespace() && mp.spec.network == changed.spec.network
                })
                .map(|mp| ObjectRef::from_obj(&*mp))
                .collect::<Vec<_>>()
        })
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(error = %e, "reconcile error");
            }
        })
        .await;
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn backoff_doubles_from_the_minimum_up_to_the_maximum() {
        let delays: Vec<u64> = (1..=9).map(|n| backoff_delay(n).as_secs()).collect();
        assert_eq!(delays, vec![5, 10, 20, 40, 80, 160, 300, 300, 300]);
        assert_eq!(backoff_delay(u32::MAX), MAX_BACKOFF);
        assert_eq!(backoff_delay(0), MIN_BACKOFF);
    }

    #[test]
    fn only_a_new_object_or_generation_passes_the_predicate() {
        let mut mp: MediachainPeer = serde_json::from_value(serde_json::json!({
            "apiVersion": "mediachain.io/v1alpha1", "kind": "MediachainPeer",
            "metadata": {"name": "a", "namespace": "ns", "uid": "u1", "generation": 1},
            "spec": {"network": "n", "trust": {"principalSecretName": "p"}},
        }))
        .unwrap();
        let first = spec_version(&mp);
        mp.status = Some(crate::crd::MediachainPeerStatus {
            journal_height: Some(42),
            ..Default::default()
        });
        mp.metadata.resource_version = Some("99".into());
        assert_eq!(spec_version(&mp), first, "a status write is ignored");
        mp.metadata.generation = Some(2);
        assert_ne!(spec_version(&mp), first, "a spec change passes");
        let second = spec_version(&mp);
        mp.metadata.uid = Some("u2".into());
        assert_ne!(spec_version(&mp), second, "a re-created object passes");
    }

    #[tokio::test]
    async fn a_success_resets_the_backoff_of_that_resource_only() {
        // No request is made: the client only needs a configuration.
        let config = kube::Config::new("http://127.0.0.1:9".parse().unwrap());
        let client = Client::try_from(config).unwrap();
        let ctx = Context::new(client, Arc::new(Metrics::default()), Settings::default());
        let a = ObjectRef::<MediachainPeer>::new("a").within("ns");
        let b = ObjectRef::<MediachainPeer>::new("b").within("ns");
        let healthy = Duration::from_secs(60);
        let failed = |key: &ObjectRef<MediachainPeer>| ctx.backoff(key.clone(), true, RESYNC);
        assert_eq!(failed(&a), Duration::from_secs(5));
        assert_eq!(failed(&a), Duration::from_secs(10));
        assert_eq!(failed(&b), Duration::from_secs(5), "counted per resource");
        assert_eq!(failed(&a), Duration::from_secs(20));
        assert_eq!(ctx.backoff(a.clone(), false, healthy), healthy);
        assert_eq!(failed(&a), Duration::from_secs(5), "a success starts again");
        assert_eq!(failed(&b), Duration::from_secs(10));
    }
}
