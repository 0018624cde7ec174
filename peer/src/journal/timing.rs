//! Block rules that cost an adversary real time (docs/consensus.md, "Block rules"): a block's
//! committer must hold a seat at its height, an out-of-turn block is timestamped no earlier than
//! its back-off allows after its parent, and no block is taken while its timestamp runs ahead of
//! the receiver's clock by more than the allowed skew. Pure: the receiver's clock is an argument.

use std::time::Duration;

use super::block::Block;
use super::fork::Schedule;
use super::verify::BlockRejection;
use crate::time::UnixMillis;

/// The commit timing a network's parameters fix, which every receiver enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommitTiming {
    /// After this without a block, out-of-turn members may commit.
    pub commit_timeout: Duration,
    /// Added to the timeout per rank from the in-turn slot.
    pub commit_backoff: Duration,
}

impl CommitTiming {
    /// The least time, in milliseconds, between a parent's timestamp and that of a child
    /// committed at `rank` (0: in turn, which only has to move time forward).
    pub fn min_gap_ms(&self, rank: u64) -> u64 {
        if rank == 0 {
            return 1;
        }
        let backoff = self.commit_backoff.as_millis() as u64;
        (self.commit_timeout.as_millis() as u64).saturating_add(backoff.saturating_mul(rank))
    }

    /// The earliest timestamp `committer` may give the child at `height` of a parent timestamped
    /// `parent_ms`, or `None` if it holds no seat in `schedule`.
    pub fn earliest(
        &self,
        schedule: &Schedule,
        height: u64,
        committer: &crate::trust::PublicKey,
        parent_ms: UnixMillis,
    ) -> Option<UnixMillis> {
        let rank = schedule.rank(height, committer)?;
        Some(parent_ms.saturating_add(self.min_gap_ms(rank)))
    }
}

/// Checks that `block`'s committer holds a seat in `schedule` at the block's height and that the
/// block is timestamped no earlier than its rank allows after its parent (`parent_ms`).
/// Deterministic: every receiver holding the chain below decides alike.
pub fn check_slot(
    block: &Block,
    parent_ms: UnixMillis,
    schedule: &Schedule,
    timing: &CommitTiming,
) -> Result<(), BlockRejection> {
    let Some(committer) = block.committer_key() else {
        return Err(BlockRejection::BadSignature);
    };
    let Some(rank) = schedule.rank(block.height, &committer) else {
        return Err(BlockRejection::NotAMember {
            committer,
            height: block.height,
        });
    };
    let earliest = parent_ms.saturating_add(timing.min_gap_ms(rank));
    if block.timestamp_ms < earliest {
        return Err(BlockRejection::TooEarly {
            rank,
            timestamp_ms: block.timestamp_ms,
            earliest_ms: earliest,
        });
    }
    Ok(())
}

/// Checks that `block` is not timestamped more than `skew` ahead of the receiver's clock
/// (`now_ms`). A refusal depends on that clock: the block may be taken later, and its sender is
/// not to blame.
pub fn check_not_ahead(
    block: &Block,
    now_ms: UnixMillis,
    skew: Duration,
) -> Result<(), BlockRejection> {
    let limit = now_ms.saturating_add(skew.as_millis() as u64);
    if block.timestamp_ms > limit {
        return Err(BlockRejection::FromTheFuture {
            timestamp_ms: block.timestamp_ms,
            now_ms,
        });
    }
    Ok(())
}
