//! Objects the overlay fetches one per request: an object a client stored at another peer (for
//! a submission), and objects a block references that did not travel with it (its bundle is
//! bounded, or the sender lacked them). A block refused for a missing object is not invalid:
//! the object is asked of the sender, then of every other admitted peer, and the block is
//! verified again once it is stored.

use std::collections::HashMap;

use libp2p::request_response::OutboundRequestId;
use libp2p::PeerId;
use serde_bytes::ByteBuf;
use tracing::{debug, info_span, warn};

use tokio::sync::oneshot;

use super::driver::Overlay;
use super::policy::Input;
use super::protocol::Request;
use crate::model::Cid;
use crate::node::BlockBundle;

/// Objects fetched for one block, at most (then the block is left to a later sync).
pub const MAX_OBJECTS_PER_BLOCK: u32 = 1024;
/// Blocks fetching objects at once, at most.
pub const MAX_BLOCKS_FETCHING: usize = 64;

/// A submission's object fetch: the object and who waits for it.
#[derive(Debug)]
pub(super) struct ObjectFetch {
    /// The object.
    pub(super) cid: Cid,
    /// Told whether it is stored now.
    pub(super) reply: oneshot::Sender<bool>,
}

/// Who waits for an object.
#[derive(Debug)]
pub(super) enum Waiter {
    /// A submission (answered whether the object is stored).
    Submission(ObjectFetch),
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

/// Object requests in flight: the object, who waits for it, and the peers not asked yet.
#[derive(Debug, Default)]
pub(super) struct ObjectRequests {
    pending: HashMap<OutboundRequestId, (Cid, Waiter, Vec<PeerId>)>,
    /// Objects fetched so far per block.
    per_block: HashMap<Cid, u32>,
}

impl ObjectRequests {
    /// Takes the request `id` if it is an object request.
    pub(super) fn take(&mut self, id: &OutboundRequestId) -> Option<(Cid, Waiter, Vec<PeerId>)> {
        self.pending.remove(id)
    }
}

impl Overlay {
    /// A submission's object: ask the admitted peers one after the other.
    pub(super) fn on_object_fetch(&mut self, fetch: ObjectFetch) {
        let _span = info_span!("object_fetch", object = %fetch.cid).entered();
        let peers: Vec<PeerId> = self.policy.book().admitted().copied().collect();
        let cid = fetch.cid;
        self.ask_for_object(cid, Waiter::Submission(fetch), peers);
    }

    /// Block `cid` from `from` lacks `object` here: fetch it (first from `from`), then verify
    /// the block again.
    pub(super) fn fetch_for_block(
        &mut self,
        cid: Cid,
        from: PeerId,
        bundle: BlockBundle,
        object: Cid,
    ) {
        let fetched = self.objects.per_block.get(&cid).copied().unwrap_or(0);
        let busy = !self.objects.per_block.contains_key(&cid)
            && self.objects.per_block.len() >= MAX_BLOCKS_FETCHING;
        if fetched >= MAX_OBJECTS_PER_BLOCK || busy {
            self.metrics.evict("block_object_fetches");
            self.give_up_block(cid);
            return;
        }
        self.objects.per_block.insert(cid, fetched + 1);
        debug!(block = %cid, %object, "fetching an object the block references");
        let mut peers: Vec<PeerId> = self
            .policy
            .book()
            .admitted()
            .filter(|p| **p != from)
            .copied()
            .collect();
        peers.push(from); // asked first
        let waiter = Waiter::Block {
            cid,
            from,
            bundle: Box::new(bundle),
        };
        self.ask_for_object(object, waiter, peers);
    }

    /// The block's objects are all here, or it was given up: forget its count.
    pub(super) fn block_objects_done(&mut self, cid: &Cid) {
        self.objects.per_block.remove(cid);
    }

    fn give_up_block(&mut self, cid: Cid) {
        self.objects.per_block.remove(&cid);
        self.requested.remove(&cid);
        // Not the claimer's fault: the claim stops counting, without a strike.
        self.input(Input::Unverifiable { cid, blame: false });
    }

    /// Asks the next peer in `rest` for `object`, or tells the waiter nobody has it.
    pub(super) fn ask_for_object(&mut self, object: Cid, waiter: Waiter, mut rest: Vec<PeerId>) {
        let Some(peer) = rest.pop() else {
            debug!(%object, "no peer holds the object");
            match waiter {
                Waiter::Submission(fetch) => {
                    let _ = fetch.reply.send(false);
                }
                Waiter::Block { cid, .. } => self.give_up_block(cid),
            }
            return;
        };
        let request = self.swarm.behaviour_mut().sync.send_request(
            &peer,
            Request::Object {
                cid: ByteBuf::from(object.to_bytes()),
            },
        );
        self.objects.pending.insert(request, (object, waiter, rest));
    }

    /// A peer's answer to an object request: stored (the hash checked) and the waiter told, or
    /// the next peer asked.
    pub(super) fn on_object(
        &mut self,
        peer: PeerId,
        (object, waiter, rest): (Cid, Waiter, Vec<PeerId>),
        bytes: Option<ByteBuf>,
    ) {
        if let Some(bytes) = bytes {
            match self.node.store().put(&object, &bytes) {
                Ok(_) => {
                    debug!(%peer, %object, "object fetched");
                    match waiter {
                        Waiter::Submission(fetch) => {
                            let _ = fetch.reply.send(true);
                        }
                        Waiter::Block { from, bundle, .. } => self.handle_bundle(from, *bundle),
                    }
                    return;
                }
                Err(e) => {
                    warn!(%peer, %object, error = %e, "peer sent a wrong object");
                    self.input(Input::Misbehaved {
                        peer,
                        kind: "object",
                        reason: "invalid",
                    });
                }
            }
        }
        self.ask_for_object(object, waiter, rest);
    }
}
