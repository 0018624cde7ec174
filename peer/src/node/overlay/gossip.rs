//! The driver's gossip side: validating what arrives on the three topics (transactions go to
//! the verification worker; announcements and records become policy inputs), and publishing
//! batches, announcements and this peer's record.

use libp2p::gossipsub::{self, IdentTopic, MessageAcceptance, MessageId};
use libp2p::{Multiaddr, PeerId};
use tracing::{debug, warn};

use super::driver::Overlay;
use super::policy::blame::tx_blame;
use super::policy::Input;
use super::protocol::{self, Announce, PeerRecord};
use super::worker::{self, Job};
use crate::journal::Block;
use crate::time;

impl Overlay {
    pub(super) fn on_gossip(&mut self, source: PeerId, id: MessageId, message: gossipsub::Message) {
        let author = message.source.unwrap_or(source);
        let accept = if !self.policy.is_admitted(&source) {
            MessageAcceptance::Ignore
        } else if message.topic == self.topics.txs.hash() {
            let job = Job::Txs {
                source,
                message: id.clone(),
                data: message.data,
            };
            match self.jobs.try_send(job) {
                // The verdict is reported when the worker is done.
                Ok(()) => return,
                Err(_) => {
                    debug!("verification queue full: transaction gossip dropped");
                    self.metrics.evict("transaction_gossip");
                    MessageAcceptance::Ignore
                }
            }
        } else if message.topic == self.topics.blocks.hash() {
            match protocol::decode::<Announce>(&message.data) {
                Ok(announce) => {
                    let tip_known = self.node.with_journal(|j| j.knows(&announce.cid));
                    self.input(Input::Announced {
                        origin: author,
                        via: source,
                        tip: announce.cid,
                        height: announce.height,
                        tip_known,
                    });
                    MessageAcceptance::Accept
                }
                Err(_) => {
                    self.garbage(source);
                    MessageAcceptance::Reject
                }
            }
        } else if message.topic == self.topics.peers.hash() {
            match protocol::decode::<PeerRecord>(&message.data) {
                Ok(record) => self.on_record(author, record),
                Err(_) => {
                    self.garbage(source);
                    MessageAcceptance::Reject
                }
            }
        } else {
            MessageAcceptance::Ignore
        };
        self.swarm
            .behaviour_mut()
            .gossipsub
            .report_message_validation_result(&id, &source, accept);
    }

    fn garbage(&mut self, peer: PeerId) {
        self.input(Input::Misbehaved {
            peer,
            kind: "message",
            reason: "garbage",
        });
    }

    fn on_record(&mut self, author: PeerId, record: PeerRecord) -> MessageAcceptance {
        match self.verify_peer_chain(&author, &record.chain) {
            Ok(key) => {
                let addrs: Vec<Multiaddr> = record
                    .addrs
                    .iter()
                    .take(16)
                    .filter_map(|a| a.parse().ok())
                    .collect();
                for addr in &addrs {
                    self.swarm.add_peer_address(author, addr.clone());
                }
                let tip_known = self.node.with_journal(|j| j.knows(&record.tip));
                self.input(Input::Record {
                    peer: author,
                    key,
                    addrs,
                    tip: record.tip,
                    height: record.height,
                    tip_known,
                });
                MessageAcceptance::Accept
            }
            Err(reason) => {
                // Expired or revoked for us may be valid for the forwarder: no strike.
                self.metrics.reject("peer", "record");
                debug!(%author, %reason, "invalid peer record");
                MessageAcceptance::Reject
            }
        }
    }

    pub(super) fn on_txs_verified(
        &mut self,
        source: PeerId,
        message: &MessageId,
        results: Option<Vec<worker::TxResult>>,
    ) {
        let accept = match results {
            None => {
                self.garbage(source);
                MessageAcceptance::Reject
            }
            Some(results) => {
                let mut invalid = false;
                for result in results {
                    match result {
                        Ok(Ok(_)) => {
                            self.metrics.transactions_admitted.inc();
                        }
                        Ok(Err(reason)) if tx_blame(&reason) => {
                            invalid = true;
                            self.input(Input::Misbehaved {
                                peer: source,
                                kind: "transaction",
                                reason: reason.label(),
                            });
                        }
                        Ok(Err(reason)) => self.metrics.reject("transaction", reason.label()),
                        Err(e) => {
                            warn!(error = %e, "storage failure while admitting a transaction")
                        }
                    }
                }
                self.metrics.mempool_size.set(self.node.pending() as i64);
                if invalid {
                    MessageAcceptance::Reject
                } else {
                    MessageAcceptance::Accept
                }
            }
        };
        self.swarm
            .behaviour_mut()
            .gossipsub
            .report_message_validation_result(message, &source, accept);
    }

    /// Publishes on `topic` (only with admitted peers to hear it).
    pub(super) fn publish(&mut self, topic: IdentTopic, data: Vec<u8>) {
        if self.policy.book().admitted_count() == 0 {
            return;
        }
        if let Err(e) = self.swarm.behaviour_mut().gossipsub.publish(topic, data) {
            debug!(error = %e, "gossip publish failed (sync will repair)");
        }
    }

    /// Announces a block this peer committed.
    pub(super) fn announce(&mut self, block: &Block) {
        let announce = Announce {
            cid: block.cid(),
            height: block.height,
        };
        let topic = self.topics.blocks.clone();
        self.publish(topic, protocol::encode(&announce));
    }

    /// Gossips this peer's identity record.
    pub(super) fn publish_record(&mut self) {
        let mut addrs: Vec<String> = self
            .swarm
            .external_addresses()
            .map(|a| a.to_string())
            .collect();
        if addrs.is_empty() {
            addrs = self.swarm.listeners().map(|a| a.to_string()).collect();
        }
        let (tip, height) = self.node.tip().unwrap_or_else(|_| (self.node.genesis(), 0));
        let record = PeerRecord {
            chain: self.node.chain().to_pem(),
            addrs,
            height,
            tip,
            timestamp: time::now(),
        };
        let topic = self.topics.peers.clone();
        self.publish(topic, protocol::encode(&record));
    }
}
