//! [`Policy::handle`]: one match dispatching each input to the part of the policy it concerns.

use std::time::Instant;

use libp2p::PeerId;

use super::announcements::Held;
use super::connectivity::neighbours;
use super::heights::Need;
use super::peers::Strike;
use super::{Acceptance, Effect, Input, Policy, RELAX_GRACE, SEED_INTERVAL};
use crate::model::Cid;

impl Policy {
    /// Takes one input at `now`; returns what the driver must do, in order.
    pub fn handle(&mut self, input: Input, now: Instant) -> Vec<Effect> {
        let mut out = vec![];
        self.dispatch(input, now, &mut out);
        out
    }

    /// Takes one input at `now`, pushing what the driver must do onto `out`.
    pub(super) fn dispatch(&mut self, input: Input, now: Instant, out: &mut Vec<Effect>) {
        match input {
            Input::Connected(peer) => {
                if !self.book.connected(peer, now) {
                    out.push(Effect::Count {
                        kind: "peer",
                        reason: "banned",
                    });
                    out.push(Effect::Disconnect {
                        peer,
                        reason: "banned for misbehaviour",
                    });
                } else if !self.book.is_admitted(&peer) {
                    out.push(Effect::SendHello(peer));
                }
            }
            Input::Disconnected(peer) => {
                self.certificates.forget(&peer);
                if self.book.disconnected(&peer) {
                    out.push(Effect::DirectGossip { peer, on: false });
                }
                self.heights.forget(&peer);
                self.evaluate(out);
            }
            Input::Admitted {
                peer,
                key,
                chain,
                tip,
                height,
                tip_known,
            } => {
                if self.book.is_banned(&peer, now) {
                    out.push(Effect::Disconnect {
                        peer,
                        reason: "banned for misbehaviour",
                    });
                    return;
                }
                self.certificates.admitted(peer, chain);
                if self.book.admit(peer, key, now) {
                    out.push(Effect::DirectGossip { peer, on: true });
                }
                if self.rotation.binary_search(&key).is_err() {
                    self.rotation(now, out);
                }
                self.claim(peer, peer, tip, height, tip_known, now, out);
            }
            Input::Certificates {
                revocations,
                seated,
                unix,
            } => {
                for (peer, reason) in self.certificates.invalid(&revocations, &seated, unix) {
                    out.push(Effect::Count {
                        kind: "peer",
                        reason,
                    });
                    self.cut_off(peer, reason, now, out);
                }
            }
            Input::Refused { peer, reason: _ } => {
                out.push(Effect::Count {
                    kind: "peer",
                    reason: "admission",
                });
                self.refuse(peer, now, out);
            }
            Input::Misbehaved { peer, kind, reason } => {
                out.push(Effect::Count { kind, reason });
                self.strike(peer, reason, now, out);
            }
            Input::Record {
                peer,
                key,
                addrs,
                tip,
                height,
                tip_known,
            } => {
                self.book.record(peer, key, addrs, now);
                // A record only adds its key to the rotation (once in it, nothing changes).
                if self.rotation.binary_search(&key).is_err() {
                    self.rotation(now, out);
                }
                if self.book.is_admitted(&peer) {
                    self.claim(peer, peer, tip, height, tip_known, now, out);
                }
            }
            Input::Announced {
                origin,
                via,
                message,
                tip,
                height,
                tip_known,
            } => {
                // Relayed only once this peer holds the block, so whoever it reaches can fetch
                // the block from it (`announcements.rs`).
                if tip_known {
                    out.push(Effect::Validate {
                        source: via,
                        message,
                        accept: Acceptance::Accept,
                    });
                } else {
                    let dropped = self.announcements.hold(tip, via, message, now);
                    self.unrelayed(dropped, Acceptance::Ignore, out);
                }
                // Claims are kept for members only (bounded by the membership).
                let member = self.book.is_admitted(&origin)
                    || self.book.known().any(|(peer, _)| *peer == origin);
                if member {
                    let from = if self.book.is_admitted(&origin) {
                        origin
                    } else {
                        via
                    };
                    self.claim(origin, from, tip, height, tip_known, now, out);
                } else if !tip_known {
                    self.want_block(via, tip, now, out);
                }
            }
            Input::HeaderVerified { cid, height, held } => {
                for liar in self.heights.verified(&cid, height, held) {
                    out.push(Effect::Count {
                        kind: "peer",
                        reason: "false_height",
                    });
                    self.strike(liar, "false_height", now, out);
                }
                self.evaluate(out);
            }
            Input::Unverifiable { cid, blame } => {
                for claimer in self.heights.unverifiable(&cid) {
                    if blame {
                        out.push(Effect::Count {
                            kind: "peer",
                            reason: "unverifiable_claim",
                        });
                        self.strike(claimer, "unverifiable_claim", now, out);
                    }
                }
                self.evaluate(out);
            }
            Input::Tip(height) => {
                if height > self.height {
                    self.progress = now;
                }
                self.height = height;
                self.evaluate(out);
            }
            Input::TxAdmitted(bundle, size) => self.batcher.push(bundle, size),
            Input::Flush => {
                for batch in self.batcher.take() {
                    out.push(Effect::GossipTxs(batch));
                }
            }
            Input::Tick { seeds } => {
                self.seeds = seeds;
                self.tick(now, out);
            }
            Input::Transfer(transfer) => self.transfer(transfer, now, out),
        }
    }

    /// Records a claim by `origin` (to fetch from `from`) and asks for what it needs.
    #[allow(clippy::too_many_arguments)]
    fn claim(
        &mut self,
        origin: PeerId,
        from: PeerId,
        tip: Cid,
        height: u64,
        tip_known: bool,
        now: Instant,
        out: &mut Vec<Effect>,
    ) {
        let need = self.heights.claim(origin, tip, height, tip_known, now);
        if need == Need::FetchTip {
            self.want_block(from, tip, now, out);
        }
        if height > self.height {
            out.push(Effect::RequestRange {
                peer: from,
                from: self.height + 1,
            });
        }
        self.evaluate(out);
    }

    /// The verdict `accept` on held announcements (their block was judged, or they waited
    /// too long).
    pub(super) fn unrelayed(&mut self, held: Vec<Held>, accept: Acceptance, out: &mut Vec<Effect>) {
        for (source, message) in held {
            out.push(Effect::Validate {
                source,
                message,
                accept,
            });
        }
    }

    /// Refuses `peer`: blocked (connections closed and denied) for its back-off.
    fn refuse(&mut self, peer: PeerId, now: Instant, out: &mut Vec<Effect>) {
        let (_, forgotten) = self.book.refuse(peer, now);
        out.push(Effect::Block { peer, on: true });
        if let Some(forgotten) = forgotten {
            out.push(Effect::Evicted("refused_peers"));
            out.push(Effect::Block {
                peer: forgotten,
                on: false,
            });
        }
    }

    fn strike(&mut self, peer: PeerId, reason: &'static str, now: Instant, out: &mut Vec<Effect>) {
        let (strike, forgotten) = self.book.strike(peer, now);
        if forgotten.strikes.is_some() {
            out.push(Effect::Evicted("struck_peers"));
        }
        if let Some(lifted) = forgotten.ban {
            out.push(Effect::Evicted("banned_peers"));
            out.push(Effect::Block {
                peer: lifted,
                on: false,
            });
        }
        match strike {
            Strike::Counted(strikes) => out.push(Effect::Struck {
                peer,
                reason,
                strikes,
                banned: false,
            }),
            Strike::Banned(_) => {
                out.push(Effect::Struck {
                    peer,
                    reason,
                    strikes: super::peers::MAX_STRIKES,
                    banned: true,
                });
                out.push(Effect::Count {
                    kind: "peer",
                    reason: "banned",
                });
                self.banned(peer, now, out);
            }
        }
    }

    /// Cuts off an admitted `peer` whose certificate stopped verifying (`reason`: revoked,
    /// expired): banned without a strike (it may have done nothing wrong), so its connections
    /// close and are denied for the ban, and nothing it authors is relayed meanwhile.
    fn cut_off(&mut self, peer: PeerId, reason: &'static str, now: Instant, out: &mut Vec<Effect>) {
        let (until, lifted) = self.book.ban(peer, now);
        self.certificates.cut_off(peer, until);
        if let Some(lifted) = lifted {
            out.push(Effect::Evicted("banned_peers"));
            out.push(Effect::Block {
                peer: lifted,
                on: false,
            });
        }
        let reason = match reason {
            "revoked" => "certificate revoked",
            "expired" => "certificate expired",
            _ => "certificate no longer valid",
        };
        out.push(Effect::Disconnect { peer, reason });
        self.banned(peer, now, out);
    }

    /// What a ban of `peer` (in the book already) takes: its gossip, connections, claims and
    /// seat in the rotation.
    fn banned(&mut self, peer: PeerId, now: Instant, out: &mut Vec<Effect>) {
        self.certificates.forget(&peer);
        out.push(Effect::DirectGossip { peer, on: false });
        out.push(Effect::Block { peer, on: true });
        self.heights.forget(&peer);
        self.rotation(now, out);
        self.evaluate(out);
    }

    /// Tells the node the committer rotation when it changed (every record and hello would
    /// otherwise repeat it: O(members) work at the node per record, at hundreds of members).
    fn rotation(&mut self, now: Instant, out: &mut Vec<Effect>) {
        let rotation = self.book.rotation(now);
        if rotation != self.rotation {
            self.rotation.clone_from(&rotation);
            out.push(Effect::Rotation(rotation));
        }
    }

    /// Re-evaluates readiness and the commit gate.
    pub(super) fn evaluate(&mut self, out: &mut Vec<Effect>) {
        let connected = self.book.admitted_count() > 0 || self.seeds == 0;
        let health = self
            .readiness
            .update(self.height, self.heights.best(), connected);
        out.push(Effect::Health(health));
    }

    fn tick(&mut self, now: Instant, out: &mut Vec<Effect>) {
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
}
