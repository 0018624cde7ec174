//! The max-min share of a bounded resource among clients, one rule for every place the edge
//! makes room for a newcomer by taking from someone who holds more: the connection table's slots
//! ([`super::connections`]) and the write lane's queue ([`super::fair`]). A holder gives up one
//! for a newcomer only if it holds at least two more than the newcomer's client (so it keeps at
//! least as many as the newcomer then has), and the holder holding the most gives first. Pure.

/// The least a holder must hold to give up one for a newcomer whose client holds
/// `newcomer_holds`: two more, so the holder keeps at least as many as the newcomer will have.
pub fn must_hold(newcomer_holds: usize) -> usize {
    newcomer_holds.saturating_add(2)
}

/// The holders `(key, held)` holding at least `at_least` (and at least one), the most first;
/// ties broken by the highest key first, so the order is deterministic.
pub fn most_first<K: Ord + Copy>(
    holders: impl IntoIterator<Item = (K, usize)>,
    at_least: usize,
) -> Vec<(usize, K)> {
    let mut givers: Vec<(usize, K)> = holders
        .into_iter()
        .filter(|(_, held)| *held >= at_least.max(1))
        .map(|(key, held)| (held, key))
        .collect();
    givers.sort_unstable_by(|a, b| b.cmp(a));
    givers
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn the_holder_of_the_most_gives_way_only_to_a_client_holding_two_fewer() {
        let holders = [(1u8, 3), (2, 5), (3, 5), (4, 1)];
        assert_eq!(most_first(holders, must_hold(0)), [(5, 3), (5, 2), (3, 1)]);
        assert_eq!(most_first(holders, must_hold(3)), [(5, 3), (5, 2)]);
        assert!(most_first(holders, must_hold(4)).is_empty());
        assert_eq!(most_first(holders, 0), [(5, 3), (5, 2), (3, 1), (1, 4)]);
        assert!(most_first([(1u8, 0)], 0).is_empty(), "holding nothing");
    }

    proptest! {
        /// Whoever gives way keeps at least as many as the newcomer then has, holds the most,
        /// and nobody is passed over who could give way.
        #[test]
        fn giving_way_never_leaves_the_giver_below_the_newcomer(
            held in proptest::collection::vec(0usize..20, 0..12),
            newcomer in 0usize..20,
        ) {
            let holders: Vec<(usize, usize)> = held.iter().copied().enumerate().collect();
            let givers = most_first(holders.iter().copied(), must_hold(newcomer));
            let most = held.iter().copied().max().unwrap_or(0);
            match givers.first() {
                Some((giver_holds, key)) => {
                    prop_assert_eq!(*giver_holds, most);
                    prop_assert_eq!(held[*key], most);
                    // After giving one it keeps as many as the newcomer then has, or more.
                    let (kept, newcomer_has) = (giver_holds - 1, newcomer + 1);
                    prop_assert!(kept >= newcomer_has);
                }
                None => prop_assert!(most < newcomer + 2),
            }
            prop_assert!(givers.windows(2).all(|w| w[0] >= w[1]));
            let eligible = held.iter().filter(|h| **h >= newcomer + 2).count();
            prop_assert_eq!(givers.len(), eligible);
        }
    }
}
