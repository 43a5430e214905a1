//! Unit and property tests of the plan, run against a model store.

use super::plan::{oldest, placeholder};
use super::*;
use crate::keys::{Alg, KeyState, StoredKey};
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

    fn run(&mut self, now: i64, p: &Policy, req: &Request) -> Result<Vec<Transition>, PlanError> {
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
        Err(e @ PlanError::NotReady { wait, ready_at, .. }) => {
            assert_eq!(ready_at, p.rotation_period + p.publish_lead());
            assert_eq!(wait, p.publish_lead() - 10);
            // When, as RFC 3339: the Unix time is no answer for an operator.
            let when = crate::clock::rfc3339(ready_at);
            assert!(
                when.starts_with("1970-01-0") && when.ends_with('Z'),
                "{when}"
            );
            let text = e.to_string();
            assert!(
                text.contains(&format!("can sign safely from {when} ")),
                "{text}"
            );
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
    (0i64..600, 60i64..3600, 0i64..400, 0i64..900).prop_flat_map(|(margin, life, skew, extra)| {
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
    })
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
