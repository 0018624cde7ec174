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
    /// forgotten (the caller disconnects it).
    pub fn strike(&mut self, peer: PeerId, now: Instant) -> Strike {
        let strikes = self.strikes.entry(peer).or_default();
        *strikes += 1;
        if *strikes < MAX_STRIKES {
            return Strike::Counted(*strikes);
        }
        let until = now + BAN_TIME;
        self.banned.insert(peer, until);
        self.admitted.remove(&peer);
        self.unadmitted.remove(&peer);
        self.known.remove(&peer);
        Strike::Banned(until)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trust::SecretKey;

    fn peer() -> (PeerId, PublicKey) {
        let key = SecretKey::generate().public();
        (key.peer_id(), key)
    }

    #[test]
    fn a_peer_is_banned_at_the_strike_threshold_and_not_before() {
        let now = Instant::now();
        let mut book = PeerBook::default();
        let (id, key) = peer();
        assert!(book.connected(id, now));
        assert!(book.admit(id, key, now));
        for n in 1..MAX_STRIKES {
            assert_eq!(book.strike(id, now), Strike::Counted(n));
            assert!(book.is_admitted(&id));
        }
        assert_eq!(book.strike(id, now), Strike::Banned(now + BAN_TIME));
        assert!(!book.is_admitted(&id));
        assert!(
            book.rotation(now).is_empty(),
            "a banned peer leaves the rotation"
        );
    }

    #[test]
    fn a_banned_peer_is_refused_when_it_reconnects_until_the_ban_expires() {
        let now = Instant::now();
        let mut book = PeerBook::default();
        let (id, _) = peer();
        for _ in 0..MAX_STRIKES {
            let _ = book.strike(id, now);
        }
        assert!(!book.connected(id, now + Duration::from_secs(1)));
        assert!(!book.connected(id, now + BAN_TIME - Duration::from_millis(1)));
        assert!(book.connected(id, now + BAN_TIME));
        // The expired ban took its strikes with it: one more strike is not a ban.
        assert_eq!(book.strike(id, now + BAN_TIME), Strike::Counted(1));
    }

    #[test]
    fn an_unadmitted_connection_is_overdue_after_the_admission_timeout() {
        let now = Instant::now();
        let mut book = PeerBook::default();
        let (id, key) = peer();
        let (late, _) = peer();
        assert!(book.connected(id, now));
        assert!(book.connected(late, now));
        assert!(book.admit(id, key, now + Duration::from_secs(1)));
        assert!(book.admission_overdue(now + ADMISSION_TIMEOUT).is_empty());
        let overdue = book.admission_overdue(now + ADMISSION_TIMEOUT + Duration::from_millis(1));
        assert_eq!(overdue, vec![late]);
        assert!(book
            .admission_overdue(now + ADMISSION_TIMEOUT * 2)
            .is_empty());
    }

    #[test]
    fn a_refused_dialer_is_blocked_for_a_back_off_that_doubles() {
        let now = Instant::now();
        let mut book = PeerBook::default();
        let (id, key) = peer();
        assert_eq!(book.refuse(id, now), (REFUSAL_BACKOFF, None));
        assert!(book.unblocked(now + REFUSAL_BACKOFF / 2).is_empty());
        assert_eq!(book.unblocked(now + REFUSAL_BACKOFF), vec![id]);
        assert!(
            book.unblocked(now + REFUSAL_BACKOFF * 3).is_empty(),
            "reported once"
        );
        assert_eq!(book.refuse(id, now).0, REFUSAL_BACKOFF * 2);
        assert_eq!(book.refuse(id, now).0, REFUSAL_BACKOFF * 4);
        for _ in 0..40 {
            let _ = book.refuse(id, now);
        }
        assert_eq!(book.refuse(id, now).0, BAN_TIME, "capped at the ban time");
        book.admit(id, key, now);
        assert_eq!(
            book.refuse(id, now).0,
            REFUSAL_BACKOFF,
            "admission clears the count"
        );
    }

    #[test]
    fn the_refusal_book_is_bounded() {
        let now = Instant::now();
        let mut book = PeerBook::default();
        let first = PeerId::random();
        let _ = book.refuse(first, now);
        for i in 1..MAX_REFUSED {
            let _ = book.refuse(PeerId::random(), now + Duration::from_millis(i as u64));
        }
        let (_, forgotten) = book.refuse(PeerId::random(), now + Duration::from_secs(60));
        assert_eq!(forgotten, Some(first), "the soonest unblocked goes first");
    }

    #[test]
    fn an_expired_ban_is_reported_for_unblocking() {
        let now = Instant::now();
        let mut book = PeerBook::default();
        let (id, _) = peer();
        for _ in 0..MAX_STRIKES {
            let _ = book.strike(id, now);
        }
        assert!(book.unblocked(now + BAN_TIME / 2).is_empty());
        assert_eq!(book.unblocked(now + BAN_TIME), vec![id]);
        assert!(!book.is_banned(&id, now + BAN_TIME));
    }

    #[test]
    fn the_rotation_holds_admitted_peers_and_fresh_records_only() {
        let now = Instant::now();
        let mut book = PeerBook::default();
        let (connected, connected_key) = peer();
        let (recorded, recorded_key) = peer();
        let _ = book.connected(connected, now);
        book.admit(connected, connected_key, now);
        book.record(recorded, recorded_key, vec![], now);
        assert_eq!(book.rotation(now).len(), 2);
        let later = now + RECORD_TTL;
        assert_eq!(book.rotation(later), vec![connected_key]);
        assert!(!book.forget_stale(later));
        assert!(book.forget_stale(now + RECORD_FORGET));
        assert_eq!(book.known_count(), 1);
    }
}
