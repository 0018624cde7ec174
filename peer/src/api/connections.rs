//! The table of the edge's open connections: at most a total and a number per client address,
//! and, when the total is reached, room made for a newcomer by evicting a connection that waits
//! on its client (idle keep-alive, or a head or body still arriving) of the client holding the
//! most connections — as nginx reuses idle keep-alive connections when its connections run out,
//! here extended to slow uploads. A client is only evicted for one that holds at least two
//! fewer connections, so the cap is shared max-min fairly ([`super::share`], the rule the write
//! lane's queue applies too): a few addresses holding slow uploads cannot starve a client that
//! holds one connection. Trusted proxies carry many clients: they
//! count in the total only and their connections are never evicted.
//!
//! The choice is the pure function [`victim`]; the table only applies it, to the connections of
//! the clients holding the most first (a group of equal holders at a time), so that a full
//! table costs a pass over its clients rather than a lookup per connection (the edge_abuse
//! bench's profile found the pass over every connection the peer's costliest function while
//! slow uploads churned at the cap). This module never reads or writes a socket: an evicted
//! connection is told through its [`Admitted::evicted`].

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;
use tokio::time::Instant;

use super::activity::Activity;
use super::share;

/// A connection the table could evict, as [`victim`] sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    /// The connection.
    pub id: u64,
    /// Connections its client holds (it included).
    pub held: usize,
    /// Idle between requests (rather than waiting for a head or body).
    pub idle: bool,
    /// When a byte last moved on it.
    pub last_io: Instant,
}

/// The connection to evict for a newcomer whose client holds `newcomer_holds` connections:
/// one of the client holding the most, if that client holds at least two more than the
/// newcomer's (so it keeps at least as many as the newcomer will have); among that client's,
/// an idle one first, then the one whose last byte is oldest (the slowest), then the oldest.
pub fn victim(
    candidates: impl IntoIterator<Item = Candidate>,
    newcomer_holds: usize,
) -> Option<u64> {
    candidates
        .into_iter()
        .filter(|c| c.held >= share::must_hold(newcomer_holds))
        .max_by(|a, b| {
            a.held
                .cmp(&b.held)
                .then(a.idle.cmp(&b.idle))
                .then(b.last_io.cmp(&a.last_io))
                .then(b.id.cmp(&a.id))
        })
        .map(|c| c.id)
}

/// The open connections.
pub struct Connections {
    total: usize,
    per_client: usize,
    table: Mutex<Table>,
}

#[derive(Default)]
struct Table {
    next: u64,
    open: HashMap<u64, Entry>,
    /// Per client address, its connections (trusted proxies' are not listed).
    clients: HashMap<IpAddr, Vec<u64>>,
}

struct Entry {
    client: Option<IpAddr>,
    activity: Arc<Activity>,
    evicted: Arc<Notify>,
}

/// Why a connection was not admitted, or what its admission cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The total cap is reached and no connection could make room.
    OverCapacity,
    /// The client holds its share already.
    ClientOverCapacity,
}

impl Refusal {
    /// The reason as counted in `mediachain_http_connections_dropped_total`.
    pub fn reason(self) -> &'static str {
        match self {
            Self::OverCapacity => "over-capacity",
            Self::ClientOverCapacity => "client-over-capacity",
        }
    }
}

/// An admitted connection; leaves the table when dropped.
pub struct Admitted {
    connections: Arc<Connections>,
    id: u64,
    /// Notified when the table evicts this connection for a newcomer.
    pub evicted: Arc<Notify>,
}

impl Table {
    fn remove(&mut self, id: u64) -> Option<Entry> {
        let entry = self.open.remove(&id)?;
        if let Some(ip) = entry.client {
            if let Some(ids) = self.clients.get_mut(&ip) {
                ids.retain(|other| *other != id);
                if ids.is_empty() {
                    self.clients.remove(&ip);
                }
            }
        }
        Some(entry)
    }

    /// Connections `ip` holds.
    fn held(&self, ip: &IpAddr) -> usize {
        self.clients.get(ip).map_or(0, Vec::len)
    }

    /// [`victim`] for a newcomer whose client holds `holds`, over the waiting connections of
    /// the clients holding the most: a group of clients holding equally many at a time, from
    /// the most, until one has a candidate (the same choice as over every connection, since
    /// [`victim`] prefers the most held first).
    fn victim_for(&self, holds: usize) -> Option<u64> {
        let holders = self.clients.iter().map(|(ip, ids)| (*ip, ids.len()));
        let clients = share::most_first(holders, share::must_hold(holds));
        clients.chunk_by(|a, b| a.0 == b.0).find_map(|group| {
            let candidates = group.iter().flat_map(|(held, ip)| {
                let ids = self.clients.get(ip).map_or(&[][..], Vec::as_slice);
                ids.iter().filter_map(move |id| {
                    let entry = self.open.get(id)?;
                    Some(Candidate {
                        id: *id,
                        held: *held,
                        idle: entry.activity.waiting()?,
                        last_io: entry.activity.last_io(),
                    })
                })
            });
            victim(candidates, holds)
        })
    }
}

impl Connections {
    /// At most `total` connections, `per_client` of them from one client address.
    pub fn new(total: usize, per_client: usize) -> Arc<Self> {
        Arc::new(Self {
            total,
            per_client,
            table: Mutex::new(Table::default()),
        })
    }

    /// Admits a connection of `client` (`None`: a trusted proxy) whose activity is `activity`,
    /// evicting another one when the total cap is reached (`true` when it did), or refuses it.
    pub fn enter(
        self: &Arc<Self>,
        client: Option<IpAddr>,
        activity: Arc<Activity>,
    ) -> Result<(Admitted, bool), Refusal> {
        let mut table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        let holds = client.map_or(0, |ip| table.held(&ip));
        if holds >= self.per_client {
            return Err(Refusal::ClientOverCapacity);
        }
        let mut evicted = false;
        if table.open.len() >= self.total {
            let id = table.victim_for(holds).ok_or(Refusal::OverCapacity)?;
            if let Some(entry) = table.remove(id) {
                entry.evicted.notify_one();
                evicted = true;
            }
        }
        let id = table.next;
        table.next += 1;
        let notify = Arc::new(Notify::new());
        if let Some(ip) = client {
            table.clients.entry(ip).or_default().push(id);
        }
        table.open.insert(
            id,
            Entry {
                client,
                activity,
                evicted: notify.clone(),
            },
        );
        let admitted = Admitted {
            connections: self.clone(),
            id,
            evicted: notify,
        };
        Ok((admitted, evicted))
    }

    /// Open connections.
    pub fn open(&self) -> usize {
        self.table
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .open
            .len()
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut table = self
            .connections
            .table
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        table.remove(self.id);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn candidate(id: u64, held: usize, idle: bool, age_ms: u64) -> Candidate {
        Candidate {
            id,
            held,
            idle,
            last_io: Instant::now() - Duration::from_millis(age_ms),
        }
    }

    #[test]
    fn the_client_holding_most_loses_its_idle_then_its_slowest_connection() {
        let slow_uploads = [candidate(1, 5, false, 100), candidate(2, 5, false, 900)];
        assert_eq!(victim(slow_uploads, 0), Some(2), "the oldest last byte");
        let with_idle = [candidate(1, 5, false, 900), candidate(2, 5, true, 10)];
        assert_eq!(victim(with_idle, 0), Some(2), "idle first");
        let two_clients = [candidate(1, 3, true, 900), candidate(2, 6, false, 10)];
        assert_eq!(victim(two_clients, 0), Some(2), "the client holding most");
    }

    #[test]
    fn nobody_is_evicted_for_a_client_holding_as_many_or_nearly() {
        let one_each = [candidate(1, 1, true, 900), candidate(2, 1, false, 900)];
        assert_eq!(victim(one_each, 0), None);
        assert_eq!(victim([candidate(1, 4, false, 9)], 3), None);
        assert_eq!(victim([candidate(1, 5, false, 9)], 3), Some(1));
    }

    #[test]
    fn a_full_table_evicts_for_a_newcomer_and_frees_slots_on_drop() {
        let connections = Connections::new(2, 8);
        let (a, b) = ("192.0.2.1".parse().ok(), "192.0.2.2".parse().ok());
        let (first, _) = connections.enter(a, Activity::new()).unwrap();
        let (_second, _) = connections.enter(a, Activity::new()).unwrap();
        let (_newcomer, evicted) = connections.enter(b, Activity::new()).unwrap();
        assert!(evicted);
        assert_eq!(connections.open(), 2);
        // `a` now holds one, as `b` does: `a` gets no more room from `b`.
        assert_eq!(
            connections.enter(a, Activity::new()).err(),
            Some(Refusal::OverCapacity)
        );
        drop(first);
        assert_eq!(connections.open(), 2, "the evicted one was already gone");
        // At the cap, the client holding the most gives up its connection even when another
        // client's is idle; a client whose connections are all busy is passed over.
        let full = Connections::new(5, 8);
        let (c, d, e) = (
            "192.0.2.3".parse().ok(),
            "192.0.2.4".parse().ok(),
            "192.0.2.5".parse().ok(),
        );
        let busy = Activity::new();
        busy.serving();
        let (_c1, _) = full.enter(c, busy.clone()).unwrap();
        let (_c2, _) = full.enter(c, busy.clone()).unwrap();
        let (_c3, _) = full.enter(c, busy).unwrap();
        let (_d1, _) = full.enter(d, Activity::new()).unwrap();
        let (_d2, _) = full.enter(d, Activity::new()).unwrap();
        let (_e1, evicted) = full.enter(e, Activity::new()).unwrap();
        assert!(evicted, "d's, since c's three are being answered");
        assert_eq!(full.table.lock().unwrap().held(&d.unwrap()), 1);
        assert_eq!(full.table.lock().unwrap().held(&c.unwrap()), 3);
        let per_client = Connections::new(8, 1);
        let (_held, _) = per_client.enter(a, Activity::new()).unwrap();
        assert_eq!(
            per_client.enter(a, Activity::new()).err(),
            Some(Refusal::ClientOverCapacity)
        );
        assert!(per_client.enter(None, Activity::new()).is_ok(), "a proxy");
    }
}
