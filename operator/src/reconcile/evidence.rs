//! Evidence of misbehaviour the peers hold (issue 14 item 4, the operator's part; pure): a peer
//! whose `mediachain_evidence_culprits` is above zero is asked for its `GET /v1/evidence`
//! (docs/peer-contract.md) by [`super::observe`]; the culprits become `status.evidence` (one
//! item per culprit and kind, at most [`MAX_LISTED`]), the condition [`EVIDENCE_RECORDED`]
//! and, for each culprit new to the status, a Warning Event.
//!
//! Evidence is only replaced by an observation in which every peer answered, so a peer that
//! is restarting does not make evidence it holds vanish from the status (and come back as
//! "new" on the next scrape).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use k8s_openapi::chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::crd::{EvidenceStatus, PeerIdentityStatus};

/// Name of the peer's gauge of distinct culprits it keeps evidence against.
pub const EVIDENCE_CULPRITS: &str = "mediachain_evidence_culprits";
/// Condition type: some peer holds evidence that a member broke the protocol.
pub const EVIDENCE_RECORDED: &str = "EvidenceRecorded";
/// Most evidence items kept in the status (the condition counts them all).
pub const MAX_LISTED: usize = 16;
/// Largest `GET /v1/evidence` answer read from one peer (a peer keeps at most 4,096 items).
pub const MAX_BODY: usize = 4 << 20;

/// What the answering peers hold, one entry per (culprit, kind) with the lowest height any
/// peer names (`doubleBlock`).
pub type Culprits = BTreeMap<(String, String), Option<u64>>;

/// The part of a `GET /v1/evidence` answer the operator reads (the peer's
/// `client::wire::EvidenceList`, which needs the peer crate's `client` feature; other fields
/// are ignored).
#[derive(Deserialize)]
struct EvidenceList {
    evidence: Vec<EvidenceItem>,
}

#[derive(Deserialize)]
struct EvidenceItem {
    culprit: String,
    kind: String,
    #[serde(default)]
    height: Option<u64>,
}

/// Adds one peer's `GET /v1/evidence` answer (JSON) to `into`; `false` if it does not parse.
pub fn add_answer(into: &mut Culprits, body: &[u8]) -> bool {
    let Ok(list) = serde_json::from_slice::<EvidenceList>(body) else {
        return false;
    };
    for item in list.evidence {
        note(into, (item.culprit, item.kind), item.height);
    }
    true
}

/// Adds one (culprit, kind) to `into`, keeping the lowest height named.
pub fn note(into: &mut Culprits, key: (String, String), height: Option<u64>) {
    let kept = into.entry(key).or_insert(height);
    *kept = match (*kept, height) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
}

/// The status list of `culprits` (sorted, at most [`MAX_LISTED`]), each culprit that is one
/// of `peers` named by its pod.
pub fn listed(culprits: &Culprits, peers: &[PeerIdentityStatus]) -> Vec<EvidenceStatus> {
    culprits
        .iter()
        .take(MAX_LISTED)
        .map(|((culprit, kind), height)| EvidenceStatus {
            peer: peers
                .iter()
                .find(|p| &p.peer_id == culprit)
                .map(|p| p.name.clone()),
            culprit: culprit.clone(),
            kind: kind.clone(),
            height: *height,
        })
        .collect()
}

/// The evidence of the new status and its condition: `observed` (every peer answered) replaces
/// the previous list; without it the list and the condition stay as they were.
pub fn update_status(
    prev: &[EvidenceStatus],
    observed: Option<&Culprits>,
    peers: &[PeerIdentityStatus],
    conditions: &mut Vec<Condition>,
    generation: Option<i64>,
    now: DateTime<Utc>,
) -> Vec<EvidenceStatus> {
    let Some(culprits) = observed else {
        if !conditions.iter().any(|c| c.type_ == EVIDENCE_RECORDED) {
            let none = (false, "NoEvidence", "no peer has reported evidence".into());
            super::status::set(conditions, EVIDENCE_RECORDED, none, generation, now);
        }
        return prev.to_vec();
    };
    let list = listed(culprits, peers);
    let condition = if list.is_empty() {
        (
            false,
            "NoEvidence",
            "no peer holds evidence against a member".into(),
        )
    } else {
        let names: Vec<String> = list.iter().map(describe).collect();
        (
            true,
            "MembersMisbehaved",
            format!(
                "the peers hold evidence against {} member(s): {}{}; read it at a peer's GET /v1/evidence and revoke the culprit's key if it is confirmed",
                culprits.len(),
                names.join(", "),
                if culprits.len() > list.len() { ", ..." } else { "" }
            ),
        )
    };
    super::status::set(conditions, EVIDENCE_RECORDED, condition, generation, now);
    list
}

/// The items of `now` that `prev` did not list (each gets an Event).
pub fn new_items(prev: &[EvidenceStatus], now: &[EvidenceStatus]) -> Vec<EvidenceStatus> {
    now.iter()
        .filter(|e| {
            !prev
                .iter()
                .any(|p| p.culprit == e.culprit && p.kind == e.kind)
        })
        .cloned()
        .collect()
}

/// One item for people: `12D3... (alpha-2): doubleBlock at height 7`.
pub fn describe(e: &EvidenceStatus) -> String {
    let peer = e
        .peer
        .as_ref()
        .map(|p| format!(" ({p})"))
        .unwrap_or_default();
    let height = e
        .height
        .map(|h| format!(" at height {h}"))
        .unwrap_or_default();
    format!("{}{peer}: {}{height}", e.culprit, e.kind)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const NOW: u64 = 1_800_000_000;

    fn answer(items: &[(&str, &str, Option<u64>)]) -> Vec<u8> {
        let evidence: Vec<serde_json::Value> = items
            .iter()
            .map(|(culprit, kind, height)| {
                let mut v = serde_json::json!({"culprit": culprit, "kind": kind});
                if let Some(h) = height {
                    v["height"] = (*h).into();
                }
                v
            })
            .collect();
        serde_json::to_vec(&serde_json::json!({ "evidence": evidence })).unwrap()
    }

    #[test]
    fn answers_merge_per_culprit_and_kind_and_name_our_own_peers() {
        let mut culprits = Culprits::new();
        assert!(add_answer(
            &mut culprits,
            &answer(&[
                ("B", "doubleBlock", Some(9)),
                ("A", "conflictingVotes", None)
            ])
        ));
        assert!(add_answer(
            &mut culprits,
            &answer(&[("B", "doubleBlock", Some(7))])
        ));
        assert!(!add_answer(&mut culprits, b"<html>"));
        let peers = vec![PeerIdentityStatus {
            name: "alpha-1".into(),
            peer_id: "B".into(),
            certificate_not_after: 0,
        }];
        let list = listed(&culprits, &peers);
        assert_eq!(list.len(), 2);
        assert_eq!(describe(&list[0]), "A: conflictingVotes");
        assert_eq!(describe(&list[1]), "B (alpha-1): doubleBlock at height 7");
    }

    #[test]
    fn only_a_complete_observation_changes_the_list_and_the_condition() {
        let now = crate::reconcile::status::time(NOW);
        let mut conditions = Vec::new();
        let none = update_status(&[], None, &[], &mut conditions, Some(1), now);
        assert!(none.is_empty());
        assert_eq!(conditions[0].reason, "NoEvidence");
        let mut culprits = Culprits::new();
        for i in 0..20 {
            culprits.insert((format!("P{i:02}"), "doubleBlock".into()), Some(3));
        }
        let list = update_status(&[], Some(&culprits), &[], &mut conditions, Some(1), now);
        assert_eq!(list.len(), MAX_LISTED, "bounded");
        assert_eq!(
            (conditions[0].status.as_str(), conditions[0].reason.as_str()),
            ("True", "MembersMisbehaved")
        );
        assert!(conditions[0].message.contains("20 member(s)"));
        assert_eq!(new_items(&[], &list).len(), MAX_LISTED);
        // A scrape where some peer did not answer keeps what was known: nothing is new again.
        let kept = update_status(&list, None, &[], &mut conditions, Some(1), now);
        assert_eq!(kept, list);
        assert!(new_items(&list, &kept).is_empty());
        assert_eq!(conditions[0].status, "True");
    }
}
