//! `spec.bootstrap` (pure): an init container that seeds a new peer's empty data directory from
//! a CAR export before the peer first starts (`mediachain-peer import --if-empty`).
//!
//! The init container is the peer container with other arguments: the same image, environment
//! and mounts, so the import verifies every block and object exactly as the peer would (its
//! network, root key, revocations, proof-of-work difficulty). A peer whose data directory
//! already holds a datastore is left untouched (`--if-empty`), so the init container costs a
//! restarted peer nothing.

use k8s_openapi::api::core::v1::{PersistentVolumeClaimVolumeSource, PodSpec, Volume, VolumeMount};

use super::workload::CONTAINER;
use crate::crd::{BootstrapSpec, MediachainPeer};

/// Name of the init container.
pub const INIT_CONTAINER: &str = "bootstrap";
/// Name of the volume holding a bootstrap file, and where it is mounted.
const VOLUME: &str = "bootstrap";
const MOUNT: &str = "/bootstrap";

/// What the init container imports: the file's path in its mount, or the URL.
pub fn source(spec: &BootstrapSpec) -> Option<String> {
    match (&spec.file, &spec.url) {
        (Some(file), None) => Some(format!("{MOUNT}/{}", file.path.trim_start_matches('/'))),
        (None, Some(url)) => Some(url.clone()),
        _ => None,
    }
}

/// Checks `spec.bootstrap`: exactly one of `file` and `url`, a relative path inside the volume,
/// an HTTP(S) URL.
pub fn check(spec: &BootstrapSpec) -> Result<(), String> {
    match (&spec.file, &spec.url) {
        (Some(file), None) => {
            if file.claim_name.is_empty() {
                return Err("spec.bootstrap.file.claimName is empty".into());
            }
            let path = file.path.trim_start_matches('/');
            if path.is_empty() || path.split('/').any(|part| part == "..") {
                return Err(format!(
                    "spec.bootstrap.file.path `{}` must name a file inside the volume (no `..`)",
                    file.path
                ));
            }
            Ok(())
        }
        (None, Some(url)) => {
            let rest = url
                .strip_prefix("http://")
                .or_else(|| url.strip_prefix("https://"));
            if rest.is_none_or(|r| r.is_empty() || r.contains(char::is_whitespace)) {
                return Err(format!(
                    "spec.bootstrap.url `{url}` is not an http:// or https:// URL"
                ));
            }
            Ok(())
        }
        _ => Err("spec.bootstrap needs exactly one of `file` and `url`".into()),
    }
}

/// Adds the init container (and the file's volume) to the peers' pod spec, when `spec.bootstrap`
/// is set. The peer container must already be complete (environment and mounts).
pub fn add(mp: &MediachainPeer, pod: &mut PodSpec) {
    let Some(spec) = &mp.spec.bootstrap else {
        return;
    };
    let Some(import) = source(spec) else {
        return;
    };
    let Some(peer) = pod.containers.iter().find(|c| c.name == CONTAINER) else {
        return;
    };
    let mut init = peer.clone();
    init.name = INIT_CONTAINER.into();
    init.args = Some(vec!["import".into(), "--if-empty".into(), import]);
    init.ports = None;
    init.startup_probe = None;
    init.liveness_probe = None;
    init.readiness_probe = None;
    if let Some(file) = &spec.file {
        init.volume_mounts
            .get_or_insert_with(Vec::new)
            .push(VolumeMount {
                name: VOLUME.into(),
                mount_path: MOUNT.into(),
                read_only: Some(true),
                ..VolumeMount::default()
            });
        pod.volumes.get_or_insert_with(Vec::new).push(Volume {
            name: VOLUME.into(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: file.claim_name.clone(),
                read_only: Some(true),
            }),
            ..Volume::default()
        });
    }
    pod.init_containers.get_or_insert_with(Vec::new).push(init);
}
