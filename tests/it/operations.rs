//! Operating the real binary: logs that never hold a secret, JSON logs with
//! request ids, admin tokens and the audit from the CLI, development TLS and
//! certificate reload on SIGHUP.

use crate::common;

use std::time::Duration;

use common::process::*;
use common::*;
use nomos_issuer::audit::{AuditRecord, Issued};
use serde_json::{Value, json};

/// In `d`: org `acme` (its secret), an admin token, agent `acme/ci` with a
/// public key (its key pair), and `serve` logging JSON at debug level.
fn acme_serving_debug_json(d: &std::path::Path) -> (String, String, ClientKey, Serve) {
    let org = json_out(&run(d, &["org", "create", "acme", "--json"], &[]));
    let secret = org["client_secret"].as_str().unwrap().to_owned();
    let admin = json_out(&run(
        d,
        &["admin", "token", "create", "--name", "ops", "--json"],
        &[],
    ));
    let admin_token = admin["token"].as_str().unwrap().to_owned();
    let key = client_key();
    std::fs::write(d.join("ci.jwk"), key.public.to_string()).unwrap();
    json_out(&run(
        d,
        &[
            "agent",
            "create",
            "acme",
            "ci",
            "--public-key",
            "ci.jwk",
            "--json",
        ],
        &[],
    ));
    let serve = Serve::start(
        d,
        &["--log-format", "json"],
        &[("NOMOS_ISSUER_LOG", "debug")],
    )
    .unwrap();
    (secret, admin_token, key, serve)
}

/// Every secret the test handles is grepped for in the complete debug log.
#[tokio::test]
async fn logs_never_hold_secrets_keys_assertions_or_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (org_secret, admin_token, key, serve) = acme_serving_debug_json(d);
    let base = serve.base.clone();
    let http = reqwest::Client::new();
    let mut handed_out = Vec::new();
    // A good secret, a wrong one, a secret in the body.
    let r = token(&base, "org/acme", &org_secret).await;
    assert_eq!(r.status(), 200);
    handed_out.push(
        r.json::<Value>().await.unwrap()["access_token"]
            .as_str()
            .unwrap()
            .to_owned(),
    );
    let wrong = format!("{org_secret}x");
    assert_eq!(token(&base, "org/acme", &wrong).await.status(), 401);
    // An assertion, and its replay.
    let a = assertion(
        &key,
        "org/acme/agent/ci",
        &format!("{base}/oauth2/token"),
        60,
        "j1",
    );
    let form = assertion_form(&a);
    for want in [200, 401] {
        let r = http
            .post(format!("{base}/oauth2/token"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), want);
        if want == 200 {
            handed_out.push(
                r.json::<Value>().await.unwrap()["access_token"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            );
        }
    }
    // The admin API hands out a secret; a wrong admin token is refused.
    let r = http
        .post(format!("{base}/admin/v1/orgs"))
        .bearer_auth(&admin_token)
        .json(&json!({"id": "beta"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let beta_secret = r.json::<Value>().await.unwrap()["client_secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = http
        .get(format!("{base}/admin/v1/orgs"))
        .bearer_auth(format!("{admin_token}0"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let (status, log) = tokio::task::spawn_blocking(move || serve.terminate())
        .await
        .unwrap();
    assert!(status.success(), "{log}");
    let kek = std::fs::read_to_string(d.join("keys/kek")).unwrap();
    let mut secrets = vec![
        ("org secret", org_secret.clone()),
        ("wrong secret", wrong),
        ("admin token", admin_token.clone()),
        ("admin-created secret", beta_secret),
        ("client assertion", a.clone()),
        (
            "assertion signature",
            a.rsplit('.').next().unwrap().to_owned(),
        ),
        ("KEK", kek.trim().to_owned()),
    ];
    for (i, t) in handed_out.iter().enumerate() {
        secrets.push(("access token", t.clone()));
        secrets.push(("token signature", t.rsplit('.').next().unwrap().to_owned()));
        let _ = i;
    }
    // The random part of each secret, in case something logs it without its prefix.
    secrets.push(("secret body", org_secret["nomos_cs_".len()..].to_owned()));
    secrets.push((
        "admin token body",
        admin_token["nomos_at_".len()..].to_owned(),
    ));
    for (what, s) in &secrets {
        assert!(
            !log.contains(s.as_str()),
            "the log holds the {what}:\n{log}"
        );
    }
    // JSON lines, with a request id on every access line.
    let mut access = 0;
    let mut ids = std::collections::HashSet::new();
    for line in log.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}"));
        if v["fields"]["message"] == "served" {
            access += 1;
            let id = v["span"]["request_id"].as_str().unwrap().to_owned();
            assert!(
                id.len() >= 16 && ids.insert(id),
                "a unique request id: {line}"
            );
            assert!(v["fields"]["status"].is_u64());
        }
    }
    assert!(access >= 6, "one access line per request:\n{log}");
    assert!(
        log.contains("debug") || log.contains("DEBUG"),
        "debug logging was on"
    );
}

/// `admin token create | list | revoke` from the CLI; a revoked token stops
/// working on the running server.
#[tokio::test]
async fn admin_tokens_from_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let made = json_out(&run(
        d,
        &["admin", "token", "create", "--name", "ci", "--json"],
        &[],
    ));
    let token = made["token"].as_str().unwrap().to_owned();
    let id = made["id"].as_str().unwrap().to_owned();
    assert!(token.starts_with("nomos_at_") && token.len() == 9 + 43);
    let listed = json_out(&run(d, &["admin", "token", "list", "--json"], &[]));
    assert_eq!(listed["tokens"][0]["id"], id.as_str());
    assert_eq!(listed["tokens"][0]["name"], "ci");
    let text = String::from_utf8(run(d, &["admin", "token", "list"], &[]).stdout).unwrap();
    assert!(text.contains(&id) && !text.contains(&token), "{text}");
    let serve = Serve::start(d, &[], &[]).unwrap();
    let get = || {
        reqwest::Client::new()
            .get(format!("{}/admin/v1/keys", serve.base))
            .bearer_auth(&token)
            .send()
    };
    assert_eq!(get().await.unwrap().status(), 200);
    let out = run(d, &["admin", "token", "revoke", &id], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(get().await.unwrap().status(), 401);
    let out = run(d, &["admin", "token", "revoke", &id], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("does not exist"), "{}", stderr(&out));
    let out = run(d, &["admin", "token", "create", "--name", " "], &[]);
    assert!(!out.status.success());
}

/// `audit list | show | purge` read what the issuer recorded.
#[tokio::test]
async fn audit_from_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    json_out(&run(d, &["org", "create", "acme", "--json"], &[]));
    json_out(&run(d, &["org", "create", "beta", "--json"], &[]));
    let minted = run(d, &["token", "mint", "acme"], &[]);
    assert!(minted.status.success(), "{}", stderr(&minted));
    let t = String::from_utf8(minted.stdout).unwrap();
    let jti = claims(t.trim())["jti"].as_str().unwrap().to_owned();
    assert!(run(d, &["token", "mint", "beta"], &[]).status.success());
    // Two records from long ago, past the default retention of 90 days.
    let store = embedded_store(d).await;
    let old = nomos_issuer::app::now() - 100 * 86_400;
    let issued: Vec<Issued> = (0..2)
        .map(|i| acme_record(format!("old-{i}"), old))
        .collect();
    store.record_tokens(&issued).await.unwrap();
    store.close().await;

    let all = json_out(&run(d, &["audit", "list", "--json"], &[]));
    assert_eq!(all["tokens"].as_array().unwrap().len(), 4);
    assert_eq!(all["tokens"][0]["auth_method"], "cli");
    let acme = json_out(&run(d, &["audit", "list", "--org", "acme", "--json"], &[]));
    assert_eq!(acme["tokens"].as_array().unwrap().len(), 3);
    let page = json_out(&run(d, &["audit", "list", "--limit", "1", "--json"], &[]));
    assert_eq!(page["tokens"].as_array().unwrap().len(), 1);
    let cursor = page["next"].as_str().unwrap().to_owned();
    let rest = json_out(&run(
        d,
        &["audit", "list", "--before", &cursor, "--json"],
        &[],
    ));
    assert_eq!(rest["tokens"].as_array().unwrap().len(), 3);
    let recent = json_out(&run(
        d,
        &["audit", "list", "--since", "2026-01-01T00:00:00Z", "--json"],
        &[],
    ));
    let n_recent = recent["tokens"].as_array().unwrap().len();
    assert!(n_recent >= 2, "{recent}");
    let shown = json_out(&run(d, &["audit", "show", &jti, "--json"], &[]));
    assert_eq!(shown["subject"], "org/acme");
    let text = String::from_utf8(run(d, &["audit", "show", &jti], &[]).stdout).unwrap();
    assert!(text.contains("org/acme") && text.contains(&jti), "{text}");
    let out = run(d, &["audit", "show", "nope"], &[]);
    assert_eq!(out.status.code(), Some(1));
    let out = run(d, &["audit", "list", "--agent", "ci"], &[]);
    assert_eq!(out.status.code(), Some(2), "--agent needs --org");
    // A duration ago is a time too.
    let day = json_out(&run(d, &["audit", "list", "--since", "24h", "--json"], &[]));
    // The two minted just now, not the two from 100 days ago.
    assert_eq!(day["tokens"].as_array().unwrap().len(), 2);

    // Invalid input exits 2, naming the flag and the forms it takes.
    for (args, words) in [
        (
            &["audit", "list", "--since", "yesterday"][..],
            &["--since", "RFC 3339", "24h", "Unix seconds"][..],
        ),
        (
            &["audit", "decisions", "--until", "soon"],
            &["--until", "RFC 3339", "24h"],
        ),
        (
            &["audit", "list", "--org", "Acme"],
            &["--org", "invalid org id"],
        ),
        (
            &["audit", "list", "--org", "acme", "--agent", "C_I"],
            &["--agent", "invalid agent id"],
        ),
        (&["audit", "list", "--limit", "0"], &["--limit", "1..=1000"]),
        (
            &["audit", "list", "--before", "nonsense"],
            &["--before", "not a cursor"],
        ),
        (
            &["audit", "decisions", "--before", "10:jti"],
            &["--before", "not a cursor"],
        ),
        (
            &["audit", "decisions", "--client-id", "Org/Acme"],
            &["--client-id", "org/ORG or org/ORG/agent/AGENT"],
        ),
        (
            &["audit", "purge", "--older-than", "a while"],
            &["--older-than", "30d"],
        ),
    ] {
        let out = run(d, args, &[]);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        for w in words {
            assert!(stderr(&out).contains(w), "{args:?}: {w}: {}", stderr(&out));
        }
    }

    let out = run(d, &["audit", "purge"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("purged 2 "));
    let all = json_out(&run(d, &["audit", "list", "--json"], &[]));
    assert_eq!(all["tokens"].as_array().unwrap().len(), 2);
    let out = run(d, &["audit", "purge", "--older-than", "1h"], &[]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("purged 0 "));
    let purged = json_out(&run(
        d,
        &["audit", "purge", "--older-than", "1h", "--json"],
        &[],
    ));
    assert_eq!(
        (purged["tokens"].as_u64(), purged["decisions"].as_u64()),
        (Some(0), Some(0))
    );
    assert!(purged["before"].is_i64());
    let none = json_out(&run(d, &["audit", "decisions", "--json"], &[]));
    assert_eq!(none, json!({"decisions": [], "next": null}));
}

/// `serve --dev-tls` makes a CA and a certificate in keys/ and serves HTTPS.
#[tokio::test]
async fn dev_tls_serves_https_with_its_own_ca() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let serve = Serve::start(d, &["--dev-tls"], &[]).unwrap();
    assert!(serve.base.starts_with("https://"), "{}", serve.base);
    let ca = std::fs::read(d.join("keys/dev-ca.pem")).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for f in ["keys/dev-ca.key", "keys/dev-tls.key"] {
            let mode = std::fs::metadata(d.join(f)).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "{f} is private");
        }
    }
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
        .build()
        .unwrap();
    let port = serve.base.rsplit(':').next().unwrap().to_owned();
    let v: Value = client
        .get(format!(
            "https://localhost:{port}/.well-known/openid-configuration"
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["issuer"], serve.base.as_str());
    // A client without the CA refuses the certificate.
    assert!(
        reqwest::get(format!("https://localhost:{port}/healthz"))
            .await
            .is_err()
    );
    drop(serve);
    // A second start reuses the same CA.
    let serve = Serve::start(d, &["--dev-tls"], &[]).unwrap();
    assert_eq!(std::fs::read(d.join("keys/dev-ca.pem")).unwrap(), ca);
    let (_, log) = serve.terminate();
    assert!(!log.contains("new development CA"), "{log}");
    // A CA kept from before name constraints (no dev-ca.hosts) is replaced,
    // and the log says that clients must trust the new one.
    std::fs::remove_file(d.join("keys/dev-ca.hosts")).unwrap();
    let serve = Serve::start(d, &["--dev-tls"], &[]).unwrap();
    let ca = std::fs::read(d.join("keys/dev-ca.pem")).unwrap();
    let (_, log) = serve.terminate();
    assert!(
        log.contains(
            "made a new development CA because the kept CA predates name constraints \
             (no keys/dev-ca.hosts): clients must trust the new keys/dev-ca.pem"
        ),
        "{log}"
    );
    assert!(
        std::fs::read_to_string(d.join("keys/dev-ca.hosts"))
            .unwrap()
            .contains("127.0.0.0/8")
    );
    let serve = Serve::start(d, &["--dev-tls"], &[]).unwrap();
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
        .build()
        .unwrap();
    let port = serve.base.rsplit(':').next().unwrap().to_owned();
    let health = client
        .get(format!("https://localhost:{port}/healthz"))
        .send()
        .await
        .unwrap();
    assert!(health.status().is_success());
    drop(serve);
    // --dev-tls and real certificate files do not mix.
    let out = run(
        d,
        &[
            "serve",
            "--dev-tls",
            "--tls-cert",
            "a.pem",
            "--tls-key",
            "a.key",
        ],
        &[],
    );
    assert!(!out.status.success());
}

/// SIGHUP reloads the certificate even when the files' times did not change.
#[tokio::test]
async fn sighup_reloads_the_certificate() {
    use rcgen::{CertificateParams, KeyPair};
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let write = |cn: &str| {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(vec!["localhost".into()]).unwrap();
        p.distinguished_name.push(rcgen::DnType::CommonName, cn);
        let cert = p.self_signed(&key).unwrap();
        std::fs::write(d.join("tls.pem"), cert.pem()).unwrap();
        std::fs::write(d.join("tls.key"), key.serialize_pem()).unwrap();
        cert.pem()
    };
    let first = write("first");
    let times = |f: &str| std::fs::metadata(d.join(f)).unwrap().modified().unwrap();
    let (cert_time, key_time) = (times("tls.pem"), times("tls.key"));
    let serve = Serve::start(d, &["--tls-cert", "tls.pem", "--tls-key", "tls.key"], &[]).unwrap();
    let port: u16 = serve.base.rsplit(':').next().unwrap().parse().unwrap();
    let works_with = |pem: String| async move {
        let client = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(pem.as_bytes()).unwrap())
            .build()
            .unwrap();
        client
            .get(format!("https://localhost:{port}/healthz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
    };
    assert!(works_with(first.clone()).await);
    // New files with the old modification times: the watcher sees nothing.
    let second = write("second");
    for (f, t) in [("tls.pem", cert_time), ("tls.key", key_time)] {
        std::fs::File::options()
            .write(true)
            .open(d.join(f))
            .unwrap()
            .set_modified(t)
            .unwrap();
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        works_with(first.clone()).await,
        "no reload without a signal"
    );
    std::process::Command::new("kill")
        .args(["-HUP", &serve.child.id().to_string()])
        .status()
        .unwrap();
    let mut reloaded = false;
    for _ in 0..30 {
        if works_with(second.clone()).await {
            reloaded = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(reloaded, "SIGHUP reloads: {}", serve.log.lock().unwrap());
    assert!(!works_with(first).await);
    let (status, log) = tokio::task::spawn_blocking(move || serve.terminate())
        .await
        .unwrap();
    assert!(status.success(), "SIGHUP does not stop the server: {log}");
    assert!(log.contains("TLS certificate reloaded"), "{log}");
}

both_backends!(
    serve_purges_records_past_retention_batch_by_batch,
    serve_purges_decisions_past_retention
);

/// An audit record of a token for org acme issued at `iat`.
fn acme_record(jti: String, iat: i64) -> Issued {
    Issued {
        record: AuditRecord {
            jti,
            subject: "org/acme".into(),
            org_id: "acme".into(),
            agent_id: None,
            audience: "sts.amazonaws.com".into(),
            kid: "k".into(),
            iat,
            exp: iat + 300,
            auth_method: "cli".into(),
        },
        claim: None,
    }
}

/// A running server purges the records past their retention when it starts,
/// batch after batch (three here), and keeps the rest.
async fn serve_purges_records_past_retention_batch_by_batch(backend: Backend) {
    use nomos_issuer::audit::MAX_BATCH;
    use nomos_issuer::store::PURGE_BATCH;
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let now = nomos_issuer::app::now();
    // Past the default retention of 90 days: more than two purge batches.
    let old = PURGE_BATCH as usize * 2 + 10;
    let ids: Vec<usize> = (0..old).collect();
    for chunk in ids.chunks(MAX_BATCH) {
        let batch: Vec<Issued> = chunk
            .iter()
            .map(|i| acme_record(format!("old-{i}"), now - 100 * 86_400 - *i as i64))
            .collect();
        store.record_tokens(&batch).await.unwrap();
    }
    store
        .record_tokens(&[acme_record("recent".into(), now - 86_400)])
        .await
        .unwrap();
    assert_eq!(store.count_tokens().await.unwrap(), old as i64 + 1);

    let kek = db.dir.path().join("kek");
    nomos_issuer::keys::Kek::create_file(&kek).unwrap();
    let server = nomos_issuer::server::Server::start(settings(&db, &kek), true)
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while store.count_tokens().await.unwrap() > 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "old records left after 60 s: {}",
            store.count_tokens().await.unwrap()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(store.token("recent").await.unwrap().is_some());
    server.stop().await.unwrap();
    store.close().await;
}

/// Every kind of failed client authentication: the client hears one generic
/// `invalid_client`; the operator reads the client id and the reason in the
/// log (at info) and in the decision records (admin API and CLI). Neither
/// holds a secret, an assertion or a malformed client id.
#[tokio::test]
async fn refusals_are_diagnosed_by_the_operator_never_by_the_client() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // At debug level, so that the grep below sees everything; the
    // operator's line itself is at info.
    let (secret, admin_token, key, serve) = acme_serving_debug_json(d);
    let base = serve.base.clone();
    let endpoint = format!("{base}/oauth2/token");
    let http = reqwest::Client::new();
    let admin_api = |path: &str| {
        http.get(format!("{base}/admin/v1{path}"))
            .bearer_auth(&admin_token)
            .send()
    };
    // A second secret for acme, revoked; a second key for ci, revoked.
    let added: Value = http
        .post(format!("{base}/admin/v1/orgs/acme/credentials"))
        .bearer_auth(&admin_token)
        .json(&json!({"kind": "secret"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let revoked_secret = added["client_secret"].as_str().unwrap().to_owned();
    let secret_id = added["credential"]["id"].as_str().unwrap().to_owned();
    let old_key = client_key();
    let added: Value = http
        .post(format!("{base}/admin/v1/orgs/acme/agents/ci/credentials"))
        .bearer_auth(&admin_token)
        .json(&json!({"kind": "public_key", "public_jwks": old_key.public}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let old_kid = added["credential"]["kids"][0].as_str().unwrap().to_owned();
    let key_id = added["credential"]["id"].as_str().unwrap().to_owned();
    for path in [
        format!("orgs/acme/credentials/{secret_id}"),
        format!("orgs/acme/agents/ci/credentials/{key_id}"),
    ] {
        let r = http
            .delete(format!("{base}/admin/v1/{path}"))
            .bearer_auth(&admin_token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204, "revoke {path}");
    }

    let wrong = format!("{secret}x");
    let post = |body: String| {
        http.post(&endpoint)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
    };
    let good = assertion(&key, "org/acme/agent/ci", &endpoint, 60, "once");
    let stranger = client_key();
    let assertions = [
        assertion(&stranger, "org/acme/agent/ci", &endpoint, 60, "s"),
        assertion(&key, "org/acme/agent/ci", "https://elsewhere", 60, "a"),
        assertion(&key, "org/acme/agent/ci", &endpoint, -120, "e"),
        signed_assertion(
            &old_key,
            Some(&old_kid),
            "org/acme/agent/ci",
            &endpoint,
            60,
            "k",
        ),
        good.clone(),
    ];
    // (what is sent, the reason, the client id recorded, request id)
    let mut cases: Vec<(reqwest::Response, &str, Option<&str>)> = vec![
        (
            token(&base, "org/ghost", &wrong).await,
            "unknown_client",
            Some("org/ghost"),
        ),
        (
            token(&base, "org/acme", &wrong).await,
            "wrong_secret",
            Some("org/acme"),
        ),
        (
            token(&base, "org/acme", &revoked_secret).await,
            "revoked_credential",
            Some("org/acme"),
        ),
        (
            token(&base, "org/acme/agent/ci", &secret).await,
            "method_not_registered",
            Some("org/acme/agent/ci"),
        ),
        (
            token(&base, "Org/Evil", &wrong).await,
            "malformed_client_id",
            None,
        ),
    ];
    let reasons = [
        "assertion_signature",
        "assertion_audience",
        "assertion_expiry",
        "revoked_credential",
    ];
    for (a, reason) in assertions.iter().zip(reasons) {
        let r = post(assertion_form(a)).await.unwrap();
        cases.push((r, reason, Some("org/acme/agent/ci")));
    }
    let first = post(assertion_form(&good)).await.unwrap();
    assert_eq!(first.status(), 200, "{:?}", first.text().await);
    cases.push((
        post(assertion_form(&good)).await.unwrap(),
        "assertion_replay",
        Some("org/acme/agent/ci"),
    ));

    // The client: 401 invalid_client; for authentication failures, one
    // description whatever the reason.
    let mut expected = Vec::new();
    for (r, reason, client) in cases {
        assert_eq!(r.status(), 401, "{reason}");
        let request_id = r.headers()["x-request-id"].to_str().unwrap().to_owned();
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"], "invalid_client", "{reason}: {body}");
        let description = body["error_description"].as_str().unwrap();
        if !reason.starts_with("assertion_") {
            assert_eq!(description, "client authentication failed", "{reason}");
        }
        expected.push((request_id, reason, client));
    }

    // The operator: the decision records, through the admin API (written
    // moments after the answers).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let page = loop {
        let page: Value = admin_api("/audit/decisions")
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if page["decisions"].as_array().unwrap().len() >= expected.len() {
            break page;
        }
        assert!(std::time::Instant::now() < deadline, "{page}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let records = page["decisions"].as_array().unwrap();
    assert_eq!(records.len(), expected.len(), "{page}");
    for (request_id, reason, client) in &expected {
        let r = records
            .iter()
            .find(|r| r["request_id"] == request_id.as_str())
            .unwrap_or_else(|| panic!("no record of {reason}: {page}"));
        assert_eq!(r["reason"], *reason, "{r}");
        assert_eq!(r["client_id"].as_str(), *client, "{r}");
        assert_eq!(r["kind"], "authentication");
        assert_eq!(r["source"], "127.0.0.1");
        if let Some(c) = client {
            assert_eq!(r["org_id"], c.split('/').nth(1).unwrap());
        }
    }
    let ci: Value = admin_api("/audit/decisions?client_id=org/acme/agent/ci&limit=2")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ci["decisions"].as_array().unwrap().len(), 2);
    assert_eq!(ci["decisions"][0]["reason"], "assertion_replay");
    assert!(ci["next"].is_string());
    let r = admin_api("/audit/decisions?client_id=Org/Evil")
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    let (status, log) = tokio::task::spawn_blocking(move || serve.terminate())
        .await
        .unwrap();
    assert!(status.success(), "{log}");
    // The log line of each refusal, at info, with its request id.
    for (request_id, reason, client) in &expected {
        let line = log
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|v| {
                v["fields"]["message"] == "client authentication refused"
                    && v["fields"]["request_id"] == request_id.as_str()
            })
            .unwrap_or_else(|| panic!("no log line for {reason}:\n{log}"));
        assert_eq!(line["level"], "INFO");
        assert_eq!(line["fields"]["reason"], *reason, "{line}");
        assert_eq!(line["fields"]["client_id"], client.unwrap_or("-"), "{line}");
    }
    let mut never = vec![
        ("secret", secret.clone()),
        ("wrong secret", wrong.clone()),
        ("revoked secret", revoked_secret.clone()),
        ("malformed client id", "Org/Evil".to_owned()),
    ];
    for a in assertions.iter() {
        never.push(("assertion", a.clone()));
        never.push((
            "assertion signature",
            a.rsplit('.').next().unwrap().to_owned(),
        ));
    }
    for (what, s) in &never {
        assert!(
            !log.contains(s.as_str()),
            "the log holds the {what}:\n{log}"
        );
    }

    // The CLI reads the same records; --client-id is checked before use.
    let all = json_out(&run(d, &["audit", "decisions", "--json"], &[]));
    assert_eq!(all["decisions"].as_array().unwrap().len(), expected.len());
    let acme = json_out(&run(
        d,
        &[
            "audit",
            "decisions",
            "--client-id",
            "org/acme",
            "--since",
            "1h",
            "--json",
        ],
        &[],
    ));
    let reasons: Vec<&str> = acme["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["reason"].as_str().unwrap())
        .collect();
    assert_eq!(reasons, ["revoked_credential", "wrong_secret"]);
    let by_org = json_out(&run(
        d,
        &["audit", "decisions", "--org", "acme", "--json"],
        &[],
    ));
    assert_eq!(
        by_org["decisions"].as_array().unwrap().len(),
        expected.len() - 2
    );
    let text =
        String::from_utf8(run(d, &["audit", "decisions", "--org", "acme"], &[]).stdout).unwrap();
    assert!(
        text.contains("REASON")
            && text.contains("method_not_registered")
            && text.contains("org/acme/agent/ci"),
        "{text}"
    );
    let printed = all.to_string();
    for (what, s) in &never {
        assert!(!printed.contains(s.as_str()), "the records hold the {what}");
    }
}

/// A running server purges the decision records past the audit retention
/// with the audit records, and keeps the rest.
async fn serve_purges_decisions_past_retention(backend: Backend) {
    use nomos_issuer::audit::decision::{Decision, DecisionKind, Reason};
    use nomos_issuer::store::DecisionQuery;
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let now = nomos_issuer::app::now();
    let refusal = |at: i64| Decision {
        at,
        kind: DecisionKind::Authentication,
        client_id: nomos_issuer::ids::Subject::parse("org/acme").ok(),
        reason: Reason::WrongSecret,
        auth_method: None,
        source: None,
        request_id: None,
        evidence: None,
    };
    let batch: Vec<Decision> = (0..3)
        .map(|i| refusal(now - 100 * 86_400 - i))
        .chain([refusal(now - 86_400)])
        .collect();
    store.record_decisions(&batch).await.unwrap();
    let everything = DecisionQuery {
        limit: 100,
        ..Default::default()
    };
    let kek = db.dir.path().join("kek");
    nomos_issuer::keys::Kek::create_file(&kek).unwrap();
    let server = nomos_issuer::server::Server::start(settings(&db, &kek), true)
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let left = store.query_decisions(&everything).await.unwrap();
        if left.len() == 1 {
            assert_eq!(left[0].at, now - 86_400);
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{left:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    server.stop().await.unwrap();
    store.close().await;
}
