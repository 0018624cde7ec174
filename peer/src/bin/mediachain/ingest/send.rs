//! Sending batches and learning their fate: a batch's objects are uploaded to its peer
//! (concurrently), its transaction signed and recorded in the journal, then submitted (retried
//! while the peer is busy, as [`RETRY`] says). The view-update stream of the first peer confirms transactions as
//! their blocks join its chain; a transaction not seen within the timeout is looked up at the
//! peer it was sent to (committed: the stream missed it; refused or dropped: its rows fail and
//! a resumed run does them again).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures::StreamExt;
use indicatif::ProgressBar;
use mediachain::client::{Client, ClientError, RetryPolicy};
use mediachain::journal::{Transaction, TxId};
use mediachain::model::Cid;
use mediachain::trust::{Chain, SecretKey};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::batch::Batch;
use super::journal::{Journal, Sent};
use super::peers::Rotation;

/// How long a resumed run waits for a transaction an earlier run left pending.
const RESOLVE_WAIT: Duration = Duration::from_secs(60);

/// How the ingest's clients retry what a peer refuses for now (`429`, `503` with
/// `Retry-After`): 20 tries, back-off from 50 ms, waits of at most 2 s (the peer asks for 1 s).
/// The one retry policy of the ingest: a connection that fails is not retried (the rows fail,
/// and a resumed run does them again).
pub const RETRY: RetryPolicy = RetryPolicy {
    attempts: 20,
    max_wait: Duration::from_secs(2),
    backoff: Duration::from_millis(50),
};

/// `request`, holding one of the peer's request slots while it runs (its retries included).
async fn slotted<T>(slots: &Semaphore, request: impl std::future::Future<Output = T>) -> T {
    let _slot = slots.acquire().await;
    request.await
}

/// Bytes of objects in one batch upload (under the peer's default batch limit of 16 MiB).
const CHUNK_BYTES: usize = 4 * 1024 * 1024;
/// Objects in one batch upload (the peer takes at most 4,096).
const CHUNK_OBJECTS: usize = 1024;

/// `objects` cut into batch uploads of at most [`CHUNK_OBJECTS`] objects and [`CHUNK_BYTES`]
/// (an object larger than that travels alone).
fn upload_chunks(objects: Vec<(Cid, Vec<u8>)>) -> Vec<Vec<Vec<u8>>> {
    let mut chunks = vec![];
    let (mut chunk, mut size) = (vec![], 0);
    for (_, bytes) in objects {
        if !chunk.is_empty() && (size + bytes.len() > CHUNK_BYTES || chunk.len() >= CHUNK_OBJECTS) {
            chunks.push(std::mem::take(&mut chunk));
            size = 0;
        }
        size += bytes.len();
        chunk.push(bytes);
    }
    if !chunk.is_empty() {
        chunks.push(chunk);
    }
    chunks
}

/// What the run has done so far.
#[derive(Debug, Default)]
pub struct Stats {
    /// Rows read (mapped or not).
    pub rows: usize,
    /// Rows skipped: (line, reason).
    pub skipped: Vec<(u64, String)>,
    /// Rows of transactions that failed: (lines, reason).
    pub failed: Vec<(Vec<u64>, String)>,
    /// Artefacts committed.
    pub artefacts: usize,
    /// `artefactCreatedBy` cells committed.
    pub cells: usize,
    /// Entities committed.
    pub entities: usize,
    /// Transactions committed.
    pub transactions: usize,
}

struct Pending {
    sent: Sent,
    since: Instant,
    _slot: OwnedSemaphorePermit,
}

/// What every sending task shares.
pub struct Sender {
    /// One client per peer.
    pub clients: Vec<Client>,
    /// The client's key and chain, and the transaction proof of work.
    pub key: SecretKey,
    /// Its Level-2 chain.
    pub chain: Chain,
    /// Transaction proof-of-work bits.
    pub bits: u8,
    /// Concurrent uploads of one batch.
    pub uploads: usize,
    /// Per peer, the requests this run may have open at once (under its per-client caps).
    requests: Vec<Semaphore>,
    /// Per peer, the uploads this run may have in progress at once (under the peer's cap of a
    /// client's uploads in progress).
    uploading: Vec<Semaphore>,
    /// The journal.
    pub journal: Mutex<Journal>,
    /// Progress (rows done of the input).
    pub progress: ProgressBar,
    /// Counters.
    pub stats: Mutex<Stats>,
    pending: Mutex<HashMap<TxId, Pending>>,
    creators_at: Mutex<HashSet<(usize, Cid)>>,
    rotation: Mutex<Rotation>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Sender {
    /// A sender over `clients`, passing over for `timeout` a peer whose transactions go
    /// unconfirmed that long.
    pub fn new(
        clients: Vec<Client>,
        (key, chain, bits): (SecretKey, Chain, u8),
        (uploads, requests): (usize, usize),
        (journal, timeout): (Journal, Duration),
        progress: ProgressBar,
    ) -> Self {
        Self {
            rotation: Mutex::new(Rotation::new(clients.len(), timeout)),
            requests: clients
                .iter()
                .map(|_| Semaphore::new(requests.max(1)))
                .collect(),
            uploading: clients
                .iter()
                .map(|_| Semaphore::new(uploads.max(1)))
                .collect(),
            clients,
            key,
            chain,
            bits,
            uploads: uploads.max(1),
            journal: Mutex::new(journal),
            progress,
            stats: Mutex::default(),
            pending: Mutex::default(),
            creators_at: Mutex::default(),
        }
    }

    /// The peer the next transaction goes to (round-robin, passing over lagging peers).
    pub fn next_peer(&self) -> usize {
        lock(&self.rotation).next(Instant::now())
    }

    /// Transactions sent and not yet resolved.
    pub fn in_flight(&self) -> usize {
        lock(&self.pending).len()
    }

    /// Uploads `batch`'s objects to peer `peer`, signs and submits its transaction; `slot` is
    /// held until the transaction is resolved.
    pub async fn send(self: Arc<Self>, batch: Batch, peer: usize, slot: OwnedSemaphorePermit) {
        let lines = batch.lines.clone();
        if let Err(reason) = self.try_send(batch, peer, slot).await {
            self.fail_rows(lines, reason);
        }
    }

    async fn try_send(
        &self,
        batch: Batch,
        peer: usize,
        slot: OwnedSemaphorePermit,
    ) -> Result<(), String> {
        let client = &self.clients[peer];
        let slots = &self.requests[peer];
        let uploading = &self.uploading[peer];
        let creators: Vec<(Cid, Vec<u8>)> = {
            let at = lock(&self.creators_at);
            let new = batch
                .creators
                .iter()
                .filter(|(cid, _)| !at.contains(&(peer, *cid)));
            new.cloned().collect()
        };
        let creator_cids: Vec<Cid> = creators.iter().map(|(cid, _)| *cid).collect();
        let objects: Vec<(Cid, Vec<u8>)> = batch.objects.iter().cloned().chain(creators).collect();
        // One request per chunk of objects (the peer's batch upload: one flush, one token of
        // its rate limit), chunks concurrently.
        let mut uploads = futures::stream::iter(upload_chunks(objects))
            .map(|chunk| async move {
                let refs: Vec<&[u8]> = chunk.iter().map(Vec::as_slice).collect();
                let _uploading = uploading.acquire().await;
                slotted(slots, client.put_objects(&refs)).await
            })
            .buffer_unordered(self.uploads);
        while let Some(stored) = uploads.next().await {
            stored.map_err(|e| format!("uploading to {}: {e}", client.base()))?;
        }
        drop(uploads);
        lock(&self.creators_at).extend(creator_cids.into_iter().map(|cid| (peer, cid)));
        let now = mediachain::time::now();
        let (key, chain, bits) = (self.key.clone(), self.chain.clone(), self.bits);
        let entries = batch.entries.clone();
        let tx = tokio::task::spawn_blocking(move || {
            Transaction::create(&key, &chain, entries, now, bits)
        })
        .await
        .map_err(|e| format!("signing: {e}"))?
        .map_err(|e| format!("signing: {e}"))?;
        let id = tx.id();
        let sent = batch.sent(id.to_string(), peer);
        lock(&self.journal)
            .sent(&sent)
            .map_err(|e| format!("writing the journal: {e}"))?;
        let since = Instant::now();
        lock(&self.pending).insert(
            id,
            Pending {
                sent,
                since,
                _slot: slot,
            },
        );
        if let Err(e) = slotted(slots, client.submit(&tx)).await {
            self.fail(&id, &format!("refused by {}: {e}", client.base()));
        }
        Ok(())
    }

    /// Transaction `id` is in a block.
    pub fn confirm(&self, id: &TxId) {
        let Some(pending) = lock(&self.pending).remove(id) else {
            return;
        };
        lock(&self.rotation).confirmed(pending.sent.peer);
        if let Err(e) = lock(&self.journal).confirmed(&pending.sent.sent) {
            tracing::warn!(error = %e, "writing the journal");
        }
        let sent = &pending.sent;
        let mut stats = lock(&self.stats);
        stats.transactions += 1;
        stats.artefacts += sent.artefacts;
        stats.cells += sent.cells;
        stats.entities += sent.entities.len();
        self.progress.inc(sent.lines.len() as u64);
    }

    /// Transaction `id` will not be committed.
    fn fail(&self, id: &TxId, reason: &str) {
        let Some(pending) = lock(&self.pending).remove(id) else {
            return;
        };
        if let Err(e) = lock(&self.journal).failed(&pending.sent.sent, reason) {
            tracing::warn!(error = %e, "writing the journal");
        }
        self.fail_rows(pending.sent.lines, reason.to_string());
    }

    fn fail_rows(&self, lines: Vec<u64>, reason: String) {
        self.progress.inc(lines.len() as u64);
        lock(&self.stats).failed.push((lines, reason));
    }

    /// Follows the first peer's view-update stream from height `from`, confirming what it
    /// sees, reconnecting after the height it reached when the stream breaks.
    pub async fn watch(self: Arc<Self>, mut from: u64) {
        loop {
            match self.clients[0].events(Some(from), &[], &[]).await {
                Ok(mut stream) => {
                    while let Some(Ok(block)) = stream.next().await {
                        from = block.height + 1;
                        for id in block.transactions.iter().filter_map(|t| t.parse().ok()) {
                            self.confirm(&id);
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "view-update stream"),
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Looks up, at the peer each was sent to, every transaction unconfirmed for `timeout`:
    /// committed ones are confirmed, refused or dropped ones fail, pending ones wait (three
    /// timeouts at most) and their peer is passed over meanwhile.
    pub async fn sweep(&self, timeout: Duration) {
        let late: Vec<(TxId, usize, Duration)> = lock(&self.pending)
            .iter()
            .filter(|(_, p)| p.since.elapsed() >= timeout)
            .map(|(id, p)| (*id, p.sent.peer, p.since.elapsed()))
            .collect();
        for (id, peer, waited) in late {
            match self.clients[peer].status(&id).await {
                Ok(s) if s.is_committed() => self.confirm(&id),
                Ok(s) if s.state == "pending" && waited < timeout * 3 => {
                    lock(&self.rotation).lagging(peer, Instant::now());
                }
                Ok(s) => {
                    if s.state == "pending" {
                        lock(&self.rotation).lagging(peer, Instant::now());
                    }
                    let why = s.reason.map(|r| format!(": {r}")).unwrap_or_default();
                    self.fail(&id, &format!("{} after {waited:.0?}{why}", s.state));
                }
                Err(e) => tracing::warn!(error = %e, %id, "transaction status"),
            }
        }
    }

    /// [`Sender::sweep`] every `period`, forever.
    pub async fn sweep_every(self: Arc<Self>, period: Duration, timeout: Duration) {
        loop {
            tokio::time::sleep(period).await;
            self.sweep(timeout).await;
        }
    }

    /// The journal's transactions sent by an earlier run and never resolved: the committed are
    /// recorded as such (returned, with their entities), the others as failed (their rows are
    /// done again).
    pub async fn resolve(&self, unresolved: Vec<Sent>) -> Result<Vec<Sent>, ClientError> {
        let mut committed = vec![];
        for sent in unresolved {
            let id: TxId = sent.sent.parse().map_err(ClientError::Protocol)?;
            let client = &self.clients[sent.peer.min(self.clients.len() - 1)];
            let mut state = client.status(&id).await?;
            let deadline = Instant::now() + RESOLVE_WAIT;
            while state.state == "pending" && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(500)).await;
                state = client.status(&id).await?;
            }
            let mut journal = lock(&self.journal);
            if state.is_committed() {
                journal.confirmed(&sent.sent)
            } else {
                journal.failed(&sent.sent, &format!("{} when the run resumed", state.state))
            }
            .map_err(|e| ClientError::Protocol(format!("writing the journal: {e}")))?;
            if state.is_committed() {
                committed.push(sent);
            }
        }
        Ok(committed)
    }
}
