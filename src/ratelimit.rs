//! Per-key rate limits (GCRA from `governor`) over a state store of bounded
//! size: per source address in front of the token endpoint, and per client id
//! and address for failed authentications.
//!
//! The keys come from the network, so the table is capped: past the cap a new
//! key is let through without being tracked (the keys already tracked keep
//! their limits), and idle keys are forgotten every few seconds. A flood of
//! unique keys therefore costs a bounded amount of memory and cannot lift the
//! limit of a key that is already counted.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, RandomState};
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::keyed::ShrinkableKeyedStateStore;
use governor::state::{RateLimiter, StateStore};
use governor::{NotUntil, Quota};

/// The most keys one limit tracks by default: about 100 bytes each.
pub const DEFAULT_MAX_KEYS: usize = 100_000;

/// Shards of the table, so that concurrent requests rarely share a lock.
const SHARDS: usize = 16;

/// A GCRA state store of at most `cap` keys: each key's theoretical arrival
/// time, in nanoseconds from the limiter's start.
pub struct BoundedStore<K> {
    shards: Box<[Mutex<HashMap<K, u64>>]>,
    per_shard: usize,
    hasher: RandomState,
}

impl<K: Hash + Eq + Clone> BoundedStore<K> {
    fn new(cap: usize) -> Self {
        BoundedStore {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            per_shard: cap.div_ceil(SHARDS).max(1),
            hasher: RandomState::new(),
        }
    }

    fn shard(&self, key: &K) -> std::sync::MutexGuard<'_, HashMap<K, u64>> {
        let i = (self.hasher.hash_one(key) as usize) % SHARDS;
        self.shards[i].lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl<K: Hash + Eq + Clone> StateStore for BoundedStore<K> {
    type Key = K;

    fn measure_and_replace<T, F, E>(&self, key: &K, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        let mut shard = self.shard(key);
        let tracked = shard.get(key).copied();
        let (result, tat) = f(tracked.map(Nanos::new))?;
        if tracked.is_some() || shard.len() < self.per_shard {
            shard.insert(key.clone(), tat.as_u64());
        }
        Ok(result)
    }
}

impl<K: Hash + Eq + Clone> ShrinkableKeyedStateStore<K> for BoundedStore<K> {
    fn retain_recent(&self, drop_below: Nanos) {
        for shard in &self.shards {
            let mut shard = shard.lock().unwrap_or_else(|p| p.into_inner());
            shard.retain(|_, tat| *tat > drop_below.as_u64());
            shard.shrink_to_fit();
        }
    }

    fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).len())
            .sum()
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A rate limit per key: `per_second` on average, bursts of twice that.
pub struct KeyedLimit<K: Hash + Eq + Clone> {
    limiter: RateLimiter<
        K,
        BoundedStore<K>,
        DefaultClock,
        NoOpMiddleware<<DefaultClock as Clock>::Instant>,
    >,
    clock: DefaultClock,
}

impl<K: Hash + Eq + Clone> KeyedLimit<K> {
    /// `None` when `per_second` is 0 (no limit). Tracks at most [`DEFAULT_MAX_KEYS`].
    pub fn new(per_second: u32) -> Option<Self> {
        Self::with_max_keys(per_second, DEFAULT_MAX_KEYS)
    }

    /// As [`KeyedLimit::new`], tracking at most about `max_keys` keys.
    pub fn with_max_keys(per_second: u32, max_keys: usize) -> Option<Self> {
        let rate = NonZeroU32::new(per_second)?;
        let burst = NonZeroU32::new(per_second.saturating_mul(2)).unwrap_or(rate);
        let quota = Quota::per_second(rate).allow_burst(burst);
        let clock = DefaultClock::default();
        Some(KeyedLimit {
            limiter: RateLimiter::new(quota, BoundedStore::new(max_keys), clock.clone()),
            clock,
        })
    }

    /// `Err(wait)` when `key` is over its limit: how long until the next request
    /// would be allowed. Each call that returns `Ok` counts one request.
    pub fn check(&self, key: &K) -> Result<(), Duration> {
        self.limiter
            .check_key(key)
            .map_err(|not_until: NotUntil<_>| not_until.wait_time_from(self.clock.now()))
    }

    /// Forgets keys that are back to a full burst, so that the table stays as
    /// small as the set of recently active keys.
    pub fn forget_idle(&self) {
        self.limiter.retain_recent();
    }

    /// Keys currently tracked.
    pub fn len(&self) -> usize {
        self.limiter.len()
    }

    /// Whether no key is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The key a source address is counted under: an IPv4 address (IPv4-mapped
/// IPv6 included) as it is, an IPv6 address by its /64, the smallest block a
/// site is given, so that one host cannot step around its limit by changing
/// the low bits of its address.
pub fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut segments = v6.segments();
                segments[4..].fill(0);
                IpAddr::V6(segments.into())
            }
        },
    }
}

/// Seconds for a `Retry-After` header: at least 1, rounded up.
pub fn retry_after_seconds(wait: Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_of_twice_the_rate_then_refusal_with_a_wait() {
        let l = KeyedLimit::<String>::new(5).unwrap();
        let a = "org/acme".to_owned();
        for _ in 0..10 {
            l.check(&a).unwrap();
        }
        let wait = l.check(&a).unwrap_err();
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_millis(200),
            "{wait:?}"
        );
        assert_eq!(retry_after_seconds(wait), 1);
        // Another key has its own budget.
        l.check(&"org/other".to_owned()).unwrap();
        assert_eq!(l.len(), 2);
        assert!(KeyedLimit::<String>::new(0).is_none());
    }

    #[test]
    fn the_table_is_bounded_and_a_flood_cannot_lift_a_tracked_limit() {
        let l = KeyedLimit::<u32>::with_max_keys(1, 160).unwrap();
        // Key 0 uses up its burst and is refused.
        l.check(&0).unwrap();
        l.check(&0).unwrap();
        assert!(l.check(&0).is_err());
        // A flood of unique keys: each passes (untracked past the cap)...
        for k in 1..100_000 {
            l.check(&k).unwrap();
        }
        // ...the table stays at its cap...
        assert!(l.len() <= 160, "{}", l.len());
        // ...and key 0 is still limited.
        assert!(l.check(&0).is_err());
    }

    #[test]
    fn idle_keys_are_forgotten() {
        let l = KeyedLimit::<u32>::with_max_keys(1000, 1000).unwrap();
        for k in 0..100 {
            l.check(&k).unwrap();
        }
        assert_eq!(l.len(), 100);
        std::thread::sleep(Duration::from_millis(5));
        l.forget_idle();
        assert_eq!(l.len(), 0);
    }

    #[test]
    fn ipv6_addresses_count_by_their_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(address_key(a), address_key(b));
        assert_ne!(address_key(a), address_key(c));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(address_key(mapped), "192.0.2.7".parse::<IpAddr>().unwrap());
        let v4: IpAddr = "192.0.2.7".parse().unwrap();
        assert_eq!(address_key(v4), v4);
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(retry_after_seconds(Duration::ZERO), 1);
        assert_eq!(retry_after_seconds(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_seconds(Duration::from_secs(2)), 2);
        assert_eq!(retry_after_seconds(Duration::from_millis(2001)), 3);
    }
}
