//! The policy's side of gossiped transaction batches: each waits for the verification worker
//! (or is ignored while its bounded backlog is full), and its verdict strikes the forwarder
//! only for transactions invalid for every honest receiver (`blame`).

use std::time::Instant;

use libp2p::gossipsub::MessageId;
use libp2p::PeerId;

use super::blame::tx_blame;
use super::verifier::Job;
use super::{Acceptance, Effect, Input, Policy};
use crate::journal::TxRejection;

impl Policy {
    /// `source` forwarded batch `message`: to the worker, or ignored while its backlog is full.
    pub(super) fn txs_received(
        &mut self,
        source: PeerId,
        message: MessageId,
        data: Vec<u8>,
        out: &mut Vec<Effect>,
    ) {
        let job = Job::Txs {
            source,
            message: message.clone(),
            data,
        };
        match self.verifier.txs(job) {
            Some(job) => out.push(Effect::Verify(job)),
            None => {
                out.push(Effect::Evicted("transaction_gossip"));
                out.push(Effect::Validate {
                    source,
                    message,
                    accept: Acceptance::Ignore,
                });
            }
        }
    }

    /// The worker's verdict on a batch `source` forwarded, for gossipsub: a strike for each
    /// transaction invalid for every receiver.
    pub(super) fn txs_verified(
        &mut self,
        source: PeerId,
        message: MessageId,
        rejections: Option<Vec<TxRejection>>,
        now: Instant,
        out: &mut Vec<Effect>,
    ) {
        let accept = self.txs_verdict(source, rejections, now, out);
        out.push(Effect::Validate {
            source,
            message,
            accept,
        });
    }

    fn txs_verdict(
        &mut self,
        source: PeerId,
        rejections: Option<Vec<TxRejection>>,
        now: Instant,
        out: &mut Vec<Effect>,
    ) -> Acceptance {
        let Some(rejections) = rejections else {
            let garbage = Input::Misbehaved {
                peer: source,
                kind: "message",
                reason: "garbage",
            };
            self.dispatch(garbage, now, out);
            return Acceptance::Reject;
        };
        let mut accept = Acceptance::Accept;
        for reason in rejections {
            if tx_blame(&reason) {
                accept = Acceptance::Reject;
                let invalid = Input::Misbehaved {
                    peer: source,
                    kind: "transaction",
                    reason: reason.label(),
                };
                self.dispatch(invalid, now, out);
            } else {
                out.push(Effect::Count {
                    kind: "transaction",
                    reason: reason.label(),
                });
            }
        }
        accept
    }
}
