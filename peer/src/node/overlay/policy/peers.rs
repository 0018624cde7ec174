//! The peer book: who is connected and admitted, who is waiting for admission, what records
//! of other peers say, strikes and bans. Pure: every change takes `now`; nothing here reads a
//! clock, opens a socket or logs a decision it does not return.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use libp2p::{Multiaddr, PeerId};

use crate::trust::PublicKey;

/// How long a connection may stay unadmitted.
pub const ADMISSION_TIMEOUT: Duration = Duration::from_secs(10);
/// Strikes before a peer is disconnected and banned.
pub const MAX_STRIKES: u32 = 3;
/// How long a misbehaving peer stays banned.
pub const BAN_TIME: Duration = Duration::from_secs(300);
/// A peer whose record is older than this (and is not connected) leaves the rotation.
pub const RECORD_TTL: Duration = Duration::from_secs(30);
/// A record older than this (and not connected) is forgotten.
pub const RECORD_FORGET: Duration = Duration::from_secs(120);
/// How long a peer refused admission is blocked the first time; each further refusal doubles
/// it, up to [`BAN_TIME`].
pub const REFUSAL_BACKOFF: Duration = Duration::from_secs(1);
/// Refused peers remembered for their back-off, at most (the soonest unblocked are forgotten).
pub const MAX_REFUSED: usize = 4096;
/// Peers with strikes remembered, at most (past it, one with the fewest strikes is forgotten).
pub const MAX_STRUCK: usize = 4096;
/// Bans held, at most (past it, the ban that would end soonest is lifted early).
pub const MAX_BANNED: usize = 4096;

/// What a record of another peer says.
#[derive(Debug, Clone)]
pub struct KnownPeer {
    /// Its key (its certificate verified).
    pub key: PublicKey,
    /// Where to dial it.
    pub addrs: Vec<Multiaddr>,
    /// When it was last heard of.
    pub seen: Instant,
}

/// The outcome of a strike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strike {
    /// Counted; the peer stays.
    Counted(u32),
    /// The threshold was reached: the peer is banned until the given time.
    Banned(Instant),
}

/// What the strike and ban books let go to stay within [`MAX_STRUCK`] and [`MAX_BANNED`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Forgotten {
    /// A peer whose strikes were forgotten.
    pub strikes: Option<PeerId>,
    /// A peer whose ban was lifted early (it must be unblocked).
    pub ban: Option<PeerId>,
}

/// Connected, admitted, known, struck and banned peers.
#[derive(Debug, Default)]
pub struct PeerBook {
    admitted: BTreeMap<PeerId, (PublicKey, Instant)>,
    unadmitted: BTreeMap<PeerId, Instant>,
    known: BTreeMap<PeerId, KnownPeer>,
    strikes: BTreeMap<PeerId, u32>,
    banned: BTreeMap<PeerId, Instant>,
    /// Refused dialers: refusals so far, and until when they are blocked.
    refused: BTreeMap<PeerId, (u32, Instant)>,
}

impl PeerBook {
    /// Whether `peer` is banned at `now` (an expired ban is lifted, with its strikes).
    pub fn is_banned(&mut self, peer: &PeerId, now: Instant) -> bool {
        match self.banned.get(peer) {
            Some(until) if now < *until => true,
            Some(_) => {
                self.banned.remove(peer);
                self.strikes.remove(peer);
                false
            }
            None => false,
        }
    }

    /// A first connection with `peer` opened: it waits for admission. False if it is banned
    /// (the connection must be closed).
    pub fn connected(&mut self, peer: PeerId, now: Instant) -> bool {
        if self.is_banned(&peer, now) {
            return false;
        }
        if !self.admitted.contains_key(&peer) {
            self.unadmitted.entry(peer).or_insert(now);
        }
        true
    }

    /// The last connection with `peer` closed. True if it was admitted.
    pub fn disconnected(&mut self, peer: &PeerId) -> bool {
        self.unadmitted.remove(peer);
        self.admitted.remove(peer).is_some()
    }

    /// `peer` proved it holds `key`'s certificate. True if it was not admitted before.
    pub fn admit(&mut self, peer: PeerId, key: PublicKey, now: Instant) -> bool {
        self.unadmitted.remove(&peer);
        self.refused.remove(&peer);
        let new = !self.admitted.contains_key(&peer);
        if new {
            self.admitted.insert(peer, (key, now));
        }
        self.known
            .entry(peer)
            .or_insert(KnownPeer {
                key,
                addrs: vec![],
                seen: now,
            })
            .seen = now;
        new
    }

    /// `peer` was refused admission: it is blocked for a back-off that doubles with every
    /// refusal ([`REFUSAL_BACKOFF`] up to [`BAN_TIME`]). Returns the back-off, and a peer
    /// forgotten to keep the book bounded ([`MAX_REFUSED`]; it must be unblocked).
    pub fn refuse(&mut self, peer: PeerId, now: Instant) -> (Duration, Option<PeerId>) {
        self.unadmitted.remove(&peer);
        let refusals = self.refused.get(&peer).map_or(0, |(n, _)| *n) + 1;
        let backoff = REFUSAL_BACKOFF
            .saturating_mul(1u32 << (refusals - 1).min(16))
            .min(BAN_TIME);
        self.refused.insert(peer, (refusals, now + backoff));
        let mut forgotten = None;
        if self.refused.len() > MAX_REFUSED {
            let soonest = self
                .refused
                .iter()
                .filter(|(p, _)| **p != peer)
                .min_by_key(|(_, (_, until))| *until)
                .map(|(p, _)| *p);
            if let Some(soonest) = soonest {
                self.refused.remove(&soonest);
                forgotten = Some(soonest);
            }
        }
        (backoff, forgotten)
    }

    /// Peers whose back-off or ban ended by `now` (to unblock). A refused peer's count is kept
    /// (its next back-off is longer) until it is admitted.
    pub fn unblocked(&mut self, now: Instant) -> Vec<PeerId> {
        let mut out: Vec<PeerId> = self
            .refused
            .iter()
            .filter(|(peer, (_, until))| *until <= now && !self.banned.contains_key(peer))
            .map(|(peer, _)| *peer)
            .collect();
        for peer in &out {
            if let Some((_, until)) = self.refused.get_mut(peer) {
                // Unblocked once: far in the future so it is not reported again.
                *until = now + BAN_TIME * 1000;
            }
        }
        let ended: Vec<PeerId> = self
            .banned
            .iter()
            .filter(|(_, until)| **until <= now)
            .map(|(peer, _)| *peer)
            .collect();
        for peer in ended {
            self.banned.remove(&peer);
            self.strikes.remove(&peer);
            out.push(peer);
        }
        out
    }

    /// Peers whose admission took longer than [`ADMISSION_TIMEOUT`] (they are refused).
    pub fn admission_overdue(&mut self, now: Instant) -> Vec<PeerId> {
        let late: Vec<PeerId> = self
            .unadmitted
            .iter()
            .filter(|(_, since)| now.saturating_duration_since(**since) > ADMISSION_TIMEOUT)
            .map(|(peer, _)| *peer)
            .collect();
        for peer in &late {
            self.unadmitted.remove(peer);
        }
        late
    }

    /// Whether `peer` passed admission and is connected.
    pub fn is_admitted(&self, peer: &PeerId) -> bool {
        self.admitted.contains_key(peer)
    }

    /// The admitted, connected peers.
    pub fn admitted(&self) -> impl Iterator<Item = &PeerId> {
        self.admitted.keys()
    }

    /// The admitted peers, with their keys and when they were admitted.
    pub fn admitted_since(&self) -> impl Iterator<Item = (&PeerId, &(PublicKey, Instant))> {
        self.admitted.iter()
    }

    /// Whether a connection with `peer` is open (admitted or waiting for admission).
    pub fn is_connected(&self, peer: &PeerId) -> bool {
        self.admitted.contains_key(peer) || self.unadmitted.contains_key(peer)
    }

    /// How many peers are admitted and connected.
    pub fn admitted_count(&self) -> usize {
        self.admitted.len()
    }

    /// Records a verified identity record of `peer`.
    pub fn record(&mut self, peer: PeerId, key: PublicKey, addrs: Vec<Multiaddr>, now: Instant) {
        self.known.insert(
            peer,
            KnownPeer {
                key,
                addrs,
                seen: now,
            },
        );
    }

    /// Every peer known from records or admission.
    pub fn known(&self) -> impl Iterator<Item = (&PeerId, &KnownPeer)> {
        self.known.iter()
    }

    /// How many peers are known.
    pub fn known_count(&self) -> usize {
        self.known.len()
    }

    /// Forgets records older than [`RECORD_FORGET`] of peers not connected. True if any went.
    pub fn forget_stale(&mut self, now: Instant) -> bool {
        let before = self.known.len();
        let admitted = &self.admitted;
        self.known.retain(|peer, k| {
            admitted.contains_key(peer) || now.saturating_duration_since(k.seen) < RECORD_FORGET
        });
        self.known.len() != before
    }

    /// The committer rotation: keys of admitted peers and of peers with a fresh record.
    pub fn rotation(&self, now: Instant) -> Vec<PublicKey> {
        let mut keys: Vec<PublicKey> = self
            .known
            .iter()
            .filter(|(peer, k)| {
                self.admitted.contains_key(peer)
                    || now.saturating_duration_since(k.seen) < RECORD_TTL
            })
            .map(|(_, k)| k.key)
            .collect();
        keys.sort();
        keys
    }

    /// Counts a strike against `peer`; at [`MAX_STRIKES`] it is banned for [`BAN_TIME`] and
    /// forgotten (the caller disconnects it). Both books stay bounded: past [`MAX_STRUCK`] the
    /// other peer with the fewest strikes is forgotten, past [`MAX_BANNED`] the other ban that
    /// would end soonest is lifted (reported in [`Forgotten`]).
    pub fn strike(&mut self, peer: PeerId, now: Instant) -> (Strike, Forgotten) {
        let strikes = self.strikes.entry(peer).or_default();
        *strikes += 1;
        let count = *strikes;
        let mut forgotten = Forgotten {
            strikes: self.bound_strikes(&peer),
            ban: None,
        };
        if count < MAX_STRIKES {
            return (Strike::Counted(count), forgotten);
        }
        let (until, lifted) = self.ban(peer, now);
        forgotten.ban = lifted;
        (Strike::Banned(until), forgotten)
    }

    /// Bans `peer` for [`BAN_TIME`] from `now` and forgets it (the caller disconnects it):
    /// until when, and the peer whose ban was lifted early to stay within [`MAX_BANNED`].
    pub fn ban(&mut self, peer: PeerId, now: Instant) -> (Instant, Option<PeerId>) {
        let until = now + BAN_TIME;
        self.banned.insert(peer, until);
        self.admitted.remove(&peer);
        self.unadmitted.remove(&peer);
        self.known.remove(&peer);
        (until, self.bound_bans(&peer))
    }

    /// Forgets the strikes of one peer other than `keep` (the fewest; the first in order among
    /// equals) when the book is over [`MAX_STRUCK`].
    fn bound_strikes(&mut self, keep: &PeerId) -> Option<PeerId> {
        if self.strikes.len() <= MAX_STRUCK {
            return None;
        }
        let fewest = self
            .strikes
            .iter()
            .filter(|(p, _)| *p != keep)
            .min_by_key(|(_, n)| **n)
            .map(|(p, _)| *p)?;
        self.strikes.remove(&fewest);
        Some(fewest)
    }

    /// Lifts the ban of one peer other than `keep` (the one ending soonest), and its strikes,
    /// when the book is over [`MAX_BANNED`].
    fn bound_bans(&mut self, keep: &PeerId) -> Option<PeerId> {
        if self.banned.len() <= MAX_BANNED {
            return None;
        }
        let soonest = self
            .banned
            .iter()
            .filter(|(p, _)| *p != keep)
            .min_by_key(|(_, until)| **until)
            .map(|(p, _)| *p)?;
        self.banned.remove(&soonest);
        self.strikes.remove(&soonest);
        Some(soonest)
    }
}

#[cfg(test)]
mod tests;
