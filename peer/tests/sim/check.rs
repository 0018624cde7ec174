//! The properties a run must keep, checked by [`Sim::check`]: honest peers converge, nothing
//! committed is lost or repeated, each peer's event view equals its chain, no honest peer is
//! punished and every adversary is found out (punished, or, for an equivocating member,
//! accused by signed evidence: `super::byzantine`).

use std::collections::{BTreeSet, HashSet};

use mediachain::node::TxStatus;

use super::adversary::Detection;
use super::{tracing, Sim, SimPeer};

impl Sim {
    /// Records the transactions honest peers committed since the last call (only peer `only`'s
    /// when given: no other peer's chain moved).
    pub(super) fn record_commits(&mut self, only: Option<usize>) {
        let trace = tracing();
        let peers = self.peers.iter_mut().enumerate();
        let chosen = peers.filter(|(i, p)| only.is_none_or(|o| o == *i) && !p.is_adversary());
        for (_, peer) in chosen {
            for id in peer.drain_committed() {
                if self.committed.insert(id) && trace {
                    eprintln!("{:>9}us peer {}: {id} committed", self.now, peer.index);
                }
            }
        }
    }

    /// One line about the run: transactions committed, final heights, messages delivered.
    pub fn summary(&self) -> String {
        let heights: Vec<u64> = self
            .peers
            .iter()
            .filter_map(|p| p.node().map(|n| n.tip().unwrap().1))
            .collect();
        format!(
            "{} transactions committed, heights {heights:?}, {} messages delivered, {} links",
            self.committed.len(),
            self.delivered,
            self.links.len()
        )
    }

    /// The properties after the run; the violations found, empty when all hold.
    pub fn check(&mut self) -> Vec<String> {
        self.record_commits(None);
        if tracing() {
            let tips: BTreeSet<mediachain::model::Cid> = self
                .peers
                .iter()
                .filter_map(|p| p.node().map(|n| n.tip().unwrap().0))
                .collect();
            for p in &self.peers {
                let held: Vec<bool> = tips
                    .iter()
                    .map(|t| p.node().is_some_and(|n| n.with_journal(|j| j.knows(t))))
                    .collect();
                eprintln!("peer {} holds tips {held:?}", p.index);
                eprintln!("peer {} unadmitted gossip {:?}", p.index, p.net.unadmitted);
                if let Some(node) = p.node() {
                    let votes: Vec<String> =
                        node.shared_votes()
                            .iter()
                            .map(|v| {
                                let voter = self.peers.iter().position(|q| {
                                    q.node().is_some_and(|n| n.public_key() == v.voter)
                                });
                                format!("{voter:?}:{}->{}", v.source.height, v.target.height)
                            })
                            .collect();
                    eprintln!(
                        "peer {} final {:?} votes {votes:?}",
                        p.index,
                        node.finalized()
                    );
                }
                if held.iter().any(|h| !h) {
                    for line in p.metrics.encode().lines() {
                        if line.contains("rejected") && !line.starts_with('#') {
                            eprintln!("peer {} metric {line}", p.index);
                        }
                    }
                }
                let tip = p.node().map(|n| n.tip().unwrap());
                let rotation = p
                    .node()
                    .map(|n| n.with_journal(|j| j.schedule().peers().len()));
                eprintln!(
                    "peer {}: tip {tip:?}, synced {}, rotation {rotation:?}, links {:?}",
                    p.index,
                    p.synced(),
                    p.net.links
                );
                for other in &p.net.links {
                    let id = self.peers[*other].id;
                    let claim = p.claim_of(&id);
                    eprintln!("peer {}: claim of {other}: {claim:?}", p.index);
                    let record = p.net.records.get(&id);
                    eprintln!("peer {}: record of {other}: {record:?}", p.index);
                }
            }
        }
        let mut out = std::mem::take(&mut self.violations);
        out.extend(self.check_adversaries());
        let honest = self.peers.iter().filter(|p| !p.is_adversary());
        let tips: BTreeSet<String> = honest
            .clone()
            .filter_map(|p| p.node())
            .map(|n| format!("{:?}", n.tip().unwrap()))
            .collect();
        if tips.len() != 1 {
            out.push(format!("peers did not converge: tips {tips:?}"));
        }
        for peer in honest {
            let Some(node) = peer.node() else { continue };
            for id in &self.committed {
                if !matches!(
                    node.tx_status(id).unwrap(),
                    TxStatus::Committed { .. } | TxStatus::Final { .. }
                ) {
                    out.push(format!(
                        "peer {}: committed transaction {id} lost",
                        peer.index
                    ));
                }
            }
            out.extend(peer.view_mismatch());
            let (_, height) = node.tip().unwrap();
            let mut seen = HashSet::new();
            for cid in node.canonical_range(1, height).unwrap() {
                let block = node.with_journal(|j| j.load_block(&cid)).unwrap();
                for tx in &block.transactions {
                    if !seen.insert(tx.id()) {
                        out.push(format!("peer {}: {} committed twice", peer.index, tx.id()));
                    }
                }
            }
        }
        out
    }

    /// No honest peer struck, banned, refused or holds evidence against another; every
    /// adversary was struck, banned or refused by some honest peer, or, if its strategy says so,
    /// is accused by evidence an honest peer keeps (detected).
    pub fn check_adversaries(&self) -> Vec<String> {
        let mut out = vec![];
        let honest: Vec<&SimPeer> = self.peers.iter().filter(|p| !p.is_adversary()).collect();
        for judge in &honest {
            for peer in &honest {
                if judge.net.punished.contains_key(&peer.id) {
                    out.push(format!(
                        "peer {}: struck or refused honest peer {}",
                        judge.index, peer.index
                    ));
                }
                let accused = judge.node().is_some_and(|node| {
                    node.with_journal(|j| j.evidence().against(&peer.key.public()).is_some())
                });
                if accused {
                    out.push(format!(
                        "peer {}: holds evidence of equivocation against honest peer {}",
                        judge.index, peer.index
                    ));
                }
            }
        }
        for adversary in self.peers.iter().filter(|p| p.is_adversary()) {
            let detection = adversary.strategy.as_ref().map(|s| s.detection());
            if detection != Some(Detection::Punished) {
                out.extend(self.check_evidence(adversary, detection));
                continue;
            }
            let judges: Vec<usize> = honest
                .iter()
                .filter(|j| j.net.punished.contains_key(&adversary.id))
                .map(|j| j.index)
                .collect();
            if judges.is_empty() {
                out.push(format!(
                    "adversary {} ({:?}) was never struck, banned or refused",
                    adversary.index, self.plan.hostile
                ));
            }
        }
        out
    }
}
