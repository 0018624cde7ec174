//! The driver's request-response side: admission hellos, canonical ranges, blocks (through the
//! verification worker) and object fetches. What a verified or refused block means for the
//! peer that sent it and for claimed heights is the policy's decision.

use std::time::{Duration, Instant};

use libp2p::request_response::{OutboundRequestId, ResponseChannel};
use libp2p::PeerId;
use serde_bytes::ByteBuf;
use tokio::sync::mpsc;
use tracing::{debug, info, info_span, warn};

use super::driver::Overlay;
use super::policy::blocks::Verdict;
use super::policy::Input;
use super::protocol::{self, Hello, Request, Response, MAX_RANGE};
use super::worker::{Job, Outcome};
use super::{MAX_BACKLOG, MAX_BLOCK_REQUESTS};
use crate::journal::Added;
use crate::model::Cid;
use crate::network::SectionDigests;
use crate::node::{BlockBundle, ReceivedBlock};
use crate::time;
use crate::trust::{Chain, Level, PublicKey};

/// How long a block request stands before the block may be asked for again.
const BLOCK_REQUEST_TTL: Duration = Duration::from_secs(10);

impl Overlay {
    /// Our hello: network, genesis, certificate and tip.
    pub(super) fn hello(&self) -> Hello {
        let (tip, height) = self.node.tip().unwrap_or_else(|_| (self.node.genesis(), 0));
        Hello {
            network: self.node.params().network.clone(),
            genesis: ByteBuf::from(self.node.genesis().to_bytes()),
            chain: self.node.chain().to_pem(),
            height,
            tip: ByteBuf::from(tip.to_bytes()),
            params: self
                .node
                .params()
                .network_params
                .as_ref()
                .map(|p| Box::new(p.section_digests())),
        }
    }

    /// Verifies a peer's chain for its PeerId; returns its key.
    pub(super) fn verify_peer_chain(
        &self,
        peer: &PeerId,
        chain_pem: &str,
    ) -> Result<PublicKey, String> {
        let chain =
            Chain::from_pem(chain_pem).map_err(|e| format!("unreadable certificate: {e}"))?;
        let rules = self.node.rules();
        let key = chain
            .verify(&rules.root, &rules.revocations, time::now(), Level::Peer)
            .map_err(|e| e.to_string())?;
        if key.peer_id() != *peer {
            return Err(format!(
                "certificate is for {key}, not for the connecting peer {peer}"
            ));
        }
        Ok(key)
    }

    /// Checks a hello: the policy's input admitting the peer with its claim, or why not.
    fn check_hello(&self, peer: PeerId, hello: &Hello) -> Result<Input, String> {
        if hello.network != self.node.params().network {
            return Err(format!("peer is on network `{}`", hello.network));
        }
        if hello.genesis.as_ref() != self.node.genesis().to_bytes().as_slice() {
            let ours = self.node.params().network_params.as_ref();
            return Err(SectionDigests::genesis_mismatch(
                ours.map(|p| p.section_digests()).as_ref(),
                hello.params.as_deref(),
            ));
        }
        let key = self.verify_peer_chain(&peer, &hello.chain)?;
        let tip = Cid::try_from(hello.tip.as_ref()).map_err(|_| "unreadable tip".to_string())?;
        let tip_known = self.node.with_journal(|j| j.knows(&tip));
        Ok(Input::Admitted {
            peer,
            key,
            tip,
            height: hello.height,
            tip_known,
        })
    }

    fn refuse(&mut self, peer: PeerId, reason: String) {
        warn!(%peer, %reason, "peer refused admission");
        self.input(Input::Refused { peer, reason });
    }

    pub(super) fn on_request(
        &mut self,
        peer: PeerId,
        request: Request,
        channel: ResponseChannel<Response>,
    ) {
        let _span = info_span!("sync_request", %peer).entered();
        let response = match request {
            Request::Hello(hello) => {
                if self.policy.is_banned(&peer, Instant::now()) {
                    Response::Refused("banned for misbehaviour".into())
                } else {
                    match self.check_hello(peer, &hello) {
                        Ok(admitted) => {
                            self.input(admitted);
                            Response::Hello(self.hello())
                        }
                        Err(reason) => {
                            // The answer goes out before the connection is closed.
                            let _ = self
                                .swarm
                                .behaviour_mut()
                                .sync
                                .send_response(channel, Response::Refused(reason.clone()));
                            self.refuse(peer, reason);
                            return;
                        }
                    }
                }
            }
            _ if !self.policy.is_admitted(&peer) => Response::Refused("not admitted".into()),
            Request::Range { from, max } => {
                let cids = self
                    .node
                    .canonical_range(from, max.min(MAX_RANGE))
                    .unwrap_or_default();
                Response::Range(
                    cids.into_iter()
                        .map(|c| ByteBuf::from(c.to_bytes()))
                        .collect(),
                )
            }
            Request::Object { cid } => Response::Object(
                Cid::try_from(cid.as_ref())
                    .ok()
                    .and_then(|cid| self.node.store().get(&cid).ok().flatten())
                    .map(ByteBuf::from),
            ),
            Request::Block { cid } => {
                let bundle = Cid::try_from(cid.as_ref())
                    .ok()
                    .and_then(|cid| self.node.block_bundle(&cid).ok().flatten())
                    .map(|b| ByteBuf::from(protocol::encode(&b)));
                Response::Block(bundle)
            }
        };
        let _ = self
            .swarm
            .behaviour_mut()
            .sync
            .send_response(channel, response);
    }

    pub(super) fn on_response(
        &mut self,
        peer: PeerId,
        request: OutboundRequestId,
        response: Response,
    ) {
        let block_request = self.block_requests.remove(&request);
        match response {
            Response::Hello(hello) => match self.check_hello(peer, &hello) {
                Ok(admitted) => self.input(admitted),
                Err(reason) => self.refuse(peer, reason),
            },
            Response::Refused(reason) => {
                warn!(%peer, %reason, "a peer refused us");
                if let Some(cid) = block_request {
                    self.requested.remove(&cid);
                }
            }
            // Nothing but a hello is taken from a peer that has not passed admission.
            _ if !self.policy.is_admitted(&peer) => {
                self.metrics.reject("message", "unadmitted");
                if let Some((object, waiter, rest)) = self.objects.take(&request) {
                    self.ask_for_object(object, waiter, rest);
                }
            }
            Response::Range(cids) => {
                for cid in cids.iter().filter_map(|c| Cid::try_from(c.as_ref()).ok()) {
                    let known = self.node.with_journal(|j| j.knows(&cid));
                    if !known {
                        self.request_block(peer, cid);
                    }
                }
            }
            Response::Block(Some(bytes)) => match protocol::decode::<BlockBundle>(&bytes) {
                Ok(bundle) => self.handle_bundle(peer, bundle),
                Err(_) => self.input(Input::Misbehaved {
                    peer,
                    kind: "message",
                    reason: "garbage",
                }),
            },
            Response::Block(None) => {
                debug!(%peer, "peer lacks the block we asked for");
                if let Some(cid) = block_request {
                    self.requested.remove(&cid);
                    // The originator of a claim must hold the block it claims.
                    if self
                        .policy
                        .heights()
                        .get(&peer)
                        .is_some_and(|c| c.tip == cid)
                    {
                        self.input(Input::Unverifiable { cid, blame: true });
                    }
                }
            }
            Response::Object(bytes) => {
                if let Some(asked) = self.objects.take(&request) {
                    self.on_object(peer, asked, bytes);
                }
            }
        }
    }

    /// Asks `peer` for block `cid` (unless it was asked for within [`BLOCK_REQUEST_TTL`]).
    pub(super) fn request_block(&mut self, peer: PeerId, cid: Cid) {
        if self
            .requested
            .get(&cid)
            .is_some_and(|at| at.elapsed() < BLOCK_REQUEST_TTL)
        {
            return;
        }
        if self.requested.len() >= MAX_BLOCK_REQUESTS {
            self.requested
                .retain(|_, at| at.elapsed() < BLOCK_REQUEST_TTL);
            if self.requested.len() >= MAX_BLOCK_REQUESTS {
                // Sync asks again for what is still missing once requests complete.
                self.metrics.evict("block_requests");
                return;
            }
        }
        self.requested.insert(cid, Instant::now());
        debug!(%peer, block = %cid, "requesting a block");
        let request = self.swarm.behaviour_mut().sync.send_request(
            &peer,
            Request::Block {
                cid: ByteBuf::from(cid.to_bytes()),
            },
        );
        self.block_requests.insert(request, cid);
    }

    /// A block request ended without a block: it may be asked of anyone again at once.
    pub(super) fn block_request_failed(&mut self, request: OutboundRequestId) {
        if let Some(cid) = self.block_requests.remove(&request) {
            self.requested.remove(&cid);
        }
    }

    /// Hands a block to the verification worker (or to the bounded backlog while its queue is
    /// full; the oldest is evicted and fetched again by sync).
    pub(super) fn handle_bundle(&mut self, peer: PeerId, bundle: BlockBundle) {
        let job = Job::Block { peer, bundle };
        if self.backlog.is_empty() {
            if let Err(mpsc::error::TrySendError::Full(job)) = self.jobs.try_send(job) {
                self.backlog.push_back(job);
            }
        } else {
            self.backlog.push_back(job);
        }
        if self.backlog.len() > MAX_BACKLOG {
            self.backlog.pop_front();
            self.metrics.evict("verification_backlog");
        }
    }

    /// Moves backlogged blocks into the worker's queue while there is room.
    fn drain_backlog(&mut self) {
        while let Some(job) = self.backlog.pop_front() {
            if let Err(mpsc::error::TrySendError::Full(job)) = self.jobs.try_send(job) {
                self.backlog.push_front(job);
                return;
            }
        }
    }

    pub(super) fn on_outcome(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Txs {
                source,
                message,
                results,
            } => self.on_txs_verified(source, &message, results),
            Outcome::Block {
                peer,
                bundle,
                received,
            } => {
                // A storage failure was logged by the worker.
                if let Ok(received) = *received {
                    self.on_block_verified(peer, bundle, received);
                }
            }
        }
        self.drain_backlog();
    }

    fn on_block_verified(&mut self, peer: PeerId, bundle: BlockBundle, received: ReceivedBlock) {
        let verdict = Verdict::of(&received);
        match &verdict {
            Verdict::Taken { cid, .. } => {
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
                self.requested.remove(cid);
                self.block_objects_done(cid);
                for (from, child) in self.parked.children(cid) {
                    self.handle_bundle(from, child);
                }
            }
            Verdict::Orphan { cid, parent, .. } => {
                self.requested.remove(cid);
                for _ in 0..self.parked.park(*parent, peer, bundle) {
                    self.metrics.evict("waiting_for_parent");
                }
                self.request_block(peer, *parent);
            }
            Verdict::MissingObject { cid, object } => {
                self.fetch_for_block(*cid, peer, bundle, *object);
                return;
            }
            Verdict::Invalid { cid, blame, label } => {
                self.requested.remove(cid);
                self.block_objects_done(cid);
                if let Err(reason) = &received.outcome {
                    if *blame {
                        warn!(%peer, block = %cid, %reason, "peer sent an invalid block");
                    }
                }
                if !*blame {
                    self.metrics.reject("block", label);
                }
            }
            Verdict::Malformed => {}
        }
        for input in verdict.inputs(peer) {
            self.input(input);
        }
        let ours = self.height();
        self.input(Input::Tip(ours));
        self.metrics.mempool_size.set(self.node.pending() as i64);
    }
}
