//! Shared test helpers: a fresh database per test on Postgres or SQLite, a real
//! server on port 0, and one method per endpoint.

pub mod pg;
pub mod process;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use nomos_issuer::config::{ConfigArgs, Settings};
use nomos_issuer::ids::{AgentId, OrgId};
use nomos_issuer::keys::{Kek, PublicJwk};
use nomos_issuer::principal::{Credential, CredentialKind, OrgPolicy, random_id};
use nomos_issuer::server::Server;
use nomos_issuer::store::{self, Store};
use serde_json::Value;

/// Runs one async test body against both backends.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    super::$name($crate::common::Backend::Postgres).await
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name($crate::common::Backend::Sqlite).await
                }
            }
        )*
    };
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

/// A database of its own for one test; a Postgres database is dropped at the end.
pub struct TestDb {
    pub url: String,
    admin_url: Option<String>,
    name: String,
    pub dir: tempfile::TempDir,
}

fn admin_url() -> String {
    std::env::var("NOMOS_TEST_DATABASE_URL").expect(
        "NOMOS_TEST_DATABASE_URL is not set: run the suite with `bash tests/run`, which starts a throwaway Postgres",
    )
}

impl TestDb {
    pub async fn new(backend: Backend) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let name = format!(
            "nomos_test_{}",
            random_id("", 9).to_lowercase().replace(['-', '_'], "x")
        );
        match backend {
            Backend::Sqlite => TestDb {
                url: format!("sqlite://{}/nomos.db", dir.path().display()),
                admin_url: None,
                name,
                dir,
            },
            Backend::Postgres => {
                let admin = admin_url();
                let pool = sqlx::PgPool::connect(&admin)
                    .await
                    .expect("connect to test Postgres");
                sqlx::query(&format!("CREATE DATABASE {name}"))
                    .execute(&pool)
                    .await
                    .unwrap();
                pool.close().await;
                let base = admin.rsplit_once('/').unwrap().0;
                TestDb {
                    url: format!("{base}/{name}"),
                    admin_url: Some(admin),
                    name,
                    dir,
                }
            }
        }
    }

    /// Opens the store and applies migrations.
    pub async fn store(&self) -> Arc<dyn Store> {
        let s = store::open(&self.url).await.unwrap();
        s.migrate().await.unwrap();
        s
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(admin) = self.admin_url.clone() {
            let name = self.name.clone();
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async {
                    if let Ok(pool) = sqlx::PgPool::connect(&admin).await {
                        let _ =
                            sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                                .execute(&pool)
                                .await;
                        pool.close().await;
                    }
                });
            })
            .join();
        }
    }
}

/// Settings for a test server: port 0, the test database, a KEK file in the test dir.
pub fn settings(db: &TestDb, kek_file: &Path) -> Settings {
    let args = ConfigArgs {
        listen: Some("127.0.0.1:0".into()),
        database_url: Some(db.url.clone()),
        kek_file: Some(kek_file.to_path_buf()),
        // Tests mint fast from one address; the limits have tests of their own.
        auth_failure_limit: Some(0),
        address_rate_limit: Some(0),
        ..Default::default()
    };
    Settings::resolve(&args, None).unwrap()
}

/// A running issuer with its database and an HTTP client.
pub struct TestApp {
    pub server: Option<Server>,
    pub settings: Settings,
    pub base: String,
    pub db: TestDb,
    pub http: reqwest::Client,
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> Self {
        Self::spawn_with(backend, |_| {}).await
    }

    pub async fn spawn_with(backend: Backend, tweak: impl FnOnce(&mut Settings)) -> Self {
        let db = TestDb::new(backend).await;
        let kek_file = db.dir.path().join("kek");
        Kek::create_file(&kek_file).unwrap();
        let mut s = settings(&db, &kek_file);
        tweak(&mut s);
        let server = Server::start(s.clone(), true).await.expect("server starts");
        let base = format!("http://{}", server.addr);
        TestApp {
            server: Some(server),
            settings: s,
            base,
            db,
            http: reqwest::Client::new(),
        }
    }

    pub fn server(&self) -> &Server {
        self.server.as_ref().unwrap()
    }

    pub fn store(&self) -> Arc<dyn Store> {
        self.server().app.store.clone()
    }

    pub fn issuer(&self) -> String {
        self.server().app.settings.issuer.clone()
    }

    /// Stops the server gracefully (flushing the audit).
    pub async fn stop(&mut self) {
        if let Some(s) = self.server.take() {
            s.stop().await.unwrap();
        }
    }

    /// Starts a new server with the same settings (database, KEK, listen address).
    pub async fn restart(&mut self) {
        self.stop().await;
        let server = Server::start(self.settings.clone(), true)
            .await
            .expect("server restarts");
        self.base = format!("http://{}", server.addr);
        self.server = Some(server);
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap()
    }

    pub async fn jwks(&self) -> Value {
        self.get("/.well-known/jwks.json")
            .await
            .json()
            .await
            .unwrap()
    }

    pub async fn discovery(&self) -> Value {
        self.get("/.well-known/openid-configuration")
            .await
            .json()
            .await
            .unwrap()
    }

    /// POSTs a raw form body to the token endpoint.
    pub async fn token_form(&self, body: &str) -> reqwest::Response {
        self.http
            .post(format!("{}/oauth2/token", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.to_owned())
            .send()
            .await
            .unwrap()
    }

    /// `client_secret_basic`: id and secret form-urlencoded before base64.
    pub async fn token_basic(
        &self,
        client_id: &str,
        secret: &str,
        extra: &str,
    ) -> reqwest::Response {
        let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        self.http
            .post(format!("{}/oauth2/token", self.base))
            .basic_auth(enc(client_id), Some(enc(secret)))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("grant_type=client_credentials{extra}"))
            .send()
            .await
            .unwrap()
    }

    /// A token for a secret client, asserting success.
    pub async fn token_ok(&self, client_id: &str, secret: &str) -> String {
        let r = self.token_basic(client_id, secret, "").await;
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        v["access_token"].as_str().unwrap().to_owned()
    }
}

/// Taken by the tests that load both cores on purpose (floods, timing
/// comparisons), so that no two of them run at once and measure each other.
pub async fn exclusive() -> tokio::sync::MutexGuard<'static, ()> {
    static HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    HEAVY.lock().await
}

/// A free loopback port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The embedded store that the binary, run in `dir`, uses by default.
pub async fn embedded_store(dir: &Path) -> Arc<dyn Store> {
    store::open(&format!("sqlite://{}/data/nomos-issuer.db", dir.display()))
        .await
        .unwrap()
}

/// Creates an admin API token `id`; returns the bearer token.
pub async fn create_admin_token(store: &dyn Store, id: &str) -> String {
    let secret = nomos_issuer::principal::ClientSecret::with_prefix("nomos_at_");
    let t = nomos_issuer::store::AdminToken {
        id: id.into(),
        name: "tests".into(),
        created_at: nomos_issuer::app::now(),
        revoked_at: None,
        expires_at: None,
    };
    store.create_admin_token(&t, &secret.hash()).await.unwrap();
    secret.expose().to_owned()
}

/// Creates an org with a secret; returns the secret.
pub async fn create_org(store: &dyn Store, org: &str) -> String {
    create_org_with(store, org, OrgPolicy::default()).await
}

pub async fn create_org_with(store: &dyn Store, org: &str, policy: OrgPolicy) -> String {
    let (secret, cred) = Credential::new_secret();
    let now = nomos_issuer::app::now();
    store
        .create_org(&OrgId::parse(org).unwrap(), &policy, &cred, now)
        .await
        .unwrap();
    secret.expose().to_owned()
}

async fn add_agent(store: &dyn Store, org: &str, agent: &str, cred: Credential) {
    let (org, agent) = (OrgId::parse(org).unwrap(), AgentId::parse(agent).unwrap());
    store
        .create_agent(&org, &agent, &cred, nomos_issuer::app::now())
        .await
        .unwrap();
}

/// Creates an agent with a secret; returns the secret.
pub async fn create_agent(store: &dyn Store, org: &str, agent: &str) -> String {
    let (secret, cred) = Credential::new_secret();
    add_agent(store, org, agent, cred).await;
    secret.expose().to_owned()
}

/// Creates an agent authenticating with `private_key_jwt` for the given public JWK.
pub async fn create_key_agent(store: &dyn Store, org: &str, agent: &str, public_jwk: &Value) {
    let keys = vec![PublicJwk::parse(public_jwk).unwrap()];
    add_agent(
        store,
        org,
        agent,
        Credential::new(CredentialKind::PublicKeys(keys)),
    )
    .await;
}

/// POSTs `client_secret_post` credentials; returns the token, asserting success.
pub async fn mint_post(
    http: &reqwest::Client,
    base: &str,
    client_id: &str,
    secret: &str,
) -> String {
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let r = http
        .post(format!("{base}/oauth2/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "grant_type=client_credentials&client_id={}&client_secret={}",
            enc(client_id),
            enc(secret)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    v["access_token"].as_str().unwrap().to_owned()
}

/// Decodes the claims of a compact JWS without verifying it.
pub fn claims(token: &str) -> Value {
    use base64::Engine;
    let part = token.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part)
            .unwrap(),
    )
    .unwrap()
}

/// Decodes the header of a compact JWS.
pub fn header(token: &str) -> Value {
    use base64::Engine;
    let part = token.split('.').next().unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part)
            .unwrap(),
    )
    .unwrap()
}

/// Verifies a token with josekit against a JWKS document; returns the claims.
pub fn josekit_verify(token: &str, jwks: &Value) -> Result<Value, String> {
    use josekit::jwk::JwkSet;
    use josekit::jws::{ES256, RS256};
    let set = JwkSet::from_bytes(jwks.to_string().as_bytes()).map_err(|e| e.to_string())?;
    let h = header(token);
    let kid = h["kid"].as_str().ok_or("no kid")?;
    let jwk = set
        .get(kid)
        .first()
        .copied()
        .ok_or("kid not in JWKS")?
        .clone();
    let (payload, _) = match h["alg"].as_str() {
        Some("ES256") => {
            let v = ES256.verifier_from_jwk(&jwk).map_err(|e| e.to_string())?;
            josekit::jwt::decode_with_verifier(token, &v).map_err(|e| e.to_string())?
        }
        Some("RS256") => {
            let v = RS256.verifier_from_jwk(&jwk).map_err(|e| e.to_string())?;
            josekit::jwt::decode_with_verifier(token, &v).map_err(|e| e.to_string())?
        }
        other => return Err(format!("unexpected alg {other:?}")),
    };
    Ok(Value::Object(payload.claims_set().clone()))
}

/// Runs an external verifier script (`pyjwt` or `jose`); Ok(claims) on exit 0.
pub fn external_verify(
    which: &str,
    jwks_url: &str,
    issuer: &str,
    aud: &str,
    token: &str,
) -> Result<Value, String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/verifiers");
    let mut cmd = match which {
        "pyjwt" => {
            let mut c = Command::new(dir.join(".venv/bin/python"));
            c.arg(dir.join("verify_pyjwt.py"));
            c
        }
        "jose" => {
            let mut c = Command::new("node");
            c.arg(dir.join("verify_jose.mjs"));
            c
        }
        other => panic!("unknown verifier {other}"),
    };
    let out = cmd
        .args([jwks_url, issuer, aud, token])
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run the {which} verifier (run tests/verifiers/install.sh): {e}")
        });
    if out.status.success() {
        Ok(serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())?)
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// Path of the built binary.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_nomos-issuer")
}

/// A client's ES256 key pair for `private_key_jwt`.
pub struct ClientKey {
    pub signer: josekit::jws::alg::ecdsa::EcdsaJwsSigner,
    pub public: Value,
}

pub fn client_key() -> ClientKey {
    let pair = josekit::jws::ES256.generate_key_pair().unwrap();
    let public = serde_json::to_value(pair.to_jwk_public_key().as_ref()).unwrap();
    assert!(public.get("d").is_none());
    ClientKey {
        signer: josekit::jws::ES256
            .signer_from_jwk(&pair.to_jwk_private_key())
            .unwrap(),
        public,
    }
}

pub fn assertion(key: &ClientKey, client_id: &str, aud: &str, exp_in: i64, jti: &str) -> String {
    signed_assertion(key, None, client_id, aud, exp_in, jti)
}

/// [`assertion`] whose header names a `kid`, when given.
pub fn signed_assertion(
    key: &ClientKey,
    kid: Option<&str>,
    client_id: &str,
    aud: &str,
    exp_in: i64,
    jti: &str,
) -> String {
    let mut h = josekit::jws::JwsHeader::new();
    h.set_token_type("JWT");
    if let Some(kid) = kid {
        h.set_key_id(kid);
    }
    let mut p = josekit::jwt::JwtPayload::new();
    p.set_issuer(client_id);
    p.set_subject(client_id);
    p.set_audience(vec![aud]);
    let now = std::time::SystemTime::now();
    p.set_issued_at(&now);
    let exp = if exp_in >= 0 {
        now + std::time::Duration::from_secs(exp_in as u64)
    } else {
        now - std::time::Duration::from_secs((-exp_in) as u64)
    };
    p.set_expires_at(&exp);
    p.set_jwt_id(jti);
    josekit::jwt::encode_with_signer(&p, &h, &key.signer).unwrap()
}

pub fn assertion_form(a: &str) -> String {
    format!(
        "grant_type=client_credentials&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion={a}"
    )
}

/// The status of a token request with a client assertion.
pub async fn assertion_status(app: &TestApp, assertion: &str) -> u16 {
    app.token_form(&assertion_form(assertion))
        .await
        .status()
        .as_u16()
}
