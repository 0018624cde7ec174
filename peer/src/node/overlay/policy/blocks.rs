//! What a block from a peer means once the node has verified (or refused) it, and the blocks
//! waiting for their parent. Pure: the driver and the simulator both act on a [`Verdict`].

use std::collections::{BTreeMap, VecDeque};
use std::time::Instant;

use libp2p::PeerId;

use super::blame::block_blame;
use super::Input;
use crate::journal::{Added, BlockRejection};
use crate::model::Cid;
use crate::node::{BlockBundle, ReceivedBlock};

/// What to do with a block a peer sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The journal took it (extended, reorganised, side branch or known): claims on it count,
    /// and its children waiting for it may go.
    Taken {
        /// The block.
        cid: Cid,
        /// Its height.
        height: u64,
        /// Whether it became this peer's tip (it extended the chain or won fork choice).
        tip: bool,
    },
    /// Its header verifies but its parent is unknown: park it, fetch the parent from the sender.
    Orphan {
        /// The block.
        cid: Cid,
        /// Its height.
        height: u64,
        /// The parent to fetch.
        parent: Cid,
    },
    /// Refused for an object this peer lacks: fetch the object, then verify the block again.
    MissingObject {
        /// The block.
        cid: Cid,
        /// The object.
        object: Cid,
    },
    /// Refused; `blame` when it is invalid for every receiver.
    Invalid {
        /// The block.
        cid: Cid,
        /// Whether the sender is at fault.
        blame: bool,
        /// The rejection's label.
        label: &'static str,
    },
    /// The bytes are not a block.
    Malformed,
}

impl Verdict {
    /// The verdict on `received`.
    pub fn of(received: &ReceivedBlock) -> Self {
        let Some((cid, height)) = received.header else {
            return Verdict::Malformed;
        };
        match &received.outcome {
            Ok(added) => Verdict::Taken {
                cid,
                height,
                tip: matches!(added, Added::Extended | Added::Reorganized { .. }),
            },
            Err(BlockRejection::UnknownParent(parent)) if received.header_valid => {
                Verdict::Orphan {
                    cid,
                    height,
                    parent: *parent,
                }
            }
            Err(reason) => match reason.missing_object() {
                Some(object) => Verdict::MissingObject { cid, object },
                None => Verdict::Invalid {
                    cid,
                    blame: block_blame(reason),
                    label: reason.label(),
                },
            },
        }
    }

    /// What the policy learns from it, `peer` having sent the block.
    pub fn inputs(&self, peer: PeerId) -> Vec<Input> {
        match self {
            Verdict::Taken { cid, height, .. } => vec![Input::HeaderVerified {
                cid: *cid,
                height: *height,
                held: true,
            }],
            Verdict::Orphan { cid, height, .. } => vec![Input::HeaderVerified {
                cid: *cid,
                height: *height,
                held: false,
            }],
            Verdict::MissingObject { .. } => vec![],
            Verdict::Invalid { cid, blame, label } => {
                let mut inputs = vec![];
                if *blame {
                    inputs.push(Input::Misbehaved {
                        peer,
                        kind: "block",
                        reason: label,
                    });
                }
                inputs.push(Input::Unverifiable {
                    cid: *cid,
                    blame: *blame,
                });
                inputs
            }
            Verdict::Malformed => vec![Input::Misbehaved {
                peer,
                kind: "block",
                reason: "malformed",
            }],
        }
    }
}

/// A block waiting for its parent: who sent it, when it was parked, the block.
type Child = (PeerId, Instant, BlockBundle);

/// Blocks waiting for their parent, by parent: the children of at most `capacity` parents and
/// at most `max_bytes` of blocks and objects (beyond either, the oldest parent's children go).
#[derive(Debug)]
pub struct Parked {
    by_parent: BTreeMap<Cid, Vec<Child>>,
    order: VecDeque<Cid>,
    capacity: usize,
    bytes: usize,
    max_bytes: usize,
}

impl Parked {
    /// Room for the children of `capacity` parents, `max_bytes` in all.
    pub fn new(capacity: usize, max_bytes: usize) -> Self {
        Self {
            by_parent: BTreeMap::new(),
            order: VecDeque::new(),
            capacity,
            bytes: 0,
            max_bytes,
        }
    }

    /// Parks `bundle` from `peer` at `now` until `parent` is taken; returns how many parents'
    /// children were evicted to stay bounded.
    pub fn park(&mut self, parent: Cid, peer: PeerId, bundle: BlockBundle, now: Instant) -> usize {
        if !self.by_parent.contains_key(&parent) {
            self.order.push_back(parent);
        }
        self.bytes += bundle.size();
        self.by_parent
            .entry(parent)
            .or_default()
            .push((peer, now, bundle));
        let mut evicted = 0;
        while self.order.len() > self.capacity || self.bytes > self.max_bytes {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            self.remove(&oldest);
            evicted += 1;
        }
        evicted
    }

    /// Bytes of the blocks and objects waiting.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    fn remove(&mut self, parent: &Cid) -> Vec<Child> {
        let children = self.by_parent.remove(parent).unwrap_or_default();
        let size: usize = children.iter().map(|(_, _, b)| b.size()).sum();
        self.bytes = self.bytes.saturating_sub(size);
        children
    }

    /// Whether `peer` sent a block waiting for `parent` at or before `asked`, when a request
    /// for `parent` was sent to it: then that request reached `peer` after it sent the child,
    /// so it held the parent.
    pub fn sent_child_of(&self, parent: &Cid, peer: &PeerId, asked: Instant) -> bool {
        self.by_parent.get(parent).is_some_and(|children| {
            children
                .iter()
                .any(|(from, at, _)| from == peer && *at <= asked)
        })
    }

    /// The peers that sent a block waiting for `parent` (each holds it), first sender first.
    pub fn senders_of_children(&self, parent: &Cid) -> impl Iterator<Item = PeerId> + '_ {
        self.by_parent
            .get(parent)
            .into_iter()
            .flatten()
            .map(|(from, _, _)| *from)
    }

    /// The children waiting for `cid` (taken now), with their senders.
    pub fn children(&mut self, cid: &Cid) -> Vec<(PeerId, BlockBundle)> {
        if !self.by_parent.contains_key(cid) {
            return vec![];
        }
        self.order.retain(|c| c != cid);
        self.remove(cid)
            .into_iter()
            .map(|(from, _, bundle)| (from, bundle))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::codec::dag_cbor_cid;

    fn bundle(n: u8) -> BlockBundle {
        BlockBundle {
            block: vec![n],
            objects: vec![],
        }
    }

    #[test]
    fn parked_blocks_are_bounded_and_released_by_their_parent() {
        let mut parked = Parked::new(2, usize::MAX);
        let (peer, now) = (PeerId::random(), Instant::now());
        let (a, b, c) = (dag_cbor_cid(&[1]), dag_cbor_cid(&[2]), dag_cbor_cid(&[3]));
        assert_eq!(parked.park(a, peer, bundle(1), now), 0);
        assert_eq!(parked.park(a, peer, bundle(2), now), 0);
        assert_eq!(parked.park(b, peer, bundle(3), now), 0);
        assert_eq!(
            parked.park(c, peer, bundle(4), now),
            1,
            "the oldest parent's children go"
        );
        assert!(parked.children(&a).is_empty());
        assert_eq!(parked.children(&b).len(), 1);
        assert!(parked.children(&b).is_empty(), "released once");
        assert_eq!(parked.bytes(), 1, "the child of c");
    }

    #[test]
    fn parked_blocks_are_bounded_in_bytes() {
        let mut parked = Parked::new(512, 10);
        let (peer, now) = (PeerId::random(), Instant::now());
        let big = |n: u8| BlockBundle {
            block: vec![n; 4],
            objects: vec![],
        };
        let (a, b, c) = (dag_cbor_cid(&[1]), dag_cbor_cid(&[2]), dag_cbor_cid(&[3]));
        assert_eq!(parked.park(a, peer, big(1), now), 0);
        assert_eq!(parked.park(b, peer, big(2), now), 0);
        assert_eq!(parked.park(c, peer, big(3), now), 1, "12 bytes over 10");
        assert_eq!(parked.bytes(), 8);
        assert!(parked.children(&a).is_empty(), "the oldest went");
        assert_eq!(parked.children(&c).len(), 1);
        assert_eq!(parked.bytes(), 4);
    }

    #[test]
    fn a_block_missing_an_object_is_neither_blamed_nor_invalid() {
        let cid = dag_cbor_cid(&[9]);
        let object = dag_cbor_cid(&[10]);
        let received = ReceivedBlock {
            header: Some((cid, 4)),
            header_valid: true,
            outcome: Err(BlockRejection::Transaction {
                index: 0,
                id: crate::journal::TxId([0; 32]),
                reason: Box::new(crate::journal::TxRejection::UnknownObject(object)),
            }),
        };
        let verdict = Verdict::of(&received);
        assert_eq!(verdict, Verdict::MissingObject { cid, object });
        assert!(verdict.inputs(PeerId::random()).is_empty());
    }

    #[test]
    fn an_orphan_counts_only_with_a_valid_header() {
        let (cid, parent) = (dag_cbor_cid(&[1]), dag_cbor_cid(&[0]));
        let mut received = ReceivedBlock {
            header: Some((cid, 9)),
            header_valid: true,
            outcome: Err(BlockRejection::UnknownParent(parent)),
        };
        assert_eq!(
            Verdict::of(&received),
            Verdict::Orphan {
                cid,
                height: 9,
                parent
            }
        );
        received.header_valid = false;
        assert!(matches!(
            Verdict::of(&received),
            Verdict::Invalid { blame: false, .. }
        ));
    }
}
