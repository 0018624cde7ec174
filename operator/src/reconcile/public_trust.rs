//! The public trust material the peers mount (pure): the root key and the revocation lists,
//! copied from the principal Secret into a ConfigMap the resource owns. The peers' pods never
//! reference the principal Secret, so no node that runs a peer may read the principal key
//! (the Node authorizer lets a kubelet read only what its pods reference).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use sha2::{Digest, Sha256};

use super::validate::{Valid, REVOCATIONS, ROOT_PUB};
use crate::naming;

/// Key of the network parameters file in the trust ConfigMap.
pub const NETWORK_PARAMS: &str = "network.yaml";

/// The trust ConfigMap of a valid resource: `root.pub`, `revocations.pem` if the principal Secret has
/// one, and the network parameters file (`network.yaml`) if the spec names one. Nothing secret.
pub fn config_map(valid: &Valid, owner: &OwnerReference) -> ConfigMap {
    let mp = &valid.resource;
    let principal = &valid.principal;
    let mut data = BTreeMap::from([(ROOT_PUB.to_string(), format!("{}\n", principal.root))]);
    if let Some(revocations) = &principal.revocations {
        data.insert(REVOCATIONS.to_string(), revocations.clone());
    }
    if let Some(params) = &valid.network_params {
        data.insert(NETWORK_PARAMS.to_string(), params.yaml.clone());
    }
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(naming::trust_config_map(mp)),
            namespace: Some(valid.namespace.clone()),
            labels: Some(naming::labels(mp)),
            owner_references: Some(vec![owner.clone()]),
            ..ObjectMeta::default()
        },
        data: Some(data),
        ..ConfigMap::default()
    }
}

/// SHA-256 (hex) of the revocation lists the peers load at start (`None` without a list). The pod
/// template carries it ([`naming::REVOCATIONS_DIGEST_ANNOTATION`]): peers read the list only when
/// they start, so a new list must restart them, and a template change makes the StatefulSet do
/// that one peer at a time, each next one only once the previous is ready again.
pub fn revocations_digest(valid: &Valid) -> Option<String> {
    let text = valid.principal.revocations.as_ref()?;
    Some(hex::encode(Sha256::digest(text.as_bytes())))
}
