//! Carrying out the rotation plan through the store, keeping the published view
//! current, and the scheduler inside `serve`.
//!
//! Every change goes the same way, whoever asks (the scheduler of any replica,
//! or an operator's `keys rotate` elsewhere): plan outside the lock, generate key
//! material for what the plan creates, then inside the store's locked
//! transaction plan again from the keys as they are now and apply only if the
//! plan is unchanged. Of several processes acting at once exactly one applies a
//! transition; the others find the work done.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;

use crate::keys::keyring::{Endpoints, fingerprint};
use crate::keys::rotation::{PlanError, Policy, Request, Transition, apply, plan};
use crate::keys::signer::generate;
use crate::keys::{Alg, KekSet, KeyRing, KeyState, Published, StoredKey};
use crate::store::{Store, StoreError};

/// The result of one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing was due.
    NothingToDo,
    /// These transitions were applied.
    Applied(Vec<Transition>),
    /// Another process changed the keys first; nothing was written.
    Raced,
}

/// Generated key material for one create transition.
struct Fresh {
    alg: Alg,
    key: StoredKey,
}

/// Applies plans and keeps the published view in step with the store.
pub struct KeyManager {
    store: Arc<dyn Store>,
    keks: Arc<KekSet>,
    policy: Policy,
    endpoints: Endpoints,
    ring: Mutex<Option<Arc<KeyRing>>>,
    /// Serialises reloads: a reload that listed the keys before a change must
    /// not replace the view of one that listed them after it.
    reloading: tokio::sync::Mutex<()>,
}

async fn fresh_key(alg: Alg, keks: &KekSet) -> anyhow::Result<Fresh> {
    // RSA generation takes a while; keep it off the async workers.
    let g = tokio::task::spawn_blocking(move || generate(alg))
        .await
        .context("key generation task failed")??;
    let kid = g.public.kid.clone();
    Ok(Fresh {
        alg,
        key: StoredKey {
            private_key: Some(keks.active().wrap(&kid, alg, &g.private)),
            kid,
            alg,
            state: KeyState::Next,
            public_jwk: g.public,
            created_at: 0,
            activated_at: None,
            retired_at: None,
        },
    })
}

impl KeyManager {
    /// A manager for `store` under `policy`.
    pub fn new(
        store: Arc<dyn Store>,
        keks: Arc<KekSet>,
        policy: Policy,
        endpoints: Endpoints,
    ) -> Self {
        KeyManager {
            store,
            keks,
            policy,
            endpoints,
            ring: Mutex::new(None),
            reloading: tokio::sync::Mutex::new(()),
        }
    }

    /// The policy in force.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The published URLs.
    pub fn endpoints(&self) -> &Endpoints {
        &self.endpoints
    }

    /// Carries out an operator's request (`keys rotate|revoke`, the admin API):
    /// the transitions applied, none when nothing was due. When another process
    /// won a race it plans once more from the new state; `None` when the keys
    /// kept changing and nothing was done.
    pub async fn request(
        &self,
        request: &Request,
        now: i64,
    ) -> Result<Option<Vec<Transition>>, RotationError> {
        for _ in 0..2 {
            match self.run(request, now).await? {
                Outcome::Applied(transitions) => return Ok(Some(transitions)),
                Outcome::NothingToDo => return Ok(Some(Vec::new())),
                Outcome::Raced => continue,
            }
        }
        Ok(None)
    }

    /// Plans `request` at `now` and applies it under the store's lock.
    pub async fn run(&self, request: &Request, now: i64) -> Result<Outcome, RotationError> {
        let keys = self.store.list_keys().await?;
        let planned = plan(&keys, now, &self.policy, request)?;
        if planned.is_empty() {
            return Ok(Outcome::NothingToDo);
        }
        let mut fresh = Vec::new();
        for t in &planned {
            if let Transition::CreateNext { alg } | Transition::CreateCurrent { alg, .. } = t {
                fresh.push(
                    fresh_key(*alg, &self.keks)
                        .await
                        .map_err(RotationError::Keygen)?,
                );
            }
        }
        let update = |current: &[StoredKey]| -> Result<Vec<StoredKey>, String> {
            let again = plan(current, now, &self.policy, request).map_err(|e| e.to_string())?;
            if again != planned {
                return Err("the keys changed while planning".into());
            }
            let mut keys = current.to_vec();
            let mut supply = fresh.iter();
            apply(&mut keys, &planned, now, &mut |alg, _, _| {
                let f = supply.next().expect("one fresh key per create");
                debug_assert_eq!(f.alg, alg);
                f.key.clone()
            });
            Ok(keys)
        };
        match self.store.update_keys(&update).await {
            Ok(_) => {
                for t in &planned {
                    tracing::info!(transition = %t, "signing key transition applied");
                }
                Ok(Outcome::Applied(planned))
            }
            Err(StoreError::Aborted(why)) => {
                tracing::debug!(%why, "key transition left to another process");
                Ok(Outcome::Raced)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Re-encrypts every stored private key that is not under the active KEK.
    /// Returns how many were re-wrapped.
    pub async fn rewrap(&self) -> Result<usize, RotationError> {
        let active = self.keks.active().id().to_owned();
        let update = |current: &[StoredKey]| -> Result<Vec<StoredKey>, String> {
            let mut keys = current.to_vec();
            for k in keys.iter_mut() {
                let Some(w) = &k.private_key else { continue };
                if w.kek_id == active {
                    continue;
                }
                let der = self
                    .keks
                    .unwrap(&k.kid, k.alg, w)
                    .map_err(|e| e.to_string())?;
                k.private_key = Some(self.keks.active().wrap(&k.kid, k.alg, &der));
            }
            Ok(keys)
        };
        let before = self.store.list_keys().await?;
        let todo = before
            .iter()
            .filter(|k| k.private_key.as_ref().is_some_and(|w| w.kek_id != active))
            .count();
        if todo == 0 {
            return Ok(0);
        }
        match self.store.update_keys(&update).await {
            Ok(after) => Ok(after
                .iter()
                .filter(|a| {
                    before.iter().any(|b| {
                        b.kid == a.kid
                            && b.private_key.as_ref().map(|w| &w.kek_id)
                                != a.private_key.as_ref().map(|w| &w.kek_id)
                    })
                })
                .count()),
            Err(StoreError::Aborted(why)) => Err(RotationError::Rewrap(why)),
            Err(e) => Err(e.into()),
        }
    }

    /// Builds the published view from the keys as stored now.
    pub async fn build(&self) -> Result<Published, RotationError> {
        let keys = self.store.list_keys().await?;
        Ok(Published::build(
            &keys,
            &self.keks,
            self.policy.alg,
            &self.endpoints,
        )?)
    }

    /// Attaches the live key ring that `reload` keeps current.
    pub fn attach(&self, ring: Arc<KeyRing>) {
        *self.ring.lock().unwrap_or_else(|p| p.into_inner()) = Some(ring);
    }

    /// Rebuilds the published view if the stored keys changed. Returns whether it did.
    pub async fn reload(&self) -> Result<bool, RotationError> {
        let Some(ring) = self.ring.lock().unwrap_or_else(|p| p.into_inner()).clone() else {
            return Ok(false);
        };
        let _one_at_a_time = self.reloading.lock().await;
        let keys = self.store.list_keys().await?;
        if fingerprint(&keys) == ring.get().fingerprint {
            return Ok(false);
        }
        let published = Published::build(&keys, &self.keks, self.policy.alg, &self.endpoints)?;
        tracing::info!(kids = %published.kids.join(","), signer = published.signer.kid(), "published key set changed");
        ring.replace(published);
        Ok(true)
    }

    /// The scheduler: evaluates the plan every `check_interval`, reloads the view
    /// every second and at once when another process announces a change.
    pub async fn run_scheduler(self: Arc<Self>, check_interval: Duration) {
        let mut listener = self.store.key_change_listener().await;
        let mut reload_tick = tokio::time::interval(Duration::from_secs(1));
        reload_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut plan_tick = tokio::time::interval(check_interval);
        plan_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let mut plan_due = false;
            tokio::select! {
                _ = reload_tick.tick() => {}
                _ = plan_tick.tick() => plan_due = true,
                r = async {
                    match listener.as_mut() {
                        Some(l) => l.changed().await,
                        None => std::future::pending().await,
                    }
                } => {
                    if let Err(e) = r {
                        tracing::warn!(error = %e, "key change listener failed; polling until it reconnects");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
            if plan_due {
                if let Err(e) = self.run(&Request::Scheduled, crate::clock::now()).await {
                    tracing::warn!(error = %e, "scheduled key rotation failed; will retry");
                }
            }
            if let Err(e) = self.reload().await {
                tracing::warn!(error = %e, "cannot reload signing keys; serving the last good set");
            }
        }
    }
}

/// Why a key operation failed.
#[derive(Debug, thiserror::Error)]
pub enum RotationError {
    /// The request cannot be carried out now; the message says when or why.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Key generation failed.
    #[error("cannot generate a signing key: {0}")]
    Keygen(anyhow::Error),
    /// A stored key could not be loaded.
    #[error(transparent)]
    Load(#[from] crate::keys::keyring::KeyRingError),
    /// Re-wrapping failed; nothing was written.
    #[error("cannot re-wrap: {0}")]
    Rewrap(String),
}
