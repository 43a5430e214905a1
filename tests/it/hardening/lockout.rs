//! Failed authentications are counted per client id and source address, and
//! only failures count: nobody can lock a client out by failing in its name,
//! and a flood of made-up client ids costs bounded memory.

use std::time::Duration;

use super::common::{
    Backend, TestApp, assertion, assertion_form, client_key, create_agent, create_key_agent,
    create_org,
};
use super::flood::client_from;

async fn basic(client: &reqwest::Client, app: &TestApp, id: &str, secret: &str) -> u16 {
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    client
        .post(format!("{}/oauth2/token", app.base))
        .basic_auth(enc(id), Some(enc(secret)))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials")
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// The regression of the finding: wrong secrets sent in the name of
/// `org/acme/agent/ci` from another address made 6 of 8 of the real client's
/// requests, with the right secret, answer 429.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_in_a_clients_name_never_locks_it_out() {
    let app = TestApp::spawn_with(Backend::Sqlite, |s| s.auth_failure_limit = 2).await;
    let store = app.store();
    create_org(store.as_ref(), "acme").await;
    let secret = create_agent(store.as_ref(), "acme", "ci").await;
    let (attacker, client) = (client_from("127.0.0.2"), client_from("127.0.0.1"));
    let mut attacked = Vec::new();
    for _ in 0..12 {
        attacked.push(basic(&attacker, &app, "org/acme/agent/ci", "nomos_cs_guess").await);
    }
    // The attacker's failures are counted: a burst of 4, then 429.
    assert_eq!(&attacked[..4], [401; 4], "{attacked:?}");
    assert!(attacked[4..].iter().all(|s| *s == 429), "{attacked:?}");
    // The real client, elsewhere, is not affected.
    for _ in 0..8 {
        assert_eq!(
            basic(&client, &app, "org/acme/agent/ci", &secret).await,
            200
        );
    }
    // Nor is it from the attacker's own address: valid credentials are never
    // refused because someone failed.
    assert_eq!(
        basic(&attacker, &app, "org/acme/agent/ci", &secret).await,
        200
    );
    // After the failure budget refills, a wrong secret is a plain 401 again.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        basic(&attacker, &app, "org/acme/agent/ci", "nomos_cs_guess").await,
        401
    );
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("nomos_issuer_rate_limited_total{limit=\"failures\"}"),
        "{metrics}"
    );
}

/// The same with `private_key_jwt`: bad assertions in a client's name do not
/// stop its good ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_assertions_in_a_clients_name_never_lock_it_out() {
    let app = TestApp::spawn_with(Backend::Sqlite, |s| s.auth_failure_limit = 2).await;
    let key = client_key();
    let other = client_key();
    create_org(app.store().as_ref(), "acme").await;
    create_key_agent(app.store().as_ref(), "acme", "ci", &key.public).await;
    let endpoint = format!("{}/oauth2/token", app.base);
    let post = |client: reqwest::Client, a: String| {
        let endpoint = endpoint.clone();
        async move {
            client
                .post(endpoint)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(assertion_form(&a))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    let attacker = client_from("127.0.0.2");
    let mut attacked = Vec::new();
    for i in 0..10 {
        let forged = assertion(&other, "org/acme/agent/ci", &endpoint, 60, &format!("f{i}"));
        attacked.push(post(attacker.clone(), forged).await);
    }
    assert!(attacked.ends_with(&[429; 6]), "{attacked:?}");
    let client = client_from("127.0.0.1");
    for i in 0..8 {
        let good = assertion(&key, "org/acme/agent/ci", &endpoint, 60, &format!("g{i}"));
        assert_eq!(post(client.clone(), good).await, 200);
    }
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// The regression of the finding: the limiter was keyed by the claimed client
/// id, any string of up to 16 KB, and twelve seconds of unique 15 KB ids took
/// the process from 37 MB to 855 MB. Now a malformed id is refused without
/// being counted, well-formed ones are tracked up to a cap, and memory stays
/// bounded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_unique_client_ids_costs_bounded_memory() {
    let _alone = super::common::exclusive().await;
    let app = TestApp::spawn_with(Backend::Sqlite, |s| s.auth_failure_limit = 20).await;
    let base = app.base.clone();
    let flood = |make: fn(usize) -> String| {
        let base = base.clone();
        async move {
            let http = reqwest::Client::new();
            let mut tasks = tokio::task::JoinSet::new();
            for worker in 0..16 {
                let (http, base) = (http.clone(), base.clone());
                tasks.spawn(async move {
                    for i in 0..250 {
                        let body = format!(
                            "grant_type=client_credentials&client_id={}&client_secret=nomos_cs_x",
                            make(worker * 1000 + i)
                        );
                        let r = http
                            .post(format!("{base}/oauth2/token"))
                            .header("content-type", "application/x-www-form-urlencoded")
                            .body(body)
                            .send()
                            .await
                            .unwrap();
                        assert_eq!(r.status(), 401);
                        r.bytes().await.unwrap();
                    }
                });
            }
            while let Some(t) = tasks.join_next().await {
                t.unwrap();
            }
        }
    };
    // Warm up the allocator and the connection pool before measuring.
    flood(|i| format!("org%2Fwarm{i}")).await;
    let failures = app.server().app.tokens.failure_limit.as_ref().unwrap();
    let before = (rss_kib(), failures.len());
    // 4,000 unique ids of 15 KB each: 60 MB of ids, none of them kept.
    flood(|i| format!("org%2F{i}{}", "x".repeat(15 * 1024))).await;
    let tracked = failures.len();
    assert!(
        tracked <= before.1,
        "malformed ids were counted: {} keys, then {tracked}",
        before.1
    );
    // 4,000 unique well-formed ids: tracked, each costing little.
    flood(|i| format!("org%2Fo{i}")).await;
    let grown = rss_kib().saturating_sub(before.0);
    assert!(failures.len() <= nomos_issuer::ratelimit::DEFAULT_MAX_KEYS);
    assert!(grown < 40 * 1024, "RSS grew {grown} KiB");
    // Unknown subjects are cached as parsed ids only.
    let (_, unknown) = app.server().app.tokens.principals.len();
    assert!(unknown <= 8000, "{unknown}");
}
