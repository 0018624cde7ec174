//! The libp2p swarm of a peer: TCP + Noise + Yamux, identify, ping heartbeats, gossipsub on three
//! topics and request-response for admission, sync and object fetch. Builds it; decides nothing.

use std::time::Duration;

use libp2p::gossipsub::{self, IdentTopic};
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::{ConnectionDenied, NetworkBehaviour};
use libp2p::{
    allow_block_list, connection_limits, identify, noise, ping, tcp, yamux, StreamProtocol, Swarm,
};

use super::engine::Topic;
use super::pending::{self, AddressExceeded, MAX_PENDING_PER_ADDRESS};
use super::protocol::{Request, Response, SYNC_PROTOCOL};
use super::{OverlayConfig, OverlayError};
use crate::trust::SecretKey;

/// Pending incoming connections at most (handshakes in progress), by default.
pub const MAX_PENDING_INCOMING: u32 = 64;
/// Established connections per peer at most, by default.
pub const MAX_PER_PEER: u32 = 2;
/// Established connections at most, by default (neighbours are O(N); the rest is headroom for
/// joins).
pub const MAX_ESTABLISHED: u32 = 256;
/// How long a connection may take from its TCP accept (or dial) to a negotiated Noise + Yamux
/// session, by default: a silent socket holds a pending-incoming slot at most this long.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// The overlay's connection limits and handshake timeout (`mediachain-peer run
/// --overlay-*`, docs/peer-contract.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Connection setup (TCP to a multiplexed, authenticated session) at most this long.
    pub handshake_timeout: Duration,
    /// Pending incoming connections (handshakes in progress) at most.
    pub max_pending_incoming: u32,
    /// Pending incoming connections from one IP address at most.
    pub max_pending_per_address: u32,
    /// Established connections per peer at most.
    pub max_per_peer: u32,
    /// Established connections at most.
    pub max_established: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            handshake_timeout: HANDSHAKE_TIMEOUT,
            max_pending_incoming: MAX_PENDING_INCOMING,
            max_pending_per_address: MAX_PENDING_PER_ADDRESS,
            max_per_peer: MAX_PER_PEER,
            max_established: MAX_ESTABLISHED,
        }
    }
}

/// Why an incoming connection was denied, as a metric label: `blocked` (a refused dialer in
/// its back-off, or a banned peer), `limit` (a connection limit), `address` (its address holds
/// its limit of pending connections) or `denied`. (One whose handshake failed or timed out is
/// `handshake`, in the driver.)
pub fn denial(cause: &ConnectionDenied) -> &'static str {
    if cause.downcast_ref::<allow_block_list::Blocked>().is_some() {
        "blocked"
    } else if cause
        .downcast_ref::<connection_limits::Exceeded>()
        .is_some()
    {
        "limit"
    } else if cause.downcast_ref::<AddressExceeded>().is_some() {
        "address"
    } else {
        "denied"
    }
}

/// How long a request waits for its response before it fails.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);

/// The composed libp2p behaviour.
#[derive(NetworkBehaviour)]
pub struct Behaviour {
    /// Connection limits (pending incoming, per peer, total).
    pub limits: connection_limits::Behaviour,
    /// Pending incoming connections per remote address (after the total: a connection past
    /// both counts as `limit`).
    pub pending: pending::Behaviour,
    /// Peers refused or banned, whose connections are denied.
    pub blocked: allow_block_list::Behaviour<allow_block_list::BlockedPeers>,
    /// Addresses peers listen on.
    pub identify: identify::Behaviour,
    /// Heartbeats.
    pub ping: ping::Behaviour,
    /// Transactions, announcements, peer records.
    pub gossipsub: gossipsub::Behaviour,
    /// Admission, sync, object fetch.
    pub sync: request_response::cbor::Behaviour<Request, Response>,
}

/// The gossip topics of a network.
pub struct Topics {
    /// Transaction batches.
    pub txs: IdentTopic,
    /// Block announcements.
    pub blocks: IdentTopic,
    /// Peer records.
    pub peers: IdentTopic,
    /// Finality votes.
    pub votes: IdentTopic,
}

impl Topics {
    /// The topics of `network`.
    pub fn of(network: &str) -> Self {
        Self {
            txs: IdentTopic::new(format!("/mediachain/{network}/txs")),
            blocks: IdentTopic::new(format!("/mediachain/{network}/blocks")),
            peers: IdentTopic::new(format!("/mediachain/{network}/peers")),
            votes: IdentTopic::new(format!("/mediachain/{network}/votes")),
        }
    }

    /// The topic of a message's topic hash, if it is one of ours.
    pub fn topic(&self, hash: &gossipsub::TopicHash) -> Option<Topic> {
        [
            (&self.txs, Topic::Txs),
            (&self.blocks, Topic::Blocks),
            (&self.peers, Topic::Peers),
            (&self.votes, Topic::Votes),
        ]
        .into_iter()
        .find(|(t, _)| t.hash() == *hash)
        .map(|(_, topic)| topic)
    }

    /// The libp2p topic of `topic`.
    pub fn ident(&self, topic: Topic) -> IdentTopic {
        match topic {
            Topic::Txs => self.txs.clone(),
            Topic::Blocks => self.blocks.clone(),
            Topic::Peers => self.peers.clone(),
            Topic::Votes => self.votes.clone(),
        }
    }
}

fn gossip_id(message: &gossipsub::Message) -> gossipsub::MessageId {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(message.data.as_slice());
    if let Some(source) = &message.source {
        h.update(source.to_bytes());
    }
    if let Some(seq) = message.sequence_number {
        h.update(seq.to_be_bytes());
    }
    gossipsub::MessageId::from(h.finalize().to_vec())
}

/// Builds the swarm of `key`, subscribed to `topics` and listening on the configured address.
pub fn build(
    key: &SecretKey,
    config: &OverlayConfig,
    topics: &Topics,
) -> Result<Swarm<Behaviour>, OverlayError> {
    let setup = |e: &dyn std::fmt::Display| OverlayError::Setup(e.to_string());
    let limits = config.limits;
    let mut swarm = libp2p::SwarmBuilder::with_existing_identity(key.to_libp2p())
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .map_err(|e| setup(&e))?
        .with_dns()
        .map_err(|e| setup(&e))?
        .with_behaviour(|key| {
            let gossip_config = gossipsub::ConfigBuilder::default()
                .validation_mode(gossipsub::ValidationMode::Strict)
                .validate_messages()
                .max_transmit_size(2 * 1024 * 1024)
                .heartbeat_interval(Duration::from_millis(500))
                .message_id_fn(gossip_id)
                .build()
                .map_err(|e| e.to_string())?;
            let gossipsub = gossipsub::Behaviour::new(
                gossipsub::MessageAuthenticity::Signed(key.clone()),
                gossip_config,
            )?;
            Ok(Behaviour {
                limits: connection_limits::Behaviour::new(
                    connection_limits::ConnectionLimits::default()
                        .with_max_pending_incoming(Some(limits.max_pending_incoming))
                        .with_max_established_per_peer(Some(limits.max_per_peer))
                        .with_max_established(Some(limits.max_established)),
                ),
                pending: pending::Behaviour::new(limits.max_pending_per_address),
                blocked: allow_block_list::Behaviour::default(),
                identify: identify::Behaviour::new(identify::Config::new(
                    "/mediachain/1".into(),
                    key.public(),
                )),
                ping: ping::Behaviour::new(
                    ping::Config::new()
                        .with_interval(Duration::from_secs(2))
                        .with_timeout(Duration::from_secs(5)),
                ),
                gossipsub,
                sync: request_response::cbor::Behaviour::new(
                    [(StreamProtocol::new(SYNC_PROTOCOL), ProtocolSupport::Full)],
                    request_response::Config::default().with_request_timeout(REQUEST_TIMEOUT),
                ),
            })
        })
        .map_err(|e| setup(&e))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(120)))
        // The builder wraps the whole transport (TCP, Noise, Yamux) in one timeout on each
        // connection's setup, 10 s unless set: the pending-incoming slot a silent socket holds.
        .with_connection_timeout(limits.handshake_timeout)
        .build();
    for topic in [&topics.txs, &topics.blocks, &topics.peers, &topics.votes] {
        swarm
            .behaviour_mut()
            .gossipsub
            .subscribe(topic)
            .map_err(|e| setup(&e))?;
    }
    // The transport's own message is empty for an I/O failure: say what failed and why (a port
    // already in use must be recognisable).
    swarm.listen_on(config.listen.clone()).map_err(|e| {
        let cause =
            std::error::Error::source(&e).map_or_else(|| e.to_string(), ToString::to_string);
        OverlayError::Setup(format!("listen on {}: {cause}", config.listen))
    })?;
    if let Some(addr) = &config.external_address {
        swarm.add_external_address(addr.clone());
    }
    Ok(swarm)
}
