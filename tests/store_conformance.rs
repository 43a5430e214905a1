//! One conformance suite for every store backend: Postgres and embedded SQLite.

mod common;

use std::collections::HashSet;

use common::*;
use nomos_issuer::audit::AuditRecord;
use nomos_issuer::ids::{AgentId, Audience, OrgId, Subject};
use nomos_issuer::keys::{Alg, Kek, KeyState, signer};
use nomos_issuer::principal::{ClientSecret, Credential, CredentialKind, OrgPolicy, random_id};
use nomos_issuer::store::{NewKey, StoreError};

both_backends!(
    migrations_are_idempotent,
    orgs_and_agents_are_unique_and_scoped,
    principals_carry_policy_and_credentials,
    ensure_keys_creates_one_current_and_one_next,
    racing_replicas_agree_on_one_key_set,
    ensure_keys_promotes_a_published_next_key,
    private_keys_are_stored_wrapped,
    audit_batches_round_trip,
    assertion_ids_are_claimed_once,
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

fn new_key(kek: &Kek) -> NewKey {
    let g = signer::generate(Alg::ES256).unwrap();
    NewKey {
        alg: Alg::ES256,
        private_key: kek.wrap(&g.public.kid, Alg::ES256, &g.private),
        public_jwk: g.public,
    }
}

async fn migrations_are_idempotent(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = nomos_issuer::store::open(&db.url).await.unwrap();
    assert_eq!(store.pending_migrations().await.unwrap(), 1);
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

async fn ensure_keys_creates_one_current_and_one_next(backend: Backend) {
    let db = TestDb::new(backend).await;
    let s = db.store().await;
    let kek = Kek::from_bytes(&[1; 32]);
    let (a, b) = (new_key(&kek), new_key(&kek));
    let changed = s.ensure_keys(&a, &b, 100).await.unwrap();
    assert_eq!(
        changed,
        vec![a.public_jwk.kid.clone(), b.public_jwk.kid.clone()]
    );
    // A second call changes nothing.
    let (c, d) = (new_key(&kek), new_key(&kek));
    assert!(s.ensure_keys(&c, &d, 200).await.unwrap().is_empty());
    let keys = s.list_keys().await.unwrap();
    assert_eq!(keys.len(), 2);
    let current = keys.iter().find(|k| k.state == KeyState::Current).unwrap();
    assert_eq!(current.kid, a.public_jwk.kid);
    assert_eq!(current.activated_at, Some(100));
    assert_eq!(current.public_jwk, a.public_jwk);
    assert_eq!(current.private_key.as_ref(), Some(&a.private_key));
    let next = keys.iter().find(|k| k.state == KeyState::Next).unwrap();
    assert_eq!(next.kid, b.public_jwk.kid);
    assert_eq!(next.activated_at, None);
}

async fn racing_replicas_agree_on_one_key_set(backend: Backend) {
    let db = TestDb::new(backend).await;
    let s = db.store().await;
    let kek = Kek::from_bytes(&[2; 32]);
    let mut tasks = Vec::new();
    for _ in 0..6 {
        // Each "replica" has a pool of its own, as separate processes would.
        let url = db.url.clone();
        let (a, b) = (new_key(&kek), new_key(&kek));
        tasks.push(tokio::spawn(async move {
            let store = nomos_issuer::store::open(&url).await.unwrap();
            store.ensure_keys(&a, &b, 10).await.unwrap()
        }));
    }
    let mut inserted = 0;
    for t in tasks {
        inserted += t.await.unwrap().len();
    }
    assert_eq!(inserted, 2, "exactly one replica inserted the key pair");
    let keys = s.list_keys().await.unwrap();
    assert_eq!(keys.len(), 2);
    let states: HashSet<_> = keys.iter().map(|k| k.state).collect();
    assert_eq!(states, HashSet::from([KeyState::Current, KeyState::Next]));
}

async fn ensure_keys_promotes_a_published_next_key(backend: Backend) {
    let db = TestDb::new(backend).await;
    let s = db.store().await;
    let kek = Kek::from_bytes(&[3; 32]);
    let (a, b) = (new_key(&kek), new_key(&kek));
    s.ensure_keys(&a, &b, 10).await.unwrap();
    // Take the current key away behind the store's back (as a revocation would).
    let pool = sqlx_any(&db.url).await;
    sqlx::query("UPDATE signing_keys SET state = 'revoked' WHERE state = 'current'")
        .execute(&pool)
        .await
        .unwrap();
    let (c, d) = (new_key(&kek), new_key(&kek));
    let changed = s.ensure_keys(&c, &d, 20).await.unwrap();
    assert_eq!(
        changed,
        vec![b.public_jwk.kid.clone(), d.public_jwk.kid.clone()]
    );
    let keys = s.list_keys().await.unwrap();
    let current = keys.iter().find(|k| k.state == KeyState::Current).unwrap();
    assert_eq!(
        current.kid, b.public_jwk.kid,
        "the already published key signs, not a fresh one"
    );
    // The database itself refuses a second current key.
    let second = sqlx::query("UPDATE signing_keys SET state = 'current' WHERE state = 'next'")
        .execute(&pool)
        .await;
    assert!(second.is_err());
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
    let key = NewKey {
        alg: Alg::ES256,
        private_key: kek.wrap(&g.public.kid, Alg::ES256, &g.private),
        public_jwk: g.public.clone(),
    };
    s.ensure_keys(&key, &new_key(&kek), 1).await.unwrap();
    // A dump of the table holds no private key material in clear.
    let pool = sqlx_any(&db.url).await;
    let rows: Vec<(Vec<u8>, String)> =
        sqlx::query_as("SELECT private_key, public_jwk FROM signing_keys")
            .fetch_all(&pool)
            .await
            .unwrap();
    let der = &g.private.0;
    // The 32-byte private scalar sits inside the PKCS#8 document; look for any 16-byte window of it.
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

async fn audit_batches_round_trip(backend: Backend) {
    let db = TestDb::new(backend).await;
    let s = db.store().await;
    s.record_tokens(&[]).await.unwrap();
    let batch: Vec<_> = (0..nomos_issuer::audit::MAX_BATCH)
        .map(|i| record(&format!("j{i}"), (i % 2 == 0).then_some("a")))
        .collect();
    s.record_tokens(&batch).await.unwrap();
    assert_eq!(s.count_tokens().await.unwrap(), batch.len() as i64);
    assert_eq!(s.token("j0").await.unwrap().unwrap(), batch[0]);
    assert_eq!(s.token("j1").await.unwrap().unwrap(), batch[1]);
    assert!(s.token("nope").await.unwrap().is_none());
    // A duplicate jti fails the whole batch: nothing half-written.
    let bad = vec![record("fresh", None), record("j0", None)];
    assert!(s.record_tokens(&bad).await.is_err());
    assert!(s.token("fresh").await.unwrap().is_none());
}

async fn assertion_ids_are_claimed_once(backend: Backend) {
    let db = TestDb::new(backend).await;
    let s = db.store().await;
    assert!(s.claim_assertion_jti("org/a", "j", 100).await.unwrap());
    assert!(!s.claim_assertion_jti("org/a", "j", 100).await.unwrap());
    assert!(
        s.claim_assertion_jti("org/b", "j", 100).await.unwrap(),
        "per client"
    );
    assert!(s.claim_assertion_jti("org/a", "k", 300).await.unwrap());
    assert_eq!(s.purge_assertion_jtis(200).await.unwrap(), 2);
    assert!(
        !s.claim_assertion_jti("org/a", "k", 300).await.unwrap(),
        "unexpired ids stay"
    );
}
