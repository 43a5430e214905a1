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

use super::{Alg, KeyState, StoredKey};

/// The timing policy. All durations in seconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// The algorithm that should sign.
    pub alg: Alg,
    /// How long a key signs before its successor takes over (default 7 days).
    pub rotation_period: i64,
    /// The longest any verifier may cache the JWKS (and our `Cache-Control` max-age).
    pub jwks_max_age: i64,
    /// Safety margin added to every wait.
    pub margin: i64,
    /// The longest lifetime any token can have.
    pub max_token_lifetime: i64,
    /// Clock skew verifiers allow past `exp` (AWS: 300 s).
    pub verifier_skew: i64,
}

/// The most keys of one algorithm the JWKS may hold under any accepted policy.
pub const MAX_PUBLISHED_PER_ALG: i64 = 10;

impl Policy {
    /// How long a `next` key must have been published before it may sign.
    pub fn publish_lead(&self) -> i64 {
        self.jwks_max_age + self.margin
    }

    /// How long a key stays published after it stopped signing.
    pub fn retention(&self) -> i64 {
        self.max_token_lifetime + self.verifier_skew + self.margin
    }

    /// The most keys of one algorithm published at once: current, next, and the
    /// previous keys still inside the retention window, counting manual rotations,
    /// which may come as often as every publish lead. On the schedule alone it is
    /// 2 or 3.
    pub fn max_published(&self) -> i64 {
        let lead = self.publish_lead().max(1);
        2 + (self.retention() + lead - 1) / lead
    }

    /// Refuses a policy that would break the invariant, naming the settings involved.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let bad = |name: &str, why: String| Err((name.to_owned(), why));
        if self.rotation_period <= 0 || self.jwks_max_age < 0 || self.margin < 0 {
            return bad("rotation_period", "durations must be positive".into());
        }
        if self.rotation_period < self.publish_lead() {
            return bad(
                "rotation_period",
                format!(
                    "rotation_period ({} s) is shorter than jwks_max_age ({} s) + rotation_margin ({} s): a next key could not be in every cached JWKS before it signs",
                    self.rotation_period, self.jwks_max_age, self.margin
                ),
            );
        }
        if self.max_published() > MAX_PUBLISHED_PER_ALG {
            return bad(
                "jwks_max_age",
                format!(
                    "jwks_max_age ({} s) + rotation_margin is so short against max_token_lifetime ({} s) + verifier_skew ({} s) + rotation_margin ({} s) that rotations as often as allowed would keep {} keys in the JWKS; at most {MAX_PUBLISHED_PER_ALG} are allowed",
                    self.jwks_max_age,
                    self.max_token_lifetime,
                    self.verifier_skew,
                    self.margin,
                    self.max_published()
                ),
            );
        }
        Ok(())
    }
}

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

/// Why a manual request cannot be carried out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// The next key has not been published long enough.
    #[error(
        "next key {kid} has been published for {published_for} s; it can sign safely from {ready_at} (in {wait} s, once every cached JWKS holds it). Use `keys rotate --now` only in an emergency"
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

fn oldest(keys: &[StoredKey], alg: Alg, state: KeyState) -> Option<&StoredKey> {
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
fn placeholder(alg: Alg, state: KeyState, now: i64) -> StoredKey {
    use super::jwk::{PublicJwk, PublicKey};
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashSet;

    fn policy() -> Policy {
        Policy {
            alg: Alg::ES256,
            rotation_period: 7 * 86_400,
            jwks_max_age: 300,
            margin: 300,
            max_token_lifetime: 3600,
            verifier_skew: 300,
        }
    }

    /// A model store: keys, and a counter for distinct kids.
    struct Model {
        keys: Vec<StoredKey>,
        made: u32,
        first_start: HashSet<String>,
    }

    impl Model {
        fn new() -> Self {
            Model {
                keys: Vec::new(),
                made: 0,
                first_start: HashSet::new(),
            }
        }

        fn run(
            &mut self,
            now: i64,
            p: &Policy,
            req: &Request,
        ) -> Result<Vec<Transition>, PlanError> {
            let ts = plan(&self.keys, now, p, req)?;
            let made = &mut self.made;
            apply(&mut self.keys, &ts, now, &mut |alg, state, now| {
                *made += 1;
                let mut k = placeholder(alg, state, now);
                k.kid = format!("k{made}");
                k
            });
            let first = ts.iter().any(|t| {
                matches!(
                    t,
                    Transition::CreateCurrent {
                        urgency: Urgency::FirstStart,
                        ..
                    }
                )
            });
            if first {
                let kid = self.signer(p.alg).unwrap().kid.clone();
                self.first_start.insert(kid);
            }
            Ok(ts)
        }

        fn published(&self) -> HashSet<String> {
            self.keys
                .iter()
                .filter(|k| k.state.is_published())
                .map(|k| k.kid.clone())
                .collect()
        }

        fn signer(&self, alg: Alg) -> Option<&StoredKey> {
            oldest(&self.keys, alg, KeyState::Current)
                .or_else(|| self.keys.iter().find(|k| k.state == KeyState::Current))
        }
    }

    #[test]
    fn first_start_creates_current_and_next() {
        let mut m = Model::new();
        let ts = m.run(1000, &policy(), &Request::Scheduled).unwrap();
        assert_eq!(
            ts,
            vec![
                Transition::CreateCurrent {
                    alg: Alg::ES256,
                    urgency: Urgency::FirstStart
                },
                Transition::CreateNext { alg: Alg::ES256 },
            ]
        );
        assert!(
            m.run(1001, &policy(), &Request::Scheduled)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn a_full_cycle_keeps_two_or_three_keys() {
        let p = policy();
        let mut m = Model::new();
        m.run(0, &p, &Request::Scheduled).unwrap();
        let mut now = 0;
        for _ in 0..3 {
            now += p.rotation_period;
            let ts = m.run(now, &p, &Request::Scheduled).unwrap();
            assert!(
                matches!(ts[0], Transition::Promote { early: false, .. }),
                "{ts:?}"
            );
            assert!(matches!(ts[1], Transition::CreateNext { .. }));
            assert_eq!(m.published().len(), 3, "current, next and previous");
            now += p.retention();
            let ts = m.run(now, &p, &Request::Scheduled).unwrap();
            assert!(matches!(ts[..], [Transition::Retire { .. }]), "{ts:?}");
            assert_eq!(m.published().len(), 2);
        }
        let retired = m
            .keys
            .iter()
            .filter(|k| k.state == KeyState::Retired)
            .count();
        assert_eq!(retired, 3);
        assert!(
            m.keys
                .iter()
                .filter(|k| k.state == KeyState::Retired)
                .all(|k| k.private_key.is_none())
        );
    }

    #[test]
    fn manual_rotation_waits_for_the_publish_lead() {
        let p = policy();
        let mut m = Model::new();
        m.run(0, &p, &Request::Scheduled).unwrap();
        m.run(p.rotation_period, &p, &Request::Scheduled).unwrap();
        let now = p.rotation_period + 10;
        match m.run(now, &p, &Request::Rotate) {
            Err(PlanError::NotReady { wait, ready_at, .. }) => {
                assert_eq!(ready_at, p.rotation_period + p.publish_lead());
                assert_eq!(wait, p.publish_lead() - 10);
            }
            other => panic!("{other:?}"),
        }
        let ts = m
            .run(p.rotation_period + p.publish_lead(), &p, &Request::Rotate)
            .unwrap();
        assert!(matches!(ts[0], Transition::Promote { early: false, .. }));
    }

    #[test]
    fn revoking_the_signing_key_promotes_next_and_refills() {
        let p = policy();
        let mut m = Model::new();
        m.run(0, &p, &Request::Scheduled).unwrap();
        let current = m.signer(Alg::ES256).unwrap().kid.clone();
        let ts = m.run(5000, &p, &Request::Revoke(current.clone())).unwrap();
        assert_eq!(
            ts[0],
            Transition::Revoke {
                kid: current.clone()
            }
        );
        assert!(matches!(ts[1], Transition::Promote { early: false, .. }));
        assert!(matches!(ts[2], Transition::CreateNext { .. }));
        assert!(!m.published().contains(&current));
        assert!(matches!(
            m.run(5001, &p, &Request::Revoke(current)),
            Err(PlanError::NotPublished { .. })
        ));
        assert!(matches!(
            m.run(5001, &p, &Request::Revoke("nope".into())),
            Err(PlanError::UnknownKid(_))
        ));
    }

    #[test]
    fn switching_algorithm_waits_for_the_new_key() {
        let mut p = policy();
        let mut m = Model::new();
        m.run(0, &p, &Request::Scheduled).unwrap();
        p.alg = Alg::RS256;
        let ts = m.run(100, &p, &Request::Scheduled).unwrap();
        assert!(
            matches!(
                ts[..],
                [
                    Transition::Retire { .. },
                    Transition::CreateNext { alg: Alg::RS256 }
                ]
            ),
            "{ts:?}"
        );
        assert_eq!(
            m.signer(Alg::RS256).unwrap().alg,
            Alg::ES256,
            "the old key signs meanwhile"
        );
        let ts = m
            .run(100 + p.publish_lead(), &p, &Request::Scheduled)
            .unwrap();
        assert!(
            matches!(ts[0], Transition::Promote { early: false, .. }),
            "{ts:?}"
        );
        assert_eq!(m.signer(Alg::RS256).unwrap().alg, Alg::RS256);
    }

    #[test]
    fn unsafe_policies_are_refused_naming_the_settings() {
        let mut p = policy();
        p.rotation_period = 400;
        let (_, why) = p.validate().unwrap_err();
        assert!(
            why.contains("jwks_max_age") && why.contains("rotation_period"),
            "{why}"
        );
        let mut p = policy();
        (p.jwks_max_age, p.margin, p.rotation_period) = (60, 0, 100);
        let (name, why) = p.validate().unwrap_err();
        assert_eq!(name, "jwks_max_age");
        assert!(why.contains("max_token_lifetime"), "{why}");
        assert!(policy().validate().is_ok());
        assert_eq!(
            policy().max_published(),
            9,
            "worst case with manual rotations"
        );
    }

    #[derive(Debug, Clone)]
    enum Event {
        Advance(i64),
        ClockBack(i64),
        Mint,
        Rotate,
        Restart,
        RotateNow,
        RevokeSigner,
        RevokeNext,
        SwitchAlg,
        ClockFix,
    }

    fn normal_events() -> impl Strategy<Value = Event> {
        prop_oneof![
            4 => (1i64..600).prop_map(Event::Advance),
            2 => (600i64..400_000).prop_map(Event::Advance),
            1 => (1i64..120).prop_map(Event::ClockBack),
            1 => Just(Event::ClockFix),
            5 => Just(Event::Mint),
            1 => Just(Event::Rotate),
            1 => Just(Event::Restart),
            // Revoking a next key breaks no token: its successor must still wait.
            1 => Just(Event::RevokeNext),
            1 => Just(Event::SwitchAlg),
        ]
    }

    fn any_events() -> impl Strategy<Value = Event> {
        prop_oneof![
            6 => normal_events(),
            1 => Just(Event::RotateNow),
            1 => Just(Event::RevokeSigner),
        ]
    }

    fn small_policy() -> impl Strategy<Value = Policy> {
        (0i64..600, 60i64..3600, 0i64..400, 0i64..900).prop_flat_map(
            |(margin, life, skew, extra)| {
                let retention = life + skew + margin;
                // The smallest cache age the validation accepts, plus some.
                let age = ((retention + 7) / 8 - margin).max(1) + extra;
                let lead = age + margin;
                (lead..lead * 20).prop_map(move |period| Policy {
                    alg: Alg::ES256,
                    rotation_period: period,
                    jwks_max_age: age,
                    margin,
                    max_token_lifetime: life,
                    verifier_skew: skew,
                })
            },
        )
    }

    /// Runs a schedule; checks the invariant after every event. Real time only
    /// moves forward; the issuer's clock may fall behind it by up to the margin
    /// (`ClockBack`) and be corrected (`ClockFix`). Verifiers cache and judge expiry in real time.
    /// With `emergencies` off, every signing key (but the first) was published
    /// for `jwks_max_age` of real time before it signed, and for the publish lead
    /// by the issuer's clock; in every run, every unexpired token of a key that was
    /// not revoked verifies against the JWKS of that moment.
    fn check(mut p: Policy, events: Vec<Event>, emergencies: bool) -> Result<(), TestCaseError> {
        prop_assert!(p.validate().is_ok());
        let mut m = Model::new();
        let mut real: i64 = 1_000_000;
        let mut offset: i64 = 0;
        let mut published_at: std::collections::HashMap<String, i64> = Default::default();
        let mut step = |m: &mut Model, real: i64, offset: i64, req: &Request, p: &Policy| {
            let r = m.run(real + offset, p, req);
            for k in &m.keys {
                published_at.entry(k.kid.clone()).or_insert(real);
            }
            (r, published_at.clone())
        };
        step(&mut m, real, offset, &Request::Scheduled, &p)
            .0
            .unwrap();
        let mut tokens: Vec<(String, i64)> = Vec::new();
        let mut revoked: HashSet<String> = HashSet::new();
        for e in events {
            match e {
                Event::Advance(s) => real += s,
                // The margin absorbs clock corrections up to its size; a clock
                // further off than that can break any timestamp-based schedule.
                Event::ClockBack(s) => offset = (offset - s).max(-p.margin),
                Event::ClockFix => offset = 0,
                Event::Mint => {
                    let k = m.signer(p.alg).expect("something signs").clone();
                    let (_, published) = step(&mut m, real, offset, &Request::Scheduled, &p);
                    // Every verifier that fetched the JWKS within max-age before now holds k.
                    if !emergencies && !m.first_start.contains(&k.kid) {
                        let age = real - published[&k.kid];
                        prop_assert!(
                            age >= p.jwks_max_age,
                            "{} signs {age}s after publication",
                            k.kid
                        );
                    }
                    tokens.push((k.kid.clone(), real + offset + p.max_token_lifetime));
                }
                Event::Rotate => {
                    let _ = step(&mut m, real, offset, &Request::Rotate, &p);
                }
                Event::Restart => {}
                Event::SwitchAlg => {
                    p.alg = if p.alg == Alg::ES256 {
                        Alg::RS256
                    } else {
                        Alg::ES256
                    };
                }
                Event::RotateNow => {
                    step(&mut m, real, offset, &Request::RotateNow, &p)
                        .0
                        .unwrap();
                }
                Event::RevokeSigner | Event::RevokeNext => {
                    let state = if matches!(e, Event::RevokeSigner) {
                        KeyState::Current
                    } else {
                        KeyState::Next
                    };
                    if let Some(k) = m.keys.iter().find(|k| k.state == state).cloned() {
                        revoked.insert(k.kid.clone());
                        step(&mut m, real, offset, &Request::Revoke(k.kid), &p)
                            .0
                            .unwrap();
                    }
                }
            }
            step(&mut m, real, offset, &Request::Scheduled, &p)
                .0
                .unwrap();
            let published = m.published();
            prop_assert!(
                m.keys
                    .iter()
                    .filter(|k| k.state == KeyState::Current)
                    .count()
                    == 1
            );
            let nexts = m.keys.iter().filter(|k| k.state == KeyState::Next);
            prop_assert!(
                nexts.map(|k| k.alg).collect::<Vec<_>>() == vec![p.alg],
                "one next key, of the configured algorithm"
            );
            // Emergencies add previous keys beyond the schedule's bound; AWS's limit still holds.
            let bound = if emergencies { 100 } else { p.max_published() };
            prop_assert!(published.len() as i64 <= bound, "{} keys", published.len());
            for (kid, exp) in &tokens {
                if real < exp + p.verifier_skew && !revoked.contains(kid) {
                    prop_assert!(
                        published.contains(kid),
                        "token of {kid} (exp {exp}) unverifiable at {real}"
                    );
                }
            }
            for k in &m.keys {
                if let (Some(a), false) = (
                    k.activated_at,
                    emergencies || m.first_start.contains(&k.kid),
                ) {
                    prop_assert!(
                        a - k.created_at >= p.publish_lead(),
                        "{} signed after {}s",
                        k.kid,
                        a - k.created_at
                    );
                }
            }
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]

        #[test]
        fn no_key_signs_before_every_cache_holds_it(p in small_policy(), events in prop::collection::vec(normal_events(), 1..120)) {
            check(p, events, false)?;
        }

        #[test]
        fn unexpired_tokens_stay_verifiable_through_emergencies(p in small_policy(), events in prop::collection::vec(any_events(), 1..120)) {
            check(p, events, true)?;
        }
    }
}
