//! `aws check`: looks at a running issuer the way STS would and reports every
//! rule that fails, with the STS error it would cause.
//!
//! `check` walks the issuer in STS's order; discovery, which every later step
//! reads, stays here. One file per concept: `issuer_url` (config's rules plus
//! AWS's own), `report` (rows, table, failures), `tls` (served chain and
//! thumbprint), `jwks` (fetch and key rules), `token` (mint one, then check its
//! form and claims) and `trust_policy` (whether a role's trust policy admits
//! the token).

mod issuer_url;
mod jwks;
mod report;
mod tls;
mod token;
mod trust_policy;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::bail;
use serde_json::Value;

use crate::workload::{request_error_text, trust_ca_file};

pub use report::{Outcome, Report, Row};
pub use tls::thumbprints;

/// STS gives up on discovery or JWKS after about this long.
const STS_TIMEOUT: Duration = Duration::from_secs(5);
const AWS_ALGS: [&str; 6] = ["RS256", "RS384", "RS512", "ES256", "ES384", "ES512"];

/// Options of `aws check`.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// Client id to mint a test token with (org/ORG or org/ORG/agent/AGENT)
    #[arg(long, value_parser = crate::ids::client_id_arg)]
    pub client_id: Option<String>,
    /// File holding the client secret
    #[arg(long, value_name = "FILE")]
    pub client_secret_file: Option<PathBuf>,
    /// File holding a private JWK, for private_key_jwt
    #[arg(long, value_name = "FILE")]
    pub private_key_file: Option<PathBuf>,
    /// The audience to ask for and expect
    #[arg(long, default_value = "sts.amazonaws.com")]
    pub audience: String,
    /// A role trust policy to evaluate the token against (IAM condition semantics)
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// Extra PEM CA certificates to trust (a private CA) [default: keys/dev-ca.pem
    /// when `serve --dev-tls` made it here]
    #[arg(long, value_name = "PEM_FILE")]
    pub ca_file: Option<PathBuf>,
    /// Print the checks as JSON
    #[arg(long)]
    pub json: bool,
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
            return "no answer within 5 s".to_owned();
        }
        request_error_text(&e)
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

/// Runs every check against `issuer`.
pub async fn check(issuer: &str, args: &CheckArgs) -> anyhow::Result<Report> {
    let mut report = Report::default();
    let https = issuer_url::check(&mut report, issuer);
    let ca = args.ca_file.as_deref();
    tls::check_chain(&mut report, issuer, https, ca).await;
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
        if iss == issuer {
            format!("{iss:?}")
        } else {
            format!("discovery says {iss:?}, but --issuer is {issuer:?}")
        },
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
    let keys = jwks::check_endpoint(&mut report, &http, &jwks_uri).await;
    let Some(token) = token::mint(&mut report, &http, issuer, &discovery, args).await? else {
        return Ok(report);
    };
    let claims = token::check_token(&mut report, &token, issuer, &args.audience, &keys);
    if let (Some(path), Some(claims)) = (&args.policy, claims) {
        trust_policy::check_policy(&mut report, path, issuer, &claims)?;
    }
    Ok(report)
}

/// `aws check`: prints the table (or JSON); fails when a check fails.
pub async fn run(issuer: &str, args: CheckArgs) -> anyhow::Result<()> {
    let report = check(issuer, &args).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report.to_json(issuer))?);
    } else {
        print!("{}", report.table());
    }
    if report.failed() {
        bail!(
            "{} check(s) failed: {}",
            report.failures().len(),
            report.failures().join(", ")
        );
    }
    if !args.json {
        println!("all checks passed");
    }
    Ok(())
}
