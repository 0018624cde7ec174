//! A misbehaving peer — admitted with a valid Level-1 certificate, then gossiping garbage bytes,
//! a transaction without proof of work and an invalid block — is rejected, disconnected, banned
//! and counted in metrics, while the honest peers keep committing.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod support;

use std::time::{Duration, Instant};

use futures::StreamExt;
use libp2p::gossipsub::{self, IdentTopic};
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{identify, noise, ping, tcp, yamux, StreamProtocol};
use mediachain::journal::{Block, Transaction};
use mediachain::model::{nil_cid, Artefact, JournalEntry, Object};
use mediachain::node::overlay::protocol::{
    self, Announce, Hello, Request, Response, SYNC_PROTOCOL,
};
use mediachain::node::{BlockBundle, TxBundle};
use mediachain::trust::{Certificate, Chain, Level, SecretKey};
use serde_bytes::ByteBuf;
use support::fleet::Fleet;

#[derive(NetworkBehaviour)]
struct Rogue {
    identify: identify::Behaviour,
    ping: ping::Behaviour,
    gossipsub: gossipsub::Behaviour,
    sync: request_response::cbor::Behaviour<Request, Response>,
}

async fn metric(api: &str, prefix: &str) -> f64 {
    support::fleet::metric_sum(&support::fleet::metrics_text(api).await, prefix)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_byzantine_peer_is_rejected_disconnected_and_counted_while_others_commit() {
    let mut fleet = Fleet::new(3);
    fleet.start_all();
    fleet.wait_ready(&[0, 1, 2]).await;

    // The rogue holds a valid Level-1 certificate: admission cannot stop it, behaviour must.
    let key = SecretKey::generate();
    let now = mediachain::time::now();
    let chain = Chain::extend(
        Certificate::issue(
            &fleet.principal,
            key.public(),
            Level::Peer,
            now - 60,
            now + 3600,
        ),
        &fleet.principal_chain,
    );
    let client_key = SecretKey::generate();
    let client_chain = Chain::extend(
        Certificate::issue(
            &key,
            client_key.public(),
            Level::Client,
            now - 60,
            now + 3600,
        ),
        &chain,
    );
    let genesis = Block::genesis("fleet", vec![]);
    let hello = Hello {
        network: "fleet".into(),
        genesis: ByteBuf::from(genesis.cid().to_bytes()),
        chain: chain.to_pem(),
        height: 0,
        tip: ByteBuf::from(genesis.cid().to_bytes()),
        params: None,
    };
    let mut swarm = libp2p::SwarmBuilder::with_existing_identity(key.to_libp2p())
        .with_tokio()
        .with_tcp(
            tcp::Config::default(),
            noise::Config::new,
            yamux::Config::default,
        )
        .unwrap()
        .with_behaviour(|k| {
            let config = gossipsub::ConfigBuilder::default().build().unwrap();
            Rogue {
                identify: identify::Behaviour::new(identify::Config::new(
                    "/mediachain/1".into(),
                    k.public(),
                )),
                ping: ping::Behaviour::default(),
                gossipsub: gossipsub::Behaviour::new(
                    gossipsub::MessageAuthenticity::Signed(k.clone()),
                    config,
                )
                .unwrap(),
                sync: request_response::cbor::Behaviour::new(
                    [(StreamProtocol::new(SYNC_PROTOCOL), ProtocolSupport::Full)],
                    request_response::Config::default(),
                ),
            }
        })
        .unwrap()
        .build();
    let txs = IdentTopic::new("/mediachain/fleet/txs");
    let blocks = IdentTopic::new("/mediachain/fleet/blocks");
    swarm.behaviour_mut().gossipsub.subscribe(&txs).unwrap();
    swarm.behaviour_mut().gossipsub.subscribe(&blocks).unwrap();
    let target: libp2p::Multiaddr = fleet.peers[0].addr().parse().unwrap();
    swarm.dial(target).unwrap();

    // A block the rogue will serve when asked: signed by it, but its entries are wrong.
    let artefact = Object::Artefact(Artefact::named("rogue"));
    let bogus = Block::commit(
        (genesis.cid(), 0),
        "fleet",
        now * 1000,
        (&key, &chain),
        vec![],
        vec![JournalEntry::Insert {
            reference: artefact.cid().unwrap(),
            timestamp: now,
        }],
    );
    let api = fleet.peers[0].api();
    let peer0: libp2p::PeerId = fleet.peers[0].key.public().peer_id();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut admitted = false;
    let mut sent = false;
    let mut disconnected = false;
    while Instant::now() < deadline && !disconnected {
        let event =
            tokio::time::timeout(Duration::from_millis(500), swarm.select_next_some()).await;
        match event {
            Ok(SwarmEvent::ConnectionEstablished { peer_id, .. }) => {
                swarm
                    .behaviour_mut()
                    .sync
                    .send_request(&peer_id, Request::Hello(hello.clone()));
            }
            Ok(SwarmEvent::Behaviour(RogueEvent::Sync(request_response::Event::Message {
                message,
                ..
            }))) => match message {
                request_response::Message::Request {
                    request: Request::Hello(_),
                    channel,
                    ..
                } => {
                    let _ = swarm
                        .behaviour_mut()
                        .sync
                        .send_response(channel, Response::Hello(hello.clone()));
                }
                request_response::Message::Request {
                    request: Request::Block { .. },
                    channel,
                    ..
                } => {
                    let bundle = BlockBundle {
                        block: bogus.to_bytes(),
                        objects: vec![],
                    };
                    let _ = swarm.behaviour_mut().sync.send_response(
                        channel,
                        Response::Block(Some(ByteBuf::from(protocol::encode(&bundle)))),
                    );
                }
                request_response::Message::Request { channel, .. } => {
                    let _ = swarm
                        .behaviour_mut()
                        .sync
                        .send_response(channel, Response::Range(vec![]));
                }
                request_response::Message::Response {
                    response: Response::Hello(_),
                    ..
                } => admitted = true,
                request_response::Message::Response { .. } => {}
            },
            // Peer 0 itself ends the rogue's last connection to it, after the misbehaviour.
            Ok(SwarmEvent::ConnectionClosed {
                peer_id,
                num_established: 0,
                ..
            }) if sent && peer_id == peer0 => disconnected = true,
            Ok(_) => {}
            Err(_) => {
                if admitted && !sent && swarm.behaviour().gossipsub.all_peers().count() > 0 {
                    // 1. garbage bytes; 2. a transaction without the network's proof of work;
                    // 3. the announcement of the bogus block (peer 0 fetches it from us).
                    let _ = swarm
                        .behaviour_mut()
                        .gossipsub
                        .publish(txs.clone(), b"\xff\x00garbage".to_vec());
                    let mut tx = Transaction::create(
                        &client_key,
                        &client_chain,
                        vec![JournalEntry::Insert {
                            reference: nil_cid(),
                            timestamp: now,
                        }],
                        now,
                        0,
                    )
                    .unwrap();
                    tx.pow.bits = 0;
                    let batch = vec![TxBundle {
                        tx,
                        objects: vec![],
                    }];
                    let _ = swarm
                        .behaviour_mut()
                        .gossipsub
                        .publish(txs.clone(), protocol::encode(&batch));
                    let announce = Announce {
                        cid: bogus.cid(),
                        height: 1,
                    };
                    let _ = swarm
                        .behaviour_mut()
                        .gossipsub
                        .publish(blocks.clone(), protocol::encode(&announce));
                    sent = true;
                }
            }
        }
    }
    assert!(
        admitted,
        "the rogue (valid certificate) was admitted first\n{}",
        fleet.logs()
    );
    assert!(
        disconnected,
        "peer 0 disconnected the rogue\n{}",
        fleet.logs()
    );
    // Peer 0 says why: the rogue, by its id, banned for its strikes, then blocked.
    let rogue = format!("peer={}", key.public());
    let log = std::fs::read_to_string(fleet.peers[0].log()).unwrap();
    for what in ["banned=true", "blocking the peer"] {
        assert!(
            log.lines().any(|l| l.contains(what) && l.contains(&rogue)),
            "peer 0's log has no `{what}` line about the rogue\n{}",
            fleet.logs()
        );
    }
    assert!(
        metric(
            &api,
            "mediachain_rejected_total{kind=\"peer\",reason=\"banned\"}"
        )
        .await
            >= 1.0
    );
    let blocks_rejected = metric(
        &api,
        "mediachain_rejected_total{kind=\"block\",reason=\"wrong_entries\"}",
    )
    .await;
    assert!(
        blocks_rejected >= 1.0,
        "the bogus block was not counted as rejected\n{}",
        fleet.metrics(0).await
    );
    assert!(
        metric(
            &api,
            "mediachain_rejected_total{kind=\"message\",reason=\"garbage\"}"
        )
        .await
            >= 1.0
    );
    assert!(
        metric(
            &api,
            "mediachain_rejected_total{kind=\"transaction\",reason=\"proof_of_work\"}"
        )
        .await
            >= 1.0
    );
    // A banned peer cannot come back: its new connection ends without a hello answered.
    let target: libp2p::Multiaddr = fleet.peers[0].addr().parse().unwrap();
    swarm.dial(target).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut refused = false;
    while Instant::now() < deadline && !refused {
        let Ok(event) =
            tokio::time::timeout(Duration::from_millis(500), swarm.select_next_some()).await
        else {
            continue;
        };
        match event {
            SwarmEvent::ConnectionEstablished { peer_id, .. } if peer_id == peer0 => {
                swarm
                    .behaviour_mut()
                    .sync
                    .send_request(&peer_id, Request::Hello(hello.clone()));
            }
            SwarmEvent::Behaviour(RogueEvent::Sync(request_response::Event::Message {
                peer,
                message:
                    request_response::Message::Response {
                        response: Response::Hello(_),
                        ..
                    },
                ..
            })) if peer == peer0 => panic!("peer 0 answered the banned rogue's hello"),
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established: 0,
                ..
            } if peer_id == peer0 => refused = true,
            SwarmEvent::OutgoingConnectionError {
                peer_id: Some(peer_id),
                ..
            } if peer_id == peer0 => refused = true,
            _ => {}
        }
    }
    assert!(
        refused,
        "peer 0 kept the banned rogue's new connection open for 30s\n{}",
        fleet.logs()
    );

    // The honest peers keep committing.
    let client = fleet.peers[1].client();
    let w = SecretKey::generate();
    let (wchain, _) = client.register(&w).await.unwrap();
    let stored = client
        .put_object(&Object::Artefact(Artefact::named("honest work")))
        .await
        .unwrap();
    let art = stored.cid.parse().unwrap();
    let t = mediachain::time::now();
    let tx = Transaction::create(
        &w,
        &wchain,
        vec![JournalEntry::Insert {
            reference: art,
            timestamp: t,
        }],
        t,
        4,
    )
    .unwrap();
    client.submit(&tx).await.unwrap();
    let id = tx.id();
    fleet
        .wait_for(
            "an honest transaction to commit on every honest peer",
            Duration::from_secs(60),
            || async {
                for i in 0..3 {
                    match fleet.peers[i].client().status(&id).await {
                        Ok(s) if s.is_committed() => {}
                        _ => return false,
                    }
                }
                true
            },
        )
        .await;
}
