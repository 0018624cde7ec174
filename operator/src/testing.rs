//! Test fixtures: a root key, a Level-0 principal and the principal Secret the operator reads,
//! and the CRD installed in a fresh kube-apiserver. Used by the unit tests and the apiserver
//! tests; not part of the operator's behaviour.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{ListParams, PostParams};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Api, Client, CustomResourceExt};

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::ByteString;
use mediachain::trust::{
    keyfile, Certificate, Chain, Level, Revocation, RevocationList, SecretKey,
};

use crate::crd::MediachainPeer;
use crate::reconcile::validate::{PRINCIPAL_CHAIN, PRINCIPAL_KEY, ROOT_PUB};

/// Why [`install_crd`] failed.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// The API server refused a request.
    #[error("kube-apiserver: {0}")]
    Kube(#[from] kube::Error),
    /// Watching the CRD's condition failed.
    #[error("watching the CRD: {0}")]
    Wait(#[from] kube::runtime::wait::Error),
    /// A wait ran out.
    #[error("timed out after {seconds} s waiting for {what}")]
    Timeout {
        /// What was awaited.
        what: &'static str,
        /// How long.
        seconds: u64,
    },
}

/// Seconds [`install_crd`] waits for the CRD to be established.
const INSTALL_TIMEOUT: u64 = 30;
/// Times (100 ms apart) [`install_crd`] lists the new kind before giving up.
const DISCOVERY_TRIES: u64 = 50;

/// Installs the `MediachainPeer` CRD in a fresh kube-apiserver, waits until it is established
/// and its kind is served (discovery may lag the condition), and creates `namespace`.
pub async fn install_crd(client: &Client, namespace: &str) -> Result<(), InstallError> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.create(&PostParams::default(), &MediachainPeer::crd())
        .await?;
    let established = await_condition(
        crds,
        "mediachainpeers.mediachain.io",
        conditions::is_crd_established(),
    );
    tokio::time::timeout(Duration::from_secs(INSTALL_TIMEOUT), established)
        .await
        .map_err(|_| InstallError::Timeout {
            what: "the MediachainPeer CRD to be established",
            seconds: INSTALL_TIMEOUT,
        })??;
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some(namespace.into()),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    };
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await?;
    // Discovery of the new kind may lag the Established condition by a moment.
    let peers: Api<MediachainPeer> = Api::namespaced(client.clone(), namespace);
    for _ in 0..DISCOVERY_TRIES {
        if peers.list(&ListParams::default()).await.is_ok() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(InstallError::Timeout {
        what: "the MediachainPeer kind to be served",
        seconds: DISCOVERY_TRIES / 10,
    })
}

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

    /// Another principal certified by the same root (from `seed`), valid over `[not_before,
    /// not_after)`: the new principal of a rotation.
    pub fn successor(&self, seed: u8, not_before: u64, not_after: u64) -> Self {
        let principal = SecretKey::from_seed(&[seed; 32]);
        let cert = Certificate::issue(
            &self.root,
            principal.public(),
            Level::Principal,
            not_before,
            not_after,
        );
        Self {
            root: self.root.clone(),
            principal,
            chain: Chain(vec![cert]),
        }
    }

    /// A revocation list signed by the principal revoking `subjects` (PeerId, reason) at `now`,
    /// as PEM: the content of the principal Secret's `revocations.pem`.
    pub fn revocations_pem(&self, subjects: &[(&str, &str)], now: u64) -> String {
        let mut list = RevocationList::empty(&self.principal, now);
        for (peer_id, reason) in subjects {
            let Ok(subject) = peer_id.parse() else {
                continue;
            };
            let revocation = Revocation {
                subject,
                revoked_at: now,
                reason: (*reason).into(),
            };
            list = list.with(&self.principal, revocation, now);
        }
        list.to_pem()
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
