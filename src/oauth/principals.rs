//! An in-memory cache of principals, so that minting makes no database round
//! trip for a known client. Every change to a principal is noted in the store;
//! `follow_changes` drops the changed entries within a second on every replica,
//! and the replica that makes a change drops them before it answers. Entries
//! also expire after a TTL (a safety net), and callers ask for a fresher entry
//! when authentication fails, so a new secret or key is seen at once.
//!
//! Unknown subjects are cached too, so that a client id that does not exist
//! costs the same as one that does: timing does not tell an outsider which
//! orgs and agents exist.

use std::borrow::Borrow;
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use crate::ids::Subject;
use crate::principal::{OrgPolicy, Principal};
use async_trait::async_trait;

use crate::store::error::StoreError;

/// What the cache reads: principals and the log of their changes.
#[async_trait]
pub trait PrincipalSource: Send + Sync {
    /// The principal behind a subject, if it exists.
    async fn principal(&self, subject: &Subject) -> Result<Option<Principal>, StoreError>;
    /// The newest entry of the change log.
    async fn principal_change_head(&self) -> Result<i64, StoreError>;
    /// Changes after `seq`: the newest seq seen and the changed subjects.
    async fn principal_changes_since(&self, seq: i64) -> Result<(i64, Vec<String>), StoreError>;
}

/// The most entries kept; past it the cache starts over.
const MAX_ENTRIES: usize = 1_000_000;

/// The most unknown subjects remembered; past it they are forgotten together.
/// An unknown subject costs its id (at most 140 bytes) and a time.
const MAX_UNKNOWN: usize = 100_000;

/// A cached principal and when it was loaded. Entries are found by their
/// principal's subject, so the subject is not stored a second time as a key.
struct Entry {
    loaded: Instant,
    principal: Arc<Principal>,
}

impl Borrow<Subject> for Entry {
    fn borrow(&self) -> &Subject {
        &self.principal.subject
    }
}

impl Hash for Entry {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.principal.subject.hash(state);
    }
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.principal.subject == other.principal.subject
    }
}

impl Eq for Entry {}

/// The cached principals, and one shared copy of each org policy they carry
/// (an org's agents all carry the same policy).
#[derive(Default)]
struct Entries {
    by_subject: HashSet<Entry>,
    /// Subjects the store did not know, and when it said so.
    unknown: HashMap<Subject, Instant>,
    policies: HashSet<Arc<OrgPolicy>>,
    /// How many policies were in use at the last sweep of unused ones.
    policies_swept: usize,
}

impl Entries {
    fn clear(&mut self) {
        *self = Entries::default();
    }

    /// The shared copy of `policy`. Policies no entry uses any more are swept
    /// whenever their number has doubled since the last sweep.
    fn share(&mut self, policy: Arc<OrgPolicy>) -> Arc<OrgPolicy> {
        if let Some(shared) = self.policies.get(&policy) {
            return shared.clone();
        }
        self.policies.insert(policy.clone());
        if self.policies.len() > 2 * self.policies_swept.max(64) {
            self.policies.retain(|p| Arc::strong_count(p) > 1);
            self.policies_swept = self.policies.len();
        }
        policy
    }
}

/// Cached principals by subject.
pub struct PrincipalCache {
    store: Box<dyn PrincipalSource>,
    ttl: Duration,
    entries: RwLock<Entries>,
    /// Counts invalidations. A load that began before one is not cached: it
    /// may have read what the invalidation was about.
    generation: AtomicU64,
}

impl PrincipalCache {
    /// A cache over `store` whose entries live for `ttl`.
    pub fn new(store: impl PrincipalSource + 'static, ttl: Duration) -> Self {
        PrincipalCache {
            store: Box::new(store),
            ttl,
            entries: RwLock::new(Entries::default()),
            generation: AtomicU64::new(0),
        }
    }

    /// The principal, from the cache if its entry is younger than the TTL.
    pub async fn get(&self, subject: &Subject) -> Result<Option<Arc<Principal>>, StoreError> {
        self.get_within(subject, self.ttl).await
    }

    /// The principal, from the cache only if its entry is younger than `max_age`.
    pub async fn get_within(
        &self,
        subject: &Subject,
        max_age: Duration,
    ) -> Result<Option<Arc<Principal>>, StoreError> {
        let max_age = max_age.min(self.ttl);
        {
            let entries = self.entries.read().unwrap_or_else(|p| p.into_inner());
            if let Some(e) = entries.by_subject.get(subject) {
                if e.loaded.elapsed() < max_age {
                    return Ok(Some(e.principal.clone()));
                }
            } else if let Some(loaded) = entries.unknown.get(subject) {
                if loaded.elapsed() < max_age {
                    return Ok(None);
                }
            }
        }
        let generation = self.generation.load(Ordering::Acquire);
        // The lock is not held across this query.
        let loaded = self.store.principal(subject).await?;
        let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
        let current = self.generation.load(Ordering::Acquire) == generation;
        match loaded {
            Some(mut p) => {
                if entries.by_subject.len() >= MAX_ENTRIES {
                    entries.clear();
                }
                p.policy = entries.share(p.policy);
                let p = Arc::new(p);
                entries.unknown.remove(subject);
                if current {
                    entries.by_subject.replace(Entry {
                        loaded: Instant::now(),
                        principal: p.clone(),
                    });
                }
                Ok(Some(p))
            }
            None => {
                entries.by_subject.remove(subject);
                if current {
                    if entries.unknown.len() >= MAX_UNKNOWN {
                        entries.unknown = HashMap::new();
                    }
                    entries.unknown.insert(subject.clone(), Instant::now());
                }
                Ok(None)
            }
        }
    }

    /// Drops what is cached of `subject`; `org/ORG` drops the org and all its
    /// agents. Call it after changing a principal, before answering.
    pub fn forget(&self, subject: &Subject) {
        let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
        self.generation.fetch_add(1, Ordering::AcqRel);
        match subject {
            Subject::Org(org) => {
                entries
                    .by_subject
                    .retain(|e| e.principal.subject.org() != org);
                entries.unknown.retain(|s, _| s.org() != org);
            }
            s => {
                entries.by_subject.remove(s);
                entries.unknown.remove(s);
            }
        }
    }

    /// [`PrincipalCache::forget`] for a subject as the change log spells it;
    /// one it cannot read drops everything.
    pub fn invalidate(&self, subject: &str) {
        match Subject::parse(subject) {
            Ok(s) => self.forget(&s),
            Err(_) => self.clear(),
        }
    }

    /// Drops every entry.
    fn clear(&self) {
        let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
        self.generation.fetch_add(1, Ordering::AcqRel);
        entries.clear();
    }

    /// How many (known, unknown) subjects are cached.
    pub fn len(&self) -> (usize, usize) {
        let entries = self.entries.read().unwrap_or_else(|p| p.into_inner());
        (entries.by_subject.len(), entries.unknown.len())
    }

    /// Follows the store's change log: every `every`, drops what changed. Runs
    /// until the task is aborted.
    pub async fn follow_changes(self: std::sync::Arc<Self>, every: Duration) {
        let mut seq = match self.store.principal_change_head().await {
            Ok(seq) => seq,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read principal changes; relying on the cache TTL");
                0
            }
        };
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            match self.store.principal_changes_since(seq).await {
                Ok((last, subjects)) => {
                    for s in &subjects {
                        self.invalidate(s);
                    }
                    seq = last;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read principal changes; dropping the whole cache");
                    self.clear();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::principal::CredentialKind;
    use crate::principal::session_claims::SessionClaims;
    use tokio::sync::Notify;

    /// A store whose next read waits until told, and whose answer is then
    /// whatever `secret` holds at that moment.
    struct Slow {
        reads: std::sync::atomic::AtomicUsize,
        hold: Notify,
        held: Notify,
        secret: std::sync::Mutex<[u8; 32]>,
    }

    #[async_trait]
    impl PrincipalSource for Arc<Slow> {
        async fn principal(&self, subject: &Subject) -> Result<Option<Principal>, StoreError> {
            self.reads.fetch_add(1, Ordering::SeqCst);
            // What the database held when the read ran...
            let hash = *self.secret.lock().unwrap();
            self.held.notify_one();
            // ...arrives late, after the change was made and invalidated.
            self.hold.notified().await;
            let kinds = [CredentialKind::Secret { hash }];
            Ok(Some(Principal::new(
                subject.clone(),
                OrgPolicy::default(),
                &kinds,
                SessionClaims::NONE,
            )))
        }
        async fn principal_change_head(&self) -> Result<i64, StoreError> {
            Ok(0)
        }
        async fn principal_changes_since(
            &self,
            seq: i64,
        ) -> Result<(i64, Vec<String>), StoreError> {
            Ok((seq, vec![]))
        }
    }

    #[tokio::test]
    async fn a_read_that_raced_an_invalidation_is_not_cached() {
        let slow = Arc::new(Slow {
            reads: Default::default(),
            hold: Notify::new(),
            held: Notify::new(),
            secret: std::sync::Mutex::new([1; 32]),
        });
        let cache = Arc::new(PrincipalCache::new(slow.clone(), Duration::from_secs(600)));
        let subject = Subject::parse("org/acme").unwrap();
        let reader = tokio::spawn({
            let (cache, subject) = (cache.clone(), subject.clone());
            async move { cache.get(&subject).await }
        });
        // The read has taken the old secret; now the secret is revoked and
        // the cache told, before the read comes back.
        slow.held.notified().await;
        *slow.secret.lock().unwrap() = [2; 32];
        cache.forget(&subject);
        slow.hold.notify_one();
        let stale = reader.await.unwrap().unwrap().unwrap();
        assert_eq!(stale.secret_hashes(), [[1; 32]]);
        // The stale read was not cached...
        assert_eq!(cache.len(), (0, 0));
        // ...so the next lookup reads again.
        let fresh = tokio::spawn({
            let (cache, subject) = (cache.clone(), subject.clone());
            async move { cache.get(&subject).await }
        });
        slow.held.notified().await;
        slow.hold.notify_one();
        let fresh = fresh.await.unwrap().unwrap().unwrap();
        assert_eq!(fresh.secret_hashes(), [[2; 32]]);
        assert_eq!(slow.reads.load(Ordering::SeqCst), 2);
        // That one was cached.
        assert_eq!(cache.len(), (1, 0));
    }
}
