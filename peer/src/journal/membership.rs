//! Membership on the chain (docs/consensus.md, "Members and seats"): who is a member, who holds
//! a seat, and which revocations bind, as a pure function of the blocks below. Pure and
//! deterministic: every node replaying the same blocks computes the same [`Membership`].
//!
//! Blocks carry [`Record`]s: a Level-1 peer's signed request to join ([`JoinRecord`]), or a
//! signed revocation list (of the root, a member's principal, or a member for its clients). A
//! revocation binds every block after the one recording it (its committer's and clients'
//! certificates are checked against it); seat changes, joins and revocations alike, wait until a
//! later block of the chain records a final checkpoint at or above the recording block (its
//! finality certificate, `super::certificate`), then take effect at the first block of the epoch
//! after the next checkpoint ([`Membership::activation`]): Gasper's activation gated by the
//! state's finalized checkpoint, GRANDPA's standard changes enacted once their block is final.
//! Seats: each member peer holds one, but the peers of one principal at most
//! `max-weight-per-principal` together, in joining order.

use std::collections::{BTreeMap, BTreeSet};

use super::fork::Schedule;
use crate::network::NetworkParams;
use crate::time::UnixSeconds;
use crate::trust::{CertError, Certificate, Chain, Level, PublicKey, RevocationSet};

#[path = "membership_record.rs"]
mod record;
pub use record::{
    JoinBody, JoinRecord, Record, RecordRejection, MAX_RECORDS_PER_BLOCK,
    MAX_REVOCATIONS_PER_RECORD,
};

/// A member peer and the principal that certified it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Member {
    key: PublicKey,
    principal: Option<PublicKey>,
}

impl Member {
    fn of(chain: &[Certificate]) -> Option<Self> {
        Some(Member {
            key: chain.first()?.body.subject,
            principal: chain.get(1).map(|c| c.body.subject),
        })
    }
}

/// A change of the seats waiting for its block's finality, then its activation height.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Change {
    Join(Member),
    /// (issuer, subject) pairs.
    Revoke(Vec<(PublicKey, PublicKey)>),
}

/// The membership of a chain after one of its blocks.
#[derive(Debug, Clone)]
pub struct Membership {
    network: String,
    root: PublicKey,
    epoch: u64,
    cap: usize,
    /// Members whose join is in force, in joining order (initial members by key).
    members: Vec<Member>,
    /// Every key that joined, in force or pending: none joins twice.
    joined: BTreeSet<PublicKey>,
    /// Who may sign a revocation recorded on this chain besides the root: members and their
    /// principals.
    issuers: BTreeSet<PublicKey>,
    /// Revocations recorded on the chain, binding certificates in every later block.
    revocations: RevocationSet,
    /// Revocations whose seat change is in force, as (issuer, subject).
    seat_revoked: BTreeSet<(PublicKey, PublicKey)>,
    /// Changes by the height of the block recording them, waiting for the chain to record that
    /// block final.
    unfinal: BTreeMap<u64, Vec<Change>>,
    /// The highest checkpoint a block's finality certificate recorded final on this chain.
    recorded_final: u64,
    /// Changes whose block the chain records final, by activation height.
    pending: BTreeMap<u64, Vec<Change>>,
    seats: Schedule,
}

impl Membership {
    /// The membership at genesis: the initial members of `params` (in key order).
    pub fn initial(params: &NetworkParams) -> Self {
        let mut members: Vec<Member> = params
            .members
            .iter()
            .filter_map(|chain| Member::of(&chain.0))
            .collect();
        members.sort_by_key(|m| m.key);
        members.dedup_by_key(|m| m.key);
        let mut m = Self {
            network: params.network.clone(),
            root: params.root,
            epoch: params.consensus.epoch_length.max(1),
            cap: params.consensus.max_weight_per_principal as usize,
            joined: members.iter().map(|m| m.key).collect(),
            issuers: members
                .iter()
                .flat_map(|m| std::iter::once(m.key).chain(m.principal))
                .collect(),
            members,
            revocations: RevocationSet::new(params.root),
            seat_revoked: BTreeSet::new(),
            unfinal: BTreeMap::new(),
            recorded_final: 0,
            pending: BTreeMap::new(),
            seats: Schedule::default(),
        };
        m.reseat();
        m
    }

    /// The seats (the rotation, the finality voters) of blocks under this membership.
    pub fn seats(&self) -> &Schedule {
        &self.seats
    }

    /// Blocks per epoch.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The revocations recorded on the chain.
    pub fn revocations(&self) -> &RevocationSet {
        &self.revocations
    }

    /// Whether `key` joined (its join in force or pending).
    pub fn has_joined(&self, key: &PublicKey) -> bool {
        self.joined.contains(key)
    }

    /// Member keys whose join is in force, in joining order.
    pub fn members(&self) -> Vec<PublicKey> {
        self.members.iter().map(|m| m.key).collect()
    }

    /// The height from which the changes made final by the block at `height` hold: the first
    /// block of the epoch after the checkpoint at or above it.
    pub fn activation(&self, height: u64) -> u64 {
        let checkpoint = height.div_ceil(self.epoch) * self.epoch;
        checkpoint + self.epoch + 1
    }

    /// The height of the highest checkpoint a block of this chain recorded final (0: genesis).
    pub fn recorded_final(&self) -> u64 {
        self.recorded_final
    }

    /// Whether a change waits: for the chain to record its block final, or for its activation
    /// height (blocks are due until it is in force).
    pub fn awaits_finality(&self) -> bool {
        !self.unfinal.is_empty() || !self.pending.is_empty()
    }

    /// Records that the block at `height` carries a certificate proving the checkpoint at
    /// `final_height` final (checked: above [`Membership::recorded_final`]): the changes recorded
    /// at or below it are scheduled for [`Membership::activation`] of `height`.
    pub fn record_finality(&mut self, final_height: u64, height: u64) {
        self.recorded_final = self.recorded_final.max(final_height);
        let later = self.unfinal.split_off(&(final_height + 1));
        let made_final = std::mem::replace(&mut self.unfinal, later);
        let changes: Vec<Change> = made_final.into_values().flatten().collect();
        if !changes.is_empty() {
            let activation = self.activation(height);
            self.pending.entry(activation).or_default().extend(changes);
        }
    }

    /// Whether a change recorded in an earlier block takes effect at `height`.
    pub fn changes_at(&self, height: u64) -> bool {
        self.pending.range(..=height).next().is_some()
    }

    /// The membership for the block at `height` (its seats), with every change due by then in
    /// force. Call only when [`Membership::changes_at`] says so (it clones).
    pub fn advanced(&self, height: u64) -> Self {
        let mut next = self.clone();
        let due: Vec<u64> = next.pending.range(..=height).map(|(h, _)| *h).collect();
        for h in due {
            for change in next.pending.remove(&h).unwrap_or_default() {
                match change {
                    Change::Join(member) => next.members.push(member),
                    Change::Revoke(pairs) => next.seat_revoked.extend(pairs),
                }
            }
        }
        next.reseat();
        next
    }

    /// Whether a member's seat is revoked: by its principal or the root, or its principal by
    /// the root.
    fn seat_lost(&self, m: &Member) -> bool {
        self.seat_revoked.contains(&(self.root, m.key))
            || m.principal.is_some_and(|p| {
                self.seat_revoked.contains(&(p, m.key))
                    || self.seat_revoked.contains(&(self.root, p))
            })
    }

    /// Recomputes the seats: members not revoked, at most `cap` per principal in joining order.
    fn reseat(&mut self) {
        let mut per_principal: BTreeMap<Option<PublicKey>, usize> = BTreeMap::new();
        let mut seats = vec![];
        for m in &self.members {
            if self.seat_lost(m) {
                continue;
            }
            let held = per_principal.entry(m.principal).or_default();
            if *held < self.cap {
                *held += 1;
                seats.push(m.key);
            }
        }
        self.seats = Schedule::new(seats);
    }

    /// Checks `record` against this membership for a block timestamped `at` (seconds), with
    /// `local` revocations (the node's own lists) besides the chain's.
    pub fn check(
        &self,
        record: &Record,
        at: UnixSeconds,
        local: &RevocationSet,
    ) -> Result<(), RecordRejection> {
        match record {
            Record::Join(join) => {
                if join.body.network != self.network {
                    return Err(RecordRejection::WrongNetwork(join.body.network.clone()));
                }
                let chain = Chain(join.body.chain.clone());
                let key = chain.verify(&self.root, &self.revocations, at, Level::Peer)?;
                chain.verify_validity(local, at)?;
                if !join.signed_by(&key) {
                    return Err(RecordRejection::BadJoinSignature);
                }
                if self.joined.contains(&key) {
                    return Err(RecordRejection::AlreadyMember(key));
                }
                Ok(())
            }
            Record::Revoke(list) => {
                let issuer = list.body.issuer;
                if issuer != self.root && !self.issuers.contains(&issuer) {
                    return Err(RecordRejection::UnknownIssuer(issuer));
                }
                let count = list.body.revoked.len();
                if count > MAX_REVOCATIONS_PER_RECORD {
                    return Err(RecordRejection::TooLarge {
                        count,
                        limit: MAX_REVOCATIONS_PER_RECORD,
                    });
                }
                if !list.signed_by(&issuer) {
                    return Err(RecordRejection::BadListSignature(issuer));
                }
                if !self.revocations.adds_to(list) {
                    return Err(RecordRejection::NothingNew(issuer));
                }
                Ok(())
            }
        }
    }

    /// Records `record` (checked) of the block at `height`, timestamped `at` (seconds): a
    /// revocation binds certificates from the next block on; seat changes wait for the chain to
    /// record the block final.
    pub fn record(&mut self, record: &Record, height: u64, at: UnixSeconds) {
        let change = match record {
            Record::Join(join) => {
                let Some(member) = Member::of(&join.body.chain) else {
                    return;
                };
                self.joined.insert(member.key);
                self.issuers.insert(member.key);
                self.issuers.extend(member.principal);
                Change::Join(member)
            }
            Record::Revoke(list) => {
                self.revocations.add_effective(list, at);
                let pairs = list
                    .body
                    .revoked
                    .iter()
                    .map(|r| (list.body.issuer, r.subject))
                    .collect();
                Change::Revoke(pairs)
            }
        };
        self.unfinal.entry(height).or_default().push(change);
    }

    /// Checks and records the records of the block at `height` (timestamped `at`) in order;
    /// the first refused one and why.
    pub fn take_block(
        &mut self,
        records: &[Record],
        height: u64,
        at: UnixSeconds,
        local: &RevocationSet,
    ) -> Result<(), (usize, RecordRejection)> {
        if records.len() > MAX_RECORDS_PER_BLOCK {
            let too_many = RecordRejection::TooMany {
                count: records.len(),
                limit: MAX_RECORDS_PER_BLOCK,
            };
            return Err((MAX_RECORDS_PER_BLOCK, too_many));
        }
        for (i, record) in records.iter().enumerate() {
            self.check(record, at, local).map_err(|e| (i, e))?;
            self.record(record, height, at);
        }
        Ok(())
    }

    /// The first certificate of `chain` revoked on this chain (at any time), as the error a
    /// verification at a later block's time gives: a client whose key is revoked is refused at
    /// admission whatever timestamp its transaction carries.
    pub fn revoked_in(&self, chain: &[Certificate]) -> Option<CertError> {
        chain.iter().find_map(|cert| {
            let body = &cert.body;
            [body.issuer, self.root]
                .into_iter()
                .find(|by| self.revocations.revokes(by, &body.subject))
                .map(|by| CertError::Revoked {
                    subject: body.subject,
                    by,
                    reason: "revoked on the chain".into(),
                })
        })
    }
}

#[cfg(test)]
#[path = "membership_tests.rs"]
mod tests;
