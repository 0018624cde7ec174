//! Client work for the fleet tests: a fresh client registers at a peer, stores an artefact and
//! submits the transaction inserting it.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use mediachain::client::Client;
use mediachain::journal::{Transaction, TxId};
use mediachain::model::{Artefact, JournalEntry, Object};
use mediachain::trust::SecretKey;

/// The fleet's per-transaction proof of work (`--transaction-pow-bits`).
pub const TX_BITS: u8 = 4;

/// Registers a client at `client`'s peer and submits an insert of a new artefact named `name`;
/// returns the transaction's id.
pub async fn submit_insert(client: &Client, name: &str) -> TxId {
    let key = SecretKey::generate();
    let (chain, _) = client.register(&key).await.unwrap();
    let stored = client
        .put_object(&Object::Artefact(Artefact::named(name)))
        .await
        .unwrap();
    let now = mediachain::time::now();
    let tx = Transaction::create(
        &key,
        &chain,
        vec![JournalEntry::Insert {
            reference: stored.cid.parse().unwrap(),
            timestamp: now,
        }],
        now,
        TX_BITS,
    )
    .unwrap();
    client.submit(&tx).await.unwrap();
    tx.id()
}

/// The entries of a new work: inserts of the creator `entity` and of `artefact`, and the
/// artefact's first cell `cell` (its artefactCreatedBy link), all stamped `now`.
pub fn work_entries(
    entity: mediachain::model::Cid,
    artefact: mediachain::model::Cid,
    cell: mediachain::model::Cid,
    now: u64,
) -> Vec<JournalEntry> {
    vec![
        JournalEntry::Insert {
            reference: entity,
            timestamp: now,
        },
        JournalEntry::Insert {
            reference: artefact,
            timestamp: now,
        },
        JournalEntry::Update {
            reference: artefact,
            chain: cell,
            chain_previous: mediachain::model::nil_cid(),
            timestamp: now,
        },
    ]
}

/// Whether transaction `id` is committed at every one of `clients`' peers.
pub async fn committed_at(clients: &[Client], id: &TxId) -> bool {
    for client in clients {
        match client.status(id).await {
            Ok(status) if status.is_committed() => {}
            _ => return false,
        }
    }
    true
}
