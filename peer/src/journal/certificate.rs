//! Finality recorded on the chain (docs/consensus.md, "Finality recorded on the chain"): the
//! finality certificate a block may carry, the signed votes of one supermajority link between
//! adjacent checkpoints of its own chain, which proves the link's source final. Pure: the chain
//! is read through [`Ancestry`] (ancestors and the seats of each block), so a certificate's
//! validity is a function of the block's chain alone and every receiver reaches the same verdict.

use std::collections::BTreeSet;

use super::finality::{Ancestry, Finality};
use super::vote::{Checkpoint, Vote};
use crate::model::Cid;
use crate::trust::PublicKey;

/// Most votes a block's certificate may hold (checked before any signature).
pub const MAX_CERTIFICATE_VOTES: usize = 1024;

/// Why a block's finality certificate is refused. Each depends only on the block's chain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertificateRejection {
    /// Finality certificates need network parameters (membership on the chain).
    #[error("finality certificates need network parameters")]
    NoMembership,
    /// More votes than a certificate may hold.
    #[error("finality certificate holds {count} votes, the limit is {limit}")]
    TooMany {
        /// Votes.
        count: usize,
        /// Limit.
        limit: usize,
    },
    /// The votes are not all for one link.
    #[error("finality certificate mixes votes of different links")]
    MixedLinks,
    /// The link does not go from a checkpoint to the next one.
    #[error(
        "finality certificate links {source_height} -> {target_height}, not adjacent checkpoints"
    )]
    NotAdjacent {
        /// The source's height.
        source_height: u64,
        /// The target's height.
        target_height: u64,
    },
    /// The source is not above the checkpoint the chain records final already.
    #[error("finality certificate for {found} is stale: the chain records {recorded} final")]
    Stale {
        /// The certified source's height.
        found: u64,
        /// The recorded final checkpoint's height.
        recorded: u64,
    },
    /// The link's checkpoints are not ancestors of the block.
    #[error("finality certificate's link {source_height} -> {target_height} is not on the block's chain")]
    NotOnChain {
        /// The source's height.
        source_height: u64,
        /// The target's height.
        target_height: u64,
    },
    /// A voter holds no seat at the link's checkpoints, or votes twice.
    #[error("finality certificate counts {0}, who holds no seat there or votes twice")]
    NotSeated(PublicKey),
    /// A vote's signature does not verify.
    #[error("finality certificate holds a forged vote of {0}")]
    BadSignature(PublicKey),
    /// The votes are not more than two thirds of the link's seats.
    #[error("finality certificate holds too few seats' votes")]
    TooFew,
}

/// Checks the certificate `votes` of a block whose parent is `parent`, on a chain recording
/// `recorded` final (a height), with checkpoints every `epoch` blocks. The newly final
/// checkpoint (`None`: no certificate).
pub fn check(
    votes: &[Vote],
    network: &str,
    epoch: u64,
    recorded: u64,
    chain: &impl Ancestry,
    parent: &Cid,
) -> Result<Option<Checkpoint>, CertificateRejection> {
    let Some(first) = votes.first() else {
        return Ok(None);
    };
    if votes.len() > MAX_CERTIFICATE_VOTES {
        return Err(CertificateRejection::TooMany {
            count: votes.len(),
            limit: MAX_CERTIFICATE_VOTES,
        });
    }
    let (source, target) = (first.source, first.target);
    if votes
        .iter()
        .any(|v| v.source != source || v.target != target)
    {
        return Err(CertificateRejection::MixedLinks);
    }
    let epoch = epoch.max(1);
    if source.height % epoch != 0 || target.height != source.height + epoch {
        return Err(CertificateRejection::NotAdjacent {
            source_height: source.height,
            target_height: target.height,
        });
    }
    if source.height <= recorded {
        return Err(CertificateRejection::Stale {
            found: source.height,
            recorded,
        });
    }
    let on_chain = chain.ancestor_at(parent, target.height) == Some(target.cid)
        && chain.ancestor_at(&target.cid, source.height) == Some(source.cid);
    if !on_chain {
        return Err(CertificateRejection::NotOnChain {
            source_height: source.height,
            target_height: target.height,
        });
    }
    let (Some(source_seats), Some(target_seats)) =
        (chain.seats_at(&source.cid), chain.seats_at(&target.cid))
    else {
        return Err(CertificateRejection::NoMembership);
    };
    let mut voters = BTreeSet::new();
    for vote in votes {
        let seated = source_seats.contains(&vote.voter) || target_seats.contains(&vote.voter);
        if !seated || !voters.insert(vote.voter) {
            return Err(CertificateRejection::NotSeated(vote.voter));
        }
    }
    let all: Vec<&Vote> = votes.iter().collect();
    if !Finality::supermajority(&all, &target_seats)
        || !Finality::supermajority(&all, &source_seats)
    {
        return Err(CertificateRejection::TooFew);
    }
    if let Some(forged) = votes.iter().find(|v| !v.signature_valid(network)) {
        return Err(CertificateRejection::BadSignature(forged.voter));
    }
    Ok(Some(source))
}

/// The certificate a committer attaches: of `certificate` (the votes of the link that made its
/// final checkpoint final), the votes of that link's seats, one per voter, when they pass
/// [`check`] for a block on `parent`; empty otherwise (nothing new to record).
pub fn attach(
    certificate: &[Vote],
    network: &str,
    epoch: u64,
    recorded: u64,
    chain: &impl Ancestry,
    parent: &Cid,
) -> Vec<Vote> {
    let Some(first) = certificate.first() else {
        return vec![];
    };
    let seats = |cid: &Cid| chain.seats_at(cid).unwrap_or_default();
    let (source_seats, target_seats) = (seats(&first.source.cid), seats(&first.target.cid));
    let mut voters = BTreeSet::new();
    let votes: Vec<Vote> = certificate
        .iter()
        .filter(|v| source_seats.contains(&v.voter) || target_seats.contains(&v.voter))
        .filter(|v| voters.insert(v.voter))
        .take(MAX_CERTIFICATE_VOTES)
        .cloned()
        .collect();
    match check(&votes, network, epoch, recorded, chain, parent) {
        Ok(Some(_)) => votes,
        _ => vec![],
    }
}

#[cfg(test)]
#[path = "certificate_tests.rs"]
mod tests;
