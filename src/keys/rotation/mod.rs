//! The rotation plan: a pure function from (keys, now, policy, request) to the
//! transitions that keep the invariant, and a pure `apply` that performs them on
//! a list of keys. The store runs both inside one locked transaction.
//!
//! **The invariant.** A key signs only after it has been in the JWKS longer than
//! any verifier may cache the JWKS (`jwks_max_age` + `margin`), and stays in the
//! JWKS until every token it signed has expired (`max_token_lifetime` +
//! `verifier_skew` + `margin` after it stopped signing). The only exceptions are
//! the very first key of an empty store (nobody can have cached anything) and
//! explicit emergencies (`keys rotate --now`, revoking the signing key).
//!
//! One file per concept: `policy` (the timing policy and its derived
//! durations), `plan` (the pure plan and its vocabulary), `apply` (performing
//! transitions on a key list), `schedule` (when each key next changes state).

mod apply;
mod plan;
mod policy;
mod schedule;
#[cfg(test)]
mod tests;

pub use apply::apply;
pub use plan::{PlanError, Request, Transition, Urgency, plan};
pub use policy::{MAX_PUBLISHED_PER_ALG, Policy};
pub use schedule::next_transition;
