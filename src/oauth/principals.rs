//! An in-memory cache of principals, so that minting makes no database round
//! trip for a known client. Every change to a principal is noted in the store;
//! `follow_changes` drops the changed entries within a second on every replica.
//! Entries also expire after a TTL (a safety net), and callers ask for a fresher
//! entry when authentication fails, so a new secret or key is seen at once.

use std::borrow::Borrow;
use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use crate::ids::Subject;
use crate::principal::{OrgPolicy, Principal};
use crate::store::{PrincipalStore, StoreError};

/// The most entries kept; past it the cache starts over.
const MAX_ENTRIES: usize = 1_000_000;

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
    store: Arc<dyn PrincipalStore>,
    ttl: Duration,
    entries: RwLock<Entries>,
}

impl PrincipalCache {
    /// A cache over `store` whose entries live for `ttl`.
    pub fn new(store: Arc<dyn PrincipalStore>, ttl: Duration) -> Self {
        PrincipalCache {
            store,
            ttl,
            entries: RwLock::new(Entries::default()),
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
        {
            let entries = self.entries.read().unwrap_or_else(|p| p.into_inner());
            if let Some(e) = entries.by_subject.get(subject) {
                if e.loaded.elapsed() < max_age.min(self.ttl) {
                    return Ok(Some(e.principal.clone()));
                }
            }
        }
        // The lock is not held across this query.
        let loaded = self.store.principal(subject).await?;
        let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
        match loaded {
            Some(mut p) => {
                if entries.by_subject.len() >= MAX_ENTRIES {
                    entries.clear();
                }
                p.policy = entries.share(p.policy);
                let p = Arc::new(p);
                entries.by_subject.replace(Entry {
                    loaded: Instant::now(),
                    principal: p.clone(),
                });
                Ok(Some(p))
            }
            None => {
                entries.by_subject.remove(subject);
                Ok(None)
            }
        }
    }

    /// Drops the entries of `subject`; `org/ORG` drops the org and all its agents.
    pub fn invalidate(&self, subject: &str) {
        let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
        match Subject::parse(subject) {
            Ok(Subject::Org(org)) => entries
                .by_subject
                .retain(|e| e.principal.subject.org() != &org),
            Ok(s) => {
                entries.by_subject.remove(&s);
            }
            Err(_) => entries.clear(),
        }
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
                    self.entries
                        .write()
                        .unwrap_or_else(|p| p.into_inner())
                        .clear();
                }
            }
        }
    }
}
