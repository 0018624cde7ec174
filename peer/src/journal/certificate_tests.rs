//! The finality certificate a block carries, as a specification: what proves a checkpoint
//! final on the block's own chain, and each way a forged or stale one is refused.

use std::collections::{BTreeSet, HashMap};

use super::*;
use crate::journal::finality::seats_tests::{point, Line};
use crate::model::codec::dag_cbor_cid;
use crate::trust::SecretKey;

const NET: &str = "net";
const EPOCH: u64 = 4;

/// Twelve blocks; seats 0-3 up to height 4, seats 2-5 from height 5 (two left, two joined).
fn fixture() -> (Vec<SecretKey>, Line) {
    let keys: Vec<SecretKey> = (0..7).map(|_| SecretKey::generate()).collect();
    let set = |r: std::ops::Range<usize>| -> BTreeSet<PublicKey> {
        r.map(|i| keys[i].public()).collect()
    };
    let blocks: Vec<Cid> = (0..12).map(|i| dag_cbor_cid(&[i as u8])).collect();
    let seats: HashMap<Cid, BTreeSet<PublicKey>> = blocks
        .iter()
        .enumerate()
        .map(|(h, c)| (*c, if h <= 4 { set(0..4) } else { set(2..6) }))
        .collect();
    (keys, Line { blocks, seats })
}

fn votes(keys: &[SecretKey], who: &[usize], line: &Line, s: u64, t: u64) -> Vec<Vote> {
    who.iter()
        .map(|i| Vote::sign(&keys[*i], NET, point(line, s), point(line, t)))
        .collect()
}

/// [`check`] for a block on the block at `parent`, the chain recording `recorded` final.
fn verdict(
    votes: &[Vote],
    line: &Line,
    recorded: u64,
    parent: u64,
) -> Result<Option<Checkpoint>, CertificateRejection> {
    check(
        votes,
        NET,
        EPOCH,
        recorded,
        line,
        &line.blocks[parent as usize],
    )
}

#[test]
fn a_supermajority_link_of_the_chain_proves_its_source_final() {
    let (keys, line) = fixture();
    assert_eq!(verdict(&[], &line, 0, 9), Ok(None), "no certificate");
    let genesis = votes(&keys, &[0, 1, 2], &line, 0, 4);
    assert_eq!(
        verdict(&genesis, &line, 0, 4),
        Err(CertificateRejection::Stale {
            found: 0,
            recorded: 0
        }),
        "genesis is final on every chain"
    );
    // Across the seat change both the old (0-3) and the new (2-5) seats must sign: 2, 3, 4
    // are three of the new but two of the old.
    let across = votes(&keys, &[2, 3, 4], &line, 4, 8);
    assert_eq!(
        verdict(&across, &line, 0, 9),
        Err(CertificateRejection::TooFew)
    );
    let both = votes(&keys, &[1, 2, 3, 4], &line, 4, 8);
    assert_eq!(verdict(&both, &line, 0, 9), Ok(Some(point(&line, 4))));
}

#[test]
fn forged_stale_and_misplaced_certificates_are_refused() {
    let (keys, line) = fixture();
    let good = votes(&keys, &[1, 2, 3, 4], &line, 4, 8);
    assert_eq!(
        verdict(&good, &line, 4, 9),
        Err(CertificateRejection::Stale {
            found: 4,
            recorded: 4
        }),
        "the chain records it already"
    );
    let mut forged = good.clone();
    forged[2].signature = Vote::sign(&keys[6], NET, point(&line, 4), point(&line, 8)).signature;
    assert_eq!(
        verdict(&forged, &line, 0, 9),
        Err(CertificateRejection::BadSignature(keys[3].public()))
    );
    let mut outsider = good.clone();
    outsider[0] = Vote::sign(&keys[6], NET, point(&line, 4), point(&line, 8));
    assert_eq!(
        verdict(&outsider, &line, 0, 9),
        Err(CertificateRejection::NotSeated(keys[6].public()))
    );
    let mut twice = good.clone();
    twice.push(good[0].clone());
    assert_eq!(
        verdict(&twice, &line, 0, 9),
        Err(CertificateRejection::NotSeated(keys[1].public())),
        "one vote per voter"
    );
    assert_eq!(
        verdict(&good, &line, 0, 7),
        Err(CertificateRejection::NotOnChain {
            source_height: 4,
            target_height: 8
        }),
        "its target is above the block"
    );
    let mut mixed = good.clone();
    mixed.extend(votes(&keys, &[0], &line, 0, 4));
    assert_eq!(
        verdict(&mixed, &line, 0, 9),
        Err(CertificateRejection::MixedLinks)
    );
    let skipping = votes(&keys, &[1, 2, 3, 4], &line, 0, 8);
    assert_eq!(
        verdict(&skipping, &line, 0, 9),
        Err(CertificateRejection::NotAdjacent {
            source_height: 0,
            target_height: 8
        })
    );
    // Votes naming blocks of another chain.
    let elsewhere = Checkpoint {
        height: 8,
        cid: dag_cbor_cid(b"elsewhere"),
    };
    let off: Vec<Vote> = [1, 2, 3, 4]
        .iter()
        .map(|i| Vote::sign(&keys[*i], NET, point(&line, 4), elsewhere))
        .collect();
    assert!(matches!(
        verdict(&off, &line, 0, 9),
        Err(CertificateRejection::NotOnChain { .. })
    ));
    let many = vec![good[0].clone(); MAX_CERTIFICATE_VOTES + 1];
    assert!(matches!(
        verdict(&many, &line, 0, 9),
        Err(CertificateRejection::TooMany { .. })
    ));
}

#[test]
fn a_committer_attaches_its_link_s_seated_votes_and_nothing_stale() {
    let (keys, line) = fixture();
    let parent = line.blocks[9];
    // The accounting's certificate may hold votes of keys seated elsewhere on the chain.
    let held = votes(&keys, &[1, 2, 3, 4, 6], &line, 4, 8);
    let attached = attach(&held, NET, EPOCH, 0, &line, &parent);
    assert_eq!(attached, held[..4].to_vec());
    assert_eq!(
        attach(&held, NET, EPOCH, 4, &line, &parent),
        vec![],
        "stale"
    );
    let too_few = votes(&keys, &[2, 3, 4], &line, 4, 8);
    assert_eq!(attach(&too_few, NET, EPOCH, 0, &line, &parent), vec![]);
}
