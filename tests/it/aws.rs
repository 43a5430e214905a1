//! The AWS kit: trust policies judged by an independent IAM engine, the CLI's
//! Terraform against the module's, lint, session claims in tokens, the doctor
//! against good and broken HTTPS issuers, and the workload helper.

use crate::common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use common::process::*;
use common::*;
use nomos_issuer::aws::doctor::{CheckArgs, check};
use nomos_issuer::aws::session::SessionClaims;
use nomos_issuer::ids::Subject;
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls;

const ACCOUNT: &str = "111122223333";
const ISSUER: &str = "https://id.example.com/orgs/acme";

fn repo(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

/// `aws trust-policy` through the real binary.
fn trust_policy(dir: &Path, issuer: &str, extra: &[&str], format: &str) -> String {
    let mut args = vec![
        "--issuer",
        issuer,
        "aws",
        "trust-policy",
        "--account",
        ACCOUNT,
        "--format",
        format,
        // Policies for orgs this test's store does not hold.
        "--allow-unknown",
    ];
    args.extend_from_slice(extra);
    let o = run(dir, &args, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    String::from_utf8(o.stdout).unwrap()
}

/// Asks the independent IAM simulator (tests/iam) whether `policy` admits the request.
fn simulate(policy_file: &Path, action: &str, sub: &str, aud: &str) -> String {
    let hp = "id.example.com/orgs/acme";
    let request = json!({
        "action": action,
        "principal": format!("arn:aws:iam::{ACCOUNT}:oidc-provider/{hp}"),
        "role_arn": format!("arn:aws:iam::{ACCOUNT}:role/test"),
        "context": {format!("{hp}:sub"): sub, format!("{hp}:aud"): aud},
    });
    let out = Command::new("node")
        .arg(repo("tests/iam/simulate.mjs"))
        .arg(policy_file)
        .arg(request.to_string())
        .output()
        .expect("node runs (bash tests/iam/install.sh)");
    let verdict = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "{verdict} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    verdict
}

/// Our own evaluator must agree with the independent one.
fn ours(policy: &Value, action: &str, sub: &str, aud: &str) -> &'static str {
    use nomos_issuer::aws::iam::{Verdict, evaluate, parse};
    let hp = "id.example.com/orgs/acme";
    let ctx = [
        (format!("{hp}:sub"), sub.to_owned()),
        (format!("{hp}:aud"), aud.to_owned()),
    ]
    .into_iter()
    .collect();
    match evaluate(
        &parse(policy).unwrap(),
        &format!("arn:aws:iam::{ACCOUNT}:oidc-provider/{hp}"),
        &[action],
        &ctx,
    ) {
        Verdict::Allowed => "Allowed",
        Verdict::ImplicitlyDenied => "ImplicitlyDenied",
        Verdict::ExplicitlyDenied => "ExplicitlyDenied",
        Verdict::NotEvaluated(_) => "NotEvaluated",
    }
}

#[test]
fn generated_policies_admit_exactly_the_intended_subject() {
    let dir = tempfile::tempdir().unwrap();
    const ASSUME: &str = "sts:AssumeRoleWithWebIdentity";
    // (trust-policy flags, [(action, sub, aud, expected verdict)])
    type Request<'a> = (&'a str, &'a str, &'a str, &'a str);
    let cases: Vec<(Vec<&str>, Vec<Request>)> = vec![
        (
            vec!["--org", "acme", "--agent", "deployer"],
            vec![
                (
                    ASSUME,
                    "org/acme/agent/deployer",
                    "sts.amazonaws.com",
                    "Allowed",
                ),
                (
                    ASSUME,
                    "org/beta/agent/deployer",
                    "sts.amazonaws.com",
                    "ImplicitlyDenied",
                ),
                (
                    ASSUME,
                    "org/acme/agent/other",
                    "sts.amazonaws.com",
                    "ImplicitlyDenied",
                ),
                (
                    ASSUME,
                    "org/acme-agent/agent/deployer",
                    "sts.amazonaws.com",
                    "ImplicitlyDenied",
                ),
                (ASSUME, "org/acme", "sts.amazonaws.com", "ImplicitlyDenied"),
                (
                    ASSUME,
                    "org/acme/agent/deployer",
                    "other.example",
                    "ImplicitlyDenied",
                ),
                (
                    "sts:TagSession",
                    "org/acme/agent/deployer",
                    "sts.amazonaws.com",
                    "ImplicitlyDenied",
                ),
            ],
        ),
        (
            vec!["--org", "acme", "--any-agent"],
            vec![
                (ASSUME, "org/acme/agent/x", "sts.amazonaws.com", "Allowed"),
                (
                    ASSUME,
                    "org/acme-agent/agent/x",
                    "sts.amazonaws.com",
                    "ImplicitlyDenied",
                ),
                (
                    ASSUME,
                    "org/acmex/agent/x",
                    "sts.amazonaws.com",
                    "ImplicitlyDenied",
                ),
                (
                    ASSUME,
                    "org/beta/agent/x",
                    "sts.amazonaws.com",
                    "ImplicitlyDenied",
                ),
                (ASSUME, "org/acme", "sts.amazonaws.com", "ImplicitlyDenied"),
                (ASSUME, "org/acme/agent/x", "wrong", "ImplicitlyDenied"),
            ],
        ),
        (
            vec![
                "--org",
                "acme",
                "--agent",
                "deployer",
                "--tags",
                "--audience",
                "vault.example",
            ],
            vec![
                (
                    "sts:TagSession",
                    "org/acme/agent/deployer",
                    "vault.example",
                    "Allowed",
                ),
                (
                    ASSUME,
                    "org/acme/agent/deployer",
                    "vault.example",
                    "Allowed",
                ),
                (
                    ASSUME,
                    "org/acme/agent/deployer",
                    "sts.amazonaws.com",
                    "ImplicitlyDenied",
                ),
            ],
        ),
    ];
    for (i, (args, requests)) in cases.into_iter().enumerate() {
        let text = trust_policy(dir.path(), ISSUER, &args, "json");
        let policy: Value = serde_json::from_str(&text).unwrap();
        let file = dir.path().join(format!("policy{i}.json"));
        std::fs::write(&file, &text).unwrap();
        for (action, sub, aud, want) in requests {
            assert_eq!(
                simulate(&file, action, sub, aud),
                want,
                "{args:?}: {action} {sub} {aud}"
            );
            assert_eq!(
                ours(&policy, action, sub, aud),
                want,
                "our evaluator: {args:?}: {action} {sub} {aud}"
            );
        }
        // The generated policy passes our own lint.
        let o = run(
            dir.path(),
            &[
                "--issuer",
                ISSUER,
                "aws",
                "lint",
                "--allow-unknown",
                file.to_str().unwrap(),
            ],
            &[],
        );
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
    }
}

/// Evaluates an HCL file with `terraform` offline and returns one output.
fn terraform_output(hcl: &str, output: &str) -> Value {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("main.tf"), hcl).unwrap();
    let tf = |args: &[&str]| {
        let o = Command::new("terraform")
            .arg(format!("-chdir={}", dir.path().display()))
            .args(args)
            .env("CHECKPOINT_DISABLE", "1")
            .env_remove("TF_CLI_CONFIG_FILE")
            .output()
            .expect("terraform is installed");
        assert!(
            o.status.success(),
            "terraform {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        o.stdout
    };
    tf(&["init", "-input=false", "-no-color"]);
    tf(&["apply", "-auto-approve", "-input=false", "-no-color"]);
    serde_json::from_slice(
        &serde_json::from_slice::<Value>(&tf(&["output", "-json", output]))
            .map(|v| v.as_str().unwrap().as_bytes().to_vec())
            .unwrap(),
    )
    .unwrap()
}

#[test]
fn the_cli_terraform_equals_the_module_and_the_json() {
    let dir = tempfile::tempdir().unwrap();
    for (args, module_args) in [
        (
            vec!["--org", "acme", "--agent", "deployer"],
            ["acme", "deployer", "sts.amazonaws.com", "false", "false"],
        ),
        (
            vec![
                "--org",
                "acme",
                "--any-agent",
                "--tags",
                "--source-identity",
            ],
            ["acme", "-", "sts.amazonaws.com", "true", "true"],
        ),
        (
            vec![
                "--org",
                "acme-corp",
                "--agent",
                "9lives",
                "--audience",
                "vault.example",
            ],
            ["acme-corp", "9lives", "vault.example", "false", "false"],
        ),
    ] {
        let json: Value =
            serde_json::from_str(&trust_policy(dir.path(), ISSUER, &args, "json")).unwrap();
        let hcl = trust_policy(dir.path(), ISSUER, &args, "terraform");
        let name = hcl
            .lines()
            .find_map(|l| l.trim().strip_prefix("output \""))
            .unwrap()
            .trim_end_matches(" {")
            .trim_end_matches('"')
            .to_owned();
        // What the user's own `terraform fmt -check` says of it.
        let tf = dir.path().join("trust.tf");
        std::fs::write(&tf, &hcl).unwrap();
        let fmt = Command::new("terraform")
            .args(["fmt", "-check", "-diff"])
            .arg(&tf)
            .env("CHECKPOINT_DISABLE", "1")
            .output()
            .expect("terraform is installed");
        assert!(
            fmt.status.success(),
            "{args:?}: terraform fmt -check:\n{}",
            String::from_utf8_lossy(&fmt.stdout)
        );
        let from_cli_hcl = terraform_output(&hcl, &name);
        assert_eq!(
            from_cli_hcl, json,
            "{args:?}: the Terraform rendering is the same policy"
        );
        let out = Command::new("bash")
            .arg(repo("deploy/terraform/render-trust-policy.sh"))
            .args(module_args)
            .args([ISSUER, ACCOUNT])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let from_module: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            from_module, json,
            "{args:?}: the module renders the same policy as the CLI"
        );
    }
    let o = Command::new("terraform")
        .args(["fmt", "-check", "-recursive"])
        .arg(repo("deploy/terraform"))
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "terraform fmt -check: {}",
        String::from_utf8_lossy(&o.stdout)
    );
}

#[tokio::test]
async fn lint_exits_non_zero_on_holes_and_knows_the_issuers_tags() {
    let dir = tempfile::tempdir().unwrap();
    let hp = "id.example.com/orgs/acme";
    let write = |name: &str, cond: Value, actions: Value, principal: &str| {
        let doc = json!({"Version": "2012-10-17", "Statement": [{"Sid": "S", "Effect": "Allow",
            "Principal": {"Federated": principal}, "Action": actions, "Condition": cond}]});
        let p = dir.path().join(name);
        std::fs::write(&p, doc.to_string()).unwrap();
        p
    };
    let ours = format!("arn:aws:iam::{ACCOUNT}:oidc-provider/{hp}");
    let assume = json!("sts:AssumeRoleWithWebIdentity");
    let cases = [
        (
            write(
                "wild.json",
                json!({"StringLike": {format!("{hp}:sub"): "org/acme*", format!("{hp}:aud"): "sts.amazonaws.com"}}),
                assume.clone(),
                &ours,
            ),
            "crosses org boundaries",
        ),
        (
            write(
                "noaud.json",
                json!({"StringEquals": {format!("{hp}:sub"): "org/acme/agent/a"}}),
                assume.clone(),
                &ours,
            ),
            "no condition on",
        ),
        (
            write(
                "other.json",
                json!({"StringEquals": {format!("{hp}:sub"): "org/acme/agent/a", format!("{hp}:aud"): "x"}}),
                assume.clone(),
                &format!(
                    "arn:aws:iam::{ACCOUNT}:oidc-provider/token.actions.githubusercontent.com"
                ),
            ),
            "another URL",
        ),
    ];
    for (file, want) in &cases {
        let o = run(
            dir.path(),
            &["--issuer", ISSUER, "aws", "lint", file.to_str().unwrap()],
            &[],
        );
        let out = String::from_utf8_lossy(&o.stdout);
        assert_eq!(o.status.code(), Some(1), "{out}");
        assert!(out.contains(want) && out.contains("fix:"), "{out}");
    }
    // Tags on in the issuer, sts:TagSession missing in the policy: an error.
    let env = [("NOMOS_ISSUER_ISSUER", ISSUER)];
    json_out(&run(dir.path(), &["org", "create", "acme", "--json"], &env));
    json_out(&run(
        dir.path(),
        &["agent", "create", "acme", "a", "--json"],
        &env,
    ));
    let o = run(
        dir.path(),
        &[
            "org",
            "set-claims",
            "acme",
            "--session-tags",
            "--tag",
            "team=payments",
            "--transitive-tag",
            "org",
        ],
        &env,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let good = write(
        "good.json",
        json!({"StringEquals": {format!("{hp}:sub"): "org/acme/agent/a", format!("{hp}:aud"): "sts.amazonaws.com"}}),
        assume,
        &ours,
    );
    let o = run(dir.path(), &["aws", "lint", good.to_str().unwrap()], &env);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(out.contains("sts:TagSession"), "{out}");
    // The agent opts out: clean again.
    assert!(
        run(dir.path(), &["agent", "set-claims", "acme", "a"], &env)
            .status
            .success()
    );
    let o = run(dir.path(), &["aws", "lint", good.to_str().unwrap()], &env);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
    // AWS's limits are enforced when the setting is made.
    for (args, want) in [
        (
            vec!["org", "set-claims", "acme", "--tag", "k=v"],
            "need session tags",
        ),
        (
            vec![
                "org",
                "set-claims",
                "acme",
                "--session-tags",
                "--tag",
                "aws:x=v",
            ],
            "reserved",
        ),
        (
            vec![
                "org",
                "set-claims",
                "acme",
                "--session-tags",
                "--tag",
                "novalue",
            ],
            "KEY=VALUE",
        ),
        (
            vec![
                "org",
                "set-claims",
                "acme",
                "--session-tags",
                "--transitive-tag",
                "nope",
            ],
            "not a tag key",
        ),
        (
            vec!["org", "set-claims", "nobody", "--session-tags"],
            "does not exist",
        ),
    ] {
        let o = run(dir.path(), &args, &env);
        assert!(!o.status.success(), "{args:?}");
        assert!(stderr(&o).contains(want), "{args:?}: {}", stderr(&o));
    }
}

both_backends!(session_claims_reach_tokens);

async fn session_claims_reach_tokens(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let store = app.store();
    let org_secret = create_org(store.as_ref(), "acme").await;
    let agent_secret = create_agent(store.as_ref(), "acme", "deployer").await;
    // Off by default.
    let c = claims(&app.token_ok("org/acme/agent/deployer", &agent_secret).await);
    assert!(c.get("https://aws.amazon.com/tags").is_none());
    let mut on = SessionClaims {
        tags: true,
        source_identity: true,
        ..Default::default()
    };
    on.extra_tags.insert("team".into(), "payments".into());
    on.transitive = vec!["org".into()];
    store
        .set_session_claims(&Subject::parse("org/acme").unwrap(), Some(&on))
        .await
        .unwrap();
    // A failed match re-reads the principal at once; a cached success may take the
    // cache TTL, so restart to see the new setting.
    let mut app = app;
    app.restart().await;
    let token = app.token_ok("org/acme/agent/deployer", &agent_secret).await;
    let c = josekit_verify(&token, &app.jwks().await).unwrap();
    assert_eq!(
        c["https://aws.amazon.com/tags"],
        json!({
        "principal_tags": {"org": ["acme"], "agent": ["deployer"], "team": ["payments"]},
        "transitive_tag_keys": ["org"]})
    );
    assert_eq!(c["https://aws.amazon.com/source_identity"], "deployer@acme");
    let c = claims(&app.token_ok("org/acme", &org_secret).await);
    assert_eq!(
        c["https://aws.amazon.com/tags"]["principal_tags"],
        json!({"org": ["acme"], "team": ["payments"]})
    );
    // An agent override turns them off for that agent only.
    let off = SessionClaims::default();
    store
        .set_session_claims(
            &Subject::parse("org/acme/agent/deployer").unwrap(),
            Some(&off),
        )
        .await
        .unwrap();
    app.restart().await;
    let c = claims(&app.token_ok("org/acme/agent/deployer", &agent_secret).await);
    assert!(
        c.get("https://aws.amazon.com/tags").is_none()
            && c.get("https://aws.amazon.com/source_identity").is_none()
    );
    assert!(
        claims(&app.token_ok("org/acme", &org_secret).await)
            .get("https://aws.amazon.com/tags")
            .is_some()
    );
}

/// A CA, an intermediate and a leaf for localhost: the served chain is [leaf, intermediate].
struct Pki {
    root_pem: String,
    chain: Vec<rustls::pki_types::CertificateDer<'static>>,
    key: rustls::pki_types::PrivateKeyDer<'static>,
}

fn pki() -> Pki {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let ca = |name: &str| {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name.push(DnType::CommonName, name);
        p
    };
    let root_key = KeyPair::generate().unwrap();
    let root_params = ca("nomos test root");
    let root = root_params.self_signed(&root_key).unwrap();
    let root_issuer = Issuer::new(root_params, root_key);
    let int_key = KeyPair::generate().unwrap();
    let int_params = ca("nomos test intermediate");
    let int = int_params.signed_by(&int_key, &root_issuer).unwrap();
    let int_issuer = Issuer::new(int_params, int_key);
    let leaf_key = KeyPair::generate().unwrap();
    let mut leaf_params = CertificateParams::new(vec!["localhost".into()]).unwrap();
    leaf_params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    let leaf = leaf_params.signed_by(&leaf_key, &int_issuer).unwrap();
    Pki {
        root_pem: root.pem(),
        chain: vec![leaf.der().clone(), int.der().clone()],
        key: rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
    }
}

fn check_args(dir: &Path, pki: &Pki) -> CheckArgs {
    let ca = dir.join("root.pem");
    std::fs::write(&ca, &pki.root_pem).unwrap();
    CheckArgs {
        client_id: None,
        client_secret_file: None,
        private_key_file: None,
        audience: "sts.amazonaws.com".into(),
        policy: None,
        ca_file: Some(ca),
        json: false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_doctor_passes_a_good_https_issuer() {
    let pki = pki();
    // The issuer sits behind a TLS terminator on the port its URL names.
    let front = free_port();
    let issuer = format!("https://localhost:{front}");
    let mut app = TestApp::spawn_with(Backend::Sqlite, |s| {
        s.issuer = issuer.clone();
        s.issuer_follows_listen = false;
    })
    .await;
    tls_front_on(&pki, app.server().addr, front).await;
    let store = app.store();
    create_org(store.as_ref(), "acme").await;
    let secret = create_agent(store.as_ref(), "acme", "deployer").await;
    let dir = tempfile::tempdir().unwrap();
    let mut args = check_args(dir.path(), &pki);
    std::fs::write(dir.path().join("secret"), &secret).unwrap();
    args.client_id = Some("org/acme/agent/deployer".into());
    args.client_secret_file = Some(dir.path().join("secret"));
    let policy = trust_policy(
        dir.path(),
        &issuer,
        &["--org", "acme", "--agent", "deployer"],
        "json",
    );
    std::fs::write(dir.path().join("policy.json"), &policy).unwrap();
    args.policy = Some(dir.path().join("policy.json"));
    let report = check(&issuer, &args).await.unwrap();
    let failures: Vec<_> = report
        .rows
        .iter()
        .filter(|r| r.outcome != nomos_issuer::aws::doctor::Outcome::Pass)
        .map(|r| format!("{} {:?} {}", r.check, r.outcome, r.detail))
        .collect();
    assert_eq!(
        failures,
        vec![format!("issuer URL has no port Warn AWS expects no port")],
        "{}",
        report.table()
    );
    let thumb = report
        .rows
        .iter()
        .find(|r| r.check == "thumbprint")
        .unwrap()
        .detail
        .clone();
    let want: String = ring_sha1(&pki.chain[1]);
    assert_eq!(
        thumb, want,
        "the thumbprint is the SHA-1 of the top intermediate"
    );
    // A policy for another agent: the doctor names AccessDenied.
    let other = trust_policy(
        dir.path(),
        &issuer,
        &["--org", "acme", "--agent", "other"],
        "json",
    );
    std::fs::write(dir.path().join("policy.json"), &other).unwrap();
    let report = check(&issuer, &args).await.unwrap();
    assert_eq!(report.failures(), vec!["trust policy admits the token"]);
    assert!(report.table().contains("AccessDenied"));
    // The CLI prints the same thumbprint for create-open-id-connect-provider.
    let o = run(
        dir.path(),
        &[
            "--issuer",
            &issuer,
            "aws",
            "provider",
            "--thumbprint",
            "--ca-file",
            "root.pem",
            "--format",
            "json",
        ],
        &[],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let p: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(p["ThumbprintList"], json!([want]));
    assert_eq!(p["Url"], issuer.as_str());
    app.stop().await;
}

fn ring_sha1(der: &[u8]) -> String {
    let d = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, der);
    d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// A TLS terminator on 127.0.0.1:`port` in front of `backend`, as a proxy in
/// front of the issuer would be.
async fn tls_front_on(pki: &Pki, backend: SocketAddr, port: u16) -> u16 {
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(pki.chain.clone(), pki.key.clone_key())
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let deadline = Instant::now() + Duration::from_secs(5);
    let listener = loop {
        match TcpListener::bind(("127.0.0.1", port)).await {
            Ok(l) => break l,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("{e}"),
        }
    };
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let Ok(mut up) = TcpStream::connect(backend).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut up).await;
            });
        }
    });
    port
}

/// A deliberately broken issuer: discovery and JWKS with one fault each.
async fn broken_issuer(pki: &Pki, fault: &'static str) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let backend = listener.local_addr().unwrap();
    let port = free_port();
    let issuer = format!("https://localhost:{port}");
    let iss = issuer.clone();
    let key = json!({"kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": "k1",
        "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"});
    let app = Router::new()
        .route("/.well-known/openid-configuration", get(move || {
            let iss = iss.clone();
            async move {
                let claimed = if fault == "trailing-slash" { format!("{iss}/") } else { iss.clone() };
                axum::Json(json!({"issuer": claimed, "jwks_uri": format!("{iss}/.well-known/jwks.json"),
                    "token_endpoint": format!("{iss}/oauth2/token")}))
            }
        }))
        .route("/.well-known/jwks.json", get(move || {
            let mut key = key.clone();
            async move {
                match fault {
                    "slow-jwks" => tokio::time::sleep(Duration::from_millis(5500)).await,
                    "enc-key" => key["use"] = "enc".into(),
                    "no-kid" => { key.as_object_mut().unwrap().remove("kid"); }
                    _ => {}
                }
                axum::Json(json!({"keys": [key]}))
            }
        }));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    tls_front_on(pki, backend, port).await;
    issuer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_doctor_names_what_a_broken_issuer_breaks() {
    let pki = pki();
    let dir = tempfile::tempdir().unwrap();
    let args = check_args(dir.path(), &pki);
    for (fault, failing) in [
        ("none", vec![]),
        ("slow-jwks", vec!["JWKS answers within 5 s"]),
        ("trailing-slash", vec!["discovery issuer equals the URL"]),
        ("enc-key", vec!["JWKS keys"]),
        ("no-kid", vec!["JWKS keys"]),
    ] {
        let issuer = broken_issuer(&pki, fault).await;
        let report = check(&issuer, &args).await.unwrap();
        assert_eq!(report.failures(), failing, "{fault}:\n{}", report.table());
        if !failing.is_empty() {
            assert!(
                report.table().contains("InvalidIdentityToken"),
                "{}",
                report.table()
            );
        }
    }
    // A plain-http issuer fails the URL rule, and an unknown CA fails the chain.
    let report = check("http://127.0.0.1:1", &args).await.unwrap();
    assert!(report.failures().contains(&"issuer URL"));
    let issuer = broken_issuer(&pki, "none").await;
    let mut no_ca = check_args(dir.path(), &pki);
    no_ca.ca_file = None;
    let report = check(&issuer, &no_ca).await.unwrap();
    assert!(
        report.failures().contains(&"TLS chain verifies"),
        "{}",
        report.table()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_helper_keeps_a_token_file_fresh_through_a_restart() {
    let port = free_port();
    let listen: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut app = TestApp::spawn_with(Backend::Sqlite, |s| {
        s.listen = listen;
        s.issuer = format!("http://{listen}");
        s.issuer_follows_listen = false;
        s.token_ttl = 3;
    })
    .await;
    let policy = nomos_issuer::principal::OrgPolicy {
        max_ttl: 3,
        ..Default::default()
    };
    create_org_with(app.store().as_ref(), "acme", policy).await;
    let secret = create_agent(app.store().as_ref(), "acme", "deployer").await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("secret"), &secret).unwrap();
    // One shot, with the secret: the file and the environment lines.
    let issuer = format!("http://{listen}");
    let base = ["--issuer", issuer.as_str(), "token"];
    let o = run(
        dir.path(),
        &[
            &base[..],
            &[
                "fetch",
                "--client-id",
                "org/acme/agent/deployer",
                "--client-secret-file",
                "secret",
                "--out",
                "tok",
                "--role-arn",
                "arn:aws:iam::111122223333:role/r",
            ],
        ]
        .concat(),
        &[],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let env = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        env.contains("AWS_WEB_IDENTITY_TOKEN_FILE=")
            && env.contains("AWS_ROLE_ARN=arn:aws:iam::111122223333:role/r"),
        "{env}"
    );
    assert!(
        env.contains("AWS_ROLE_SESSION_NAME=org.acme.agent.deployer"),
        "{env}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(dir.path().join("tok"))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o600
        );
    }
    // With a private key.
    let pair = josekit::jws::ES256.generate_key_pair().unwrap();
    let public = serde_json::to_value(pair.to_jwk_public_key().as_ref()).unwrap();
    create_key_agent(app.store().as_ref(), "acme", "ci", &public).await;
    // A complete private JWK (RFC 7518 §6.2.2): the public x and y with d.
    let mut private = serde_json::to_value(pair.to_jwk_private_key().as_ref()).unwrap();
    for m in ["x", "y", "crv", "kty"] {
        private[m] = public[m].clone();
    }
    std::fs::write(dir.path().join("ci.jwk"), private.to_string()).unwrap();
    let o = run(
        dir.path(),
        &[
            &base[..],
            &[
                "fetch",
                "--client-id",
                "org/acme/agent/ci",
                "--private-key-file",
                "ci.jwk",
                "--out",
                "ci.tok",
            ],
        ]
        .concat(),
        &[],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        claims(
            std::fs::read_to_string(dir.path().join("ci.tok"))
                .unwrap()
                .trim()
        )["sub"],
        "org/acme/agent/ci"
    );
    // A wrong secret: a clear refusal, exit 1.
    std::fs::write(dir.path().join("bad"), "nomos_cs_wrong").unwrap();
    let o = run(
        dir.path(),
        &[
            &base[..],
            &[
                "fetch",
                "--client-id",
                "org/acme/agent/deployer",
                "--client-secret-file",
                "bad",
                "--out",
                "x",
            ],
        ]
        .concat(),
        &[],
    );
    assert!(
        !o.status.success() && stderr(&o).contains("invalid_client"),
        "{}",
        stderr(&o)
    );
    assert!(!dir.path().join("x").exists());
    // The daemon: watch the file across an issuer restart.
    let mut watch = Command::new(bin())
        .current_dir(dir.path())
        .args(
            [
                &base[..],
                &[
                    "watch",
                    "--client-id",
                    "org/acme/agent/deployer",
                    "--client-secret-file",
                    "secret",
                    "--out",
                    "w.tok",
                ],
            ]
            .concat(),
        )
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let file = dir.path().join("w.tok");
    let jwks = app.jwks().await;
    let mut seen = Vec::<String>::new();
    let poll = |seen: &mut Vec<String>| {
        if let Ok(t) = std::fs::read_to_string(&file) {
            // Never a partial file: every read is a whole, verifiable token.
            josekit_verify(&t, &jwks)
                .unwrap_or_else(|e| panic!("partial or bad token file ({e}): {t:?}"));
            if seen.last() != Some(&t) {
                seen.push(t);
            }
        }
    };
    let until = Instant::now() + Duration::from_secs(6);
    while Instant::now() < until {
        poll(&mut seen);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        seen.len() >= 2,
        "refreshed before expiry: {} tokens in 6 s",
        seen.len()
    );
    for t in &seen[1..] {
        let c = claims(t);
        assert!(c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap() == 3);
    }
    let before_restart = seen.len();
    app.stop().await;
    let until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < until {
        poll(&mut seen);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    app.restart().await;
    let until = Instant::now() + Duration::from_secs(8);
    while Instant::now() < until && seen.len() <= before_restart {
        poll(&mut seen);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        seen.len() > before_restart,
        "the helper recovered after the issuer came back"
    );
    Command::new("kill")
        .args(["-TERM", &watch.id().to_string()])
        .status()
        .unwrap();
    let status = watch.wait().unwrap();
    assert!(status.success(), "SIGTERM is a clean exit: {status}");
}

/// What a server received: one text per request (request line, headers, the
/// decoded Basic credentials and the body).
type Received = Arc<std::sync::Mutex<Vec<String>>>;

/// A loopback server that records every request and answers like a token
/// endpoint would, so a client that trusted it would go on as if all was well.
async fn recording_server() -> (String, Received) {
    use base64::Engine;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let received = Received::default();
    let sink = received.clone();
    let app = Router::new().fallback(move |req: axum::extract::Request| {
        let sink = sink.clone();
        async move {
            let mut text = format!("{} {}\n", req.method(), req.uri());
            for (name, value) in req.headers() {
                let value = value.to_str().unwrap_or_default();
                text.push_str(&format!("{name}: {value}\n"));
                if let Some(basic) = value.strip_prefix("Basic ") {
                    let decoded = base64::engine::general_purpose::STANDARD
                        .decode(basic)
                        .unwrap_or_default();
                    text.push_str(&format!("(basic) {}\n", String::from_utf8_lossy(&decoded)));
                }
            }
            let body = axum::body::to_bytes(req.into_body(), 1 << 20)
                .await
                .unwrap_or_default();
            text.push_str(&String::from_utf8_lossy(&body));
            sink.lock().unwrap().push(text);
            axum::Json(json!({"access_token": "a.b.c", "token_type": "Bearer", "expires_in": 300}))
        }
    });
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (base, received)
}

/// An issuer on loopback whose discovery names `token_endpoint` (`{issuer}` is
/// replaced by its own URL), and whose own token endpoint redirects (307, which
/// re-sends the body) to `redirect_to`.
async fn issuer_naming(token_endpoint: &str, redirect_to: &str) -> String {
    let redirect_to = redirect_to.to_owned();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://{}", listener.local_addr().unwrap());
    let discovery = json!({
        "issuer": issuer,
        "jwks_uri": format!("{issuer}/.well-known/jwks.json"),
        "token_endpoint": token_endpoint.replace("{issuer}", &issuer),
    });
    let app = Router::new()
        .route(
            "/.well-known/openid-configuration",
            get(move || async move { axum::Json(discovery) }),
        )
        .route(
            "/.well-known/jwks.json",
            get(|| async { axum::Json(json!({"keys": []})) }),
        )
        .route(
            "/oauth2/token",
            axum::routing::post(move || async move {
                axum::response::Redirect::temporary(&redirect_to)
            }),
        );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    issuer
}

/// `token fetch`, `token watch` and `aws check` send a client secret or a
/// client assertion only to the issuer's own origin, whatever discovery says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workload_clients_send_credentials_only_to_the_issuers_origin() {
    let (elsewhere, received) = recording_server().await;
    // The recorder works: a request to it is seen, with its credentials.
    reqwest::Client::new()
        .post(format!("{elsewhere}/probe"))
        .basic_auth("probe-id", Some("probe-secret"))
        .send()
        .await
        .unwrap();
    assert!(received.lock().unwrap()[0].contains("(basic) probe-id:probe-secret"));
    received.lock().unwrap().clear();

    let elsewhere_token = format!("{elsewhere}/oauth2/token");
    let issuer = issuer_naming(&elsewhere_token, &elsewhere_token).await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let secret = "nomos_cs_this-secret-stays-home";
    std::fs::write(d.join("secret"), secret).unwrap();
    let pair = josekit::jws::ES256.generate_key_pair().unwrap();
    let public = serde_json::to_value(pair.to_jwk_public_key().as_ref()).unwrap();
    let mut private = serde_json::to_value(pair.to_jwk_private_key().as_ref()).unwrap();
    for m in ["x", "y", "crv", "kty"] {
        private[m] = public[m].clone();
    }
    std::fs::write(d.join("ci.jwk"), private.to_string()).unwrap();
    let refusal = format!(
        "the discovery document at {issuer}/.well-known/openid-configuration names a \
         token_endpoint {elsewhere}/oauth2/token on another origin ({elsewhere}); nomos clients \
         send credentials only to the issuer's own origin ({issuer}). Check --issuer, or the \
         proxy in front of the issuer"
    );
    let nothing_received = |what: &str| {
        let received = received.lock().unwrap();
        assert!(
            !received
                .iter()
                .any(|r| r.contains(secret) || r.contains("client_assertion")),
            "{what}: credentials reached another origin: {received:#?}"
        );
        assert!(received.is_empty(), "{what}: {received:#?}");
    };
    let client_id = ["--client-id", "org/acme/agent/deployer"];
    for credential in [
        ["--client-secret-file", "secret"],
        ["--private-key-file", "ci.jwk"],
    ] {
        let o = run(
            d,
            &[
                &["--issuer", issuer.as_str(), "token", "fetch"][..],
                &client_id,
                &credential,
                &["--out", "tok"],
            ]
            .concat(),
            &[],
        );
        nothing_received(credential[0]);
        assert!(!o.status.success(), "{credential:?}: refused");
        assert!(stderr(&o).contains(&refusal), "{}", stderr(&o));
        assert!(!d.join("tok").exists());
    }
    let o = run(
        d,
        &[
            &["--issuer", issuer.as_str(), "aws", "check", "--json"][..],
            &client_id,
            &["--client-secret-file", "secret"],
        ]
        .concat(),
        &[],
    );
    nothing_received("aws check");
    assert!(!o.status.success());
    let report: Value = serde_json::from_slice(&o.stdout).unwrap();
    let row = check_row(&report, "token endpoint on the issuer's origin");
    assert_eq!(row["result"], "FAIL");
    assert_eq!(row["detail"], refusal.as_str());
    assert!(stderr(&o).contains("token endpoint on the issuer's origin"));
    // The daemon refuses (and says why) a few times, then stops: retrying
    // does not make discovery name another token endpoint.
    let watch = Command::new(bin())
        .current_dir(d)
        .args(
            [
                &["--issuer", issuer.as_str(), "token", "watch"][..],
                &client_id,
                &["--client-secret-file", "secret", "--out", "w.tok"],
            ]
            .concat(),
        )
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let out = wait_for_exit(watch, Duration::from_secs(20));
    let log = String::from_utf8_lossy(&out.stderr);
    nothing_received("token watch");
    assert_eq!(out.status.code(), Some(1), "{log}");
    assert!(
        log.contains("3 failures in a row that retrying does not fix"),
        "{log}"
    );
    assert!(
        log.contains("token_endpoint") && log.contains("on another origin"),
        "{log}"
    );
    assert!(!d.join("w.tok").exists());
    // A token endpoint on the issuer's origin that redirects elsewhere: the
    // redirect is not followed (a 307 would re-send the client assertion).
    let redirecting = issuer_naming("{issuer}/oauth2/token", &elsewhere_token).await;
    for credential in [
        ["--client-secret-file", "secret"],
        ["--private-key-file", "ci.jwk"],
    ] {
        let o = run(
            d,
            &[
                &["--issuer", redirecting.as_str(), "token", "fetch"][..],
                &client_id,
                &credential,
                &["--out", "tok"],
            ]
            .concat(),
            &[],
        );
        nothing_received(&format!("redirect, {}", credential[0]));
        let want = format!(
            "{redirecting}/oauth2/token redirected to {elsewhere_token}, on another origin; nomos \
             clients send credentials only to the issuer's own origin ({redirecting})"
        );
        assert!(
            !o.status.success() && stderr(&o).contains(&want),
            "{}",
            stderr(&o)
        );
    }
    let o = run(
        d,
        &[
            &["--issuer", redirecting.as_str(), "aws", "check"][..],
            &client_id,
            &["--private-key-file", "ci.jwk"],
        ]
        .concat(),
        &[],
    );
    nothing_received("redirect, aws check");
    assert!(!o.status.success());
    // A plain-http issuer that is not loopback gets nothing, not even a connection.
    let o = run(
        d,
        &[
            &["--issuer", "http://192.0.2.1:9", "token", "fetch"][..],
            &client_id,
            &["--client-secret-file", "secret", "--out", "tok"],
        ]
        .concat(),
        &[],
    );
    assert!(
        !o.status.success()
            && stderr(&o).contains(
                "the issuer http://192.0.2.1:9 is plain http to a host that is not loopback"
            ),
        "{}",
        stderr(&o)
    );
}

/// Every AWS and workload command that prints a result prints JSON with --json.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_and_workload_commands_print_json() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    create_org(app.store().as_ref(), "acme").await;
    let secret = create_agent(app.store().as_ref(), "acme", "deployer").await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("secret"), &secret).unwrap();
    let issuer = app.issuer();
    let env = [("NOMOS_ISSUER_DATABASE_URL", app.db.url.as_str())];
    let cli = |args: &[&str]| {
        let o = run(
            d,
            &[&["--issuer", issuer.as_str()][..], args].concat(),
            &env,
        );
        let v: Value = serde_json::from_slice(&o.stdout)
            .unwrap_or_else(|e| panic!("{args:?}: {e}: {}", stderr(&o)));
        (o.status.code(), v)
    };
    let client = [
        "--client-id",
        "org/acme/agent/deployer",
        "--client-secret-file",
        "secret",
    ];
    let (code, v) = cli(&[&["token", "fetch", "--out", "tok", "--json"][..], &client].concat());
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(v["token_file"], d.join("tok").to_str().unwrap());
    assert_eq!(v["role_session_name"], "org.acme.agent.deployer");
    assert!(v["expires_in"].as_u64().unwrap() > 0);
    let (code, v) = cli(&[&["aws", "check", "--json"][..], &client].concat());
    assert_eq!(code, Some(1), "an http issuer fails the URL rule: {v}");
    assert_eq!(v["passed"], false);
    assert_eq!(v["issuer"], issuer.as_str());
    let row = check_row(&v, "token minted");
    assert!(
        row["result"] == "pass" && row["sts_error"].is_null(),
        "{row}"
    );
    let (code, v) = cli(&["aws", "provider", "--json"]);
    assert_eq!(code, Some(0));
    assert_eq!(v["Url"], issuer.as_str());
    let (code, policy) = cli(&[
        "aws",
        "trust-policy",
        "--account",
        ACCOUNT,
        "--org",
        "acme",
        "--agent",
        "deployer",
        "--json",
    ]);
    assert_eq!(code, Some(0));
    std::fs::write(d.join("trust.json"), policy.to_string()).unwrap();
    let (code, v) = cli(&["aws", "lint", "--json", "trust.json"]);
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(v["errors"], 0);
    assert_eq!(v["findings"], json!([]));
    let mut loose = policy.clone();
    loose["Statement"][0]["Condition"] = json!({});
    std::fs::write(d.join("loose.json"), loose.to_string()).unwrap();
    let (code, v) = cli(&["aws", "lint", "--json", "loose.json"]);
    assert_eq!(code, Some(1));
    assert_eq!(v["errors"], 2, "{v:#}");
    assert_eq!(v["findings"][0]["severity"], "error");
}

/// The quick start over `serve --dev-tls`: `token mint`, `token fetch`, `aws
/// check`, `aws provider` and `aws trust-policy` all use the https issuer that
/// serve serves, and the network clients trust keys/dev-ca.pem, with no
/// --issuer and no --ca-file (only --listen, for the port that port 0 chose).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_dev_tls_every_command_uses_the_served_https_issuer() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    json_out(&run(d, &["org", "create", "acme", "--json"], &[]));
    let agent = json_out(&run(
        d,
        &["agent", "create", "acme", "deployer", "--json"],
        &[],
    ));
    std::fs::write(d.join("secret"), agent["client_secret"].as_str().unwrap()).unwrap();
    let serve = Serve::start(d, &["--dev-tls"], &[]).unwrap();
    let base = serve.base.clone();
    assert!(base.starts_with("https://"), "{base}");
    let listen = base.trim_start_matches("https://").to_owned();
    let ca =
        reqwest::Certificate::from_pem(&std::fs::read(d.join("keys/dev-ca.pem")).unwrap()).unwrap();
    let http = reqwest::Client::builder()
        .add_root_certificate(ca)
        .build()
        .unwrap();
    let discovery: Value = http
        .get(format!("{base}/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(discovery["issuer"], base.as_str());

    let minted = json_out(&run(
        d,
        &["token", "mint", "acme", "deployer", "--json"],
        &[],
    ));
    assert_eq!(
        claims(minted["access_token"].as_str().unwrap())["iss"],
        base.as_str(),
        "token mint uses the issuer serve serves"
    );

    let client = [
        "--client-id",
        "org/acme/agent/deployer",
        "--client-secret-file",
        "secret",
    ];
    let o = run(
        d,
        &[
            &["--listen", listen.as_str(), "token", "fetch"][..],
            &client,
            &["--out", "tok", "--json"],
        ]
        .concat(),
        &[],
    );
    let fetched = json_out(&o);
    assert!(
        stderr(&o).contains(&format!(
            "using {base} (https because serve --dev-tls made keys/dev-ca.pem here)"
        )),
        "{}",
        stderr(&o)
    );
    assert_eq!(fetched["role_session_name"], "org.acme.agent.deployer");
    let token = std::fs::read_to_string(d.join("tok")).unwrap();
    assert_eq!(claims(&token)["iss"], base.as_str());

    let o = run(
        d,
        &[
            &["--listen", listen.as_str(), "aws", "check", "--json"][..],
            &client,
        ]
        .concat(),
        &[],
    );
    let report: Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}", stderr(&o));
    });
    assert_eq!(report["issuer"], base.as_str());
    for check in [
        "TLS chain verifies",
        "discovery issuer equals the URL",
        "token minted",
        "iss equals the provider URL",
    ] {
        assert_eq!(
            check_row(&report, check)["result"],
            "pass",
            "{check}: {report:#}"
        );
    }

    let provider = json_out(&run(d, &["aws", "provider", "--json"], &[]));
    assert_eq!(provider["Url"], base.as_str());
    let policy = json_out(&run(
        d,
        &[
            "aws",
            "trust-policy",
            "--account",
            ACCOUNT,
            "--org",
            "acme",
            "--agent",
            "deployer",
        ],
        &[],
    ));
    assert_eq!(
        policy["Statement"][0]["Principal"]["Federated"],
        format!("arn:aws:iam::{ACCOUNT}:oidc-provider/{listen}").as_str()
    );
    drop(serve);
}

/// `token fetch` warns, naming both, when discovery's issuer is not --issuer;
/// `aws check` names both in its failing row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_say_when_discovery_names_another_issuer() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let base = format!("http://127.0.0.1:{port}");
    let claimed = format!("http://localhost:{port}");
    let discovery = json!({
        "issuer": claimed,
        "jwks_uri": format!("{base}/.well-known/jwks.json"),
        "token_endpoint": format!("{base}/oauth2/token"),
    });
    let app = Router::new()
        .route(
            "/.well-known/openid-configuration",
            get(move || async move { axum::Json(discovery) }),
        )
        .route(
            "/oauth2/token",
            axum::routing::post(|| async {
                axum::Json(
                    json!({"access_token": "a.b.c", "token_type": "Bearer", "expires_in": 300}),
                )
            }),
        );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("secret"), "nomos_cs_x").unwrap();
    let o = helper_with_secret(d, &base, "fetch", "tok");
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains(&format!("discovery says issuer \"{claimed}\""))
            && err.contains(&format!("but --issuer is {base}"))
            && err.contains(&format!("give --issuer {claimed}")),
        "{err}"
    );
    let o = run(
        d,
        &[
            &["--issuer", base.as_str(), "aws", "check", "--json"][..],
            &["--client-id", "org/acme", "--client-secret-file", "secret"],
        ]
        .concat(),
        &[],
    );
    let report: Value = serde_json::from_slice(&o.stdout).unwrap();
    let row = check_row(&report, "discovery issuer equals the URL");
    assert_eq!(row["result"], "FAIL");
    assert_eq!(
        row["detail"],
        format!("discovery says \"{claimed}\", but --issuer is \"{base}\"").as_str()
    );
}

/// Without --issuer, `aws lint` reads the issuer from the policy's principal;
/// when it cannot, its one error says to pass --issuer.
#[test]
fn lint_infers_the_issuer_from_the_principal() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let policy = |federated: Value| {
        let hp = "id.example.com/orgs/acme";
        json!({"Version": "2012-10-17", "Statement": [{"Sid": "S", "Effect": "Allow",
            "Principal": {"Federated": federated},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {"StringEquals": {format!("{hp}:aud"): "sts.amazonaws.com",
                format!("{hp}:sub"): "org/acme/agent/a"}}}]})
    };
    let ours = format!("arn:aws:iam::{ACCOUNT}:oidc-provider/id.example.com/orgs/acme");
    std::fs::write(d.join("p.json"), policy(json!(ours)).to_string()).unwrap();
    let o = run(d, &["aws", "lint", "--allow-unknown", "p.json"], &[]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{out}{}", stderr(&o));
    assert!(
        out.contains("for https://id.example.com/orgs/acme (from the policy's principal)"),
        "{out}"
    );
    let json = json_out(&run(
        d,
        &["aws", "lint", "--allow-unknown", "--json", "p.json"],
        &[],
    ));
    assert_eq!(json["issuer"], "https://id.example.com/orgs/acme");
    assert_eq!(json["errors"], 0);
    for (name, federated, why) in [
        ("none.json", json!([]), "names an OIDC provider"),
        (
            "two.json",
            json!([
                ours,
                format!("arn:aws:iam::{ACCOUNT}:oidc-provider/token.actions.githubusercontent.com")
            ]),
            "it names 2 OIDC providers",
        ),
    ] {
        std::fs::write(d.join(name), policy(federated).to_string()).unwrap();
        let o = run(d, &["aws", "lint", "--allow-unknown", name], &[]);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{name}: {err}");
        assert!(
            err.contains(&format!("cannot tell which issuer {name} is for"))
                && err.contains(why)
                && err.contains("Pass --issuer"),
            "{name}: {err}"
        );
        assert!(o.stdout.is_empty(), "one error, no findings");
    }
}

/// `token watch` stops (exit 1) after a few refusals that retrying cannot fix,
/// and keeps retrying an issuer it cannot reach.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_watch_stops_on_a_refused_credential_but_retries_an_unreachable_issuer() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    create_org(app.store().as_ref(), "acme").await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("bad"), "nomos_cs_wrong").unwrap();
    let watch = |issuer: &str| {
        Command::new(bin())
            .current_dir(d)
            .args([
                "--issuer",
                issuer,
                "token",
                "watch",
                "--client-id",
                "org/acme",
                "--client-secret-file",
                "bad",
                "--out",
                "w.tok",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let out = wait_for_exit(watch(&app.issuer()), Duration::from_secs(30));
    let log = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{log}");
    assert!(
        log.contains("stopped after 3 failures in a row that retrying does not fix")
            && log.contains("invalid_client")
            && log.contains("check --client-id and the credential file"),
        "{log}"
    );
    assert!(!d.join("w.tok").exists());
    // Unreachable: transient, retried with back-off (3 attempts within 5 s).
    let child = watch(&format!("http://127.0.0.1:{}", free_port()));
    tokio::time::sleep(Duration::from_secs(5)).await;
    let mut child = child;
    assert!(child.try_wait().unwrap().is_none(), "still retrying");
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "SIGTERM is a clean exit: {log}");
    assert!(
        log.matches("token refresh failed").count() >= 3 && log.contains("cannot reach the issuer"),
        "{log}"
    );
}

/// Waits for a child to exit on its own; kills it (and fails) after `limit`.
fn wait_for_exit(mut child: std::process::Child, limit: Duration) -> std::process::Output {
    let until = Instant::now() + limit;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > until {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "still running after {limit:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

/// `token fetch|watch --out` into a missing directory: exit 2, naming it,
/// before anything is sent.
#[test]
fn token_fetch_names_a_missing_out_directory() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("secret"), "nomos_cs_x").unwrap();
    for cmd in ["fetch", "watch"] {
        let o = helper_with_secret(d, "http://127.0.0.1:1", cmd, "missing/dir/token");
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{cmd}: {err}");
        assert!(
            err.contains("--out")
                && err.contains("the directory missing/dir does not exist")
                && err.contains("mkdir -p missing/dir")
                && !err.contains("cannot reach"),
            "{cmd}: {err}"
        );
    }
}

/// A certificate from a CA this machine does not trust: the error points to --ca-file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_ca_points_to_ca_file() {
    let pki = pki();
    let issuer = broken_issuer(&pki, "none").await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("secret"), "nomos_cs_x").unwrap();
    let o = helper_with_secret(d, &issuer, "fetch", "tok");
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("UnknownIssuer")
            && err.contains("signed by a CA this machine does not trust")
            && err.contains("pass --ca-file"),
        "{err}"
    );
    let o = run(d, &["--issuer", &issuer, "aws", "check", "--json"], &[]);
    let report: Value = serde_json::from_slice(&o.stdout).unwrap();
    let tls = check_row(&report, "TLS chain verifies");
    assert_eq!(tls["result"], "FAIL");
    assert!(
        tls["detail"].as_str().unwrap().contains("pass --ca-file"),
        "{tls}"
    );
    let o = run(
        d,
        &["--issuer", &issuer, "aws", "provider", "--thumbprint"],
        &[],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("pass --ca-file"), "{}", stderr(&o));
}

/// `aws trust-policy`, `aws provider` and `aws lint`: invalid input exits 2
/// naming the flag; an org or agent the store does not know is an error unless
/// --allow-unknown.
#[test]
fn aws_commands_refuse_invalid_input_and_unknown_subjects() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let env = [("NOMOS_ISSUER_ISSUER", ISSUER)];
    json_out(&run(d, &["org", "create", "acme", "--json"], &env));
    json_out(&run(d, &["agent", "create", "acme", "a", "--json"], &env));
    let tp = ["aws", "trust-policy", "--account"];
    for (args, words) in [
        (
            vec!["1234", "--org", "acme", "--agent", "a"],
            vec!["--account", "\"1234\" must be 12 digits"],
        ),
        (
            vec![ACCOUNT, "--org", "Acme", "--agent", "a"],
            vec!["--org", "invalid org id \"Acme\""],
        ),
        (
            vec![ACCOUNT, "--org", "acme", "--agent", "A_b"],
            vec!["--agent", "invalid agent id"],
        ),
        (
            vec![
                ACCOUNT,
                "--org",
                "acme",
                "--agent",
                "a",
                "--audience",
                "a b",
            ],
            vec!["--audience", "invalid audience"],
        ),
        (
            vec![
                ACCOUNT,
                "--org",
                "acme",
                "--agent",
                "a",
                "--partition",
                "gcp",
            ],
            vec!["--partition", "aws, aws-cn or aws-us-gov"],
        ),
        (
            vec![ACCOUNT, "--org", "acme", "--agent", "a", "--format", "yaml"],
            vec!["--format", "yaml"],
        ),
        (
            vec![ACCOUNT, "--org", "ghost", "--any-agent"],
            vec![
                "--org",
                "org ghost does not exist",
                "nomos-issuer org create ghost",
                "--allow-unknown",
            ],
        ),
        (
            vec![ACCOUNT, "--org", "acme", "--agent", "ghost"],
            vec![
                "--agent",
                "agent ghost of org acme does not exist",
                "nomos-issuer agent create acme ghost",
                "--allow-unknown",
            ],
        ),
    ] {
        let o = run(d, &[&tp[..], &args].concat(), &env);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        for w in &words {
            assert!(stderr(&o).contains(w), "{args:?}: {w}: {}", stderr(&o));
        }
        assert!(o.stdout.is_empty(), "{args:?}: no policy is printed");
    }
    // Written ahead of time, explicitly; and for a known agent.
    for args in [
        vec![ACCOUNT, "--org", "ghost", "--any-agent", "--allow-unknown"],
        vec![
            ACCOUNT,
            "--org",
            "acme",
            "--agent",
            "ghost",
            "--allow-unknown",
        ],
        vec![ACCOUNT, "--org", "acme", "--agent", "a", "--json"],
    ] {
        let o = run(d, &[&tp[..], &args].concat(), &env);
        assert!(o.status.success(), "{args:?}: {}", stderr(&o));
        let _: Value = serde_json::from_slice(&o.stdout).unwrap();
    }
    let o = run(d, &["aws", "provider", "--org", "ghost"], &env);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("--org") && stderr(&o).contains("org ghost does not exist"),
        "{}",
        stderr(&o)
    );
    // lint: a policy for an agent the issuer does not have.
    let hp = "id.example.com/orgs/acme";
    let policy = json!({"Version": "2012-10-17", "Statement": [{"Sid": "S", "Effect": "Allow",
        "Principal": {"Federated": format!("arn:aws:iam::{ACCOUNT}:oidc-provider/{hp}")},
        "Action": "sts:AssumeRoleWithWebIdentity",
        "Condition": {"StringEquals": {format!("{hp}:aud"): "sts.amazonaws.com",
            format!("{hp}:sub"): "org/acme/agent/ghost"}}}]});
    std::fs::write(d.join("p.json"), policy.to_string()).unwrap();
    let o = run(d, &["aws", "lint", "p.json"], &env);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(
        out.contains("the policy admits \"org/acme/agent/ghost\", but this issuer has no agent ghost in org acme")
            && out.contains("nomos-issuer agent create acme ghost")
            && out.contains("--allow-unknown"),
        "{out}"
    );
    let o = run(d, &["aws", "lint", "--allow-unknown", "p.json"], &env);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
    let o = run(d, &["aws", "lint", "missing.json"], &env);
    assert_eq!(o.status.code(), Some(1));
    std::fs::write(d.join("bad.json"), "{").unwrap();
    let o = run(d, &["aws", "lint", "bad.json"], &env);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("bad.json is not JSON"),
        "{}",
        stderr(&o)
    );
    let o = run(d, &["aws", "provider", "--org", "Acme"], &env);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("--org"), "{}", stderr(&o));
}

/// The row of one check in `aws check --json` output.
fn check_row<'a>(report: &'a Value, check: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["check"] == check)
        .unwrap_or_else(|| panic!("no row {check:?}: {report:#}"))
}

/// `token fetch|watch` for org/acme with the client secret in `secret`, run to its end.
fn helper_with_secret(d: &Path, issuer: &str, cmd: &str, out: &str) -> std::process::Output {
    run(
        d,
        &[
            "--issuer",
            issuer,
            "token",
            cmd,
            "--client-id",
            "org/acme",
            "--client-secret-file",
            "secret",
            "--out",
            out,
        ],
        &[],
    )
}
