//! Fair queueing of the jobs that wait for a lane of the blocking pool ([`super::offload`]):
//! which waiting job runs next and which one a full queue gives up for a newcomer. Pure and
//! deterministic: it holds the waiters (anything `W`) and counts the running jobs; the lanes
//! apply its answers.
//!
//! Two classes of [`Standing`]: a [`Standing::Good`] job runs before any [`Standing::Heavy`]
//! one, and a full queue makes room for a good newcomer by refusing a heavy waiter first.
//! Within a class the clients (addresses) take turns, one job each (round robin, as a
//! per-flow fair queue of a router serves its flows), so an honest writer with one upload waits
//! for at most one job of each other waiting client, not for a flood's whole backlog. When the
//! queue is full a newcomer takes the place of the newest job of the client of its class
//! waiting with the most, if that client has at least two more waiting than the newcomer's
//! (the max-min share of the connection table, `super::connections`: one rule,
//! [`super::share`]); otherwise it is refused.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;

use super::share;

/// The precedence of a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// Served first: transactions (what registered clients sign, and what releases uploads
    /// from their quota), uploads of a client within half its quota of unreferenced bytes, and
    /// the lanes' other work.
    Good,
    /// Served when no good job waits, and refused first when the queue is full: uploads of a
    /// client past half its quota (stored and never committed: a flood's pattern).
    Heavy,
}

/// Whose a job is: its client address (`None`: one shared bucket, e.g. a trusted proxy's
/// clients) and its standing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Writer {
    /// The client address.
    pub client: Option<IpAddr>,
    /// The job's class.
    pub standing: Standing,
}

impl Default for Writer {
    fn default() -> Self {
        Self {
            client: None,
            standing: Standing::Good,
        }
    }
}

/// What became of a job offered to the queue.
#[derive(Debug, PartialEq, Eq)]
pub enum Entered<W> {
    /// A thread is free: the job runs now (its waiter is not kept).
    Run,
    /// It waits its turn; `evicted` is the waiter it displaced, to be refused.
    Queued {
        /// The displaced waiter.
        evicted: Option<W>,
    },
    /// The queue is full and no waiter may be displaced for it.
    Refused,
}

/// The waiters of one class, per client, and the order the clients take turns in.
struct Class<W> {
    turns: VecDeque<Option<IpAddr>>,
    jobs: HashMap<Option<IpAddr>, VecDeque<W>>,
}

impl<W> Class<W> {
    fn new() -> Self {
        Self {
            turns: VecDeque::new(),
            jobs: HashMap::new(),
        }
    }

    fn waiting(&self, client: Option<IpAddr>) -> usize {
        self.jobs.get(&client).map_or(0, VecDeque::len)
    }

    fn push(&mut self, client: Option<IpAddr>, waiter: W) {
        let jobs = self.jobs.entry(client).or_default();
        if jobs.is_empty() {
            self.turns.push_back(client);
        }
        jobs.push_back(waiter);
    }

    /// The oldest waiter of the client whose turn it is; that client goes to the back.
    fn next(&mut self) -> Option<W> {
        let client = self.turns.pop_front()?;
        let jobs = self.jobs.get_mut(&client)?;
        let waiter = jobs.pop_front();
        if jobs.is_empty() {
            self.jobs.remove(&client);
        } else {
            self.turns.push_back(client);
        }
        waiter
    }

    /// The newest waiter of the client waiting with the most, if it has at least `at_least`
    /// (ties: the highest address, so the choice is deterministic: [`share::most_first`]).
    fn evict(&mut self, at_least: usize) -> Option<W> {
        let waiting = self.jobs.iter().map(|(client, jobs)| (*client, jobs.len()));
        let (_, client) = share::most_first(waiting, at_least).into_iter().next()?;
        let jobs = self.jobs.get_mut(&client)?;
        let waiter = jobs.pop_back();
        if jobs.is_empty() {
            self.jobs.remove(&client);
            self.turns.retain(|other| *other != client);
        }
        waiter
    }
}

/// One lane's running jobs and waiters.
pub struct FairQueue<W> {
    threads: usize,
    capacity: usize,
    running: usize,
    waiting: usize,
    good: Class<W>,
    heavy: Class<W>,
}

impl<W> FairQueue<W> {
    /// At most `threads` jobs running (at least one) and `capacity` waiting.
    pub fn new(threads: usize, capacity: usize) -> Self {
        Self {
            threads: threads.max(1),
            capacity,
            running: 0,
            waiting: 0,
            good: Class::new(),
            heavy: Class::new(),
        }
    }

    /// Offers a job of `writer`, whose waiter is `waiter`.
    pub fn enter(&mut self, writer: Writer, waiter: W) -> Entered<W> {
        if self.running < self.threads && self.waiting == 0 {
            self.running += 1;
            return Entered::Run;
        }
        let mut evicted = None;
        if self.waiting >= self.capacity {
            let own = match writer.standing {
                Standing::Good => self.heavy.evict(0),
                Standing::Heavy => None,
            };
            let class = self.class(writer.standing);
            let holds = class.waiting(writer.client);
            evicted = own.or_else(|| class.evict(share::must_hold(holds)));
            if evicted.is_none() {
                return Entered::Refused;
            }
            self.waiting -= 1;
        }
        self.class(writer.standing).push(writer.client, waiter);
        self.waiting += 1;
        Entered::Queued { evicted }
    }

    /// A running job finished: the waiter whose turn it is takes its thread (`None`: the
    /// thread is free).
    pub fn leave(&mut self) -> Option<W> {
        let next = self.good.next().or_else(|| self.heavy.next());
        match next {
            Some(_) => self.waiting -= 1,
            None => self.running = self.running.saturating_sub(1),
        }
        next
    }

    /// Jobs waiting.
    pub fn waiting(&self) -> usize {
        self.waiting
    }

    fn class(&mut self, standing: Standing) -> &mut Class<W> {
        match standing {
            Standing::Good => &mut self.good,
            Standing::Heavy => &mut self.heavy,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn writer(host: u8, standing: Standing) -> Writer {
        Writer {
            client: Some(IpAddr::from([192, 0, 2, host])),
            standing,
        }
    }

    #[test]
    fn clients_take_turns_and_good_jobs_run_before_heavy_ones() {
        let mut queue = FairQueue::new(1, 16);
        let flood = writer(1, Standing::Good);
        assert_eq!(queue.enter(flood, 0), Entered::Run);
        for job in 1..=5 {
            assert_eq!(queue.enter(flood, job), Entered::Queued { evicted: None });
        }
        assert_eq!(
            queue.enter(writer(3, Standing::Heavy), 30),
            Entered::Queued { evicted: None }
        );
        assert_eq!(
            queue.enter(writer(2, Standing::Good), 20),
            Entered::Queued { evicted: None }
        );
        let order: Vec<_> = std::iter::from_fn(|| queue.leave()).collect();
        assert_eq!(order, [1, 20, 2, 3, 4, 5, 30]);
        assert_eq!((queue.waiting(), queue.running), (0, 0));
    }

    #[test]
    fn a_full_queue_gives_a_newcomer_the_place_of_the_biggest_waiter_or_refuses_it() {
        let mut queue = FairQueue::new(1, 3);
        let (flood, honest, other) = (
            writer(1, Standing::Good),
            writer(2, Standing::Good),
            writer(4, Standing::Good),
        );
        assert_eq!(queue.enter(flood, 0), Entered::Run);
        for job in 1..=3 {
            assert_eq!(queue.enter(flood, job), Entered::Queued { evicted: None });
        }
        assert_eq!(queue.enter(flood, 4), Entered::Refused, "nobody holds more");
        assert_eq!(
            queue.enter(honest, 20),
            Entered::Queued { evicted: Some(3) },
            "the flood's newest"
        );
        // The flood holds 2, the honest writer 1: neither gives way to the other.
        assert_eq!(queue.enter(honest, 21), Entered::Refused);
        assert_eq!(queue.enter(other, 40), Entered::Queued { evicted: Some(2) });
        assert_eq!(queue.enter(other, 41), Entered::Refused, "one each now");
        // A heavy job never displaces a good one; a good one displaces any heavy one.
        let mut mixed = FairQueue::new(1, 2);
        assert_eq!(mixed.enter(honest, 0), Entered::Run);
        assert_eq!(
            mixed.enter(writer(3, Standing::Heavy), 30),
            Entered::Queued { evicted: None }
        );
        assert_eq!(mixed.enter(flood, 1), Entered::Queued { evicted: None });
        assert_eq!(
            mixed.enter(writer(5, Standing::Heavy), 50),
            Entered::Refused
        );
        assert_eq!(
            mixed.enter(honest, 20),
            Entered::Queued { evicted: Some(30) }
        );
        let order: Vec<_> = std::iter::from_fn(|| mixed.leave()).collect();
        assert_eq!(order, [1, 20]);
    }

    #[test]
    fn threads_run_at_once_until_busy_and_a_finished_job_frees_its_thread() {
        let mut queue = FairQueue::new(2, 0);
        let one = writer(1, Standing::Good);
        assert_eq!(queue.enter(one, 0), Entered::Run);
        assert_eq!(queue.enter(one, 1), Entered::Run);
        assert_eq!(queue.enter(one, 2), Entered::Refused, "no queue");
        assert_eq!(queue.leave(), None);
        assert_eq!(queue.enter(writer(2, Standing::Heavy), 3), Entered::Run);
    }
}
