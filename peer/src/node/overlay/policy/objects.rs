//! Objects fetched one per request: an object a client stored at another peer (for a
//! submission), and objects a block references that did not travel with it (its bundle is
//! bounded, or the sender lacked them). A block refused for a missing object is not invalid: the
//! object is asked of the sender, then of every other admitted peer, and the block is verified
//! again once it is stored. Pure bookkeeping; the engine sends the requests and stores the
//! answers.

use std::collections::BTreeMap;

use libp2p::PeerId;

use crate::model::Cid;
use crate::node::BlockBundle;

/// Objects fetched for one block, at most (then the block is left to a later sync).
pub const MAX_OBJECTS_PER_BLOCK: u32 = 1024;
/// Blocks fetching objects at once, at most.
pub const MAX_BLOCKS_FETCHING: usize = 64;
/// Submissions' object fetches in flight, at most (beyond, a fetch finds nothing at once).
pub const MAX_SUBMISSION_FETCHES: usize = 1024;

/// One object fetch, named by the policy.
pub type FetchId = u64;

/// Who waits for an object.
#[derive(Debug)]
pub enum Waiter {
    /// A submission, named by the engine's token (answered whether the object is stored).
    Submission(u64),
    /// A block to verify again once the object is stored.
    Block {
        /// The block's CID.
        cid: Cid,
        /// The peer that sent the block.
        from: PeerId,
        /// The block with the objects that came with it.
        bundle: Box<BlockBundle>,
    },
}

/// A peer's answer to an object request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// The object is stored now (its hash checked).
    Stored,
    /// The bytes were not the object (invalid for every receiver).
    Wrong,
    /// The peer lacks it, or the request failed.
    Missing,
}

/// What to do next about a fetch.
#[derive(Debug)]
pub enum Next {
    /// Ask `peer` for `object`.
    Ask {
        /// The fetch.
        fetch: FetchId,
        /// Whom to ask.
        peer: PeerId,
        /// The object.
        object: Cid,
    },
    /// The object is stored: its waiter may go on.
    Found(Waiter),
    /// No peer had it (or the fetch was refused to stay bounded).
    NotFound(Waiter),
}

#[derive(Debug)]
struct Fetch {
    object: Cid,
    waiter: Waiter,
    /// Peers not asked yet (the last is asked next).
    rest: Vec<PeerId>,
}

/// Object fetches in flight.
#[derive(Debug, Default)]
pub struct ObjectFetches {
    next_id: FetchId,
    pending: BTreeMap<FetchId, Fetch>,
    /// Objects fetched so far per block.
    per_block: BTreeMap<Cid, u32>,
}

impl ObjectFetches {
    /// A submission (`token`) needs `object`: ask `peers` one after the other.
    pub fn submission(&mut self, object: Cid, token: u64, peers: Vec<PeerId>) -> Next {
        let submissions = self
            .pending
            .values()
            .filter(|f| matches!(f.waiter, Waiter::Submission(_)))
            .count();
        if submissions >= MAX_SUBMISSION_FETCHES {
            return Next::NotFound(Waiter::Submission(token));
        }
        self.start(object, Waiter::Submission(token), peers)
    }

    /// Block `cid` from `from` lacks `object` here: ask `from` first, then `others`. `None`
    /// when the block fetched too many objects or too many blocks fetch at once (give it up).
    pub fn for_block(
        &mut self,
        cid: Cid,
        from: PeerId,
        bundle: BlockBundle,
        object: Cid,
        others: impl Iterator<Item = PeerId>,
    ) -> Option<Next> {
        let fetched = self.per_block.get(&cid).copied().unwrap_or(0);
        let busy =
            !self.per_block.contains_key(&cid) && self.per_block.len() >= MAX_BLOCKS_FETCHING;
        if fetched >= MAX_OBJECTS_PER_BLOCK || busy {
            self.per_block.remove(&cid);
            return None;
        }
        self.per_block.insert(cid, fetched + 1);
        let mut peers: Vec<PeerId> = others.filter(|p| *p != from).collect();
        peers.push(from); // asked first
        let waiter = Waiter::Block {
            cid,
            from,
            bundle: Box::new(bundle),
        };
        Some(self.start(object, waiter, peers))
    }

    /// `peer` answered fetch `fetch`; `None` if it is not (or no longer) in flight.
    pub fn answered(&mut self, fetch: FetchId, answer: Answer) -> Option<Next> {
        let Fetch {
            object,
            waiter,
            rest,
        } = self.pending.remove(&fetch)?;
        Some(match answer {
            Answer::Stored => Next::Found(waiter),
            Answer::Wrong | Answer::Missing => self.start(object, waiter, rest),
        })
    }

    /// The object fetch `fetch` asks for, while it is in flight.
    pub fn object(&self, fetch: FetchId) -> Option<Cid> {
        self.pending.get(&fetch).map(|f| f.object)
    }

    /// Block `cid` is verified or given up: forget its count.
    pub fn block_done(&mut self, cid: &Cid) {
        self.per_block.remove(cid);
    }

    /// Fetches in flight.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// Whether none is in flight.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    fn start(&mut self, object: Cid, waiter: Waiter, mut rest: Vec<PeerId>) -> Next {
        let Some(peer) = rest.pop() else {
            if let Waiter::Block { cid, .. } = &waiter {
                self.per_block.remove(cid);
            }
            return Next::NotFound(waiter);
        };
        self.next_id += 1;
        let fetch = self.next_id;
        self.pending.insert(
            fetch,
            Fetch {
                object,
                waiter,
                rest,
            },
        );
        Next::Ask {
            fetch,
            peer,
            object,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::codec::dag_cbor_cid;

    fn asked(next: Next) -> (FetchId, PeerId) {
        match next {
            Next::Ask { fetch, peer, .. } => (fetch, peer),
            other => panic!("expected a request, got {other:?}"),
        }
    }

    fn bundle() -> BlockBundle {
        BlockBundle {
            block: vec![1],
            objects: vec![],
        }
    }

    #[test]
    fn a_blocks_object_is_asked_of_its_sender_first_then_of_the_others() {
        let mut fetches = ObjectFetches::default();
        let (sender, other) = (PeerId::random(), PeerId::random());
        let (block, object) = (dag_cbor_cid(&[1]), dag_cbor_cid(&[2]));
        let first = fetches
            .for_block(block, sender, bundle(), object, [other, sender].into_iter())
            .unwrap();
        let (fetch, peer) = asked(first);
        assert_eq!(peer, sender);
        let (fetch, peer) = asked(fetches.answered(fetch, Answer::Wrong).unwrap());
        assert_eq!(peer, other, "a wrong object: the next peer is asked");
        assert!(fetches.answered(fetch + 100, Answer::Stored).is_none());
        match fetches.answered(fetch, Answer::Stored).unwrap() {
            Next::Found(Waiter::Block { cid, from, .. }) => {
                assert_eq!((cid, from), (block, sender))
            }
            other => panic!("expected the block back, got {other:?}"),
        }
        assert!(fetches.is_empty());
    }

    #[test]
    fn nobody_holding_the_object_gives_the_waiter_back() {
        let mut fetches = ObjectFetches::default();
        let object = dag_cbor_cid(&[3]);
        let (fetch, _) = asked(fetches.submission(object, 7, vec![PeerId::random()]));
        assert!(matches!(
            fetches.answered(fetch, Answer::Missing),
            Some(Next::NotFound(Waiter::Submission(7)))
        ));
        assert!(matches!(
            fetches.submission(object, 8, vec![]),
            Next::NotFound(Waiter::Submission(8))
        ));
    }

    #[test]
    fn blocks_fetching_objects_are_bounded() {
        let mut fetches = ObjectFetches::default();
        let peer = PeerId::random();
        for n in 0..MAX_BLOCKS_FETCHING as u32 {
            let block = dag_cbor_cid(&n.to_be_bytes());
            let next = fetches.for_block(block, peer, bundle(), block, std::iter::empty());
            assert!(next.is_some());
        }
        let extra = dag_cbor_cid(b"extra");
        assert!(fetches
            .for_block(extra, peer, bundle(), extra, std::iter::empty())
            .is_none());
    }
}
