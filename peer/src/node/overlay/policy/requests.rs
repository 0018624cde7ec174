//! Block requests in flight: a block is asked of one peer at a time, asked again only once its
//! request ended or went unanswered for [`BLOCK_REQUEST_TTL`] (then preferably of another peer:
//! [`BlockRequests::overdue`]), and at most
//! [`MAX_BLOCK_REQUESTS`] are outstanding (beyond, a request is dropped and counted: sync asks
//! again for what is still missing). Pure.
//!
//! A peer in sync asks for a block alone, without the objects its transactions reference (it
//! had them by gossip); a block that came alone and lacked one and the parent of a block that
//! came before it are remembered ([`BlockRequests::ask_with_objects`]) and asked for with their
//! objects.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use libp2p::PeerId;

use crate::model::Cid;

/// How long a block request stands before the block may be asked for again.
pub const BLOCK_REQUEST_TTL: Duration = Duration::from_secs(10);
/// Block requests outstanding, at most.
pub const MAX_BLOCK_REQUESTS: usize = 2048;
/// Blocks remembered as to be asked for with their objects, at most (the oldest forgotten).
pub const MAX_ASKED_WITH_OBJECTS: usize = 1024;

/// Whether a block may be asked for now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ask {
    /// Ask for it.
    Yes,
    /// It is being asked for already.
    Pending,
    /// Too many requests outstanding: dropped (counted as an eviction).
    Full,
}

/// Outstanding block requests, by block: when, and of whom; and the blocks to ask for with
/// their objects.
#[derive(Debug, Default)]
pub struct BlockRequests {
    since: BTreeMap<Cid, (Instant, PeerId)>,
    with_objects: VecDeque<Cid>,
}

impl BlockRequests {
    /// Whether `cid` may be asked of `peer` at `now` (if so, it is recorded as asked).
    pub fn ask(&mut self, cid: Cid, peer: PeerId, now: Instant) -> Ask {
        let live = |at: &Instant| now.saturating_duration_since(*at) < BLOCK_REQUEST_TTL;
        if self.since.get(&cid).is_some_and(|(at, _)| live(at)) {
            return Ask::Pending;
        }
        if self.since.len() >= MAX_BLOCK_REQUESTS {
            self.since.retain(|_, (at, _)| live(at));
            if self.since.len() >= MAX_BLOCK_REQUESTS {
                return Ask::Full;
            }
        }
        self.since.insert(cid, (now, peer));
        Ask::Yes
    }

    /// The peer whose request for `cid` has gone unanswered for [`BLOCK_REQUEST_TTL`] and still
    /// stands (it may answer yet, up to the request timeout): a new request for `cid` should go
    /// to someone else, or a slow peer costs a whole request timeout per attempt.
    pub fn overdue(&self, cid: &Cid, now: Instant) -> Option<PeerId> {
        self.since
            .get(cid)
            .filter(|(at, _)| now.saturating_duration_since(*at) >= BLOCK_REQUEST_TTL)
            .map(|(_, peer)| *peer)
    }

    /// The request for `cid` ended (answered, failed or refused): it may be asked again.
    /// Returns when it was asked.
    pub fn done(&mut self, cid: &Cid) -> Option<Instant> {
        self.since.remove(cid).map(|(at, _)| at)
    }

    /// The request for `cid` sent at `asked` ended: forgotten unless a later request for
    /// `cid` stands (asked for again once this one outlived [`BLOCK_REQUEST_TTL`]). Whether
    /// this was the standing request (or none stood).
    pub fn ended(&mut self, cid: &Cid, asked: Instant) -> bool {
        match self.since.get(cid) {
            Some((since, _)) if *since > asked => false,
            Some(_) => {
                self.since.remove(cid);
                true
            }
            None => true,
        }
    }

    /// Block `cid` is to be asked for with its objects from now on (it came alone and lacked
    /// one, or this peer missed the gossip that came with it): whether that is news (the
    /// second time a block lacks objects, those still lacking are fetched one by one).
    pub fn ask_with_objects(&mut self, cid: Cid) -> bool {
        if self.with_objects.contains(&cid) {
            return false;
        }
        if self.with_objects.len() >= MAX_ASKED_WITH_OBJECTS {
            self.with_objects.pop_front();
        }
        self.with_objects.push_back(cid);
        true
    }

    /// Whether block `cid` is to be asked for with its objects whatever the asker holds.
    pub fn wants_objects(&self, cid: &Cid) -> bool {
        self.with_objects.contains(cid)
    }

    /// Requests outstanding.
    pub fn len(&self) -> usize {
        self.since.len()
    }

    /// Whether none is outstanding.
    pub fn is_empty(&self) -> bool {
        self.since.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::codec::dag_cbor_cid;

    #[test]
    fn a_block_is_asked_once_until_its_request_ends_or_expires() {
        let mut requests = BlockRequests::default();
        let (cid, t0, slow, other) = (
            dag_cbor_cid(&[1]),
            Instant::now(),
            PeerId::random(),
            PeerId::random(),
        );
        assert_eq!(requests.ask(cid, slow, t0), Ask::Yes);
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(requests.ask(cid, slow, t1), Ask::Pending);
        assert_eq!(requests.overdue(&cid, t1), None, "live");
        let t2 = t0 + BLOCK_REQUEST_TTL;
        assert_eq!(
            requests.overdue(&cid, t2),
            Some(slow),
            "overdue: ask another"
        );
        assert_eq!(requests.ask(cid, other, t2), Ask::Yes, "expired");
        assert_eq!(requests.overdue(&cid, t2), None, "the new request is live");
        requests.done(&cid);
        assert_eq!(requests.ask(cid, other, t2), Ask::Yes, "ended");
    }

    #[test]
    fn outstanding_requests_are_bounded_and_expired_ones_make_room() {
        let mut requests = BlockRequests::default();
        let t0 = Instant::now();
        let asked = PeerId::random();
        for n in 0..MAX_BLOCK_REQUESTS as u32 {
            let cid = dag_cbor_cid(&n.to_be_bytes());
            assert_eq!(requests.ask(cid, asked, t0), Ask::Yes);
        }
        let extra = dag_cbor_cid(b"extra");
        assert_eq!(requests.ask(extra, asked, t0), Ask::Full);
        assert_eq!(requests.len(), MAX_BLOCK_REQUESTS);
        assert_eq!(requests.ask(extra, asked, t0 + BLOCK_REQUEST_TTL), Ask::Yes);
        assert_eq!(requests.len(), 1, "the expired requests were forgotten");
    }

    #[test]
    fn a_block_that_lacked_objects_is_asked_with_them_once_and_the_memory_is_bounded() {
        let mut requests = BlockRequests::default();
        let first = dag_cbor_cid(b"first");
        assert!(!requests.wants_objects(&first));
        assert!(
            requests.ask_with_objects(first),
            "news: ask again with objects"
        );
        assert!(requests.wants_objects(&first));
        assert!(!requests.ask_with_objects(first), "again: fetch one by one");
        for n in 0..MAX_ASKED_WITH_OBJECTS as u32 {
            assert!(requests.ask_with_objects(dag_cbor_cid(&n.to_be_bytes())));
        }
        assert!(!requests.wants_objects(&first), "the oldest was forgotten");
        assert_eq!(requests.with_objects.len(), MAX_ASKED_WITH_OBJECTS);
    }
}
