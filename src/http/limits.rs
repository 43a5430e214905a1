//! Counters that bound what one source address, and everyone together, may
//! hold at once: connections, and requests in flight.
//!
//! The counts are taken before anything is read from the client beyond its
//! headers, so a client that sends slowly holds at most its own share.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::ratelimit::address_key;

/// At most `max` of something at once.
#[derive(Debug)]
pub struct Capacity {
    used: AtomicUsize,
    max: usize,
}

impl Capacity {
    /// Room for `max`.
    pub fn new(max: usize) -> Self {
        Capacity {
            used: AtomicUsize::new(0),
            max,
        }
    }

    /// Takes one unit, or `false` when all are taken.
    pub fn try_take(&self) -> bool {
        if self.used.fetch_add(1, Ordering::Relaxed) >= self.max {
            self.used.fetch_sub(1, Ordering::Relaxed);
            return false;
        }
        true
    }

    /// Gives back a unit taken with [`Capacity::try_take`].
    pub fn give_back(&self) {
        self.used.fetch_sub(1, Ordering::Relaxed);
    }

    /// Units in use.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// The most units.
    pub fn max(&self) -> usize {
        self.max
    }
}

const SHARDS: usize = 8;

/// How many of something each source address holds, at most `max_each`.
/// Addresses are counted by [`address_key`] (IPv6 by its /64). An address
/// whose count falls to zero is forgotten, so the table never holds more
/// entries than there are things counted.
#[derive(Debug)]
pub struct PerAddress {
    shards: Box<[Mutex<HashMap<IpAddr, usize>>]>,
    hasher: RandomState,
    max_each: usize,
}

impl PerAddress {
    /// At most `max_each` per address.
    pub fn new(max_each: usize) -> Self {
        PerAddress {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: RandomState::new(),
            max_each,
        }
    }

    fn shard(&self, key: &IpAddr) -> std::sync::MutexGuard<'_, HashMap<IpAddr, usize>> {
        let i = (self.hasher.hash_one(key) as usize) % SHARDS;
        self.shards[i].lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts one more for `ip`, or `false` when it holds its maximum.
    pub fn try_take(&self, ip: IpAddr) -> bool {
        let key = address_key(ip);
        let mut shard = self.shard(&key);
        let n = shard.entry(key).or_insert(0);
        if *n >= self.max_each {
            return false;
        }
        *n += 1;
        true
    }

    /// Gives back one counted with [`PerAddress::try_take`].
    pub fn give_back(&self, ip: IpAddr) {
        let key = address_key(ip);
        let mut shard = self.shard(&key);
        if let Some(n) = shard.get_mut(&key) {
            *n -= 1;
            if *n == 0 {
                shard.remove(&key);
            }
        }
    }

    /// How many `ip` holds.
    pub fn held(&self, ip: IpAddr) -> usize {
        let key = address_key(ip);
        self.shard(&key).get(&key).copied().unwrap_or(0)
    }

    /// Addresses holding at least one.
    pub fn addresses(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).len())
            .sum()
    }
}

/// One connection or request counted against the total and its address;
/// released when dropped.
#[derive(Debug)]
pub struct Held {
    total: Arc<Capacity>,
    each: Option<(Arc<PerAddress>, IpAddr)>,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.total.give_back();
        if let Some((each, ip)) = &self.each {
            each.give_back(*ip);
        }
    }
}

/// Why [`Limits::admit`] said no.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Everyone together holds the maximum.
    Total,
    /// This address holds its maximum.
    Address,
}

/// A total and an optional per-address maximum.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Everyone together.
    pub total: Arc<Capacity>,
    /// Each address (`None`: no per-address limit).
    pub each: Option<Arc<PerAddress>>,
}

impl Limits {
    /// At most `total`, and `per_address` for each address (0: no per-address limit).
    pub fn new(total: usize, per_address: usize) -> Self {
        Limits {
            total: Arc::new(Capacity::new(total)),
            each: (per_address > 0).then(|| Arc::new(PerAddress::new(per_address))),
        }
    }

    /// Counts one for `ip` (when known), or says which maximum is reached.
    pub fn admit(&self, ip: Option<IpAddr>) -> Result<Held, Refusal> {
        let each = match (&self.each, ip) {
            (Some(each), Some(ip)) => {
                if !each.try_take(ip) {
                    return Err(Refusal::Address);
                }
                Some((each.clone(), ip))
            }
            _ => None,
        };
        if !self.total.try_take() {
            if let Some((each, ip)) = each {
                each.give_back(ip);
            }
            return Err(Refusal::Total);
        }
        Ok(Held {
            total: self.total.clone(),
            each,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_address_cannot_take_more_than_its_share() {
        let limits = Limits::new(10, 3);
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        let held: Vec<_> = (0..3).map(|_| limits.admit(Some(a)).unwrap()).collect();
        assert_eq!(limits.admit(Some(a)).unwrap_err(), Refusal::Address);
        // Another address is unaffected.
        let other = limits.admit(Some(b)).unwrap();
        assert_eq!(limits.total.used(), 4);
        drop(held);
        drop(other);
        assert_eq!(limits.total.used(), 0);
        assert_eq!(
            limits.each.as_ref().unwrap().addresses(),
            0,
            "emptied entries go"
        );
        limits.admit(Some(a)).unwrap();
    }

    #[test]
    fn the_total_holds_whatever_the_addresses() {
        let limits = Limits::new(2, 0);
        let _a = limits.admit(None).unwrap();
        let _b = limits.admit(Some("10.0.0.1".parse().unwrap())).unwrap();
        assert_eq!(limits.admit(None).unwrap_err(), Refusal::Total);
        // A refusal by the total gives the address its count back.
        let limits = Limits::new(1, 5);
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let _held = limits.admit(Some("10.0.0.2".parse().unwrap())).unwrap();
        assert_eq!(limits.admit(Some(ip)).unwrap_err(), Refusal::Total);
        assert_eq!(limits.each.as_ref().unwrap().held(ip), 0);
    }
}
