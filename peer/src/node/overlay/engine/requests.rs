//! The engine's request-response side: answering admission hellos, ranges, blocks and objects;
//! taking the answers to its own requests (nothing but a hello from a peer not admitted); and
//! the verification worker's verdicts.

use libp2p::PeerId;
use serde_bytes::ByteBuf;
use tracing::{debug, info, info_span, warn};

use super::{Asked, Engine, RequestId, Transport};
use crate::journal::Added;
use crate::model::Cid;
use crate::node::overlay::policy::admission::{check_hello, Ours};
use crate::node::overlay::policy::objects::Answer;
use crate::node::overlay::policy::{Input, Transfer};
use crate::node::overlay::protocol::{self, Hello, Request, Response, MAX_RANGE};
use crate::node::overlay::worker::Outcome;
use crate::node::BlockBundle;

/// A refused hello: send the refusal first, then hand it to [`Engine::refuse`] (which closes
/// the connection).
#[must_use]
#[derive(Debug)]
pub struct Refusal {
    peer: PeerId,
    reason: String,
}

impl Engine {
    /// Checks a hello: the policy's input admitting the peer with its claim, or why not.
    fn check_hello(&self, peer: PeerId, hello: &Hello) -> Result<Input, String> {
        let rules = self.node.peer_rules();
        let params = self.params_digests();
        let ours = Ours {
            genesis: &self.node.genesis(),
            params: params.as_ref(),
            rules: &rules,
            cache: self.node.chain_cache(),
        };
        let admission = check_hello(&peer, hello, ours, self.node.clock().unix())?;
        Ok(Input::Admitted {
            peer,
            key: admission.key,
            chain: admission.chain,
            tip: admission.tip,
            height: admission.height,
            tip_known: self.knows(&admission.tip),
        })
    }

    /// Refuses `refusal`'s peer (blocked for its back-off).
    pub fn refuse(&mut self, refusal: Refusal, t: &mut impl Transport) {
        let Refusal { peer, reason } = refusal;
        warn!(%peer, %reason, "peer refused admission");
        self.input(Input::Refused { peer, reason }, t);
    }

    /// `peer`'s request: the response to send, and a refusal to execute once it is sent.
    pub fn on_request(
        &mut self,
        peer: PeerId,
        request: Request,
        t: &mut impl Transport,
    ) -> (Response, Option<Refusal>) {
        let _span = info_span!("sync_request", %peer).entered();
        let now = self.now();
        let response = match request {
            Request::Hello(_) if self.policy.is_banned(&peer, now) => {
                Response::Refused("banned for misbehaviour".into())
            }
            Request::Hello(hello) => match self.check_hello(peer, &hello) {
                Ok(admitted) => {
                    self.input(admitted, t);
                    Response::Hello(self.hello())
                }
                Err(reason) => {
                    let response = Response::Refused(reason.clone());
                    return (response, Some(Refusal { peer, reason }));
                }
            },
            _ if !self.policy.is_admitted(&peer) => Response::Refused("not admitted".into()),
            Request::Range { from, max } => {
                let cids = self
                    .node
                    .canonical_range(from, max.min(MAX_RANGE))
                    .unwrap_or_default();
                Response::Range(cids.iter().map(|c| ByteBuf::from(c.to_bytes())).collect())
            }
            Request::Object { cid } => Response::Object(
                Cid::try_from(cid.as_ref())
                    .ok()
                    .and_then(|cid| self.node.store().get(&cid).ok().flatten())
                    .map(ByteBuf::from),
            ),
            Request::Block { cid, lean } => Response::Block(
                Cid::try_from(cid.as_ref())
                    .ok()
                    .and_then(|cid| self.node.block_bundle(&cid, !lean).ok().flatten())
                    .map(|b| ByteBuf::from(protocol::encode(&b))),
            ),
        };
        (response, None)
    }

    /// The request `id` failed: `timed_out` when its peer never answered on a live
    /// connection, else the connection closed, the stream was refused, or the request was.
    pub fn on_failure(&mut self, id: RequestId, timed_out: bool, t: &mut impl Transport) {
        match self.asked.remove(&id) {
            Some((peer, Asked::Block(cid, asked))) => {
                let ended = Transfer::RequestEnded {
                    peer,
                    cid,
                    timed_out,
                    asked,
                };
                self.input(Input::Transfer(ended), t)
            }
            Some((peer, Asked::Object(fetch))) => {
                let missing = Transfer::ObjectAnswer {
                    fetch,
                    peer,
                    answer: Answer::Missing,
                };
                self.input(Input::Transfer(missing), t);
            }
            Some((_, Asked::Hello | Asked::Range)) | None => {}
        }
    }

    /// `peer`'s response to request `id`.
    pub fn on_response(
        &mut self,
        peer: PeerId,
        id: RequestId,
        response: Response,
        t: &mut impl Transport,
    ) {
        // An answer to nothing we asked of this peer (forged, or too late) is ignored.
        let asked = match self.asked.get(&id) {
            Some((to, asked)) if *to == peer => *asked,
            _ => {
                self.metrics.reject("message", "unsolicited");
                return;
            }
        };
        match (response, asked) {
            (Response::Hello(hello), Asked::Hello) => {
                self.asked.remove(&id);
                match self.check_hello(peer, &hello) {
                    Ok(admitted) => self.input(admitted, t),
                    Err(reason) => self.refuse(Refusal { peer, reason }, t),
                }
            }
            (Response::Refused(reason), _) => {
                warn!(%peer, %reason, "a peer refused us");
                self.on_failure(id, false, t);
            }
            // Nothing but a hello is taken from a peer that has not passed admission.
            _ if !self.policy.is_admitted(&peer) => {
                self.metrics.reject("message", "unadmitted");
                self.on_failure(id, false, t);
            }
            (Response::Range(cids), Asked::Range) => {
                self.asked.remove(&id);
                for cid in cids.iter().filter_map(|c| Cid::try_from(c.as_ref()).ok()) {
                    if !self.knows(&cid) {
                        self.input(Input::Transfer(Transfer::WantBlock { peer, cid }), t);
                    }
                }
            }
            (Response::Block(Some(bytes)), Asked::Block(asked, _)) => {
                self.asked.remove(&id);
                match protocol::decode::<BlockBundle>(&bytes) {
                    Ok(bundle) => {
                        let received = Transfer::BlockReceived {
                            peer,
                            asked,
                            bundle,
                        };
                        self.input(Input::Transfer(received), t)
                    }
                    Err(_) => self.garbage(peer, t),
                }
            }
            (Response::Block(None), Asked::Block(cid, asked)) => {
                self.asked.remove(&id);
                debug!(%peer, block = %cid, "peer lacks the block we asked for");
                let missing = Transfer::BlockMissing { peer, cid, asked };
                self.input(Input::Transfer(missing), t);
            }
            (Response::Object(bytes), Asked::Object(fetch)) => {
                self.asked.remove(&id);
                let answer = match bytes {
                    None => Answer::Missing,
                    Some(bytes) => self.store_object(peer, fetch, &bytes),
                };
                let answer = Transfer::ObjectAnswer {
                    fetch,
                    peer,
                    answer,
                };
                self.input(Input::Transfer(answer), t);
            }
            // A response of the wrong kind: garbage.
            _ => {
                self.on_failure(id, false, t);
                self.garbage(peer, t);
            }
        }
    }

    /// Stores an object a peer sent (the store checks its hash against the CID asked for).
    fn store_object(&self, peer: PeerId, fetch: u64, bytes: &[u8]) -> Answer {
        let Some(object) = self.policy.fetching(fetch) else {
            return Answer::Missing;
        };
        match self.node.store().put(&object, bytes) {
            Ok(_) => Answer::Stored,
            Err(e) => {
                warn!(%peer, %object, error = %e, "peer sent a wrong object");
                Answer::Wrong
            }
        }
    }

    pub(super) fn garbage(&mut self, peer: PeerId, t: &mut impl Transport) {
        let garbage = Input::Misbehaved {
            peer,
            kind: "message",
            reason: "garbage",
        };
        self.input(garbage, t);
    }

    /// The verification worker's verdict on a job.
    pub fn on_outcome(&mut self, outcome: Outcome, t: &mut impl Transport) {
        let transfer = match outcome {
            Outcome::Txs {
                source,
                message,
                results,
            } => {
                let rejections = results.map(|results| {
                    let mut rejections = vec![];
                    for result in results {
                        match result {
                            Ok(Ok(_)) => {
                                self.metrics.transactions_admitted.inc();
                            }
                            Ok(Err(reason)) => rejections.push(reason),
                            Err(e) => warn!(error = %e, "storage failure admitting a transaction"),
                        }
                    }
                    rejections
                });
                Transfer::TxsVerified {
                    source,
                    message,
                    rejections,
                }
            }
            Outcome::Block {
                peer,
                bundle,
                received,
            } => match *received {
                // A storage failure was logged by the worker.
                Err(_) => Transfer::WorkerFailed,
                Ok(received) => {
                    match &received.outcome {
                        Ok(Added::Extended) => {
                            self.metrics.blocks_received.inc();
                        }
                        Ok(Added::Reorganized { orphans, .. }) => {
                            info!(
                                orphans = orphans.len(),
                                "fork healed: switched to a heavier branch"
                            );
                            self.metrics.forks_healed.inc();
                            self.metrics.blocks_received.inc();
                        }
                        _ => {}
                    }
                    Transfer::BlockVerified {
                        peer,
                        bundle,
                        received,
                    }
                }
            },
        };
        self.input(Input::Transfer(transfer), t);
        let height = self.height();
        self.input(Input::Tip(height), t);
        self.metrics.mempool_size.set(self.node.pending() as i64);
        self.vote(t);
    }
}
