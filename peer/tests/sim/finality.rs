//! Finality properties of a run under network parameters (docs/consensus.md, "Finality"),
//! checked by [`Sim::check_finality`]: every checkpoint any honest peer ever announced final is
//! on the chain all honest peers end on (so no two honest peers finalised conflicting blocks,
//! and no final block or transaction was ever reverted), and after the last heal finality
//! resumed: by the end of the quiet time every honest peer holds every block with a
//! transaction final, and reports every committed transaction `final`.

use mediachain::node::TxStatus;

use super::Sim;

impl Sim {
    /// The finality violations found, empty when all hold.
    pub fn check_finality(&self) -> Vec<String> {
        let mut out = vec![];
        let honest: Vec<_> = self
            .peers
            .iter()
            .filter(|p| !p.is_adversary() && p.node().is_some())
            .collect();
        let Some(reference) = honest.first().and_then(|p| p.node()) else {
            return vec!["no honest peer runs".into()];
        };
        for peer in &honest {
            for checkpoint in &peer.finals {
                let on_chain = reference.canonical_range(checkpoint.height, 1).unwrap();
                if checkpoint.height > 0 && on_chain.first() != Some(&checkpoint.cid) {
                    out.push(format!(
                        "peer {}: final checkpoint {} at height {} is not on the chain honest \
                         peers hold ({on_chain:?})",
                        peer.index, checkpoint.cid, checkpoint.height
                    ));
                }
            }
            let node = peer.node().unwrap();
            let finalized = node.finalized().map_or(0, |c| c.height);
            let (_, height) = node.tip().unwrap();
            let last_tx = node
                .canonical_range(1, height)
                .unwrap()
                .into_iter()
                .zip(1..)
                .filter(|(cid, _)| {
                    let block = node.with_journal(|j| j.load_block(cid)).unwrap();
                    !block.transactions.is_empty()
                })
                .map(|(_, h)| h)
                .max()
                .unwrap_or(0);
            for id in &self.committed {
                if !matches!(node.tx_status(id).unwrap(), TxStatus::Final { .. }) {
                    out.push(format!(
                        "peer {}: committed transaction {id} is not final ({:?})",
                        peer.index,
                        node.tx_status(id).unwrap()
                    ));
                }
            }
            if finalized < last_tx {
                out.push(format!(
                    "peer {}: finality did not resume: final height {finalized}, last block \
                     with a transaction at {last_tx} (tip {height})",
                    peer.index
                ));
            }
        }
        out
    }

    /// Final heights of the running peers.
    pub fn finality_summary(&self) -> String {
        let heights: Vec<u64> = self
            .peers
            .iter()
            .filter_map(|p| p.node())
            .map(|n| n.finalized().map_or(0, |c| c.height))
            .collect();
        let announced: usize = self.peers.iter().map(|p| p.finals.len()).sum();
        format!("final heights {heights:?}, {announced} finality events")
    }
}
