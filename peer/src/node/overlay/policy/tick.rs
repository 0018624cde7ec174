//! The policy's periodic step (`Input::Tick`): admissions overdue, back-offs over, claims
//! expired, parents withheld, stale records and held announcements dropped, the committer
//! rotation, repair sync, and the neighbour selection (dials, relaxed extra connections,
//! seeds).

use std::time::Instant;

use libp2p::PeerId;

use super::connectivity::neighbours;
use super::{Acceptance, Effect, Policy, RELAX_GRACE, SEED_INTERVAL};

impl Policy {
    /// Runs the periodic step at `now`.
    pub(super) fn tick(&mut self, now: Instant, out: &mut Vec<Effect>) {
        for peer in self.book.admission_overdue(now) {
            out.push(Effect::Count {
                kind: "peer",
                reason: "admission",
            });
            self.refuse(peer, now, out);
        }
        for peer in self.book.unblocked(now) {
            out.push(Effect::Block { peer, on: false });
        }
        for liar in self.heights.expire(now, self.height, self.progress) {
            out.push(Effect::Count {
                kind: "peer",
                reason: "unverifiable_claim",
            });
            self.strike(liar, "unverifiable_claim", now, out);
        }
        self.withheld_parents(now, out);
        self.book.forget_stale(now);
        let expired = self.announcements.expire(now);
        self.unrelayed(expired, Acceptance::Ignore, out);
        // Records age out of the rotation with time alone.
        self.rotation(now, out);
        self.connect(now, out);
        // Repair: gossip may drop announcements; ask the highest admitted claimer for what we
        // lack (or any admitted peer, when only peers beyond our neighbours claim more).
        // The fallback takes the admitted peers in turn, tick after tick: the first of them may
        // be as far behind as this peer.
        let book = &self.book;
        let last = self.repair_cursor;
        let ahead = self
            .heights
            .ahead_of(self.height, |peer| book.is_admitted(peer))
            .or_else(|| {
                self.heights.ahead_of(self.height, |_| true).and_then(|_| {
                    book.admitted()
                        .find(|p| last.is_none_or(|last| **p > last))
                        .or_else(|| book.admitted().next())
                        .copied()
                })
            });
        self.repair_cursor = ahead;
        if let Some(peer) = ahead {
            out.push(Effect::RequestRange {
                peer,
                from: self.height + 1,
            });
        }
        self.evaluate(out);
    }

    /// Dials the neighbours this peer lacks, closes connections outside the selection (after
    /// [`RELAX_GRACE`]), and dials seeds while short of admitted peers.
    fn connect(&mut self, now: Instant, out: &mut Vec<Effect>) {
        let members = self.book.rotation(now);
        let wanted = neighbours(&self.key, &members, self.k);
        let mut dials = vec![];
        for (peer, known) in self.book.known() {
            if *peer != self.me && wanted.contains(&known.key) && !self.book.is_connected(peer) {
                dials.push((*peer, known.addrs.clone()));
            }
        }
        // Short of k admitted peers (membership still being learnt): anyone known will do.
        if self.book.admitted_count() + dials.len() < self.k {
            for (peer, known) in self.book.known() {
                if *peer != self.me
                    && !self.book.is_connected(peer)
                    && !dials.iter().any(|(p, _)| p == peer)
                {
                    dials.push((*peer, known.addrs.clone()));
                }
            }
        }
        for (peer, addrs) in dials {
            if !self.book.is_banned(&peer, now) {
                out.push(Effect::Dial { peer, addrs });
            }
        }
        let connected_neighbours = self
            .book
            .admitted_since()
            .filter(|(_, (key, _))| wanted.contains(key))
            .count();
        if connected_neighbours == wanted.len() {
            let extra: Vec<PeerId> = self
                .book
                .admitted_since()
                .filter(|(_, (key, since))| {
                    !wanted.contains(key)
                        && members.contains(key)
                        && now.saturating_duration_since(*since) >= RELAX_GRACE
                })
                .map(|(peer, _)| *peer)
                .collect();
            for peer in extra {
                out.push(Effect::Disconnect {
                    peer,
                    reason: "outside the neighbour selection",
                });
            }
        }
        let due = self
            .last_seed_dial
            .is_none_or(|t| now.saturating_duration_since(t) >= SEED_INTERVAL);
        if due && self.seeds > 0 && self.book.admitted_count() < self.k.min(self.seeds) {
            self.last_seed_dial = Some(now);
            out.push(Effect::DialSeeds);
        }
    }

    /// Tells the node the committer rotation when it changed (every record and hello would
    /// otherwise repeat it: O(members) work at the node per record, at hundreds of members).
    pub(super) fn rotation(&mut self, now: Instant, out: &mut Vec<Effect>) {
        let rotation = self.book.rotation(now);
        if rotation != self.rotation {
            self.rotation.clone_from(&rotation);
            out.push(Effect::Rotation(rotation));
        }
    }
}
