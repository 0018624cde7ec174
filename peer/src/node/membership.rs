//! Membership records at a node (docs/consensus.md, "Members and seats"): records offered by
//! clients of the API (revocations), by peers (their identity records carry the records they
//! hold) and by this peer itself (its own join request, the revocation lists it was started
//! with) wait here, bounded, until a block carries them; each is checked against the tip first.
//! They are kept in the store too (`store/records.rs`), so a crash before a block or this peer's
//! identity record carried one does not lose it. Never touches the network.

use tracing::{info, warn};

use super::{Node, State};
use crate::journal::membership::{Record, RecordRejection};
use crate::model::Cid;
use crate::store::Store;
use crate::time::UnixSeconds;

/// Most membership records waiting for a block at one node.
pub const MAX_PENDING_RECORDS: usize = 64;

/// Queues the revocation lists this node was started with (those the chain lacks).
pub(super) fn queue_start_lists(state: &mut State, now: UnixSeconds) {
    let lists = state.journal.rules().revocations.lists().to_vec();
    for list in lists {
        let record = Record::Revoke(list);
        match state.journal.check_record(&record, now) {
            Ok(()) => {
                info!(issuer = %record_issuer(&record), "revocation list given at start goes on the chain");
                queue(state, record);
            }
            Err(RecordRejection::NothingNew(_)) => {}
            Err(reason) => warn!(%reason, "revocation list given at start cannot go on the chain"),
        }
    }
}

fn record_issuer(record: &Record) -> String {
    match record {
        Record::Join(join) => join
            .body
            .chain
            .first()
            .map(|c| c.body.subject.to_string())
            .unwrap_or_default(),
        Record::Revoke(list) => list.body.issuer.to_string(),
    }
}

/// Puts back in the queue the membership records of the blocks a reorganisation abandoned
/// (from `old_tip` down to the first above `ancestor`) that still hold on the new tip: like
/// orphaned transactions, a revocation or join committed only on a losing branch (an island of
/// a partition) is committed again. Records the new chain holds already no longer hold.
pub(super) fn requeue_abandoned(
    state: &mut State,
    store: &Store,
    (old_tip, ancestor): (Cid, u64),
    now: UnixSeconds,
) {
    let mut cursor = old_tip;
    let mut records = vec![];
    while let Ok(block) = state.journal.load_block(&cursor) {
        if block.height <= ancestor {
            break;
        }
        records.extend(block.records.iter().rev().cloned());
        cursor = block.chain;
    }
    for record in records.into_iter().rev() {
        if state.journal.check_record(&record, now).is_ok() && queue(state, record.clone()) {
            info!("membership record of an abandoned block queued again");
            keep(store, &record);
        }
    }
}

/// Queues again the records the store kept (those that still hold on the tip; the others are
/// forgotten).
pub(super) fn restore(state: &mut State, store: &Store, now: UnixSeconds) {
    let kept = match store.records() {
        Ok(kept) => kept,
        Err(error) => {
            warn!(%error, "reading the kept membership records failed");
            return;
        }
    };
    for record in kept {
        if state.journal.check_record(&record, now).is_ok() && queue(state, record.clone()) {
            info!("kept membership record queued again");
        } else if let Err(error) = store.remove_record(&record) {
            warn!(%error, "forgetting a membership record failed");
        }
    }
}

/// Keeps `record` in the store (a failure is logged: it still waits in memory).
fn keep(store: &Store, record: &Record) {
    if let Err(error) = store.put_record(record) {
        warn!(%error, "keeping a membership record failed");
    }
}

/// Adds `record` unless it waits already or the queue is full; whether it was added.
fn queue(state: &mut State, record: Record) -> bool {
    if state.records.contains(&record) || state.records.len() >= MAX_PENDING_RECORDS {
        return false;
    }
    state.records.push(record);
    true
}

impl Node {
    /// Takes a membership record for a coming block: checked against the tip now. `Ok(true)`:
    /// queued (or waiting already); `Ok(false)`: the queue is full, try again later.
    pub fn offer_record(&self, record: Record) -> Result<bool, RecordRejection> {
        let mut state = self.state();
        state.journal.check_record(&record, self.clock.unix())?;
        if state.records.contains(&record) {
            return Ok(true);
        }
        let queued = queue(&mut state, record.clone());
        if queued {
            info!(pending = state.records.len(), "membership record queued");
            keep(&self.store, &record);
        }
        Ok(queued)
    }

    /// This peer's request to join, while the chain at its tip has not recorded it (under
    /// network parameters only).
    pub fn join_request(&self) -> Option<Record> {
        let state = self.state();
        let membership = state.journal.membership()?;
        if membership.has_joined(&self.key.public()) {
            return None;
        }
        Some(Record::join(&self.key, &self.chain, &self.params.network))
    }

    /// The records this peer holds for a coming block (its own join request first), for its
    /// identity record: every peer hears them, so a member commits them.
    pub fn pending_records(&self) -> Vec<Record> {
        let join = self.join_request();
        let mut state = self.state();
        let waiting = self.records_due(&mut state);
        join.into_iter().chain(waiting).collect()
    }

    /// Drops the waiting records a block took (or that no longer hold), and returns those to
    /// put in the next block.
    pub(super) fn records_due(&self, state: &mut State) -> Vec<Record> {
        let now = self.clock.unix();
        let journal = &state.journal;
        let (waiting, done): (Vec<Record>, Vec<Record>) = std::mem::take(&mut state.records)
            .into_iter()
            .partition(|r| journal.check_record(r, now).is_ok());
        for record in &done {
            if let Err(error) = self.store.remove_record(record) {
                warn!(%error, "forgetting a membership record failed");
            }
        }
        state.records = waiting;
        state.records.clone()
    }
}
