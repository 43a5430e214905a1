//! The command line: one file per command group.

mod agent;
mod keys;
mod org;
mod serve;
mod token;

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
    /// Manage orgs
    #[command(subcommand)]
    Org(org::OrgCommand),
    /// Manage agents of an org
    #[command(subcommand)]
    Agent(agent::AgentCommand),
    /// Mint tokens locally (audited like any other)
    #[command(subcommand)]
    Token(token::TokenCommand),
    /// Inspect signing keys
    #[command(subcommand)]
    Keys(keys::KeysCommand),
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
        Command::Token(cmd) => token::run(settings, cmd).await,
        Command::Keys(cmd) => keys::run(settings, cmd).await,
    }
}

/// Prints a value as pretty JSON on stdout.
fn print_json(value: &serde_json::Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).expect("JSON values serialise")
    );
}
