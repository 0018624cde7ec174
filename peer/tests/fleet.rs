//! Multi-process tests of the peer daemon: real `mediachain-peer` processes on loopback, real
//! libp2p, real sled files, clients over real HTTP.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod support;

use std::time::Duration;

use mediachain::client::Client;
use mediachain::journal::{Transaction, TxId};
use mediachain::model::{
    nil_cid, Artefact, CellKind, ChainCell, Cid, Entity, JournalEntry, Meta, Object,
};
use mediachain::trust::{Certificate, Chain, Level, Revocation, RevocationList, SecretKey};
use support::fleet::Fleet;
use support::partition;
use support::states::{committed_at, same_head};

const TX_BITS: u8 = 4;

/// A registered client of one peer.
struct Writer {
    key: SecretKey,
    chain: Chain,
    entity: Cid,
}

async fn writer(client: &Client) -> Writer {
    let key = SecretKey::generate();
    let (chain, _) = client.register(&key).await.unwrap();
    let entity = client
        .put_object(&Object::Entity(Entity::named("fleet author")))
        .await
        .unwrap();
    let entity = entity.cid.parse().unwrap();
    Writer { key, chain, entity }
}

/// Writes an artefact and its artefactCreatedBy cell to `client`'s peer and submits the
/// transaction journaling both; returns its id and the artefact.
async fn write_artefact(client: &Client, w: &Writer, name: &str) -> (TxId, Cid) {
    let (tx, art) = artefact_tx(client, w, name).await;
    let state = client
        .submit(&tx)
        .await
        .unwrap_or_else(|e| panic!("submit {name}: {e}"));
    assert_eq!(state.state, "pending", "{state:?}");
    (tx.id(), art)
}

/// Stores an artefact and its artefactCreatedBy cell at `client`'s peer; returns the
/// transaction journaling both (not submitted) and the artefact.
async fn artefact_tx(client: &Client, w: &Writer, name: &str) -> (Transaction, Cid) {
    let artefact = Object::Artefact(Artefact::named(name));
    let art: Cid = client
        .put_object(&artefact)
        .await
        .unwrap()
        .cid
        .parse()
        .unwrap();
    let cell = Object::Cell(
        ChainCell::new(
            CellKind::ArtefactCreatedBy { entity: w.entity },
            art,
            nil_cid(),
        )
        .with_meta(Meta::named(name)),
    );
    let cell_cid: Cid = client.put_object(&cell).await.unwrap().cid.parse().unwrap();
    let now = mediachain::time::now();
    let entries = vec![
        JournalEntry::Insert {
            reference: art,
            timestamp: now,
        },
        JournalEntry::Update {
            reference: art,
            chain: cell_cid,
            chain_previous: nil_cid(),
            timestamp: now,
        },
    ];
    let tx = Transaction::create(&w.key, &w.chain, entries, now, TX_BITS).unwrap();
    (tx, art)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_peers_converge_and_commit_transactions_from_any_peer() {
    let mut fleet = Fleet::new(4);
    fleet.start_all();
    let all = [0, 1, 2, 3];
    fleet.wait_ready(&all).await;
    let mut ids = vec![];
    for i in all {
        let client = fleet.peers[i].client();
        let w = writer(&client).await;
        let (id, _) = write_artefact(&client, &w, &format!("work submitted at peer {i}")).await;
        ids.push(id);
    }
    fleet
        .wait_for(
            "every transaction committed on every peer",
            Duration::from_secs(60),
            || committed_at(&fleet, &all, &ids),
        )
        .await;
    fleet
        .wait_for("one chain on every peer", Duration::from_secs(30), || {
            same_head(&fleet, &all)
        })
        .await;
    // Graceful shutdown: SIGTERM exits 0.
    assert_eq!(fleet.stop(3), Some(0), "{}", fleet.logs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_committer_killed_mid_stream_is_replaced_and_nothing_confirmed_is_lost() {
    let mut fleet = Fleet::new(4);
    fleet.start_all();
    let all = [0, 1, 2, 3];
    fleet.wait_ready(&all).await;
    let client = fleet.peers[1].client();
    let w = writer(&client).await;
    let mut confirmed = vec![];
    for n in 0..3 {
        let (id, _) = write_artefact(&client, &w, &format!("before {n}")).await;
        confirmed.push(id);
    }
    fleet
        .wait_for(
            "the first transactions to commit",
            Duration::from_secs(60),
            || committed_at(&fleet, &[1], &confirmed),
        )
        .await;
    // Kill peers in turn while transactions are pending: every peer commits in some turn, so
    // one of the two killed is the in-turn committer for the next block.
    let (pending, _) = write_artefact(&client, &w, "in flight").await;
    fleet.kill(0);
    fleet.kill(2);
    let mut later = vec![pending];
    for n in 0..3 {
        let (id, _) = write_artefact(&client, &w, &format!("after {n}")).await;
        later.push(id);
    }
    let survivors = [1, 3];
    fleet
        .wait_for(
            "commits to resume without the killed peers",
            Duration::from_secs(90),
            || committed_at(&fleet, &survivors, &later),
        )
        .await;
    // Restart the killed peers from their data directories: they sync and lose nothing.
    fleet.start(0);
    fleet.start(2);
    fleet.wait_ready(&all).await;
    let everything: Vec<TxId> = confirmed.iter().chain(&later).copied().collect();
    fleet
        .wait_for(
            "the restarted peers to hold every transaction",
            Duration::from_secs(60),
            || committed_at(&fleet, &all, &everything),
        )
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_peer_syncs_the_whole_journal_then_serves() {
    let mut fleet = Fleet::new(3);
    fleet.start_all();
    fleet.wait_ready(&[0, 1, 2]).await;
    let client = fleet.peers[0].client();
    let w = writer(&client).await;
    let mut ids = vec![];
    let mut artefacts = vec![];
    for n in 0..5 {
        let (id, art) = write_artefact(&client, &w, &format!("early {n}")).await;
        // Committed before the next is written: the journal has several blocks to sync.
        fleet
            .wait_for(
                &format!("early {n} committed at peer 0"),
                Duration::from_secs(60),
                || committed_at(&fleet, &[0], std::slice::from_ref(&id)),
            )
            .await;
        ids.push(id);
        artefacts.push(art);
    }
    fleet
        .wait_for(
            "early transactions committed",
            Duration::from_secs(60),
            || committed_at(&fleet, &[0, 1, 2], &ids),
        )
        .await;
    let late = fleet.add_peer();
    fleet.start(late);
    fleet.wait_ready(&[late]).await;
    let everyone = [0, 1, 2, late];
    fleet
        .wait_for(
            "the late peer to reach the same head",
            Duration::from_secs(60),
            || same_head(&fleet, &everyone),
        )
        .await;

    let late_client = fleet.peers[late].client();
    for art in &artefacts {
        let index = late_client.index(art).await.unwrap();
        assert_ne!(
            index.head,
            nil_cid().to_string(),
            "the late peer has the artefact's cell"
        );
        // And the objects themselves were replicated with the blocks.
        late_client.get_object(art).await.unwrap();
    }
    // It serves clients too.
    let w2 = writer(&late_client).await;
    let (id, _) = write_artefact(&late_client, &w2, "written at the late peer").await;
    fleet
        .wait_for(
            "a transaction submitted at the late peer to commit everywhere",
            Duration::from_secs(60),
            || committed_at(&fleet, &everyone, std::slice::from_ref(&id)),
        )
        .await;
}

async fn rejected_peers(fleet: &Fleet, i: usize) -> u64 {
    let text = fleet.metrics(i).await;
    support::fleet::metric_sum(&text, "mediachain_rejected_total{kind=\"peer\"") as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_without_a_valid_level_1_certificate_are_refused() {
    let mut fleet = Fleet::new(2);
    // A peer certified under another root (it trusts that root, so it starts fine).
    let other_root = SecretKey::generate();
    let other_principal = SecretKey::generate();
    let now = mediachain::time::now();
    let foreign_l0 = Chain(vec![Certificate::issue(
        &other_root,
        other_principal.public(),
        Level::Principal,
        now - 60,
        now + 3600,
    )]);
    let foreign_key = SecretKey::generate();
    let foreign_chain = Chain::extend(
        Certificate::issue(
            &other_principal,
            foreign_key.public(),
            Level::Peer,
            now - 60,
            now + 3600,
        ),
        &foreign_l0,
    );
    let foreign = fleet.add_peer_with(foreign_key, foreign_chain);
    // A peer of this network whose certificate the principal revoked.
    let revoked = fleet.add_peer();
    let list = RevocationList::empty(&fleet.principal, now).with(
        &fleet.principal,
        Revocation {
            subject: fleet.peers[revoked].key.public(),
            revoked_at: now - 1,
            reason: "test".into(),
        },
        now,
    );
    let crl = fleet.path().join("revocations.pem");
    std::fs::write(&crl, list.to_pem()).unwrap();
    fleet.extra_args = vec!["--revocations".into(), crl.display().to_string()];
    fleet.start(0);
    fleet.start(1);
    fleet.wait_ready(&[0, 1]).await;
    // The foreign peer trusts its own root; the revoked one is told nothing about its revocation.
    fleet.extra_args = vec!["--root-key".into(), other_root.public().to_string()];
    fleet.start(foreign);
    fleet.extra_args = vec![];
    fleet.start(revoked);
    fleet
        .wait_for(
            "both intruders to be refused by peer 0",
            Duration::from_secs(60),
            || async { rejected_peers(&fleet, 0).await >= 2 },
        )
        .await;
    // Each intruder, by its id, for its own reason: the revocation is what refused the second.
    let revoked_id = format!("peer={}", fleet.peers[revoked].key.public());
    let foreign_id = format!("peer={}", fleet.peers[foreign].key.public());
    fleet
        .wait_for(
            "peer 0 to log the refusal of each intruder with its reason",
            Duration::from_secs(30),
            || async {
                let log = std::fs::read_to_string(fleet.peers[0].log()).unwrap_or_default();
                let refused = |id: &str, why: &str| {
                    log.lines().any(|l| {
                        l.contains("peer refused admission") && l.contains(id) && l.contains(why)
                    })
                };
                refused(&revoked_id, "was revoked by")
                    && refused(&foreign_id, "not by the pinned root")
            },
        )
        .await;
    // The network's peers admitted each other and nobody else.
    for i in [0, 1] {
        let text = fleet.metrics(i).await;
        let connected = text
            .lines()
            .find(|l| l.starts_with("mediachain_peers_connected "))
            .unwrap_or_default()
            .to_string();
        assert_eq!(
            connected, "mediachain_peers_connected 1",
            "peer {i} admitted an intruder"
        );
    }
}

/// An update of `art` on top of `previous`, written at `client`'s peer and submitted there.
async fn write_update(
    client: &Client,
    w: &Writer,
    art: Cid,
    previous: Cid,
    label: &str,
) -> (TxId, Cid) {
    let cell = Object::Cell(
        ChainCell::new(CellKind::ArtefactUpdate, art, previous).with_meta(Meta::named(label)),
    );
    let cell_cid: Cid = client.put_object(&cell).await.unwrap().cid.parse().unwrap();
    let now = mediachain::time::now();
    let entry = JournalEntry::Update {
        reference: art,
        chain: cell_cid,
        chain_previous: previous,
        timestamp: now,
    };
    let tx = Transaction::create(&w.key, &w.chain, vec![entry], now, TX_BITS).unwrap();
    client
        .submit(&tx)
        .await
        .unwrap_or_else(|e| panic!("submit {label}: {e}"));
    (tx.id(), cell_cid)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_two_two_partition_commits_on_both_sides_and_heals_with_merges() {
    let Some(net) = partition::namespaces() else {
        return;
    };
    let mut fleet = Fleet::new(4);
    partition::place(&mut fleet, &net, &[0, 0, 1, 1]);
    fleet.start_all();
    let all = [0, 1, 2, 3];
    fleet.wait_ready(&all).await;
    let (a, b) = (fleet.peers[0].client(), fleet.peers[2].client());
    let (wa, wb) = (writer(&a).await, writer(&b).await);
    let (first, art) = write_artefact(&a, &wa, "contested work").await;
    fleet
        .wait_for(
            "the shared artefact committed everywhere",
            Duration::from_secs(60),
            || committed_at(&fleet, &all, std::slice::from_ref(&first)),
        )
        .await;
    let base: Cid = a.index(&art).await.unwrap().head.parse().unwrap();

    net.partition().unwrap();
    // Each side loses the other (one admitted peer each).
    partition::wait_connected(&fleet, &[1, 1, 1, 1]).await;
    // Both sides update the same canonical from the same head: a conflict.
    let (tx_a, cell_a) = write_update(&a, &wa, art, base, "island A's metadata").await;
    let (tx_b, cell_b) = write_update(&b, &wb, art, base, "island B's metadata").await;
    fleet
        .wait_for(
            "island A to commit its update",
            Duration::from_secs(60),
            || committed_at(&fleet, &[0, 1], std::slice::from_ref(&tx_a)),
        )
        .await;
    fleet
        .wait_for(
            "island B to commit its update",
            Duration::from_secs(60),
            || committed_at(&fleet, &[2, 3], std::slice::from_ref(&tx_b)),
        )
        .await;

    net.heal().unwrap();
    let both = [tx_a, tx_b];
    fleet
        .wait_for(
            "both updates committed on every peer after healing",
            Duration::from_secs(90),
            || committed_at(&fleet, &all, &both),
        )
        .await;
    fleet
        .wait_for(
            "one chain on every peer after healing",
            Duration::from_secs(60),
            || same_head(&fleet, &all),
        )
        .await;
    // The conflict was merged: the head is a chain-link cell and both islands' cells are reachable.
    for i in all {
        let c = fleet.peers[i].client();
        let head: Cid = c.index(&art).await.unwrap().head.parse().unwrap();
        let object = c.get_object_json(&head).await.unwrap();
        assert_eq!(
            object["type"], "artefactChainLink",
            "peer {i}: head {head} is {object}"
        );
        let history = serde_json::to_string(&c.history(&art, 100).await.unwrap()).unwrap();
        for cell in [cell_a, cell_b] {
            let linked = history.contains(&cell.to_string())
                || object.to_string().contains(&cell.to_string());
            assert!(
                linked,
                "peer {i}: cell {cell} is not reachable from the head:\n{history}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_can_spread_its_requests_over_the_peers() {
    let mut fleet = Fleet::new(3);
    fleet.start_all();
    fleet.wait_ready(&[0, 1, 2]).await;
    // Ready needs one admitted neighbour; peer 0 accepts peer 1's challenge only once it has
    // admitted peer 1 (a challenge names its issuer, not its certificate).
    partition::wait_connected(&fleet, &[2, 2, 2]).await;
    let (at_0, at_1) = (fleet.peers[0].client(), fleet.peers[1].client());
    // As behind a load balancer: the challenge comes from peer 1, the registration and the
    // objects go to peer 0, the transaction to peer 1.
    let key = SecretKey::generate();
    let challenge = at_1.challenge().await.unwrap();
    let (chain, registration) = at_0.register_with(&key, challenge).await.unwrap();
    assert_eq!(registration.issuer, fleet.peers[0].key.public().to_string());
    let entity = at_0
        .put_object(&Object::Entity(Entity::named("fleet author")))
        .await
        .unwrap()
        .cid
        .parse()
        .unwrap();
    let w = Writer { key, chain, entity };
    let (tx, art) = artefact_tx(&at_0, &w, "stored at peer 0").await;
    let state = at_1.submit(&tx).await.unwrap();
    assert_eq!(state.state, "pending", "{state:?}");
    at_1.get_object(&art).await.unwrap();
    let ids = [tx.id()];
    fleet
        .wait_for(
            "the transaction to commit everywhere",
            Duration::from_secs(60),
            || committed_at(&fleet, &[0, 1, 2], &ids),
        )
        .await;

    // An object no peer holds is still refused, after the peers were asked.
    let missing = Object::Artefact(Artefact::named("stored nowhere"))
        .cid()
        .unwrap();
    let now = mediachain::time::now();
    let entries = vec![JournalEntry::Insert {
        reference: missing,
        timestamp: now,
    }];
    let orphan = Transaction::create(&w.key, &w.chain, entries, now, TX_BITS).unwrap();
    let refused = at_1.submit(&orphan).await.unwrap_err();
    assert_eq!(refused.problem().map(|p| p.status), Some(422), "{refused}");
}
