//! One conformance suite for every store backend: Postgres and embedded SQLite.

mod common;

use std::sync::Arc;

use common::*;
use nomos_issuer::audit::{AssertionClaim, AuditRecord, Issued};
use nomos_issuer::ids::{AgentId, Audience, OrgId, Subject};
use nomos_issuer::keys::keyring::{Endpoints, fingerprint};
use nomos_issuer::keys::rotation::{Policy, Request, Transition, apply};
use nomos_issuer::keys::{Alg, Kek, KekSet, KeyState, StoredKey, signer};
use nomos_issuer::principal::{ClientSecret, Credential, CredentialKind, OrgPolicy, random_id};
use nomos_issuer::rotation::{KeyManager, Outcome};
use nomos_issuer::store::StoreError;

both_backends!(
    migrations_are_idempotent,
    orgs_and_agents_are_unique_and_scoped,
    principals_carry_policy_and_credentials,
    key_updates_write_exactly_the_difference,
    racing_replicas_apply_each_transition_once,
    private_keys_are_stored_wrapped,
    audit_batches_round_trip,
    assertion_ids_are_claimed_once,
    principal_changes_are_logged_in_order,
);

fn secret_cred() -> Credential {
    Credential {
        id: random_id("cred_", 12),
        kind: CredentialKind::Secret {
            hash: ClientSecret::generate().hash(),
        },
    }
}

fn org(s: &str) -> OrgId {
    OrgId::parse(s).unwrap()
}

fn agent(s: &str) -> AgentId {
    AgentId::parse(s).unwrap()
}

fn new_key(kek: &Kek, state: KeyState, at: i64) -> StoredKey {
    let g = signer::generate(Alg::ES256).unwrap();
    StoredKey {
        kid: g.public.kid.clone(),
        alg: Alg::ES256,
        state,
        private_key: Some(kek.wrap(&g.public.kid, Alg::ES256, &g.private)),
        public_jwk: g.public,
        created_at: at,
        activated_at: (state == KeyState::Current).then_some(at),
        retired_at: None,
    }
}

fn policy() -> Policy {
    Policy {
        alg: Alg::ES256,
        rotation_period: 600,
        jwks_max_age: 60,
        margin: 1,
        max_token_lifetime: 300,
        verifier_skew: 60,
    }
}

async fn migrations_are_idempotent(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = nomos_issuer::store::open(&db.url).await.unwrap();
    assert_eq!(
        store.pending_migrations().await.unwrap(),
        3,
        "init, session claims, principal changes"
    );
    store.migrate().await.unwrap();
    store.migrate().await.unwrap();
    assert_eq!(store.pending_migrations().await.unwrap(), 0);
    store.ping().await.unwrap();
}

async fn orgs_and_agents_are_unique_and_scoped(backend: Backend) {
    let db = TestDb::new(backend).await;
    let s = db.store().await;
    s.create_org(&org("acme"), &OrgPolicy::default(), &secret_cred(), 1)
        .await
        .unwrap();
    let dup = s
        .create_org(&org("acme"), &OrgPolicy::default(), &secret_cred(), 1)
        .await;
    assert!(matches!(dup, Err(StoreError::Conflict(_))), "{dup:?}");
    let missing = s
        .create_agent(&org("nobody"), &agent("a"), &secret_cred(), 1)
        .await;
    assert!(
        matches!(missing, Err(StoreError::NotFound(_))),
        "{missing:?}"
    );
    s.create_agent(&org("acme"), &agent("a"), &secret_cred(), 1)
        .await
        .unwrap();
    let dup = s
        .create_agent(&org("acme"), &agent("a"), &secret_cred(), 1)
        .await;
    assert!(matches!(dup, Err(StoreError::Conflict(_))), "{dup:?}");
    // The same agent id in another org is another agent.
    s.create_org(&org("beta"), &OrgPolicy::default(), &secret_cred(), 1)
        .await
        .unwrap();
    s.create_agent(&org("beta"), &agent("a"), &secret_cred(), 1)
        .await
        .unwrap();
    // A failed create left nothing behind.
    assert!(
        s.principal(&Subject::parse("org/nobody").unwrap())
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        s.principal(&Subject::parse("org/nobody/agent/a").unwrap())
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        s.principal(&Subject::parse("org/acme/agent/b").unwrap())
            .await
            .unwrap()
            .is_none()
    );
}

async fn principals_carry_policy_and_credentials(backend: Backend) {
    let db = TestDb::new(backend).await;
    let s = db.store().await;
    let policy = OrgPolicy {
        audiences: vec![
            Audience::sts(),
            Audience::parse("https://x.example").unwrap(),
        ],
        max_ttl: 600,
    };
    let secret = ClientSecret::generate();
    let cred = Credential {
        id: random_id("cred_", 12),
        kind: CredentialKind::Secret {
            hash: secret.hash(),
        },
    };
    s.create_org(&org("acme"), &policy, &cred, 1).await.unwrap();
    let p = s
        .principal(&Subject::parse("org/acme").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(p.policy, policy);
    assert_eq!(p.credentials, vec![cred]);
    assert!(p.secret_matches(secret.expose()));
    let jwk = serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"});
    let key_cred = Credential {
        id: random_id("cred_", 12),
        kind: CredentialKind::PublicKeys(vec![nomos_issuer::keys::PublicJwk::parse(&jwk).unwrap()]),
    };
    s.create_agent(&org("acme"), &agent("ci"), &key_cred, 2)
        .await
        .unwrap();
    let p = s
        .principal(&Subject::parse("org/acme/agent/ci").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(p.policy, policy, "an agent carries its org's policy");
    assert_eq!(p.credentials, vec![key_cred]);
    assert_eq!(p.public_keys().count(), 1);
    assert!(!p.secret_matches(secret.expose()));
}

async fn key_updates_write_exactly_the_difference(backend: Backend) {
    let db = TestDb::new(backend).await;
    let s = db.store().await;
    let kek = Kek::from_bytes(&[1; 32]);
    let (a, b) = (
        new_key(&kek, KeyState::Current, 100),
        new_key(&kek, KeyState::Next, 100),
    );
    let (a2, b2) = (a.clone(), b.clone());
    let after = s
        .update_keys(&move |keys: &[StoredKey]| {
            assert!(keys.is_empty());
            Ok(vec![a2.clone(), b2.clone()])
        })
        .await
        .unwrap();
    assert_eq!(after.len(), 2);
    let find = |keys: &[StoredKey], kid: &str| keys.iter().find(|k| k.kid == kid).cloned().unwrap();
    let stored = s.list_keys().await.unwrap();
    assert_eq!(stored.len(), 2);
    let (sa, sb) = (find(&stored, &a.kid), find(&stored, &b.kid));
    assert_eq!((sa.state, sb.state), (KeyState::Current, KeyState::Next));
    assert_eq!(sa.public_jwk, a.public_jwk);
    assert_eq!(sa.private_key, a.private_key);
    assert_eq!(sa.activated_at, Some(100));
    // Promote b: a becomes previous in the same transaction (the one-current index holds).
    let kid_b = b.kid.clone();
    s.update_keys(&move |keys: &[StoredKey]| {
        let mut keys = keys.to_vec();
        let t = [Transition::Promote {
            kid: kid_b.clone(),
            early: false,
        }];
        apply(&mut keys, &t, 200, &mut |_, _, _| unreachable!());
        Ok(keys)
    })
    .await
    .unwrap();
    let stored = s.list_keys().await.unwrap();
    let (sa, sb) = (find(&stored, &a.kid), find(&stored, &b.kid));
    assert_eq!((sa.state, sa.retired_at), (KeyState::Previous, Some(200)));
    assert_eq!((sb.state, sb.activated_at), (KeyState::Current, Some(200)));
    // Retiring destroys the private key in the database.
    let kid_a = a.kid.clone();
    s.update_keys(&move |keys: &[StoredKey]| {
        let mut keys = keys.to_vec();
        apply(
            &mut keys,
            &[Transition::Retire { kid: kid_a.clone() }],
            300,
            &mut |_, _, _| unreachable!(),
        );
        Ok(keys)
    })
    .await
    .unwrap();
    let pool = sqlx_any(&db.url).await;
    let blob: Option<Vec<u8>> =
        sqlx::query_scalar("SELECT private_key FROM signing_keys WHERE kid = $1")
            .bind(&a.kid)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(blob.is_none());
    // An abandoned update and an attempted deletion write nothing.
    let before = s.list_keys().await.unwrap();
    let r = s
        .update_keys(&|_: &[StoredKey]| Err("changed meanwhile".to_string()))
        .await;
    assert!(matches!(r, Err(StoreError::Aborted(_))), "{r:?}");
    let r = s
        .update_keys(&|keys: &[StoredKey]| Ok(keys[1..].to_vec()))
        .await;
    assert!(matches!(r, Err(StoreError::Aborted(_))), "{r:?}");
    let extra = new_key(&kek, KeyState::Current, 400);
    let r = s
        .update_keys(&move |keys: &[StoredKey]| {
            // A second current key of one algorithm: the database refuses it.
            let mut keys = keys.to_vec();
            keys.push(extra.clone());
            Ok(keys)
        })
        .await;
    assert!(matches!(r, Err(StoreError::Database(_))), "{r:?}");
    let after = s.list_keys().await.unwrap();
    assert_eq!(fingerprint(&before), fingerprint(&after));
}

async fn racing_replicas_apply_each_transition_once(backend: Backend) {
    let db = TestDb::new(backend).await;
    db.store().await;
    let keks = Arc::new(KekSet::new(Kek::from_bytes(&[2; 32]), vec![]));
    let endpoints = Endpoints::new("https://id.example");
    let mut managers = Vec::new();
    for _ in 0..6 {
        // Each "replica" has a pool of its own, as separate processes would.
        let store = nomos_issuer::store::open(&db.url).await.unwrap();
        managers.push(Arc::new(KeyManager::new(
            store,
            keks.clone(),
            policy(),
            endpoints.clone(),
        )));
    }
    // First start, then a rotation that is due, each raced by six replicas.
    for (now, expect_keys) in [(1000, 2), (1000 + 600, 3)] {
        let mut tasks = Vec::new();
        for m in &managers {
            let m = m.clone();
            tasks.push(tokio::spawn(async move {
                m.run(&Request::Scheduled, now).await.unwrap()
            }));
        }
        let mut applied = 0;
        for t in tasks {
            if let Outcome::Applied(_) = t.await.unwrap() {
                applied += 1;
            }
        }
        assert_eq!(applied, 1, "exactly one replica applied the transition");
        let keys = managers[0].build().await.unwrap();
        assert_eq!(keys.kids.len(), expect_keys);
    }
    let s = db.store().await;
    let keys = s.list_keys().await.unwrap();
    let mut states: Vec<_> = keys.iter().map(|k| k.state).collect();
    states.sort();
    assert_eq!(
        states,
        vec![KeyState::Next, KeyState::Current, KeyState::Previous]
    );
}

async fn sqlx_any(url: &str) -> sqlx::AnyPool {
    sqlx::any::install_default_drivers();
    sqlx::AnyPool::connect(url).await.unwrap()
}

async fn private_keys_are_stored_wrapped(backend: Backend) {
    let db = TestDb::new(backend).await;
    let s = db.store().await;
    let kek = Kek::from_bytes(&[4; 32]);
    let g = signer::generate(Alg::ES256).unwrap();
    let mut key = new_key(&kek, KeyState::Current, 1);
    key.kid = g.public.kid.clone();
    key.private_key = Some(kek.wrap(&g.public.kid, Alg::ES256, &g.private));
    key.public_jwk = g.public.clone();
    s.update_keys(&move |_: &[StoredKey]| Ok(vec![key.clone()]))
        .await
        .unwrap();
    // A dump of the table holds no private key material in clear.
    let pool = sqlx_any(&db.url).await;
    let rows: Vec<(Vec<u8>, String)> =
        sqlx::query_as("SELECT private_key, public_jwk FROM signing_keys")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(rows.len(), 1);
    let der = &g.private.0;
    // Look for any 16-byte window of the PKCS#8 document (which holds the private scalar).
    for (blob, jwk) in rows {
        assert!(!der.windows(16).any(|w| blob.windows(16).any(|b| b == w)));
        assert!(!jwk.contains("\"d\""));
    }
}

fn record(jti: &str, agent: Option<&str>) -> AuditRecord {
    AuditRecord {
        jti: jti.into(),
        subject: match agent {
            Some(a) => format!("org/acme/agent/{a}"),
            None => "org/acme".into(),
        },
        org_id: "acme".into(),
        agent_id: agent.map(str::to_owned),
        audience: "sts.amazonaws.com".into(),
        kid: "kid".into(),
        iat: 1000,
        exp: 1300,
        auth_method: "client_secret_basic".into(),
    }
}

fn plain(r: AuditRecord) -> Issued {
    Issued {
        record: r,
        claim: None,
    }
}

fn claimed(jti: &str, client: &str, assertion: &str, expires_at: i64) -> Issued {
    Issued {
        record: record(jti, None),
        claim: Some(AssertionClaim {
            client_id: client.into(),
            jti: assertion.into(),
            expires_at,
        }),
    }
}

async fn audit_batches_round_trip(backend: Backend) {
    let db = TestDb::new(backend).await;
    let s = db.store().await;
    assert!(s.record_tokens(&[]).await.unwrap().is_empty());
    let batch: Vec<_> = (0..nomos_issuer::audit::MAX_BATCH)
        .map(|i| record(&format!("j{i}"), (i % 2 == 0).then_some("a")))
        .collect();
    let recorded = s
        .record_tokens(&batch.iter().cloned().map(plain).collect::<Vec<_>>())
        .await
        .unwrap();
    assert!(recorded.iter().all(|r| *r) && recorded.len() == batch.len());
    assert_eq!(s.count_tokens().await.unwrap(), batch.len() as i64);
    assert_eq!(s.token("j0").await.unwrap().unwrap(), batch[0]);
    assert_eq!(s.token("j1").await.unwrap().unwrap(), batch[1]);
    assert!(s.token("nope").await.unwrap().is_none());
    // A duplicate jti fails the whole batch: nothing half-written.
    let bad = vec![plain(record("fresh", None)), plain(record("j0", None))];
    assert!(s.record_tokens(&bad).await.is_err());
    assert!(s.token("fresh").await.unwrap().is_none());
}

async fn assertion_ids_are_claimed_once(backend: Backend) {
    let db = TestDb::new(backend).await;
    let s = db.store().await;
    // One batch: the first use of an assertion id wins, a second use in the same
    // batch is refused, other clients and ids are independent.
    let batch = vec![
        claimed("t1", "org/a", "j", 100),
        claimed("t2", "org/a", "j", 100),
        claimed("t3", "org/b", "j", 100),
        claimed("t4", "org/a", "k", 300),
        plain(record("t5", None)),
    ];
    assert_eq!(
        s.record_tokens(&batch).await.unwrap(),
        vec![true, false, true, true, true]
    );
    assert!(s.token("t1").await.unwrap().is_some());
    assert!(
        s.token("t2").await.unwrap().is_none(),
        "a replayed token is not recorded"
    );
    // A later batch: replays are refused, fresh ids pass.
    let later = vec![
        claimed("t6", "org/a", "j", 100),
        claimed("t7", "org/a", "m", 100),
    ];
    assert_eq!(s.record_tokens(&later).await.unwrap(), vec![false, true]);
    assert_eq!(s.purge_assertion_jtis(200).await.unwrap(), 3);
    let again = vec![claimed("t8", "org/a", "k", 300)];
    assert_eq!(
        s.record_tokens(&again).await.unwrap(),
        vec![false],
        "unexpired ids stay"
    );
}

async fn principal_changes_are_logged_in_order(backend: Backend) {
    let db = TestDb::new(backend).await;
    let s = db.store().await;
    let start = s.principal_change_head().await.unwrap();
    assert_eq!(start, 0);
    assert!(s.principal_changes_since(start).await.unwrap().1.is_empty());
    s.create_org(&org("acme"), &OrgPolicy::default(), &secret_cred(), 1)
        .await
        .unwrap();
    s.create_agent(&org("acme"), &agent("a"), &secret_cred(), 1)
        .await
        .unwrap();
    let sub = Subject::parse("org/acme/agent/a").unwrap();
    s.set_session_claims(
        &sub,
        Some(&nomos_issuer::aws::session::SessionClaims::default()),
    )
    .await
    .unwrap();
    let (last, changed) = s.principal_changes_since(start).await.unwrap();
    assert_eq!(
        changed,
        vec!["org/acme", "org/acme/agent/a", "org/acme/agent/a"]
    );
    assert!(last > start);
    assert_eq!(s.principal_change_head().await.unwrap(), last);
    assert!(s.principal_changes_since(last).await.unwrap().1.is_empty());
    // A failed change logs nothing.
    let ghost = Subject::parse("org/acme/agent/ghost").unwrap();
    assert!(s.set_session_claims(&ghost, None).await.is_err());
    assert!(s.principal_changes_since(last).await.unwrap().1.is_empty());
}
