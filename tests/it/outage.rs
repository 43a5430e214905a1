//! The Postgres server stops and starts again under load: discovery and JWKS
//! keep answering 200 from memory, minting answers 503 temporarily_unavailable
//! with Retry-After (never a token without an audit row), and everything
//! recovers by itself.

use crate::common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::pg::PrivatePostgres;
use common::{claims, create_org};
use nomos_issuer::config::{ConfigArgs, Settings};
use nomos_issuer::server::Server;
use serde_json::Value;

/// One answered request: when it was sent and answered, status, and what came back.
#[derive(Debug, Clone)]
struct Answer {
    sent: Instant,
    answered: Instant,
    status: u16,
    jti: Option<String>,
    error: Option<String>,
    retry_after: Option<String>,
}

async fn mint(http: &reqwest::Client, base: &str, secret: &str) -> Answer {
    let sent = Instant::now();
    let r = http
        .post(format!("{base}/oauth2/token"))
        .basic_auth("org%2Facme", Some(secret))
        .form(&[("grant_type", "client_credentials")])
        .timeout(Duration::from_secs(20))
        .send()
        .await
        .expect("the issuer answers throughout");
    let status = r.status().as_u16();
    let retry_after = r
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    let v: Value = r.json().await.unwrap();
    Answer {
        sent,
        answered: Instant::now(),
        status,
        jti: v["access_token"]
            .as_str()
            .map(|t| claims(t)["jti"].as_str().unwrap().to_owned()),
        error: v["error"].as_str().map(str::to_owned),
        retry_after,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stops_and_returns_under_load() {
    let pg = PrivatePostgres::start();
    let dir = tempfile::tempdir().unwrap();
    let kek = dir.path().join("kek");
    nomos_issuer::keys::Kek::create_file(&kek).unwrap();
    let settings = Settings::resolve(
        &ConfigArgs {
            listen: Some("127.0.0.1:0".into()),
            database_url: Some(pg.url()),
            kek_file: Some(kek),
            auth_failure_limit: Some(0),
            address_rate_limit: Some(0),
            ..Default::default()
        },
        None,
    )
    .unwrap();
    let server = Server::start(settings, true).await.unwrap();
    let base = format!("http://{}", server.addr);
    let secret = create_org(server.app.store.as_ref(), "acme").await;
    let http = reqwest::Client::new();
    assert_eq!(mint(&http, &base, &secret).await.status, 200);

    let running = Arc::new(AtomicBool::new(true));
    let mut minters = Vec::new();
    for _ in 0..4 {
        let (http, base, secret, running) =
            (http.clone(), base.clone(), secret.clone(), running.clone());
        minters.push(tokio::spawn(async move {
            let mut answers = Vec::new();
            while running.load(Ordering::Relaxed) {
                answers.push(mint(&http, &base, &secret).await);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            answers
        }));
    }
    let readers = {
        let (http, base, running) = (http.clone(), base.clone(), running.clone());
        tokio::spawn(async move {
            let mut statuses = Vec::new();
            while running.load(Ordering::Relaxed) {
                for path in [
                    "/.well-known/jwks.json",
                    "/.well-known/openid-configuration",
                ] {
                    let r = http.get(format!("{base}{path}")).send().await.unwrap();
                    statuses.push((path, r.status().as_u16()));
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            statuses
        })
    };

    tokio::time::sleep(Duration::from_millis(700)).await;
    let stop_began = Instant::now();
    tokio::task::block_in_place(|| pg.stop());
    let stopped = Instant::now();
    // Longer than the store's 2 s wait for a connection, so that requests are
    // answered while it is down.
    tokio::time::sleep(Duration::from_millis(4500)).await;
    let ready_during = http.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(
        ready_during.status(),
        503,
        "not ready while the store is down"
    );
    let restart_began = Instant::now();
    tokio::task::block_in_place(|| pg.resume());
    // Load continues until minting has worked again for a while.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        if mint(&http, &base, &secret).await.status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "minting never recovered");
    }
    let recovered_after = restart_began.elapsed();
    tokio::time::sleep(Duration::from_millis(500)).await;
    running.store(false, Ordering::Relaxed);
    let mut answers = Vec::new();
    for m in minters {
        answers.extend(m.await.unwrap());
    }
    let reads = readers.await.unwrap();

    // Discovery and JWKS: 200 throughout.
    assert!(reads.len() > 20);
    assert!(reads.iter().all(|(_, s)| *s == 200), "{reads:?}");
    // Minting: a token, or 503 temporarily_unavailable with Retry-After.
    for a in &answers {
        match a.status {
            200 => assert!(a.jti.is_some()),
            503 => {
                assert_eq!(a.error.as_deref(), Some("temporarily_unavailable"));
                assert_eq!(a.retry_after.as_deref(), Some("1"));
            }
            other => panic!("unexpected {other}: {a:?}"),
        }
    }
    // Nothing sent while the server was down got a token.
    let during: Vec<&Answer> = answers
        .iter()
        .filter(|a| a.sent >= stopped && a.answered <= restart_began)
        .collect();
    assert!(
        !during.is_empty(),
        "requests were answered during the outage"
    );
    assert!(during.iter().all(|a| a.status == 503), "{during:?}");
    assert!(
        answers
            .iter()
            .any(|a| a.status == 200 && a.sent < stop_began)
    );
    assert!(
        answers
            .iter()
            .any(|a| a.status == 200 && a.sent > restart_began),
        "tokens again after the restart"
    );
    let ready = http.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    // Every token handed out has its audit row.
    let store = server.app.store.clone();
    let issued: Vec<&String> = answers.iter().filter_map(|a| a.jti.as_ref()).collect();
    for jti in &issued {
        assert!(
            store.token(jti).await.unwrap().is_some(),
            "token {jti} has no audit row"
        );
    }
    eprintln!(
        "outage: {} answers ({} tokens, {} 503s during the outage), recovered {:?} after the restart",
        answers.len(),
        issued.len(),
        during.len(),
        recovered_after
    );
    server.stop().await.unwrap();
}

/// The audit's own connection is cut while it waits (a database restart, an idle
/// session closed by the network): the next token costs a reconnect, not an
/// error, and every token still has its audit row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_audit_connection_is_replaced_without_failing_a_token() {
    let app = common::TestApp::spawn(common::Backend::Postgres).await;
    let secret = create_org(app.store().as_ref(), "acme").await;
    app.token_ok("org/acme", &secret).await;
    let admin = sqlx::PgPool::connect(&app.db.url).await.unwrap();
    // Every other session on the issuer's database ends, the audit's included
    // (waiting up to 5 s for each to be gone).
    let cut: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity
         WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    .fetch_all(&admin)
    .await
    .unwrap();
    assert!(!cut.is_empty() && cut.iter().all(|ok| *ok), "{cut:?}");
    for _ in 0..3 {
        let r = app.token_basic("org/acme", &secret, "").await;
        let status = r.status();
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(status, 200, "{body}");
        let token = body["access_token"].as_str().unwrap().to_owned();
        let jti = claims(&token)["jti"].as_str().unwrap().to_owned();
        assert!(app.store().token(&jti).await.unwrap().is_some());
    }
    admin.close().await;
}
