//! Every rule of ../shared/AWS.md that applies to discovery, JWKS and tokens.

use crate::common;

use std::collections::HashSet;

use common::*;
use nomos_issuer::keys::Alg;
use serde_json::Value;

both_backends!(
    aws_rules_es256,
    aws_rules_rs256,
    issuer_with_a_path_is_kept_byte_for_byte
);

const AWS_ALGS: [&str; 6] = ["RS256", "RS384", "RS512", "ES256", "ES384", "ES512"];

/// Discovery: the issuer string and an absolute jwks_uri.
fn check_discovery(d: &Value, issuer: &str) {
    let iss = d["issuer"].as_str().expect("issuer is a string");
    assert_eq!(
        iss, issuer,
        "discovery issuer is byte-for-byte the configured URL"
    );
    assert!(!iss.ends_with('/'), "no trailing slash");
    assert!(
        !iss.contains('?') && !iss.contains('#'),
        "no query or fragment"
    );
    assert!((1..=255).contains(&iss.len()), "1-255 characters");
    let jwks_uri = d["jwks_uri"].as_str().unwrap();
    assert!(
        jwks_uri.starts_with(&format!("{issuer}/")),
        "absolute jwks_uri under the issuer"
    );
    let algs: Vec<&str> = d["id_token_signing_alg_values_supported"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(
        algs.iter().all(|a| AWS_ALGS.contains(a)),
        "only algorithms AWS accepts: {algs:?}"
    );
}

/// JWKS: at least one key, at most 100 RSA and 100 EC, kid on every key,
/// use sig, an AWS algorithm, no key_ops, no x5c, no private members.
fn check_jwks(jwks: &Value) {
    let keys = jwks["keys"].as_array().expect("keys array");
    assert!(!keys.is_empty());
    let count = |kty: &str| keys.iter().filter(|k| k["kty"] == kty).count();
    assert!(count("RSA") <= 100 && count("EC") <= 100);
    let mut kids = HashSet::new();
    for k in keys {
        let kid = k["kid"].as_str().expect("kid on every key");
        assert!(kids.insert(kid), "kids are unique");
        assert_eq!(k["use"], "sig");
        let alg = k["alg"].as_str().unwrap();
        assert!(AWS_ALGS.contains(&alg), "{alg}");
        let kty = k["kty"].as_str().unwrap();
        assert_eq!(kty, if alg.starts_with("ES") { "EC" } else { "RSA" });
        for forbidden in [
            "key_ops", "x5c", "d", "p", "q", "dp", "dq", "qi", "oth", "k",
        ] {
            assert!(k.get(forbidden).is_none(), "{forbidden} in {k}");
        }
    }
}

/// A token: length, header, and every claim rule.
fn check_token(token: &str, issuer: &str, jwks: &Value) {
    assert!((4..=20_000).contains(&token.len()));
    let h = header(token);
    assert!(AWS_ALGS.contains(&h["alg"].as_str().unwrap()));
    let kid = h["kid"].as_str().expect("kid in the header");
    assert!(
        jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["kid"] == kid),
        "kid is in the JWKS"
    );
    let c = claims(token);
    assert_eq!(
        c["iss"].as_str().unwrap(),
        issuer,
        "iss equals the provider URL"
    );
    let sub = c["sub"].as_str().unwrap();
    assert!(!sub.is_empty() && sub.len() <= 255);
    let aud = &c["aud"];
    assert!(aud.is_string(), "aud is one string, not an array");
    assert!((1..=255).contains(&aud.as_str().unwrap().len()));
    for t in ["iat", "exp", "nbf"] {
        assert!(c[t].is_i64(), "{t} is an integer: {}", c[t]);
    }
    let (iat, exp) = (c["iat"].as_i64().unwrap(), c["exp"].as_i64().unwrap());
    assert!(
        exp > iat && exp - iat <= 3600,
        "short-lived, under the hard cap"
    );
    assert!(
        c.get("https://aws.amazon.com/tags").is_none(),
        "session tags are off by default"
    );
    // A trust policy matches sub with StringEquals on `<host/path>:sub`: the subject
    // alone names org and agent, in the documented form.
    assert!(nomos_issuer::ids::Subject::parse(sub).is_ok());
    josekit_verify(token, jwks).unwrap();
}

async fn run_rules(backend: Backend, alg: Alg) {
    let app = TestApp::spawn_with(backend, |s| s.rotation.alg = alg).await;
    let store = app.store();
    let org_secret = create_org(store.as_ref(), "acme").await;
    let agent_secret = create_agent(store.as_ref(), "acme", "deployer").await;
    let issuer = app.issuer();
    check_discovery(&app.discovery().await, &issuer);
    let jwks = app.jwks().await;
    check_jwks(&jwks);
    for (id, secret) in [
        ("org/acme", &org_secret),
        ("org/acme/agent/deployer", &agent_secret),
    ] {
        let token = app.token_ok(id, secret).await;
        assert_eq!(header(&token)["alg"], alg.as_str());
        check_token(&token, &issuer, &jwks);
    }
}

async fn aws_rules_es256(backend: Backend) {
    run_rules(backend, Alg::ES256).await;
}

async fn aws_rules_rs256(backend: Backend) {
    run_rules(backend, Alg::RS256).await;
}

async fn issuer_with_a_path_is_kept_byte_for_byte(backend: Backend) {
    let issuer = "https://id.example.com/orgs/acme";
    let app = TestApp::spawn_with(backend, |s| {
        s.issuer = issuer.into();
        s.issuer_follows_listen = false;
    })
    .await;
    let secret = create_org(app.store().as_ref(), "acme").await;
    let d = app.discovery().await;
    check_discovery(&d, issuer);
    assert_eq!(
        d["jwks_uri"],
        "https://id.example.com/orgs/acme/.well-known/jwks.json"
    );
    assert_eq!(
        d["token_endpoint"],
        "https://id.example.com/orgs/acme/oauth2/token"
    );
    let jwks = app.jwks().await;
    check_token(&app.token_ok("org/acme", &secret).await, issuer, &jwks);
}
