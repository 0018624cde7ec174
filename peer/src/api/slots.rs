//! Caps on things a client holds open (event streams): a total and a number per
//! client address. A [`Slot`] is held while the thing is open and frees itself when dropped, so
//! the table only holds clients that have something open (it is bounded by the total).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Open things, in total and per client.
pub struct Slots {
    total: usize,
    per_client: usize,
    open: Mutex<(usize, HashMap<IpAddr, usize>)>,
}

/// One open thing; frees its slot when dropped.
pub struct Slot {
    slots: Arc<Slots>,
    client: Option<IpAddr>,
}

impl Slots {
    /// At most `total` open things, `per_client` of them for one client.
    pub fn new(total: usize, per_client: usize) -> Arc<Self> {
        Arc::new(Self {
            total,
            per_client,
            open: Mutex::new((0, HashMap::new())),
        })
    }

    /// Takes a slot for `client` (`None`: counted in the total only), or says which cap is
    /// reached: `over-capacity` or `client-over-capacity`.
    pub fn enter(self: &Arc<Self>, client: Option<IpAddr>) -> Result<Slot, &'static str> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if open.0 >= self.total {
            return Err("over-capacity");
        }
        if let Some(ip) = client {
            let count = open.1.entry(ip).or_insert(0);
            if *count >= self.per_client {
                return Err("client-over-capacity");
            }
            *count += 1;
        }
        open.0 += 1;
        Ok(Slot {
            slots: self.clone(),
            client,
        })
    }

    /// Open things.
    pub fn open(&self) -> usize {
        self.open.lock().unwrap_or_else(|p| p.into_inner()).0
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.slots.open.lock().unwrap_or_else(|p| p.into_inner());
        open.0 = open.0.saturating_sub(1);
        if let Some(ip) = self.client {
            if let Some(count) = open.1.get_mut(&ip) {
                *count -= 1;
                if *count == 0 {
                    open.1.remove(&ip);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_hold_per_client_and_in_total_and_free_on_drop() {
        let slots = Slots::new(3, 2);
        let (a, b) = ("192.0.2.1".parse().ok(), "192.0.2.2".parse().ok());
        let a1 = slots.enter(a).unwrap();
        let _a2 = slots.enter(a).unwrap();
        assert_eq!(slots.enter(a).err(), Some("client-over-capacity"));
        let _b1 = slots.enter(b).unwrap();
        assert_eq!(slots.enter(None).err(), Some("over-capacity"));
        drop(a1);
        assert_eq!(slots.open(), 2);
        assert!(slots.enter(a).is_ok());
    }
}
