//! The policy's side of moving blocks, objects and gossiped transactions: the [`Transfer`]
//! inputs, and for blocks which to ask for (once, hedged when overdue), what waits for the
//! verification worker, what a verified block means (its children released, its parent or a
//! missing object fetched, its claims counted, its sender struck). Object fetches are in
//! `object_fetches`, gossiped batches in `tx_gossip`. The engine sends what the [`Effect`]s say
//! and reports answers as [`Transfer`] inputs.

use std::time::Instant;

use libp2p::gossipsub::MessageId;
use libp2p::PeerId;

use super::blocks::Verdict;
use super::objects::{Answer, FetchId};
use super::requests::Ask;
use super::verifier::Job;
use super::{Acceptance, Effect, Input, Policy};
use crate::journal::TxRejection;
use crate::model::codec::dag_cbor_cid;
use crate::model::Cid;
use crate::node::{BlockBundle, ReceivedBlock};

/// Inputs about fetching and verifying what peers send.
#[derive(Debug)]
pub enum Transfer {
    /// Block `cid` is wanted (sync found it in a range, or a child waits for it): ask `peer`.
    WantBlock {
        /// Whom to ask.
        peer: PeerId,
        /// The block.
        cid: Cid,
    },
    /// `peer` answered that it lacks block `cid`, asked for at `asked`.
    BlockMissing {
        /// The peer.
        peer: PeerId,
        /// The block.
        cid: Cid,
        /// When this request was sent.
        asked: Instant,
    },
    /// The request to `peer` for block `cid` failed or was refused: it may be asked again.
    /// `timed_out`: the connection stood but `peer` never answered.
    RequestEnded {
        /// The peer asked.
        peer: PeerId,
        /// The block.
        cid: Cid,
        /// Whether it went unanswered on a live connection.
        timed_out: bool,
        /// When this request was sent.
        asked: Instant,
    },
    /// `peer` answered our request for block `asked` with a block (still unverified).
    BlockReceived {
        /// The sender.
        peer: PeerId,
        /// The block asked for.
        asked: Cid,
        /// The block with its objects.
        bundle: BlockBundle,
    },
    /// The worker verified a block `peer` sent.
    BlockVerified {
        /// The sender.
        peer: PeerId,
        /// The block (kept for a block that waits for its parent or an object).
        bundle: BlockBundle,
        /// What the node made of it.
        received: ReceivedBlock,
    },
    /// The worker finished a job without a verdict (a storage failure, logged by it).
    WorkerFailed,
    /// `source` forwarded a gossiped transaction batch.
    TxsReceived {
        /// The forwarder.
        source: PeerId,
        /// The gossip id.
        message: MessageId,
        /// The encoded batch.
        data: Vec<u8>,
    },
    /// The worker verified a batch: `None` if it did not decode, else the rejections.
    TxsVerified {
        /// The forwarder.
        source: PeerId,
        /// The gossip id.
        message: MessageId,
        /// Why transactions of the batch were refused.
        rejections: Option<Vec<TxRejection>>,
    },
    /// A submission (`token`) needs `object` from other peers.
    FetchObject {
        /// The object.
        object: Cid,
        /// The engine's name for the submission.
        token: u64,
    },
    /// `peer` answered object fetch `fetch`.
    ObjectAnswer {
        /// The fetch.
        fetch: FetchId,
        /// The peer.
        peer: PeerId,
        /// Its answer.
        answer: Answer,
    },
}

impl Policy {
    pub(super) fn transfer(&mut self, input: Transfer, now: Instant, out: &mut Vec<Effect>) {
        match input {
            Transfer::WantBlock { peer, cid } => self.want_block(peer, cid, now, out),
            Transfer::BlockMissing { peer, cid, asked } => {
                self.requests.ended(&cid, asked);
                // The originator of a claim must hold the block it claims, and the sender of a
                // block its parent (a journal keeps only connected blocks, and a store never
                // drops a block). Only the claimer that lacks its own tip lied: others that
                // claim the same block (its committer among them) are not to blame. What the
                // answer proves depends on when this very request was sent (`asked`, not a
                // later request for the same block): a claim made after it (a record or hello
                // that overtook the answer: the peer got the block meanwhile) is not
                // contradicted, nor is a child sent after it (the answers crossed); the block
                // is asked again.
                let claim = self.heights.get(&peer).filter(|c| c.tip == cid);
                if claim.is_some_and(|c| c.since > asked) {
                    self.want_block(peer, cid, now, out);
                } else if self.heights.withdraw(&peer, &cid) {
                    let lied = Input::Misbehaved {
                        peer,
                        kind: "peer",
                        reason: "unverifiable_claim",
                    };
                    self.dispatch(lied, now, out);
                    self.evaluate(out);
                } else if self.parked.sent_child_of(&cid, &peer, asked) {
                    self.missing_parent(peer, now, out);
                } else {
                    self.ask_holder(cid, None, now, out);
                }
            }
            Transfer::RequestEnded {
                peer,
                cid,
                timed_out,
                asked,
            } => {
                // Silence is no proof (a peer under load answers late, and its answer is then
                // dropped): it is noted, and forgiven once the parent arrives from anyone
                // (`withheld`); the parent is asked of another child's sender, or of the next
                // admitted peer, and of `peer` again after them.
                if timed_out
                    && self.parked.sent_child_of(&cid, &peer, asked)
                    && self.withheld.silent(peer, cid, now)
                {
                    out.push(Effect::Evicted("withheld_parents"));
                }
                // A later request for the block stands: it answers for it.
                if !self.requests.ended(&cid, asked) {
                    return;
                }
                if self.ask_holder(cid, Some(peer), now, out) || !timed_out {
                    return;
                }
                // A silent peer must not starve sync: the next admitted peer is asked.
                let next = self
                    .book
                    .admitted()
                    .find(|p| **p > peer)
                    .or_else(|| self.book.admitted().next())
                    .copied();
                if let Some(next) = next.filter(|next| *next != peer) {
                    self.want_block(next, cid, now, out);
                }
            }
            Transfer::BlockReceived {
                peer,
                asked,
                bundle,
            } => {
                if dag_cbor_cid(&bundle.block) == asked {
                    self.verify_block(peer, bundle, out);
                } else {
                    // Another block than the one asked for: an honest peer answers with the
                    // block it stores under that CID.
                    self.requests.done(&asked);
                    let wrong = Input::Misbehaved {
                        peer,
                        kind: "block",
                        reason: "not_asked",
                    };
                    self.dispatch(wrong, now, out);
                }
            }
            Transfer::BlockVerified {
                peer,
                bundle,
                received,
            } => {
                self.worker_finished(out);
                self.block_verified(peer, bundle, &received, now, out);
            }
            Transfer::WorkerFailed => self.worker_finished(out),
            Transfer::TxsReceived {
                source,
                message,
                data,
            } => self.txs_received(source, message, data, out),
            Transfer::TxsVerified {
                source,
                message,
                rejections,
            } => {
                self.worker_finished(out);
                self.txs_verified(source, message, rejections, now, out);
            }
            Transfer::FetchObject { object, token } => self.fetch_object(object, token, now, out),
            Transfer::ObjectAnswer {
                fetch,
                peer,
                answer,
            } => self.object_answer(fetch, peer, answer, now, out),
        }
    }

    /// `peer` said it lacks the parent of a block it sent before it was asked: a peer holds
    /// the parent of every block it sends (a journal keeps only connected blocks).
    fn missing_parent(&mut self, peer: PeerId, now: Instant, out: &mut Vec<Effect>) {
        let orphan = Input::Misbehaved {
            peer,
            kind: "block",
            reason: "missing_parent",
        };
        self.dispatch(orphan, now, out);
    }

    /// Strikes the senders that left parents of their blocks unanswered which no peer
    /// supplied since (`withheld`).
    pub(super) fn withheld_parents(&mut self, now: Instant, out: &mut Vec<Effect>) {
        for peer in self.withheld.due(now) {
            let orphans = Input::Misbehaved {
                peer,
                kind: "block",
                reason: "withheld_parent",
            };
            self.dispatch(orphans, now, out);
        }
    }

    /// Asks for block `cid` a peer that sent one of the blocks waiting for it (it holds the
    /// parent of what it sent), other than `not`; whether there was one.
    fn ask_holder(
        &mut self,
        cid: Cid,
        not: Option<PeerId>,
        now: Instant,
        out: &mut Vec<Effect>,
    ) -> bool {
        let holder = self
            .parked
            .senders_of_children(&cid)
            .find(|sender| Some(*sender) != not);
        if let Some(holder) = holder {
            self.want_block(holder, cid, now, out);
        }
        holder.is_some()
    }

    /// Asks `peer` for block `cid` unless it is being asked for already. When `peer`'s own
    /// request for it is overdue (a busy peer answers late, if at all, up to the request
    /// timeout), the block is asked of another peer likely to hold it instead (hedging): a
    /// sender of one of its children, else a claimer of it, else the next admitted peer. A
    /// ready peer asks for the block alone (it holds the objects), unless the block is to be
    /// asked for with them ([`super::requests::BlockRequests::ask_with_objects`]).
    pub(super) fn want_block(
        &mut self,
        peer: PeerId,
        cid: Cid,
        now: Instant,
        out: &mut Vec<Effect>,
    ) {
        let peer = match self.requests.overdue(&cid, now) {
            Some(slow) if slow == peer => self.other_source(&cid, slow).unwrap_or(peer),
            _ => peer,
        };
        let lean = self.readiness.health().ready && !self.requests.wants_objects(&cid);
        match self.requests.ask(cid, peer, now) {
            Ask::Yes => out.push(Effect::FetchBlock { peer, cid, lean }),
            Ask::Pending => {}
            Ask::Full => out.push(Effect::Evicted("block_requests")),
        }
    }

    /// A peer other than `not` that should hold block `cid`: the sender of a child of it, an
    /// admitted claimer of it, else the next admitted peer (in order, wrapping around).
    fn other_source(&self, cid: &Cid, not: PeerId) -> Option<PeerId> {
        let admitted = || self.book.admitted().copied().filter(|p| *p != not);
        self.parked
            .senders_of_children(cid)
            .find(|sender| *sender != not)
            .or_else(|| admitted().find(|p| self.heights.get(p).is_some_and(|c| c.tip == *cid)))
            .or_else(|| admitted().find(|p| *p > not))
            .or_else(|| admitted().next())
    }

    /// Hands a block to the worker, or to the bounded backlog while it is full.
    pub(super) fn verify_block(
        &mut self,
        peer: PeerId,
        bundle: BlockBundle,
        out: &mut Vec<Effect>,
    ) {
        let (start, evicted) = self.verifier.block(Job::Block { peer, bundle });
        for _ in 0..evicted {
            out.push(Effect::Evicted("verification_backlog"));
        }
        out.extend(start.map(Effect::Verify));
    }

    pub(super) fn worker_finished(&mut self, out: &mut Vec<Effect>) {
        out.extend(self.verifier.finished().into_iter().map(Effect::Verify));
    }

    fn block_verified(
        &mut self,
        peer: PeerId,
        bundle: BlockBundle,
        received: &ReceivedBlock,
        now: Instant,
        out: &mut Vec<Effect>,
    ) {
        let verdict = Verdict::of(received);
        match &verdict {
            Verdict::Taken { cid, height, tip } => {
                self.requests.done(cid);
                self.withheld.supplied(cid);
                self.objects.block_done(cid);
                // A tip no announcement brought is announced here, once caught up (not for
                // every block of a range sync).
                let caught_up = *height >= self.heights.best();
                let taken = self
                    .announcements
                    .taken(cid, *height, *tip && caught_up, now);
                self.unrelayed(taken.relay.into_iter().collect(), Acceptance::Accept, out);
                self.unrelayed(taken.ignore, Acceptance::Ignore, out);
                if taken.announce {
                    out.push(Effect::Announce {
                        cid: *cid,
                        height: *height,
                    });
                }
                for (from, child) in self.parked.children(cid) {
                    self.verify_block(from, child, out);
                }
            }
            Verdict::Orphan { cid, parent, .. } => {
                self.requests.done(cid);
                for _ in 0..self.parked.park(*parent, peer, bundle, now) {
                    out.push(Effect::Evicted("waiting_for_parent"));
                }
                // A parent this peer missed came with gossip it likely missed too.
                self.requests.ask_with_objects(*parent);
                self.want_block(peer, *parent, now, out);
            }
            // A block that came alone lacked an object this peer should have had (it missed
            // some gossip): asked again of its sender with its objects, rather than fetched one
            // object at a time, each fetch followed by another verification of the block.
            Verdict::MissingObject { cid, .. }
                if bundle.objects.is_empty() && self.requests.ask_with_objects(*cid) =>
            {
                self.requests.done(cid);
                self.want_block(peer, *cid, now, out);
            }
            Verdict::MissingObject { cid, object } => {
                let others: Vec<PeerId> = self.book.admitted().copied().collect();
                match self
                    .objects
                    .for_block(*cid, peer, bundle, *object, others.into_iter())
                {
                    Some(next) => self.next_object(next, now, out),
                    None => {
                        out.push(Effect::Evicted("block_object_fetches"));
                        self.give_up_block(*cid, now, out);
                    }
                }
            }
            Verdict::Invalid { cid, blame, label } => {
                self.requests.done(cid);
                self.objects.block_done(cid);
                let verdict = if *blame {
                    Acceptance::Reject
                } else {
                    Acceptance::Ignore
                };
                let dropped = self.announcements.release(cid);
                self.unrelayed(dropped, verdict, out);
                if !*blame {
                    out.push(Effect::Count {
                        kind: "block",
                        reason: label,
                    });
                }
            }
            Verdict::Malformed => {}
        }
        for input in verdict.inputs(peer) {
            self.dispatch(input, now, out);
        }
    }
}
