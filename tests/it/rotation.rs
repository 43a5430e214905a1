//! Key rotation end to end: a caching verifier across rotations, two replicas
//! on one Postgres with racing operators, kill -9 mid-rotation, and the
//! operator commands.

use crate::common;

use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, Instant};

use common::process::*;
use common::*;
use nomos_issuer::keys::rotation::Policy;
use nomos_issuer::keys::{Alg, KeyState};
use serde_json::Value;

both_backends!(a_caching_verifier_never_fails_across_rotations);

/// A compressed schedule: publish lead 3 s, a rotation every 3 s, tokens of 2 s.
fn compressed(alg: Alg) -> Policy {
    Policy {
        alg,
        rotation_period: 3,
        jwks_max_age: 2,
        margin: 1,
        max_token_lifetime: 2,
        verifier_skew: 1,
    }
}

/// Fetches the JWKS and how long the response says it may be cached.
async fn fetch_jwks(http: &reqwest::Client, base: &str) -> (Value, Duration) {
    let r = http
        .get(format!("{base}/.well-known/jwks.json"))
        .send()
        .await
        .unwrap();
    let cc = r.headers()["cache-control"].to_str().unwrap().to_owned();
    let age: u64 = cc
        .strip_prefix("public, max-age=")
        .unwrap()
        .parse()
        .unwrap();
    (r.json().await.unwrap(), Duration::from_secs(age))
}

async fn a_caching_verifier_never_fails_across_rotations(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| {
        s.rotation = compressed(Alg::ES256);
        s.token_ttl = 2;
        s.key_check_interval = Duration::from_secs(1);
    })
    .await;
    let secret = create_org(app.store().as_ref(), "acme").await;
    // A verifier that honours Cache-Control and never refetches on an unknown kid:
    // the worst case the invariant must cover.
    let mut cache: Option<(Value, Instant, Duration)> = None;
    let (mut verified, mut failures, mut fetches) = (0, Vec::new(), 0);
    let mut signers = Vec::<String>::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while signers.len() < 5 && Instant::now() < deadline {
        // Under load: 8 concurrent mints per round.
        let mut batch = Vec::new();
        for _ in 0..8 {
            let (http, base, secret) = (app.http.clone(), app.base.clone(), secret.clone());
            batch.push(tokio::spawn(async move {
                mint_post(&http, &base, "org/acme", &secret).await
            }));
        }
        for t in batch {
            let token = t.await.unwrap();
            let kid = header(&token)["kid"].as_str().unwrap().to_owned();
            if !signers.contains(&kid) {
                signers.push(kid);
            }
            if cache
                .as_ref()
                .is_none_or(|(_, at, age)| at.elapsed() >= *age)
            {
                let (jwks, age) = fetch_jwks(&app.http, &app.base).await;
                assert!(jwks["keys"].as_array().unwrap().len() <= 4, "{jwks}");
                cache = Some((jwks, Instant::now(), age));
                fetches += 1;
            }
            match josekit_verify(&token, &cache.as_ref().unwrap().0) {
                Ok(_) => verified += 1,
                Err(e) => failures.push(e),
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!(
        "{backend:?}: {verified} tokens verified by a caching verifier across {} signing keys, {} failures",
        signers.len(),
        failures.len()
    );
    assert!(
        signers.len() >= 4,
        "at least three rotations happened: {signers:?}"
    );
    assert!(
        failures.is_empty(),
        "{} of {} verifications failed: {failures:?}",
        failures.len(),
        verified + failures.len()
    );
    assert!(
        verified > 200 && fetches > 3,
        "verified {verified}, fetched {fetches}"
    );
}

const KEK: &str = "q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=";

fn env_for(db: &TestDb) -> Vec<(&'static str, String)> {
    vec![
        ("NOMOS_ISSUER_DATABASE_URL", db.url.clone()),
        ("NOMOS_ISSUER_KEK", KEK.to_owned()),
        ("NOMOS_ISSUER_JWKS_MAX_AGE", "1".into()),
        ("NOMOS_ISSUER_ROTATION_MARGIN", "1s".into()),
        ("NOMOS_ISSUER_MAX_TOKEN_LIFETIME", "2".into()),
        ("NOMOS_ISSUER_TOKEN_TTL", "2".into()),
        ("NOMOS_ISSUER_VERIFIER_SKEW", "1".into()),
        ("NOMOS_ISSUER_KEY_CHECK_INTERVAL", "1s".into()),
    ]
}

fn as_refs<'a>(env: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    env.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

async fn etag(http: &reqwest::Client, base: &str) -> Option<String> {
    let r = http
        .get(format!("{base}/.well-known/jwks.json"))
        .send()
        .await
        .ok()?;
    Some(r.headers().get("etag")?.to_str().ok()?.to_owned())
}

/// Waits until both replicas serve the same JWKS; returns how long that took.
async fn converge(http: &reqwest::Client, a: &str, b: &str, kids: &HashSet<String>) -> Duration {
    let start = Instant::now();
    loop {
        let (ja, jb) = (fetch_jwks(http, a).await.0, fetch_jwks(http, b).await.0);
        let set = |j: &Value| {
            j["keys"]
                .as_array()
                .unwrap()
                .iter()
                .map(|k| k["kid"].as_str().unwrap().to_owned())
                .collect::<HashSet<_>>()
        };
        if ja == jb && &set(&ja) == kids && etag(http, a).await == etag(http, b).await {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "replicas never converged"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn published_kids(db: &TestDb) -> HashSet<String> {
    let store = nomos_issuer::store::open(&db.url).await.unwrap();
    let kids = store
        .list_keys()
        .await
        .unwrap()
        .into_iter()
        .filter(|k| k.state.is_published())
        .map(|k| k.kid)
        .collect();
    store.close().await;
    kids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_and_racing_operators_rotate_exactly_once() {
    let db = TestDb::new(Backend::Postgres).await;
    let dir = tempfile::tempdir().unwrap();
    let mut env = env_for(&db);
    env.push(("NOMOS_ISSUER_ROTATION_PERIOD", "1h".into()));
    let env = as_refs(&env);
    assert!(run(dir.path(), &["migrate"], &env).status.success());
    let a = Serve::start(dir.path(), &[], &env).unwrap();
    let b = Serve::start(dir.path(), &[], &env).unwrap();
    let http = reqwest::Client::new();
    let mut worst = converge(&http, &a.base, &b.base, &published_kids(&db).await).await;
    for round in 0..3 {
        // Wait out the publish lead of the newest next key (1 s cache + 1 s margin).
        tokio::time::sleep(Duration::from_millis(2100)).await;
        let before = nomos_issuer::store::open(&db.url)
            .await
            .unwrap()
            .list_keys()
            .await
            .unwrap();
        let racers: Vec<_> = (0..4)
            .map(|_| {
                let (dir, env) = (
                    dir.path().to_owned(),
                    env.iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect::<Vec<_>>(),
                );
                std::thread::spawn(move || {
                    let env: Vec<(&str, &str)> =
                        env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                    run(&dir, &["keys", "rotate"], &env)
                })
            })
            .collect();
        let outputs: Vec<_> = racers.into_iter().map(|t| t.join().unwrap()).collect();
        let winners = outputs.iter().filter(|o| o.status.success()).count();
        assert_eq!(
            winners,
            1,
            "round {round}: exactly one operator rotated: {:?}",
            outputs.iter().map(stderr).collect::<Vec<_>>()
        );
        for o in outputs.iter().filter(|o| !o.status.success()) {
            let e = stderr(o);
            assert!(
                e.contains("can sign safely from"),
                "a loser says when it could rotate: {e}"
            );
        }
        let after = nomos_issuer::store::open(&db.url)
            .await
            .unwrap()
            .list_keys()
            .await
            .unwrap();
        assert_eq!(
            after.len(),
            before.len() + 1,
            "exactly one new key per transition"
        );
        let count = |s| after.iter().filter(|k| k.state == s).count();
        assert_eq!((count(KeyState::Current), count(KeyState::Next)), (1, 1));
        let took = converge(&http, &a.base, &b.base, &published_kids(&db).await).await;
        worst = worst.max(took);
    }
    assert!(
        worst <= Duration::from_secs(2),
        "replicas converged in {worst:?}"
    );
    eprintln!("worst replica convergence after a transition: {worst:?}");
    for s in [a, b] {
        let (status, log) = s.terminate();
        assert!(status.success(), "{log}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_rotation_leaves_a_consistent_store() {
    let db = TestDb::new(Backend::Postgres).await;
    let dir = tempfile::tempdir().unwrap();
    let mut env = env_for(&db);
    env.push(("NOMOS_ISSUER_ROTATION_PERIOD", "2s".into()));
    let env = as_refs(&env);
    assert!(run(dir.path(), &["migrate"], &env).status.success());
    let org = json_out(&run(dir.path(), &["org", "create", "acme", "--json"], &env));
    let secret = org["client_secret"].as_str().unwrap().to_owned();
    for i in 0..6u64 {
        let s = Serve::start(dir.path(), &[], &env).unwrap();
        // Emergency rotations from the side, killed at whatever point they reached.
        let mut side = std::process::Command::new(bin())
            .current_dir(dir.path())
            .args(["keys", "rotate", "--now"])
            .envs(env.iter().copied())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(300 + 450 * (i % 4)));
        let _ = side.kill();
        let _ = side.wait();
        drop(s); // SIGKILL
    }
    let s = Serve::start(dir.path(), &[], &env).unwrap();
    let store = nomos_issuer::store::open(&db.url).await.unwrap();
    let keys = store.list_keys().await.unwrap();
    let count = |st| keys.iter().filter(|k| k.state == st).count();
    assert_eq!(count(KeyState::Current), 1, "{keys:?}");
    assert_eq!(count(KeyState::Next), 1, "{keys:?}");
    for k in &keys {
        assert_eq!(
            k.private_key.is_some(),
            k.state.is_published(),
            "{} {:?}",
            k.kid,
            k.state
        );
    }
    // The served set matches the store (the schedule keeps moving: retry briefly).
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(3);
    let jwks = loop {
        let (jwks, _) = fetch_jwks(&http, &s.base).await;
        let served: HashSet<String> = jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap().to_owned())
            .collect();
        if served == published_kids(&db).await {
            break jwks;
        }
        assert!(
            Instant::now() < deadline,
            "served {served:?} never matched the store"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let r = token(&s.base, "org/acme", &secret).await;
    assert_eq!(r.status(), 200);
    let t: Value = r.json().await.unwrap();
    // The signer was published before the JWKS above was served (it had to wait the lead).
    let t = t["access_token"].as_str().unwrap();
    if let Err(e) = josekit_verify(t, &jwks) {
        let (fresh, _) = fetch_jwks(&http, &s.base).await;
        panic!(
            "{e}: signer {} not in {jwks} (now {fresh})",
            header(t)["kid"]
        );
    }
}

fn list_json(dir: &Path, env: &[(&str, &str)]) -> Vec<Value> {
    json_out(&run(dir, &["keys", "list", "--json"], env))["keys"]
        .as_array()
        .unwrap()
        .clone()
}

fn kid_in(keys: &[Value], state: &str) -> String {
    keys.iter().find(|k| k["state"] == state).unwrap()["kid"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_commands_explain_and_act() {
    let dir = tempfile::tempdir().unwrap();
    let env: Vec<(&str, &str)> = vec![];
    // Default schedule: the next key is not ready right after first start.
    let s = Serve::start(dir.path(), &[], &env).unwrap();
    let o = run(dir.path(), &["keys", "rotate"], &env);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(
        e.contains("can sign safely from") && e.contains("keys rotate --now"),
        "{e}"
    );
    // The time is RFC 3339, as everywhere else, not Unix seconds.
    let from = e.split("can sign safely from ").nth(1).unwrap();
    let from = from.split_whitespace().next().unwrap();
    assert!(
        humantime::parse_rfc3339(from).is_ok() && from.ends_with('Z'),
        "{from} in {e}"
    );
    let keys = list_json(dir.path(), &env);
    let (current, next) = (kid_in(&keys, "current"), kid_in(&keys, "next"));
    assert_eq!(
        keys.iter().find(|k| k["state"] == "next").unwrap()["next_transition"],
        "signs"
    );
    let table =
        String::from_utf8_lossy(&run(dir.path(), &["keys", "list"], &env).stdout).into_owned();
    assert!(
        table.contains("NEXT TRANSITION") && table.contains("replaced 20"),
        "{table}"
    );
    // Emergency rotation: a fresh key signs at once, the old one stays published.
    let o = run(dir.path(), &["keys", "rotate", "--now"], &env);
    assert!(o.status.success(), "{}", stderr(&o));
    // Its log lines say what happened in words, not as Rust `Debug` values.
    let log = stderr(&o);
    assert!(
        log.contains("a fresh ES256 key signs at once (emergency rotation)"),
        "{log}"
    );
    assert!(!log.contains(" { ") && !log.contains("[\""), "{log}");
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        out.contains("signs now") && out.contains("warning") && out.contains("may reject"),
        "{out}"
    );
    let keys = list_json(dir.path(), &env);
    let fresh = kid_in(&keys, "current");
    assert!(fresh != current && fresh != next);
    assert_eq!(kid_in(&keys, "previous"), current);
    assert_eq!(kid_in(&keys, "next"), next);
    // The running server picks it up within 2 s.
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let (jwks, _) = fetch_jwks(&http, &s.base).await;
        let kids: Vec<&str> = jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap())
            .collect();
        if kids.contains(&fresh.as_str()) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the server did not publish the emergency key in 2 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Revoking the signing key: out of the JWKS at once, the next key takes over.
    let o = run(dir.path(), &["keys", "revoke", &fresh], &env);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("revoked"));
    let keys = list_json(dir.path(), &env);
    assert_eq!(kid_in(&keys, "current"), next);
    assert_eq!(kid_in(&keys, "revoked"), fresh);
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let (jwks, _) = fetch_jwks(&http, &s.base).await;
        if !jwks.to_string().contains(&fresh) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the revoked key stayed in the JWKS"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let o = run(dir.path(), &["keys", "revoke", &fresh], &env);
    assert!(
        !o.status.success() && stderr(&o).contains("already revoked"),
        "{}",
        stderr(&o)
    );
    let o = run(dir.path(), &["keys", "revoke", "no-such-kid"], &env);
    assert!(
        !o.status.success() && stderr(&o).contains("no signing key"),
        "{}",
        stderr(&o)
    );
    drop(s);
    // Unsafe schedules are refused, naming both settings.
    let o = run(dir.path(), &["serve", "--rotation-period", "2m"], &env);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("rotation_period") && stderr(&o).contains("jwks_max_age"),
        "{}",
        stderr(&o)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rewrap_moves_every_key_to_the_active_kek() {
    let dir = tempfile::tempdir().unwrap();
    let old = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
    let new = "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=";
    std::fs::write(dir.path().join("old.kek"), old).unwrap();
    std::fs::write(dir.path().join("new.kek"), new).unwrap();
    let with_old = [("NOMOS_ISSUER_KEK_FILE", "old.kek")];
    drop(Serve::start(dir.path(), &[], &with_old).unwrap());
    let kek_ids = |env: &[(&str, &str)]| -> HashSet<String> {
        list_json(dir.path(), env)
            .iter()
            .filter_map(|k| k["kek_id"].as_str().map(str::to_owned))
            .collect()
    };
    let old_ids = kek_ids(&with_old);
    assert_eq!(old_ids.len(), 1);
    // Only the new KEK: refused, naming the KEK the keys need.
    let only_new = [("NOMOS_ISSUER_KEK_FILE", "new.kek")];
    let o = run(dir.path(), &["keys", "rotate"], &only_new);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(old_ids.iter().next().unwrap()),
        "{}",
        stderr(&o)
    );
    // New active, old still configured: rewrap.
    let both = [
        ("NOMOS_ISSUER_KEK_FILE", "new.kek"),
        ("NOMOS_ISSUER_PREVIOUS_KEK_FILES", "old.kek"),
    ];
    let o = run(dir.path(), &["keys", "rewrap"], &both);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("re-wrapped 2"),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    let new_ids = kek_ids(&both);
    assert_eq!(new_ids.len(), 1);
    assert!(new_ids.is_disjoint(&old_ids));
    // Now the new KEK alone is enough, and the old one alone is not.
    let s = Serve::start(dir.path(), &[], &only_new).unwrap();
    drop(s);
    let o = run(dir.path(), &["keys", "rotate"], &with_old);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let o = run(dir.path(), &["keys", "rewrap"], &only_new);
    assert!(String::from_utf8_lossy(&o.stdout).contains("re-wrapped 0"));
}

/// A reload that read the keys before a change never replaces the view of one
/// that read them after it: once a change's own reload returns, the view
/// matches the store and stays so, however many reloads race with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_reloads_never_bring_back_an_older_view() {
    use nomos_issuer::keys::keyring::fingerprint;
    use nomos_issuer::keys::rotation::Request;
    let app = TestApp::spawn(Backend::Postgres).await;
    let manager = app.server().app.manager.clone();
    let ring = app.server().app.keys.clone();
    let store = app.store();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut racers = Vec::new();
    for _ in 0..4 {
        let (m, stop) = (manager.clone(), stop.clone());
        racers.push(tokio::spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = m.reload().await;
            }
        }));
    }
    for _ in 0..40 {
        manager
            .run(&Request::RotateNow, nomos_issuer::app::now())
            .await
            .unwrap();
        manager.reload().await.unwrap();
        let stored = fingerprint(&store.list_keys().await.unwrap());
        for _ in 0..5 {
            assert_eq!(ring.get().fingerprint, stored, "an older view came back");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for r in racers {
        r.await.unwrap();
    }
}
