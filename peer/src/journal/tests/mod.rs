//! Specification tests of the journal: verification, merging, fork choice, healing, rebuild.
//! This module holds the fixtures (a network, the objects every replica starts with, replicas,
//! blocks and transactions made for them); the tests are in its submodules, one concern each.

use std::collections::{BTreeSet, HashMap};

use super::*;
use crate::model::{
    nil_cid, Artefact, CellKind, ChainCell, Cid, Entity, JournalEntry, Meta, Object,
};
use crate::trust::{Certificate, Chain, Level, Revocation, RevocationList, SecretKey};

mod admission;
mod blocks;
mod finality;
mod membership;
#[cfg(feature = "store")]
mod persistent;
mod properties;
mod rules;

pub(crate) use properties::{build_forks, ops, shuffled};

pub(crate) const NOW: u64 = 1_700_000_000;
const BITS: u8 = 2;
const NETWORK: &str = "testnet";
/// The receivers' clock (ms): long after every block of these tests.
pub(crate) const CLOCK: u64 = (NOW + 10_000_000) * 1000;

/// Seconds as the milliseconds blocks carry.
pub(crate) fn ms(seconds: u64) -> u64 {
    seconds * 1000
}

/// A network: root, one principal, three peers and two clients.
pub(crate) struct Net {
    pub(crate) root: SecretKey,
    pub(crate) principal: SecretKey,
    pub(crate) peers: Vec<(SecretKey, Chain)>,
    pub(crate) clients: Vec<(SecretKey, Chain)>,
}

/// `subject`'s certificate of `level` issued by `issuer`, valid from `NOW - 100` for 1,000,000 s,
/// below `issuer`'s chain `above` (none for a principal, whose issuer is the root).
pub(crate) fn certify(
    issuer: &SecretKey,
    above: Option<&Chain>,
    subject: &SecretKey,
    level: Level,
) -> Chain {
    let certificate =
        Certificate::issue(issuer, subject.public(), level, NOW - 100, NOW + 1_000_000);
    match above {
        Some(above) => Chain::extend(certificate, above),
        None => Chain(vec![certificate]),
    }
}

pub(crate) fn net() -> Net {
    let root = SecretKey::generate();
    let principal = SecretKey::generate();
    let l0 = certify(&root, None, &principal, Level::Principal);
    let peers: Vec<_> = (0..3)
        .map(|_| {
            let key = SecretKey::generate();
            let chain = certify(&principal, Some(&l0), &key, Level::Peer);
            (key, chain)
        })
        .collect();
    let clients = (0..2)
        .map(|i| {
            let key = SecretKey::generate();
            let (peer, above) = &peers[i];
            let chain = certify(peer, Some(above), &key, Level::Client);
            (key, chain)
        })
        .collect();
    Net {
        root,
        principal,
        peers,
        clients,
    }
}

impl Net {
    fn rules(&self) -> Rules {
        Rules::new(NETWORK, self.root.public(), BITS)
    }

    fn schedule(&self) -> Schedule {
        Schedule::new(self.peers.iter().map(|(k, _)| k.public()).collect())
    }

    /// A peer key by its position in the rotation.
    fn peer_in_turn(&self, height: u64) -> (&SecretKey, &Chain) {
        let key = self.schedule().in_turn(height).unwrap();
        let (k, c) = self.peers.iter().find(|(k, _)| k.public() == key).unwrap();
        (k, c)
    }

    pub(crate) fn tx(
        &self,
        client: usize,
        entries: Vec<JournalEntry>,
        timestamp: u64,
    ) -> Transaction {
        let (key, chain) = &self.clients[client];
        Transaction::create(key, chain, entries, timestamp, BITS).unwrap()
    }

    /// Client `client`'s transaction inserting `reference`, at [`NOW`].
    pub(crate) fn insert(&self, client: usize, reference: Cid) -> Transaction {
        let insert = JournalEntry::Insert {
            reference,
            timestamp: NOW,
        };
        self.tx(client, vec![insert], NOW)
    }
}

/// Objects every replica starts with: three artefacts (inserted by genesis) and an entity.
pub(crate) struct World {
    pub(crate) artefacts: Vec<Cid>,
    pub(crate) entity: Cid,
    pub(crate) objects: Vec<Object>,
    pub(crate) genesis: Block,
}

pub(crate) fn world() -> World {
    let mut objects = vec![];
    let artefacts: Vec<Cid> = (0..3)
        .map(|i| {
            let o = Object::Artefact(Artefact::named(&format!("work {i}")));
            let cid = o.cid().unwrap();
            objects.push(o);
            cid
        })
        .collect();
    let entity_object = Object::Entity(Entity::named("Ada"));
    let entity = entity_object.cid().unwrap();
    objects.push(entity_object);
    let genesis = Block::genesis(
        NETWORK,
        artefacts
            .iter()
            .map(|&reference| JournalEntry::Insert {
                reference,
                timestamp: 0,
            })
            .collect(),
    );
    World {
        artefacts,
        entity,
        objects,
        genesis,
    }
}

pub(crate) type Replica = Journal<MemIndex, MemObjects>;

pub(crate) fn replica(net: &Net, world: &World) -> Replica {
    let objects = MemObjects::new();
    for o in &world.objects {
        objects.insert(o);
    }
    Journal::open(
        net.rules(),
        net.schedule(),
        MemIndex::new(),
        objects,
        &world.genesis,
    )
    .unwrap()
}

/// Writes an update cell into every given replica's store and returns the update entry.
fn update(
    replicas: &[&Replica],
    reference: Cid,
    previous: Cid,
    label: &str,
    timestamp: u64,
) -> JournalEntry {
    let cell = Object::Cell(
        ChainCell::new(CellKind::ArtefactUpdate, reference, previous).with_meta(Meta::named(label)),
    );
    let mut chain = nil_cid();
    for r in replicas {
        chain = r.objects().insert(&cell);
    }
    JournalEntry::Update {
        reference,
        chain,
        chain_previous: previous,
        timestamp,
    }
}

/// Every cell reachable from a canonical's head through `chain` and `chainMerge` links.
fn reachable(r: &Replica, canonical: &Cid) -> BTreeSet<Cid> {
    let mut seen = BTreeSet::new();
    let mut stack: Vec<Cid> = r.index().head(canonical).unwrap().into_iter().collect();
    while let Some(cid) = stack.pop() {
        if cid == nil_cid() || !seen.insert(cid) {
            continue;
        }
        if let Some(Object::Cell(cell)) = r.objects().object(&cid) {
            stack.push(cell.chain);
            if let CellKind::ArtefactChainLink { chain_merge }
            | CellKind::EntityChainLink { chain_merge } = cell.kind
            {
                stack.push(chain_merge);
            }
        }
    }
    seen
}

pub(crate) fn commit(
    net: &Net,
    r: &mut Replica,
    txs: Vec<Transaction>,
    ts: u64,
) -> (Block, Vec<(TxId, TxRejection)>) {
    let height = r.tip().unwrap().1 + 1;
    let (key, chain) = net.peer_in_turn(height);
    r.commit((key, chain), txs, ms(ts)).unwrap()
}

/// Builds a valid next block on `r` and hands back a copy to tamper with.
fn next_block(net: &Net, world: &World, r: &mut Replica) -> Block {
    let mut builder = replica(net, world);
    for h in 1..=r.tip().unwrap().1 {
        let block = r
            .load_block(&r.index().block_at(h).unwrap().unwrap())
            .unwrap();
        builder.add_block(&block, CLOCK).unwrap().unwrap();
    }
    let up = update(
        &[&builder, r],
        world.artefacts[2],
        r.index().head(&world.artefacts[2]).unwrap().unwrap(),
        "n",
        NOW,
    );
    commit(net, &mut builder, vec![net.tx(0, vec![up], NOW)], NOW).0
}

fn resign(block: &mut Block, key: &SecretKey, chain: &Chain) {
    *block = Block::commit_with_records(
        (block.chain, block.height - 1),
        &block.network.clone(),
        block.timestamp_ms,
        (key, chain),
        (block.records.clone(), block.finality.clone()),
        block.transactions.clone(),
        block.entries.clone(),
    );
}
