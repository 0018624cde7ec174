//! A rogue peer for adversarial tests: a real libp2p swarm holding a valid Level-1 certificate
//! from the fleet's principal (so admission lets it in) or one from a foreign tower, speaking the
//! overlay's protocols by hand. It answers hellos with its own, every block request with one of
//! the blocks it was given to serve or "not found" (or drops it, when told to stay silent) and
//! every range request with nothing, keeps the last gossip it heard, and publishes whatever the
//! test gives it. A rogue made with [`Rogue::member`] is a seated member of a network run under
//! parameters.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use futures::StreamExt;
use libp2p::gossipsub::{self, IdentTopic};
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{identify, noise, ping, tcp, yamux, StreamProtocol, Swarm};
use mediachain::journal::Block;
use mediachain::network::NetworkParams;
use mediachain::node::overlay::protocol::{self, Hello, Request, Response, SYNC_PROTOCOL};
use mediachain::node::BlockBundle;
use mediachain::trust::{Certificate, Chain, Level, SecretKey};
use serde_bytes::ByteBuf;

use super::fleet::Fleet;

/// The rogue's protocols: those of an honest peer.
#[derive(NetworkBehaviour)]
pub struct RogueBehaviour {
    identify: identify::Behaviour,
    ping: ping::Behaviour,
    /// Gossip.
    pub gossipsub: gossipsub::Behaviour,
    sync: request_response::cbor::Behaviour<Request, Response>,
}

/// A certified peer that misbehaves as the test says.
pub struct Rogue {
    /// Its swarm.
    pub swarm: Swarm<RogueBehaviour>,
    hello: Hello,
    /// Whether a fleet peer accepted its hello.
    pub admitted: bool,
    /// Whether its last connection closed.
    pub disconnected: bool,
    /// Answer block requests ("not found"); when false they are dropped unanswered.
    pub answer_blocks: bool,
    /// What to answer a hello with instead of the rogue's own hello.
    pub hello_answer: Option<Response>,
    /// Blocks it serves when asked for them.
    pub served: Vec<Block>,
    /// The last gossip it heard (at most [`HEARD`]): topic name and payload.
    pub heard: std::collections::VecDeque<(String, Vec<u8>)>,
    /// Its key.
    pub key: SecretKey,
    /// Its Level-1 chain.
    pub chain: Chain,
}

/// Gossip messages a rogue keeps.
pub const HEARD: usize = 1024;

impl Rogue {
    /// A rogue with a valid Level-1 certificate of `fleet`'s network.
    pub fn certified(fleet: &Fleet) -> Self {
        let key = SecretKey::generate();
        let chain = fleet.certify(&key);
        Self::new(key, chain)
    }

    /// A rogue certified by a tower of its own (admission must refuse it).
    pub fn uncertified() -> Self {
        let (root, principal, key) = (
            SecretKey::generate(),
            SecretKey::generate(),
            SecretKey::generate(),
        );
        let now = mediachain::time::now();
        let l0 = Chain(vec![Certificate::issue(
            &root,
            principal.public(),
            Level::Principal,
            now - 60,
            now + 3600,
        )]);
        let chain = Chain::extend(
            Certificate::issue(&principal, key.public(), Level::Peer, now - 60, now + 3600),
            &l0,
        );
        Self::new(key, chain)
    }

    /// A rogue of `key` and `chain` on the fleet's network, subscribed to its topics.
    pub fn new(key: SecretKey, chain: Chain) -> Self {
        Self::on(key, chain, None)
    }

    /// A seated member of the fleet's network run under `params` (its chain is one of the
    /// initial members).
    pub fn member(key: SecretKey, chain: Chain, params: &NetworkParams) -> Self {
        Self::on(key, chain, Some(params))
    }

    fn on(key: SecretKey, chain: Chain, params: Option<&NetworkParams>) -> Self {
        let genesis = params.map_or_else(|| Block::genesis("fleet", vec![]), |p| p.genesis());
        let hello = Hello {
            network: "fleet".into(),
            genesis: ByteBuf::from(genesis.cid().to_bytes()),
            chain: chain.to_pem(),
            height: 0,
            tip: ByteBuf::from(genesis.cid().to_bytes()),
            params: params.map(|p| Box::new(p.section_digests())),
        };
        let mut swarm = libp2p::SwarmBuilder::with_existing_identity(key.to_libp2p())
            .with_tokio()
            .with_tcp(
                tcp::Config::default(),
                noise::Config::new,
                yamux::Config::default,
            )
            .unwrap()
            .with_behaviour(|k| RogueBehaviour {
                identify: identify::Behaviour::new(identify::Config::new(
                    "/mediachain/1".into(),
                    k.public(),
                )),
                ping: ping::Behaviour::default(),
                gossipsub: gossipsub::Behaviour::new(
                    gossipsub::MessageAuthenticity::Signed(k.clone()),
                    gossipsub::ConfigBuilder::default().build().unwrap(),
                )
                .unwrap(),
                sync: request_response::cbor::Behaviour::new(
                    [(StreamProtocol::new(SYNC_PROTOCOL), ProtocolSupport::Full)],
                    request_response::Config::default(),
                ),
            })
            .unwrap()
            .build();
        for topic in ["txs", "blocks", "peers", "votes"] {
            swarm
                .behaviour_mut()
                .gossipsub
                .subscribe(&IdentTopic::new(format!("/mediachain/fleet/{topic}")))
                .unwrap();
        }
        Self {
            swarm,
            hello,
            admitted: false,
            disconnected: false,
            answer_blocks: true,
            hello_answer: None,
            served: vec![],
            heard: std::collections::VecDeque::new(),
            key,
            chain,
        }
    }

    /// Listens on a loopback port; its address, once bound.
    pub async fn listen(&mut self) -> String {
        self.swarm
            .listen_on("/ip4/127.0.0.1/tcp/0".parse().unwrap())
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(addr) = self.swarm.listeners().next() {
                return addr.to_string();
            }
            assert!(Instant::now() < deadline, "the rogue could not listen");
            self.run_for(Duration::from_millis(50)).await;
        }
    }

    /// Dials `addr`.
    pub fn dial(&mut self, addr: &str) {
        self.swarm
            .dial(addr.parse::<libp2p::Multiaddr>().unwrap())
            .unwrap();
    }

    /// Dials `addr` and runs until a fleet peer admitted the rogue and gossips with it.
    pub async fn join(&mut self, addr: &str, timeout: Duration) {
        self.dial(addr);
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            self.run_for(Duration::from_millis(200)).await;
            if self.admitted && self.swarm.behaviour().gossipsub.all_peers().count() > 0 {
                return;
            }
        }
        panic!("the rogue was not admitted within {timeout:?}");
    }

    /// Publishes `data` on the fleet's `topic` (`txs`, `blocks`, `peers`).
    pub fn publish(&mut self, topic: &str, data: Vec<u8>) {
        let topic = IdentTopic::new(format!("/mediachain/fleet/{topic}"));
        let _ = self.swarm.behaviour_mut().gossipsub.publish(topic, data);
    }

    /// Serves requests (as described in the module comment) for `duration`.
    pub async fn run_for(&mut self, duration: Duration) {
        let deadline = tokio::time::Instant::now() + duration;
        while let Ok(event) = tokio::time::timeout_at(deadline, self.swarm.select_next_some()).await
        {
            self.on_event(event);
        }
    }

    fn on_event(&mut self, event: SwarmEvent<RogueBehaviourEvent>) {
        match event {
            // A rogue with its own answer to hellos stays silent: it only answers.
            SwarmEvent::ConnectionEstablished { peer_id, .. } if self.hello_answer.is_none() => {
                self.swarm
                    .behaviour_mut()
                    .sync
                    .send_request(&peer_id, Request::Hello(self.hello.clone()));
            }
            SwarmEvent::ConnectionClosed {
                num_established: 0, ..
            } => self.disconnected = true,
            SwarmEvent::Behaviour(RogueBehaviourEvent::Sync(
                request_response::Event::Message { message, .. },
            )) => match message {
                request_response::Message::Request {
                    request, channel, ..
                } => {
                    let response = match request {
                        Request::Hello(_) => match &self.hello_answer {
                            Some(answer) => answer.clone(),
                            None => Response::Hello(self.hello.clone()),
                        },
                        Request::Block { .. } if !self.answer_blocks => return,
                        Request::Block { cid, .. } => Response::Block(self.serve(&cid)),
                        Request::Object { .. } => Response::Object(None),
                        Request::Range { .. } => Response::Range(vec![]),
                    };
                    let _ = self
                        .swarm
                        .behaviour_mut()
                        .sync
                        .send_response(channel, response);
                }
                request_response::Message::Response {
                    response: Response::Hello(_),
                    ..
                } => self.admitted = true,
                request_response::Message::Response { .. } => {}
            },
            SwarmEvent::Behaviour(RogueBehaviourEvent::Gossipsub(gossipsub::Event::Message {
                message,
                ..
            })) => {
                self.heard
                    .push_back((message.topic.into_string(), message.data));
                if self.heard.len() > HEARD {
                    self.heard.pop_front();
                }
            }
            _ => {}
        }
    }

    /// The bundle of a served block named by `cid` (bytes), if any.
    fn serve(&self, cid: &[u8]) -> Option<ByteBuf> {
        let block = self.served.iter().find(|b| b.cid().to_bytes() == cid)?;
        let bundle = BlockBundle {
            block: block.to_bytes(),
            objects: vec![],
        };
        Some(ByteBuf::from(protocol::encode(&bundle)))
    }
}
