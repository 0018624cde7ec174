//! The peers' trusted reverse proxies when the operator creates an Ingress (pure).
//!
//! Behind an Ingress every request reaches a peer from the ingress controller's pods. Unless
//! the peers trust those pods' network, they count every client as the proxy: one rate-limit
//! bucket and one connection cap for everyone. With an Ingress, the peers get
//! `MEDIACHAIN_API_TRUSTED_PROXIES` (docs/peer-contract.md): the operator's own setting (the
//! chart's `ingressTrustedProxies`, the ingress controller's pod network) and the resource's
//! `spec.ingress.trustedProxies`. Without an Ingress nothing is set: a peer reached directly
//! must never believe `X-Forwarded-For`.

use std::net::IpAddr;

use ipnet::IpNet;
use k8s_openapi::api::core::v1::EnvVar;

use super::Settings;
use crate::crd::MediachainPeer;

/// The peer's setting (docs/peer-contract.md).
pub const TRUSTED_PROXIES_ENV: &str = "MEDIACHAIN_API_TRUSTED_PROXIES";

/// Whether `entry` is what the peer accepts as one trusted proxy: a network in CIDR notation
/// or a single address.
fn is_network(entry: &str) -> bool {
    entry.parse::<IpNet>().is_ok() || entry.parse::<IpAddr>().is_ok()
}

/// Checks a list of trusted proxies as the peer reads it (networks in CIDR notation or single
/// addresses); the error names `field` and the bad entry.
pub fn check(field: &str, entries: &[String]) -> Result<(), String> {
    match entries.iter().find(|e| !is_network(e.trim())) {
        Some(bad) => Err(format!(
            "{field}: `{bad}` is not a network in CIDR notation (10.244.0.0/16) or an address; give one per entry"
        )),
        None => Ok(()),
    }
}

/// The networks the peers of `mp` trust: none without an Ingress, else the operator's setting
/// then the resource's own entries, without repeats.
pub fn networks(mp: &MediachainPeer, settings: &Settings) -> Vec<String> {
    let Some(ingress) = &mp.spec.ingress else {
        return Vec::new();
    };
    let mut all: Vec<String> = Vec::new();
    for entry in settings
        .ingress_trusted_proxies
        .iter()
        .chain(&ingress.trusted_proxies)
    {
        let entry = entry.trim();
        if !entry.is_empty() && !all.iter().any(|e| e == entry) {
            all.push(entry.to_string());
        }
    }
    all
}

/// The peer container's `MEDIACHAIN_API_TRUSTED_PROXIES`, when there is anything to trust.
pub fn env(mp: &MediachainPeer, settings: &Settings) -> Option<EnvVar> {
    let networks = networks(mp, settings);
    (!networks.is_empty()).then(|| EnvVar {
        name: TRUSTED_PROXIES_ENV.into(),
        value: Some(networks.join(",")),
        ..EnvVar::default()
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::reconcile::build::build;
    use crate::reconcile::tests::{fixture, found_with, keygen, trust, NOW};
    use crate::reconcile::validate::validate;
    use crate::Error;

    fn peer_env(mp: &MediachainPeer, settings: &Settings) -> Option<String> {
        let trust = trust();
        let found = found_with(&trust, mp);
        let valid = validate(mp, &found, NOW).unwrap();
        let desired = build(&valid, &found, settings, NOW, &mut keygen()).unwrap();
        let pod = desired.statefulset.spec.unwrap().template.spec.unwrap();
        pod.containers[0]
            .env
            .as_ref()
            .unwrap()
            .iter()
            .find(|e| e.name == TRUSTED_PROXIES_ENV)
            .map(|e| e.value.clone().unwrap_or_default())
    }

    fn operator_setting(entries: &[&str]) -> Settings {
        Settings {
            ingress_trusted_proxies: entries.iter().map(|e| e.to_string()).collect(),
            ..Settings::default()
        }
    }

    #[test]
    fn with_an_ingress_the_peers_trust_the_operator_and_resource_networks() {
        let mut mp = fixture("full");
        mp.spec.ingress.as_mut().unwrap().trusted_proxies = vec![
            "10.42.0.0/16".into(),
            "fd00:42::/64".into(),
            "10.244.0.0/16".into(),
        ];
        let settings = operator_setting(&["10.244.0.0/16", " "]);
        assert_eq!(
            peer_env(&mp, &settings).as_deref(),
            Some("10.244.0.0/16,10.42.0.0/16,fd00:42::/64"),
            "operator setting first, then the resource's, no repeats or blanks"
        );
        // What the operator writes is what the peer reads (its own parser, in the peer
        // contract test of the kind suite).
    }

    #[test]
    fn without_an_ingress_or_networks_nothing_is_trusted() {
        let mut mp = fixture("full");
        assert_eq!(
            peer_env(&mp, &Settings::default()),
            None,
            "ingress, no networks"
        );
        let settings = operator_setting(&["10.244.0.0/16"]);
        mp.spec.ingress = None;
        assert_eq!(
            peer_env(&mp, &settings),
            None,
            "the operator's setting applies only to resources with an Ingress"
        );
        let basic = fixture("basic");
        assert!(basic.spec.ingress.is_none());
        assert_eq!(peer_env(&basic, &settings), None);
    }

    #[test]
    fn a_bad_network_is_refused_with_the_field_named() {
        let mut mp = fixture("full");
        for bad in ["10.0.0.0/33", "proxy.example", "10.0.0.0/8,10.1.0.0/16", ""] {
            mp.spec.ingress.as_mut().unwrap().trusted_proxies = vec![bad.into()];
            let trust = trust();
            let err = validate(&mp, &found_with(&trust, &mp), NOW).unwrap_err();
            assert!(
                matches!(&err, Error::InvalidSpec(m) if m.contains("spec.ingress.trustedProxies") && m.contains(bad)),
                "{bad}: {err}"
            );
        }
        assert!(check("x", &["10.0.0.1".into(), "::1".into()]).is_ok());
    }
}
