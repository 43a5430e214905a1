//! `token mint`: local minting for operators and tests, audited like any
//! token, under the issuer `serve` serves. `token fetch|watch`: the workload
//! helper, a client of a running issuer.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::json;

use super::serve::{Issuer, ca_file_or_dev_ca};
use crate::app::{now, open_store, start_keys};
use crate::config::{ConfigError, Settings};
use crate::ids::{AgentId, Audience, OrgId, Subject};
use crate::oauth::{MintRequest, mint};
use crate::workload::{
    ClientCredential, FetchError, backoff, check_issuer_url, check_token_endpoint, fetch_token,
    refresh_after, role_session_name, same_origin_redirects, trust_ca_file, write_atomically,
};

/// `token watch` stops after this many failures in a row that retrying does
/// not fix (a refused credential, credentials that would leave the issuer's
/// origin): a few, because a credential just created may take a moment to
/// reach every replica's cache.
const PERMANENT_FAILURES: u32 = 3;

/// `token` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum TokenCommand {
    /// Mint a token for an org or one of its agents and print it
    #[command(after_help = super::examples::TOKEN_MINT)]
    Mint {
        /// The org
        org: String,
        /// The agent (omit for an org-scoped token)
        agent: Option<String>,
        /// Audience, which must be in the org's list [default: sts.amazonaws.com]
        #[arg(long)]
        audience: Option<String>,
        /// Lifetime (300, 5m), at most the org's maximum [default: the configured token_ttl]
        #[arg(long, value_name = "DURATION", value_parser = seconds_arg)]
        ttl: Option<u32>,
        /// Print JSON with the token, its expiry and jti
        #[arg(long)]
        json: bool,
    },
    /// Workload helper: get a token from --issuer once and write it to a file for
    /// AWS_WEB_IDENTITY_TOKEN_FILE
    #[command(after_help = super::examples::TOKEN_FETCH)]
    Fetch(HelperArgs),
    /// Workload helper: keep a token file fresh (refresh at 80% of the lifetime,
    /// back off with jitter on errors, exit cleanly on SIGTERM)
    #[command(after_help = super::examples::TOKEN_WATCH)]
    Watch(HelperArgs),
}

/// Options of the workload helper.
#[derive(Debug, clap::Args)]
pub struct HelperArgs {
    /// The client id: org/ORG or org/ORG/agent/AGENT
    #[arg(long, value_parser = crate::ids::client_id_arg)]
    pub client_id: String,
    /// File holding the client secret
    #[arg(
        long,
        value_name = "FILE",
        conflicts_with = "private_key_file",
        required_unless_present = "private_key_file"
    )]
    pub client_secret_file: Option<PathBuf>,
    /// File holding a private JWK (private_key_jwt)
    #[arg(long, value_name = "FILE")]
    pub private_key_file: Option<PathBuf>,
    /// Where to write the token (atomically, mode 0600)
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// The audience to ask for [default: the issuer's default, sts.amazonaws.com]
    #[arg(long)]
    pub audience: Option<String>,
    /// The role to assume, printed as AWS_ROLE_ARN
    #[arg(long)]
    pub role_arn: Option<String>,
    /// Extra PEM CA certificates to trust (a private CA) [default: keys/dev-ca.pem
    /// when `serve --dev-tls` made it here]
    #[arg(long, value_name = "PEM_FILE")]
    pub ca_file: Option<PathBuf>,
    /// Print JSON (the token file, its lifetime, the role and session name)
    /// instead of `export` lines
    #[arg(long)]
    pub json: bool,
}

pub async fn run(mut settings: Settings, cmd: TokenCommand) -> anyhow::Result<()> {
    let (org, agent, audience, ttl, json) = match cmd {
        TokenCommand::Fetch(args) => return helper(&settings, args, false).await,
        TokenCommand::Watch(args) => return helper(&settings, args, true).await,
        TokenCommand::Mint {
            org,
            agent,
            audience,
            ttl,
            json,
        } => (org, agent, audience, ttl, json),
    };
    let usage = |name: &str, e: crate::ids::IdError| ConfigError::new(name, e.to_string());
    let org = OrgId::parse(&org).map_err(|e| usage("ORG", e))?;
    let subject = match agent {
        Some(a) => Subject::Agent(org, AgentId::parse(&a).map_err(|e| usage("AGENT", e))?),
        None => Subject::Org(org),
    };
    let audience = match audience {
        Some(a) => Audience::parse(&a).map_err(|e| usage("--audience", e))?,
        None => Audience::sts(),
    };
    let store = open_store(&settings, false).await?;
    let issuer = Issuer::of_store(&settings, Some(store.as_ref())).await?;
    issuer.check_for_minting()?;
    settings.issuer = issuer.url;
    let Some(principal) = store.principal(&subject).await? else {
        let (name, create) = match &subject {
            Subject::Agent(o, a) => ("AGENT", format!("nomos-issuer agent create {o} {a}")),
            Subject::Org(o) => ("ORG", format!("nomos-issuer org create {o}")),
        };
        return Err(ConfigError::new(name, format!("{subject} does not exist: {create}")).into());
    };
    if !principal.policy.audiences.contains(&audience) {
        return Err(ConfigError::new(
            "--audience",
            format!(
                "{audience} is not in the allowed audiences of org {}",
                subject.org()
            ),
        )
        .into());
    }
    let max = principal
        .policy
        .max_ttl
        .min(settings.rotation.max_token_lifetime as u32);
    let ttl = ttl.unwrap_or(settings.token_ttl.min(max));
    if ttl == 0 || ttl > max {
        return Err(ConfigError::new(
            "--ttl",
            format!(
                "use 1-{max} seconds (the maximum of org {} and max_token_lifetime)",
                subject.org()
            ),
        )
        .into());
    }
    let aws_claims = principal
        .session_claims()
        .claims(&subject)
        .map_err(anyhow::Error::msg)?;
    let (_manager, published) = start_keys(store.clone(), &settings).await?;
    let minted = mint(
        &published.signer,
        &settings.issuer,
        MintRequest {
            subject: &subject,
            audience: &audience,
            ttl,
            auth_method: "cli",
            aws_claims: &aws_claims,
        },
        now(),
    );
    store
        .record_tokens(&[crate::audit::Issued {
            record: minted.record.clone(),
            claim: None,
        }])
        .await
        .context("cannot record the token in the audit; no token was issued")?;
    if json {
        super::print_json(&json!({
            "access_token": minted.token,
            "expires_in": minted.expires_in,
            "jti": minted.record.jti,
            "sub": minted.record.subject,
            "aud": minted.record.audience,
            "kid": minted.record.kid,
        }));
    } else {
        println!("{}", minted.token);
    }
    Ok(())
}

/// Why a refresh failed: the issuer's answer, or the token file.
#[derive(Debug, thiserror::Error)]
enum RefreshError {
    #[error(transparent)]
    Fetch(#[from] FetchError),
    /// `permanent` when the directory is gone or not writable: a full disk
    /// may clear up, a missing directory does not come back by itself.
    #[error("cannot write the token file {}: {why}", path.display())]
    Write {
        path: PathBuf,
        why: String,
        permanent: bool,
    },
}

impl RefreshError {
    /// Whether trying again later may help.
    fn retryable(&self) -> bool {
        match self {
            RefreshError::Fetch(e) => e.retryable(),
            RefreshError::Write { permanent, .. } => !permanent,
        }
    }

    /// The error with what to do about it.
    fn explained(&self) -> String {
        let fix = match self {
            RefreshError::Fetch(FetchError::Refused { error, .. }) => match error.as_str() {
                "invalid_client" => {
                    "; check --client-id and the credential file (the credential may have been revoked)"
                }
                "invalid_target" => {
                    "; check --audience: it must be one of the org's allowed audiences"
                }
                _ => "",
            },
            _ => "",
        };
        format!("{self}{fix}")
    }
}

struct Helper {
    http: reqwest::Client,
    issuer: String,
    args: HelperArgs,
    credential: ClientCredential,
    /// Whether the discovery `issuer` mismatch was reported (once is enough).
    warned: AtomicBool,
}

impl Helper {
    /// Discovers the token endpoint, fetches a token and writes the file.
    async fn refresh(&self) -> Result<u64, RefreshError> {
        let discovery: serde_json::Value = self
            .http
            .get(format!("{}/.well-known/openid-configuration", self.issuer))
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(FetchError::transport)?
            .json()
            .await
            .map_err(|e| FetchError::Transport(e.to_string()))?;
        let theirs = discovery["issuer"].as_str().unwrap_or_default();
        if theirs != self.issuer && !self.warned.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                "the issuer's discovery says issuer {theirs:?}, but --issuer is {}: its tokens carry iss {theirs:?}, \
                 which an AWS provider registered for {} rejects; give --issuer {theirs}",
                self.issuer,
                self.issuer
            );
        }
        let endpoint = discovery["token_endpoint"]
            .as_str()
            .ok_or_else(|| FetchError::Transport("discovery has no token_endpoint".into()))?;
        let endpoint = check_token_endpoint(&self.issuer, endpoint).map_err(FetchError::from)?;
        let fetched = fetch_token(
            &self.http,
            &endpoint,
            &self.args.client_id,
            &self.credential,
            self.args.audience.as_deref(),
            now(),
        )
        .await?;
        write_atomically(&self.args.out, fetched.token.as_bytes()).map_err(|e| {
            let dir = out_dir_problem(&self.args.out);
            RefreshError::Write {
                path: self.args.out.clone(),
                permanent: dir.is_some() || e.kind() == std::io::ErrorKind::PermissionDenied,
                why: dir.unwrap_or_else(|| e.to_string()),
            }
        })?;
        Ok(fetched.expires_in)
    }

    /// The result for the workload: `export` lines, or JSON.
    fn print_result(&self, expires_in: u64) {
        let path = std::path::absolute(&self.args.out).unwrap_or_else(|_| self.args.out.clone());
        let session = role_session_name(&self.args.client_id);
        if self.args.json {
            super::print_json(&json!({
                "token_file": path,
                "expires_in": expires_in,
                "role_arn": self.args.role_arn,
                "role_session_name": session,
            }));
            return;
        }
        println!("export AWS_WEB_IDENTITY_TOKEN_FILE={}", path.display());
        match &self.args.role_arn {
            Some(arn) => println!("export AWS_ROLE_ARN={arn}"),
            None => println!("# export AWS_ROLE_ARN=arn:aws:iam::<account>:role/<role>"),
        }
        println!("export AWS_ROLE_SESSION_NAME={session}");
    }
}

/// What is wrong with the directory a token file goes to, if anything.
fn out_dir_problem(out: &Path) -> Option<String> {
    let dir = match out.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => None,
        Ok(_) => Some(format!("{} is not a directory", dir.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some(format!(
            "the directory {} does not exist: create it first (mkdir -p {})",
            dir.display(),
            dir.display()
        )),
        Err(e) => Some(format!("cannot use the directory {}: {e}", dir.display())),
    }
}

async fn helper(settings: &Settings, args: HelperArgs, watch: bool) -> anyhow::Result<()> {
    // Before any request: a token that cannot be written is not worth asking for.
    if let Some(why) = out_dir_problem(&args.out) {
        return Err(ConfigError::new("--out", why).into());
    }
    let issuer = Issuer::of_network(settings);
    if let Some(note) = issuer.note() {
        eprintln!("{note}");
    }
    let issuer = issuer.url;
    let issuer_url = check_issuer_url(&issuer)?;
    let credential = ClientCredential::load(
        args.client_secret_file.as_deref(),
        args.private_key_file.as_deref(),
    )?;
    let http = trust_ca_file(
        reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(same_origin_redirects(&issuer_url)),
        ca_file_or_dev_ca(args.ca_file.as_deref()).as_deref(),
    )?;
    let h = Helper {
        http: http.build()?,
        issuer,
        args,
        credential,
        warned: AtomicBool::new(false),
    };
    if !watch {
        let expires_in = h
            .refresh()
            .await
            .map_err(|e| anyhow::anyhow!(e.explained()))?;
        eprintln!(
            "wrote a token valid for {expires_in} s to {}",
            h.args.out.display()
        );
        h.print_result(expires_in);
        return Ok(());
    }
    let mut printed = false;
    let mut attempt = 0u32;
    let mut permanent = 0u32;
    let shutdown = super::shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        let wait = match h.refresh().await {
            Ok(expires_in) => {
                attempt = 0;
                permanent = 0;
                tracing::info!(expires_in, file = %h.args.out.display(), "token refreshed");
                if !printed {
                    h.print_result(expires_in);
                    printed = true;
                }
                refresh_after(expires_in)
            }
            Err(e) => {
                permanent = if e.retryable() { 0 } else { permanent + 1 };
                if permanent >= PERMANENT_FAILURES {
                    bail!(
                        "stopped after {permanent} failures in a row that retrying does not fix: {}. \
                         The token file {} is left as it was",
                        e.explained(),
                        h.args.out.display()
                    );
                }
                let wait = backoff(attempt);
                attempt = attempt.saturating_add(1);
                tracing::warn!(error = %e.explained(), retry_in_ms = wait.as_millis() as u64, "token refresh failed; the previous token file is left as it was");
                wait
            }
        };
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = &mut shutdown => {
                tracing::info!("stopping: the token file stays until it expires");
                return Ok(());
            }
        }
    }
}

/// A duration flag in whole seconds: `300`, `5m`, `1h`.
fn seconds_arg(text: &str) -> Result<u32, String> {
    let d = crate::config::parse_duration(text)?;
    u32::try_from(d.as_secs()).map_err(|_| format!("{text:?} is too long"))
}
