//! One conformance suite for every store backend: Postgres and embedded SQLite.

use crate::common;

use std::sync::Arc;

use common::*;
use nomos_issuer::audit::decision::{Decision, DecisionKind, DecisionRecord, Reason};
use nomos_issuer::audit::{AssertionClaim, AuditRecord, Issued};
use nomos_issuer::ids::{AgentId, Audience, OrgId, Subject};
use nomos_issuer::key_manager::{KeyManager, Outcome};
use nomos_issuer::keys::PublicJwk;
use nomos_issuer::keys::keyring::{Endpoints, fingerprint};
use nomos_issuer::keys::rotation::{Policy, Request, Transition, apply};
use nomos_issuer::keys::{Alg, Kek, KekSet, KeyState, StoredKey, signer};
use nomos_issuer::principal::{
    ClientSecret, Credential, CredentialKind, OrgPolicy, PolicyChange, Principal, random_id,
};
use nomos_issuer::store::{
    AdminToken, AgentInfo, AuditQuery, CredentialInfo, DecisionQuery, MAX_ACTIVE_SECRETS, OrgInfo,
    StoreError,
};

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
    orgs_are_listed_in_id_order_and_paged,
    agents_are_listed_per_org,
    credentials_are_added_and_revoked_within_the_secret_limit,
    racing_secret_additions_stay_within_the_limit,
    audit_queries_filter_order_and_page,
    audit_cursor_pages_through_ties_exactly_once,
    purge_removes_exactly_the_older_tokens,
    purge_goes_through_every_batch,
    admin_tokens_are_looked_up_listed_and_revoked,
    expired_admin_tokens_are_refused_like_revoked_ones,
    org_policies_are_updated_part_by_part,
    concurrent_updates_of_different_parts_both_take_effect,
    pool_stats_describe_the_pools,
    the_principal_cache_shares_policies_and_drops_what_changed,
    concurrent_writers_all_succeed,
    a_follower_sees_a_change_that_commits_after_a_later_one,
    a_follower_sees_every_change_of_concurrent_writers,
    decisions_round_trip_filter_order_and_page,
    decision_purge_removes_exactly_the_older_records,
    revoked_credentials_are_told_apart_from_active_ones,
);

/// What a principal holds: its secret hashes and its public keys, in order.
fn active(p: &Principal) -> (Vec<[u8; 32]>, Vec<PublicJwk>) {
    (p.secret_hashes().to_vec(), p.public_keys().to_vec())
}

/// What a principal with these active credentials should hold.
fn holding(creds: &[&Credential]) -> (Vec<[u8; 32]>, Vec<PublicJwk>) {
    let (mut secrets, mut keys) = (Vec::new(), Vec::new());
    for c in creds {
        match &c.kind {
            CredentialKind::Secret { hash } => secrets.push(*hash),
            CredentialKind::PublicKeys(k) => keys.extend(k.iter().cloned()),
        }
    }
    (secrets, keys)
}

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
        8,
        "init, session claims, principal changes, admin tokens, change log order, decision records, admin token expiry, served issuer"
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
    assert_eq!(*p.policy, policy);
    assert_eq!(active(&p), holding(&[&cred]));
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
    assert_eq!(*p.policy, policy, "an agent carries its org's policy");
    assert_eq!(active(&p), holding(&[&key_cred]));
    assert_eq!(p.public_keys().len(), 1);
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
    assert!(matches!(r, Err(StoreError::Unavailable(_))), "{r:?}");
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

fn sub(s: &str) -> Subject {
    Subject::parse(s).unwrap()
}

fn org_policy(audience: &str, max_ttl: u32) -> OrgPolicy {
    OrgPolicy {
        audiences: vec![Audience::sts(), Audience::parse(audience).unwrap()],
        max_ttl,
    }
}

async fn orgs_are_listed_in_id_order_and_paged(backend: Backend) {
    let db = TestDb::new(backend).await;
    let s = db.store().await;
    assert!(s.list_orgs(None, 10).await.unwrap().is_empty());
    // Created out of id order, each with a policy and creation time of its own.
    let mut expected = Vec::new();
    for (i, id) in ["delta", "alpha", "echo9", "bravo", "charlie-2"]
        .into_iter()
        .enumerate()
    {
        let info = OrgInfo {
            id: org(id),
            policy: org_policy(&format!("https://{id}.example"), 100 + i as u32),
            created_at: 1000 + i as i64,
        };
        s.create_org(&info.id, &info.policy, &secret_cred(), info.created_at)
            .await
            .unwrap();
        expected.push(info);
    }
    // An agent is not an org.
    s.create_agent(&org("delta"), &agent("alpha"), &secret_cred(), 1)
        .await
        .unwrap();
    expected.sort_by(|a, b| a.id.cmp(&b.id));
    let ids = |v: &[OrgInfo]| v.iter().map(|o| o.id.to_string()).collect::<Vec<_>>();
    assert_eq!(
        ids(&expected),
        ["alpha", "bravo", "charlie-2", "delta", "echo9"]
    );

    assert_eq!(s.list_orgs(None, 2).await.unwrap(), expected[..2]);
    assert_eq!(s.list_orgs(None, 100).await.unwrap(), expected);
    assert!(s.list_orgs(None, 0).await.unwrap().is_empty());

    // Paging with the last id of each page visits every org once, in order.
    let mut walked = Vec::new();
    let mut sizes = Vec::new();
    let mut after: Option<OrgId> = None;
    loop {
        let page = s.list_orgs(after.as_ref(), 2).await.unwrap();
        assert!(page.len() <= 2, "{page:?}");
        if page.is_empty() {
            break;
        }
        sizes.push(page.len());
        after = Some(page.last().unwrap().id.clone());
        walked.extend(page);
        assert!(sizes.len() <= 5, "paging does not end: {sizes:?}");
    }
    assert_eq!(sizes, [2, 2, 1]);
    assert_eq!(walked, expected);

    // `after` need not name an existing org.
    assert_eq!(
        ids(&s.list_orgs(Some(&org("b")), 100).await.unwrap()),
        ["bravo", "charlie-2", "delta", "echo9"]
    );
    assert_eq!(
        ids(&s.list_orgs(Some(&org("bravo")), 2).await.unwrap()),
        ["charlie-2", "delta"]
    );
    assert!(
        s.list_orgs(Some(&org("echo9")), 10)
            .await
            .unwrap()
            .is_empty()
    );

    for info in &expected {
        assert_eq!(s.org(&info.id).await.unwrap().as_ref(), Some(info));
    }
    let delta = s.org(&org("delta")).await.unwrap().unwrap();
    assert_eq!(delta.created_at, 1000);
    assert_eq!(delta.policy, org_policy("https://delta.example", 100));
    assert!(s.org(&org("zulu")).await.unwrap().is_none());
}

async fn agents_are_listed_per_org(backend: Backend) {
    let db = TestDb::new(backend).await;
    let s = db.store().await;
    assert!(s.list_agents(&org("acme")).await.unwrap().is_none());
    s.create_org(&org("acme"), &OrgPolicy::default(), &secret_cred(), 1)
        .await
        .unwrap();
    s.create_org(&org("beta"), &OrgPolicy::default(), &secret_cred(), 1)
        .await
        .unwrap();
    assert_eq!(s.list_agents(&org("acme")).await.unwrap(), Some(vec![]));
    let info = |o: &str, a: &str, at: i64| AgentInfo {
        org: org(o),
        id: agent(a),
        created_at: at,
    };
    // Created out of id order; "ci" exists in both orgs.
    for a in [
        info("acme", "web", 10),
        info("beta", "zeta", 11),
        info("acme", "ci", 12),
        info("beta", "ci", 13),
        info("acme", "batch-1", 14),
    ] {
        s.create_agent(&a.org, &a.id, &secret_cred(), a.created_at)
            .await
            .unwrap();
    }
    assert_eq!(
        s.list_agents(&org("acme")).await.unwrap(),
        Some(vec![
            info("acme", "batch-1", 14),
            info("acme", "ci", 12),
            info("acme", "web", 10),
        ])
    );
    assert_eq!(
        s.list_agents(&org("beta")).await.unwrap(),
        Some(vec![info("beta", "ci", 13), info("beta", "zeta", 11)])
    );
    assert!(s.list_agents(&org("nobody")).await.unwrap().is_none());

    assert_eq!(
        s.agent(&org("acme"), &agent("ci")).await.unwrap(),
        Some(info("acme", "ci", 12))
    );
    assert_eq!(
        s.agent(&org("beta"), &agent("ci")).await.unwrap(),
        Some(info("beta", "ci", 13))
    );
    assert!(
        s.agent(&org("acme"), &agent("zeta"))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        s.agent(&org("nobody"), &agent("ci"))
            .await
            .unwrap()
            .is_none()
    );
}

fn key_credential() -> Credential {
    let jwk = serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"});
    Credential::new(CredentialKind::PublicKeys(vec![
        nomos_issuer::keys::PublicJwk::parse(&jwk).unwrap(),
    ]))
}

fn info(credential: &Credential, created_at: i64, revoked_at: Option<i64>) -> CredentialInfo {
    CredentialInfo {
        credential: credential.clone(),
        created_at,
        revoked_at,
    }
}

async fn credentials_are_added_and_revoked_within_the_secret_limit(backend: Backend) {
    assert_eq!(MAX_ACTIVE_SECRETS, 2);
    let db = TestDb::new(backend).await;
    let s = db.store().await;
    let (acme, ci) = (sub("org/acme"), sub("org/acme/agent/ci"));
    // Unknown subjects have no credentials and take none.
    for unknown in [&acme, &ci] {
        assert!(s.credentials(unknown).await.unwrap().is_none());
        let r = s.add_credential(unknown, &secret_cred(), 1).await;
        assert!(matches!(r, Err(StoreError::NotFound(_))), "{r:?}");
    }
    let (secret1, c1) = Credential::new_secret();
    s.create_org(&org("acme"), &OrgPolicy::default(), &c1, 10)
        .await
        .unwrap();
    let k1 = key_credential();
    s.create_agent(&org("acme"), &agent("ci"), &k1, 11)
        .await
        .unwrap();
    assert_eq!(
        s.credentials(&acme).await.unwrap(),
        Some(vec![info(&c1, 10, None)])
    );
    // An agent that does not exist, of an org that does.
    let created = s.principal_change_head().await.unwrap();
    let ghost = sub("org/acme/agent/ghost");
    assert!(s.credentials(&ghost).await.unwrap().is_none());
    let r = s.add_credential(&ghost, &secret_cred(), 12).await;
    assert!(matches!(r, Err(StoreError::NotFound(_))), "{r:?}");
    assert_eq!(
        s.principal_change_head().await.unwrap(),
        created,
        "a failure logs nothing"
    );

    // A second secret is accepted and logged as a change of the org.
    let head = s.principal_change_head().await.unwrap();
    let (secret2, c2) = Credential::new_secret();
    s.add_credential(&acme, &c2, 20).await.unwrap();
    let (after_add, changed) = s.principal_changes_since(head).await.unwrap();
    assert_eq!(changed, ["org/acme"]);
    assert!(after_add > head);
    assert_eq!(s.principal_change_head().await.unwrap(), after_add);

    // A third is refused, stores nothing and logs nothing.
    let c3 = secret_cred();
    let r = s.add_credential(&acme, &c3, 21).await;
    assert!(matches!(r, Err(StoreError::Conflict(_))), "{r:?}");
    assert_eq!(s.principal_change_head().await.unwrap(), after_add);
    // Public keys do not count against the secret limit.
    let k2 = key_credential();
    s.add_credential(&acme, &k2, 22).await.unwrap();
    assert_eq!(
        s.credentials(&acme).await.unwrap(),
        Some(vec![
            info(&c1, 10, None),
            info(&c2, 20, None),
            info(&k2, 22, None)
        ])
    );
    let p = s.principal(&acme).await.unwrap().unwrap();
    assert_eq!(active(&p), holding(&[&c1, &c2, &k2]));
    assert!(p.secret_matches(secret1.expose()) && p.secret_matches(secret2.expose()));

    // Revoking keeps the credential listed, with its revocation time, and takes it
    // out of the principal's active credentials.
    let head = s.principal_change_head().await.unwrap();
    s.revoke_credential(&acme, &c1.id, 30).await.unwrap();
    let (after_revoke, changed) = s.principal_changes_since(head).await.unwrap();
    assert_eq!(changed, ["org/acme"]);
    assert!(after_revoke > head);
    assert_eq!(
        s.credentials(&acme).await.unwrap(),
        Some(vec![
            info(&c1, 10, Some(30)),
            info(&c2, 20, None),
            info(&k2, 22, None)
        ])
    );
    let p = s.principal(&acme).await.unwrap().unwrap();
    assert_eq!(active(&p), holding(&[&c2, &k2]));
    assert!(!p.secret_matches(secret1.expose()));
    assert!(p.secret_matches(secret2.expose()));

    // Revoking an unknown, already revoked or other subject's credential fails,
    // changes nothing and logs nothing.
    for (subject, id) in [
        (&acme, c1.id.as_str()),
        (&acme, "cred_unknown"),
        (&acme, k1.id.as_str()),
        (&ci, c2.id.as_str()),
        (&sub("org/nobody"), c2.id.as_str()),
    ] {
        let r = s.revoke_credential(subject, id, 31).await;
        assert!(
            matches!(r, Err(StoreError::NotFound(_))),
            "{subject} {id}: {r:?}"
        );
    }
    assert_eq!(s.principal_change_head().await.unwrap(), after_revoke);
    assert_eq!(
        s.credentials(&acme).await.unwrap().unwrap()[0],
        info(&c1, 10, Some(30)),
        "a second revocation does not move the revocation time"
    );
    assert_eq!(
        active(&s.principal(&ci).await.unwrap().unwrap()),
        holding(&[&k1])
    );

    // With one secret revoked there is room for another, and then none again.
    let c4 = secret_cred();
    s.add_credential(&acme, &c4, 40).await.unwrap();
    let r = s.add_credential(&acme, &secret_cred(), 41).await;
    assert!(matches!(r, Err(StoreError::Conflict(_))), "{r:?}");
    // Public keys can be revoked too.
    s.revoke_credential(&acme, &k2.id, 42).await.unwrap();
    assert_eq!(
        s.credentials(&acme).await.unwrap(),
        Some(vec![
            info(&c1, 10, Some(30)),
            info(&c2, 20, None),
            info(&k2, 22, Some(42)),
            info(&c4, 40, None),
        ])
    );

    // The agent's credentials are its own: its org's secrets neither show nor count.
    assert_eq!(
        s.credentials(&ci).await.unwrap(),
        Some(vec![info(&k1, 11, None)])
    );
    let (a1, a2) = (secret_cred(), secret_cred());
    s.add_credential(&ci, &a1, 50).await.unwrap();
    s.add_credential(&ci, &a2, 51).await.unwrap();
    let r = s.add_credential(&ci, &secret_cred(), 52).await;
    assert!(matches!(r, Err(StoreError::Conflict(_))), "{r:?}");
    assert_eq!(
        s.credentials(&ci).await.unwrap(),
        Some(vec![
            info(&k1, 11, None),
            info(&a1, 50, None),
            info(&a2, 51, None)
        ])
    );
    assert_eq!(s.credentials(&acme).await.unwrap().unwrap().len(), 4);
    assert_eq!(
        active(&s.principal(&acme).await.unwrap().unwrap()),
        holding(&[&c2, &c4])
    );
}

async fn racing_secret_additions_stay_within_the_limit(backend: Backend) {
    let db = TestDb::new(backend).await;
    let s = db.store().await;
    let acme = sub("org/acme");
    let first = secret_cred();
    s.create_org(&org("acme"), &OrgPolicy::default(), &first, 1)
        .await
        .unwrap();
    let mut revoke = first.id.clone();
    for round in 0..3 {
        // One active secret: of eight racing additions exactly one fits.
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let (s, acme) = (s.clone(), acme.clone());
            tasks.push(tokio::spawn(async move {
                let c = secret_cred();
                s.add_credential(&acme, &c, 10 + round).await.map(|()| c.id)
            }));
        }
        let mut added = Vec::new();
        for t in tasks {
            match t.await.unwrap() {
                Ok(id) => added.push(id),
                Err(StoreError::Conflict(_)) => {}
                Err(e) => panic!("round {round}: {e:?}"),
            }
        }
        assert_eq!(added.len(), 1, "round {round}");
        let p = s.principal(&acme).await.unwrap().unwrap();
        assert_eq!(p.secret_hashes().len(), MAX_ACTIVE_SECRETS, "round {round}");
        s.revoke_credential(&acme, &revoke, 20 + round)
            .await
            .unwrap();
        revoke = added.pop().unwrap();
    }
}

fn rec(jti: &str, org: &str, agent: Option<&str>, iat: i64) -> AuditRecord {
    AuditRecord {
        jti: jti.into(),
        subject: match agent {
            Some(a) => format!("org/{org}/agent/{a}"),
            None => format!("org/{org}"),
        },
        org_id: org.into(),
        agent_id: agent.map(str::to_owned),
        audience: "sts.amazonaws.com".into(),
        kid: "kid".into(),
        iat,
        exp: iat + 300,
        auth_method: "client_secret_basic".into(),
    }
}

/// Tokens of two orgs whose agents share an id, with ties on `iat` (the jtis sort
/// the same under any collation).
fn audit_fixture() -> Vec<AuditRecord> {
    vec![
        rec("a3", "acme", Some("ci"), 200),
        rec("a1", "acme", None, 100),
        rec("b2", "beta", None, 300),
        rec("a5", "acme", Some("ci"), 300),
        rec("a2", "acme", Some("ci"), 100),
        rec("b1", "beta", Some("ci"), 200),
        rec("a6", "acme", Some("ci"), 200),
        rec("a4", "acme", Some("web"), 200),
    ]
}

/// What a query should return, computed from the records themselves.
fn expect(all: &[AuditRecord], q: &AuditQuery) -> Vec<AuditRecord> {
    let mut out: Vec<AuditRecord> = all
        .iter()
        .filter(|r| q.org.as_ref().is_none_or(|o| r.org_id == o.as_str()))
        .filter(|r| {
            q.agent
                .as_ref()
                .is_none_or(|a| r.agent_id.as_deref() == Some(a.as_str()))
        })
        .filter(|r| q.since.is_none_or(|t| r.iat >= t))
        .filter(|r| q.until.is_none_or(|t| r.iat < t))
        .filter(|r| {
            q.before
                .as_ref()
                .is_none_or(|(iat, jti)| (r.iat, r.jti.as_str()) < (*iat, jti.as_str()))
        })
        .cloned()
        .collect();
    out.sort_by(|a, b| (b.iat, &b.jti).cmp(&(a.iat, &a.jti)));
    out.truncate(q.limit as usize);
    out
}

fn jtis(v: &[AuditRecord]) -> Vec<&str> {
    v.iter().map(|r| r.jti.as_str()).collect()
}

/// Walks a query page by page with the cursor of each page's last row.
async fn walk(s: &dyn nomos_issuer::store::Store, q: &AuditQuery) -> Vec<AuditRecord> {
    let mut out: Vec<AuditRecord> = Vec::new();
    let mut q = q.clone();
    for _ in 0..1000 {
        let page = s.query_tokens(&q).await.unwrap();
        assert!(page.len() <= q.limit as usize, "{page:?}");
        let Some(last) = page.last() else {
            return out;
        };
        q.before = Some((last.iat, last.jti.clone()));
        out.extend(page);
    }
    panic!("paging does not end: {}", out.len());
}

async fn audit_queries_filter_order_and_page(backend: Backend) {
    let db = TestDb::new(backend).await;
    let s = db.store().await;
    let all = audit_fixture();
    let q = |f: fn(&mut AuditQuery)| {
        let mut q = AuditQuery {
            limit: 100,
            ..Default::default()
        };
        f(&mut q);
        q
    };
    assert!(s.query_tokens(&q(|_| {})).await.unwrap().is_empty());
    let (first, second) = all.split_at(3);
    for batch in [first, second] {
        let batch: Vec<_> = batch.iter().cloned().map(plain).collect();
        s.record_tokens(&batch).await.unwrap();
    }

    // Spelled out once, so that the expectation itself is checked.
    assert_eq!(
        jtis(&s.query_tokens(&q(|_| {})).await.unwrap()),
        ["b2", "a5", "b1", "a6", "a4", "a3", "a2", "a1"]
    );
    assert_eq!(
        jtis(
            &s.query_tokens(&q(|q| {
                q.org = Some(org("acme"));
                q.agent = Some(agent("ci"));
            }))
            .await
            .unwrap()
        ),
        ["a5", "a6", "a3", "a2"]
    );

    let queries = [
        q(|_| {}),
        q(|q| q.org = Some(org("acme"))),
        q(|q| q.org = Some(org("beta"))),
        q(|q| q.org = Some(org("nobody"))),
        q(|q| {
            q.org = Some(org("acme"));
            q.agent = Some(agent("ci"));
        }),
        q(|q| {
            q.org = Some(org("beta"));
            q.agent = Some(agent("ci"));
        }),
        q(|q| {
            q.org = Some(org("acme"));
            q.agent = Some(agent("nobody"));
        }),
        q(|q| q.since = Some(200)),
        q(|q| q.since = Some(201)),
        q(|q| q.until = Some(200)),
        q(|q| q.until = Some(300)),
        q(|q| {
            q.since = Some(200);
            q.until = Some(300);
        }),
        q(|q| {
            q.since = Some(200);
            q.until = Some(200);
        }),
        q(|q| {
            q.org = Some(org("acme"));
            q.since = Some(100);
            q.until = Some(201);
        }),
        q(|q| q.before = Some((200, "a5".into()))),
        q(|q| q.before = Some((200, "a4".into()))),
        q(|q| q.before = Some((100, "a1".into()))),
        q(|q| {
            q.org = Some(org("acme"));
            q.agent = Some(agent("ci"));
            q.before = Some((300, "a5".into()));
        }),
        q(|q| q.limit = 3),
        q(|q| q.limit = 0),
    ];
    for query in &queries {
        let got = s.query_tokens(query).await.unwrap();
        assert_eq!(got, expect(&all, query), "{query:?}");
        // Every page size walks the same records in the same order, once each.
        for limit in [1, 2, 3, 100] {
            if query.limit == 0 {
                continue;
            }
            let paged = AuditQuery {
                limit,
                ..query.clone()
            };
            let unpaged = AuditQuery {
                limit: 100,
                ..query.clone()
            };
            assert_eq!(
                walk(s.as_ref(), &paged).await,
                expect(&all, &unpaged),
                "{paged:?}"
            );
        }
    }
    // Nothing is lost or repeated over a whole walk.
    let everything = walk(
        s.as_ref(),
        &AuditQuery {
            limit: 3,
            ..Default::default()
        },
    )
    .await;
    let mut seen = jtis(&everything);
    seen.sort();
    assert_eq!(seen, ["a1", "a2", "a3", "a4", "a5", "a6", "b1", "b2"]);
}

async fn audit_cursor_pages_through_ties_exactly_once(backend: Backend) {
    let db = TestDb::new(backend).await;
    let s = db.store().await;
    // Real jtis, mostly sharing one iat: the cursor must break ties by jti in the
    // database's own order (whatever its collation).
    let all: Vec<AuditRecord> = (0..40)
        .map(|i| {
            let iat = if i % 8 == 0 { 500 + i } else { 500 };
            rec(&random_id("", 16), "acme", Some("ci"), iat)
        })
        .collect();
    s.record_tokens(&all.iter().cloned().map(plain).collect::<Vec<_>>())
        .await
        .unwrap();
    for limit in [1, 3, 7, 40] {
        let got = walk(
            s.as_ref(),
            &AuditQuery {
                org: Some(org("acme")),
                limit,
                ..Default::default()
            },
        )
        .await;
        assert_eq!(got.len(), all.len(), "limit {limit}");
        assert!(got.windows(2).all(|w| w[0].iat >= w[1].iat), "newest first");
        let mut got_jtis = jtis(&got);
        got_jtis.sort();
        got_jtis.dedup();
        let mut want = jtis(&all);
        want.sort();
        assert_eq!(got_jtis, want, "limit {limit}: every record exactly once");
    }
}

async fn purge_removes_exactly_the_older_tokens(backend: Backend) {
    let db = TestDb::new(backend).await;
    let s = db.store().await;
    let all = audit_fixture();
    s.record_tokens(&all.iter().cloned().map(plain).collect::<Vec<_>>())
        .await
        .unwrap();
    let everything = AuditQuery {
        limit: 100,
        ..Default::default()
    };
    assert_eq!(s.purge_tokens(100).await.unwrap(), 0, "iat < 100: none");
    assert_eq!(s.count_tokens().await.unwrap(), 8);
    let mut left = all.clone();
    for (before, gone) in [(200, 2), (200, 0), (201, 4), (300, 0), (301, 2)] {
        assert_eq!(
            s.purge_tokens(before).await.unwrap(),
            gone,
            "before {before}"
        );
        left.retain(|r| r.iat >= before);
        assert_eq!(s.count_tokens().await.unwrap(), left.len() as i64);
        assert_eq!(
            s.query_tokens(&everything).await.unwrap(),
            expect(&left, &everything)
        );
        for r in &all {
            assert_eq!(
                s.token(&r.jti).await.unwrap().is_some(),
                r.iat >= before,
                "{} after purging before {before}",
                r.jti
            );
        }
    }
    assert_eq!(s.count_tokens().await.unwrap(), 0);
}

async fn purge_goes_through_every_batch(backend: Backend) {
    let db = TestDb::new(backend).await;
    let s = db.store().await;
    // More old tokens than one purge batch (10000) holds, and a few to keep.
    let old = 10_000 + 57;
    let records: Vec<Issued> = (0..old)
        .map(|i| plain(rec(&format!("old{i}"), "acme", None, 1 + (i as i64 % 999))))
        .chain((0..5).map(|i| plain(rec(&format!("new{i}"), "acme", None, 1000 + i))))
        .collect();
    for batch in records.chunks(nomos_issuer::audit::MAX_BATCH) {
        s.record_tokens(batch).await.unwrap();
    }
    assert_eq!(s.count_tokens().await.unwrap(), old as i64 + 5);
    assert_eq!(s.purge_tokens(1000).await.unwrap(), old as u64);
    assert_eq!(s.count_tokens().await.unwrap(), 5);
    assert_eq!(s.purge_tokens(1000).await.unwrap(), 0);
    assert!(s.token("new0").await.unwrap().is_some());
}

async fn admin_tokens_are_looked_up_listed_and_revoked(backend: Backend) {
    let db = TestDb::new(backend).await;
    let s = db.store().await;
    assert!(s.list_admin_tokens().await.unwrap().is_empty());
    let hash = || ClientSecret::generate().hash();
    // Ids sort the other way round from creation.
    let t1 = AdminToken {
        id: "adm_z".into(),
        name: "deploy pipeline".into(),
        created_at: 100,
        revoked_at: None,
        expires_at: None,
    };
    let t2 = AdminToken {
        id: "adm_a".into(),
        name: "operator".into(),
        created_at: 200,
        revoked_at: None,
        expires_at: Some(10_000),
    };
    let (h1, h2) = (hash(), hash());
    s.create_admin_token(&t1, &h1).await.unwrap();
    s.create_admin_token(&t2, &h2).await.unwrap();
    assert_eq!(
        s.admin_token_by_hash(&h1, 300).await.unwrap(),
        Some(t1.clone())
    );
    assert_eq!(
        s.admin_token_by_hash(&h2, 300).await.unwrap(),
        Some(t2.clone())
    );
    assert!(s.admin_token_by_hash(&hash(), 300).await.unwrap().is_none());
    assert!(
        s.admin_token_by_hash(&[0; 32], 300)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        s.list_admin_tokens().await.unwrap(),
        vec![t1.clone(), t2.clone()]
    );

    // An id or a hash in use is refused, and nothing is stored.
    let dup_id = AdminToken {
        name: "again".into(),
        created_at: 300,
        ..t1.clone()
    };
    let r = s.create_admin_token(&dup_id, &hash()).await;
    assert!(matches!(r, Err(StoreError::Conflict(_))), "{r:?}");
    let dup_hash = AdminToken {
        id: "adm_m".into(),
        ..dup_id.clone()
    };
    let r = s.create_admin_token(&dup_hash, &h2).await;
    assert!(matches!(r, Err(StoreError::Conflict(_))), "{r:?}");
    assert_eq!(
        s.admin_token_by_hash(&h2, 300).await.unwrap(),
        Some(t2.clone())
    );
    assert_eq!(s.list_admin_tokens().await.unwrap().len(), 2);

    s.revoke_admin_token(&t1.id, 400).await.unwrap();
    assert!(s.admin_token_by_hash(&h1, 300).await.unwrap().is_none());
    assert_eq!(
        s.admin_token_by_hash(&h2, 300).await.unwrap(),
        Some(t2.clone())
    );
    let revoked = AdminToken {
        revoked_at: Some(400),
        ..t1.clone()
    };
    assert_eq!(
        s.list_admin_tokens().await.unwrap(),
        vec![revoked.clone(), t2.clone()]
    );
    for id in [t1.id.as_str(), "adm_missing"] {
        let r = s.revoke_admin_token(id, 500).await;
        assert!(matches!(r, Err(StoreError::NotFound(_))), "{id}: {r:?}");
    }
    assert_eq!(
        s.list_admin_tokens().await.unwrap(),
        vec![revoked, t2],
        "a failed revocation changes nothing"
    );
}

async fn expired_admin_tokens_are_refused_like_revoked_ones(backend: Backend) {
    let db = TestDb::new(backend).await;
    let s = db.store().await;
    let t = AdminToken {
        id: "adm_ci".into(),
        name: "ci".into(),
        created_at: 100,
        revoked_at: None,
        expires_at: Some(200),
    };
    let h = ClientSecret::generate().hash();
    s.create_admin_token(&t, &h).await.unwrap();
    assert_eq!(
        s.admin_token_by_hash(&h, 199).await.unwrap(),
        Some(t.clone())
    );
    for now in [200, 201, 10_000] {
        assert!(
            s.admin_token_by_hash(&h, now).await.unwrap().is_none(),
            "{now}"
        );
    }
    // Still listed, with its expiry; and it can still be revoked.
    assert_eq!(s.list_admin_tokens().await.unwrap(), vec![t.clone()]);
    s.revoke_admin_token(&t.id, 300).await.unwrap();
    assert!(s.admin_token_by_hash(&h, 150).await.unwrap().is_none());
}

fn change(audiences: Option<&[&str]>, max_ttl: Option<u32>) -> PolicyChange {
    let audiences = audiences.map(|a| a.iter().map(|a| Audience::parse(a).unwrap()).collect());
    PolicyChange::new(audiences, max_ttl).unwrap().unwrap()
}

async fn org_policies_are_updated_part_by_part(backend: Backend) {
    let db = TestDb::new(backend).await;
    let s = db.store().await;
    s.create_org(
        &org("acme"),
        &org_policy("api.example", 600),
        &secret_cred(),
        7,
    )
    .await
    .unwrap();
    s.create_org(&org("beta"), &OrgPolicy::default(), &secret_cred(), 8)
        .await
        .unwrap();
    let head = s.principal_change_head().await.unwrap();
    let aud = |a: &str| Audience::parse(a).unwrap();

    let info = s
        .update_org(&org("acme"), &change(Some(&["api.example"]), None))
        .await
        .unwrap();
    assert_eq!(info.policy.audiences, [aud("api.example")]);
    assert_eq!(
        (info.policy.max_ttl, info.created_at),
        (600, 7),
        "the rest is kept"
    );
    let info = s
        .update_org(&org("acme"), &change(None, Some(60)))
        .await
        .unwrap();
    assert_eq!(
        info.policy,
        OrgPolicy::new(vec![aud("api.example")], 60).unwrap()
    );
    assert_eq!(s.org(&org("acme")).await.unwrap(), Some(info.clone()));
    let principal = s.principal(&sub("org/acme")).await.unwrap().unwrap();
    assert_eq!(*principal.policy, info.policy, "tokens see the new policy");
    let both = change(Some(&["a", "b"]), Some(3600));
    let info = s.update_org(&org("acme"), &both).await.unwrap();
    assert_eq!(
        info.policy,
        OrgPolicy::new(vec![aud("a"), aud("b")], 3600).unwrap()
    );
    assert_eq!(
        s.org(&org("beta")).await.unwrap().unwrap().policy,
        OrgPolicy::default(),
        "other orgs keep theirs"
    );
    // Each update is logged for the org (and so for its agents).
    let (_, changed) = s.principal_changes_since(head).await.unwrap();
    assert_eq!(changed, ["org/acme"; 3]);

    let r = s.update_org(&org("ghost"), &both).await;
    assert!(matches!(r, Err(StoreError::NotFound(_))), "{r:?}");
    assert!(s.org(&org("ghost")).await.unwrap().is_none());
    let (_, changed) = s.principal_changes_since(head).await.unwrap();
    assert_eq!(changed.len(), 3, "a failed update logs nothing");
}

async fn concurrent_updates_of_different_parts_both_take_effect(backend: Backend) {
    let db = TestDb::new(backend).await;
    let s = db.store().await;
    s.create_org(&org("acme"), &OrgPolicy::default(), &secret_cred(), 1)
        .await
        .unwrap();
    for round in 0..10u32 {
        let audience = format!("aud-{round}");
        let (acme, audiences, ttl) = (
            org("acme"),
            change(Some(&[audience.as_str()]), None),
            change(None, Some(100 + round)),
        );
        let (a, b) = tokio::join!(s.update_org(&acme, &audiences), s.update_org(&acme, &ttl));
        a.unwrap();
        b.unwrap();
        let policy = s.org(&org("acme")).await.unwrap().unwrap().policy;
        assert_eq!(
            (policy.audiences[0].as_str(), policy.max_ttl),
            (audience.as_str(), 100 + round),
            "round {round}"
        );
    }
}

async fn pool_stats_describe_the_pools(backend: Backend) {
    let db = TestDb::new(backend).await;
    let s = db.store().await;
    s.ping().await.unwrap();
    s.record_tokens(&[plain(rec("j", "acme", None, 1))])
        .await
        .unwrap();
    let stats = s.pool_stats();
    let names: Vec<_> = stats.iter().map(|p| p.name).collect();
    match backend {
        Backend::Postgres => assert_eq!(names, ["main", "audit"]),
        Backend::Sqlite => assert_eq!(names, ["main"]),
    }
    for p in &stats {
        assert!(p.idle <= p.size && p.size <= p.max, "{p:?}");
        assert!(p.size >= 1, "{p:?} has served a query");
    }
}

async fn the_principal_cache_shares_policies_and_drops_what_changed(backend: Backend) {
    use nomos_issuer::oauth::principals::PrincipalCache;
    let db = TestDb::new(backend).await;
    let s = db.store().await;
    let strict = org_policy("https://strict.example", 60);
    s.create_org(&org("acme"), &OrgPolicy::default(), &secret_cred(), 1)
        .await
        .unwrap();
    s.create_org(&org("beta"), &OrgPolicy::default(), &secret_cred(), 1)
        .await
        .unwrap();
    s.create_org(&org("gamma"), &strict, &secret_cred(), 1)
        .await
        .unwrap();
    for a in ["a", "b"] {
        s.create_agent(&org("acme"), &agent(a), &secret_cred(), 2)
            .await
            .unwrap();
    }
    let cache = PrincipalCache::new(s.clone(), std::time::Duration::from_secs(600));
    let get = |subject: &'static str| {
        let cache = &cache;
        async move { cache.get(&sub(subject)).await.unwrap().unwrap() }
    };
    let (a, b, beta, gamma) = (
        get("org/acme/agent/a").await,
        get("org/acme/agent/b").await,
        get("org/beta").await,
        get("org/gamma").await,
    );
    assert!(Arc::ptr_eq(&a.policy, &b.policy), "one org, one policy");
    assert!(Arc::ptr_eq(&a.policy, &beta.policy), "equal policies share");
    assert!(!Arc::ptr_eq(&a.policy, &gamma.policy));
    assert_eq!(*gamma.policy, strict);
    assert!(
        Arc::ptr_eq(&a, &get("org/acme/agent/a").await),
        "served from the cache"
    );
    assert!(
        cache
            .get(&sub("org/acme/agent/ghost"))
            .await
            .unwrap()
            .is_none()
    );

    // A new secret is seen once the change is noted; the other agent stays cached.
    let (secret, cred) = Credential::new_secret();
    s.add_credential(&sub("org/acme/agent/a"), &cred, 3)
        .await
        .unwrap();
    assert!(
        !get("org/acme/agent/a")
            .await
            .secret_matches(secret.expose())
    );
    cache.invalidate("org/acme/agent/a");
    let fresh = get("org/acme/agent/a").await;
    assert!(fresh.secret_matches(secret.expose()));
    assert!(
        Arc::ptr_eq(&fresh.policy, &b.policy),
        "the reload shares the policy"
    );
    assert!(Arc::ptr_eq(&b, &get("org/acme/agent/b").await));
    // An org subject drops the org and all its agents.
    cache.invalidate("org/acme");
    assert!(!Arc::ptr_eq(&b, &get("org/acme/agent/b").await));
}

async fn concurrent_writers_all_succeed(backend: Backend) {
    // Writes that read first (an org's existence, the secret limit) race with
    // other writers: none may fail for a lock another connection holds briefly.
    let db = TestDb::new(backend).await;
    let s = db.store().await;
    let mut tasks = Vec::new();
    for t in 0..8 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..10 {
                let o = org(&format!("o{t}-{i}"));
                s.create_org(&o, &OrgPolicy::default(), &secret_cred(), 1)
                    .await?;
                s.create_agent(&o, &agent("a"), &secret_cred(), 1).await?;
                s.add_credential(&sub(&format!("org/o{t}-{i}/agent/a")), &secret_cred(), 2)
                    .await?;
                s.record_tokens(&[claimed(
                    &format!("t{t}-{i}"),
                    "org/x",
                    &format!("j{t}-{i}"),
                    100,
                )])
                .await?;
            }
            Ok::<_, StoreError>(())
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(s.list_orgs(None, 1000).await.unwrap().len(), 80);
}

/// A change whose transaction began first but commits last is still seen by
/// a replica that polled in between (on Postgres a sequence number is taken
/// at insert, not at commit).
async fn a_follower_sees_a_change_that_commits_after_a_later_one(backend: Backend) {
    let db = TestDb::new(backend).await;
    let s = db.store().await;
    s.create_org(&org("acme"), &OrgPolicy::default(), &secret_cred(), 1)
        .await
        .unwrap();
    let last = s.principal_change_head().await.unwrap();
    // Another writer's transaction notes a change and stays open.
    let raw = sqlx_any(&db.url).await;
    let mut slow = raw.begin().await.unwrap();
    sqlx::query("INSERT INTO principal_changes (subject, changed_at) VALUES ('org/slow', 0)")
        .execute(&mut *slow)
        .await
        .unwrap();
    // Meanwhile the store makes a change of its own...
    let writer = tokio::spawn({
        let s = s.clone();
        async move { s.add_credential(&sub("org/acme"), &secret_cred(), 2).await }
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    // ...and a replica polls the log.
    let (last, subjects) = s.principal_changes_since(last).await.unwrap();
    let mut seen: std::collections::HashSet<String> = subjects.into_iter().collect();
    slow.commit().await.unwrap();
    writer.await.unwrap().unwrap();
    let (_, subjects) = s.principal_changes_since(last).await.unwrap();
    seen.extend(subjects);
    assert!(seen.contains("org/slow"), "a change was missed: {seen:?}");
    assert!(seen.contains("org/acme"), "{seen:?}");
}

/// Eight writers change principals while a replica polls the log without
/// pause: at the end it has seen every change.
async fn a_follower_sees_every_change_of_concurrent_writers(backend: Backend) {
    let db = TestDb::new(backend).await;
    let s = db.store().await;
    for t in 0..8 {
        s.create_org(
            &org(&format!("w{t}")),
            &OrgPolicy::default(),
            &secret_cred(),
            1,
        )
        .await
        .unwrap();
    }
    let start = s.principal_change_head().await.unwrap();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let follower = tokio::spawn({
        let (s, done) = (s.clone(), done.clone());
        async move {
            let (mut last, mut seen) = (start, Vec::new());
            loop {
                let finished = done.load(std::sync::atomic::Ordering::SeqCst);
                let (l, subjects) = s.principal_changes_since(last).await.unwrap();
                last = l;
                seen.extend(subjects);
                if finished {
                    return seen;
                }
            }
        }
    });
    let mut writers = Vec::new();
    for t in 0..8 {
        let s = s.clone();
        writers.push(tokio::spawn(async move {
            let subject = sub(&format!("org/w{t}"));
            for _ in 0..10 {
                let c = secret_cred();
                s.add_credential(&subject, &c, 2).await.unwrap();
                s.revoke_credential(&subject, &c.id, 3).await.unwrap();
            }
        }));
    }
    for w in writers {
        w.await.unwrap();
    }
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let seen = follower.await.unwrap();
    for t in 0..8 {
        let n = seen.iter().filter(|x| **x == format!("org/w{t}")).count();
        assert_eq!(n, 20, "org/w{t}: {n} of 20 changes seen");
    }
}

/// The store's `Debug` never shows the database password of its URL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_debug_hides_the_database_password() {
    let db = TestDb::new(Backend::Postgres).await;
    // The test cluster trusts local connections: any password is accepted.
    let url = db
        .url
        .replacen("postgres://postgres@", "postgres://postgres:pw-7f3a9c@", 1);
    assert_ne!(url, db.url);
    let store = nomos_issuer::store::SqlStore::connect(&url).await.unwrap();
    let shown = format!("{store:?}");
    assert!(!shown.contains("pw-7f3a9c"), "{shown}");
    assert!(shown.contains("Postgres"), "{shown}");
}

/// A refusal of `client` (a malformed one is recorded without it) at `at`.
fn refusal(client: &str, reason: Reason, at: i64, request_id: &str) -> Decision {
    Decision {
        at,
        kind: DecisionKind::Authentication,
        client_id: Subject::parse(client).ok(),
        reason,
        auth_method: Some("client_secret_basic"),
        source: Some("192.0.2.7".parse().unwrap()),
        request_id: Some(request_id.into()),
        evidence: None,
    }
}

fn decision_fixture() -> Vec<Decision> {
    vec![
        refusal("org/acme", Reason::WrongSecret, 100, "r1"),
        refusal("org/acme/agent/ci", Reason::UnknownClient, 200, "r2"),
        refusal("Org/Evil", Reason::MalformedClientId, 200, "r3"),
        refusal("org/beta", Reason::RevokedCredential, 200, "r4"),
        refusal("org/acme/agent/ci", Reason::AssertionExpiry, 300, "r5"),
        refusal("org/acme", Reason::WrongSecret, 300, "r6"),
    ]
}

fn request_ids(v: &[DecisionRecord]) -> Vec<&str> {
    v.iter().map(|r| r.request_id.as_deref().unwrap()).collect()
}

async fn decisions_round_trip_filter_order_and_page(backend: Backend) {
    let db = TestDb::new(backend).await;
    let s = db.store().await;
    let q = |f: fn(&mut DecisionQuery)| {
        let mut q = DecisionQuery {
            limit: 100,
            ..Default::default()
        };
        f(&mut q);
        q
    };
    assert!(s.query_decisions(&q(|_| {})).await.unwrap().is_empty());
    s.record_decisions(&[]).await.unwrap();
    let all = decision_fixture();
    let (first, second) = all.split_at(2);
    s.record_decisions(first).await.unwrap();
    s.record_decisions(second).await.unwrap();

    // Newest first; among records of one second, the later one first.
    let everything = s.query_decisions(&q(|_| {})).await.unwrap();
    assert_eq!(
        request_ids(&everything),
        ["r6", "r5", "r4", "r3", "r2", "r1"]
    );
    let r4 = &everything[2];
    assert_eq!(
        (r4.at, r4.kind.as_str(), r4.reason.as_str()),
        (200, "authentication", "revoked_credential")
    );
    assert_eq!(r4.client_id.as_deref(), Some("org/beta"));
    assert_eq!(r4.org_id.as_deref(), Some("beta"));
    assert_eq!(r4.auth_method.as_deref(), Some("client_secret_basic"));
    assert_eq!(r4.source.as_deref(), Some("192.0.2.7"));
    // A malformed client id is the reason, and is not kept.
    let r3 = &everything[3];
    assert_eq!(r3.reason, "malformed_client_id");
    assert_eq!(
        (r3.client_id.as_deref(), r3.org_id.as_deref()),
        (None, None)
    );

    for (query, want) in [
        (
            q(|q| q.org = Some(org("acme"))),
            vec!["r6", "r5", "r2", "r1"],
        ),
        (q(|q| q.client_id = Some(sub("org/acme"))), vec!["r6", "r1"]),
        (
            q(|q| {
                q.org = Some(org("acme"));
                q.client_id = Some(sub("org/acme/agent/ci"));
            }),
            vec!["r5", "r2"],
        ),
        (q(|q| q.org = Some(org("nobody"))), vec![]),
        (
            q(|q| q.since = Some(200)),
            vec!["r6", "r5", "r4", "r3", "r2"],
        ),
        (q(|q| q.until = Some(300)), vec!["r4", "r3", "r2", "r1"]),
        (
            q(|q| {
                q.since = Some(200);
                q.until = Some(201);
            }),
            vec!["r4", "r3", "r2"],
        ),
        (q(|q| q.limit = 2), vec!["r6", "r5"]),
    ] {
        let got = s.query_decisions(&query).await.unwrap();
        assert_eq!(request_ids(&got), want, "{query:?}");
    }

    // Paging with each page's cursor visits every record once, ties included.
    for limit in 1..=4 {
        let mut query = q(|_| {});
        query.limit = limit;
        let mut seen = Vec::new();
        loop {
            let page = s.query_decisions(&query).await.unwrap();
            seen.extend(page.iter().map(|r| r.request_id.clone().unwrap()));
            match query.next(&page) {
                Some(cursor) => {
                    let (at, id) = cursor.split_once(':').unwrap();
                    query.before = Some((at.parse().unwrap(), id.parse().unwrap()));
                }
                None => break,
            }
        }
        assert_eq!(seen, ["r6", "r5", "r4", "r3", "r2", "r1"], "limit {limit}");
    }
}

async fn decision_purge_removes_exactly_the_older_records(backend: Backend) {
    let db = TestDb::new(backend).await;
    let s = db.store().await;
    s.record_decisions(&decision_fixture()).await.unwrap();
    let everything = DecisionQuery {
        limit: 100,
        ..Default::default()
    };
    for (before, gone, left) in [
        (100, 0, 6),
        (200, 1, 5),
        (200, 0, 5),
        (300, 3, 2),
        (301, 2, 0),
    ] {
        assert_eq!(
            s.purge_decisions_paced(before, 0).await.unwrap(),
            gone,
            "before {before}"
        );
        let rest = s.query_decisions(&everything).await.unwrap();
        assert_eq!(rest.len(), left, "before {before}");
        assert!(rest.iter().all(|r| r.at >= before));
    }
    // One batch deletes at most its limit.
    s.record_decisions(&decision_fixture()).await.unwrap();
    assert_eq!(s.purge_decisions_batch(1000, 4).await.unwrap(), 4);
    assert_eq!(s.query_decisions(&everything).await.unwrap().len(), 2);
}

async fn revoked_credentials_are_told_apart_from_active_ones(backend: Backend) {
    let db = TestDb::new(backend).await;
    let s = db.store().await;
    let (acme, ci, ghost) = (sub("org/acme"), sub("org/acme/agent/ci"), sub("org/ghost"));
    assert!(s.revoked_credentials(&[]).await.unwrap().is_empty());
    let (_, active) = Credential::new_secret();
    s.create_org(&org("acme"), &OrgPolicy::default(), &active, 10)
        .await
        .unwrap();
    let key = key_credential();
    s.create_agent(&org("acme"), &agent("ci"), &key, 11)
        .await
        .unwrap();
    let (_, old) = Credential::new_secret();
    s.add_credential(&acme, &old, 12).await.unwrap();
    assert!(
        s.revoked_credentials(&[acme.clone(), ci.clone()])
            .await
            .unwrap()
            .is_empty(),
        "nothing is revoked yet"
    );
    s.revoke_credential(&acme, &old.id, 13).await.unwrap();
    s.add_credential(&ci, &secret_cred(), 14).await.unwrap();
    s.revoke_credential(&ci, &key.id, 15).await.unwrap();
    let mut got = s
        .revoked_credentials(&[acme.clone(), ci.clone(), ghost])
        .await
        .unwrap();
    got.sort_by_key(|(subject, _)| subject.to_string());
    assert_eq!(got, [(acme.clone(), old.kind), (ci, key.kind)]);
    assert!(
        s.revoked_credentials(&[sub("org/beta")])
            .await
            .unwrap()
            .is_empty()
    );
}

both_backends!(the_served_issuer_is_recorded_and_replaced);

/// `serve` records the issuer it serves under; a later start replaces it.
async fn the_served_issuer_is_recorded_and_replaced(backend: Backend) {
    use nomos_issuer::store::ServedIssuer;
    let db = TestDb::new(backend).await;
    let s = db.store().await;
    assert_eq!(s.served_issuer().await.unwrap(), None);
    let first = ServedIssuer {
        issuer: "https://127.0.0.1:8080".into(),
        dev_tls: true,
        served_at: 10,
    };
    s.record_served_issuer(&first).await.unwrap();
    assert_eq!(s.served_issuer().await.unwrap(), Some(first));
    let second = ServedIssuer {
        issuer: "https://id.example.com".into(),
        dev_tls: false,
        served_at: 20,
    };
    s.record_served_issuer(&second).await.unwrap();
    assert_eq!(s.served_issuer().await.unwrap(), Some(second));
}
