//! Which peers to hold connections with, for N-cut connectivity: the overlay must stay connected
//! when any N peers fail. Pure.
//!
//! Every peer orders the membership (its own key and every key of the rotation) the same way
//! and takes its neighbours in the **Harary graph** H(k, n) over that ring, k = N + 1: the
//! k/2 nearest on each side, and for odd k the peer diametrically opposite. H(k, n) is
//! k-vertex-connected with the fewest edges possible (⌈kn/2⌉), so each peer holds O(N)
//! connections however large the network, and removing any N peers leaves the rest connected.
//! While the network has at most k + 1 peers the graph is complete. Peers outside this
//! selection may stay connected (they are not dialled; the driver closes extra connections).

use std::collections::BTreeSet;

use crate::trust::PublicKey;

/// The neighbours of `me` among `members` (which may or may not hold `me`) for connectivity
/// `k` (= N + 1): the Harary graph H(k, n) over the sorted ring of members.
pub fn neighbours(me: &PublicKey, members: &[PublicKey], k: usize) -> BTreeSet<PublicKey> {
    let mut ring: Vec<PublicKey> = members.to_vec();
    ring.push(*me);
    ring.sort();
    ring.dedup();
    let n = ring.len();
    let Ok(i) = ring.binary_search(me) else {
        return BTreeSet::new();
    };
    if k + 1 >= n {
        return ring.into_iter().filter(|key| key != me).collect();
    }
    let mut out = BTreeSet::new();
    let half = k / 2;
    for d in 1..=half {
        out.insert(ring[(i + d) % n]);
        out.insert(ring[(i + n - d) % n]);
    }
    if k % 2 == 1 {
        // Diametric edges: i to i + n/2 (for odd n, i also to i + (n+1)/2 or from it, so
        // that every vertex has degree at least k).
        out.insert(ring[(i + n / 2) % n]);
        if n % 2 == 1 {
            out.insert(ring[(i + n.div_ceil(2)) % n]);
        }
    }
    out.remove(me);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trust::SecretKey;
    use std::collections::{HashMap, HashSet};

    fn members(n: usize) -> Vec<PublicKey> {
        let mut keys: Vec<PublicKey> = (0..n).map(|_| SecretKey::generate().public()).collect();
        keys.sort();
        keys
    }

    /// The overlay as every peer would build it: an edge wherever either end selects the other
    /// (a connection is dialled by one side and held by both).
    fn graph(keys: &[PublicKey], k: usize) -> HashMap<PublicKey, HashSet<PublicKey>> {
        let mut edges: HashMap<PublicKey, HashSet<PublicKey>> = HashMap::new();
        for me in keys {
            for other in neighbours(me, keys, k) {
                edges.entry(*me).or_default().insert(other);
                edges.entry(other).or_default().insert(*me);
            }
        }
        edges
    }

    fn connected_without(
        keys: &[PublicKey],
        edges: &HashMap<PublicKey, HashSet<PublicKey>>,
        removed: &HashSet<PublicKey>,
    ) -> bool {
        let alive: Vec<&PublicKey> = keys.iter().filter(|k| !removed.contains(k)).collect();
        let Some(start) = alive.first() else {
            return true;
        };
        let mut seen = HashSet::from([**start]);
        let mut stack = vec![**start];
        while let Some(at) = stack.pop() {
            for next in edges.get(&at).into_iter().flatten() {
                if !removed.contains(next) && seen.insert(*next) {
                    stack.push(*next);
                }
            }
        }
        seen.len() == alive.len()
    }

    /// Every set of `cut` peers removed (all pairs for 2, all singletons for 1).
    fn survives_every_cut(n: usize, cut: usize) {
        let keys = members(n);
        let edges = graph(&keys, cut + 1);
        let degree = edges.values().map(HashSet::len).max().unwrap_or(0);
        assert!(
            degree <= cut + 3,
            "n={n} N={cut}: a peer holds {degree} connections, not O(N)"
        );
        for a in 0..n {
            if cut == 1 {
                let removed = HashSet::from([keys[a]]);
                assert!(connected_without(&keys, &edges, &removed), "n={n} cut {a}");
                continue;
            }
            for b in a + 1..n {
                let removed = HashSet::from([keys[a], keys[b]]);
                assert!(
                    connected_without(&keys, &edges, &removed),
                    "n={n}: removing {a} and {b} disconnects the overlay"
                );
            }
        }
    }

    #[test]
    fn the_overlay_survives_every_set_of_n_failures_with_o_n_neighbours() {
        for n in [3, 4, 5, 7, 8, 13, 50, 51, 120] {
            survives_every_cut(n, 1);
            survives_every_cut(n, 2);
        }
    }

    #[test]
    fn a_small_network_is_a_full_mesh() {
        let keys = members(4);
        for me in &keys {
            assert_eq!(neighbours(me, &keys, 3).len(), 3);
        }
    }

    #[test]
    fn two_peers_with_the_same_membership_agree_on_their_edge() {
        let keys = members(30);
        for me in &keys {
            for other in neighbours(me, &keys, 4) {
                assert!(
                    neighbours(&other, &keys, 4).contains(me),
                    "even k: the selection is symmetric"
                );
            }
        }
    }
}
