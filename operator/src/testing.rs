//! Test fixtures: a root key, a Level-0 principal and the principal Secret the operator reads.
//! Used by the unit tests and the apiserver tests; not part of the operator's behaviour.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::ByteString;
use mediachain::trust::{keyfile, Certificate, Chain, Level, SecretKey};

use crate::reconcile::validate::{PRINCIPAL_CHAIN, PRINCIPAL_KEY, ROOT_PUB};

/// A root key and a principal certified by it.
pub struct TrustFixture {
    /// The root key.
    pub root: SecretKey,
    /// The principal's key.
    pub principal: SecretKey,
    /// The principal's Level-0 chain.
    pub chain: Chain,
}

impl TrustFixture {
    /// A fixture from fixed seeds, valid over `[not_before, not_after)`.
    pub fn new(seed: u8, not_before: u64, not_after: u64) -> Self {
        let root = SecretKey::from_seed(&[seed; 32]);
        let principal = SecretKey::from_seed(&[seed.wrapping_add(1); 32]);
        let cert = Certificate::issue(
            &root,
            principal.public(),
            Level::Principal,
            not_before,
            not_after,
        );
        Self {
            root,
            principal,
            chain: Chain(vec![cert]),
        }
    }

    /// The principal Secret `name` in `namespace`, as a user would create it.
    pub fn secret(&self, namespace: &str, name: &str) -> Secret {
        let key = keyfile::to_plain_pem(&self.principal)
            .map(|pem| pem.to_string())
            .unwrap_or_default();
        let data = BTreeMap::from([
            (PRINCIPAL_KEY.to_string(), ByteString(key.into_bytes())),
            (
                PRINCIPAL_CHAIN.to_string(),
                ByteString(self.chain.to_pem().into_bytes()),
            ),
            (
                ROOT_PUB.to_string(),
                ByteString(format!("{}\n", self.root.public()).into_bytes()),
            ),
        ]);
        Secret {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some(namespace.into()),
                ..ObjectMeta::default()
            },
            data: Some(data),
            ..Secret::default()
        }
    }
}
