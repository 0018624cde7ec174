//! The overlay's driver: the only owner of the swarm. Its event loop selects over swarm events,
//! commands, verification outcomes and timers, hands each to the [`Engine`] (the policy joined
//! to the node) and executes what the engine asks of the network through [`SwarmTransport`]. It
//! decides nothing about peers itself; it reads the seeds file, and the policy says what its
//! contents mean.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use libp2p::gossipsub::{self, MessageAcceptance, MessageId};
use libp2p::request_response::{self, OutboundRequestId};
use libp2p::swarm::{ListenError, SwarmEvent};
use libp2p::{identify, ping, Multiaddr, PeerId, Swarm};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use super::engine::{Engine, RequestId, Topic, Transport};
use super::handle::{Command, OverlayHandle};
use super::policy::verifier::Job;
use super::policy::{seeds, Acceptance, Effect};
use super::protocol::{Request, Response};
use super::swarm::{self, Behaviour, BehaviourEvent, Topics};
use super::worker::{self, Outcome};
use super::{OverlayConfig, OverlayError, RECORD_INTERVAL};
use crate::node::metrics::Metrics;
use crate::node::{Health, Node};

/// The overlay's state and event loop.
pub struct Overlay {
    swarm: Swarm<Behaviour>,
    engine: Engine,
    metrics: Arc<Metrics>,
    config: OverlayConfig,
    /// The seeds in use: the configured ones (`--seed`) and the seeds file's, as last read.
    seeds: Vec<Multiaddr>,
    topics: Topics,
    jobs: mpsc::UnboundedSender<Job>,
    /// The engine's name of each request in flight.
    requests: HashMap<OutboundRequestId, RequestId>,
    commands: Option<mpsc::Receiver<Command>>,
    outcomes: Option<mpsc::UnboundedReceiver<Outcome>>,
}

/// The swarm as the engine's [`Transport`].
pub struct SwarmTransport<'a> {
    swarm: &'a mut Swarm<Behaviour>,
    topics: &'a Topics,
    jobs: &'a mpsc::UnboundedSender<Job>,
    requests: &'a mut HashMap<OutboundRequestId, RequestId>,
    seeds: &'a [Multiaddr],
}

impl Transport for SwarmTransport<'_> {
    fn request(&mut self, peer: PeerId, id: RequestId, request: Request) {
        let outbound = self.swarm.behaviour_mut().sync.send_request(&peer, request);
        self.requests.insert(outbound, id);
    }

    fn publish(&mut self, topic: Topic, data: Vec<u8>) {
        let topic = self.topics.ident(topic);
        if let Err(e) = self.swarm.behaviour_mut().gossipsub.publish(topic, data) {
            debug!(error = %e, "gossip publish failed (sync will repair)");
        }
    }

    fn validate(&mut self, source: PeerId, message: MessageId, accept: Acceptance) {
        let accept = match accept {
            Acceptance::Accept => MessageAcceptance::Accept,
            Acceptance::Reject => MessageAcceptance::Reject,
            Acceptance::Ignore => MessageAcceptance::Ignore,
        };
        self.swarm
            .behaviour_mut()
            .gossipsub
            .report_message_validation_result(&message, &source, accept);
    }

    fn verify(&mut self, job: Job) {
        if self.jobs.send(job).is_err() {
            warn!("the verification worker stopped");
        }
    }

    fn connection(&mut self, effect: Effect) {
        match effect {
            Effect::Disconnect { peer, reason } => {
                info!(%peer, reason, "closing the connection");
                let _ = self.swarm.disconnect_peer_id(peer);
            }
            Effect::Block { peer, on: true } => {
                info!(%peer, "blocking the peer (refused or banned)");
                self.swarm.behaviour_mut().blocked.block_peer(peer);
            }
            Effect::Block { peer, on: false } => {
                debug!(%peer, "unblocking the peer");
                self.swarm.behaviour_mut().blocked.unblock_peer(peer);
            }
            // Admitted peers are direct gossip peers: in a permissioned network every message
            // reaches every connected peer without waiting for the mesh.
            Effect::DirectGossip { peer, on: true } => {
                info!(%peer, "peer admitted");
                self.swarm
                    .behaviour_mut()
                    .gossipsub
                    .add_explicit_peer(&peer);
            }
            Effect::DirectGossip { peer, on: false } => {
                self.swarm
                    .behaviour_mut()
                    .gossipsub
                    .remove_explicit_peer(&peer);
            }
            Effect::Dial { peer, addrs } => {
                let opts = libp2p::swarm::dial_opts::DialOpts::peer_id(peer)
                    .addresses(addrs)
                    .build();
                if let Err(e) = self.swarm.dial(opts) {
                    debug!(%peer, error = %e, "redial failed");
                }
            }
            Effect::DialSeeds => {
                for seed in self.seeds {
                    if let Err(e) = self.swarm.dial(seed.clone()) {
                        debug!(%seed, error = %e, "seed dial failed");
                    }
                }
            }
            _ => {}
        }
    }
}

impl Overlay {
    /// Builds the swarm and starts listening; returns the overlay (run it with
    /// [`Overlay::run`]) and the handle that sends it commands. Readiness is set at once (a
    /// peer without seeds is ready by itself).
    pub fn new(
        node: Arc<Node>,
        metrics: Arc<Metrics>,
        health: Arc<Health>,
        config: OverlayConfig,
    ) -> Result<(Self, OverlayHandle), OverlayError> {
        let topics = Topics::of(&node.params().network);
        let swarm = swarm::build(&node.key, &config, &topics)?;
        let (jobs, outcomes) =
            worker::spawn(node.clone()).map_err(|e| OverlayError::Setup(e.to_string()))?;
        let (handle, commands) = OverlayHandle::channel();
        let engine = Engine::new(node, metrics.clone(), health, config.target_connectivity);
        let mut overlay = Self {
            swarm,
            engine,
            metrics,
            seeds: config.seeds.clone(),
            config,
            topics,
            jobs,
            requests: HashMap::new(),
            commands: Some(commands),
            outcomes: Some(outcomes),
        };
        overlay.tick();
        Ok((overlay, handle))
    }

    /// The engine and the transport it drives, borrowed together.
    fn parts(&mut self) -> (&mut Engine, SwarmTransport<'_>) {
        let transport = SwarmTransport {
            swarm: &mut self.swarm,
            topics: &self.topics,
            jobs: &self.jobs,
            requests: &mut self.requests,
            seeds: &self.seeds,
        };
        (&mut self.engine, transport)
    }

    /// The seeds other than this peer: the configured ones and the seeds file's (re-read; an
    /// unreadable file keeps the seeds it last gave).
    fn other_seeds(&mut self) -> Vec<Multiaddr> {
        if let Some(path) = &self.config.seeds_file {
            match std::fs::read_to_string(path).map(|text| seeds::parse(&text)) {
                Ok(Ok(listed)) => self.seeds = seeds::merged(&self.config.seeds, &listed),
                Ok(Err(e)) => debug!(path = %path.display(), error = %e, "seeds file unreadable"),
                Err(e) => debug!(path = %path.display(), error = %e, "seeds file unreadable"),
            }
        }
        let me = *self.swarm.local_peer_id();
        let own: BTreeSet<Multiaddr> = self
            .swarm
            .external_addresses()
            .chain(self.swarm.listeners())
            .cloned()
            .chain(self.config.external_address.clone())
            .collect();
        seeds::others(&self.seeds, &me, &own)
    }

    fn tick(&mut self) {
        let others = self.other_seeds();
        let (engine, mut t) = self.parts();
        t.seeds = &others;
        engine.tick(others.len(), &mut t);
    }

    fn publish_record(&mut self) {
        let mut addrs: Vec<String> = self
            .swarm
            .external_addresses()
            .map(|a| a.to_string())
            .collect();
        if addrs.is_empty() {
            addrs = self.swarm.listeners().map(|a| a.to_string()).collect();
        }
        let (engine, mut t) = self.parts();
        engine.publish_record(addrs, &mut t);
    }

    /// Runs until `shutdown` resolves (or every handle is dropped), then leaves the overlay.
    pub async fn run(mut self, shutdown: impl std::future::Future<Output = ()>) {
        let mut maintenance = tokio::time::interval(Duration::from_secs(1));
        let mut records = tokio::time::interval(RECORD_INTERVAL);
        let mut batching = tokio::time::interval(Duration::from_millis(20));
        let (Some(mut outcomes), Some(mut commands)) = (self.outcomes.take(), self.commands.take())
        else {
            warn!("the overlay runs only once");
            return;
        };
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                event = self.swarm.select_next_some() => self.on_swarm_event(event),
                Some(outcome) = outcomes.recv() => {
                    let (engine, mut t) = self.parts();
                    engine.on_outcome(outcome, &mut t);
                }
                command = commands.recv() => match command {
                    Some(command) => self.on_command(command),
                    None => break,
                },
                _ = batching.tick() => {
                    let (engine, mut t) = self.parts();
                    engine.flush(&mut t);
                }
                _ = records.tick() => self.publish_record(),
                _ = maintenance.tick() => self.tick(),
            }
        }
        info!("leaving the overlay");
        let (engine, mut t) = self.parts();
        engine.flush(&mut t);
        let peers: Vec<PeerId> = self.swarm.connected_peers().copied().collect();
        for peer in peers {
            let _ = self.swarm.disconnect_peer_id(peer);
        }
    }

    fn on_command(&mut self, command: Command) {
        let (engine, mut t) = self.parts();
        match command {
            Command::PublishTx(bundle) => engine.publish_tx(bundle, &mut t),
            Command::FetchObject { cid, reply } => engine.fetch_object(cid, reply, &mut t),
            Command::Announce(block) => engine.announce(&block, &mut t),
        }
    }

    fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        use super::policy::Input;
        match event {
            SwarmEvent::NewListenAddr { address, .. } => info!(%address, "overlay listening"),
            SwarmEvent::ConnectionEstablished {
                peer_id,
                num_established,
                ..
            } if num_established.get() == 1 => {
                let (engine, mut t) = self.parts();
                engine.input(Input::Connected(peer_id), &mut t);
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established: 0,
                ..
            } => {
                let (engine, mut t) = self.parts();
                if engine.policy().is_admitted(&peer_id) {
                    info!(peer = %peer_id, "peer disconnected");
                }
                engine.input(Input::Disconnected(peer_id), &mut t);
            }
            SwarmEvent::IncomingConnectionError {
                error: ListenError::Denied { cause },
                ..
            } => self.metrics.reject("connection", swarm::denial(&cause)),
            // The setup failed or outlasted the handshake timeout (a silent socket).
            SwarmEvent::IncomingConnectionError {
                error: ListenError::Transport(error),
                ..
            } => {
                debug!(%error, "incoming connection failed its handshake");
                self.metrics.reject("connection", "handshake");
            }
            SwarmEvent::Behaviour(BehaviourEvent::Sync(event)) => self.on_sync(event),
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            })) => {
                let Some(topic) = self.topics.topic(&message.topic) else {
                    return;
                };
                let author = message.source.unwrap_or(propagation_source);
                let (engine, mut t) = self.parts();
                let addrs = engine.on_gossip(
                    propagation_source,
                    author,
                    topic,
                    message_id,
                    message.data,
                    &mut t,
                );
                for addr in addrs {
                    self.swarm.add_peer_address(author, addr);
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received {
                peer_id,
                info,
                ..
            })) if self.engine.policy().is_admitted(&peer_id) => {
                for addr in info.listen_addrs {
                    self.swarm.add_peer_address(peer_id, addr);
                }
            }
            // Heartbeats: a failed ping means the peer is gone (ping itself keeps the connection).
            SwarmEvent::Behaviour(BehaviourEvent::Ping(ping::Event {
                peer,
                connection,
                result: Err(error),
            })) => {
                warn!(%peer, %error, "heartbeat failed: closing the connection");
                self.swarm.close_connection(connection);
            }
            _ => {}
        }
    }

    fn on_sync(&mut self, event: request_response::Event<Request, Response>) {
        match event {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request {
                    request, channel, ..
                } => {
                    let (engine, mut t) = self.parts();
                    let (response, refusal) = engine.on_request(peer, request, &mut t);
                    // The answer goes out before a refused peer's connection is closed.
                    let _ = self
                        .swarm
                        .behaviour_mut()
                        .sync
                        .send_response(channel, response);
                    if let Some(refusal) = refusal {
                        let (engine, mut t) = self.parts();
                        engine.refuse(refusal, &mut t);
                    }
                }
                request_response::Message::Response {
                    request_id,
                    response,
                } => {
                    if let Some(id) = self.requests.remove(&request_id) {
                        let (engine, mut t) = self.parts();
                        engine.on_response(peer, id, response, &mut t);
                    }
                }
            },
            request_response::Event::OutboundFailure {
                peer,
                error,
                request_id,
                ..
            } => {
                debug!(%peer, %error, "sync request failed");
                if let Some(id) = self.requests.remove(&request_id) {
                    let timed_out = matches!(error, request_response::OutboundFailure::Timeout);
                    let (engine, mut t) = self.parts();
                    engine.on_failure(id, timed_out, &mut t);
                }
            }
            request_response::Event::InboundFailure { peer, error, .. } => {
                debug!(%peer, %error, "sync response failed")
            }
            request_response::Event::ResponseSent { .. } => {}
        }
    }
}
