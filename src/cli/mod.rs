//! The command line: one file per command group.
//!
//! Help is written to teach. Each command's `-h` shows its own flags and a
//! one-line note on the global ones (the configuration, which `--help` lists
//! under "Global options"), and ends with examples: a constant per command,
//! `pub const EXAMPLES: &str = "Examples:\n  # what it does\n  nomos-issuer …"`
//! in the command's file, set with `#[command(after_help = EXAMPLES)]`.
//! [`command`] adds the note; `tests/it/first_hour/help.rs` checks that every
//! command has examples.

mod admin;
mod agent;
mod audit;
mod aws;
mod backend;
mod completion;
mod config_check;
mod credential;
mod examples;
mod input;
mod keys;
mod migrate;
mod org;
mod remote;
mod serve;
mod token;

pub use input::InvalidInput;

use std::io::IsTerminal;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::config::{ConfigArgs, LogFormat, Settings};

/// The version `--version` prints: the package's, and the git commit it was
/// built from (`unknown` outside a git checkout, unless `NOMOS_ISSUER_COMMIT`
/// was set for the build; see `build.rs`).
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("NOMOS_ISSUER_COMMIT"),
    ")"
);

/// Examples of the top level.
const EXAMPLES: &str = "\
Examples:
  # Run the issuer on its embedded default (SQLite in ./data, KEK in ./keys/kek)
  nomos-issuer serve
  # In another terminal: an org, whose client secret is printed once
  nomos-issuer org create acme
  # The settings in effect, from flags, NOMOS_ISSUER_* variables and --config
  nomos-issuer --config nomos-issuer.toml config check
  # A command's own help, with its examples
  nomos-issuer keys rotate -h";

/// Examples of `serve`.
const SERVE_EXAMPLES: &str = "\
Examples:
  # The embedded default on http://127.0.0.1:8080
  nomos-issuer serve
  # HTTPS for local work, with a development CA in keys/ (the issuer becomes https://…)
  nomos-issuer serve --dev-tls
  # Production: Postgres, an operator's KEK, the public issuer, /admin and /metrics apart
  nomos-issuer --database-url postgres://nomos@db.internal/nomos \\
      --kek-file /etc/nomos-issuer/kek --issuer https://id.example.com \\
      --listen 0.0.0.0:8080 --operator-listen 127.0.0.1:9090 serve";

/// What a command's short help (`-h`) says in place of the global options.
pub const GLOBAL_OPTIONS_NOTE: &str = "\
Global options: the configuration flags (--config, --database-url, --issuer, --listen,
--kek-file, ...) work with every command, each also a NOMOS_ISSUER_* variable;
--help lists them, `nomos-issuer config check` shows their values.";

/// nomos-issuer: an OpenID Connect issuer for machine identities.
///
/// Orgs and their agents authenticate with a client secret or a private-key JWT
/// and receive short-lived signed JWTs that AWS accepts for
/// sts:AssumeRoleWithWebIdentity. Every command reads the same configuration:
/// flags, then NOMOS_ISSUER_* environment, then the --config file, then defaults.
#[derive(Debug, Parser)]
#[command(
    name = "nomos-issuer",
    version = VERSION,
    max_term_width = 100,
    after_help = EXAMPLES
)]
pub struct Cli {
    /// Configuration shared by every command.
    #[command(flatten)]
    pub config: ConfigArgs,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// Parses this process's arguments with [`command`]'s help; exits on
    /// `--help`, `--version` and invalid usage (code 2).
    pub fn parse_args() -> Self {
        let matches = command().get_matches();
        Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
    }
}

/// The command line with its help finished: every command's short help ends
/// with its examples and the [`GLOBAL_OPTIONS_NOTE`]; `--help` with the
/// examples. The binary, `completion` and `man` all use it.
pub fn command() -> clap::Command {
    finish(Cli::command())
}

fn finish(cmd: clap::Command) -> clap::Command {
    let examples = cmd.get_after_help().map(ToString::to_string);
    let mut cmd = match examples {
        Some(examples) => cmd
            .after_help(format!("{examples}\n\n{GLOBAL_OPTIONS_NOTE}"))
            .after_long_help(examples),
        None => cmd.after_help(GLOBAL_OPTIONS_NOTE),
    };
    for sub in cmd.get_subcommands_mut() {
        *sub = finish(std::mem::replace(sub, clap::Command::new("")));
    }
    cmd
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the issuer (embedded SQLite store by default)
    #[command(after_help = SERVE_EXAMPLES)]
    Serve(serve::ServeArgs),
    /// Apply database migrations and exit
    #[command(after_help = migrate::EXAMPLES)]
    Migrate(migrate::MigrateArgs),
    /// Manage orgs (here, or on a running issuer with --addr)
    #[command(after_help = examples::ORG)]
    Org(org::OrgArgs),
    /// Manage agents of an org (here, or on a running issuer with --addr)
    #[command(after_help = examples::AGENT)]
    Agent(agent::AgentArgs),
    /// Add, list and revoke the credentials of an org or agent
    #[command(after_help = examples::CREDENTIAL)]
    Credential(credential::CredentialArgs),
    /// Tokens: mint from the store, or fetch from a running issuer (workloads)
    ///
    /// `token mint` signs a token with the store's keys, for operators and
    /// tests; `token fetch` and `token watch` ask a running issuer for one with
    /// a client's credentials and keep a token file fresh for the AWS SDKs.
    #[command(subcommand, after_help = examples::TOKEN)]
    Token(token::TokenCommand),
    /// Inspect and rotate signing keys
    #[command(subcommand, after_help = keys::EXAMPLES)]
    Keys(keys::KeysCommand),
    /// Connect AWS: provider parameters, trust policies, lint, a live check
    #[command(subcommand, after_help = examples::AWS)]
    Aws(aws::AwsCommand),
    /// Read and purge the audit log of issued tokens
    #[command(subcommand, after_help = examples::AUDIT)]
    Audit(audit::AuditCommand),
    /// Admin API access: bearer tokens for /admin/v1
    #[command(subcommand, after_help = examples::ADMIN)]
    Admin(admin::AdminCommand),
    /// Check the configuration and print the settings in effect
    #[command(subcommand, after_help = config_check::CHECK_EXAMPLES)]
    Config(config_check::ConfigCommand),
    /// Print a shell completion script (bash, zsh, fish, …)
    #[command(after_help = completion::COMPLETION_EXAMPLES)]
    Completion(completion::CompletionArgs),
    /// Print the manual page (roff), made from the same definitions as --help
    #[command(after_help = completion::MAN_EXAMPLES)]
    Man(completion::ManArgs),
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
    match cli.command {
        // These print what the command line is: no configuration needed.
        Command::Completion(args) => completion::completion(&args),
        Command::Man(args) => completion::man(&args),
        command => {
            let kek_env = std::env::var("NOMOS_ISSUER_KEK").ok();
            let settings = Settings::resolve(&cli.config, kek_env)?;
            init_logging(settings.log_format);
            run_configured(settings, command).await
        }
    }
}

async fn run_configured(settings: Settings, command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve(args) => serve::run(settings, args).await,
        Command::Migrate(args) => migrate::run(settings, args).await,
        Command::Org(cmd) => org::run(settings, cmd).await,
        Command::Agent(cmd) => agent::run(settings, cmd).await,
        Command::Credential(cmd) => credential::run(settings, cmd).await,
        Command::Token(cmd) => token::run(settings, cmd).await,
        Command::Keys(cmd) => keys::run(settings, cmd).await,
        Command::Aws(cmd) => aws::run(settings, cmd).await,
        Command::Audit(cmd) => audit::run(settings, cmd).await,
        Command::Admin(cmd) => admin::run(settings, cmd).await,
        Command::Config(cmd) => config_check::run(&settings, cmd),
        Command::Completion(args) => completion::completion(&args),
        Command::Man(args) => completion::man(&args),
    }
}

/// An error and its causes on one line, each said once: a cause whose
/// message its parent already holds (an error that prints its source in its
/// own message) is left out, where `{:#}` would repeat it.
pub fn error_report(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if text.is_empty() || out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

/// A Unix time as RFC 3339 (UTC), or `-`.
fn time(t: Option<i64>) -> String {
    t.map_or_else(|| "-".into(), crate::clock::rfc3339)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_report_says_each_cause_once() {
        #[derive(Debug, thiserror::Error)]
        #[error("lookup failed: {0}")]
        struct Wraps(#[source] std::io::Error);
        let io = std::io::Error::other("Name or service not known");
        let e = anyhow::Error::new(Wraps(io)).context("cannot open the Postgres store");
        assert_eq!(
            error_report(&e),
            "cannot open the Postgres store: lookup failed: Name or service not known"
        );
        assert_eq!(format!("{e:#}").matches("Name or service").count(), 2);
    }
}
