//! The peer book on a hand-driven clock.

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
        assert_eq!(book.strike(id, now).0, Strike::Counted(n));
        assert!(book.is_admitted(&id));
    }
    assert_eq!(book.strike(id, now).0, Strike::Banned(now + BAN_TIME));
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
    assert_eq!(book.strike(id, now + BAN_TIME).0, Strike::Counted(1));
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

#[test]
fn the_strike_book_forgets_the_fewest_strikes_past_its_bound() {
    let now = Instant::now();
    let mut book = PeerBook::default();
    let (repeat, _) = peer();
    let _ = book.strike(repeat, now);
    let _ = book.strike(repeat, now);
    let mut forgotten = 0;
    for _ in 0..MAX_STRUCK {
        let (strike, gone) = book.strike(PeerId::random(), now);
        assert_eq!(strike, Strike::Counted(1));
        assert_eq!(gone.ban, None);
        if let Some(gone) = gone.strikes {
            assert_ne!(gone, repeat, "the peer with the most strikes is kept");
            forgotten += 1;
        }
    }
    assert_eq!(forgotten, 1, "exactly the overflow is forgotten");
    assert_eq!(
        book.strike(repeat, now).0,
        Strike::Banned(now + BAN_TIME),
        "its two strikes were kept"
    );
}

#[test]
fn the_ban_book_lifts_the_soonest_ending_ban_past_its_bound() {
    let now = Instant::now();
    let mut book = PeerBook::default();
    let ban = |book: &mut PeerBook, peer: PeerId, at: Instant| {
        let mut last = Forgotten::default();
        for _ in 0..MAX_STRIKES {
            last = book.strike(peer, at).1;
        }
        last.ban
    };
    let first = PeerId::random();
    assert_eq!(ban(&mut book, first, now), None);
    for i in 1..MAX_BANNED {
        let at = now + Duration::from_millis(i as u64);
        assert_eq!(ban(&mut book, PeerId::random(), at), None);
    }
    let last = PeerId::random();
    let later = now + Duration::from_secs(60);
    assert_eq!(ban(&mut book, last, later), Some(first));
    assert!(!book.is_banned(&first, later), "the lifted ban is gone");
    assert!(book.is_banned(&last, later));
    assert_eq!(
        book.strike(first, later).0,
        Strike::Counted(1),
        "its strikes went with the ban"
    );
}
