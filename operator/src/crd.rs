//! The `MediachainPeer` custom resource: a set of peers of one Mediachain network.
//!
//! Types only: defaults, schema and printer columns. No logic that talks to the cluster lives
//! here; `crdgen` turns these types into the manifests under `crds/`.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Affinity, EnvVar, LocalObjectReference, ResourceRequirements, Toleration,
    TopologySpreadConstraint,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

mod backup;
mod rotation;
pub use backup::{BackupSpec, BackupStatus, BootstrapFile, BootstrapSpec};
pub use rotation::{PrincipalRotationStatus, RotationPhase};

/// API group of the operator's kinds.
pub const GROUP: &str = "mediachain.io";

/// Desired state of a set of Mediachain peers (one StatefulSet) of one network.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "mediachain.io",
    version = "v1alpha1",
    kind = "MediachainPeer",
    namespaced,
    shortname = "mcp",
    status = "MediachainPeerStatus",
    scale(
        spec_replicas_path = ".spec.replicas",
        status_replicas_path = ".status.replicas",
        label_selector_path = ".status.selector"
    ),
    printcolumn = r#"{"name":"Network","type":"string","jsonPath":".spec.network"}"#,
    printcolumn = r#"{"name":"Replicas","type":"integer","jsonPath":".spec.replicas"}"#,
    printcolumn = r#"{"name":"Ready","type":"integer","jsonPath":".status.readyReplicas"}"#,
    printcolumn = r#"{"name":"Height","type":"integer","jsonPath":".status.journalHeight"}"#,
    printcolumn = r#"{"name":"Finalized","type":"integer","jsonPath":".status.finalizedHeight"}"#,
    printcolumn = r#"{"name":"Certs expire","type":"string","jsonPath":".status.certificatesExpire"}"#,
    printcolumn = r#"{"name":"Status","type":"string","jsonPath":".status.state"}"#,
    printcolumn = r#"{"name":"Last backup","type":"date","jsonPath":".status.lastBackup.time"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
// A rule on the spec, not on the field: a field's own rule is not evaluated when the old value
// is absent, and adding parameters to a running network would change its genesis.
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "has(self.networkParameters) == has(oldSelf.networkParameters) && (!has(self.networkParameters) || self.networkParameters == oldSelf.networkParameters)",
    "message": "spec.networkParameters is immutable, including setting or removing it after creation (the parameters make the network's genesis)"
}]))]
pub struct MediachainPeerSpec {
    /// Network name (the genesis block is derived from it). Every MediachainPeer of the same
    /// network in a namespace shares one seed list, the ConfigMap `<network>-seeds`. Immutable:
    /// a peer's journal belongs to one network.
    #[schemars(
        length(min = 1, max = 57),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"),
        extend("x-kubernetes-validations" = [{"rule": "self == oldSelf", "message": "network is immutable: create another MediachainPeer"}])
    )]
    pub network: String,

    /// Number of peers (pods), 1 to 256.
    #[serde(default = "default_replicas")]
    #[schemars(range(min = 1, max = 256))]
    pub replicas: i32,

    /// Container image of the peer (`mediachain-peer run`).
    #[serde(default = "default_image")]
    pub image: String,

    /// Image pull policy (`Always`, `IfNotPresent`, `Never`); Kubernetes' default when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = ["Always", "IfNotPresent", "Never"]))]
    pub image_pull_policy: Option<String>,

    /// CPU and memory requests and limits of the peer container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,

    /// Persistent storage of each peer's datastore and journal.
    #[serde(default)]
    pub storage: StorageSpec,

    /// Where the network's trust material comes from, and how peer certificates are issued.
    pub trust: TrustSpec,

    /// The network's parameters file (docs/network-parameters.md): what every member of the
    /// network, in every organisation's cluster, must hold the same (network name, root key,
    /// initial members, consensus settings). Unset: the genesis derives from the network name
    /// alone (a network of one organisation). Set at creation or never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_parameters: Option<NetworkParametersSpec>,

    /// Optional NetworkPolicy `<resource>` restricting who reaches the peers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_policy: Option<NetworkPolicySpec>,

    /// Maintenance: while true the operator changes nothing (no object is applied, renewed,
    /// restarted or rolled); it only reports status (`Progressing/Paused`, state `Paused`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub paused: bool,

    /// Extra seed multiaddrs (e.g. peers of the network outside this cluster, as their
    /// organisation publishes them in its `status.externalSeeds`), at most 64. They join the
    /// network's seed list `<network>-seeds`, which the peers re-read: changing them restarts
    /// no peer.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(min = 1, max = 256)))]
    pub seeds: Vec<String>,

    /// Per-peer exposure of the overlay port to other clusters: one Service per peer and the
    /// address each peer advertises derived from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exposure: Option<ExposureSpec>,

    /// Block commit parameters, passed to every peer.
    #[serde(default)]
    pub consensus: ConsensusSpec,

    /// Overlay connectivity parameters.
    #[serde(default)]
    pub connectivity: ConnectivitySpec,

    /// The Service that clients use (HTTP API on port 8080).
    #[serde(default)]
    pub client_service: ClientServiceSpec,

    /// Optional Ingress to the client API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress: Option<IngressSpec>,

    /// The PodDisruptionBudget that bounds voluntary disruptions.
    #[serde(default)]
    pub disruption_budget: DisruptionBudgetSpec,

    /// Where and how the peers' pods are scheduled, and what they carry besides the generated
    /// settings.
    #[serde(default)]
    pub placement: PlacementSpec,

    /// Scheduled backups of the journal to CAR files on a volume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<BackupSpec>,

    /// Seed new peers' empty data directories from a CAR export before they first start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bootstrap: Option<BootstrapSpec>,

    /// Escape hatch: a partial PodTemplateSpec merged over the generated one. Objects merge
    /// recursively, lists of named items (containers, volumes, env, ...) merge by `name`, other
    /// lists and scalars replace, `null` removes a field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserve_unknown_object")]
    pub pod_overrides: Option<serde_json::Value>,
}

/// Where the network's parameters file is.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NetworkParametersSpec {
    /// ConfigMap (same namespace) holding the file, the same file in every organisation.
    #[schemars(length(min = 1, max = 253))]
    pub config_map_name: String,
    /// Key of the file in the ConfigMap.
    #[serde(default = "default_params_key")]
    pub key: String,
}

/// First-class placement of the peers' pods. Everything here merges with what the operator
/// generates (the default anti-affinity and zone spread stay unless replaced as documented).
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlacementSpec {
    /// Node labels the pods require (`nodeSelector`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// Taints the pods tolerate.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    /// Affinity rules. Node and pod affinity are taken as given; pod anti-affinity terms are
    /// added to the default one (peers of a resource preferably on distinct nodes), not
    /// replacing it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
    /// Topology spread constraints. Unset: spread across zones
    /// (`topology.kubernetes.io/zone`, maxSkew 1, ScheduleAnyway); `[]`: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topology_spread_constraints: Option<Vec<TopologySpreadConstraint>>,
    /// PriorityClass of the pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority_class_name: Option<String>,
    /// Extra pod labels (the operator's selector labels cannot be overridden).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pod_labels: BTreeMap<String, String>,
    /// Extra pod annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pod_annotations: BTreeMap<String, String>,
    /// Secrets for pulling the peer image.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub image_pull_secrets: Vec<LocalObjectReference>,
    /// Extra environment variables of the peer container (names the operator sets, such as
    /// `MEDIACHAIN_NETWORK` or `POD_NAME`, are refused).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
}

/// Persistent volume settings.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
// A transition rule on the object, not on the field: a field's own rule is not evaluated when
// the old value is absent, so setting `storageClassName` after creation would pass and then
// wedge every StatefulSet apply (volume claim templates are immutable).
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "has(self.storageClassName) == has(oldSelf.storageClassName) && (!has(self.storageClassName) || self.storageClassName == oldSelf.storageClassName)",
    "message": "storage.storageClassName is immutable, including setting or removing it after creation (StatefulSet volume claim templates are)"
}]))]
pub struct StorageSpec {
    /// Size of each peer's volume (a Kubernetes quantity, e.g. `10Gi`). Immutable (the
    /// StatefulSet's volume claim template is).
    #[serde(default = "default_storage_size")]
    #[schemars(extend("x-kubernetes-validations" = [{"rule": "self == oldSelf", "message": "storage.size is immutable (StatefulSet volume claim templates are)"}]))]
    pub size: String,
    /// StorageClass of the volumes; the cluster default when unset. Immutable (set at creation
    /// or never).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
    /// What happens to the volumes when the resource is deleted or scaled down.
    #[serde(default)]
    pub retention: RetentionSpec,
}

impl Default for StorageSpec {
    fn default() -> Self {
        Self {
            size: default_storage_size(),
            storage_class_name: None,
            retention: RetentionSpec::default(),
        }
    }
}

/// PVC retention policy (the StatefulSet's `persistentVolumeClaimRetentionPolicy`). The
/// per-peer identity Secrets follow the same policy so that a key and its data stay together.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RetentionSpec {
    /// On deletion of the MediachainPeer: `Delete` (default) or `Retain` the volumes.
    #[serde(default = "default_when_deleted")]
    pub when_deleted: RetentionPolicy,
    /// On scale down: `Retain` (default: scaling up again resumes the same peer with its data
    /// and key) or `Delete` (volumes and identities of removed peers are deleted).
    #[serde(default = "default_when_scaled")]
    pub when_scaled: RetentionPolicy,
}

impl Default for RetentionSpec {
    fn default() -> Self {
        Self {
            when_deleted: default_when_deleted(),
            when_scaled: default_when_scaled(),
        }
    }
}

/// Keep or delete.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum RetentionPolicy {
    /// Keep the object.
    Retain,
    /// Delete the object.
    Delete,
}

impl RetentionPolicy {
    /// The Kubernetes spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            RetentionPolicy::Retain => "Retain",
            RetentionPolicy::Delete => "Delete",
        }
    }
}

/// The network's trust material and certificate issuance.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrustSpec {
    /// Secret (same namespace) with `principal.key` (PKCS#8 PEM Level-0 key), `principal.chain`
    /// (its Level-0 certificate) and `root.pub` (the root PeerId); optional `revocations.pem`.
    pub principal_secret_name: String,
    /// Validity of issued Level-1 peer certificates, in hours.
    #[serde(default = "default_cert_validity_hours")]
    pub certificate_validity_hours: u32,
    /// Re-issue a peer certificate when less than this many hours of validity remain.
    #[serde(default = "default_renew_before_hours")]
    pub renew_before_hours: u32,
    /// Where each peer's private key is made and kept: `Operator` (default; the operator makes
    /// it into the Secret `<resource>-<ordinal>-identity`, so keys can be made before the peers
    /// exist, e.g. a network's initial members) or `Pod` (each pod makes its key on its own
    /// volume and publishes only the public key; the operator certifies it into the ConfigMap
    /// `<resource>-chains`: no Secret holds a peer key). Immutable.
    #[serde(default)]
    #[schemars(extend("x-kubernetes-validations" = [{"rule": "self == oldSelf", "message": "trust.keyCustody is immutable (changing it gives every peer a new key)"}]))]
    pub key_custody: KeyCustody,
    /// The principal being replaced in a two-phase rotation: the Secret of the old principal
    /// (only its `principal.chain` and optional `revocations.pem` are read) while
    /// `principalSecretName` names the new one, under the same root. Phase 1 trusts both and
    /// moves every peer to a certificate of the new one, one peer at a time; phase 2 retires the
    /// old one once every peer runs the new one (`status.principalRotation`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub retiring_principal_secret_name: Option<String>,
}

/// Where peer keys are made and kept (`spec.trust.keyCustody`).
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum KeyCustody {
    /// The operator makes each key into a per-peer Secret.
    #[default]
    Operator,
    /// Each pod makes its key on its own volume; the operator certifies its public key.
    Pod,
}

/// Block commit parameters (flags of `mediachain-peer run`); unset means the peer's default.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConsensusSpec {
    /// Wait interval that collects transactions into a block (e.g. `1s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_interval: Option<String>,
    /// Delay after which out-of-turn committers may commit (e.g. `5s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit_timeout: Option<String>,
    /// Client registration proof-of-work difficulty, in bits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registration_pow_bits: Option<u32>,
    /// Per-transaction proof-of-work difficulty, in bits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction_pow_bits: Option<u32>,
    /// Largest object accepted, in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_object_size: Option<u64>,
}

/// Overlay connectivity parameters.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectivitySpec {
    /// N of the N-cut guarantee: the overlay stays connected when any N peers fail.
    #[serde(default = "default_target_connectivity")]
    pub target_connectivity: u32,
}

impl Default for ConnectivitySpec {
    fn default() -> Self {
        Self {
            target_connectivity: default_target_connectivity(),
        }
    }
}

/// Who may reach the peers (`spec.networkPolicy`): the overlay port only from peers of the
/// network (and `overlayFrom`), the HTTP port (client API and `/metrics`) only from `apiFrom`,
/// the monitoring namespace, the operator and the resource's own pods (backups).
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NetworkPolicySpec {
    /// Who may use the client API (port 8080), e.g. the ingress controller's namespace:
    /// `[{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: ingress-nginx}}}]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub api_from: Vec<k8s_openapi::api::networking::v1::NetworkPolicyPeer>,
    /// Namespace whose pods may scrape `/metrics` (port 8080), e.g. `monitoring`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_namespace: Option<String>,
    /// Who besides the network's peers in this namespace may reach the overlay port 4001, e.g.
    /// the other organisations' node networks with `spec.exposure`:
    /// `[{ipBlock: {cidr: 198.51.100.0/24}}]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub overlay_from: Vec<k8s_openapi::api::networking::v1::NetworkPolicyPeer>,
}

/// Per-peer exposure of the overlay port (`spec.exposure`).
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExposureSpec {
    /// `NodePort` or `LoadBalancer`: the type of each peer's Service `<resource>-<ordinal>-p2p`
    /// (selecting its pod by `statefulset.kubernetes.io/pod-name`, port 4001).
    #[serde(rename = "type")]
    #[schemars(extend("enum" = ["NodePort", "LoadBalancer"]))]
    pub type_: String,
    /// `NodePort`: peer `i` gets node port `nodePortBase + i` (so its address is known before
    /// it starts); unset, the cluster assigns them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 30000, max = 32767))]
    pub node_port_base: Option<i32>,
    /// `NodePort`: the DNS name or IP address other clusters reach the nodes by (e.g. a name
    /// resolving to every node); unset, the IP of the node that runs the pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Extra annotations of each per-peer Service (e.g. for a cloud load balancer).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub annotations: std::collections::BTreeMap<String, String>,
}

/// The client Service.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClientServiceSpec {
    /// Service type: `ClusterIP` (default), `NodePort` or `LoadBalancer`.
    #[serde(default = "default_service_type", rename = "type")]
    #[schemars(extend("enum" = ["ClusterIP", "NodePort", "LoadBalancer"]))]
    pub type_: String,
    /// Extra annotations (e.g. for a cloud load balancer).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub annotations: std::collections::BTreeMap<String, String>,
}

impl Default for ClientServiceSpec {
    fn default() -> Self {
        Self {
            type_: default_service_type(),
            annotations: Default::default(),
        }
    }
}

/// An Ingress in front of the client Service.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IngressSpec {
    /// Host name routed to the client API.
    pub host: String,
    /// IngressClass; the cluster default when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class_name: Option<String>,
    /// Secret holding the TLS certificate for `host`; plain HTTP when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_secret_name: Option<String>,
    /// Extra annotations (e.g. for the ingress controller).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub annotations: std::collections::BTreeMap<String, String>,
    /// Networks (CIDR) or addresses of the ingress controller's pods, whose `X-Forwarded-For`
    /// the peers believe (`MEDIACHAIN_API_TRUSTED_PROXIES`, with the operator's
    /// `INGRESS_TRUSTED_PROXIES`), so that each client behind the Ingress gets its own rate
    /// limit and connection cap instead of sharing the proxy's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trusted_proxies: Vec<String>,
}

/// The PodDisruptionBudget.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DisruptionBudgetSpec {
    /// Create the PodDisruptionBudget (default true).
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Peers that may be voluntarily disrupted at once (default 1), and the step of a
    /// scale-down. Must not exceed `connectivity.targetConnectivity`, or evictions alone could
    /// break the N-cut guarantee.
    #[serde(default = "default_max_unavailable")]
    pub max_unavailable: i32,
}

impl Default for DisruptionBudgetSpec {
    fn default() -> Self {
        Self {
            enabled: true,
            max_unavailable: default_max_unavailable(),
        }
    }
}

/// Observed state, written by the operator only.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MediachainPeerStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, `Progressing` and `Degraded`, each with a reason.
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// Peers the StatefulSet currently runs.
    #[serde(default)]
    pub replicas: i32,
    /// Peers whose readiness probe passes (admitted to the overlay, journal synced).
    #[serde(default)]
    pub ready_replicas: i32,
    /// Each peer's identity.
    #[serde(default)]
    pub peers: Vec<PeerIdentityStatus>,
    /// Peers whose key was revoked (by a list in the principal Secret's `revocations.pem`) and
    /// replaced by a new one: the revoked PeerId, the reason and when. The last per peer.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub revoked_peers: Vec<RevokedPeerStatus>,
    /// Hex digest of the network parameters the peers run (`NetworkParams::digest`), for the
    /// other organisations of the network to compare with theirs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_parameters_digest: Option<String>,
    /// With `spec.exposure`: the overlay addresses this cluster's peers advertise to other
    /// clusters, for the other organisations' `spec.seeds` (peers whose external address is
    /// not known yet are left out).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub external_seeds: Vec<String>,
    /// Highest journal height reported by a ready peer, when known. Refreshed at most once per
    /// the operator's height refresh interval, so that blocks never drive status writes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub journal_height: Option<u64>,
    /// Highest finalised height reported by a ready peer (`mediachain_finalized_height`: no
    /// block at or below it ever reverts), refreshed like `journalHeight`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finalized_height: Option<u64>,
    /// Evidence the peers hold that members of the network broke the protocol (two blocks on
    /// one parent, conflicting finality votes: the peers' `GET /v1/evidence`), one item per
    /// culprit and kind, at most 16, sorted; the condition `EvidenceRecorded` counts them all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub evidence: Vec<EvidenceStatus>,
    /// When the soonest of the peers' certificates expires, for people (`in 89d`, `in 30h`,
    /// `expired`); `peers[].certificateNotAfter` has the exact times.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificates_expire: Option<String>,
    /// One word for `kubectl get` (the Status column): the `Degraded` reason when the last pass
    /// failed, else the `Ready` reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// The rotation of the principal (`spec.trust.retiringPrincipalSecretName`), kept once
    /// `Retired` while the new principal stays the resource's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal_rotation: Option<PrincipalRotationStatus>,
    /// The newest successful backup (`spec.backup`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_backup: Option<BackupStatus>,
    /// Label selector of the peers' pods (for the `/scale` subresource and `kubectl scale`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
}

/// One peer's identity as issued by the operator.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PeerIdentityStatus {
    /// Pod name (`<resource>-<ordinal>`).
    pub name: String,
    /// libp2p PeerId of the peer's key.
    pub peer_id: String,
    /// End of the Level-1 certificate's validity, Unix seconds.
    pub certificate_not_after: u64,
}

/// One member caught breaking the protocol, as a peer's `GET /v1/evidence` proves it.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EvidenceStatus {
    /// The culprit's key (PeerId).
    pub culprit: String,
    /// `doubleBlock` or `conflictingVotes` (docs/consensus.md, "Evidence").
    pub kind: String,
    /// The culprit's pod when it is a peer of this resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<String>,
    /// The height of the two blocks (`doubleBlock`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u64>,
}

/// A peer key revoked and replaced by the operator.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RevokedPeerStatus {
    /// Pod name of the peer (`<resource>-<ordinal>`).
    pub name: String,
    /// PeerId of the revoked key (no longer used: the peer runs a new one).
    pub peer_id: String,
    /// The revocation's reason, as the list gives it.
    pub reason: String,
    /// When the operator replaced the key, Unix seconds.
    pub replaced_at: u64,
}

fn preserve_unknown_object(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
    })
}

fn default_params_key() -> String {
    "network.yaml".into()
}
fn default_replicas() -> i32 {
    3
}
fn default_image() -> String {
    "mediachain-peer:latest".into()
}
fn default_storage_size() -> String {
    "10Gi".into()
}
fn default_when_deleted() -> RetentionPolicy {
    RetentionPolicy::Delete
}
fn default_when_scaled() -> RetentionPolicy {
    RetentionPolicy::Retain
}
fn default_cert_validity_hours() -> u32 {
    24 * 90
}
fn default_renew_before_hours() -> u32 {
    24 * 30
}
fn default_target_connectivity() -> u32 {
    3
}
fn default_service_type() -> String {
    "ClusterIP".into()
}
fn default_true() -> bool {
    true
}
fn default_max_unavailable() -> i32 {
    1
}
