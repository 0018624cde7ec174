//! The certificates of admitted peers, checked again while they stay connected. Pure.
//!
//! Admission checks a peer's Level-1 chain once, when it connects. A revocation recorded on the
//! chain later, or the end of the certificate's validity window, would leave an admitted peer's
//! open connections standing. So the policy keeps each admitted peer's chain and, every time
//! the engine hands it the revocations in force at the tip and the time
//! ([`Input::Certificates`](super::Input::Certificates), every second), names the peers whose
//! chain no longer verifies: the policy cuts them off (connections closed and denied for a
//! ban, claims and record dropped, nothing they author relayed). Bounded by the admitted peers
//! (an entry goes with its peer's last connection).

use std::collections::BTreeMap;
use std::time::Instant;

use libp2p::PeerId;

use crate::time::UnixSeconds;
use crate::trust::{CertError, Chain, PublicKey, RevocationSet};

/// Peers cut off remembered, at most (past it, the cut that ends soonest is forgotten).
pub const MAX_CUT_OFF: usize = 4096;

/// The Level-1 chains of admitted peers, and the peers cut off.
#[derive(Debug, Default)]
pub struct Certificates {
    chains: BTreeMap<PeerId, Chain>,
    /// Peers cut off for an invalid certificate, until when (their ban's end).
    cut: BTreeMap<PeerId, Instant>,
}

impl Certificates {
    /// `peer` was admitted with `chain` (its signatures verified; a peer cut off before came
    /// back with a chain that verifies, say a renewed certificate).
    pub fn admitted(&mut self, peer: PeerId, chain: Chain) {
        self.cut.remove(&peer);
        self.chains.insert(peer, chain);
    }

    /// `peer` is cut off until `until`: what it authors is not relayed meanwhile.
    pub fn cut_off(&mut self, peer: PeerId, until: Instant) {
        self.chains.remove(&peer);
        self.cut.insert(peer, until);
        if self.cut.len() > MAX_CUT_OFF {
            let soonest = self.cut.iter().min_by_key(|(_, until)| **until);
            if let Some(soonest) = soonest.map(|(p, _)| *p) {
                self.cut.remove(&soonest);
            }
        }
    }

    /// Whether `peer` is cut off at `now` (a cut that ended is forgotten).
    pub fn is_cut_off(&mut self, peer: &PeerId, now: Instant) -> bool {
        match self.cut.get(peer) {
            Some(until) if now < *until => true,
            Some(_) => {
                self.cut.remove(peer);
                false
            }
            None => false,
        }
    }

    /// `peer`'s last connection closed, or it was cut off.
    pub fn forget(&mut self, peer: &PeerId) {
        self.chains.remove(peer);
    }

    /// The admitted peers whose chain does not verify under `revocations` at `now`, each with
    /// the reason's label (`revoked`, `expired`, `certificate`); they are forgotten. A revoked
    /// peer among `seated` (its seat still runs) is not named yet.
    pub fn invalid(
        &mut self,
        revocations: &RevocationSet,
        seated: &[PublicKey],
        now: UnixSeconds,
    ) -> Vec<(PeerId, &'static str)> {
        let invalid: Vec<(PeerId, &'static str)> = self
            .chains
            .iter()
            .filter_map(|(peer, chain)| {
                let error = chain.verify_validity(revocations, now).err()?;
                let seat = chain
                    .leaf()
                    .is_some_and(|c| seated.contains(&c.body.subject));
                let label = label(&error);
                (label != "revoked" || !seat).then_some((*peer, label))
            })
            .collect();
        for (peer, _) in &invalid {
            self.chains.remove(peer);
        }
        invalid
    }

    /// Chains kept.
    pub fn len(&self) -> usize {
        self.chains.len()
    }

    /// Whether none is kept.
    pub fn is_empty(&self) -> bool {
        self.chains.is_empty()
    }
}

/// The metric label of why a chain stopped verifying.
fn label(error: &CertError) -> &'static str {
    match error {
        CertError::Revoked { .. } => "revoked",
        CertError::Expired { .. } => "expired",
        _ => "certificate",
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Effect, Input, Policy};
    use super::*;
    use crate::model::codec::dag_cbor_cid;
    use crate::trust::{Certificate, Level, Revocation, RevocationList, SecretKey};
    use std::time::Duration;

    /// Root -> principal -> peer, the peer's certificate valid from 0 until `until`.
    fn tower(root: &SecretKey, principal: &SecretKey, until: UnixSeconds) -> (PeerId, Chain) {
        let peer = SecretKey::generate();
        let l0 = Chain(vec![Certificate::issue(
            root,
            principal.public(),
            Level::Principal,
            0,
            10_000,
        )]);
        let cert = Certificate::issue(principal, peer.public(), Level::Peer, 0, until);
        (peer.public().peer_id(), Chain::extend(cert, &l0))
    }

    #[test]
    fn an_admitted_peer_revoked_or_expired_later_is_named_once() {
        let (root, principal) = (SecretKey::generate(), SecretKey::generate());
        let (revoked, revoked_chain) = tower(&root, &principal, 10_000);
        let (expiring, expiring_chain) = tower(&root, &principal, 500);
        let (valid, valid_chain) = tower(&root, &principal, 10_000);
        let mut certificates = Certificates::default();
        certificates.admitted(revoked, revoked_chain.clone());
        certificates.admitted(expiring, expiring_chain);
        certificates.admitted(valid, valid_chain);
        let mut revocations = RevocationSet::new(root.public());
        assert!(certificates.invalid(&revocations, &[], 100).is_empty());

        let subject = revoked_chain.0[0].body.subject;
        let revocation = Revocation {
            subject,
            revoked_at: 200,
            reason: "test".into(),
        };
        let list = RevocationList::empty(&principal, 200).with(&principal, revocation, 200);
        revocations.add(&list).unwrap();
        assert!(
            certificates.invalid(&revocations, &[], 199).is_empty(),
            "not revoked before its time"
        );
        assert!(
            certificates
                .invalid(&revocations, &[subject], 200)
                .is_empty(),
            "its seat still runs"
        );
        assert_eq!(
            certificates.invalid(&revocations, &[], 200),
            vec![(revoked, "revoked")]
        );
        assert_eq!(
            certificates.invalid(&revocations, &[], 500),
            vec![(expiring, "expired")],
            "the revoked peer is named once; the expired one at its not-after"
        );
        assert_eq!(certificates.len(), 1);
        certificates.forget(&valid);
        assert!(certificates.is_empty());
    }

    #[test]
    fn a_peer_revoked_while_connected_is_cut_off_and_its_gossip_no_longer_relayed() {
        let (root, principal) = (SecretKey::generate(), SecretKey::generate());
        let (peer, chain) = tower(&root, &principal, 10_000);
        let key = chain.0[0].body.subject;
        let now = Instant::now();
        let mut policy = Policy::new(SecretKey::generate().public(), 3, 2, now);
        let _ = policy.handle(Input::Connected(peer), now);
        let admitted = Input::Admitted {
            peer,
            key,
            chain,
            tip: dag_cbor_cid(&[0]),
            height: 3,
            tip_known: true,
        };
        let _ = policy.handle(admitted, now);
        let mut revocations = RevocationSet::new(root.public());
        let check = |revocations: &RevocationSet, unix| Input::Certificates {
            revocations: revocations.clone(),
            seated: vec![],
            unix,
        };
        let effects = policy.handle(check(&revocations, 100), now);
        assert!(effects.iter().all(|e| !matches!(e, Effect::Block { .. })));
        assert!(policy.is_admitted(&peer));

        let revocation = Revocation {
            subject: key,
            revoked_at: 150,
            reason: "test".into(),
        };
        let list = RevocationList::empty(&root, 150).with(&root, revocation, 150);
        revocations.add(&list).unwrap();
        let effects = policy.handle(check(&revocations, 151), now);
        let closed = effects.iter().any(|e| {
            matches!(e, Effect::Disconnect { peer: p, reason } if *p == peer && reason.contains("revoked"))
        });
        assert!(closed, "{effects:?}");
        assert!(effects
            .iter()
            .any(|e| matches!(e, Effect::Block { peer: p, on: true } if *p == peer)));
        assert!(effects
            .iter()
            .any(|e| matches!(e, Effect::DirectGossip { peer: p, on: false } if *p == peer)));
        assert!(!policy.is_admitted(&peer));
        assert!(policy.is_cut_off(&peer, now + Duration::from_secs(1)));
        // Banned: a new connection of it is closed at once; the next check names it no more.
        let later = now + Duration::from_secs(1);
        let effects = policy.handle(Input::Connected(peer), later);
        assert!(effects
            .iter()
            .any(|e| matches!(e, Effect::Disconnect { peer: p, .. } if *p == peer)));
        let effects = policy.handle(check(&revocations, 152), later);
        assert!(effects
            .iter()
            .all(|e| !matches!(e, Effect::Disconnect { .. })));
        let after_ban = now + super::super::peers::BAN_TIME;
        assert!(
            !policy.is_cut_off(&peer, after_ban),
            "the cut ends with the ban"
        );
    }
}
