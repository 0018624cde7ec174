//! `status.principalRotation`: the two-phase rotation of the Level-0 principal that
//! `spec.trust.retiringPrincipalSecretName` starts (operator/README.md, "Principal rotation").
//! Types only.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Where a principal rotation stands.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum RotationPhase {
    /// Phase 1: both principals are trusted; the peers' certificates are re-issued under the new
    /// one and the peers restart one at a time.
    Rotating,
    /// Phase 2: every peer runs a certificate of the new principal and was ready; the old one is
    /// no longer read or used. Final for this pair of principals.
    Retired,
}

/// The rotation from one principal to another, as the operator last saw it.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PrincipalRotationStatus {
    /// `Rotating` or `Retired`.
    pub phase: RotationPhase,
    /// PeerId of the principal being retired.
    pub from: String,
    /// PeerId of the new principal (`spec.trust.principalSecretName`).
    pub to: String,
    /// The Secret of the retiring principal (`spec.trust.retiringPrincipalSecretName`).
    pub retiring_secret_name: String,
    /// Peers running a certificate of the new principal and ready (`Retired`: all of them when
    /// it was reached).
    pub rotated_peers: i32,
    /// Peers of the resource.
    pub peers: i32,
}
