//! The overlay a run ends with: the graph of the links that stand among running peers, each
//! peer's number of connections, and every set of up to N peers whose loss would split it.

use super::Sim;

impl Sim {
    /// The running peers.
    pub fn live(&self) -> Vec<usize> {
        (0..self.peers.len())
            .filter(|i| self.peers[*i].is_up())
            .collect()
    }

    /// Each peer's neighbours over the standing links.
    fn adjacency(&self) -> Vec<Vec<usize>> {
        let mut adjacency = vec![vec![]; self.peers.len()];
        for (a, b) in &self.links {
            adjacency[*a].push(*b);
            adjacency[*b].push(*a);
        }
        adjacency
    }

    /// The number of connections each running peer holds.
    pub fn degrees(&self) -> Vec<usize> {
        let adjacency = self.adjacency();
        self.live()
            .into_iter()
            .map(|i| adjacency[i].len())
            .collect()
    }

    /// Whether the running peers outside `removed` still reach each other over the links.
    pub fn connected_without(&self, removed: &[usize]) -> bool {
        connected(&self.adjacency(), &self.live(), removed)
    }

    /// A set of at most `n` running peers whose removal splits the others, if there is one:
    /// every such set is tried (the minimum vertex cut is more than `n` when none is found).
    pub fn cut_of_at_most(&self, n: usize) -> Option<Vec<usize>> {
        let adjacency = self.adjacency();
        let live = self.live();
        let mut set = vec![];
        find_cut(&adjacency, &live, n, 0, &mut set)
    }
}

/// Tries every set extending `set` with peers of `live` from position `from` on, up to `n`.
fn find_cut(
    adjacency: &[Vec<usize>],
    live: &[usize],
    n: usize,
    from: usize,
    set: &mut Vec<usize>,
) -> Option<Vec<usize>> {
    if !connected(adjacency, live, set) {
        return Some(set.clone());
    }
    if set.len() == n {
        return None;
    }
    for i in from..live.len() {
        set.push(live[i]);
        let found = find_cut(adjacency, live, n, i + 1, set);
        set.pop();
        if found.is_some() {
            return found;
        }
    }
    None
}

/// Whether the peers of `live` outside `removed` form one component.
fn connected(adjacency: &[Vec<usize>], live: &[usize], removed: &[usize]) -> bool {
    let mut alive = vec![false; adjacency.len()];
    for i in live.iter().filter(|i| !removed.contains(i)) {
        alive[*i] = true;
    }
    let Some(start) = alive.iter().position(|a| *a) else {
        return true;
    };
    let mut seen = vec![false; adjacency.len()];
    seen[start] = true;
    let mut stack = vec![start];
    let mut reached = 1;
    while let Some(at) = stack.pop() {
        for next in &adjacency[at] {
            if alive[*next] && !seen[*next] {
                seen[*next] = true;
                reached += 1;
                stack.push(*next);
            }
        }
    }
    reached == alive.iter().filter(|a| **a).count()
}
