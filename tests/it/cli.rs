//! The real binary: the embedded default from an empty directory, CLI errors,
//! a wrong KEK, Postgres set-up, and SIGTERM during load.

use crate::common;

use std::path::Path;
use std::time::Duration;

use common::process::*;
use common::*;
use nomos_issuer::keys::keyring::fingerprint;
use serde_json::Value;

#[tokio::test]
async fn embedded_default_from_an_empty_directory() {
    let dir = tempfile::tempdir().unwrap();
    let org = json_out(&run(dir.path(), &["org", "create", "acme", "--json"], &[]));
    assert_eq!(org["client_id"], "org/acme");
    let secret = org["client_secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("nomos_cs_") && secret.len() >= 9 + 43);
    let agent = json_out(&run(
        dir.path(),
        &["agent", "create", "acme", "deployer", "--json"],
        &[],
    ));
    assert_eq!(agent["client_id"], "org/acme/agent/deployer");
    let serve = Serve::start(dir.path(), &[], &[]).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("keys/kek"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "the generated KEK is private");
        let mode = std::fs::metadata(dir.path().join("data"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "the data directory is private");
    }
    let r = token(
        &serve.base,
        "org/acme/agent/deployer",
        agent["client_secret"].as_str().unwrap(),
    )
    .await;
    assert_eq!(r.status(), 200);
    let t: Value = r.json().await.unwrap();
    let jwks: Value = reqwest::get(format!("{}/.well-known/jwks.json", serve.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let c = josekit_verify(t["access_token"].as_str().unwrap(), &jwks).unwrap();
    assert_eq!(
        c["iss"],
        serve.base.as_str(),
        "the default issuer follows the bound address"
    );
    assert_eq!(token(&serve.base, "org/acme", &secret).await.status(), 200);
    let (status, log) = serve.terminate();
    assert!(status.success(), "{log}");
    assert!(log.contains("stopped"), "{log}");
    assert!(!log.contains(&secret), "no secret in the log");
    // keys list shows the current and next key.
    let keys = json_out(&run(dir.path(), &["keys", "list", "--json"], &[]));
    let states: Vec<&str> = keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["state"].as_str().unwrap())
        .collect();
    assert_eq!(states.len(), 2);
    assert!(states.contains(&"current") && states.contains(&"next"));
    let table = run(dir.path(), &["keys", "list"], &[]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        text.contains("KID") && text.contains("current") && text.contains("next"),
        "{text}"
    );
}

#[tokio::test]
async fn bad_ids_unknown_orgs_and_duplicates_create_nothing() {
    let dir = tempfile::tempdir().unwrap();
    // Invalid input exits 2, and is refused before the store is opened.
    for bad in ["Acme", "a_b", "a-", "a/b", "acme*", "", "é"] {
        let o = run(dir.path(), &["org", "create", bad], &[]);
        assert_eq!(o.status.code(), Some(2), "{bad}");
        assert!(stderr(&o).contains("invalid org id"), "{}", stderr(&o));
    }
    for (args, words) in [
        (
            &["org", "create", "x", "--max-ttl", "3601"][..],
            "--max-ttl",
        ),
        (&["org", "create", "x", "--max-ttl", "0"], "1-3600 seconds"),
        (
            &["org", "create", "x", "--audience", "a", "--audience", "a"],
            "given twice",
        ),
        (
            &["org", "create", "x", "--audience", "a b"],
            "invalid audience",
        ),
        (&["agent", "create", "acme", "Bad"], "invalid agent id"),
        (&["agent", "list", "ACME"], "invalid org id"),
        (
            &["credential", "add", "acme", "--agent", "B"],
            "invalid agent id",
        ),
        (&["org", "update", "acme"], "nothing to update"),
        (&["org", "update", "acme", "--max-ttl", "9999"], "--max-ttl"),
        (
            &["org", "set-claims", "acme", "--tag", "team=a"],
            "session tags",
        ),
        (
            &[
                "org",
                "set-claims",
                "acme",
                "--session-tags",
                "--tag",
                "team",
            ],
            "KEY=VALUE",
        ),
        (
            &[
                "agent",
                "create",
                "acme",
                "ci",
                "--public-key",
                "missing.pem",
            ],
            "missing.pem",
        ),
    ] {
        let o = run(dir.path(), args, &[]);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(words), "{args:?}: {}", stderr(&o));
    }
    assert!(
        !dir.path().join("data").exists(),
        "no store was opened for invalid input"
    );
    json_out(&run(dir.path(), &["org", "create", "acme", "--json"], &[]));
    let o = run(dir.path(), &["org", "create", "acme"], &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("already exists"), "{}", stderr(&o));
    let o = run(dir.path(), &["agent", "create", "nobody", "a"], &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("does not exist"), "{}", stderr(&o));
    let store = embedded_store(dir.path()).await;
    for s in [
        "org/Acme",
        "org/nobody",
        "org/nobody/agent/a",
        "org/acme/agent/bad",
        "org/x",
    ] {
        if let Ok(subject) = nomos_issuer::ids::Subject::parse(s) {
            assert!(store.principal(&subject).await.unwrap().is_none(), "{s}");
        }
    }
}

#[tokio::test]
async fn agents_register_public_keys_not_private_ones() {
    let dir = tempfile::tempdir().unwrap();
    json_out(&run(dir.path(), &["org", "create", "acme", "--json"], &[]));
    let pair = josekit::jws::ES256.generate_key_pair().unwrap();
    let public = serde_json::to_string(pair.to_jwk_public_key().as_ref()).unwrap();
    let private = serde_json::to_string(pair.to_jwk_private_key().as_ref()).unwrap();
    std::fs::write(
        dir.path().join("pub.json"),
        format!("{{\"keys\":[{public}]}}"),
    )
    .unwrap();
    std::fs::write(dir.path().join("priv.json"), &private).unwrap();
    let o = run(
        dir.path(),
        &[
            "agent",
            "create",
            "acme",
            "leaky",
            "--public-key",
            "priv.json",
        ],
        &[],
    );
    assert!(!o.status.success());
    assert!(stderr(&o).contains("private"), "{}", stderr(&o));
    let out = json_out(&run(
        dir.path(),
        &[
            "agent",
            "create",
            "acme",
            "ci",
            "--public-key",
            "pub.json",
            "--json",
        ],
        &[],
    ));
    assert!(out.get("client_secret").is_none());
    assert_eq!(out["auth_method"], "private_key_jwt");
    assert_eq!(out["key_ids"].as_array().unwrap().len(), 1);
    let store = embedded_store(dir.path()).await;
    assert!(
        store
            .principal(&"org/acme/agent/leaky".parse_subject())
            .await
            .unwrap()
            .is_none()
    );
}

trait ParseSubject {
    fn parse_subject(&self) -> nomos_issuer::ids::Subject;
}
impl ParseSubject for str {
    fn parse_subject(&self) -> nomos_issuer::ids::Subject {
        nomos_issuer::ids::Subject::parse(self).unwrap()
    }
}

#[tokio::test]
async fn token_mint_is_audited_and_bounded() {
    let dir = tempfile::tempdir().unwrap();
    json_out(&run(
        dir.path(),
        &["org", "create", "acme", "--max-ttl", "600", "--json"],
        &[],
    ));
    let out = json_out(&run(
        dir.path(),
        &["token", "mint", "acme", "--ttl", "120", "--json"],
        &[],
    ));
    let t = out["access_token"].as_str().unwrap();
    let c = claims(t);
    assert_eq!(c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(), 120);
    assert_eq!(c["sub"], "org/acme");
    let store = embedded_store(dir.path()).await;
    let row = store
        .token(c["jti"].as_str().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.auth_method, "cli");
    // The token verifies against the JWKS the server then publishes.
    let serve = Serve::start(dir.path(), &[], &[]).unwrap();
    let jwks: Value = reqwest::get(format!("{}/.well-known/jwks.json", serve.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    josekit_verify(t, &jwks).unwrap();
    drop(serve);
    for (args, why) in [
        (vec!["token", "mint", "acme", "--ttl", "601"], "--ttl"),
        (
            vec!["token", "mint", "acme", "--audience", "other"],
            "audience",
        ),
        (
            vec!["token", "mint", "acme", "ghost"],
            "nomos-issuer agent create acme ghost",
        ),
        (vec!["token", "mint", "nobody"], "does not exist"),
        (vec!["token", "mint", "Acme"], "invalid org id"),
        (vec!["token", "mint", "acme", "a_b"], "invalid agent id"),
    ] {
        // Invalid input: exit 2, as the README's exit codes say.
        let o = run(dir.path(), &args, &[]);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(why), "{args:?}: {}", stderr(&o));
    }
    assert_eq!(
        store.count_tokens().await.unwrap(),
        1,
        "refused mints record nothing"
    );
}

fn snapshot(dir: &Path) -> Vec<u8> {
    let mut all = Vec::new();
    for f in ["data/nomos-issuer.db", "data/nomos-issuer.db-wal"] {
        if let Ok(b) = std::fs::read(dir.join(f)) {
            all.extend(b);
        }
    }
    all
}

#[tokio::test]
async fn a_wrong_or_missing_kek_stops_startup_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    json_out(&run(dir.path(), &["org", "create", "acme", "--json"], &[]));
    drop(Serve::start(dir.path(), &[], &[]).unwrap());
    let store = embedded_store(dir.path()).await;
    let keys_before = fingerprint(&store.list_keys().await.unwrap());
    store.close().await;
    let kek_path = dir.path().join("keys/kek");
    let good_kek = std::fs::read(&kek_path).unwrap();
    // A different KEK.
    std::fs::write(&kek_path, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n").unwrap();
    let before = snapshot(dir.path());
    let err = Serve::start(dir.path(), &[], &[]).err().expect("refused");
    assert!(err.contains("exit status: 3"), "{err}");
    assert!(
        err.contains("key-encryption key") && err.contains(&keys_before[0].0),
        "{err}"
    );
    let o = run(dir.path(), &["token", "mint", "acme"], &[]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    // Through the environment too.
    let o = run(
        dir.path(),
        &["token", "mint", "acme"],
        &[(
            "NOMOS_ISSUER_KEK",
            "BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB=",
        )],
    );
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    // Not base64 of 32 bytes.
    std::fs::write(&kek_path, "short").unwrap();
    let o = run(dir.path(), &["token", "mint", "acme"], &[]);
    assert_eq!(o.status.code(), Some(3));
    assert!(stderr(&o).contains("32 bytes"), "{}", stderr(&o));
    // Missing: never regenerated while keys exist.
    std::fs::remove_file(&kek_path).unwrap();
    let err = Serve::start(dir.path(), &[], &[]).err().expect("refused");
    assert!(err.contains("missing"), "{err}");
    assert!(!kek_path.exists(), "no new KEK was generated");
    assert_eq!(snapshot(dir.path()), before, "the store is untouched");
    // The right KEK brings back the same keys.
    std::fs::write(&kek_path, good_kek).unwrap();
    drop(Serve::start(dir.path(), &[], &[]).unwrap());
    let store = embedded_store(dir.path()).await;
    let keys_after = fingerprint(&store.list_keys().await.unwrap());
    assert_eq!(keys_before, keys_after);
}

#[tokio::test]
async fn configuration_errors_name_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let o = run(
        dir.path(),
        &["org", "create", "acme"],
        &[("NOMOS_ISSUER_TOKEN_TTL", "7200")],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("token_ttl"), "{}", stderr(&o));
    std::fs::write(
        dir.path().join("c.toml"),
        "issuer = \"https://id.example.com/\"\n",
    )
    .unwrap();
    let o = run(dir.path(), &["--config", "c.toml", "keys", "list"], &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("issuer") && stderr(&o).contains("trailing slash"),
        "{}",
        stderr(&o)
    );
    let o = run(dir.path(), &["keys", "list", "--signing-alg", "HS256"], &[]);
    assert_eq!(o.status.code(), Some(2));
    let help = run(dir.path(), &["serve", "--help"], &[]);
    let text = String::from_utf8_lossy(&help.stdout);
    for want in [
        "NOMOS_ISSUER_LISTEN",
        "NOMOS_ISSUER_DATABASE_URL",
        "NOMOS_ISSUER_KEK_FILE",
        "--migrate",
    ] {
        assert!(text.contains(want), "{want} in serve --help");
    }
}

#[tokio::test]
async fn postgres_wants_migrate_and_an_operator_kek() {
    let db = TestDb::new(Backend::Postgres).await;
    let dir = tempfile::tempdir().unwrap();
    let url = db.url.as_str();
    let env = [("NOMOS_ISSUER_DATABASE_URL", url)];
    let err = Serve::start(dir.path(), &[], &env).err().expect("refused");
    assert!(err.contains("nomos-issuer migrate"), "{err}");
    let o = run(dir.path(), &["migrate"], &env);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = Serve::start(dir.path(), &[], &env)
        .err()
        .expect("refused without a KEK");
    assert!(err.contains("no key-encryption key"), "{err}");
    assert!(
        !dir.path().join("keys/kek").exists(),
        "Postgres never gets a generated KEK"
    );
    let kek = "q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=";
    let env = [
        ("NOMOS_ISSUER_DATABASE_URL", url),
        ("NOMOS_ISSUER_KEK", kek),
    ];
    let org = json_out(&run(dir.path(), &["org", "create", "acme", "--json"], &env));
    let serve = Serve::start(dir.path(), &[], &env).unwrap();
    assert_eq!(
        token(
            &serve.base,
            "org/acme",
            org["client_secret"].as_str().unwrap()
        )
        .await
        .status(),
        200
    );
    let (status, log) = serve.terminate();
    assert!(status.success(), "{log}");
    assert!(!log.contains(kek));
}

#[tokio::test]
async fn sigterm_under_load_loses_no_audit_row() {
    let db = TestDb::new(Backend::Postgres).await;
    let dir = tempfile::tempdir().unwrap();
    let kek = "q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=";
    let env = [
        ("NOMOS_ISSUER_DATABASE_URL", db.url.as_str()),
        ("NOMOS_ISSUER_KEK", kek),
    ];
    assert!(run(dir.path(), &["migrate"], &env).status.success());
    let org = json_out(&run(dir.path(), &["org", "create", "acme", "--json"], &env));
    let secret = org["client_secret"].as_str().unwrap().to_owned();
    let serve = Serve::start(dir.path(), &[], &env).unwrap();
    let base = serve.base.clone();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (base, secret) = (base.clone(), secret.clone());
        tasks.push(tokio::spawn(async move {
            let mut jtis = Vec::new();
            for _ in 0..40 {
                // Once the server stops, connections are refused or closed: the worker ends.
                let r = match tokio::time::timeout(
                    Duration::from_secs(5),
                    try_token(&base, "org/acme", &secret),
                )
                .await
                {
                    Ok(Ok(r)) => r,
                    _ => break,
                };
                if r.status() != 200 {
                    break;
                }
                let Ok(v) = r.json::<Value>().await else {
                    break;
                };
                jtis.push(
                    claims(v["access_token"].as_str().unwrap())["jti"]
                        .as_str()
                        .unwrap()
                        .to_owned(),
                );
            }
            jtis
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, log) = tokio::task::spawn_blocking(move || serve.terminate())
        .await
        .unwrap();
    assert!(status.success(), "{log}");
    let mut issued = Vec::new();
    for t in tasks {
        issued.extend(t.await.unwrap());
    }
    assert!(!issued.is_empty());
    let store = nomos_issuer::store::open(&db.url).await.unwrap();
    for jti in &issued {
        assert!(
            store.token(jti).await.unwrap().is_some(),
            "token {jti} was handed out without an audit row"
        );
    }
}

/// `token mint` mints under the issuer serve last served the store under,
/// and refuses, naming both, when it is configured with another one.
#[tokio::test]
async fn token_mint_uses_the_served_issuer_and_refuses_another() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    json_out(&run(d, &["org", "create", "acme", "--json"], &[]));
    let serve = Serve::start(d, &[], &[]).unwrap();
    let base = serve.base.clone();
    let (status, log) = serve.terminate();
    assert!(status.success(), "{log}");
    // Port 0 was served: the default http://127.0.0.1:8080 would be wrong.
    let o = run(d, &["token", "mint", "acme", "--json"], &[]);
    let minted = json_out(&o);
    assert_eq!(
        claims(minted["access_token"].as_str().unwrap())["iss"],
        base.as_str()
    );
    let o = run(
        d,
        &[
            "--issuer",
            "https://id.example.com",
            "token",
            "mint",
            "acme",
        ],
        &[],
    );
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!(
            "this store was last served under the issuer {base}"
        )) && err.contains("configured with https://id.example.com")
            && err.contains("Give the --issuer that serve uses"),
        "{err}"
    );
    assert!(o.stdout.is_empty());
    let o = run(d, &["--issuer", &base, "token", "mint", "acme"], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let store = embedded_store(d).await;
    assert_eq!(
        store.count_tokens().await.unwrap(),
        2,
        "the refusal minted nothing"
    );
}

/// A SIGTERM sent as soon as serve says it listens stops it gracefully: the
/// signal handlers are in place before the address is announced.
#[tokio::test]
async fn sigterm_right_after_listening_is_a_clean_stop() {
    let dir = tempfile::tempdir().unwrap();
    for _ in 0..10 {
        let serve = Serve::start(dir.path(), &[], &[]).unwrap();
        let (status, log) = serve.terminate();
        assert!(status.success(), "{status}: {log}");
        assert!(log.contains("stopped"), "{log}");
    }
}
