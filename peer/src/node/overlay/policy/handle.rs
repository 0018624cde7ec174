//! [`Policy::handle`]: one match dispatching each input to the part of the policy it concerns.

use std::time::Instant;

use libp2p::PeerId;

use super::announcements::Held;
use super::heights::Need;
use super::{Acceptance, Effect, Input, Policy};
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
                // the block from it, and once per block (`announcements.rs`).
                if tip_known {
                    let accept = if self.announcements.relay_once(tip, height, now) {
                        Acceptance::Accept
                    } else {
                        Acceptance::Ignore
                    };
                    out.push(Effect::Validate {
                        source: via,
                        message,
                        accept,
                    });
                } else {
                    let dropped = self.announcements.hold(tip, height, (via, message), now);
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
            Input::Tip(height) => self.tip(height, now, out),
            Input::Committed { cid, height } => {
                if self.announcements.relay_once(cid, height, now) {
                    out.push(Effect::Announce { cid, height });
                }
                self.tip(height, now, out);
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

    /// This peer's tip is now at `height`.
    fn tip(&mut self, height: u64, now: Instant, out: &mut Vec<Effect>) {
        if height > self.height {
            self.progress = now;
        }
        self.height = height;
        self.evaluate(out);
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

    /// Re-evaluates readiness and the commit gate.
    pub(super) fn evaluate(&mut self, out: &mut Vec<Effect>) {
        let connected = self.book.admitted_count() > 0 || self.seeds == 0;
        let health = self
            .readiness
            .update(self.height, self.heights.best(), connected);
        out.push(Effect::Health(health));
    }
}
