//! Specifications of `spec.exposure` (pure): per-peer Services, advertised addresses, external
//! seeds, restarts when an address changes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use k8s_openapi::api::core::v1::{LoadBalancerIngress, LoadBalancerStatus, ServiceStatus};
use kube::ResourceExt;

use super::{as_found, env_of, fixture, found_with, keygen, trust, NOW};
use crate::crd::{ExposureSpec, MediachainPeer};
use crate::reconcile::build::{build, Desired};
use crate::reconcile::dereference::{Found, PodState};
use crate::reconcile::exposure::{check, EXPOSURE_DIR};
use crate::reconcile::validate::validate;
use crate::reconcile::Settings;

fn exposed(type_: &str, base: Option<i32>, host: Option<&str>) -> MediachainPeer {
    let mut mp = fixture("basic");
    mp.spec.exposure = Some(ExposureSpec {
        type_: type_.into(),
        node_port_base: base,
        host: host.map(String::from),
        annotations: [("lb.example/kind".to_string(), "nlb".to_string())].into(),
    });
    mp
}

fn built(mp: &MediachainPeer, found: &Found, now: u64) -> Desired {
    let valid = validate(mp, found, now).expect("valid");
    build(&valid, found, &Settings::default(), now, &mut keygen()).expect("built")
}

/// The advertised address in each peer's file, ordinal order.
fn addresses(desired: &Desired) -> Vec<String> {
    let plan = desired.exposure.as_ref().expect("an exposure plan");
    let data = plan.config_map.data.as_ref().unwrap();
    (0..3)
        .map(|i| data[&format!("alpha-{i}.yaml")].clone())
        .collect()
}

/// `found` as the next pass reads it after `desired` was applied.
fn after(found: &Found, desired: &Desired) -> Found {
    let mut next = as_found(found, desired);
    let plan = desired.exposure.as_ref().unwrap();
    next.exposure = Some(plan.config_map.clone());
    next.peer_services = plan
        .services
        .iter()
        .map(|s| (s.name_any(), s.clone()))
        .collect();
    next
}

#[test]
fn node_ports_per_ordinal_give_each_peer_its_address_before_it_starts() {
    let trust = trust();
    let mp = exposed("NodePort", Some(30400), Some("peers.a.example"));
    let desired = built(&mp, &found_with(&trust, &mp), NOW);
    let plan = desired.exposure.as_ref().unwrap();
    assert_eq!(plan.services.len(), 3);
    for (i, service) in plan.services.iter().enumerate() {
        assert_eq!(service.name_any(), format!("alpha-{i}-p2p"));
        let spec = service.spec.as_ref().unwrap();
        assert_eq!(spec.type_.as_deref(), Some("NodePort"));
        assert_eq!(
            spec.selector.as_ref().unwrap()["statefulset.kubernetes.io/pod-name"],
            format!("alpha-{i}")
        );
        let port = &spec.ports.as_ref().unwrap()[0];
        assert_eq!(port.node_port, Some(30400 + i as i32));
        assert_eq!(port.port, 4001);
        assert_eq!(service.annotations()["lb.example/kind"], "nlb");
    }
    assert_eq!(
        addresses(&desired),
        (0..3)
            .map(|i| format!(
                "external-address: /dns4/peers.a.example/tcp/{}\n",
                30400 + i
            ))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        plan.external_seeds,
        vec![
            "/dns4/peers.a.example/tcp/30400",
            "/dns4/peers.a.example/tcp/30401",
            "/dns4/peers.a.example/tcp/30402"
        ]
    );
    // Each pod reads its own file; no env var overrides it.
    let pod = desired
        .statefulset
        .spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .clone()
        .unwrap();
    let peer = &pod.containers[0];
    let env = env_of(peer);
    assert_eq!(
        env["MEDIACHAIN_CONFIG"],
        format!("{EXPOSURE_DIR}/$(POD_NAME).yaml")
    );
    assert!(!env.contains_key("MEDIACHAIN_EXTERNAL_ADDRESS"));
    assert!(peer
        .volume_mounts
        .as_ref()
        .unwrap()
        .iter()
        .any(|m| m.name == "exposure" && m.mount_path == EXPOSURE_DIR));
    assert!(pod.volumes.unwrap().iter().any(|v| v
        .config_map
        .as_ref()
        .is_some_and(|c| c.name == "alpha-exposure")));
    // Nothing changes on the next pass: no restart, same files.
    let again = built(&mp, &after(&found_with(&trust, &mp), &desired), NOW + 60);
    assert_eq!(addresses(&again), addresses(&desired));
    assert!(again.restarts.is_empty());
}

#[test]
fn a_load_balancer_address_replaces_the_internal_one_and_restarts_that_peer_only() {
    let trust = trust();
    let mp = exposed("LoadBalancer", None, None);
    let mut found = found_with(&trust, &mp);
    for i in 0..3 {
        found.pods.insert(
            format!("alpha-{i}"),
            PodState {
                created: NOW,
                ready: true,
                peer_started: Some(NOW),
                revision: None,
            },
        );
    }
    let first = built(&mp, &found, NOW);
    // No load balancer yet: the in-cluster name, no external seed.
    assert!(
        addresses(&first)[1].contains("/dns4/alpha-1.alpha-peers.media.svc.cluster.local/tcp/4001")
    );
    assert!(first.exposure.as_ref().unwrap().external_seeds.is_empty());
    assert!(first.restarts.is_empty());

    let mut next = after(&found, &first);
    let service = next.peer_services.get_mut("alpha-1-p2p").unwrap();
    service.status = Some(ServiceStatus {
        load_balancer: Some(LoadBalancerStatus {
            ingress: Some(vec![LoadBalancerIngress {
                ip: Some("203.0.113.7".into()),
                ..LoadBalancerIngress::default()
            }]),
        }),
        ..ServiceStatus::default()
    });
    let second = built(&mp, &next, NOW + 30);
    assert_eq!(
        addresses(&second)[1],
        "external-address: /ip4/203.0.113.7/tcp/4001\n"
    );
    assert_eq!(
        second.exposure.as_ref().unwrap().external_seeds,
        vec!["/ip4/203.0.113.7/tcp/4001"]
    );
    assert_eq!(
        second.restarts,
        vec!["alpha-1".to_string()],
        "only the peer whose address changed"
    );

    // Restarted after the change: no further restart.
    let mut third_found = after(&next, &second);
    third_found.peer_services = next.peer_services.clone();
    third_found.pods.insert(
        "alpha-1".into(),
        PodState {
            created: NOW + 40,
            ready: true,
            peer_started: Some(NOW + 40),
            revision: None,
        },
    );
    let third = built(&mp, &third_found, NOW + 60);
    assert!(third.restarts.is_empty());
}

#[test]
fn a_node_address_is_taken_from_the_pods_node_and_kept() {
    let trust = trust();
    let mp = exposed("NodePort", Some(31000), None);
    let mut found = found_with(&trust, &mp);
    found.host_ips.insert("alpha-0".into(), "192.0.2.10".into());
    let first = built(&mp, &found, NOW);
    let files = addresses(&first);
    assert_eq!(files[0], "external-address: /ip4/192.0.2.10/tcp/31000\n");
    assert!(
        files[1].contains(".svc.cluster.local/tcp/4001"),
        "not scheduled yet: {}",
        files[1]
    );
    // The pod moves to another node: every node forwards the port, the address stays.
    let mut next = after(&found, &first);
    next.host_ips.insert("alpha-0".into(), "192.0.2.99".into());
    let second = built(&mp, &next, NOW + 30);
    assert_eq!(addresses(&second)[0], files[0]);
}

#[test]
fn scaling_down_or_removing_exposure_deletes_the_per_peer_services() {
    let trust = trust();
    let mp = exposed("NodePort", Some(30400), Some("peers.a.example"));
    let found = found_with(&trust, &mp);
    let first = built(&mp, &found, NOW);
    let mut smaller = mp.clone();
    smaller.spec.replicas = 2;
    let down = built(&smaller, &after(&found, &first), NOW);
    assert_eq!(down.obsolete_services, vec!["alpha-2-p2p".to_string()]);
    let mut removed = mp.clone();
    removed.spec.exposure = None;
    let gone = built(&removed, &after(&found, &first), NOW);
    assert!(gone.exposure.is_none());
    assert_eq!(gone.obsolete_services.len(), 3);
}

#[test]
fn bad_exposures_are_refused() {
    let spec = |type_: &str, base: Option<i32>, host: Option<&str>| ExposureSpec {
        type_: type_.into(),
        node_port_base: base,
        host: host.map(String::from),
        annotations: Default::default(),
    };
    assert!(check(&spec("NodePort", Some(30000), Some("10.0.0.1")), 3).is_ok());
    assert!(check(&spec("LoadBalancer", None, None), 3).is_ok());
    assert!(check(&spec("ClusterIP", None, None), 3)
        .unwrap_err()
        .contains("type"));
    assert!(check(&spec("NodePort", Some(32766), None), 3)
        .unwrap_err()
        .contains("32767"));
    assert!(check(&spec("NodePort", Some(29999), None), 1).is_err());
    assert!(check(&spec("NodePort", None, Some("bad host!")), 1)
        .unwrap_err()
        .contains("host"));
}
