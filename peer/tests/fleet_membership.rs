//! Membership on the chain with real processes (docs/consensus.md, "Members and seats"): four
//! `mediachain-peer` processes under network parameters; `mediachain revoke --publish` puts a
//! revocation on the running network's chain through one peer, and from the block after it
//! every peer refuses the revoked client's next transaction and no block of a revoked peer
//! joins the chain, while the others keep committing and finalising and cut the revoked peer
//! off once its seat ended (its connections closed and banned); a peer not in the parameters joins by itself and
//! commits once its seat is in force. Seats change only once a block records the change's
//! block final (its finality certificate, `recordsFinal` in the block summaries), then from
//! the first block of the epoch after the next checkpoint.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use mediachain::client::{Client, ClientError};
use mediachain::journal::Transaction;
use mediachain::model::{Artefact, JournalEntry, Object};
use mediachain::trust::{keyfile, Chain, PublicKey, SecretKey};
use support::fleet::Fleet;
use support::params::use_network_params;
use support::work::TX_BITS;

/// A transaction of `key` inserting a new artefact stored at `client`'s peer.
async fn insert(client: &Client, key: &SecretKey, chain: &Chain, name: &str) -> Transaction {
    let stored = client
        .put_object(&Object::Artefact(Artefact::named(name)))
        .await
        .unwrap();
    let now = mediachain::time::now();
    let entries = vec![JournalEntry::Insert {
        reference: stored.cid.parse().unwrap(),
        timestamp: now,
    }];
    Transaction::create(key, chain, entries, now, TX_BITS).unwrap()
}

/// `mediachain revoke --publish` of `subject` with `issuer_key`, through the peer at `peer`.
fn revoke_with_cli(issuer_key: &Path, list: &Path, subject: &PublicKey, peer: &str) {
    let out = Command::new(env!("CARGO_BIN_EXE_mediachain"))
        .args(["revoke", "--publish", "--reason", "test", "--peer", peer])
        .arg("--issuer-key")
        .arg(issuer_key)
        .arg("--list")
        .arg(list)
        .arg("--subject")
        .arg(subject.to_string())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("published"),
        "mediachain revoke: {}\n{stdout}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The height of the block of `client`'s chain recording the revocation of `subject`, if any.
async fn revocation_height(client: &Client, subject: &PublicKey) -> Option<u64> {
    let head = client.head().await.ok()?;
    let from = head.height.saturating_sub(99);
    let blocks = client.blocks(from, 100).await.ok()?;
    blocks.blocks.iter().find_map(|b| {
        b.records
            .iter()
            .any(|r| r.kind == "revoke" && r.subjects.contains(&subject.to_string()))
            .then_some(b.height)
    })
}

/// Waits (bounded) until a block of `client`'s chain records the revocation of `subject`;
/// its height.
async fn wait_revocation(fleet: &Fleet, client: &Client, subject: &PublicKey) -> u64 {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while std::time::Instant::now() < deadline {
        if let Some(height) = revocation_height(client, subject).await {
            return height;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!(
        "no block records the revocation of {subject} after 60 s\n{}",
        fleet.logs()
    );
}

/// Epochs of the fleets' parameters (`use_network_params(.., 2)`).
const EPOCH: u64 = 2;

/// The height of the first block of `client`'s chain above `at` whose finality certificate
/// records a checkpoint at or above `at` final (so a change recorded at `at` is scheduled), and
/// the height its changes take effect from (docs/consensus.md, "Finality recorded on the
/// chain"), if any.
async fn finality_recorded(client: &Client, at: u64) -> Option<(u64, u64)> {
    let blocks = client.blocks(at + 1, 100).await.ok()?.blocks;
    let recording = blocks
        .iter()
        .find(|b| b.records_final.is_some_and(|f| f >= at))?
        .height;
    Some((recording, recording.div_ceil(EPOCH) * EPOCH + EPOCH + 1))
}

/// Waits (bounded) until each of `peers` holds a chain of at least `height` blocks.
async fn everyone_at(fleet: &Fleet, peers: &[usize], height: u64) {
    let clients: Vec<Client> = peers.iter().map(|i| fleet.peers[*i].client()).collect();
    fleet
        .wait_for(
            &format!("peers {peers:?} at height {height}"),
            Duration::from_secs(90),
            || {
                let clients = clients.clone();
                async move {
                    for c in &clients {
                        if c.head().await.map_or(true, |h| h.height < height) {
                            return false;
                        }
                    }
                    true
                }
            },
        )
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocations_published_with_the_cli_bind_every_peer_from_the_next_block() {
    let mut fleet = Fleet::new(4);
    use_network_params(&mut fleet, 2);
    fleet.start_all();
    fleet.wait_ready(&[0, 1, 2, 3]).await;
    let clients: Vec<Client> = (0..4).map(|i| fleet.peers[i].client()).collect();

    // A client of peer 0 commits a transaction.
    let key = SecretKey::generate();
    let (chain, _) = clients[0].register(&key).await.unwrap();
    let tx = insert(&clients[0], &key, &chain, "before").await;
    clients[0].submit(&tx).await.unwrap();
    let first = clients[0]
        .await_final(&tx.id(), Duration::from_secs(60))
        .await
        .unwrap();
    assert!(first.is_final(), "{first:?}");

    // Peer 0, which registered it, revokes it through peer 1.
    let peer0_key = fleet.peers[0].dir.join("peer.key");
    let list = fleet.path().join("peer0.crl");
    revoke_with_cli(&peer0_key, &list, &key.public(), &fleet.peers[1].api());
    let at = wait_revocation(&fleet, &clients[2], &key.public()).await;
    everyone_at(&fleet, &[0, 1, 2, 3], at).await;
    for (i, client) in clients.iter().enumerate() {
        let next = insert(client, &key, &chain, &format!("after {i}")).await;
        match client.submit(&next).await {
            Err(ClientError::Problem(p)) => {
                assert_eq!(p.status, 403, "peer {i}: {p:?}");
                assert!(p.detail.contains("revoked"), "peer {i}: {p:?}");
            }
            other => panic!("peer {i} took the revoked client's transaction: {other:?}"),
        }
    }

    // The root revokes peer 3 through peer 0.
    let root_key = fleet.path().join("root.key");
    keyfile::write_secret(
        &root_key,
        &keyfile::to_plain_pem(&fleet.root).unwrap(),
        true,
    )
    .unwrap();
    let victim = fleet.peers[3].key.public();
    let list = fleet.path().join("root.crl");
    revoke_with_cli(&root_key, &list, &victim, &fleet.peers[0].api());
    let at = wait_revocation(&fleet, &clients[1], &victim).await;
    // Blocks come while the revocation's seat change waits for its block's finality (and while
    // transactions wait): a client writes until a block records the revocation's block final,
    // and the chain is past the seat's end and every peer's turns after it.
    let writer = SecretKey::generate();
    let (writer_chain, _) = clients[1].register(&writer).await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(150);
    let mut last = None;
    let mut until = None;
    for n in 0.. {
        let head = clients[1].head().await.unwrap();
        if until.is_none() {
            until = finality_recorded(&clients[1], at)
                .await
                .map(|(_, from)| from + 4);
        }
        if until.is_some_and(|u| head.height >= u) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the chain stopped at {} after the revocation at {at} (seat change from {until:?})\n{}",
            head.height,
            fleet.logs()
        );
        let tx = insert(&clients[1], &writer, &writer_chain, &format!("late {n}")).await;
        clients[1].submit(&tx).await.unwrap();
        last = Some(tx.id());
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    let until = until.unwrap();
    // The last one becomes final without the revoked peer's seat.
    let state = clients[1]
        .await_final(&last.unwrap(), Duration::from_secs(90))
        .await
        .unwrap();
    assert!(state.is_final(), "{state:?}");
    everyone_at(&fleet, &[0, 1, 2], until).await;
    let blocks = clients[0].blocks(at + 1, until - at).await.unwrap().blocks;
    assert_eq!(blocks.len() as u64, until - at);
    for block in &blocks {
        assert_ne!(
            block.committer.as_deref(),
            Some(victim.to_string().as_str()),
            "a block of the revoked peer at {} joined the chain",
            block.height
        );
    }
    // Honest members leave no evidence against each other (read over HTTP, as the operator
    // does).
    for (i, client) in clients.iter().enumerate() {
        let evidence = client.evidence_summary().await.unwrap();
        assert_eq!((evidence.items, evidence.newest), (0, None), "peer {i}");
    }
    // Every other peer holds the same chain.
    let reference = &blocks.last().unwrap().cid;
    for (i, client) in clients.iter().enumerate().take(3) {
        let theirs = client.blocks(until, 1).await.unwrap().blocks;
        assert_eq!(theirs.first().map(|b| &b.cid), Some(reference), "peer {i}");
    }
    // The revoked peer was cut off by every other once its seat ended (its connections closed
    // and banned): it holds a prefix of their chain.
    let prefix = "mediachain_rejected_total{kind=\"peer\",reason=\"revoked\"}";
    for i in 0..3 {
        let cut = support::fleet::metric_sum(&fleet.metrics(i).await, prefix);
        assert!(cut >= 1.0, "peer {i} did not cut off the revoked peer");
    }
    let stopped = clients[3].head().await.unwrap();
    let ours = clients[0].blocks(stopped.height, 1).await.unwrap().blocks;
    assert_eq!(
        ours.first().map(|b| b.cid.as_str()),
        Some(stopped.cid.as_str()),
        "the revoked peer's chain is not a prefix of the others'"
    );
}

/// Submits transactions of a fresh client at `client`'s peer, one every 400 ms, until `done`
/// holds of the chain there (bounded: fails after `limit`); the last transaction's id.
async fn write_until<F, Fut>(fleet: &Fleet, client: &Client, limit: Duration, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let key = SecretKey::generate();
    let (chain, _) = client.register(&key).await.unwrap();
    let deadline = std::time::Instant::now() + limit;
    for n in 0.. {
        if done().await {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not done after {limit:?}\n{}",
            fleet.logs()
        );
        let tx = insert(client, &key, &chain, &format!("writer {n}")).await;
        client.submit(&tx).await.unwrap();
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certified_peer_outside_the_parameters_joins_by_itself_and_commits() {
    let mut fleet = Fleet::new(3);
    use_network_params(&mut fleet, 2);
    // Certified by the same principal, but not an initial member.
    let newcomer = fleet.add_peer();
    fleet.start_all();
    fleet.wait_ready(&[0, 1, 2, 3]).await;
    let client = fleet.peers[0].client();
    let key = fleet.peers[newcomer].key.public().to_string();
    // Its join is committed by a member, then (two checkpoints on) it commits in its turn.
    let joined = std::sync::Mutex::new(None);
    write_until(&fleet, &client, Duration::from_secs(120), || async {
        let Ok(head) = client.head().await else {
            return false;
        };
        let from = head.height.saturating_sub(99);
        let Ok(page) = client.blocks(from, 100).await else {
            return false;
        };
        let mut joined = joined.lock().unwrap();
        if joined.is_none() {
            *joined = page.blocks.iter().find_map(|b| {
                b.records
                    .iter()
                    .any(|r| r.kind == "join" && r.subjects == [key.clone()])
                    .then_some(b.height)
            });
        }
        joined.is_some_and(|at| {
            page.blocks
                .iter()
                .any(|b| b.height > at && b.committer.as_deref() == Some(key.as_str()))
        })
    })
    .await;
    let at = joined.lock().unwrap().unwrap();
    let blocks = client.blocks(at, 100).await.unwrap().blocks;
    let first_own = blocks
        .iter()
        .find(|b| b.committer.as_deref() == Some(key.as_str()))
        .unwrap()
        .height;
    // Its seat counts only from the epoch after a block recorded the join's block final.
    let (recording, from) = finality_recorded(&client, at)
        .await
        .expect("a block records the join's block final before the newcomer commits");
    assert!(
        first_own >= from && recording < first_own,
        "committed at {first_own}, before its seat (joined at {at}, recorded final at \
         {recording}, seated from {from})"
    );
}
