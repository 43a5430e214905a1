//! `aws check`: looks at a running issuer the way STS would and reports every
//! rule that fails, with the STS error it would cause.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde_json::Value;
use tokio_rustls::rustls::{self, pki_types::ServerName};

use super::iam::{Verdict, evaluate, parse};
use super::policy::host_path;
use super::session::{SOURCE_IDENTITY_CLAIM, TAGS_CLAIM};
use crate::config::Settings;
use crate::keys::PublicJwk;
use crate::workload::{ClientCredential, check_token_endpoint, fetch_token, trust_ca_file};
use crate::x509::issuer_and_subject;

/// STS gives up on discovery or JWKS after about this long.
const STS_TIMEOUT: Duration = Duration::from_secs(5);
const AWS_ALGS: [&str; 6] = ["RS256", "RS384", "RS512", "ES256", "ES384", "ES512"];

/// Options of `aws check`.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// Client id to mint a test token with (org/ORG or org/ORG/agent/AGENT)
    #[arg(long)]
    pub client_id: Option<String>,
    /// File holding the client secret
    #[arg(long, value_name = "FILE")]
    pub client_secret_file: Option<PathBuf>,
    /// File holding a private JWK, for private_key_jwt
    #[arg(long, value_name = "FILE")]
    pub private_key_file: Option<PathBuf>,
    /// The audience to ask for and expect [default: sts.amazonaws.com]
    #[arg(long, default_value = "sts.amazonaws.com")]
    pub audience: String,
    /// A role trust policy to evaluate the token against (IAM condition semantics)
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// Extra PEM CA certificates to trust (a private CA)
    #[arg(long, value_name = "PEM_FILE")]
    pub ca_file: Option<PathBuf>,
}

/// The result of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Passed.
    Pass,
    /// Works, but worth a look.
    Warn,
    /// STS would fail.
    Fail,
    /// Not checked (missing input or an earlier failure).
    Skip,
}

/// One row of the report.
#[derive(Debug, Clone)]
pub struct Row {
    /// What was checked.
    pub check: String,
    /// How it went.
    pub outcome: Outcome,
    /// Details.
    pub detail: String,
    /// What STS answers when this fails.
    pub sts_error: &'static str,
}

/// The report.
#[derive(Debug, Default)]
pub struct Report {
    /// The rows, in order.
    pub rows: Vec<Row>,
}

impl Report {
    fn add(
        &mut self,
        check: &str,
        outcome: Outcome,
        detail: impl Into<String>,
        sts_error: &'static str,
    ) {
        self.rows.push(Row {
            check: check.into(),
            outcome,
            detail: detail.into(),
            sts_error,
        });
    }

    fn pass_or_fail(
        &mut self,
        check: &str,
        ok: bool,
        detail: impl Into<String>,
        sts_error: &'static str,
    ) {
        let outcome = if ok { Outcome::Pass } else { Outcome::Fail };
        self.add(check, outcome, detail, sts_error);
    }

    /// Whether any check failed.
    pub fn failed(&self) -> bool {
        self.rows.iter().any(|r| r.outcome == Outcome::Fail)
    }

    /// The checks that failed, by name.
    pub fn failures(&self) -> Vec<&str> {
        self.rows
            .iter()
            .filter(|r| r.outcome == Outcome::Fail)
            .map(|r| r.check.as_str())
            .collect()
    }

    /// A fixed-width table.
    pub fn table(&self) -> String {
        let w = self
            .rows
            .iter()
            .map(|r| r.check.len())
            .max()
            .unwrap_or(5)
            .max(5);
        let mut out = format!(
            "{:<w$}  {:<6}  {:<44}  STS ERROR IF IT FAILS\n",
            "CHECK", "RESULT", "DETAIL"
        );
        for r in &self.rows {
            let res = match r.outcome {
                Outcome::Pass => "pass",
                Outcome::Warn => "warn",
                Outcome::Fail => "FAIL",
                Outcome::Skip => "skip",
            };
            let sts = if r.outcome == Outcome::Pass {
                "-"
            } else {
                r.sts_error
            };
            out.push_str(&format!(
                "{:<w$}  {res:<6}  {:<44}  {sts}\n",
                r.check, r.detail
            ));
        }
        out
    }
}

fn roots(ca_file: Option<&Path>) -> anyhow::Result<rustls::RootCertStore> {
    let mut store = rustls::RootCertStore::empty();
    store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(f) = ca_file {
        use rustls::pki_types::{CertificateDer, pem::PemObject};
        for cert in CertificateDer::pem_file_iter(f)
            .with_context(|| format!("cannot read {}", f.display()))?
        {
            store.add(cert.with_context(|| format!("{}: bad PEM", f.display()))?)?;
        }
    }
    Ok(store)
}

/// The certificate chain a host serves, verified against the trusted roots.
async fn served_chain(url: &str, ca_file: Option<&Path>) -> anyhow::Result<Vec<Vec<u8>>> {
    let u = url::Url::parse(url)?;
    let host = u.host_str().context("no host")?.to_owned();
    let port = u.port_or_known_default().unwrap_or(443);
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots(ca_file)?)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::time::timeout(
        STS_TIMEOUT,
        tokio::net::TcpStream::connect((host.as_str(), port)),
    )
    .await
    .context("connect timed out")??;
    let name = ServerName::try_from(host.clone())?;
    let tls = tokio::time::timeout(STS_TIMEOUT, connector.connect(name, tcp))
        .await
        .context("TLS handshake timed out")?
        .context("the TLS chain does not verify")?;
    let (_, conn) = tls.get_ref();
    Ok(conn
        .peer_certificates()
        .unwrap_or_default()
        .iter()
        .map(|c| c.as_ref().to_vec())
        .collect())
}

/// SHA-1 of the last certificate of the served chain, as AWS's thumbprint.
fn thumbprint(chain: &[Vec<u8>]) -> Option<String> {
    let last = chain.last()?;
    let d = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, last);
    Some(d.as_ref().iter().map(|b| format!("{b:02x}")).collect())
}

/// The thumbprints AWS wants for the discovery host and, if different, the jwks_uri host.
pub async fn thumbprints(issuer: &str, ca_file: Option<&Path>) -> anyhow::Result<Vec<String>> {
    if !issuer.starts_with("https://") {
        bail!("thumbprints need an https issuer");
    }
    let http = client(ca_file)?;
    let discovery: Value = http
        .get(format!("{issuer}/.well-known/openid-configuration"))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let jwks_uri = discovery["jwks_uri"]
        .as_str()
        .context("discovery has no jwks_uri")?;
    let mut out = Vec::new();
    for url in [issuer, jwks_uri] {
        let chain = served_chain(url, ca_file).await?;
        let t = thumbprint(&chain).context("empty chain")?;
        if !out.contains(&t) {
            out.push(t);
        }
    }
    Ok(out)
}

fn client(ca_file: Option<&Path>) -> anyhow::Result<reqwest::Client> {
    let b = reqwest::Client::builder()
        .timeout(STS_TIMEOUT + Duration::from_secs(1))
        .redirect(reqwest::redirect::Policy::none());
    Ok(trust_ca_file(b, ca_file)?.build()?)
}

async fn get_json(http: &reqwest::Client, url: &str) -> Result<(Value, Duration), String> {
    let start = Instant::now();
    let r = http.get(url).send().await.map_err(|e| {
        if e.is_timeout() {
            "no answer within 5 s".to_owned()
        } else {
            e.to_string()
        }
    })?;
    let status = r.status();
    let v = r
        .json::<Value>()
        .await
        .map_err(|e| format!("not JSON: {e}"))?;
    let took = start.elapsed();
    if !status.is_success() {
        return Err(format!("HTTP {status}"));
    }
    Ok((v, took))
}

/// Checks every JWKS rule; returns the usable keys.
fn check_jwks(report: &mut Report, jwks: &Value) -> Vec<PublicJwk> {
    const E: &str = "InvalidIdentityToken";
    let Some(keys) = jwks["keys"].as_array() else {
        report.add("JWKS has keys", Outcome::Fail, "no \"keys\" array", E);
        return Vec::new();
    };
    report.pass_or_fail(
        "JWKS has keys",
        !keys.is_empty(),
        format!("{} key(s)", keys.len()),
        E,
    );
    let count = |kty: &str| keys.iter().filter(|k| k["kty"] == kty).count();
    let (rsa, ec) = (count("RSA"), count("EC"));
    report.pass_or_fail(
        "JWKS within AWS limits",
        rsa <= 100 && ec <= 100,
        format!("{rsa} RSA, {ec} EC (at most 100 each)"),
        E,
    );
    let mut problems = Vec::new();
    let mut usable = Vec::new();
    let mut kids = std::collections::HashSet::new();
    for k in keys {
        let kid = k["kid"].as_str();
        let label = kid.unwrap_or("<no kid>");
        match kid {
            None => problems.push("a key has no kid".to_owned()),
            Some(kid) if !kids.insert(kid) => problems.push(format!("kid {kid} repeats")),
            _ => {}
        }
        if k.get("use").is_some_and(|u| u != "sig") {
            problems.push(format!("{label}: use is {} (AWS needs sig)", k["use"]));
        }
        if k.get("key_ops").is_some() {
            problems.push(format!("{label}: key_ops breaks AWS validation"));
        }
        if ["d", "p", "q", "dp", "dq", "qi", "k"]
            .iter()
            .any(|m| k.get(*m).is_some())
        {
            problems.push(format!("{label}: private key material is published"));
        }
        match k["alg"].as_str() {
            Some(a) if AWS_ALGS.contains(&a) => {}
            other => problems.push(format!("{label}: alg {other:?} is not one AWS accepts")),
        }
        if let Ok(j) = PublicJwk::parse(k) {
            usable.push(j);
        }
    }
    let detail = if problems.is_empty() {
        "kid, use sig, AWS alg, public only".to_owned()
    } else {
        problems.join("; ")
    };
    report.pass_or_fail("JWKS keys", problems.is_empty(), detail, E);
    usable
}

/// Runs every check against `issuer`.
pub async fn check(issuer: &str, args: &CheckArgs) -> anyhow::Result<Report> {
    let mut report = Report::default();
    let https = issuer.starts_with("https://");
    let url_ok =
        https && !issuer.ends_with('/') && !issuer.contains(['?', '#']) && issuer.len() <= 255;
    report.pass_or_fail(
        "issuer URL",
        url_ok,
        if url_ok {
            issuer.to_owned()
        } else {
            format!("{issuer}: AWS needs https, no trailing slash, no query")
        },
        "CreateOpenIDConnectProvider refuses the URL",
    );
    if let Ok(u) = url::Url::parse(issuer) {
        if u.port().is_some() {
            report.add(
                "issuer URL has no port",
                Outcome::Warn,
                "AWS expects no port",
                "InvalidIdentityToken",
            );
        }
    }
    let ca = args.ca_file.as_deref();
    if https {
        match served_chain(issuer, ca).await {
            Ok(chain) => {
                let ordered = chain.windows(2).all(|w| {
                    match (issuer_and_subject(&w[0]), issuer_and_subject(&w[1])) {
                        (Some((iss, _)), Some((_, sub))) => iss == sub,
                        _ => false,
                    }
                });
                report.pass(
                    "TLS chain verifies",
                    format!("{} certificate(s)", chain.len()),
                );
                report.pass_or_fail(
                    "TLS chain in order",
                    ordered,
                    if ordered {
                        "each certificate is issued by the next"
                    } else {
                        "the served chain is out of order"
                    },
                    "InvalidIdentityToken (JWKS fetch fails)",
                );
                if let Some(t) = thumbprint(&chain) {
                    report.add("thumbprint", Outcome::Pass, t, "-");
                }
            }
            Err(e) => report.add(
                "TLS chain verifies",
                Outcome::Fail,
                format!("{e:#}"),
                "InvalidIdentityToken (JWKS fetch fails)",
            ),
        }
    } else {
        report.add(
            "TLS chain verifies",
            Outcome::Skip,
            "not https",
            "InvalidIdentityToken",
        );
    }
    let http = client(ca)?;
    let discovery_url = format!("{issuer}/.well-known/openid-configuration");
    let discovery = match get_json(&http, &discovery_url).await {
        Ok((d, took)) => {
            report.pass_or_fail(
                "discovery answers within 5 s",
                took < STS_TIMEOUT,
                format!("{} ms", took.as_millis()),
                "InvalidIdentityToken (not logged in CloudTrail)",
            );
            d
        }
        Err(e) => {
            report.add(
                "discovery answers within 5 s",
                Outcome::Fail,
                e,
                "InvalidIdentityToken (not logged in CloudTrail)",
            );
            return Ok(report);
        }
    };
    let iss = discovery["issuer"].as_str().unwrap_or_default();
    report.pass_or_fail(
        "discovery issuer equals the URL",
        iss == issuer,
        format!("{iss:?}"),
        "InvalidIdentityToken (issuer mismatch)",
    );
    let jwks_uri = discovery["jwks_uri"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    report.pass_or_fail(
        "jwks_uri is absolute https",
        jwks_uri.starts_with("https://"),
        jwks_uri.clone(),
        "InvalidIdentityToken",
    );
    let keys = match get_json(&http, &jwks_uri).await {
        Ok((jwks, took)) => {
            report.pass_or_fail(
                "JWKS answers within 5 s",
                took < STS_TIMEOUT,
                format!("{} ms", took.as_millis()),
                "InvalidIdentityToken (not logged in CloudTrail)",
            );
            check_jwks(&mut report, &jwks)
        }
        Err(e) => {
            report.add(
                "JWKS answers within 5 s",
                Outcome::Fail,
                e,
                "InvalidIdentityToken (not logged in CloudTrail)",
            );
            Vec::new()
        }
    };
    let Some(client_id) = &args.client_id else {
        report.add(
            "token",
            Outcome::Skip,
            "pass --client-id and a credential to check a real token",
            "-",
        );
        return Ok(report);
    };
    let credential = ClientCredential::load(
        args.client_secret_file.as_deref(),
        args.private_key_file.as_deref(),
    )?;
    let token_endpoint = discovery["token_endpoint"].as_str().unwrap_or_default();
    let token_endpoint = match check_token_endpoint(issuer, token_endpoint) {
        Ok(t) => t,
        Err(e) => {
            // Nothing was sent: the credentials stay on this machine.
            report.add(
                "token endpoint on the issuer's origin",
                Outcome::Fail,
                e.to_string(),
                "-",
            );
            return Ok(report);
        }
    };
    let fetched = match fetch_token(
        &http,
        &token_endpoint,
        client_id,
        &credential,
        Some(&args.audience),
        crate::app::now(),
    )
    .await
    {
        Ok(f) => f,
        Err(e) => {
            report.add("token minted", Outcome::Fail, e.to_string(), "-");
            return Ok(report);
        }
    };
    report.add(
        "token minted",
        Outcome::Pass,
        format!("expires in {} s", fetched.expires_in),
        "-",
    );
    let claims = check_token(&mut report, &fetched.token, issuer, &args.audience, &keys);
    if let (Some(path), Some(claims)) = (&args.policy, claims) {
        check_policy(&mut report, path, issuer, &claims)?;
    }
    Ok(report)
}

impl Report {
    fn pass(&mut self, check: &str, detail: impl Into<String>) {
        self.add(check, Outcome::Pass, detail, "-");
    }
}

fn check_token(
    report: &mut Report,
    token: &str,
    issuer: &str,
    audience: &str,
    keys: &[PublicJwk],
) -> Option<Value> {
    const REJECTED: &str = "IDPRejectedClaim";
    const INVALID: &str = "InvalidIdentityToken";
    report.pass_or_fail(
        "token length",
        (4..=20_000).contains(&token.len()),
        format!("{} characters (4-20000)", token.len()),
        INVALID,
    );
    let parts: Vec<&str> = token.split('.').collect();
    let decode = |p: &str| {
        B64.decode(p)
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
    };
    let (Some(header), Some(claims)) = (
        parts.first().and_then(|p| decode(p)),
        parts.get(1).and_then(|p| decode(p)),
    ) else {
        report.add("token is a JWS", Outcome::Fail, "unreadable", INVALID);
        return None;
    };
    let alg = header["alg"].as_str().unwrap_or_default();
    report.pass_or_fail(
        "token alg",
        AWS_ALGS.contains(&alg),
        alg.to_owned(),
        INVALID,
    );
    let kid = header["kid"].as_str().unwrap_or_default();
    let key = keys.iter().find(|k| k.kid == kid);
    report.pass_or_fail(
        "token kid is in the JWKS",
        key.is_some(),
        if kid.is_empty() {
            "no kid".into()
        } else {
            kid.to_owned()
        },
        INVALID,
    );
    if let (Some(k), Some(sig)) = (key, parts.get(2).and_then(|s| B64.decode(s).ok())) {
        let signed = &token[..parts[0].len() + 1 + parts[1].len()];
        report.pass_or_fail(
            "token signature",
            k.key.verify(alg, signed.as_bytes(), &sig),
            "verified against the served JWKS",
            INVALID,
        );
    }
    report.pass_or_fail(
        "iss equals the provider URL",
        claims["iss"] == issuer,
        format!("{}", claims["iss"]),
        INVALID,
    );
    let aud_ok = claims["aud"].as_str() == Some(audience);
    report.pass_or_fail(
        "aud is one string, a client id",
        aud_ok,
        format!("{}", claims["aud"]),
        INVALID,
    );
    let sub_len = claims["sub"].as_str().map_or(0, str::len);
    report.pass_or_fail(
        "sub present, at most 255",
        (1..=255).contains(&sub_len),
        format!("{}", claims["sub"]),
        REJECTED,
    );
    let ints = ["iat", "exp"].iter().all(|c| claims[c].is_i64())
        && claims.get("nbf").is_none_or(Value::is_i64);
    report.pass_or_fail(
        "iat, exp (nbf) are integers",
        ints,
        "whole seconds",
        REJECTED,
    );
    let exp = claims["exp"].as_i64().unwrap_or(0);
    report.pass_or_fail(
        "token not expired",
        exp > crate::app::now(),
        format!("exp {exp}"),
        "ExpiredTokenException",
    );
    if let Some(tags) = claims.get(TAGS_CLAIM) {
        let pt = tags["principal_tags"].as_object();
        let ok = pt.is_some_and(|m| {
            m.len() <= 50
                && m.iter().all(|(k, v)| {
                    k.chars().count() <= 128
                        && v.as_array().is_some_and(|a| {
                            a.len() == 1 && a[0].as_str().is_some_and(|s| s.chars().count() <= 256)
                        })
                })
        });
        report.pass_or_fail(
            "session tags within AWS limits",
            ok,
            "50 tags, key 128, one value of 256",
            INVALID,
        );
    }
    Some(claims)
}

fn check_policy(
    report: &mut Report,
    path: &Path,
    issuer: &str,
    claims: &Value,
) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let doc: Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    let statements = parse(&doc)?;
    let hp = host_path(issuer);
    let suffix = format!(":oidc-provider/{hp}");
    let principal = statements
        .iter()
        .flat_map(|s| s.federated.iter())
        .find(|f| f.ends_with(&suffix))
        .cloned();
    let Some(principal) = principal else {
        report.add(
            "trust policy admits the token",
            Outcome::Fail,
            format!("no Federated principal for {hp}"),
            "AccessDenied",
        );
        return Ok(());
    };
    let mut actions = vec!["sts:AssumeRoleWithWebIdentity"];
    if claims.get(TAGS_CLAIM).is_some() {
        actions.push("sts:TagSession");
    }
    if claims.get(SOURCE_IDENTITY_CLAIM).is_some() {
        actions.push("sts:SetSourceIdentity");
    }
    let ctx: BTreeMap<String, String> = ["sub", "aud"]
        .iter()
        .filter_map(|c| {
            claims[c]
                .as_str()
                .map(|v| (format!("{hp}:{c}"), v.to_owned()))
        })
        .collect();
    let verdict = evaluate(&statements, &principal, &actions, &ctx);
    let detail = format!(
        "{} for {} ({})",
        match &verdict {
            Verdict::Allowed => "allowed".to_owned(),
            Verdict::ImplicitlyDenied => "no statement allows".to_owned(),
            Verdict::ExplicitlyDenied => "a Deny statement matches".to_owned(),
            Verdict::NotEvaluated(why) => format!("not evaluated: {why}"),
        },
        claims["sub"],
        actions.join(", ")
    );
    let outcome = match verdict {
        Verdict::Allowed => Outcome::Pass,
        Verdict::NotEvaluated(_) => Outcome::Warn,
        _ => Outcome::Fail,
    };
    report.add(
        "trust policy admits the token",
        outcome,
        detail,
        "AccessDenied",
    );
    Ok(())
}

/// `aws check`: prints the table; fails when a check fails.
pub async fn run(settings: &Settings, args: CheckArgs) -> anyhow::Result<()> {
    let report = check(&settings.issuer, &args).await?;
    print!("{}", report.table());
    if report.failed() {
        bail!(
            "{} check(s) failed: {}",
            report.failures().len(),
            report.failures().join(", ")
        );
    }
    println!("all checks passed");
    Ok(())
}
