//! What the schedule looks like from outside: when each published key next
//! changes state, for `keys list` and the metrics.

use super::policy::Policy;
use crate::keys::{KeyState, StoredKey};

/// When each published key next changes state under `policy`, for `keys list`.
pub fn next_transition(
    keys: &[StoredKey],
    key: &StoredKey,
    policy: &Policy,
) -> Option<(i64, &'static str)> {
    match key.state {
        KeyState::Current => Some((
            key.activated_at.unwrap_or(key.created_at) + policy.rotation_period,
            "replaced",
        )),
        KeyState::Next => {
            let lead = key.created_at + policy.publish_lead();
            let current_due = keys
                .iter()
                .filter(|k| k.state == KeyState::Current)
                .map(|k| k.activated_at.unwrap_or(k.created_at) + policy.rotation_period)
                .min()
                .unwrap_or(lead);
            Some((lead.max(current_due), "signs"))
        }
        KeyState::Previous => Some((
            key.retired_at.unwrap_or(key.created_at) + policy.retention(),
            "unpublished",
        )),
        KeyState::Retired | KeyState::Revoked => None,
    }
}
