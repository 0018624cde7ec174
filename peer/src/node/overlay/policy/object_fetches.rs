//! The policy's side of object fetches: a submission's missing object asked of the admitted
//! peers in turn, an answer judged (a wrong object strikes its sender), and what a found or
//! missing object means for the submission or block waiting for it.

use std::time::Instant;

use libp2p::PeerId;

use super::objects::{Answer, FetchId, Next, Waiter};
use super::{Acceptance, Effect, Input, Policy};
use crate::model::Cid;

impl Policy {
    /// Submission `token` needs `object`: asked of the admitted peers in turn.
    pub(super) fn fetch_object(
        &mut self,
        object: Cid,
        token: u64,
        now: Instant,
        out: &mut Vec<Effect>,
    ) {
        let peers = self.book.admitted().copied().collect();
        let next = self.objects.submission(object, token, peers);
        self.next_object(next, now, out);
    }

    /// `peer` answered object fetch `fetch`.
    pub(super) fn object_answer(
        &mut self,
        fetch: FetchId,
        peer: PeerId,
        answer: Answer,
        now: Instant,
        out: &mut Vec<Effect>,
    ) {
        if answer == Answer::Wrong {
            let wrong = Input::Misbehaved {
                peer,
                kind: "object",
                reason: "invalid",
            };
            self.dispatch(wrong, now, out);
        }
        if let Some(next) = self.objects.answered(fetch, answer) {
            self.next_object(next, now, out);
        }
    }

    /// Goes on with an object fetch: ask the next peer, or hand the result to what waits.
    pub(super) fn next_object(&mut self, next: Next, now: Instant, out: &mut Vec<Effect>) {
        match next {
            Next::Ask {
                fetch,
                peer,
                object,
            } => out.push(Effect::AskObject {
                fetch,
                peer,
                object,
            }),
            Next::Found(Waiter::Submission(token)) => {
                out.push(Effect::ObjectFetched { token, found: true })
            }
            Next::NotFound(Waiter::Submission(token)) => out.push(Effect::ObjectFetched {
                token,
                found: false,
            }),
            Next::Found(Waiter::Block { from, bundle, .. }) => {
                self.verify_block(from, *bundle, out)
            }
            Next::NotFound(Waiter::Block { cid, .. }) => self.give_up_block(cid, now, out),
        }
    }

    /// Nobody supplied an object of block `cid`: not the claimer's fault, its claim stops
    /// counting without a strike, and sync may ask for the block again.
    pub(super) fn give_up_block(&mut self, cid: Cid, now: Instant, out: &mut Vec<Effect>) {
        self.objects.block_done(&cid);
        self.requests.done(&cid);
        let dropped = self.announcements.release(&cid);
        self.unrelayed(dropped, Acceptance::Ignore, out);
        self.dispatch(Input::Unverifiable { cid, blame: false }, now, out);
    }
}
