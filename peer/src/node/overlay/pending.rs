//! A limit on the incoming connections one IP address may hold in their handshake at once.
//!
//! libp2p's connection limits (`swarm.rs`) cap the pending incoming connections in total, so a
//! single address opening silent sockets could take every pending slot (each until the
//! handshake timeout) and keep every other dialer out. This behaviour denies an incoming
//! connection whose remote IP address already holds [`Behaviour::new`]'s limit of pending ones,
//! so the total stays open to other addresses. It only counts: it decides nothing about peers
//! and holds one entry per pending connection it let through (bounded by the total limit).

use std::collections::HashMap;
use std::convert::Infallible;
use std::fmt;
use std::net::IpAddr;
use std::task::{Context, Poll};

use libp2p::core::transport::PortUse;
use libp2p::core::Endpoint;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::behaviour::ListenFailure;
use libp2p::swarm::{
    dummy, ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, THandler, THandlerInEvent,
    THandlerOutEvent, ToSwarm,
};
use libp2p::{Multiaddr, PeerId};

/// Pending incoming connections from one IP address at most, by default.
pub const MAX_PENDING_PER_ADDRESS: u32 = 8;

/// Why an incoming connection was denied: its address holds `limit` pending connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressExceeded {
    /// The address.
    pub address: IpAddr,
    /// Its limit.
    pub limit: u32,
}

impl fmt::Display for AddressExceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} already holds {} pending incoming connections",
            self.address, self.limit
        )
    }
}

impl std::error::Error for AddressExceeded {}

/// The per-address limit on pending incoming connections.
#[derive(Debug)]
pub struct Behaviour {
    limit: u32,
    /// Pending connections by remote address.
    per_address: HashMap<IpAddr, u32>,
    /// The remote address of each pending connection let through.
    pending: HashMap<ConnectionId, IpAddr>,
}

impl Behaviour {
    /// At most `limit` pending incoming connections per remote IP address.
    pub fn new(limit: u32) -> Self {
        Self {
            limit,
            per_address: HashMap::new(),
            pending: HashMap::new(),
        }
    }

    /// Pending connections from `address` now.
    pub fn pending_from(&self, address: &IpAddr) -> u32 {
        self.per_address.get(address).copied().unwrap_or(0)
    }

    /// The connection `id` left its handshake (established or failed).
    fn settled(&mut self, id: ConnectionId) {
        let Some(address) = self.pending.remove(&id) else {
            return;
        };
        if let Some(count) = self.per_address.get_mut(&address) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.per_address.remove(&address);
            }
        }
    }
}

/// The IP address of a remote multiaddr (`None`: not an IP transport, not limited).
fn ip_of(remote: &Multiaddr) -> Option<IpAddr> {
    remote.iter().find_map(|p| match p {
        Protocol::Ip4(ip) => Some(IpAddr::V4(ip)),
        Protocol::Ip6(ip) => Some(IpAddr::V6(ip)),
        _ => None,
    })
}

impl NetworkBehaviour for Behaviour {
    type ConnectionHandler = dummy::ConnectionHandler;
    type ToSwarm = Infallible;

    fn handle_pending_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        _local: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        let Some(address) = ip_of(remote) else {
            return Ok(());
        };
        if self.pending_from(&address) >= self.limit {
            return Err(ConnectionDenied::new(AddressExceeded {
                address,
                limit: self.limit,
            }));
        }
        *self.per_address.entry(address).or_default() += 1;
        self.pending.insert(connection_id, address);
        Ok(())
    }

    fn handle_established_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        _peer: PeerId,
        _local: &Multiaddr,
        _remote: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.settled(connection_id);
        Ok(dummy::ConnectionHandler)
    }

    fn handle_established_outbound_connection(
        &mut self,
        _connection_id: ConnectionId,
        _peer: PeerId,
        _addr: &Multiaddr,
        _role_override: Endpoint,
        _port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(dummy::ConnectionHandler)
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        // A connection denied by another behaviour, or whose handshake failed or timed out.
        if let FromSwarm::ListenFailure(ListenFailure { connection_id, .. }) = event {
            self.settled(connection_id);
        }
    }

    fn on_connection_handler_event(
        &mut self,
        _peer: PeerId,
        _connection: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        match event {}
    }

    fn poll(&mut self, _: &mut Context<'_>) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remote(ip: &str, port: u16) -> Multiaddr {
        format!("/ip4/{ip}/tcp/{port}").parse().unwrap()
    }

    fn listen_failed(behaviour: &mut Behaviour, id: ConnectionId) {
        let (local, remote) = (remote("127.0.0.1", 1), remote("10.0.0.1", 2));
        let error = libp2p::swarm::ListenError::Aborted;
        behaviour.on_swarm_event(FromSwarm::ListenFailure(ListenFailure {
            local_addr: &local,
            send_back_addr: &remote,
            error: &error,
            connection_id: id,
            peer_id: None,
        }));
    }

    #[test]
    fn one_address_holds_at_most_its_limit_of_pending_connections_others_still_get_in() {
        let mut limit = Behaviour::new(2);
        let local = remote("127.0.0.1", 4001);
        let pend = |b: &mut Behaviour, ip, port| {
            let id = ConnectionId::new_unchecked(port as usize);
            b.handle_pending_inbound_connection(id, &local, &remote(ip, port))
                .map(|()| id)
        };
        let first = pend(&mut limit, "10.0.0.1", 1).unwrap();
        let second = pend(&mut limit, "10.0.0.1", 2).unwrap();
        let denied = pend(&mut limit, "10.0.0.1", 3).unwrap_err();
        let exceeded = denied.downcast_ref::<AddressExceeded>().unwrap();
        assert_eq!(exceeded.limit, 2);
        assert!(pend(&mut limit, "10.0.0.2", 4).is_ok(), "another address");
        // A slot comes back when a handshake completes or fails.
        let _ = limit.handle_established_inbound_connection(
            first,
            PeerId::random(),
            &local,
            &remote("10.0.0.1", 1),
        );
        let third = pend(&mut limit, "10.0.0.1", 5).unwrap();
        listen_failed(&mut limit, second);
        listen_failed(&mut limit, third);
        assert_eq!(limit.pending_from(&"10.0.0.1".parse().unwrap()), 0);
        assert!(limit.per_address.len() == 1 && limit.pending.len() == 1);
    }
}
