//! The management commands of the real binary (`org`, `agent`, `credential`,
//! `admin token`), on the store and, with NOMOS_ADDR and NOMOS_TOKEN, through
//! a running issuer's admin API: the same commands, the same output, and
//! errors that say what to check.

use crate::common;

use std::path::Path;

use common::process::*;
use common::*;
use serde_json::Value;

/// Runs the binary in `dir`; `remote` is (NOMOS_ADDR, NOMOS_TOKEN).
fn cli(dir: &Path, remote: Option<(&str, &str)>, args: &[&str]) -> std::process::Output {
    match remote {
        Some((addr, token)) => run(dir, args, &[("NOMOS_ADDR", addr), ("NOMOS_TOKEN", token)]),
        None => run(dir, args, &[]),
    }
}

/// What a JSON output says once ids and times, which differ between runs, are blanked.
fn shape(mut v: Value) -> Value {
    fn blank(v: &mut Value) {
        match v {
            Value::Object(m) => {
                for (k, x) in m.iter_mut() {
                    let varies = matches!(
                        k.as_str(),
                        "id" | "credential_id"
                            | "created_at"
                            | "revoked_at"
                            | "client_secret"
                            | "kids"
                            | "key_ids"
                    ) && !x.is_null();
                    if varies && !(k == "id" && x.as_str().is_some_and(|s| !s.starts_with("cred_")))
                    {
                        *x = Value::from("*");
                    } else {
                        blank(x);
                    }
                }
            }
            Value::Array(a) => a.iter_mut().for_each(blank),
            _ => {}
        }
    }
    blank(&mut v);
    v
}

/// Every management command, in order; returns the JSON of each, shaped.
fn manage_everything(dir: &Path, remote: Option<(&str, &str)>) -> Vec<Value> {
    let key = client_key();
    std::fs::write(dir.join("ci.jwk"), key.public.to_string()).unwrap();
    let steps: Vec<Vec<&str>> = vec![
        vec![
            "org",
            "create",
            "acme",
            "--audience",
            "sts.amazonaws.com",
            "--audience",
            "api.example",
        ],
        vec!["org", "create", "beta"],
        vec!["org", "list"],
        vec!["org", "show", "acme"],
        vec!["org", "update", "acme", "--max-ttl", "600"],
        vec!["org", "update", "acme", "--audience", "api.example"],
        vec![
            "org",
            "set-claims",
            "acme",
            "--session-tags",
            "--tag",
            "team=blue",
        ],
        vec!["agent", "create", "acme", "deployer"],
        vec!["agent", "create", "acme", "ci", "--public-key", "ci.jwk"],
        vec!["agent", "list", "acme"],
        vec!["agent", "show", "acme", "ci"],
        vec!["agent", "set-claims", "acme", "ci", "--source-identity"],
        vec!["agent", "set-claims", "acme", "ci", "--inherit"],
        vec!["credential", "add", "acme", "--agent", "deployer"],
        vec!["credential", "add", "acme", "--public-key", "ci.jwk"],
        vec!["credential", "list", "acme", "--agent", "deployer"],
    ];
    let mut out = Vec::new();
    for step in steps {
        let mut args = step.clone();
        args.push("--json");
        let o = cli(dir, remote, &args);
        assert!(o.status.success(), "{step:?}: {}", stderr(&o));
        let v: Value =
            serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{step:?}: {e}"));
        out.push(v);
    }
    // Revoke the first secret of the deployer, by the id `credential list` shows.
    let list = out.last().unwrap()["credentials"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(list.len(), 2);
    let first = list[0]["id"].as_str().unwrap();
    let o = cli(
        dir,
        remote,
        &[
            "credential",
            "revoke",
            "acme",
            first,
            "--agent",
            "deployer",
            "--json",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    out.push(serde_json::from_slice(&o.stdout).unwrap());
    let o = cli(
        dir,
        remote,
        &[
            "credential",
            "list",
            "acme",
            "--agent",
            "deployer",
            "--json",
        ],
    );
    let after = json_out(&o);
    assert!(after["credentials"][0]["revoked_at"].is_i64(), "{after}");
    assert!(after["credentials"][1]["revoked_at"].is_null(), "{after}");
    out.push(after);
    out.into_iter().map(shape).collect()
}

async fn the_same_commands_act_on_the_store_and_through_the_admin_api(backend: Backend) {
    // On the embedded store of a directory.
    let here = tempfile::tempdir().unwrap();
    let local = manage_everything(here.path(), None);
    // Through a running issuer's admin API, from a directory with no store.
    let app = TestApp::spawn(backend).await;
    let token = create_admin_token(app.store().as_ref(), "adm_cli").await;
    let elsewhere = tempfile::tempdir().unwrap();
    let remote = manage_everything(elsewhere.path(), Some((&app.base, &token)));
    assert!(
        !elsewhere.path().join("data").exists(),
        "no store was opened where the commands ran"
    );
    assert_eq!(local.len(), remote.len());
    for (i, (l, r)) in local.iter().zip(&remote).enumerate() {
        assert_eq!(l, r, "step {i}: the same output either way");
    }
    // The issuer holds what the commands made.
    let acme = app
        .store()
        .org(&nomos_issuer::ids::OrgId::parse("acme").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(acme.policy.max_ttl, 600);
    assert_eq!(acme.policy.audiences[0].as_str(), "api.example");
    assert_eq!(
        local[3]["audiences"],
        serde_json::json!(["sts.amazonaws.com", "api.example"])
    );
    assert_eq!(local[5]["audiences"], serde_json::json!(["api.example"]));
    assert_eq!(local[8]["auth_method"], "private_key_jwt");
    let principal = app
        .store()
        .principal(&nomos_issuer::ids::Subject::parse("org/acme/agent/ci").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert!(
        principal.session_claims().tags,
        "ci inherits acme's session tags"
    );
    assert_eq!(principal.public_keys().len(), 1);

    // Text output, too, from both.
    for (dir, remote) in [
        (here.path(), None),
        (elsewhere.path(), Some((app.base.as_str(), token.as_str()))),
    ] {
        let o = cli(dir, remote, &["org", "list"]);
        let text = String::from_utf8_lossy(&o.stdout);
        let header = text.lines().next().unwrap();
        let acme = text.lines().find(|l| l.starts_with("acme ")).unwrap();
        assert_eq!(
            header.find("MAX TTL").unwrap() + "MAX TTL".len(),
            acme.find("600 s").unwrap() + "600 s".len(),
            "the columns line up:\n{text}"
        );
        let o = cli(
            dir,
            remote,
            &["credential", "list", "acme", "--agent", "deployer"],
        );
        let text = String::from_utf8_lossy(&o.stdout);
        assert!(text.contains("KIND") && text.contains("secret"), "{text}");
        let o = cli(dir, remote, &["credential", "add", "acme"]);
        let text = String::from_utf8_lossy(&o.stdout);
        assert!(
            text.contains("nomos_cs_") && text.contains("shown only once"),
            "{text}"
        );
        // Errors carry the same words either way.
        let o = cli(dir, remote, &["org", "show", "nobody"]);
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
        assert!(
            stderr(&o).contains("org nobody does not exist"),
            "{}",
            stderr(&o)
        );
        let o = cli(dir, remote, &["credential", "add", "acme"]);
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
        assert!(
            stderr(&o).contains("already has 2 active secrets: revoke one first"),
            "{}",
            stderr(&o)
        );
        let o = cli(dir, remote, &["credential", "revoke", "acme", "cred_nope"]);
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
        assert!(stderr(&o).contains("cred_nope"), "{}", stderr(&o));
        let o = cli(dir, remote, &["org", "create", "acme"]);
        assert!(stderr(&o).contains("already exists"), "{}", stderr(&o));
    }
}

/// `org update` through the admin API reaches the token endpoint of the
/// replica that made it before the command returns.
async fn a_remote_policy_update_reaches_the_token_endpoint_at_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = create_admin_token(app.store().as_ref(), "adm_cli").await;
    let dir = tempfile::tempdir().unwrap();
    let remote = Some((app.base.as_str(), token.as_str()));
    let org = json_out(&cli(
        dir.path(),
        remote,
        &[
            "org",
            "create",
            "acme",
            "--audience",
            "sts.amazonaws.com",
            "--audience",
            "api.example",
            "--json",
        ],
    ));
    let secret = org["client_secret"].as_str().unwrap();
    let r = app
        .token_basic("org/acme", secret, "&audience=api.example")
        .await;
    assert_eq!(r.status(), 200);
    json_out(&cli(
        dir.path(),
        remote,
        &[
            "org",
            "update",
            "acme",
            "--audience",
            "sts.amazonaws.com",
            "--json",
        ],
    ));
    let r = app
        .token_basic("org/acme", secret, "&audience=api.example")
        .await;
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"], "invalid_target");
}

both_backends!(
    the_same_commands_act_on_the_store_and_through_the_admin_api,
    a_remote_policy_update_reaches_the_token_endpoint_at_once,
);

// Multi-threaded: the server runs in this process while the binary is waited for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_errors_say_what_to_check() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let token = create_admin_token(app.store().as_ref(), "adm_cli").await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let free = format!("http://127.0.0.1:{}", free_port());
    // (environment, exit code, words of the error)
    type Case<'a> = (Vec<(&'a str, &'a str)>, i32, Vec<&'a str>);
    let cases: Vec<Case> = vec![
        // A wrong token: 401, said as such.
        (
            vec![
                ("NOMOS_ADDR", app.base.as_str()),
                ("NOMOS_TOKEN", "nomos_at_wrong"),
            ],
            1,
            vec![
                "refused the admin token (401)",
                "wrong, expired or revoked",
                "admin token create",
            ],
        ),
        // Nothing listens there.
        (
            vec![
                ("NOMOS_ADDR", free.as_str()),
                ("NOMOS_TOKEN", token.as_str()),
            ],
            1,
            vec!["connection refused", free.as_str(), "is the issuer running"],
        ),
        // No such host.
        (
            vec![
                ("NOMOS_ADDR", "https://nomos-issuer.invalid"),
                ("NOMOS_TOKEN", token.as_str()),
            ],
            1,
            vec!["cannot be resolved", "nomos-issuer.invalid"],
        ),
        // An address without a token, a token without an address.
        (
            vec![("NOMOS_ADDR", app.base.as_str())],
            2,
            vec!["needs an admin token", "NOMOS_TOKEN"],
        ),
        (
            vec![("NOMOS_TOKEN", token.as_str())],
            2,
            vec!["no issuer", "NOMOS_ADDR"],
        ),
        // The token never travels in clear to another machine.
        (
            vec![
                ("NOMOS_ADDR", "http://id.example.com"),
                ("NOMOS_TOKEN", token.as_str()),
            ],
            2,
            vec!["https", "http://id.example.com"],
        ),
        (
            vec![
                ("NOMOS_ADDR", "id.example.com:8080"),
                ("NOMOS_TOKEN", token.as_str()),
            ],
            2,
            vec!["like https://issuer.example.com"],
        ),
    ];
    for (env, code, words) in cases {
        let o = run(d, &["org", "list"], &env);
        assert_eq!(o.status.code(), Some(code), "{env:?}: {}", stderr(&o));
        for w in words {
            assert!(stderr(&o).contains(w), "{env:?}: {w:?} in {}", stderr(&o));
        }
        assert!(!stderr(&o).contains(&token), "the token is never printed");
    }
    // The flags do what the environment does.
    let o = run(
        d,
        &[
            "org", "list", "--addr", &app.base, "--token", &token, "--json",
        ],
        &[],
    );
    assert_eq!(json_out(&o)["orgs"], serde_json::json!([]));
    // A revoked token is refused like a wrong one.
    app.store()
        .revoke_admin_token("adm_cli", nomos_issuer::app::now())
        .await
        .unwrap();
    let o = run(
        d,
        &["org", "list"],
        &[("NOMOS_ADDR", &app.base), ("NOMOS_TOKEN", token.as_str())],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("(401)"), "{}", stderr(&o));
    assert!(!d.join("data").exists(), "no store was opened");
}

/// Over `serve --dev-tls`: an unknown CA points to --ca-file, which fixes it.
#[tokio::test]
async fn a_private_ca_is_trusted_with_ca_file() {
    let server_dir = tempfile::tempdir().unwrap();
    let s = server_dir.path();
    let admin = json_out(&run(s, &["admin", "token", "create", "--json"], &[]));
    let token = admin["token"].as_str().unwrap().to_owned();
    let serve = Serve::start(s, &["--dev-tls"], &[]).unwrap();
    assert!(serve.base.starts_with("https://"), "{}", serve.base);
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("NOMOS_ADDR", serve.base.as_str()),
        ("NOMOS_TOKEN", token.as_str()),
    ];
    let o = run(dir.path(), &["org", "create", "acme"], &env);
    assert_eq!(o.status.code(), Some(1));
    for w in ["not signed by a CA", "--ca-file", "keys/dev-ca.pem"] {
        assert!(stderr(&o).contains(w), "{w:?} in {}", stderr(&o));
    }
    let ca = s.join("keys/dev-ca.pem");
    let ca = ca.to_str().unwrap();
    let org = json_out(&run(
        dir.path(),
        &["org", "create", "acme", "--ca-file", ca, "--json"],
        &env,
    ));
    assert_eq!(org["client_id"], "org/acme");
    let env = [env[0], env[1], ("NOMOS_CA_FILE", ca)];
    let list = json_out(&run(dir.path(), &["org", "list", "--json"], &env));
    assert_eq!(list["orgs"][0]["id"], "acme");
    let o = run(
        dir.path(),
        &["org", "list", "--ca-file", "missing.pem"],
        &env[..2],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("missing.pem"), "{}", stderr(&o));
}

/// A PEM public key is converted to a JWK; the agent then authenticates with
/// the private key.
#[tokio::test]
async fn pem_public_keys_are_registered_as_jwks() {
    use openssl::ec::{EcGroup, EcKey};
    use openssl::nid::Nid;
    use openssl::pkey::PKey;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    json_out(&run(d, &["org", "create", "acme", "--json"], &[]));
    let key = PKey::from_ec_key(
        EcKey::generate(&EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap()).unwrap(),
    )
    .unwrap();
    std::fs::write(d.join("public.pem"), key.public_key_to_pem().unwrap()).unwrap();
    let private = key.private_key_to_pem_pkcs8().unwrap();
    std::fs::write(d.join("private.pem"), &private).unwrap();

    let o = run(
        d,
        &[
            "agent",
            "create",
            "acme",
            "leaky",
            "--public-key",
            "private.pem",
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    for w in ["private key", "openssl pkey -in KEY.pem -pubout"] {
        assert!(stderr(&o).contains(w), "{w:?} in {}", stderr(&o));
    }
    std::fs::write(
        d.join("junk.pem"),
        "-----BEGIN PUBLIC KEY-----\nMAA=\n-----END PUBLIC KEY-----\n",
    )
    .unwrap();
    let o = run(
        d,
        &["credential", "add", "acme", "--public-key", "junk.pem"],
        &[],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("junk.pem") && stderr(&o).contains("cannot be read"),
        "{}",
        stderr(&o)
    );

    let out = json_out(&run(
        d,
        &[
            "agent",
            "create",
            "acme",
            "ci",
            "--public-key",
            "public.pem",
            "--json",
        ],
        &[],
    ));
    assert_eq!(out["auth_method"], "private_key_jwt");
    let pair = josekit::jws::ES256.key_pair_from_pem(&private).unwrap();
    let signer = ClientKey {
        signer: josekit::jws::ES256
            .signer_from_jwk(&pair.to_jwk_private_key())
            .unwrap(),
        public: serde_json::to_value(pair.to_jwk_public_key().as_ref()).unwrap(),
    };
    let serve = Serve::start(d, &[], &[]).unwrap();
    let a = assertion(
        &signer,
        "org/acme/agent/ci",
        &format!("{}/oauth2/token", serve.base),
        60,
        "j1",
    );
    let r = reqwest::Client::new()
        .post(format!("{}/oauth2/token", serve.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(assertion_form(&a))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
}

#[tokio::test]
async fn admin_tokens_get_a_default_name_and_may_expire() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let plain = json_out(&run(
        d,
        &["admin", "token", "create", "--json"],
        &[("USER", "alice")],
    ));
    let name = plain["name"].as_str().unwrap();
    assert!(
        name.starts_with("alice 20") && name.ends_with('Z'),
        "{name}"
    );
    assert_eq!(plain["expires_at"], Value::Null);
    let short = json_out(&run(
        d,
        &[
            "admin",
            "token",
            "create",
            "--name",
            "ci",
            "--expires-in",
            "1",
            "--json",
        ],
        &[],
    ));
    let month = json_out(&run(
        d,
        &[
            "admin",
            "token",
            "create",
            "--name",
            "m",
            "--expires-in",
            "30d",
            "--json",
        ],
        &[],
    ));
    let now = nomos_issuer::app::now();
    let at = month["expires_at"].as_i64().unwrap();
    assert!((now + 30 * 86_400 - at).abs() < 60, "{month}");
    for (args, words) in [
        (vec!["--expires-in", "soon"], "30d"),
        (vec!["--expires-in", "0"], "at least one second"),
        (vec!["--name", " "], "1-200 characters"),
    ] {
        let mut all = vec!["admin", "token", "create"];
        all.extend(&args);
        let o = run(d, &all, &[]);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(words), "{args:?}: {}", stderr(&o));
    }
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let list = json_out(&run(d, &["admin", "token", "list", "--json"], &[]));
    let mut states: Vec<(&str, &str)> = list["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["name"].as_str().unwrap(), t["state"].as_str().unwrap()))
        .collect();
    states.sort();
    assert_eq!(
        states,
        [(name, "active"), ("ci", "expired"), ("m", "active")]
    );
    let text = run(d, &["admin", "token", "list"], &[]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("EXPIRES") && text.contains("expired") && text.contains("never"),
        "{text}"
    );
    // The expired token is refused by the server like a revoked one.
    let serve = Serve::start(d, &[], &[]).unwrap();
    let env = [
        ("NOMOS_ADDR", serve.base.as_str()),
        ("NOMOS_TOKEN", short["token"].as_str().unwrap()),
    ];
    let o = run(tempfile::tempdir().unwrap().path(), &["org", "list"], &env);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("wrong, expired or revoked"),
        "{}",
        stderr(&o)
    );
    let env = [env[0], ("NOMOS_TOKEN", month["token"].as_str().unwrap())];
    json_out(&run(
        tempfile::tempdir().unwrap().path(),
        &["org", "list", "--json"],
        &env,
    ));
    let revoked = json_out(&run(
        d,
        &[
            "admin",
            "token",
            "revoke",
            month["id"].as_str().unwrap(),
            "--json",
        ],
        &[],
    ));
    assert_eq!(revoked["revoked"], true);
}
