//! The links of a simulated network: a link stands only while one side dialled it and neither
//! closed it, and only between peers that can reach each other (both running, one partition
//! group or one of them a bridge, neither blocking the other).

use super::{Msg, Sim};

impl Sim {
    pub(super) fn reachable(&self, a: usize, b: usize) -> bool {
        let same_side = self.group[a] == self.group[b]
            || self.bridges.contains(&a)
            || self.bridges.contains(&b);
        a != b && self.peers[a].is_up() && self.peers[b].is_up() && same_side
    }

    /// Whether the link between `a` and `b` stands.
    pub fn has_link(&self, a: usize, b: usize) -> bool {
        self.links.contains(&(a.min(b), a.max(b)))
    }

    /// Whether a connection between `a` and `b` may stand: reachable, and neither blocks the
    /// other.
    pub(super) fn linked(&self, a: usize, b: usize) -> bool {
        self.reachable(a, b)
            && !self.peers[a].net.blocked.contains(&self.peers[b].id)
            && !self.peers[b].net.blocked.contains(&self.peers[a].id)
    }

    /// Makes the links peers dialled (when they may connect and none stands yet) and breaks
    /// the ones they closed, telling both ends; then the same for every peer that heard of a
    /// change. Starts from peer `touched` (`None`: every peer).
    pub(super) fn connections(&mut self, touched: Option<usize>) -> Vec<(usize, usize, Msg)> {
        let mut outbox = vec![];
        let mut work: Vec<usize> =
            touched.map_or_else(|| (0..self.peers.len()).collect(), |i| vec![i]);
        while let Some(a) = work.pop() {
            let closes = std::mem::take(&mut self.peers[a].net.closes);
            let dials = std::mem::take(&mut self.peers[a].net.dials);
            for b in closes {
                outbox.extend(self.unlink(a, b));
                work.extend([a, b]);
            }
            for b in dials {
                if a != b && !self.has_link(a, b) && self.linked(a, b) {
                    self.links.insert((a.min(b), a.max(b)));
                    let (id_a, id_b) = (self.peers[a].id, self.peers[b].id);
                    outbox.extend(self.peers[a].link(b, id_b, true));
                    outbox.extend(self.peers[b].link(a, id_a, true));
                    work.extend([a, b]);
                }
            }
        }
        outbox
    }

    /// Breaks the link between `a` and `b`, if it stands, telling both ends.
    fn unlink(&mut self, a: usize, b: usize) -> Vec<(usize, usize, Msg)> {
        if !self.links.remove(&(a.min(b), a.max(b))) {
            return vec![];
        }
        let (id_a, id_b) = (self.peers[a].id, self.peers[b].id);
        let mut outbox = self.peers[a].link(b, id_b, false);
        outbox.extend(self.peers[b].link(a, id_a, false));
        outbox
    }

    /// Breaks every link that can no longer stand (a partition, a crash, a block); links come
    /// back only when a peer dials again.
    pub(super) fn relink(&mut self) -> Vec<(usize, usize, Msg)> {
        let broken: Vec<(usize, usize)> = self
            .links
            .iter()
            .copied()
            .filter(|(a, b)| !self.linked(*a, *b))
            .collect();
        let mut outbox = vec![];
        for (a, b) in broken {
            outbox.extend(self.unlink(a, b));
        }
        outbox
    }
}
