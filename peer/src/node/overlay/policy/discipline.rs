//! What misbehaviour costs a peer: strikes (each with its reason, counted), bans past the
//! strike limit, refusals at admission with a growing back-off, and what a ban takes (its
//! gossip, connections, claims and seat in the committer rotation).

use std::time::Instant;

use libp2p::PeerId;

use super::peers::Strike;
use super::{Effect, Policy};

impl Policy {
    /// Refuses `peer`: blocked (connections closed and denied) for its back-off.
    pub(super) fn refuse(&mut self, peer: PeerId, now: Instant, out: &mut Vec<Effect>) {
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

    /// Strikes `peer` for `reason` (reported with its count); the strike past the limit bans
    /// it. Books full: the oldest entry is forgotten, counted as an eviction.
    pub(super) fn strike(
        &mut self,
        peer: PeerId,
        reason: &'static str,
        now: Instant,
        out: &mut Vec<Effect>,
    ) {
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
    pub(super) fn cut_off(
        &mut self,
        peer: PeerId,
        reason: &'static str,
        now: Instant,
        out: &mut Vec<Effect>,
    ) {
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
    pub(super) fn banned(&mut self, peer: PeerId, now: Instant, out: &mut Vec<Effect>) {
        self.certificates.forget(&peer);
        out.push(Effect::DirectGossip { peer, on: false });
        out.push(Effect::Block { peer, on: true });
        self.heights.forget(&peer);
        self.rotation(now, out);
        self.evaluate(out);
    }
}
