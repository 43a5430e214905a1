//! The plan: a pure function from (keys, now, policy, request) to the
//! transitions that keep the invariant. It simulates each step with `apply`, so
//! that later steps see the keys as the earlier ones left them.

use super::apply::apply;
use super::policy::Policy;
use crate::keys::{Alg, KeyState, StoredKey};

/// Why a key signs at once, without having been published first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Urgency {
    /// The store was empty: no verifier can have cached anything.
    FirstStart,
    /// The operator asked for it (`keys rotate --now`).
    Emergency,
    /// No key could sign any more (the signing key was revoked, no next key).
    NothingCanSign,
}

/// One step of the life cycle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    /// Creates a published key that does not sign yet.
    CreateNext {
        /// Its algorithm.
        alg: Alg,
    },
    /// Creates a key that signs at once; every current key becomes previous.
    CreateCurrent {
        /// Its algorithm.
        alg: Alg,
        /// Why this may break the publish-before-sign rule.
        urgency: Urgency,
    },
    /// `next` → `current`; every current key becomes previous.
    Promote {
        /// The promoted key.
        kid: String,
        /// Whether it was published for less than the publish lead (only when
        /// nothing else could sign).
        early: bool,
    },
    /// `previous` (or a never-used `next`) → `retired`: out of the JWKS, private key destroyed.
    Retire {
        /// The key.
        kid: String,
    },
    /// → `revoked`: out of the JWKS at once, private key destroyed.
    Revoke {
        /// The key.
        kid: String,
    },
}

/// What asked for a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// The periodic scheduler (and start-up).
    Scheduled,
    /// `keys rotate`: promote the next key now if it has been published long enough.
    Rotate,
    /// `keys rotate --now`: a fresh key signs at once.
    RotateNow,
    /// `keys revoke KID`.
    Revoke(String),
}

/// One line for logs: what happened, without Rust's `Debug` shapes.
impl std::fmt::Display for Transition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Transition::CreateNext { alg } => write!(f, "a new next {alg} key is published"),
            Transition::CreateCurrent { alg, urgency } => {
                let why = match urgency {
                    Urgency::FirstStart => "first start",
                    Urgency::Emergency => "emergency rotation",
                    Urgency::NothingCanSign => "no other key could sign",
                };
                write!(f, "a fresh {alg} key signs at once ({why})")
            }
            Transition::Promote { kid, early: false } => write!(f, "next key {kid} signs now"),
            Transition::Promote { kid, early: true } => write!(
                f,
                "next key {kid} signs now, published for less than the publish lead"
            ),
            Transition::Retire { kid } => write!(f, "key {kid} retired"),
            Transition::Revoke { kid } => write!(f, "key {kid} revoked"),
        }
    }
}

/// Why a manual request cannot be carried out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// The next key has not been published long enough.
    #[error(
        "next key {kid} has been published for {published_for} s; it can sign safely from {} (in {wait} s, once every cached JWKS holds it). Use `keys rotate --now` only in an emergency",
        crate::clock::rfc3339(*.ready_at)
    )]
    NotReady {
        /// The next key.
        kid: String,
        /// Seconds it has been published.
        published_for: i64,
        /// Unix time from which it may sign.
        ready_at: i64,
        /// Seconds to wait.
        wait: i64,
    },
    /// There is no next key of the configured algorithm.
    #[error("there is no next {0} key to rotate to; start `serve` once to create one")]
    NoNextKey(Alg),
    /// The kid is unknown.
    #[error("no signing key has kid {0}")]
    UnknownKid(String),
    /// The key is out of the JWKS already.
    #[error("key {kid} is already {state}")]
    NotPublished {
        /// The key.
        kid: String,
        /// Its state.
        state: KeyState,
    },
}

pub(super) fn oldest(keys: &[StoredKey], alg: Alg, state: KeyState) -> Option<&StoredKey> {
    keys.iter()
        .filter(|k| k.alg == alg && k.state == state)
        .min_by_key(|k| (k.created_at, k.kid.clone()))
}

/// Plans the transitions for `request` at `now`. Pure and deterministic: two
/// replicas looking at the same keys at the same time plan the same thing.
pub fn plan(
    keys: &[StoredKey],
    now: i64,
    policy: &Policy,
    request: &Request,
) -> Result<Vec<Transition>, PlanError> {
    let mut out = Vec::new();
    let mut sim = keys.to_vec();
    let mut step = |sim: &mut Vec<StoredKey>, t: Transition| {
        apply(sim, std::slice::from_ref(&t), now, &mut placeholder);
        out.push(t);
    };
    let alg = policy.alg;
    let ready = |k: &StoredKey| now >= k.created_at + policy.publish_lead();

    match request {
        Request::Scheduled => {}
        Request::Rotate => {
            let next = oldest(&sim, alg, KeyState::Next).ok_or(PlanError::NoNextKey(alg))?;
            if !ready(next) {
                let ready_at = next.created_at + policy.publish_lead();
                return Err(PlanError::NotReady {
                    kid: next.kid.clone(),
                    published_for: now - next.created_at,
                    ready_at,
                    wait: ready_at - now,
                });
            }
            let kid = next.kid.clone();
            step(&mut sim, Transition::Promote { kid, early: false });
        }
        Request::RotateNow => step(
            &mut sim,
            Transition::CreateCurrent {
                alg,
                urgency: Urgency::Emergency,
            },
        ),
        Request::Revoke(kid) => {
            let key = sim
                .iter()
                .find(|k| &k.kid == kid)
                .ok_or_else(|| PlanError::UnknownKid(kid.clone()))?;
            if !key.state.is_published() {
                return Err(PlanError::NotPublished {
                    kid: kid.clone(),
                    state: key.state,
                });
            }
            step(&mut sim, Transition::Revoke { kid: kid.clone() });
        }
    }

    // Keys whose tokens have all expired leave the JWKS; unused next keys of
    // another algorithm were never used to sign and leave at once.
    let leaving: Vec<String> = sim
        .iter()
        .filter(|k| match k.state {
            KeyState::Previous => now >= k.retired_at.unwrap_or(k.created_at) + policy.retention(),
            KeyState::Next => k.alg != alg,
            _ => false,
        })
        .map(|k| k.kid.clone())
        .collect();
    for kid in leaving {
        step(&mut sim, Transition::Retire { kid });
    }

    // Something of the configured algorithm signs, and is replaced when due.
    match oldest(&sim, alg, KeyState::Current) {
        None => {
            let next = oldest(&sim, alg, KeyState::Next).cloned();
            let other_signs = sim.iter().any(|k| k.state == KeyState::Current);
            if keys.is_empty() {
                step(
                    &mut sim,
                    Transition::CreateCurrent {
                        alg,
                        urgency: Urgency::FirstStart,
                    },
                );
            } else if let Some(n) = next.as_ref().filter(|n| ready(n)) {
                let kid = n.kid.clone();
                step(&mut sim, Transition::Promote { kid, early: false });
            } else if other_signs {
                // Switching algorithm: the old key signs until the new next key is ready.
            } else if let Some(n) = next {
                step(
                    &mut sim,
                    Transition::Promote {
                        kid: n.kid,
                        early: true,
                    },
                );
            } else {
                step(
                    &mut sim,
                    Transition::CreateCurrent {
                        alg,
                        urgency: Urgency::NothingCanSign,
                    },
                );
            }
        }
        Some(current) => {
            let due =
                now >= current.activated_at.unwrap_or(current.created_at) + policy.rotation_period;
            if due {
                if let Some(n) = oldest(&sim, alg, KeyState::Next).filter(|n| ready(n)) {
                    let kid = n.kid.clone();
                    step(&mut sim, Transition::Promote { kid, early: false });
                }
            }
        }
    }

    // A next key is always published.
    if oldest(&sim, alg, KeyState::Next).is_none() {
        step(&mut sim, Transition::CreateNext { alg });
    }
    Ok(out)
}

/// A stand-in for a key that `apply` creates during planning.
pub(super) fn placeholder(alg: Alg, state: KeyState, now: i64) -> StoredKey {
    use crate::keys::jwk::{PublicJwk, PublicKey};
    let key = PublicKey::Ed25519 { x: vec![0; 32] };
    StoredKey {
        kid: format!("planned-{now}-{state}"),
        alg,
        state,
        public_jwk: PublicJwk::new(key, alg.as_str()),
        private_key: None,
        created_at: now,
        activated_at: None,
        retired_at: None,
    }
}
