//! Performing planned transitions on a list of keys: the same code runs in the
//! plan's simulation and, with fresh key material, inside the store's transaction.

use super::plan::Transition;
use crate::keys::{Alg, KeyState, StoredKey};

fn demote_current(keys: &mut [StoredKey], now: i64) {
    for k in keys.iter_mut().filter(|k| k.state == KeyState::Current) {
        k.state = KeyState::Previous;
        k.retired_at = Some(now);
    }
}

/// Performs transitions on a key list. `make(alg, state, now)` supplies the key
/// for each create, in order (fresh key material when applied for real).
pub fn apply(
    keys: &mut Vec<StoredKey>,
    transitions: &[Transition],
    now: i64,
    make: &mut dyn FnMut(Alg, KeyState, i64) -> StoredKey,
) {
    for t in transitions {
        match t {
            Transition::CreateNext { alg } => {
                let mut k = make(*alg, KeyState::Next, now);
                k.state = KeyState::Next;
                k.created_at = now;
                keys.push(k);
            }
            Transition::CreateCurrent { alg, .. } => {
                demote_current(keys, now);
                let mut k = make(*alg, KeyState::Current, now);
                k.state = KeyState::Current;
                k.created_at = now;
                k.activated_at = Some(now);
                keys.push(k);
            }
            Transition::Promote { kid, .. } => {
                demote_current(keys, now);
                if let Some(k) = keys.iter_mut().find(|k| &k.kid == kid) {
                    k.state = KeyState::Current;
                    k.activated_at = Some(now);
                }
            }
            Transition::Retire { kid } => {
                if let Some(k) = keys.iter_mut().find(|k| &k.kid == kid) {
                    k.state = KeyState::Retired;
                    k.private_key = None;
                }
            }
            Transition::Revoke { kid } => {
                if let Some(k) = keys.iter_mut().find(|k| &k.kid == kid) {
                    k.state = KeyState::Revoked;
                    k.private_key = None;
                    k.retired_at = k.retired_at.or(Some(now));
                }
            }
        }
    }
}
