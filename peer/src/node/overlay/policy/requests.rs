//! Block requests in flight: a block is asked of one peer at a time, asked again only once its
//! request ended or went unanswered for [`BLOCK_REQUEST_TTL`], and at most
//! [`MAX_BLOCK_REQUESTS`] are outstanding (beyond, a request is dropped and counted: sync asks
//! again for what is still missing). Pure.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::model::Cid;

/// How long a block request stands before the block may be asked for again.
pub const BLOCK_REQUEST_TTL: Duration = Duration::from_secs(10);
/// Block requests outstanding, at most.
pub const MAX_BLOCK_REQUESTS: usize = 2048;

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

/// Outstanding block requests, by block.
#[derive(Debug, Default)]
pub struct BlockRequests {
    since: BTreeMap<Cid, Instant>,
}

impl BlockRequests {
    /// Whether `cid` may be asked for at `now` (if so, it is recorded as asked).
    pub fn ask(&mut self, cid: Cid, now: Instant) -> Ask {
        let live = |at: &Instant| now.saturating_duration_since(*at) < BLOCK_REQUEST_TTL;
        if self.since.get(&cid).is_some_and(live) {
            return Ask::Pending;
        }
        if self.since.len() >= MAX_BLOCK_REQUESTS {
            self.since.retain(|_, at| live(at));
            if self.since.len() >= MAX_BLOCK_REQUESTS {
                return Ask::Full;
            }
        }
        self.since.insert(cid, now);
        Ask::Yes
    }

    /// The request for `cid` ended (answered, failed or refused): it may be asked again.
    /// Returns when it was asked.
    pub fn done(&mut self, cid: &Cid) -> Option<Instant> {
        self.since.remove(cid)
    }

    /// The request for `cid` sent at `asked` ended: forgotten unless a later request for
    /// `cid` stands (asked for again once this one outlived [`BLOCK_REQUEST_TTL`]). Whether
    /// this was the standing request (or none stood).
    pub fn ended(&mut self, cid: &Cid, asked: Instant) -> bool {
        match self.since.get(cid) {
            Some(since) if *since > asked => false,
            Some(_) => {
                self.since.remove(cid);
                true
            }
            None => true,
        }
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
        let (cid, t0) = (dag_cbor_cid(&[1]), Instant::now());
        assert_eq!(requests.ask(cid, t0), Ask::Yes);
        assert_eq!(requests.ask(cid, t0 + Duration::from_secs(1)), Ask::Pending);
        assert_eq!(
            requests.ask(cid, t0 + BLOCK_REQUEST_TTL),
            Ask::Yes,
            "expired"
        );
        requests.done(&cid);
        assert_eq!(requests.ask(cid, t0 + BLOCK_REQUEST_TTL), Ask::Yes, "ended");
    }

    #[test]
    fn outstanding_requests_are_bounded_and_expired_ones_make_room() {
        let mut requests = BlockRequests::default();
        let t0 = Instant::now();
        for n in 0..MAX_BLOCK_REQUESTS as u32 {
            assert_eq!(requests.ask(dag_cbor_cid(&n.to_be_bytes()), t0), Ask::Yes);
        }
        let extra = dag_cbor_cid(b"extra");
        assert_eq!(requests.ask(extra, t0), Ask::Full);
        assert_eq!(requests.len(), MAX_BLOCK_REQUESTS);
        assert_eq!(requests.ask(extra, t0 + BLOCK_REQUEST_TTL), Ask::Yes);
        assert_eq!(requests.len(), 1, "the expired requests were forgotten");
    }
}
