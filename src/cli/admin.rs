//! `admin token create | list | revoke`: bearer tokens for the admin API.

use std::time::Duration;

use anyhow::Context;
use serde_json::json;

use super::input;
use crate::app::{now, open_store};
use crate::config::Settings;
use crate::principal::{ClientSecret, random_id};
use crate::store::AdminToken;

/// The prefix of every admin token, so that secret scanners and humans recognise one.
pub const ADMIN_TOKEN_PREFIX: &str = "nomos_at_";

/// `admin` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum AdminCommand {
    /// Admin API tokens (Authorization: Bearer on /admin/v1)
    #[command(subcommand)]
    #[command(after_help = super::examples::ADMIN_TOKEN)]
    Token(TokenCommand),
}

/// `admin token` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum TokenCommand {
    /// Create a token and print it once; only its hash is stored
    #[command(after_help = super::examples::ADMIN_TOKEN_CREATE)]
    Create {
        /// What or who the token is for, shown in `list` and in the issuer's log [default: your user name and the time]
        #[arg(long)]
        name: Option<String>,
        /// Stop working after this long: 3600, 90m, 12h, 30d [default: never]
        #[arg(long, value_name = "DURATION", value_parser = input::duration)]
        expires_in: Option<Duration>,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// List tokens (never the tokens themselves)
    #[command(after_help = super::examples::ADMIN_TOKEN_LIST)]
    List {
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token by id; it stops working at once on every replica
    #[command(after_help = super::examples::ADMIN_TOKEN_REVOKE)]
    Revoke {
        /// The token id (see `admin token list`)
        id: String,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
}

/// A token's name when none is given: who made it, and when.
fn default_name(now: i64) -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("USERNAME"))
        .ok()
        .filter(|u| !u.trim().is_empty())
        .unwrap_or_else(|| "admin".into());
    format!("{} {}", user.trim(), super::time(Some(now)))
}

/// Whether a token works at `now`.
fn state(t: &AdminToken, now: i64) -> &'static str {
    if t.revoked_at.is_some() {
        "revoked"
    } else if t.expires_at.is_some_and(|e| e <= now) {
        "expired"
    } else {
        "active"
    }
}

pub async fn run(settings: Settings, cmd: AdminCommand) -> anyhow::Result<()> {
    let AdminCommand::Token(cmd) = cmd;
    match cmd {
        TokenCommand::Create {
            name,
            expires_in,
            json,
        } => {
            let t = now();
            let name = match name {
                Some(n) if n.trim().is_empty() || n.len() > 200 => {
                    return Err(input::invalid("--name must be 1-200 characters"));
                }
                Some(n) => n,
                None => default_name(t),
            };
            let expires_at = expires_in
                .map(|d| {
                    i64::try_from(d.as_secs())
                        .ok()
                        .and_then(|d| t.checked_add(d))
                        .filter(|at| *at < 253_402_300_800) // 10000-01-01
                        .ok_or_else(|| input::invalid("--expires-in is too long"))
                })
                .transpose()?;
            let store = open_store(&settings, false).await?;
            let secret = ClientSecret::with_prefix(ADMIN_TOKEN_PREFIX);
            let token = AdminToken {
                id: random_id("adm_", 9),
                name,
                created_at: t,
                revoked_at: None,
                expires_at,
            };
            store
                .create_admin_token(&token, &secret.hash())
                .await
                .context("cannot store the admin token")?;
            if json {
                super::print_json(&json!({
                    "id": token.id, "name": token.name, "token": secret.expose(),
                    "expires_at": token.expires_at,
                }));
            } else {
                println!("Created admin token {} ({}).", token.id, token.name);
                println!("token:   {}", secret.expose());
                match token.expires_at {
                    Some(at) => println!("expires: {}", super::time(Some(at))),
                    None => println!(
                        "expires: never (revoke it with `admin token revoke {}`)",
                        token.id
                    ),
                }
                println!();
                println!(
                    "It is shown only once and stored only as a hash. Use it as `Authorization: Bearer <token>` on /admin/v1, or as NOMOS_TOKEN with NOMOS_ADDR."
                );
            }
        }
        TokenCommand::List { json } => {
            let store = open_store(&settings, false).await?;
            let tokens = store
                .list_admin_tokens()
                .await
                .context("cannot list admin tokens")?;
            let t = now();
            if json {
                let rows: Vec<_> = tokens
                    .iter()
                    .map(|k| {
                        json!({
                            "id": k.id, "name": k.name, "state": state(k, t),
                            "created_at": k.created_at, "expires_at": k.expires_at,
                            "revoked_at": k.revoked_at,
                        })
                    })
                    .collect();
                super::print_json(&json!({ "tokens": rows }));
            } else if tokens.is_empty() {
                println!("No admin tokens: create one with `nomos-issuer admin token create`.");
            } else {
                println!(
                    "{:<16}  {:<7}  {:<20}  {:<20}  {:<20}  NAME",
                    "ID", "STATE", "CREATED", "EXPIRES", "REVOKED"
                );
                for k in &tokens {
                    let expires = match k.expires_at {
                        Some(_) => super::time(k.expires_at),
                        None => "never".into(),
                    };
                    println!(
                        "{:<16}  {:<7}  {:<20}  {:<20}  {:<20}  {}",
                        k.id,
                        state(k, t),
                        super::time(Some(k.created_at)),
                        expires,
                        super::time(k.revoked_at),
                        k.name
                    );
                }
            }
        }
        TokenCommand::Revoke { id, json } => {
            let store = open_store(&settings, false).await?;
            store
                .revoke_admin_token(&id, now())
                .await
                .with_context(|| format!("cannot revoke admin token {id}"))?;
            if json {
                super::print_json(&json!({"id": id, "revoked": true}));
            } else {
                println!("admin token {id} revoked");
            }
        }
    }
    Ok(())
}
