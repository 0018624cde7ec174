//! The overlay's defences and connectivity, on real `mediachain-peer` processes: a network of
//! one listing itself as its seed, a certified peer lying about its height, N-cut connectivity
//! with O(N) neighbours that survives N failures, a block whose objects exceed one message,
//! seeds given at start kept beside a seeds file.
//! (Connection limits: `fleet_limits.rs`.)

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod support;

use std::time::Duration;

use mediachain::client::Client;
use mediachain::journal::Transaction;
use mediachain::model::codec::dag_cbor_cid;
use mediachain::model::{Artefact, JournalEntry, Object};
use mediachain::node::overlay::protocol::{self, Announce, Response};
use mediachain::node::BlockBundle;
use mediachain::trust::SecretKey;
use serde_bytes::ByteBuf;
use support::fleet::{metric_sum, Fleet};
use support::rogue::Rogue;
use support::work::{committed_at, submit_insert, TX_BITS};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_network_of_one_listing_itself_as_seed_is_ready_and_commits() {
    let mut fleet = Fleet::new(1);
    // As `mediachain devnet --peers 1` writes it: the seed list holds the peer itself.
    let own = fleet.peers[0].addr();
    fleet.extra_args = vec!["--seed".into(), own];
    fleet.start(0);
    fleet.wait_ready(&[0]).await;
    let client = fleet.peers[0].client();
    let id = submit_insert(&client, "alone").await;
    let clients = [client];
    fleet
        .wait_for("the single peer to commit", Duration::from_secs(30), || {
            committed_at(&clients, &id)
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_given_seeds_are_kept_beside_a_seeds_file_that_does_not_list_them() {
    let mut fleet = Fleet::new(2);
    // A seeds file naming no one (as an operator's shared file before other clusters are added):
    // the `--seed` peers the fleet passes must still be dialled after the file is read.
    let file = fleet.path().join("seeds.txt");
    std::fs::write(&file, "# no seeds here yet\n").unwrap();
    fleet.extra_args = vec!["--seeds-file".into(), file.display().to_string()];
    fleet.start_all();
    fleet.wait_ready(&[0, 1]).await;
    assert!(connected_peers(&fleet, 0).await >= 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_announcing_false_heights_stops_neither_commits_nor_readiness_and_is_banned() {
    let mut fleet = Fleet::new(3);
    fleet.start_all();
    fleet.wait_ready(&[0, 1, 2]).await;
    let mut rogue = Rogue::certified(&fleet);
    rogue
        .join(&fleet.peers[0].addr(), Duration::from_secs(30))
        .await;

    let lie = |n: u8| {
        protocol::encode(&Announce {
            cid: dag_cbor_cid(&[0xba, n]),
            height: 1_000_000_000,
        })
    };
    // 1. A block nobody has, far ahead, and no answer when it is asked for: while the claim is
    //    unverified it must not count.
    rogue.answer_blocks = false;
    rogue.publish("blocks", lie(0));
    rogue.run_for(Duration::from_secs(3)).await;
    let clients: Vec<Client> = fleet.peers.iter().map(|p| p.client()).collect();
    for (i, client) in clients.iter().enumerate() {
        assert!(
            client.ready().await,
            "peer {i} stays ready\n{}",
            fleet.logs()
        );
    }
    // 2. More of them, answered "not found": each is unverifiable and strikes the liar.
    rogue.answer_blocks = true;
    for n in 1..=3 {
        rogue.publish("blocks", lie(n));
        rogue.run_for(Duration::from_millis(700)).await;
    }
    let id = submit_insert(&clients[1], "honest work").await;
    fleet
        .wait_for(
            "an honest transaction to commit on every peer despite the lies",
            Duration::from_secs(60),
            || committed_at(&clients, &id),
        )
        .await;
    rogue.run_for(Duration::from_secs(2)).await;
    assert!(
        rogue.disconnected,
        "the liar was disconnected\n{}",
        fleet.logs()
    );
    let metrics = fleet.metrics(0).await;
    assert!(
        metric_sum(
            &metrics,
            "mediachain_rejected_total{kind=\"peer\",reason=\"unverifiable_claim\"}"
        ) >= 3.0,
        "{metrics}"
    );
    assert!(
        metric_sum(
            &metrics,
            "mediachain_rejected_total{kind=\"peer\",reason=\"banned\"}"
        ) >= 1.0,
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_from_a_peer_that_has_not_passed_admission_is_taken() {
    let mut fleet = Fleet::new(1);
    fleet.start(0);
    fleet.wait_ready(&[0]).await;
    // A dialer without a certificate of this network answers the peer's hello with a block
    // bundle carrying an object.
    let smuggled = Object::Artefact(Artefact::named("smuggled"))
        .encode()
        .unwrap();
    let bundle = BlockBundle {
        block: vec![0xa0],
        objects: vec![(smuggled.cid, ByteBuf::from(smuggled.bytes.clone()))],
    };
    let mut rogue = Rogue::uncertified();
    rogue.hello_answer = Some(Response::Block(Some(ByteBuf::from(protocol::encode(
        &bundle,
    )))));
    rogue.dial(&fleet.peers[0].addr());
    rogue.run_for(Duration::from_secs(3)).await;
    assert!(!rogue.admitted);
    let client = fleet.peers[0].client();
    assert!(
        client.get_object(&smuggled.cid).await.is_err(),
        "the object of an unadmitted peer was stored\n{}",
        fleet.logs()
    );
    let metrics = fleet.metrics(0).await;
    assert!(
        metric_sum(
            &metrics,
            "mediachain_rejected_total{kind=\"message\",reason=\"unadmitted\"}"
        ) >= 1.0,
        "{metrics}"
    );
}

async fn connected_peers(fleet: &Fleet, i: usize) -> f64 {
    metric_sum(&fleet.metrics(i).await, "mediachain_peers_connected ")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seven_peers_with_n_2_keep_o_n_neighbours_and_survive_two_failures() {
    let mut fleet = Fleet::new(7);
    fleet.extra_args = vec!["--target-connectivity".into(), "2".into()];
    fleet.start_all();
    let all: Vec<usize> = (0..7).collect();
    fleet.wait_ready(&all).await;
    // H(3, 7): every peer keeps its two ring neighbours and the two opposite: 4, not 6.
    fleet
        .wait_for(
            "every peer to relax to its 4 Harary neighbours",
            Duration::from_secs(90),
            || async {
                for i in 0..7 {
                    if connected_peers(&fleet, i).await != 4.0 {
                        return false;
                    }
                }
                true
            },
        )
        .await;
    fleet.kill(0);
    fleet.kill(3);
    let survivors = [1, 2, 4, 5, 6];
    let clients: Vec<Client> = survivors.iter().map(|i| fleet.peers[*i].client()).collect();
    let id = submit_insert(&clients[0], "after two failures").await;
    fleet
        .wait_for(
            "a transaction to commit on the five survivors",
            Duration::from_secs(60),
            || committed_at(&clients, &id),
        )
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_referencing_more_than_one_message_of_objects_reaches_a_late_joiner() {
    let mut fleet = Fleet::new(2);
    fleet.start_all();
    fleet.wait_ready(&[0, 1]).await;
    // One transaction inserting 11 artefacts of ~0.95 MiB: ~10.5 MiB of objects, over the
    // 10 MiB a single response may carry.
    let client = fleet.peers[0].client();
    let key = SecretKey::generate();
    let (chain, _) = client.register(&key).await.unwrap();
    let now = mediachain::time::now();
    let mut entries = vec![];
    for i in 0..11 {
        let name = format!("{i:02}{}", "m".repeat(972_000));
        let stored = client
            .put_object(&Object::Artefact(Artefact::named(&name)))
            .await
            .unwrap();
        entries.push(JournalEntry::Insert {
            reference: stored.cid.parse().unwrap(),
            timestamp: now,
        });
    }
    let tx = Transaction::create(&key, &chain, entries, now, TX_BITS).unwrap();
    client.submit(&tx).await.unwrap();
    let id = tx.id();
    let late = fleet.add_peer();
    fleet.start(late);
    let clients: Vec<Client> = fleet.peers.iter().map(|p| p.client()).collect();
    fleet
        .wait_for(
            "the large transaction to commit on every peer, the late one included",
            Duration::from_secs(90),
            || committed_at(&clients, &id),
        )
        .await;
}
