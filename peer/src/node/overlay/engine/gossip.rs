//! The engine's gossip side: what arrives on the four topics (votes in `super::votes`) (transaction batches go to the
//! verification worker, announcements and records become policy inputs, nothing is taken from
//! a peer not admitted), and what this peer publishes (its announcements and identity record).

use libp2p::gossipsub::MessageId;
use libp2p::{Multiaddr, PeerId};
use serde_bytes::ByteBuf;
use tracing::debug;

use super::{Engine, Topic, Transport};
use crate::journal::membership::Record;
use crate::journal::Block;
use crate::node::overlay::policy::admission::verify_chain;
use crate::node::overlay::policy::{Acceptance, Input, Transfer};
use crate::node::overlay::protocol::{self, Announce, PeerRecord};
use crate::node::TxBundle;
use crate::trust::{Chain, PublicKey};

/// Addresses taken from one identity record, at most.
pub const MAX_RECORD_ADDRS: usize = 16;
/// Membership records taken from one identity record, at most.
pub const MAX_RECORDS_PER_PEER_RECORD: usize = 16;
/// Record chains kept verified and parsed, at most (emptied when full).
pub const MAX_KNOWN_CHAINS: usize = 4096;

/// The chain an author's records carried last, verified.
#[derive(Debug)]
pub(super) struct KnownChain {
    pem: String,
    root: PublicKey,
    chain: Chain,
    key: PublicKey,
}

impl Engine {
    /// A gossip message on `topic` from `source` (the forwarder), signed by `author`. Returns
    /// the record's addresses when it is a verified identity record (the driver adds them to
    /// its address book).
    pub fn on_gossip(
        &mut self,
        source: PeerId,
        author: PeerId,
        topic: Topic,
        message: MessageId,
        data: Vec<u8>,
        t: &mut impl Transport,
    ) -> Vec<Multiaddr> {
        let mut addrs = vec![];
        let now = self.now();
        let accept = if !self.policy.is_admitted(&source) {
            self.metrics.reject("message", "unadmitted");
            Acceptance::Ignore
        } else if self.policy.is_cut_off(&author, now) {
            // Its certificate stopped verifying here: nothing it authors is relayed.
            self.metrics.reject("message", "cut_off");
            Acceptance::Ignore
        } else {
            match topic {
                Topic::Txs => {
                    let received = Transfer::TxsReceived {
                        source,
                        message,
                        data,
                    };
                    // The verdict is reported when the worker is done.
                    self.input(Input::Transfer(received), t);
                    return addrs;
                }
                Topic::Blocks => match protocol::decode::<Announce>(&data) {
                    Ok(announce) => {
                        let tip_known = self.knows(&announce.cid);
                        let announced = Input::Announced {
                            origin: author,
                            via: source,
                            message,
                            tip: announce.cid,
                            height: announce.height,
                            tip_known,
                        };
                        // The verdict comes from the policy, once this peer holds the block.
                        self.input(announced, t);
                        return addrs;
                    }
                    Err(_) => {
                        self.garbage(source, t);
                        Acceptance::Reject
                    }
                },
                Topic::Votes => self.on_votes(source, &data, t),
                Topic::Peers => match protocol::decode::<PeerRecord>(&data) {
                    Ok(record) => match self.on_record(author, record, t) {
                        Some(verified) => {
                            addrs = verified;
                            Acceptance::Accept
                        }
                        None => Acceptance::Reject,
                    },
                    Err(_) => {
                        self.garbage(source, t);
                        Acceptance::Reject
                    }
                },
            }
        };
        t.validate(source, message, accept);
        addrs
    }

    /// A record's addresses, once its chain verifies for its author.
    fn on_record(
        &mut self,
        author: PeerId,
        record: PeerRecord,
        t: &mut impl Transport,
    ) -> Option<Vec<Multiaddr>> {
        match self.record_key(&author, &record.chain) {
            Ok(key) => {
                let addrs: Vec<Multiaddr> = record
                    .addrs
                    .iter()
                    .take(MAX_RECORD_ADDRS)
                    .filter_map(|a| a.parse().ok())
                    .collect();
                self.take_records(&author, key, &record.records);
                let tip_known = self.knows(&record.tip);
                let input = Input::Record {
                    peer: author,
                    key,
                    addrs: addrs.clone(),
                    tip: record.tip,
                    height: record.height,
                    tip_known,
                };
                self.input(input, t);
                Some(addrs)
            }
            Err(reason) => {
                // Expired or revoked for us may be valid for the forwarder: no strike.
                self.metrics.reject("peer", "record");
                debug!(%author, %reason, "invalid peer record");
                None
            }
        }
    }

    /// The membership records an identity record of `author` (certified as `key`) carries:
    /// at most [`MAX_RECORDS_PER_PEER_RECORD`], each checked by the node against its tip. A
    /// record that does not hold is dropped without a strike (the sender's tip may differ).
    fn take_records(&mut self, author: &PeerId, key: PublicKey, records: &[ByteBuf]) {
        for bytes in records.iter().take(MAX_RECORDS_PER_PEER_RECORD) {
            let record = match Record::from_bytes(bytes) {
                Ok(record) => record,
                Err(reason) => {
                    debug!(%author, %reason, "undecodable membership record");
                    continue;
                }
            };
            if let Err(reason) = self.node.offer_record(record) {
                debug!(%author, %key, %reason, "membership record not taken");
            }
        }
    }

    /// The key certified by `author`'s record chain (PEM), checked now. A member repeats the
    /// same chain in every record (every few seconds, reaching every member): the chain last
    /// verified for each author is kept parsed (bounded by [`MAX_KNOWN_CHAINS`]), so a repeat
    /// costs its validity window and revocation check, not a parse and two signatures.
    fn record_key(&mut self, author: &PeerId, pem: &str) -> Result<PublicKey, String> {
        let rules = self.node.peer_rules();
        let now = self.node.clock().unix();
        if let Some(known) = self.chains.get(author) {
            if known.pem == pem && known.root == rules.root {
                known
                    .chain
                    .verify_validity(&rules.revocations, now)
                    .map_err(|e| e.to_string())?;
                return Ok(known.key);
            }
        }
        let (key, chain) = verify_chain(author, pem, &rules, self.node.chain_cache(), now)?;
        if self.chains.len() >= MAX_KNOWN_CHAINS {
            self.chains.clear();
        }
        let known = KnownChain {
            pem: pem.to_string(),
            root: rules.root,
            chain,
            key,
        };
        self.chains.insert(*author, known);
        Ok(key)
    }

    /// Gossips a transaction this peer admitted from a client (batched with others).
    pub fn publish_tx(&mut self, bundle: std::sync::Arc<TxBundle>, t: &mut impl Transport) {
        self.metrics.transactions_admitted.inc();
        let size = crate::node::overlay::policy::batching::bundle_size(&bundle);
        self.input(Input::TxAdmitted(bundle, size), t);
    }

    /// Announces a block this peer committed.
    pub fn announce(&mut self, block: &Block, t: &mut impl Transport) {
        let committed = Input::Committed {
            cid: block.cid(),
            height: block.height,
        };
        self.input(committed, t);
        self.vote(t);
    }

    /// Gossips this peer's identity record, reachable at `addrs`.
    pub fn publish_record(&mut self, addrs: Vec<String>, t: &mut impl Transport) {
        let (tip, height) = self.node.tip().unwrap_or_else(|_| (self.node.genesis(), 0));
        let record = PeerRecord {
            chain: self.node.chain().to_pem(),
            addrs,
            height,
            tip,
            timestamp: self.node.clock().unix(),
            records: self
                .node
                .pending_records()
                .iter()
                .take(MAX_RECORDS_PER_PEER_RECORD)
                .map(|r| ByteBuf::from(r.to_bytes()))
                .collect(),
        };
        self.publish(Topic::Peers, protocol::encode(&record), t);
    }
}
