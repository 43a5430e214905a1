//! An in-memory cache of principals, so that minting makes no database round
//! trip for a known client. Every change to a principal is noted in the store;
//! `follow_changes` drops the changed entries within a second on every replica.
//! Entries also expire after a TTL (a safety net), and callers ask for a fresher
//! entry when authentication fails, so a new secret or key is seen at once.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use crate::ids::Subject;
use crate::principal::Principal;
use crate::store::{PrincipalStore, StoreError};

/// The most entries kept; past it the cache starts over.
const MAX_ENTRIES: usize = 1_000_000;

/// Cached principals by subject.
pub struct PrincipalCache {
    store: Arc<dyn PrincipalStore>,
    ttl: Duration,
    entries: RwLock<HashMap<Subject, (Instant, Arc<Principal>)>>,
}

impl PrincipalCache {
    /// A cache over `store` whose entries live for `ttl`.
    pub fn new(store: Arc<dyn PrincipalStore>, ttl: Duration) -> Self {
        PrincipalCache {
            store,
            ttl,
            entries: RwLock::new(HashMap::new()),
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
            if let Some((at, p)) = entries.get(subject) {
                if at.elapsed() < max_age.min(self.ttl) {
                    return Ok(Some(p.clone()));
                }
            }
        }
        // The lock is not held across this query.
        let loaded = self.store.principal(subject).await?.map(Arc::new);
        let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
        match &loaded {
            Some(p) => {
                if entries.len() >= MAX_ENTRIES {
                    entries.clear();
                }
                entries.insert(subject.clone(), (Instant::now(), p.clone()));
            }
            None => {
                entries.remove(subject);
            }
        }
        Ok(loaded)
    }

    /// Drops the entries of `subject`; `org/ORG` drops the org and all its agents.
    pub fn invalidate(&self, subject: &str) {
        let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
        match Subject::parse(subject) {
            Ok(Subject::Org(org)) => entries.retain(|s, _| s.org() != &org),
            Ok(s) => {
                entries.remove(&s);
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
