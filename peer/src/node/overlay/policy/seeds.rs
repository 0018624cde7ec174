//! What a seeds file means: one multiaddr per line (`#` starts a comment), and which seeds are
//! other peers (a peer never counts itself as a seed it must reach). The driver reads the file;
//! the meaning of its contents is decided here. Pure.

use std::collections::BTreeSet;

use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};

/// The seeds listed in `text`, or the first line that is not a multiaddr.
pub fn parse(text: &str) -> Result<Vec<Multiaddr>, String> {
    text.lines()
        .map(|l| l.split('#').next().unwrap_or_default().trim())
        .filter(|l| !l.is_empty())
        .map(|l| {
            l.parse()
                .map_err(|e| format!("`{l}` is not a multiaddr: {e}"))
        })
        .collect()
}

/// The seeds a peer dials: those it was given at start (`--seed`) and then those its seeds file
/// lists, each once (a re-read file never drops the given ones).
pub fn merged(given: &[Multiaddr], listed: &[Multiaddr]) -> Vec<Multiaddr> {
    let mut seen = BTreeSet::new();
    given
        .iter()
        .chain(listed)
        .filter(|seed| seen.insert(*seed))
        .cloned()
        .collect()
}

/// The `seeds` other than this peer (`me`, reachable at `own`).
pub fn others(seeds: &[Multiaddr], me: &PeerId, own: &BTreeSet<Multiaddr>) -> Vec<Multiaddr> {
    seeds
        .iter()
        .filter(|seed| !is_self(seed, me, own))
        .cloned()
        .collect()
}

/// Whether `seed` names this peer: its `/p2p/` PeerId is ours, or it is one of our addresses.
fn is_self(seed: &Multiaddr, me: &PeerId, own: &BTreeSet<Multiaddr>) -> bool {
    let mut bare = Multiaddr::empty();
    for part in seed.iter() {
        match part {
            Protocol::P2p(peer) if peer == *me => return true,
            Protocol::P2p(_) => {}
            other => bare.push(other),
        }
    }
    own.contains(&bare) || own.contains(seed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seeds_file_lists_multiaddrs_with_comments_and_blank_lines() {
        let seeds = parse("# seeds\n/ip4/10.0.0.1/tcp/4001  # first\n\n/dns4/b/tcp/4001\n");
        assert_eq!(seeds.unwrap().len(), 2);
        assert!(parse("/ip4/10.0.0.1/tcp/4001\nnot an address\n")
            .unwrap_err()
            .contains("not an address"));
    }

    #[test]
    fn the_seeds_file_adds_to_the_given_seeds_and_never_drops_them() {
        let addr = |s: &str| -> Multiaddr { s.parse().unwrap() };
        let given = [addr("/dns4/a/tcp/4001"), addr("/dns4/b/tcp/4001")];
        let listed = [addr("/dns4/b/tcp/4001"), addr("/dns4/c/tcp/4001")];
        assert_eq!(
            merged(&given, &listed),
            [given[0].clone(), given[1].clone(), listed[1].clone()]
        );
        assert_eq!(merged(&given, &[]), given);
    }

    #[test]
    fn a_peer_is_never_its_own_seed() {
        let me = PeerId::random();
        let other = PeerId::random();
        let own: BTreeSet<Multiaddr> = ["/ip4/10.0.0.1/tcp/4001".parse().unwrap()].into();
        let seeds: Vec<Multiaddr> = [
            format!("/ip4/10.0.0.1/tcp/4001/p2p/{other}"), // our address, whatever the id says
            format!("/dns4/me/tcp/4001/p2p/{me}"),         // our id
            "/ip4/10.0.0.1/tcp/4001".into(),
            format!("/ip4/10.0.0.2/tcp/4001/p2p/{other}"),
            "/ip4/10.0.0.3/tcp/4001".into(),
        ]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
        let others = others(&seeds, &me, &own);
        assert_eq!(others, seeds[3..].to_vec());
    }
}
