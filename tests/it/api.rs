//! The token endpoint, discovery and JWKS, against a real server on port 0,
//! on Postgres and on the embedded store.

use crate::common;

use std::time::Duration;

use common::*;
use nomos_issuer::ids::Audience;
use nomos_issuer::principal::OrgPolicy;
use serde_json::{Value, json};

both_backends!(
    discovery_and_jwks_are_exact,
    jwks_answers_304_to_its_etag,
    secret_clients_get_contract_tokens,
    agent_tokens_name_the_agent,
    private_key_jwt_works_once_per_assertion,
    bad_assertions_are_invalid_client,
    bad_requests_get_rfc6749_errors,
    oversized_and_odd_bodies_never_5xx,
    audience_must_be_allowed,
    ttl_is_capped_by_the_org,
    tokens_survive_a_restart,
    concurrent_mints_are_all_audited,
    rs256_when_configured,
    independent_verifiers_accept_tokens,
);

async fn discovery_and_jwks_are_exact(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let d = app.discovery().await;
    let issuer = app.issuer();
    assert_eq!(d["issuer"], issuer.as_str());
    assert_eq!(d["jwks_uri"], format!("{issuer}/.well-known/jwks.json"));
    assert_eq!(d["token_endpoint"], format!("{issuer}/oauth2/token"));
    assert_eq!(d["grant_types_supported"], json!(["client_credentials"]));
    assert_eq!(d["id_token_signing_alg_values_supported"], json!(["ES256"]));
    for field in [
        "response_types_supported",
        "subject_types_supported",
        "token_endpoint_auth_methods_supported",
        "claims_supported",
    ] {
        assert!(
            d[field].as_array().is_some_and(|a| !a.is_empty()),
            "{field}"
        );
    }
    let jwks = app.jwks().await;
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2, "a current and a next key after first start");
    for k in keys {
        assert_eq!(k["use"], "sig");
        assert_eq!(k["alg"], "ES256");
        assert_eq!(k["kty"], "EC");
        assert!(k.get("d").is_none());
    }
    let states: Vec<_> = app
        .store()
        .list_keys()
        .await
        .unwrap()
        .iter()
        .map(|k| k.state.as_str())
        .collect();
    assert_eq!(states.iter().filter(|s| **s == "current").count(), 1);
    assert_eq!(states.iter().filter(|s| **s == "next").count(), 1);
    let r = app.get("/.well-known/openid-configuration").await;
    // max-age is jittered below the policy's 300 s by at most a tenth.
    let cc = r.headers()["cache-control"].to_str().unwrap().to_owned();
    let age: i64 = cc
        .strip_prefix("public, max-age=")
        .unwrap()
        .parse()
        .unwrap();
    assert!((270..=300).contains(&age), "{cc}");
    assert!(r.headers().contains_key("etag"));
    assert_eq!(r.headers()["content-type"], "application/json");
}

async fn jwks_answers_304_to_its_etag(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let r = app.get("/.well-known/jwks.json").await;
    let etag = r.headers()["etag"].to_str().unwrap().to_owned();
    assert!(etag.starts_with('"') && etag.ends_with('"'));
    for inm in [
        etag.clone(),
        format!("W/{etag}"),
        format!("\"other\", {etag}"),
        "*".into(),
    ] {
        let r = app
            .http
            .get(format!("{}/.well-known/jwks.json", app.base))
            .header("if-none-match", inm.as_str())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 304, "{inm}");
        assert_eq!(r.headers()["etag"], etag.as_str());
        assert!(r.bytes().await.unwrap().is_empty());
    }
    let r = app
        .http
        .get(format!("{}/.well-known/jwks.json", app.base))
        .header("if-none-match", "\"stale\"")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

async fn secret_clients_get_contract_tokens(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let secret = create_org(app.store().as_ref(), "acme").await;
    // client_secret_basic
    let r = app.token_basic("org/acme", &secret, "").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 300);
    assert_eq!(
        body["issued_token_type"],
        "urn:ietf:params:oauth:token-type:jwt"
    );
    let token = body["access_token"].as_str().unwrap();
    let h = header(token);
    assert_eq!(
        h,
        json!({"alg": "ES256", "typ": "JWT", "kid": h["kid"].clone()})
    );
    let c = josekit_verify(token, &app.jwks().await).unwrap();
    let keys: Vec<&str> = c.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys.len(), 8, "exactly the contract's claims: {c}");
    assert_eq!(c["iss"], app.issuer().as_str());
    assert_eq!(c["sub"], "org/acme");
    assert_eq!(c["aud"], "sts.amazonaws.com");
    assert_eq!(c["org_id"], "acme");
    assert!(c.get("agent_id").is_none());
    let (iat, nbf, exp) = (
        c["iat"].as_i64().unwrap(),
        c["nbf"].as_i64().unwrap(),
        c["exp"].as_i64().unwrap(),
    );
    assert_eq!(nbf, iat);
    assert_eq!(exp - iat, 300);
    assert!((iat - nomos_issuer::app::now()).abs() < 5);
    let audit = app
        .store()
        .token(c["jti"].as_str().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(audit.auth_method, "client_secret_basic");
    assert_eq!(audit.subject, "org/acme");
    assert_eq!(audit.kid, h["kid"].as_str().unwrap());
    assert_eq!((audit.iat, audit.exp), (iat, exp));
    // client_secret_post, with the client id in its plain form
    let r = app
        .token_form(&format!(
            "grant_type=client_credentials&client_id=org%2Facme&client_secret={secret}"
        ))
        .await;
    assert_eq!(r.status(), 200);
    let token: Value = r.json().await.unwrap();
    let jti = claims(token["access_token"].as_str().unwrap())["jti"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(jti, c["jti"].as_str().unwrap());
    let audit = app.store().token(&jti).await.unwrap().unwrap();
    assert_eq!(audit.auth_method, "client_secret_post");
}

async fn agent_tokens_name_the_agent(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let store = app.store();
    create_org(store.as_ref(), "acme").await;
    let secret = create_agent(store.as_ref(), "acme", "deployer").await;
    let token = app.token_ok("org/acme/agent/deployer", &secret).await;
    let c = josekit_verify(&token, &app.jwks().await).unwrap();
    assert_eq!(c["sub"], "org/acme/agent/deployer");
    assert_eq!(c["org_id"], "acme");
    assert_eq!(c["agent_id"], "deployer");
    // The org's secret does not authenticate the agent, and the reverse.
    let org_secret = create_org(store.as_ref(), "beta").await;
    let r = app
        .token_basic("org/acme/agent/deployer", &org_secret, "")
        .await;
    assert_eq!(r.status(), 401);
    let r = app.token_basic("org/acme", &secret, "").await;
    assert_eq!(r.status(), 401);
}

async fn private_key_jwt_works_once_per_assertion(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let store = app.store();
    create_org(store.as_ref(), "acme").await;
    let key = client_key();
    create_key_agent(store.as_ref(), "acme", "ci", &key.public).await;
    let client = "org/acme/agent/ci";
    let token_endpoint = format!("{}/oauth2/token", app.issuer());
    let a = assertion(&key, client, &token_endpoint, 60, "jti-1");
    let r = app.token_form(&assertion_form(&a)).await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    let c = josekit_verify(body["access_token"].as_str().unwrap(), &app.jwks().await).unwrap();
    assert_eq!(c["sub"], client);
    assert_eq!(
        app.store()
            .token(c["jti"].as_str().unwrap())
            .await
            .unwrap()
            .unwrap()
            .auth_method,
        "private_key_jwt"
    );
    // Replay of the very same assertion.
    let r = app.token_form(&assertion_form(&a)).await;
    assert_eq!(r.status(), 401);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"], "invalid_client");
    assert!(e["error_description"].as_str().unwrap().contains("jti"));
    // A new jti, addressed to the issuer itself, with client_id given too.
    let a = assertion(&key, client, &app.issuer(), 60, "jti-2");
    let r = app
        .token_form(&format!(
            "{}&client_id=org%2Facme%2Fagent%2Fci",
            assertion_form(&a)
        ))
        .await;
    assert_eq!(r.status(), 200);
    // The same assertion sent 8 times at once: exactly one token.
    let a = assertion(&key, client, &token_endpoint, 60, "jti-race");
    let mut racers = Vec::new();
    for _ in 0..8 {
        let (http, url, body) = (
            app.http.clone(),
            format!("{}/oauth2/token", app.base),
            assertion_form(&a),
        );
        racers.push(tokio::spawn(async move {
            http.post(url)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
    }
    let mut statuses = Vec::new();
    for r in racers {
        statuses.push(r.await.unwrap());
    }
    statuses.sort();
    assert_eq!(statuses, vec![200, 401, 401, 401, 401, 401, 401, 401]);
    // A secret never authenticates a key-only agent.
    let r = app.token_basic(client, "nomos_cs_guess", "").await;
    assert_eq!(r.status(), 401);
}

async fn bad_assertions_are_invalid_client(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let store = app.store();
    create_org(store.as_ref(), "acme").await;
    let key = client_key();
    create_key_agent(store.as_ref(), "acme", "ci", &key.public).await;
    let client = "org/acme/agent/ci";
    let te = format!("{}/oauth2/token", app.issuer());
    let stranger = client_key();
    let none = {
        use base64::Engine;
        let b = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let exp = nomos_issuer::app::now() + 60;
        format!(
            "{}.{}.",
            b.encode(r#"{"alg":"none","typ":"JWT"}"#),
            b.encode(
                json!({"iss": client, "sub": client, "aud": te, "exp": exp, "jti": "n"})
                    .to_string()
            )
        )
    };
    let cases = [
        ("expired", assertion(&key, client, &te, -120, "e1")),
        ("too far ahead", assertion(&key, client, &te, 3600, "e2")),
        (
            "misaddressed",
            assertion(&key, client, "https://elsewhere/oauth2/token", 60, "e3"),
        ),
        ("foreign key", assertion(&stranger, client, &te, 60, "e4")),
        (
            "other subject",
            assertion(&key, "org/acme/agent/other", &te, 60, "e5"),
        ),
        ("alg none", none),
        ("garbage", "not.a.jwt".into()),
    ];
    for (what, a) in cases {
        let r = app.token_form(&assertion_form(&a)).await;
        assert_eq!(r.status(), 401, "{what}");
        assert!(r.headers().contains_key("www-authenticate"), "{what}");
        let e: Value = r.json().await.unwrap();
        assert_eq!(e["error"], "invalid_client", "{what}: {e}");
    }
    // Failed attempts do not burn a jti: the good assertion with jti e4 still works.
    let r = app
        .token_form(&assertion_form(&assertion(&key, client, &te, 60, "e4")))
        .await;
    assert_eq!(r.status(), 200);
    // An unsupported assertion type is a malformed request.
    let a = assertion(&key, client, &te, 60, "e6");
    let r = app
        .token_form(&format!(
            "grant_type=client_credentials&client_assertion_type=urn%3Aother&client_assertion={a}"
        ))
        .await;
    assert_eq!(r.status(), 400);
}

async fn expect_error(r: reqwest::Response, status: u16, error: &str) -> Value {
    let got = r.status().as_u16();
    let text = r.text().await.unwrap();
    assert_eq!(got, status, "{text}");
    let v: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
    assert_eq!(v["error"], error, "{v}");
    assert!(v["error_description"].is_string());
    v
}

async fn bad_requests_get_rfc6749_errors(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let secret = create_org(app.store().as_ref(), "acme").await;
    let r = app.token_basic("org/acme", "nomos_cs_wrong", "").await;
    assert_eq!(
        r.headers()["www-authenticate"],
        r#"Basic realm="nomos-issuer", error="invalid_client""#
    );
    expect_error(r, 401, "invalid_client").await;
    expect_error(
        app.token_basic("org/nobody", &secret, "").await,
        401,
        "invalid_client",
    )
    .await;
    for bad_id in [
        "acme",
        "org/ACME",
        "org/acme/agent/",
        "org/acme/../x",
        "org/a*",
        "",
    ] {
        expect_error(
            app.token_basic(bad_id, &secret, "").await,
            401,
            "invalid_client",
        )
        .await;
    }
    expect_error(
        app.token_form("client_id=org/acme").await,
        400,
        "invalid_request",
    )
    .await;
    let r = app
        .token_form(&format!(
            "grant_type=password&client_id=org/acme&client_secret={secret}"
        ))
        .await;
    expect_error(r, 400, "unsupported_grant_type").await;
    let r = app
        .token_form(&format!("grant_type=client_credentials&grant_type=client_credentials&client_id=org/acme&client_secret={secret}"))
        .await;
    expect_error(r, 400, "invalid_request").await;
    let r = app
        .token_basic(
            "org/acme",
            &secret,
            &format!("&client_id=org/acme&client_secret={secret}"),
        )
        .await;
    expect_error(r, 400, "invalid_request").await;
    expect_error(
        app.token_form("grant_type=client_credentials").await,
        401,
        "invalid_client",
    )
    .await;
    let r = app
        .http
        .post(format!("{}/oauth2/token", app.base))
        .header("authorization", "Bearer abc")
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials")
        .send()
        .await
        .unwrap();
    expect_error(r, 401, "invalid_client").await;
    // Nothing was issued by any of this.
    assert_eq!(app.store().count_tokens().await.unwrap(), 0);
}

async fn oversized_and_odd_bodies_never_5xx(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let secret = create_org(app.store().as_ref(), "acme").await;
    let url = format!("{}/oauth2/token", app.base);
    let good = format!("grant_type=client_credentials&client_id=org/acme&client_secret={secret}");
    // Wrong or missing content type.
    for ct in [Some("application/json"), Some("text/plain"), None] {
        let mut req = app.http.post(&url).body(good.clone());
        if let Some(ct) = ct {
            req = req.header("content-type", ct);
        }
        expect_error(req.send().await.unwrap(), 400, "invalid_request").await;
    }
    // A JSON body with the form content type.
    let r = app
        .token_form(&json!({"grant_type": "client_credentials"}).to_string())
        .await;
    assert!(r.status().is_client_error());
    // Over the limit: 413 (or the connection closed early, which is also fine).
    let huge = format!("{good}&pad={}", "a".repeat(64 * 1024));
    match app
        .http
        .post(&url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(huge)
        .send()
        .await
    {
        Ok(r) => assert_eq!(r.status(), 413),
        Err(e) => assert!(e.is_request() || e.is_body(), "{e}"),
    }
    // Invalid UTF-8, stray percent signs, a charset parameter, many parameters.
    let bodies: Vec<Vec<u8>> = vec![
        vec![0xff, 0xfe, b'=', 0x80],
        b"grant_type=%ZZ&%%%".to_vec(),
        (0..100)
            .map(|i| format!("p{i}=1&"))
            .collect::<String>()
            .into_bytes(),
        b"&&&===".to_vec(),
    ];
    for body in bodies {
        let r = app
            .http
            .post(&url)
            .header(
                "content-type",
                "application/x-www-form-urlencoded; charset=UTF-8",
            )
            .body(body)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_client_error(), "{}", r.status());
        let v: Value = r.json().await.unwrap();
        assert!(v["error"].is_string());
    }
    // Methods and paths that do not exist.
    assert_eq!(app.get("/oauth2/token").await.status(), 405);
    assert_eq!(app.get("/nope").await.status(), 404);
    // The good request still works with a charset parameter.
    let r = app
        .http
        .post(&url)
        .header(
            "content-type",
            "application/x-www-form-urlencoded; charset=utf-8",
        )
        .body(good)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

async fn audience_must_be_allowed(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let policy = OrgPolicy {
        audiences: vec![
            Audience::sts(),
            Audience::parse("https://vault.example").unwrap(),
        ],
        max_ttl: 900,
    };
    let secret = create_org_with(app.store().as_ref(), "acme", policy).await;
    let r = app
        .token_basic("org/acme", &secret, "&audience=https%3A%2F%2Fvault.example")
        .await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        claims(v["access_token"].as_str().unwrap())["aud"],
        "https://vault.example"
    );
    expect_error(
        app.token_basic("org/acme", &secret, "&audience=other")
            .await,
        400,
        "invalid_target",
    )
    .await;
    expect_error(
        app.token_basic("org/acme", &secret, "&audience=a%20b")
            .await,
        400,
        "invalid_target",
    )
    .await;
    // An org without sts.amazonaws.com gets no default-audience token.
    let only_vault = OrgPolicy {
        audiences: vec![Audience::parse("https://vault.example").unwrap()],
        max_ttl: 900,
    };
    let s2 = create_org_with(app.store().as_ref(), "beta", only_vault).await;
    expect_error(
        app.token_basic("org/beta", &s2, "").await,
        400,
        "invalid_target",
    )
    .await;
}

async fn ttl_is_capped_by_the_org(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| s.token_ttl = 1200).await;
    let short = OrgPolicy {
        max_ttl: 120,
        ..OrgPolicy::default()
    };
    let s1 = create_org_with(app.store().as_ref(), "short", short).await;
    let s2 = create_org_with(
        app.store().as_ref(),
        "long",
        OrgPolicy {
            max_ttl: 3600,
            ..OrgPolicy::default()
        },
    )
    .await;
    let c1 = claims(&app.token_ok("org/short", &s1).await);
    assert_eq!(
        c1["exp"].as_i64().unwrap() - c1["iat"].as_i64().unwrap(),
        120
    );
    let c2 = claims(&app.token_ok("org/long", &s2).await);
    assert_eq!(
        c2["exp"].as_i64().unwrap() - c2["iat"].as_i64().unwrap(),
        1200
    );
}

async fn tokens_survive_a_restart(backend: Backend) {
    let mut app = TestApp::spawn(backend).await;
    let secret = create_org(app.store().as_ref(), "acme").await;
    let before = app.token_ok("org/acme", &secret).await;
    let jwks_before = app.jwks().await;
    app.restart().await;
    let jwks_after = app.jwks().await;
    assert_eq!(jwks_before, jwks_after, "the same keys after a restart");
    let after = app.token_ok("org/acme", &secret).await;
    assert_eq!(header(&before)["kid"], header(&after)["kid"]);
    josekit_verify(&before, &jwks_after).unwrap();
    assert_eq!(app.store().count_tokens().await.unwrap(), 2);
}

async fn concurrent_mints_are_all_audited(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let secret = create_org(app.store().as_ref(), "acme").await;
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let (http, base, secret) = (app.http.clone(), app.base.clone(), secret.clone());
        tasks.push(tokio::spawn(async move {
            let token = mint_post(&http, &base, "org/acme", &secret).await;
            claims(&token)["jti"].as_str().unwrap().to_owned()
        }));
    }
    let mut jtis = Vec::new();
    for t in tasks {
        jtis.push(t.await.unwrap());
    }
    // Every response was sent after its row was committed: all rows are there now.
    for jti in &jtis {
        assert!(app.store().token(jti).await.unwrap().is_some(), "{jti}");
    }
    jtis.sort();
    jtis.dedup();
    assert_eq!(jtis.len(), 64);
    assert_eq!(app.store().count_tokens().await.unwrap(), 64);
}

async fn rs256_when_configured(backend: Backend) {
    let app =
        TestApp::spawn_with(backend, |s| s.rotation.alg = nomos_issuer::keys::Alg::RS256).await;
    let secret = create_org(app.store().as_ref(), "acme").await;
    let token = app.token_ok("org/acme", &secret).await;
    assert_eq!(header(&token)["alg"], "RS256");
    let jwks = app.jwks().await;
    assert!(
        jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .all(|k| k["kty"] == "RSA" && k["alg"] == "RS256")
    );
    let n = jwks["keys"][0]["n"].as_str().unwrap();
    assert_eq!(n.len(), 342, "2048-bit modulus");
    josekit_verify(&token, &jwks).unwrap();
    for v in ["pyjwt", "jose"] {
        external_verify(
            v,
            &format!("{}/.well-known/jwks.json", app.base),
            &app.issuer(),
            "sts.amazonaws.com",
            &token,
        )
        .unwrap_or_else(|e| panic!("{v}: {e}"));
    }
}

async fn independent_verifiers_accept_tokens(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let store = app.store();
    create_org(store.as_ref(), "acme").await;
    let secret = create_agent(store.as_ref(), "acme", "deployer").await;
    let token = app.token_ok("org/acme/agent/deployer", &secret).await;
    let jwks_url = format!("{}/.well-known/jwks.json", app.base);
    let issuer = app.issuer();
    for v in ["pyjwt", "jose"] {
        let c = external_verify(v, &jwks_url, &issuer, "sts.amazonaws.com", &token)
            .unwrap_or_else(|e| panic!("{v}: {e}"));
        assert_eq!(c["sub"], "org/acme/agent/deployer", "{v}");
        // The same verifier refuses a tampered token, a wrong issuer and a wrong audience.
        let mut tampered = token.clone();
        let i = token.find('.').unwrap() + 5;
        tampered.replace_range(i..i + 1, if &token[i..i + 1] == "A" { "B" } else { "A" });
        assert!(
            external_verify(v, &jwks_url, &issuer, "sts.amazonaws.com", &tampered).is_err(),
            "{v} tampered"
        );
        assert!(
            external_verify(
                v,
                &jwks_url,
                &format!("{issuer}/"),
                "sts.amazonaws.com",
                &token
            )
            .is_err(),
            "{v} iss"
        );
        assert!(
            external_verify(v, &jwks_url, &issuer, "other", &token).is_err(),
            "{v} aud"
        );
    }
}

/// Postgres refuses connections for a while: discovery and JWKS stay 200 from
/// memory, minting answers 503 `temporarily_unavailable` (no token without an
/// audit row), and everything recovers by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_outage_withholds_tokens_and_recovers() {
    let app = TestApp::spawn(Backend::Postgres).await;
    let secret = create_org(app.store().as_ref(), "acme").await;
    app.token_ok("org/acme", &secret).await; // the principal is now cached
    let db = app.db.url.rsplit_once('/').unwrap().1.to_owned();
    let admin = sqlx::PgPool::connect(&std::env::var("NOMOS_TEST_DATABASE_URL").unwrap())
        .await
        .unwrap();
    sqlx::query(&format!("ALTER DATABASE {db} ALLOW_CONNECTIONS false"))
        .execute(&admin)
        .await
        .unwrap();
    sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1")
        .bind(&db)
        .execute(&admin)
        .await
        .unwrap();
    assert_eq!(app.get("/.well-known/jwks.json").await.status(), 200);
    assert_eq!(
        app.get("/.well-known/openid-configuration").await.status(),
        200
    );
    let r = app.token_basic("org/acme", &secret, "").await;
    assert_eq!(r.headers()["retry-after"], "1");
    expect_error(r, 503, "temporarily_unavailable").await;
    let r = app.token_basic("org/unknown", &secret, "").await;
    expect_error(r, 503, "temporarily_unavailable").await;
    assert_eq!(app.get("/readyz").await.status(), 503);
    sqlx::query(&format!("ALTER DATABASE {db} ALLOW_CONNECTIONS true"))
        .execute(&admin)
        .await
        .unwrap();
    let mut recovered = false;
    for _ in 0..50 {
        if app.token_basic("org/acme", &secret, "").await.status() == 200 {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(recovered, "minting recovers once Postgres is back");
    assert_eq!(app.get("/readyz").await.status(), 200);
    // Exactly the two tokens handed out were recorded.
    assert_eq!(app.store().count_tokens().await.unwrap(), 2);
}
