//! Seat changes in the Byzantine runs (docs/consensus.md, "Finality recorded on the chain"):
//! during the partition the root revokes a Byzantine member through the honest peers of one
//! side, so the revocation is recorded on one island's chain while finality may be stopped
//! (no island holding more than two thirds of the seats). Checked: at the heal, no honest peer
//! holds seats without the revoked member unless its chain records the revocation's block final;
//! after the run every honest peer holds the same seats and recorded final checkpoint, and the
//! revocation is in force (the change waited, then took effect once finality resumed).

use mediachain::journal::membership::Record;
use mediachain::node::{Clock, Node};
use mediachain::trust::{self, PublicKey, RevocationList};

use super::{Msg, Sim};

/// The revocation a run publishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation {
    /// The revoked member's key.
    pub victim: PublicKey,
    /// The highest final height among honest peers when it was published, and at the heal.
    pub final_heights: (u64, Option<u64>),
}

/// Where the chain of `node` records the revocation of `victim` (a block height), if it does.
fn recorded_at(node: &Node, victim: &PublicKey) -> Option<u64> {
    let (_, height) = node.tip().unwrap();
    let cids = node.canonical_range(1, height).unwrap();
    cids.iter().zip(1..).find_map(|(cid, h)| {
        let block = node.with_journal(|j| j.load_block(cid)).unwrap();
        let revokes = block.records.iter().any(|r| {
            matches!(r, Record::Revoke(list) if list.body.revoked.iter().any(|x| x.subject == *victim))
        });
        revokes.then_some(h)
    })
}

impl Sim {
    fn honest_nodes(&self) -> impl Iterator<Item = (usize, &std::sync::Arc<Node>)> {
        self.peers
            .iter()
            .filter(|p| !p.is_adversary())
            .filter_map(|p| p.node().map(|n| (p.index, n)))
    }

    fn highest_final(&self) -> u64 {
        self.honest_nodes()
            .map(|(_, n)| n.finalized().map_or(0, |c| c.height))
            .max()
            .unwrap_or(0)
    }

    /// The root's revocation of peer `victim`, offered to the running peers of `at` (to the
    /// other honest peers when none of them runs).
    pub(super) fn revoke(&mut self, at: &[usize], victim: usize) -> Vec<(usize, usize, Msg)> {
        let subject = self.peers[victim].key.public();
        let now = self.clock.unix();
        let revocation = trust::Revocation {
            subject,
            revoked_at: now,
            reason: "simulated".into(),
        };
        let list = RevocationList::empty(&self.root, now).with(&self.root, revocation, now);
        // Through the running peers of `at` (a peer that crashes later keeps it in its store
        // and spreads it once restarted); when none runs, through the other honest peers.
        let up = |i: &usize| self.peers[*i].is_up();
        let mut through: Vec<usize> = at.iter().copied().filter(up).collect();
        if through.is_empty() {
            through = self.honest_nodes().map(|(i, _)| i).collect();
        }
        for i in through {
            let node = self.peers[i].node().unwrap();
            node.offer_record(Record::Revoke(list.clone())).unwrap();
        }
        self.revocation = Some(Revocation {
            victim: subject,
            final_heights: (self.highest_final(), None),
        });
        vec![]
    }

    /// At a heal: every honest peer whose seats no longer hold the revoked member has its
    /// revocation's block recorded final on its chain.
    pub(super) fn check_seats_during_run(&mut self) {
        let Some(revocation) = self.revocation.clone() else {
            return;
        };
        let mut found = vec![];
        for (i, node) in self.honest_nodes() {
            let Some(m) = node.with_journal(|j| j.membership()) else {
                continue;
            };
            if m.seats().peers().contains(&revocation.victim) {
                continue;
            }
            let at = recorded_at(node, &revocation.victim);
            if at.is_none_or(|b| m.recorded_final() < b) {
                found.push(format!(
                    "peer {i}: the revoked member's seat is gone at the heal, but its chain \
                     records the revocation's block ({at:?}) final only up to {}",
                    m.recorded_final()
                ));
            }
        }
        self.violations.extend(found);
        let highest = self.highest_final();
        if let Some(r) = self.revocation.as_mut() {
            r.final_heights.1.get_or_insert(highest);
        }
    }

    /// After the run: every honest peer holds the same seats and recorded final checkpoint, its
    /// chain records the revocation, and the revoked member's seat is gone.
    pub fn check_seats(&self) -> Vec<String> {
        let Some(revocation) = &self.revocation else {
            return vec![];
        };
        let mut out = vec![];
        let views: Vec<_> = self
            .honest_nodes()
            .map(|(i, n)| {
                let m = n.with_journal(|j| j.membership()).unwrap();
                (i, n.with_journal(|j| j.schedule()), m.recorded_final(), n)
            })
            .collect();
        let Some((_, seats, recorded, _)) = views.first() else {
            return vec!["no honest peer runs".into()];
        };
        for (i, their_seats, their_recorded, node) in &views {
            if their_seats != seats || their_recorded != recorded {
                out.push(format!(
                    "peer {i}: seats {:?} recording {their_recorded} final, others {:?} \
                     recording {recorded}",
                    their_seats.peers(),
                    seats.peers()
                ));
            }
            match recorded_at(node, &revocation.victim) {
                None => out.push(format!("peer {i}: the revocation is not on the chain")),
                Some(b) if their_seats.peers().contains(&revocation.victim) => out.push(format!(
                    "peer {i}: the revocation at {b} is not in force after the quiet time \
                     (recorded final {their_recorded})"
                )),
                Some(_) => {}
            }
        }
        out
    }

    /// One line about the revocation: the highest final height when it was published and at
    /// the heal (equal: finality stopped while it was pending).
    pub fn seats_summary(&self) -> String {
        match &self.revocation {
            Some(r) => format!(
                "revocation pending with final heights {} -> {:?} during the split",
                r.final_heights.0, r.final_heights.1
            ),
            None => "no revocation".into(),
        }
    }

    /// Whether finality stopped while the revocation was pending (no honest peer finalised
    /// anything new between its publication and the heal).
    pub fn finality_stopped(&self) -> bool {
        self.revocation
            .as_ref()
            .is_some_and(|r| r.final_heights.1 == Some(r.final_heights.0))
    }
}
