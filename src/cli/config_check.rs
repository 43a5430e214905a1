//! `config check`: the configuration validated as every command reads it
//! (flags, `NOMOS_ISSUER_*` variables, the `--config` file, defaults), and the
//! settings in effect printed with secrets hidden.

use serde_json::json;

use crate::config::{ConfigError, KekSource, Settings, to_toml};
use crate::keys::Kek;

/// Examples of `config check`.
pub const CHECK_EXAMPLES: &str = "\
Examples:
  # The file, with the environment and flags over it, as serve would read it
  nomos-issuer --config /etc/nomos-issuer/config.toml config check
  # One setting changed on the command line
  nomos-issuer --config config.toml --token-ttl 10m config check
  # For a script: the settings and warnings as JSON
  nomos-issuer config check --json | jq .settings.issuer";

/// `config` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum ConfigCommand {
    /// Validate the configuration and print the settings in effect (secrets
    /// hidden) as TOML, itself a valid configuration file; exits 2 naming the
    /// first invalid setting
    #[command(after_help = CHECK_EXAMPLES)]
    Check {
        /// Print JSON: {"settings": {...}, "kek": "...", "warnings": [...]}
        #[arg(long)]
        json: bool,
    },
}

/// Runs `config check` on settings that resolved (an invalid setting has
/// stopped the command before, with exit code 2).
pub fn run(settings: &Settings, cmd: ConfigCommand) -> anyhow::Result<()> {
    let ConfigCommand::Check { json } = cmd;
    // What serve would read next: the KEK, when it is there, and the TLS files.
    match &settings.kek {
        KekSource::Env(text) => {
            Kek::from_base64(text, "NOMOS_ISSUER_KEK")?;
        }
        KekSource::File(path) if path.exists() => {
            Kek::read_file(path)?;
        }
        KekSource::File(_) => {}
    }
    if let Some(tls) = &settings.tls {
        crate::http::tls::load(tls).map_err(|e| ConfigError::new("tls_cert", e.to_string()))?;
    }
    let effective = settings.effective();
    let mut warnings = settings.warnings.clone();
    if let KekSource::File(path) = &settings.kek
        && !path.exists()
    {
        warnings.push(format!(
            "the KEK file {} does not exist: the embedded default generates it on first start; on Postgres, serve refuses to start without it",
            path.display()
        ));
    }
    if json {
        super::print_json(&json!({
            "settings": effective,
            "kek": settings.kek_source(),
            "warnings": warnings,
        }));
    } else {
        println!(
            "# the settings in effect; the KEK comes from {}",
            settings.kek_source()
        );
        print!("{}", to_toml(&effective));
        for w in &warnings {
            eprintln!("warning: {w}");
        }
    }
    Ok(())
}
