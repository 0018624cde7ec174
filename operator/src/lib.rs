//! The Mediachain operator: runs `MediachainPeer` resources as StatefulSets of peers.
//!
//! Layout (kube-rs/controller-rs style, with stackable's reconcile pipeline):
//! - [`crd`]: the custom resource types (the `crdgen` binary prints their CRD);
//! - [`naming`]: names and labels of everything the operator creates;
//! - [`reconcile`]: one module per step — dereference -> validate (pure) -> build (pure) ->
//!   apply (the only writer) -> status;
//! - [`controller`]: the `kube` runtime Controller, its context and error policy;
//! - [`leader`]: leader election over a Lease;
//! - [`overrides`]: the pod-template escape hatch (`spec.podOverrides`);
//! - [`metrics`], [`telemetry`]: Prometheus metrics, the `/metrics` + `/healthz` server, tracing;
//! - [`testing`]: trust fixtures (root, principal, principal Secret) for the tests.

#![warn(missing_docs)]

pub mod controller;
pub mod crd;
pub mod leader;
pub mod metrics;
pub mod naming;
pub mod overrides;
pub mod peer_key;
pub mod reconcile;
pub mod telemetry;
pub mod testing;

/// Everything that can make a reconcile fail. Each variant has a [`Error::category`], which is
/// the reason of the Kubernetes Event published for it and the label of the failure metric.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The Secret named by `spec.trust.principalSecretName` does not exist.
    #[error("principal Secret {namespace}/{name} not found: create it with principal.key, principal.chain and root.pub")]
    MissingPrincipalSecret {
        /// Namespace.
        namespace: String,
        /// Secret name.
        name: String,
    },
    /// The principal Secret exists but its content is unusable.
    #[error("principal Secret {name}: {detail}")]
    InvalidPrincipal {
        /// Secret name.
        name: String,
        /// What is wrong.
        detail: String,
    },
    /// The spec cannot be realised.
    #[error("invalid spec: {0}")]
    InvalidSpec(String),
    /// An existing per-peer identity Secret holds no usable key. The operator never replaces a
    /// key by itself: the peer's identity would silently change.
    #[error("identity Secret {name}: {detail}; delete the Secret to have a new key issued")]
    CorruptIdentity {
        /// Secret name.
        name: String,
        /// What is wrong.
        detail: String,
    },
    /// A Kubernetes API call failed.
    #[error("{context}: {source}")]
    Kube {
        /// What was being done.
        context: String,
        /// The client error.
        #[source]
        source: Box<kube::Error>,
    },
    /// An object the resource would create exists and belongs to someone else: the operator
    /// never takes it over.
    #[error("{kind} {name} exists and is not managed by this MediachainPeer (owned by {owners}): delete or rename it, or give the resource another name")]
    NotOwned {
        /// Kind of the object.
        kind: String,
        /// `namespace/name`.
        name: String,
        /// Its owners, or "no owner".
        owners: String,
    },
    /// An object changed between the read of this pass and its write (an identity Secret
    /// deleted or replaced meanwhile): nothing stale is written, the next pass starts again
    /// from what is there.
    #[error("{kind} {name} changed during the pass; the next pass reads it again")]
    Changed {
        /// Kind of the object.
        kind: String,
        /// `namespace/name`.
        name: String,
    },
    /// The resource disagrees with its network's parameters or with another member of the
    /// network (docs/network-parameters.md): peers holding different parameters would refuse
    /// each other's blocks.
    #[error("network parameters: {0}")]
    NetworkMismatch(String),
    /// Building an object failed (a bug or an unusable override).
    #[error("building {what}: {detail}")]
    Build {
        /// Which object.
        what: String,
        /// What failed.
        detail: String,
    },
}

impl Error {
    /// Short PascalCase category: the Event reason and the metric label.
    pub fn category(&self) -> &'static str {
        match self {
            Error::MissingPrincipalSecret { .. } => "MissingPrincipalSecret",
            Error::InvalidPrincipal { .. } => "InvalidPrincipal",
            Error::InvalidSpec(_) => "InvalidSpec",
            Error::CorruptIdentity { .. } => "CorruptIdentity",
            Error::Kube { .. } => "KubeApiError",
            Error::NotOwned { .. } => "ObjectNotOwned",
            Error::Changed { .. } => "ObjectChanged",
            Error::NetworkMismatch(_) => "NetworkParametersMismatch",
            Error::Build { .. } => "BuildFailed",
        }
    }

    /// Whether the user must change something (spec or referenced Secrets) to fix it.
    pub fn is_user_error(&self) -> bool {
        !matches!(self, Error::Kube { .. } | Error::Changed { .. })
    }

    /// Wraps a client error with what was being done.
    pub fn kube(context: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
        let context = context.into();
        move |source| Error::Kube {
            context,
            source: Box::new(source),
        }
    }
}

/// Result alias of the operator.
pub type Result<T, E = Error> = std::result::Result<T, E>;
