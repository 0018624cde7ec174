//! Adversaries of revocation on the real wire (issue 14, item 7): the fleet of
//! `support/adversary.rs` (three honest processes and a rogue seated member under network
//! parameters). A revoked client's transaction signed before its revocation and sent after the
//! revocation is final, over HTTP, on gossip and in the rogue's block at its slot; and the
//! identity record the rogue gossiped while a member, sent again through a relay after its own
//! revocation is final; and the connections the member held when the revocation landed, which
//! every honest peer closes (issue 14, item 1), and its new ones, denied; and a revoked peer that
//! never connected, refused at its hello (the admission check under the revocations at the tip),
//! before any gossip. Each asserts that the attack is refused and counted by every honest peer,
//! that the honest peers keep finalising, and that no final transaction is lost.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod support;

use std::time::Duration;

use mediachain::client::{Client, ClientError};
use mediachain::journal::Transaction;
use mediachain::model::{Artefact, JournalEntry, Object};
use mediachain::node::overlay::protocol::{encode, PeerRecord};
use mediachain::node::TxBundle;
use mediachain::trust::{PublicKey, Revocation, RevocationList, SecretKey};
use serde_bytes::ByteBuf;
use support::adversary::{
    block_with, clients, final_everywhere, finalise, network, offer, rejected_each, resting_tip,
    rogue_slot, serve_until, HONEST,
};
use support::fleet::Fleet;
use support::rogue::Rogue;
use support::work::TX_BITS;

/// A key's PeerId as logs print it.
fn key_id(key: &SecretKey) -> String {
    key.public().peer_id().to_string()
}

/// Runs two rogues side by side for `duration`.
async fn run_both(a: &mut Rogue, b: &mut Rogue, duration: Duration) {
    tokio::join!(a.run_for(duration), b.run_for(duration));
}

/// What each honest peer refused of identity records: records whose chain no longer
/// verifies, and gossip authored by a peer it cut off.
async fn refused_records(fleet: &Fleet) -> Vec<f64> {
    let records = rejected_each(fleet, "peer", "record").await;
    let cut_off = rejected_each(fleet, "message", "cut_off").await;
    records.iter().zip(&cut_off).map(|(r, c)| r + c).collect()
}

/// `issuer`'s signed list revoking `subjects` from now, sent to the network through peer 1.
async fn revoke(fleet: &Fleet, issuer: &SecretKey, subjects: &[PublicKey]) {
    let now = mediachain::time::now();
    let mut list = RevocationList::empty(issuer, now);
    for subject in subjects {
        let revocation = Revocation {
            subject: *subject,
            revoked_at: now,
            reason: "adversarial test".into(),
        };
        list = list.with(issuer, revocation, now);
    }
    let queued = fleet.peers[1]
        .client()
        .publish_revocations(&list.to_pem())
        .await
        .unwrap();
    assert_eq!(queued.queued, 1, "{queued:?}");
}

/// The height of the block of `client`'s chain recording the revocation of `subject`, if any.
async fn revocation_height(client: &Client, subject: &PublicKey) -> Option<u64> {
    let head = client.head().await.ok()?;
    let page = client
        .blocks(head.height.saturating_sub(99), 100)
        .await
        .ok()?;
    page.blocks.iter().find_map(|b| {
        b.records
            .iter()
            .any(|r| r.kind == "revoke" && r.subjects.contains(&subject.to_string()))
            .then_some(b.height)
    })
}

/// Waits (running the rogue) until every honest peer's chain records the revocation of
/// `subject`, then until a transaction committed after it is final everywhere (with every one
/// of `before`), so the revocation's block is final too. Returns the new transaction.
async fn revocation_final(
    fleet: &Fleet,
    rogue: &mut Rogue,
    subject: &PublicKey,
    before: &[mediachain::journal::TxId],
) -> mediachain::journal::TxId {
    let recorded = || async {
        for client in clients(fleet) {
            if revocation_height(&client, subject).await.is_none() {
                return false;
            }
        }
        true
    };
    let what = format!("every honest peer's chain to record the revocation of {subject}");
    serve_until(fleet, rogue, &what, Duration::from_secs(60), recorded).await;
    let at = revocation_height(&fleet.peers[0].client(), subject)
        .await
        .unwrap();
    let after = finalise(fleet, rogue, 2, "after the revocation", before).await;
    for (i, client) in clients(fleet).iter().enumerate() {
        let finalized = client.head().await.unwrap().finalized.unwrap();
        assert!(
            finalized.height >= at,
            "peer {i}: the revocation at {at} is not final ({finalized:?})"
        );
    }
    after
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_clients_backdated_transaction_is_refused_over_http_on_gossip_and_in_a_members_block(
) {
    let (fleet, mut rogue, params) = network().await;
    let first = finalise(&fleet, &mut rogue, 1, "before the revocation", &[]).await;

    // A client of peer 0 signs a transaction and holds it back; its object is at every peer,
    // so nothing but the client's certificate can refuse it.
    let key = SecretKey::generate();
    let (chain, _) = fleet.peers[0].client().register(&key).await.unwrap();
    let artefact = Object::Artefact(Artefact::named("backdated"));
    let encoded = artefact.encode().unwrap();
    for client in clients(&fleet) {
        client.put_object(&artefact).await.unwrap();
    }
    let reference = encoded.cid;
    let signed_at = mediachain::time::now();
    let entries = vec![JournalEntry::Insert {
        reference,
        timestamp: signed_at,
    }];
    let backdated = Transaction::create(&key, &chain, entries, signed_at, TX_BITS).unwrap();
    // Peer 0, which registered the client, revokes it a second later; the revocation becomes
    // final on every honest peer.
    rogue.run_for(Duration::from_millis(1100)).await;
    revoke(&fleet, &fleet.peers[0].key, &[key.public()]).await;
    let second = revocation_final(&fleet, &mut rogue, &key.public(), &[first]).await;

    // On gossip, from the rogue: every honest peer refuses it for its certificate.
    let before = rejected_each(&fleet, "transaction", "certificate").await;
    let bundle = TxBundle {
        tx: backdated.clone(),
        objects: vec![(reference, ByteBuf::from(encoded.bytes))],
    };
    rogue.publish("txs", encode(&vec![bundle]));
    serve_until(
        &fleet,
        &mut rogue,
        "every honest peer to refuse the gossiped backdated transaction",
        Duration::from_secs(30),
        || async {
            let now = rejected_each(&fleet, "transaction", "certificate").await;
            now.iter().zip(&before).all(|(n, b)| n > b)
        },
    )
    .await;

    // In the rogue's block, at its slot on the resting tip: refused by every honest peer.
    let (tip, height, parent_ms) = resting_tip(&fleet, &mut rogue).await;
    let at = rogue_slot(&mut rogue, &params, height, parent_ms).await;
    let carrier = block_with(&rogue, (tip, height), at, vec![backdated.clone()]);
    let carrier_cid = carrier.cid().to_string();
    offer(&mut rogue, vec![carrier]);
    serve_until(
        &fleet,
        &mut rogue,
        "every honest peer to refuse the rogue's block carrying the backdated transaction",
        Duration::from_secs(60),
        || async {
            let counts = rejected_each(&fleet, "block", "invalid_transaction").await;
            counts.iter().all(|n| *n >= 1.0)
        },
    )
    .await;

    // Over HTTP: every honest peer answers 403, whatever the timestamp.
    for (i, client) in clients(&fleet).iter().enumerate() {
        match client.submit(&backdated).await {
            Err(ClientError::Problem(p)) => {
                assert_eq!(p.status, 403, "peer {i}: {p:?}");
                assert!(p.detail.contains("revoked"), "peer {i}: {p:?}");
            }
            other => panic!("peer {i} took the backdated transaction: {other:?}"),
        }
    }

    // The honest peers keep finalising; the backdated transaction is on no chain, the rogue's
    // block on none, and every final transaction stays final.
    let third = finalise(&fleet, &mut rogue, 0, "after the attacks", &[first, second]).await;
    for (i, client) in clients(&fleet).iter().enumerate() {
        let state = client.status(&backdated.id()).await.unwrap();
        assert!(!state.is_committed(), "peer {i}: {state:?}");
        let head = client.head().await.unwrap();
        let chain = client.blocks(height + 1, 100).await.unwrap().blocks;
        assert!(
            chain.iter().all(|b| b.cid != carrier_cid),
            "peer {i} took the rogue's block ({head:?})"
        );
    }
    assert!(final_everywhere(&fleet, &[first, second, third]).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_members_replayed_identity_record_is_refused_and_it_is_not_admitted_again() {
    let (fleet, mut rogue, params) = network().await;
    let first = finalise(&fleet, &mut rogue, 1, "before the revocation", &[]).await;

    // The rogue's identity record while a member: its chain, an address, its tip.
    let (tip, height, _) = resting_tip(&fleet, &mut rogue).await;
    let record = PeerRecord {
        chain: rogue.chain.to_pem(),
        addrs: vec!["/ip4/127.0.0.1/tcp/9".into()],
        height,
        tip,
        timestamp: mediachain::time::now(),
        records: vec![],
    };
    let recorded = encode(&record);
    rogue.publish("peers", recorded.clone());
    rogue.run_for(Duration::from_secs(3)).await;
    let taken = rejected_each(&fleet, "peer", "record").await;
    assert!(
        taken.iter().all(|n| *n == 0.0),
        "a member's record was refused: {taken:?}\n{}",
        fleet.logs()
    );

    // The root revokes the rogue, and a certified peer that never connected to any; the
    // revocation becomes final on every honest peer.
    let member = rogue.key.public();
    let outsider_key = SecretKey::generate();
    let outsider_chain = fleet.certify(&outsider_key);
    revoke(&fleet, &fleet.root, &[member, outsider_key.public()]).await;
    let second = revocation_final(&fleet, &mut rogue, &member, &[first]).await;

    // Every honest peer closed the connections the member held when it was admitted, and
    // says why.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while rogue.swarm.connected_peers().count() > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the revoked member is still connected to {:?}\n{}",
            rogue.swarm.connected_peers().collect::<Vec<_>>(),
            fleet.logs()
        );
        rogue.run_for(Duration::from_millis(300)).await;
    }
    let id = key_id(&rogue.key);
    for i in HONEST {
        let log = std::fs::read_to_string(fleet.peers[i].log()).unwrap();
        let closed = log.lines().any(|l| {
            l.contains("closing the connection")
                && l.contains(&id)
                && l.contains("certificate revoked")
        });
        assert!(
            closed,
            "peer {i} did not close the revoked member's connection\n{log}"
        );
    }

    // The same record again, through a relay (a certified peer that forwards what it hears:
    // the member has no connection of its own left): every honest peer refuses it, and
    // relays nothing the member authors.
    let relay_key = SecretKey::generate();
    let mut relay = Rogue::member(relay_key.clone(), fleet.certify(&relay_key), &params);
    relay
        .join(&fleet.peers[0].addr(), Duration::from_secs(60))
        .await;
    for i in 1..3 {
        relay.dial(&fleet.peers[i].addr());
    }
    relay.run_for(Duration::from_secs(2)).await;
    let honest: Vec<_> = relay.swarm.connected_peers().copied().collect();
    for peer in &honest {
        relay
            .swarm
            .behaviour_mut()
            .gossipsub
            .add_explicit_peer(peer);
    }
    let at = relay.listen().await;
    rogue.dial(&at);
    run_both(&mut rogue, &mut relay, Duration::from_secs(2)).await;
    let before = refused_records(&fleet).await;
    rogue.publish("peers", recorded);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let now = refused_records(&fleet).await;
        if now.iter().zip(&before).all(|(n, b)| n > b) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the relayed record was not refused by every honest peer ({now:?})\n{}",
            fleet.logs()
        );
        run_both(&mut rogue, &mut relay, Duration::from_millis(300)).await;
    }

    // A new connection of the revoked member is denied (it is banned), never admitted.
    let (key, chain) = (rogue.key.clone(), rogue.chain.clone());
    drop(rogue);
    drop(relay);
    let denied = rejected_each(&fleet, "connection", "blocked").await;
    let mut again = Rogue::member(key.clone(), chain, &params);
    again.dial(&fleet.peers[2].addr());
    again.run_for(Duration::from_secs(5)).await;
    assert!(
        !again.admitted,
        "peer 2 admitted the revoked member again\n{}",
        fleet.logs()
    );
    let now = rejected_each(&fleet, "connection", "blocked").await;
    assert!(
        now[2] > denied[2],
        "peer 2 did not deny the revoked member's connection ({denied:?} -> {now:?})\n{}",
        fleet.logs()
    );

    // The revoked peer that never connected (nothing banned it) is refused at its hello, for
    // its certificate, before any gossip.
    let outsider_id = key_id(&outsider_key);
    let mut outsider = Rogue::member(outsider_key, outsider_chain, &params);
    outsider.dial(&fleet.peers[2].addr());
    outsider.run_for(Duration::from_secs(5)).await;
    assert!(
        !outsider.admitted && outsider.heard.is_empty(),
        "peer 2 admitted a revoked peer at its hello (heard {} messages)\n{}",
        outsider.heard.len(),
        fleet.logs()
    );
    let log = std::fs::read_to_string(fleet.peers[2].log()).unwrap();
    let refused = log.lines().any(|l| {
        l.contains("peer refused admission")
            && l.contains(&outsider_id)
            && l.contains("was revoked")
    });
    assert!(
        refused,
        "peer 2 did not refuse the revoked peer's hello for its certificate\n{log}"
    );
    drop(outsider);

    let third = finalise(&fleet, &mut again, 0, "after the replay", &[first, second]).await;
    assert!(final_everywhere(&fleet, &[first, second, third]).await);
    for i in HONEST {
        assert!(
            fleet.peers[i].client().ready().await,
            "peer {i} is not ready"
        );
    }
}
