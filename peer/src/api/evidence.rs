//! `GET /v1/evidence`: the evidence this peer keeps that members broke the protocol (two
//! blocks on one parent, conflicting finality votes), read-only, so an operator can revoke the
//! culprit (docs/consensus.md, "Evidence"); `GET /v1/evidence/summary`: its counts and newest
//! item, for tooling that polls (docs/peer-contract.md).

use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::Filter;

use super::problem::{answer, ApiError};
use super::{json, with, Api};
use crate::client::wire::{
    EvidenceItem, EvidenceList, EvidenceSummary, FinalizedBlock, SignedVote,
};
use crate::journal::evidence::Evidence;
use crate::journal::vote::{Checkpoint, Vote};
use crate::store::KeptEvidence;

/// The evidence routes.
pub fn routes(api: Api) -> BoxedFilter<(Response,)> {
    let all = warp::path!("v1" / "evidence")
        .and(warp::get())
        .and(with(api.clone()))
        .and_then(|api: Api| async move { answer(list(&api).map(|l| json(StatusCode::OK, &l))) });
    let summary = warp::path!("v1" / "evidence" / "summary")
        .and(warp::get())
        .and(with(api))
        .and_then(
            |api: Api| async move { answer(summary(&api).map(|s| json(StatusCode::OK, &s))) },
        );
    all.or(summary).unify().boxed()
}

/// Every item of evidence kept.
pub fn list(api: &Api) -> Result<EvidenceList, ApiError> {
    let kept = api
        .node
        .store()
        .kept_evidence()
        .map_err(ApiError::internal)?;
    Ok(EvidenceList {
        evidence: kept.iter().map(item).collect(),
    })
}

/// The counts and the newest item.
pub fn summary(api: &Api) -> Result<EvidenceSummary, ApiError> {
    let summary = api
        .node
        .store()
        .evidence_summary()
        .map_err(ApiError::internal)?;
    Ok(EvidenceSummary {
        items: summary.items,
        culprits: summary.culprits,
        newest: summary.newest.as_ref().map(item),
    })
}

fn block_ref(c: &Checkpoint) -> FinalizedBlock {
    FinalizedBlock {
        cid: c.cid.to_string(),
        height: c.height,
    }
}

fn signed(vote: &Vote) -> SignedVote {
    SignedVote {
        source: block_ref(&vote.source),
        target: block_ref(&vote.target),
        signature: hex::encode(&vote.signature),
    }
}

fn item(kept: &KeptEvidence) -> EvidenceItem {
    let evidence = &kept.evidence;
    let mut out = EvidenceItem {
        found_at: kept.found_at,
        kind: String::new(),
        culprit: evidence.culprit().to_string(),
        height: None,
        parent: None,
        blocks: vec![],
        votes: vec![],
    };
    match evidence {
        Evidence::DoubleBlock {
            height,
            parent,
            blocks,
            ..
        } => {
            out.kind = "doubleBlock".into();
            out.height = Some(*height);
            out.parent = Some(parent.to_string());
            out.blocks = blocks.iter().map(ToString::to_string).collect();
        }
        Evidence::ConflictingVotes { votes, .. } => {
            out.kind = "conflictingVotes".into();
            out.votes = votes.iter().map(signed).collect();
        }
    }
    out
}
