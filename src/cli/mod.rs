//! The command line: one file per command group.

mod admin;
mod agent;
mod audit;
mod aws;
mod backend;
mod credential;
mod input;
mod keys;
mod org;
mod remote;
mod serve;
mod token;

pub use input::InvalidInput;

use std::io::IsTerminal;

use clap::{Parser, Subcommand};

use crate::config::{ConfigArgs, LogFormat, Settings};

/// nomos-issuer: an OpenID Connect issuer for machine identities.
///
/// Orgs and their agents authenticate with a client secret or a private-key JWT
/// and receive short-lived signed JWTs that AWS accepts for
/// sts:AssumeRoleWithWebIdentity. Every command reads the same configuration:
/// flags, then NOMOS_ISSUER_* environment, then the --config file, then defaults.
#[derive(Debug, Parser)]
#[command(name = "nomos-issuer", version, max_term_width = 100)]
pub struct Cli {
    /// Configuration shared by every command.
    #[command(flatten)]
    pub config: ConfigArgs,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the issuer (embedded SQLite store by default)
    Serve(serve::ServeArgs),
    /// Apply database migrations and exit
    Migrate,
    /// Manage orgs (here, or on a running issuer with --addr)
    Org(org::OrgArgs),
    /// Manage agents of an org (here, or on a running issuer with --addr)
    Agent(agent::AgentArgs),
    /// Add, list and revoke the credentials of an org or agent
    Credential(credential::CredentialArgs),
    /// Mint tokens locally (audited like any other)
    #[command(subcommand)]
    Token(token::TokenCommand),
    /// Inspect and rotate signing keys
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Connect AWS: provider parameters, trust policies, lint, a live check
    #[command(subcommand)]
    Aws(aws::AwsCommand),
    /// Read and purge the audit log of issued tokens
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Admin API access: bearer tokens for /admin/v1
    #[command(subcommand)]
    Admin(admin::AdminCommand),
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("NOMOS_ISSUER_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let kek_env = std::env::var("NOMOS_ISSUER_KEK").ok();
    let settings = Settings::resolve(&cli.config, kek_env)?;
    init_logging(settings.log_format);
    match cli.command {
        Command::Serve(args) => serve::run(settings, args).await,
        Command::Migrate => serve::migrate(settings).await,
        Command::Org(cmd) => org::run(settings, cmd).await,
        Command::Agent(cmd) => agent::run(settings, cmd).await,
        Command::Credential(cmd) => credential::run(settings, cmd).await,
        Command::Token(cmd) => token::run(settings, cmd).await,
        Command::Keys(cmd) => keys::run(settings, cmd).await,
        Command::Aws(cmd) => aws::run(settings, cmd).await,
        Command::Audit(cmd) => audit::run(settings, cmd).await,
        Command::Admin(cmd) => admin::run(settings, cmd).await,
    }
}

/// A Unix time as RFC 3339 (UTC), or `-`.
fn time(t: Option<i64>) -> String {
    match t.and_then(|t| u64::try_from(t).ok()) {
        Some(t) => humantime::format_rfc3339_seconds(
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(t),
        )
        .to_string(),
        None => "-".into(),
    }
}

/// Prints a value as pretty JSON on stdout.
fn print_json(value: &serde_json::Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).expect("JSON values serialise")
    );
}

/// Resolves on SIGTERM or Ctrl-C.
pub(crate) async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

/// Flags that set AWS session claims (replacing the whole setting).
#[derive(Debug, Clone, clap::Args)]
pub struct ClaimsArgs {
    /// Tokens carry session tags (org, agent and --tag); the role must allow sts:TagSession
    #[arg(long)]
    pub session_tags: bool,
    /// An extra principal tag KEY=VALUE (repeat; needs --session-tags)
    #[arg(long = "tag", value_name = "KEY=VALUE")]
    pub tags: Vec<String>,
    /// A transitive tag key (repeat; needs --session-tags)
    #[arg(long = "transitive-tag", value_name = "KEY")]
    pub transitive: Vec<String>,
    /// Tokens carry a source identity (<agent>@<org>); the role must allow sts:SetSourceIdentity
    #[arg(long)]
    pub source_identity: bool,
}

impl ClaimsArgs {
    /// The validated setting, with AWS's limits enforced.
    pub fn to_claims(
        &self,
        subject: &crate::ids::Subject,
    ) -> anyhow::Result<crate::aws::session::SessionClaims> {
        use crate::aws::session::SessionClaims;
        let mut extra_tags = std::collections::BTreeMap::new();
        for t in &self.tags {
            let (k, v) = t
                .split_once('=')
                .ok_or_else(|| anyhow::anyhow!("--tag {t:?}: use KEY=VALUE"))?;
            if extra_tags.insert(k.to_owned(), v.to_owned()).is_some() {
                anyhow::bail!("--tag {k:?} is given twice: a session tag has one value");
            }
        }
        let claims = SessionClaims {
            tags: self.session_tags,
            extra_tags,
            transitive: self.transitive.clone(),
            source_identity: self.source_identity,
        };
        claims.validate_for(subject).map_err(anyhow::Error::msg)?;
        Ok(claims)
    }
}
