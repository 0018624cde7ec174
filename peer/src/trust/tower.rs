//! The tower of trust the unit tests build on: a root, a principal, a peer and a client, each
//! certified by the one above (one fixture for the trust, configuration and other unit tests).

use super::{Certificate, Chain, Level, SecretKey};

const YEAR: u64 = 365 * 24 * 3600;

/// Four keys and their chains up to the root.
pub(crate) struct Tower {
    /// The network's root key.
    pub root: SecretKey,
    /// A principal (Level 0) certified by the root.
    pub principal: SecretKey,
    /// A peer (Level 1) certified by the principal.
    pub peer: SecretKey,
    /// A client (Level 2) certified by the peer.
    pub client: SecretKey,
    /// The principal's chain.
    pub principal_chain: Chain,
    /// The peer's chain.
    pub peer_chain: Chain,
    /// The client's chain.
    pub client_chain: Chain,
}

impl Tower {
    /// New keys, certified from `now - 10`: the principal and the peer for a year, the client
    /// for an hour (until `now + 3600`).
    pub fn at(now: u64) -> Self {
        let root = SecretKey::generate();
        let principal = SecretKey::generate();
        let peer = SecretKey::generate();
        let client = SecretKey::generate();
        let principal_chain = Chain(vec![Certificate::issue(
            &root,
            principal.public(),
            Level::Principal,
            now - 10,
            now + YEAR,
        )]);
        let peer_chain = Chain::extend(
            Certificate::issue(&principal, peer.public(), Level::Peer, now - 10, now + YEAR),
            &principal_chain,
        );
        let client_chain = Chain::extend(
            Certificate::issue(&peer, client.public(), Level::Client, now - 10, now + 3600),
            &peer_chain,
        );
        Self {
            root,
            principal,
            peer,
            client,
            principal_chain,
            peer_chain,
            client_chain,
        }
    }

    /// Another peer (Level 1) certified by the same principal from `now - 10` for a year: the
    /// other members of a network.
    pub fn another_peer(&self, now: u64) -> (SecretKey, Chain) {
        let key = SecretKey::generate();
        let cert = Certificate::issue(
            &self.principal,
            key.public(),
            Level::Peer,
            now - 10,
            now + YEAR,
        );
        let chain = Chain::extend(cert, &self.principal_chain);
        (key, chain)
    }
}
