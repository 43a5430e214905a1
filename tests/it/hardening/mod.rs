//! Running on the internet: HTTPS with certificate reload, rate limits,
//! header and concurrency limits, security headers, request ids and metrics.

use crate::common;
mod enumeration;
mod flood;
mod lockout;
mod surfaces;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::{Backend, TestApp, create_org, mint_post};
use nomos_issuer::config::TlsFiles;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use tokio::io::AsyncWriteExt;
use tokio_rustls::rustls;

/// A CA → intermediate → leaf chain for `localhost`, written as PEM files.
struct Pki {
    ca_pem: String,
    intermediate: Issuer<'static, KeyPair>,
    intermediate_pem: String,
}

impl Pki {
    fn new() -> Self {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::default();
        ca.distinguished_name.push(DnType::CommonName, "test root");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let ca_issuer = Issuer::new(ca, ca_key);
        let int_key = KeyPair::generate().unwrap();
        let mut int = CertificateParams::default();
        int.distinguished_name
            .push(DnType::CommonName, "test intermediate");
        int.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        let int_cert = int.signed_by(&int_key, &ca_issuer).unwrap();
        Pki {
            ca_pem: ca_cert.pem(),
            intermediate: Issuer::new(int, int_key),
            intermediate_pem: int_cert.pem(),
        }
    }

    /// Writes a fresh leaf and its chain (leaf, intermediate); returns the leaf DER.
    fn write_leaf(&self, files: &TlsFiles) -> Vec<u8> {
        let key = KeyPair::generate().unwrap();
        let params = CertificateParams::new(vec!["localhost".into()]).unwrap();
        let leaf = params.signed_by(&key, &self.intermediate).unwrap();
        // Write to a temporary name and rename, as certificate tools do.
        let (cert_tmp, key_tmp) = (
            files.cert.with_extension("new"),
            files.key.with_extension("new-key"),
        );
        std::fs::write(
            &cert_tmp,
            format!("{}{}", leaf.pem(), self.intermediate_pem),
        )
        .unwrap();
        std::fs::write(&key_tmp, key.serialize_pem()).unwrap();
        std::fs::rename(&key_tmp, &files.key).unwrap();
        std::fs::rename(&cert_tmp, &files.cert).unwrap();
        leaf.der().to_vec()
    }

    fn client(&self, max_tls12: bool) -> reqwest::Client {
        let mut b = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(self.ca_pem.as_bytes()).unwrap());
        if max_tls12 {
            b = b.max_tls_version(reqwest::tls::Version::TLS_1_2);
        }
        b.build().unwrap()
    }

    /// The leaf certificate the server presents, read by a raw rustls client.
    async fn presented_leaf(&self, port: u16) -> Vec<u8> {
        let mut roots = rustls::RootCertStore::empty();
        let ca = rustls::pki_types::CertificateDer::from_pem_slice(self.ca_pem.as_bytes());
        roots.add(ca.unwrap()).unwrap();
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let tls = connector.connect(name, tcp).await.unwrap();
        tls.get_ref().1.peer_certificates().unwrap()[0].to_vec()
    }
}

use rustls::pki_types::pem::PemObject;

async fn tls_app(dir: &Path, pki: &Pki) -> (TestApp, TlsFiles, Vec<u8>) {
    let files = TlsFiles {
        cert: dir.join("tls.pem"),
        key: dir.join("tls.key"),
    };
    let leaf = pki.write_leaf(&files);
    let f = files.clone();
    let app = TestApp::spawn_with(Backend::Sqlite, move |s| s.tls = Some(f)).await;
    (app, files, leaf)
}

/// HTTPS with the full chain: TLS 1.3 and 1.2, ALPN h2 and http/1.1; the issuer
/// follows the scheme; HSTS is set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_serves_the_chain_with_h2_and_both_tls_versions() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new();
    let (app, _files, _) = tls_app(dir.path(), &pki).await;
    let port = app.server().addr.port();
    let base = format!("https://localhost:{port}");
    assert_eq!(app.issuer(), format!("https://{}", app.server().addr));
    for tls12 in [false, true] {
        let r = pki
            .client(tls12)
            .get(format!("{base}/.well-known/jwks.json"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.version(), reqwest::Version::HTTP_2, "ALPN h2");
        assert_eq!(r.headers()["strict-transport-security"], "max-age=31536000");
    }
    // HTTP/1.1 when the client asks for it.
    let h1 = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(pki.ca_pem.as_bytes()).unwrap())
        .http1_only()
        .build()
        .unwrap();
    let r = h1.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_11);
    // A token over HTTPS.
    let secret = create_org(app.store().as_ref(), "acme").await;
    let t = mint_post(&pki.client(false), &base, "org/acme", &secret).await;
    assert_eq!(common::claims(&t)["iss"], app.issuer());
    // Plain HTTP on the TLS port gets a 400 that says to use https, and
    // nothing else: no route answers it.
    let plain = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), 400);
    assert_eq!(plain.headers()["connection"], "close");
    let text = plain.text().await.unwrap();
    assert!(text.contains("use https://"), "{text}");
    assert_eq!(text.lines().count(), 1, "{text}");
    // As curl sends it, with a body still arriving.
    let mut raw = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    raw.write_all(b"POST /oauth2/token HTTP/1.1\r\nHost: x\r\nContent-Length: 29\r\n\r\ngrant_type=client_credentials")
        .await
        .unwrap();
    let mut answer = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut raw, &mut answer)
        .await
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
    assert!(answer.contains("use https://"), "{answer}");
    // TLS on the same port still works after it.
    let r = pki
        .client(false)
        .get(format!("{base}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let metrics = pki
        .client(false)
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap();
    let metrics = metrics.text().await.unwrap();
    assert!(
        metrics.contains("nomos_issuer_refused_total{reason=\"plain_http\"} 2"),
        "{metrics}"
    );
}

/// A new certificate is picked up without a restart; a broken one is refused
/// and the previous one stays in use.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_reload_on_change_and_survive_a_bad_file() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new();
    let (app, files, first) = tls_app(dir.path(), &pki).await;
    let port = app.server().addr.port();
    assert_eq!(pki.presented_leaf(port).await, first);
    // Modification times have a coarse grain on some filesystems.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let second = pki.write_leaf(&files);
    let mut seen = Vec::new();
    for _ in 0..50 {
        seen = pki.presented_leaf(port).await;
        if seen == second {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(seen, second, "the new certificate is served");
    // A half-written file: refused, the last good certificate stays.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    std::fs::write(&files.cert, "-----BEGIN CERTIFICATE-----\ngarbage\n").unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(pki.presented_leaf(port).await, second);
    let r = pki
        .client(false)
        .get(format!("https://localhost:{port}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

/// A key that does not belong to the certificate, or a missing file, stops the start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mismatched_key_is_a_clear_startup_error() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new();
    let files = TlsFiles {
        cert: dir.path().join("tls.pem"),
        key: dir.path().join("tls.key"),
    };
    pki.write_leaf(&files);
    std::fs::write(&files.key, KeyPair::generate().unwrap().serialize_pem()).unwrap();
    let e = nomos_issuer::http::tls::load(&files)
        .unwrap_err()
        .to_string();
    assert!(e.contains("do not go together"), "{e}");
    let missing = TlsFiles {
        cert: dir.path().join("none.pem"),
        key: files.key.clone(),
    };
    let e = nomos_issuer::http::tls::load(&missing)
        .unwrap_err()
        .to_string();
    assert!(e.contains("none.pem"), "{e}");
    // The key file's content never shows in an error.
    std::fs::write(
        &files.key,
        "-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWtleQ==\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let e = nomos_issuer::http::tls::load(&files)
        .unwrap_err()
        .to_string();
    assert!(!e.contains("c2VjcmV0"), "{e}");
}

/// The per-address limit on token requests answers 429 with Retry-After;
/// discovery and JWKS are not limited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_address_rate_limit_answers_429_with_retry_after() {
    let app = TestApp::spawn_with(Backend::Sqlite, |s| {
        s.auth_failure_limit = 0;
        s.address_rate_limit = 3;
    })
    .await;
    let a = create_org(app.store().as_ref(), "acme").await;
    let b = create_org(app.store().as_ref(), "beta").await;
    let mut responses = Vec::new();
    for i in 0..10 {
        let (c, s) = if i % 2 == 0 {
            ("org/acme", &a)
        } else {
            ("org/beta", &b)
        };
        responses.push(app.token_basic(c, s, "").await);
    }
    let codes: Vec<u16> = responses.iter().map(|r| r.status().as_u16()).collect();
    assert!(
        codes.iter().filter(|c| **c == 429).count() >= 3,
        "{codes:?}"
    );
    let r = responses.into_iter().find(|r| r.status() == 429).unwrap();
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry));
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["error"], "slow_down");
    // Discovery and JWKS are not limited.
    for _ in 0..20 {
        assert_eq!(app.get("/.well-known/jwks.json").await.status(), 200);
    }
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("nomos_issuer_rate_limited_total{limit=\"address\"}"),
        "{metrics}"
    );
}

/// Security headers on every response; request ids minted or echoed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_response_has_security_headers_and_a_request_id() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let mut ids = std::collections::HashSet::new();
    for (method, path) in [
        ("GET", "/.well-known/openid-configuration"),
        ("GET", "/.well-known/jwks.json"),
        ("POST", "/oauth2/token"),
        ("GET", "/admin/v1/orgs"),
        ("GET", "/nowhere"),
        ("GET", "/metrics"),
    ] {
        let r = app
            .http
            .request(method.parse().unwrap(), format!("{}{path}", app.base))
            .send()
            .await
            .unwrap();
        let h = r.headers();
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["x-frame-options"], "DENY", "{path}");
        assert!(
            h["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("default-src 'none'")
        );
        assert_eq!(h["referrer-policy"], "no-referrer");
        assert!(h.contains_key("cache-control"), "{path}");
        assert!(!h.contains_key("strict-transport-security"), "plain http");
        let id = h["x-request-id"].to_str().unwrap().to_owned();
        assert!(id.len() >= 16, "{path}: {id}");
        assert!(ids.insert(id), "request ids are unique");
    }
    // Discovery keeps its own caching; the token endpoint is never cached.
    let r = app.get("/.well-known/jwks.json").await;
    assert!(
        r.headers()["cache-control"]
            .to_str()
            .unwrap()
            .starts_with("public")
    );
    let r = app.token_form("grant_type=client_credentials").await;
    assert_eq!(r.headers()["cache-control"], "no-store");
    // A caller's request id is kept, for tracing across a proxy.
    let r = app
        .http
        .get(format!("{}/healthz", app.base))
        .header("x-request-id", "trace-123")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"], "trace-123");
    // An overlong one is replaced by the issuer's own.
    let long = "x".repeat(200);
    let r = app
        .http
        .get(format!("{}/healthz", app.base))
        .header("x-request-id", &long)
        .send()
        .await
        .unwrap();
    let id = r.headers()["x-request-id"].to_str().unwrap();
    assert!(id != long && id.len() < 40, "{id}");
}

/// Too many or too large headers: 431.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_headers_get_431() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let mut req = app.http.get(format!("{}/healthz", app.base));
    for i in 0..70 {
        req = req.header(format!("x-h{i}"), "v");
    }
    assert_eq!(req.send().await.unwrap().status(), 431);
    let r = app
        .http
        .get(format!("{}/healthz", app.base))
        .header("x-big", "a".repeat(20 * 1024))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 431);
}

/// At the concurrency limit a request is shed with 503 at once instead of
/// queueing; token requests cannot take the capacity of the JWKS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_over_the_concurrency_limit_are_shed() {
    let app = TestApp::spawn_with(Backend::Sqlite, |s| s.max_concurrency = 1).await;
    // A request whose body never finishes holds the only slot for work.
    let mut slow = tokio::net::TcpStream::connect(app.server().addr)
        .await
        .unwrap();
    slow.write_all(
        b"POST /oauth2/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\ngrant_type=",
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = app.token_form("grant_type=client_credentials").await;
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "1");
    // The documents have their own.
    assert_eq!(app.get("/.well-known/jwks.json").await.status(), 200);
    assert_eq!(app.get("/healthz").await.status(), 200);
    drop(slow);
    let mut ok = false;
    for _ in 0..20 {
        if app
            .token_form("grant_type=client_credentials")
            .await
            .status()
            == 401
        {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ok, "the slot is free again once the slow client left");
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("nomos_issuer_refused_total{reason=\"work_at_capacity\"}"),
        "{metrics}"
    );
}

/// `/metrics` covers tokens by org and outcome, latency, document requests,
/// key ages and transitions, the audit queue and commit time, and the pools.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_cover_tokens_keys_audit_and_pools() {
    let app = TestApp::spawn(Backend::Postgres).await;
    let secret = create_org(app.store().as_ref(), "acme").await;
    app.token_ok("org/acme", &secret).await;
    app.token_ok("org/acme", &secret).await;
    assert_eq!(app.token_basic("org/acme", "wrong", "").await.status(), 401);
    app.get("/.well-known/jwks.json").await;
    app.get("/.well-known/openid-configuration").await;
    let r = app.get("/metrics").await;
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    let m = r.text().await.unwrap();
    let value = |prefix: &str| -> f64 {
        m.lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix} in\n{m}"))
            .rsplit(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    assert_eq!(
        value("nomos_issuer_tokens_total{org=\"acme\",outcome=\"issued\"}"),
        2.0
    );
    assert_eq!(
        value("nomos_issuer_tokens_total{org=\"-\",outcome=\"invalid_client\"}"),
        1.0
    );
    assert_eq!(
        value("nomos_issuer_token_request_duration_seconds_count"),
        3.0
    );
    assert_eq!(value("nomos_issuer_requests_total{endpoint=\"jwks\"}"), 1.0);
    assert_eq!(
        value("nomos_issuer_requests_total{endpoint=\"discovery\"}"),
        1.0
    );
    assert!(value("nomos_issuer_audit_commit_duration_seconds_count") >= 1.0);
    assert_eq!(value("nomos_issuer_audit_queue_depth"), 0.0);
    let kid = app.server().app.keys.get().signer.kid().to_owned();
    let age = value(&format!(
        "nomos_issuer_signing_key_age_seconds{{kid=\"{kid}\",alg=\"ES256\",state=\"current\"}}"
    ));
    assert!((0.0..60.0).contains(&age), "{age}");
    let next = value(&format!(
        "nomos_issuer_signing_key_next_transition_seconds{{kid=\"{kid}\",alg=\"ES256\",state=\"current\",transition=\"replaced\"}}"
    ));
    let period = app.settings.rotation.rotation_period as f64;
    assert!(next > period - 60.0 && next <= period, "{next}");
    assert!(value("nomos_issuer_db_pool_max_connections{pool=\"main\"}") >= 1.0);
    assert!(value("nomos_issuer_db_pool_max_connections{pool=\"audit\"}") >= 1.0);
    assert!(m.contains("nomos_issuer_db_pool_connections{pool=\"main\",state=\"idle\"}"));
    assert!(m.trim_end().ends_with("# EOF"));
}
