//! Specifications of the pure steps of a reconcile (validate, build, status, and the steps of
//! backup, exposure and rotation), from YAML fixtures, no client. This module holds the
//! fixtures; the specifications are in its submodules, one concern each.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetStatus};
use k8s_openapi::api::core::v1::{Container, Secret};
use kube::ResourceExt;
use mediachain::trust::{keyfile, Chain, Level, RevocationSet};

use super::apply::Applied;
use super::build::{build, Desired};
use super::dereference::{Found, PodState};
use super::identity::{ChangeKind, PEER_CHAIN, PEER_KEY};
use super::status;
use super::validate::{validate, Valid};
use super::Settings;
use crate::crd::MediachainPeer;
use crate::naming;
use crate::testing::TrustFixture;
use crate::Error;

mod backup;
mod build;
mod conditions;
mod exposure;
mod identity;
mod properties;
mod rotation;
mod scaling;
mod validate;

pub(super) const NOW: u64 = 1_800_000_000;
const DAY: u64 = 86_400;

pub(super) fn fixture(name: &str) -> MediachainPeer {
    let text = match name {
        "basic" => include_str!("../../../tests/fixtures/basic.yaml"),
        "full" => include_str!("../../../tests/fixtures/full.yaml"),
        _ => panic!("no fixture {name}"),
    };
    serde_yaml::from_str(text).expect("fixture parses")
}

pub(super) fn trust() -> TrustFixture {
    TrustFixture::new(7, NOW - DAY, NOW + 365 * DAY)
}

pub(super) fn found_with(trust: &TrustFixture, mp: &MediachainPeer) -> Found {
    Found {
        principal: Some(trust.secret("media", "principal")),
        network_members: vec![mp.clone()],
        ..Found::default()
    }
}

pub(super) fn keygen() -> impl FnMut() -> mediachain::trust::SecretKey {
    let mut n = 100u8;
    move || {
        n += 1;
        mediachain::trust::SecretKey::from_seed(&[n; 32])
    }
}

/// Pods `<name>-0..count`, created at `created` and ready.
pub(super) fn running_pods(name: &str, count: i32, created: u64) -> BTreeMap<String, PodState> {
    (0..count)
        .map(|i| {
            (
                format!("{name}-{i}"),
                PodState {
                    created,
                    ready: true,
                    peer_started: Some(created),
                    revision: None,
                },
            )
        })
        .collect()
}

pub(super) fn valid_and_built(mp: &MediachainPeer, found: &Found, now: u64) -> (Valid, Desired) {
    let valid = validate(mp, found, now).expect("valid");
    let desired = build(&valid, found, &Settings::default(), now, &mut keygen()).expect("built");
    (valid, desired)
}

fn secret_text(secret: &Secret, key: &str) -> String {
    String::from_utf8(secret.data.as_ref().unwrap()[key].0.clone()).unwrap()
}

/// A container's environment, by name (a later variable of one name overrides an earlier one).
pub(super) fn env_of(container: &Container) -> BTreeMap<String, String> {
    let env = container.env.as_ref().unwrap().iter();
    env.map(|e| (e.name.clone(), e.value.clone().unwrap_or_default()))
        .collect()
}

/// The identity Secrets of `desired`, as the API server would return them next time.
pub(super) fn as_found(found: &Found, desired: &Desired) -> Found {
    let mut next = found.clone();
    next.identities = desired
        .identities
        .iter()
        .map(|(_, s)| (s.name_any(), s.clone()))
        .collect();
    next
}
