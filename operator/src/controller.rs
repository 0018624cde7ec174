//! The controller: watches, the `reconcile` / `error_policy` pair, events, and leader election.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{watcher, Controller};
use kube::{Api, Client, Resource, ResourceExt};
use kube_leader_election::{LeaseLock, LeaseLockParams};
use tracing::{field, info, instrument, warn, Span};

use crate::crd::MediachainPeer;
use crate::metrics::{Metrics, PeerLabels};
use crate::reconcile::{self, identity::ChangeKind, status, Settings};
use crate::{Error, Result};

/// Requeue interval of a healthy resource: certificates are checked for renewal and the
/// status refreshed at least this often.
pub const RESYNC: Duration = Duration::from_secs(300);
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
        }
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

    fn backoff(&self, key: ObjectRef<MediachainPeer>, failed: bool) -> Duration {
        let Ok(mut failures) = self.failures.lock() else {
            return MAX_BACKOFF;
        };
        if !failed {
            failures.remove(&key);
            return RESYNC;
        }
        let n = failures.entry(key).or_insert(0);
        *n = n.saturating_add(1);
        let factor = 1u32 << (*n - 1).min(16);
        MIN_BACKOFF.saturating_mul(factor).min(MAX_BACKOFF)
    }
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
    match reconcile::run(&ctx.client, &mp, &ctx.settings, now).await {
        Ok(outcome) => {
            ctx.metrics.observe(started.elapsed(), None);
            ctx.record_expiry(&mp, &outcome.status.peers);
            for change in &outcome.identity_changes {
                ctx.metrics.identities_issued.inc();
                let (reason, verb) = match change.kind {
                    ChangeKind::Issued => ("IdentityIssued", "issued a new key and certificate"),
                    ChangeKind::Renewed => ("CertificateRenewed", "renewed the certificate"),
                    ChangeKind::Reissued => (
                        "CertificateReissued",
                        "re-issued the certificate (it did not verify against the current principal)",
                    ),
                };
                let note = format!("{}: {verb} for peer {}", change.secret, change.peer_id);
                info!(secret = %change.secret, peer_id = %change.peer_id, reason, "identity");
                ctx.publish(&mp, EventType::Normal, reason, note).await;
            }
            for name in &outcome.deleted_identities {
                let note = format!("deleted identity Secret {name} of a removed peer");
                ctx.publish(&mp, EventType::Normal, "IdentityDeleted", note)
                    .await;
            }
            Ok(Action::requeue(
                ctx.backoff(ObjectRef::from_obj(&*mp), false),
            ))
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
    Action::requeue(ctx.backoff(ObjectRef::from_obj(&*mp), true))
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
    let controller = Controller::new(peers.clone(), config.clone());
    let store = controller.store();
    let secrets_store = store.clone();
    controller
        .owns(ctx.api::<StatefulSet>(), owned.clone())
        .owns(ctx.api::<Service>(), owned.clone())
        .owns(ctx.api::<PodDisruptionBudget>(), owned.clone())
        .owns(ctx.api::<Ingress>(), owned.clone())
        // Identity Secrets (owned) and principal Secrets (referenced by name).
        // All Secrets: principal Secrets carry no label of ours (see README: WATCH_NAMESPACE
        // narrows this).
        .watches(ctx.api::<Secret>(), config.clone(), move |secret| {
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
                    mp.spec.trust.principal_secret_name == name || owners.contains(&mp.name_any())
                })
                .map(|mp| ObjectRef::from_obj(&*mp))
                .collect::<Vec<_>>()
        })
        // A change to one member of a network changes the seed list of all its members.
        .watches(peers, config, move |changed| {
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

/// Leader election over a coordination.k8s.io Lease.
pub struct Leadership {
    lock: LeaseLock,
    renew_every: Duration,
}

impl Leadership {
    /// A candidate `holder` for Lease `name` in `namespace`, with time-to-live `ttl`.
    pub fn new(client: Client, namespace: &str, name: &str, holder: &str, ttl: Duration) -> Self {
        Self {
            lock: LeaseLock::new(
                client,
                namespace,
                LeaseLockParams {
                    lease_name: name.into(),
                    holder_id: holder.into(),
                    lease_ttl: ttl,
                },
            ),
            renew_every: ttl / 3,
        }
    }

    /// Waits until this replica holds the Lease.
    pub async fn acquire(&self) {
        loop {
            match self.lock.try_acquire_or_renew().await {
                Ok(result) if result.acquired_lease => return,
                Ok(_) => {}
                Err(e) => warn!(error = %e, "leader election: could not read or take the Lease"),
            }
            tokio::time::sleep(self.renew_every).await;
        }
    }

    /// Renews the Lease until it is lost (another holder, or renewals failing for a whole
    /// TTL); returns then. The caller must stop acting as leader at once.
    pub async fn hold(&self) {
        let mut last_ok = Instant::now();
        loop {
            tokio::time::sleep(self.renew_every).await;
            match self.lock.try_acquire_or_renew().await {
                Ok(result) if result.acquired_lease => last_ok = Instant::now(),
                Ok(_) => return,
                Err(e) => {
                    warn!(error = %e, "leader election: renewal failed");
                    if last_ok.elapsed() > self.renew_every * 3 {
                        return;
                    }
                }
            }
        }
    }

    /// Releases the Lease so that another replica takes over without waiting for the TTL.
    pub async fn step_down(&self) {
        if let Err(e) = self.lock.step_down().await {
            warn!(error = %e, "leader election: could not release the Lease");
        }
    }
}
